"""Study pages: a sweep's configurations compared by IQM with 95% stratified-bootstrap intervals.

A study is a grid sweep spec (``tune/configs/study_*.yaml``) whose searched fields are the question: α × β,
or the ensemble size M. :func:`study_scores` reads the sweep's run directories (one score per run: the mean
of its last k normalized evaluations, k = the spec's ``objective.last_k``), :func:`interval_frame` computes
per configuration, per task and over all tasks, the interquartile mean and its 95% stratified-bootstrap
percentile interval (:mod:`analysis.stats`), :func:`findings` writes what the data say under one rule — a
difference is stated only where two intervals do not overlap, otherwise "no difference at this budget" — and
:func:`write_study_page` renders a Markdown page with tables and figures (:mod:`analysis.plots`), the
commit, the machine, the date and the wall time of the run (``study.json``, written by ``erdiff study``).

``<out>/study.json`` (``erdiff-study/1``): ``spec``, ``commit`` (``dirty`` when tracked files differed from
it), ``machine`` (lscpu's model name), ``cpus``, ``started`` and ``finished`` (UTC, ISO 8601), ``wall_s``,
``load_start`` and ``load_end`` (1, 5 and 15-minute load averages), ``sweep_exit`` (the sweep's exit code) and
``earlier`` (the records of the sessions before an ``erdiff study --resume``, oldest first).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from analysis.collect import Collection, collect
from analysis.scores import seed_scores
from analysis.stats import aggregate, iqm
from erdiff import results
from erdiff.config import flatten_config
from erdiff.steptime import cpu_model
from tune.spec import SweepSpec

STUDY_FILE = "study.json"
ALL_TASKS = "all tasks"
"""Section name of the aggregate over every task (the runs of each task resampled within that task)."""
CONFIDENCE = 0.95
BOOTSTRAP_REPS = 2000
RULE = ("A difference between two configurations is stated only when their 95% confidence intervals do not "
        "overlap; where they overlap the page says \"no difference at this budget\".")


@dataclass(frozen=True)
class StudyFields:
    """The fields a study varies: ``axes`` (every searched dimension and every field each case sets: the
    table columns and the figures' axes) and ``extra`` (fields only some cases set, e.g. pessimism for M = 1:
    shown in the configuration's label)."""

    axes: tuple[str, ...]
    extra: tuple[str, ...]


def study_fields(spec: SweepSpec) -> StudyFields:
    cases = spec.search.cases
    in_every_case = [key for key in (cases[0] if cases else {}) if all(key in case for case in cases)]
    in_some_case = [key for case in cases for key in case if key not in in_every_case]
    return StudyFields(tuple(in_every_case) + tuple(spec.search.space), tuple(dict.fromkeys(in_some_case)))


def short_name(field: str) -> str:
    """``agent.num_critics`` -> ``num_critics``."""
    return field.split(".")[-1]


def study_scores(results_dir: str | Path, spec: SweepSpec) -> tuple[pd.DataFrame, list[str]]:
    """One row per scored run: ``task``, ``seed``, ``score`` (the mean of its last k normalized evaluations),
    ``run``, the value of every study field and the configuration's ``label``, ``q_end`` (the critics' mean Q
    on the data's (s, a) over the last evaluation period: how far the critic has climbed) and ``steps_per_s``
    (the last evaluation's step over its ``time_s``, which includes the evaluations before that one); and the
    notes on every run left out (incomplete, diverged, malformed), one line each."""
    fields = study_fields(spec)
    collection = collect(results_dir)
    label_fields = fields.axes + fields.extra
    # Task by task: a configuration's runs on different tasks differ by design (task_config), so they are
    # never pooled into one column, and the tables' note about mixed columns does not apply.
    frames, notes = [], []
    for task in dict.fromkeys(run.task for run in collection.runs):
        runs = Collection([run for run in collection.runs if run.task == task], [])
        task_scores, task_notes = seed_scores(runs, select="last-k", k=spec.objective.last_k,
                                              label_fields=label_fields)
        frames.append(task_scores)
        notes += task_notes
    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["column", "task", "domain", "seed", "score", "run"])
    configs = {run.name: run.config for run in collection.runs}
    for field in label_fields:
        scores[field] = [configs[run][field] for run in scores["run"]]
    last_records = {run.name: run.records[-1] for run in collection.runs if run.records}
    scores["q_end"] = [last_records[run].get("q_mean", float("nan")) for run in scores["run"]]
    scores["steps_per_s"] = [last_records[run]["step"] / last_records[run]["time_s"]
                             if last_records[run].get("time_s") else float("nan") for run in scores["run"]]
    scores["label"] = [configuration_label(row, fields, spec) for _, row in scores.iterrows()]
    lines = list(collection.notes)
    for note in notes:
        prefix = " · ".join(part for part in (note.task, note.column) if part)
        lines.append(f"{prefix}: {note.text}" if prefix else note.text)
    return scores, lines


def configuration_label(values, fields: StudyFields, spec: SweepSpec) -> str:
    """``ent_coef=0.01, lcb_coef=4``; an extra field appears where a case sets it (``num_critics=1,
    pessimism=min``)."""
    parts = [f"{short_name(f)}={_value_text(values[f])}" for f in fields.axes]
    for field in fields.extra:
        for case in spec.search.cases:
            if field in case and all(values[key] == case[key] for key in case):
                parts.append(f"{short_name(field)}={_value_text(values[field])}")
    return ", ".join(parts)


def _value_text(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def interval_frame(scores: pd.DataFrame, fields: StudyFields, reps: int = BOOTSTRAP_REPS,
                   seed: int = 0) -> pd.DataFrame:
    """Per configuration and section (each task, then all tasks): ``runs``, ``iqm`` with its 95% stratified-
    bootstrap interval ``low``, ``high``, the plain ``mean``, and the medians over its runs of ``q_end`` and
    ``steps_per_s`` (NaN in the all-tasks rows). The all-tasks row of a configuration uses
    only the tasks every configuration has, so that the configurations are compared on the same tasks."""
    rows = []
    common = set.intersection(*(set(g["task"]) for _, g in scores.groupby("label"))) if len(scores) else set()
    for label, group in scores.groupby("label", sort=False):
        values = {field: group[field].iloc[0] for field in fields.axes + fields.extra}
        sections = [(task, group[group["task"] == task]) for task in dict.fromkeys(group["task"])]
        if len(common) > 1:
            sections.append((ALL_TASKS, group[group["task"].isin(common)]))
        for section, runs in sections:
            by_task = {task: g["score"].to_numpy() for task, g in runs.groupby("task")}
            value, low, high = aggregate(by_task, iqm, CONFIDENCE, reps, seed)
            # Q and speed are per task: a median over tasks of different scales means nothing.
            per_task = section != ALL_TASKS
            rows.append({"section": section, "label": label, **values, "runs": len(runs), "iqm": value,
                         "low": low, "high": high, "mean": float(runs["score"].mean()),
                         "q_end": float(runs["q_end"].median()) if per_task else float("nan"),
                         "steps_per_s": float(runs["steps_per_s"].median()) if per_task else float("nan")})
    return pd.DataFrame(rows)


def sections_in_order(frame: pd.DataFrame) -> list[str]:
    tasks = [s for s in dict.fromkeys(frame["section"]) if s != ALL_TASKS]
    return tasks + ([ALL_TASKS] if ALL_TASKS in set(frame["section"]) else [])


def _interval_text(row) -> str:
    return f"{row['iqm']:.1f} [{row['low']:.1f}, {row['high']:.1f}]"


def findings(frame: pd.DataFrame) -> list[str]:
    """One sentence per section under :data:`RULE`: the configuration of highest IQM, those whose interval lies
    wholly below its interval, and otherwise "no difference at this budget"."""
    lines = []
    for section in sections_in_order(frame):
        rows = frame[frame["section"] == section].sort_values("iqm", ascending=False)
        best = rows.iloc[0]
        below = rows[rows["high"] < best["low"]]
        level = rows[rows["high"] >= best["low"]].iloc[1:]
        where = "Over all tasks" if section == ALL_TASKS else f"On {section}"
        if len(rows) == 1:
            lines.append(f"{where}: only {best['label']} has finished runs ({_interval_text(best)}): nothing to "
                         "compare yet.")
            continue
        if below.empty:
            lines.append(f"{where}: no difference at this budget. The {len(rows)} configurations' intervals all "
                         f"overlap the highest IQM, {best['label']} ({_interval_text(best)}); IQMs range from "
                         f"{rows['iqm'].min():.1f} to {best['iqm']:.1f}.")
            continue
        worse = "; ".join(f"{r['label']} ({_interval_text(r)})" for _, r in below.iterrows())
        text = f"{where}: {best['label']} has the highest IQM, {_interval_text(best)}, and its interval lies above " \
               f"those of {worse}."
        if not level.empty:
            text += (f" No difference at this budget between it and {'; '.join(level['label'])} "
                     "(overlapping intervals).")
        lines.append(text)
    return lines


def missing_cells(spec: SweepSpec, frame: pd.DataFrame) -> list[str]:
    """The spec's (task, configuration) cells without any scored run, as ``task: label``, in trial order."""
    fields = study_fields(spec)
    scored = set(zip(frame["section"], frame["label"])) if len(frame) else set()
    missing = []
    for plan in spec.trials():
        config = flatten_config(spec.seed_config(plan.task, plan.params, spec.seeds[0], plan.name).to_dict())
        label = configuration_label(config, fields, spec)
        if (plan.task, label) not in scored:
            missing.append(f"{plan.task}: {label}")
    return missing


def _markdown_table(frame: pd.DataFrame, fields: StudyFields) -> str:
    header = [short_name(f) for f in fields.axes + fields.extra] + ["runs", "IQM", "95% CI", "mean",
                                                                    "Q at end", "steps/s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(fields.axes + fields.extra)
                                                           + ["--:"] * 6) + "|"]
    for _, row in frame.iterrows():
        values = [_value_text(row[f]) for f in fields.axes + fields.extra]
        lines.append("| " + " | ".join(values + [str(row["runs"]), f"{row['iqm']:.1f}",
                                                 f"[{row['low']:.1f}, {row['high']:.1f}]",
                                                 f"{row['mean']:.1f}", _three_digits(row["q_end"]),
                                                 _three_digits(row["steps_per_s"])]) + " |")
    return "\n".join(lines)


def _three_digits(value: float) -> str:
    """About three significant digits, never in exponent form: 832, 27.3, 0.951; "–" for none."""
    if not math.isfinite(value):
        return "–"
    return f"{value:.{max(0, 2 - int(math.floor(math.log10(abs(value)))))}f}" if value else "0"


def _budget_lines(spec: SweepSpec) -> list[str]:
    """Per task: gradient steps, evaluations and the settings shared by every trial."""
    lines = []
    for task in spec.tasks:
        config = spec.seed_config(task, {}, spec.seeds[0], "budget")
        train, agent = config.train, config.agent
        lines.append(f"* {task}: {train.epochs * train.steps_per_epoch:,} gradient steps, an evaluation of "
                     f"{train.eval_episodes} episodes every {train.eval_every * train.steps_per_epoch:,} steps, "
                     f"{agent.hidden_dim}-unit networks, {agent.loss_type} loss, T = {agent.T}, batch "
                     f"{train.batch_size}")
    return lines


def _run_lines(info: dict | None) -> list[str]:
    if not info:
        return ["* not recorded (no study.json in the results folder: the sweep was not run by `erdiff study`)"]
    sessions = [*info.get("earlier", []), info]
    if len(sessions) > 1:
        walls = [session.get("wall_s") for session in sessions]
        total = f", {sum(walls) / 3600:.2f} h of wall time in all" if None not in walls else ""
        return [f"* run in {len(sessions)} sessions, each after the first resuming the sweep{total}:",
                *("  " + line for session in sessions[:-1] for line in _session_lines(session, "interrupted")),
                *("  " + line for line in _session_lines(info))]
    return _session_lines(info)


def _session_lines(info: dict, unfinished: str = "(not finished)") -> list[str]:
    start, end = (info.get("load_start") or [None])[0], (info.get("load_end") or [None])[0]
    load = f"{start:.1f} at the start" + (f", {end:.1f} at the end" if end is not None else "") if start is not None \
        else ""
    hours = info["wall_s"] / 3600 if info.get("wall_s") is not None else None
    return [f"* commit `{info['commit']}`{' (with uncommitted changes)' if info.get('dirty') else ''}, "
            f"machine: {info['machine']} ({info['cpus']} CPUs)",
            f"* started {info['started']}, finished {info.get('finished') or unfinished}"
            + (f", wall time {hours:.2f} h" if hours is not None else "")
            + (f"; 1-minute load average {load}" if load else "")
            + (f"; sweep exit code {info['sweep_exit']}" if info.get("sweep_exit") is not None else "")]


def spec_header(spec_path: str) -> list[str]:
    """The comment lines that open the spec file: its author's description of the study and its budget."""
    lines = []
    try:
        text = Path(spec_path).read_text()
    except OSError:
        return lines
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def render_page(spec: SweepSpec, spec_path: str, out_dir: str, frame: pd.DataFrame, notes: list[str],
                figures: list[Path], page: Path, info: dict | None) -> str:
    fields = study_fields(spec)
    varied = ", ".join(f"`{f}`" for f in fields.axes + fields.extra)
    found = [f"* {line}" for line in findings(frame)] if len(frame) else [
        "* nothing to report: no run of this study has finished."]
    missing = missing_cells(spec, frame)
    header = spec_header(spec_path)
    if missing:
        found.append(f"* Not in these numbers: {len(missing)} of {len(spec.trials())} (task, configuration) cells "
                     f"have no finished run ({'; '.join(missing)}); the Notes say why.")
    text = [f"# Study: {spec.name}", "",
            f"Sweep [`{spec_path}`]({os.path.relpath(Path(spec_path).resolve(), page.parent.resolve())}): "
            f"{varied} over {', '.join(spec.tasks)}, {len(spec.seeds)} seeds per configuration. "
            "This page is written by `erdiff study` (analysis/study.py); do not edit it by hand.", "",
            *(["The spec's own description:", "", "```yaml", *header, "```", ""] if header else []),
            "## Run", "", *_run_lines(info), "", "Budget per run:", "", *_budget_lines(spec), "",
            "## Statistic and rule", "",
            f"Each run contributes one score: the mean of its last {spec.objective.last_k} evaluations of the "
            "normalized score (D4RL's for D4RL tasks; for the locally generated tasks this project's reference "
            "returns: 0 = random actions, 100 = the data's reference controller). Per configuration: the "
            "interquartile mean (IQM) over its runs and its 95% stratified-bootstrap percentile interval "
            f"({BOOTSTRAP_REPS} resamples of the runs within each task, analysis/stats.py); over all tasks the "
            "runs of every task are pooled and resampled within their task. " + RULE + " Beside the score, "
            "each table gives the medians over the runs of the critics' mean Q on the data's (s, a) in the last "
            "evaluation period (\"Q at end\": how far the critic has climbed, to compare with the data's "
            "returns) and of the gradient steps per second of the run's time (\"steps/s\": its last evaluation's "
            "step over its time_s, which holds the evaluations before that one; a function or train trial's "
            "seeds ran one at a time, a packed trial's together).", "",
            "## What the data say", "", *found, ""]
    if figures:
        text += ["## Figures", ""]
        text += [f"![{path.stem}]({os.path.relpath(path.resolve(), page.parent.resolve())})" for path in figures]
        text.append("")
    for section in sections_in_order(frame) if len(frame) else []:
        rows = frame[frame["section"] == section]
        title = "All tasks (runs pooled, resampled within each task)" if section == ALL_TASKS else section
        text += [f"## {title}", "", _markdown_table(rows, fields), ""]
    if notes:
        text += ["## Notes", "", *[f"* {note}" for note in notes], ""]
    text += ["## Reproduce", "", "```bash",
             f"erdiff study {spec_path} --out {out_dir}                 # the sweep, then this page",
             f"erdiff study {spec_path} --out {out_dir} --render-only   # this page again from its runs",
             "```", ""]
    return "\n".join(text)


def write_study_page(spec: SweepSpec, spec_path: str, out_dir: str | Path, page: str | Path,
                     img_dir: str | Path) -> tuple[Path, pd.DataFrame]:
    """Read the study's runs in ``out_dir``, write its figures into ``img_dir``, the page to ``page`` and the
    numbers to ``<page without .md>.csv``; returns the page and the numbers."""
    from analysis import plots

    page, out_dir = Path(page), Path(out_dir)
    fields = study_fields(spec)
    scores, notes = study_scores(out_dir, spec)
    frame = interval_frame(scores, fields)
    figures = []
    if len(frame):
        if len(fields.axes) == 2:
            figures = plots.iqm_heatmaps(frame, sections_in_order(frame), *fields.axes, img_dir, spec.name)
        elif len(fields.axes) == 1 and not any(isinstance(v, str) for v in frame[fields.axes[0]]):
            figures = plots.iqm_curves(frame, sections_in_order(frame), fields.axes[0], img_dir, spec.name)
        else:
            figures = plots.iqm_intervals(frame, sections_in_order(frame), img_dir, spec.name)
    info = read_study_info(out_dir)
    page.parent.mkdir(parents=True, exist_ok=True)
    results.atomic_write_text(page, render_page(spec, spec_path, str(out_dir), frame, notes,
                                                [p for p in figures if p.suffix == ".png"], page, info))
    results.atomic_write_text(page.with_suffix(".csv"), frame.to_csv(index=False))
    return page, frame


# ---------------------------------------------------------------------------------------------------------
# study.json: where, when and on what the sweep ran


def git_commit(repo: Path) -> tuple[str, bool]:
    """The short commit of ``repo`` and whether tracked files differ from it; ("unknown", False) without git."""
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False
    return commit, bool(status.strip())


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def start_study_info(out_dir: Path, spec_path: str, resume: bool = False) -> dict:
    """A new session's record; on ``resume`` the folder's earlier sessions are kept under ``earlier``, oldest
    first, so that a page of a resumed study names every commit and machine its runs came from."""
    earlier = []
    if resume and (previous := read_study_info(out_dir)) is not None:
        earlier = [*previous.pop("earlier", []), previous]
    commit, dirty = git_commit(Path(__file__).resolve().parents[1])
    info = {"format": "erdiff-study/1", "spec": spec_path, "commit": commit, "dirty": dirty,
            "machine": cpu_model(), "cpus": os.cpu_count(), "started": _now(), "finished": None,
            "wall_s": None, "load_start": list(os.getloadavg()), "load_end": None, "sweep_exit": None,
            "earlier": earlier}
    out_dir.mkdir(parents=True, exist_ok=True)
    results.write_json(out_dir / STUDY_FILE, info)
    return info


def finish_study_info(out_dir: Path, info: dict, wall_s: float, sweep_exit: int) -> dict:
    info = {**info, "finished": _now(), "wall_s": wall_s, "load_end": list(os.getloadavg()),
            "sweep_exit": sweep_exit}
    results.write_json(out_dir / STUDY_FILE, info)
    return info


def read_study_info(out_dir: Path) -> dict | None:
    """``<out>/study.json``, or None when the folder has none (a sweep run by `erdiff sweep`)."""
    path = Path(out_dir) / STUDY_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise results.ResultsError(f"{path}: not a valid study.json ({err})") from err
    if not isinstance(info, dict) or info.get("format") != "erdiff-study/1":
        raise results.ResultsError(f"{path}: not a study.json of format erdiff-study/1")
    return info

