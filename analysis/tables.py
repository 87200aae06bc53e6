"""The paper's tables, built from run directories: D4RL results by domain, and two-field ablations.

:func:`make_table` gives the layout of the paper's D4RL table: one block per domain (Gym locomotion 9
tasks, AntMaze 6, Adroit 2, Kitchen 3 — :data:`analysis.collect.DOMAINS`), each with a domain average, and
an "Other" block for local tasks. Columns are the published baselines (:mod:`analysis.baselines`) and then
one column per configuration found in the results; each cell is the mean ± sample std over seeds with the
number of seeds, and the best value of each row is bold. :func:`make_ablation_table` crosses two config
fields (α × M, schedule × T, ...) per task and averaged over tasks.

Both return a :class:`Table`, which :mod:`analysis.render` writes as Markdown, LaTeX or CSV.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd

from analysis import baselines as baseline_files
from analysis.collect import (
    DOMAINS,
    OTHER_DOMAIN,
    PRESET_LABEL,
    STALE_AFTER_S,
    CollectError,
    Collection,
    collect,
    describe,
    is_learning_field,
)
from analysis.scores import METRICS, Note, check_fields, seed_scores, statistic_caption
from analysis.stats import SEED_DDOF, mean_std
from erdiff.results import SCORE_DECIMALS
from erdiff.tasks import is_local

AVERAGE_ROW = "Average"
DECIMALS = SCORE_DECIMALS
"""Scores are shown, and the best of a row chosen, at one decimal, as in the paper."""


@dataclass
class Cell:
    mean: float | None = None
    std: float | None = None
    seeds: int | None = None
    """number of seeds behind the mean; None for a published number or an average over tasks"""
    bold: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class Section:
    """A block of rows under a title: a domain (main table) or a task (ablation)."""

    title: str
    rows: list[tuple[str, dict[str, Cell]]]


@dataclass
class Table:
    title: str
    caption: str
    row_header: str
    columns: list[str]
    sections: list[Section]
    notes: list[str]
    """partial results and everything else a reader must know, one sentence each"""
    sources: dict[str, str]
    """baseline column -> where its numbers were published"""
    baseline_columns: list[str]
    statistic: str
    scores: pd.DataFrame
    """the per-seed scores behind the table (column, task, domain, seed, score, run)"""


def _collection(results, stale_after: float) -> Collection:
    return results if isinstance(results, Collection) else collect(results, stale_after)


def _metric_key(metric: str) -> str:
    if metric not in METRICS:
        raise CollectError(f"unknown metric {metric!r}: expected one of {', '.join(METRICS)}")
    return METRICS[metric]


def _family(tasks) -> tuple[list[str], list[str]]:
    """The tasks split into D4RL ones and those generated locally (erdiff.tasks), which D4RL never had."""
    local = sorted(t for t in tasks if is_local(t))
    return sorted(set(tasks) - set(local)), local


def _title(tasks) -> str:
    d4rl, local = _family(tasks)
    if local and d4rl:
        return "Results on D4RL and locally generated tasks"
    return "Results on locally generated tasks" if local else "D4RL results"


def _caption(metric: str, statistic: str, tasks) -> str:
    d4rl, local = _family(tasks)
    measures = []
    if metric != "normalized":
        measures.append("undiscounted episode return")
    else:
        if d4rl:
            measures.append("D4RL normalized score (0 = random, 100 = expert)")
        if local:
            # their reference returns are this project's (erdiff/envs/scores.py), not D4RL's
            measures.append(f"normalized score of the locally generated task(s) {', '.join(local)} "
                            "(reference returns of erdiff/envs/scores.py: 0 = random actions, 100 = a reference "
                            "controller)")
    return (f"{'; '.join(measures)}: mean ± std over seeds (ddof={SEED_DDOF}), number of seeds in "
            f"parentheses; per seed: {statistic}. Bold: best of the row.")


def _cells_from_scores(scores: pd.DataFrame, keys: list[str]) -> dict[tuple, Cell]:
    cells = {}
    for key, group in scores.groupby(keys, sort=False):
        mean, std = mean_std(group["score"])
        cells[key] = Cell(mean, std, len(group))
    return cells


def _attach_notes(cells: dict[tuple, Cell], notes: list[Note], key_of) -> list[str]:
    """Put each note on its cell (when it has one) and return every note as a line of the table's notes."""
    lines = []
    for note in notes:
        prefix = " · ".join(part for part in (note.task, note.column) if part)
        lines.append(f"{prefix}: {note.text}" if prefix else note.text)
        key = key_of(note)
        if key is not None:
            cells.setdefault(key, Cell()).notes.append(note.text)
    return lines


def _round(value: float) -> float:
    return round(value, DECIMALS)


def _mark_best(cells: list[Cell]) -> None:
    """Bold the cells with the highest mean at display precision (every one of them on a tie)."""
    values = [_round(c.mean) for c in cells if c.mean is not None]
    if len(values) > 1:
        best = max(values)
        for cell in cells:
            cell.bold = cell.mean is not None and _round(cell.mean) == best


def _average_row(rows: list[tuple[str, dict[str, Cell]]], columns: list[str], notify: list[str],
                 where: str, run_columns: set[str]) -> dict[str, Cell]:
    """Mean over the rows of each column's means; shown only where every row has a value."""
    average = {}
    for column in columns:
        means = [row[column].mean for _, row in rows if column in row and row[column].mean is not None]
        if len(means) == len(rows):
            average[column] = Cell(sum(means) / len(means))
        elif means and column in run_columns:
            notify.append(f"{where} · {column}: no average (scores on {len(means)} of {len(rows)} tasks)")
    return average


def _column_order(columns) -> list[str]:
    """The preset first, then the labels with their numbers compared as numbers (num_critics=2 before 16)."""
    return sorted(set(columns), key=lambda c: (c != PRESET_LABEL, _natural_key(c)))


def _natural_key(label: str) -> tuple:
    parts = re.split(r"(\d+(?:\.\d+)?)", label)  # text, number, text, ...: same types at the same places
    return tuple(float(part) if index % 2 else part for index, part in enumerate(parts))


def task_order(tasks) -> list[str]:
    """Tasks in the paper's order (domain by domain), then the others alphabetically."""
    ordered = [t for _, block in DOMAINS for t in block if t in tasks]
    return ordered + sorted(set(tasks) - set(ordered))


def make_table(results, select: str = "last", k: int = 5, label_fields=(), baseline_paths=(),
               published: bool = True, include_incomplete: bool = False, metric: str = "normalized",
               stale_after: float = STALE_AFTER_S) -> Table:
    """The D4RL table of the runs under ``results`` (paths, or a :class:`Collection` already read).

    Args:
        select: per-seed statistic: ``last``, ``best`` or ``last-k`` (mean of the last ``k`` evaluations).
        label_fields: name the columns by these config fields (``agent.num_critics``, ``tags.trial``)
            instead of by the configuration's differences from the task preset.
        baseline_paths: extra baseline CSVs; ``published`` adds the shipped ones first.
        include_incomplete: use runs that are still running, died or stopped early (listed in the notes);
            diverged runs are never used.
        metric: ``normalized`` (D4RL normalized score) or ``return``.
    """
    collection = _collection(results, stale_after)
    metric_key = _metric_key(metric)
    scores, notes = seed_scores(collection, select, k, tuple(label_fields), include_incomplete, metric_key)
    cells = _cells_from_scores(scores, ["task", "column"])
    lines = list(collection.notes)
    lines += _attach_notes(cells, notes, lambda n: (n.task, n.column) if n.task and n.column else None)
    run_columns = _column_order(c for _, c in cells)
    # A configuration none of whose runs was scored would be a column of "–" only: drop it and say so.
    scored = {c for (_, c), cell in cells.items() if cell.seeds}
    for column in run_columns:
        if column not in scored:
            left_out = sum(n.column == column for n in notes)
            lines.append(f"column {column} dropped: no run of it was scored ({left_out} note(s) above say why)")
    run_columns = [c for c in run_columns if c in scored]

    tasks = {run.task for run in collection.runs}
    blocks = [(name, list(block)) for name, block in DOMAINS if tasks & set(block)]
    others = sorted(t for t in tasks if not any(t in block for _, block in DOMAINS))
    if others:
        blocks.append((OTHER_DOMAIN, others))
    shown = {t for _, block in blocks for t in block}

    baseline_columns, sources = [], defaultdict(list)
    for baseline in baseline_files.load_all(baseline_paths, published):
        if baseline.task not in shown:
            continue
        cells[(baseline.task, baseline.method)] = Cell(baseline.score, baseline.std)
        if baseline.method not in baseline_columns:
            baseline_columns.append(baseline.method)
        if baseline.source and baseline.source not in sources[baseline.method]:
            sources[baseline.method].append(baseline.source)
    if set(baseline_columns) & set(run_columns):
        clash = ", ".join(sorted(set(baseline_columns) & set(run_columns)))
        raise CollectError(f"column name(s) {clash} are both a baseline method and a run label; "
                           "rename the method in the baseline CSV or use --label")
    columns = baseline_columns + run_columns

    sections = []
    for name, block in blocks:
        rows = [(task, {c: cells[(task, c)] for c in columns if (task, c) in cells}) for task in block]
        empty = [task for task, row in rows if not any(c in row and row[c].seeds for c in run_columns)]
        if empty:
            lines.append(f"{name}: no usable run for {len(empty)} of {len(block)} task(s) "
                         f"({', '.join(empty)})")
        if name != OTHER_DOMAIN and len(block) > 1:
            rows.append((AVERAGE_ROW, _average_row(rows, columns, lines, name, set(run_columns))))
        for _, row in rows:
            _mark_best(list(row.values()))
        sections.append(Section(name, rows))

    statistic = statistic_caption(select, k)
    return Table(_title(tasks), _caption(metric, statistic, tasks), "Task", columns, sections, lines,
                 {m: "; ".join(s) for m, s in sources.items()}, baseline_columns, statistic, scores)


def _sort_values(values) -> list:
    """Numbers numerically, then anything else by its text."""
    values = set(values)
    numbers = sorted(v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool))
    return numbers + sorted((v for v in values if v not in numbers), key=str)


def make_ablation_table(results, row_field: str, column_field: str, select: str = "last", k: int = 5,
                        include_incomplete: bool = False, metric: str = "normalized",
                        stale_after: float = STALE_AFTER_S) -> Table:
    """Scores of every (``row_field`` value × ``column_field`` value) per task, and averaged over tasks.

    Runs are grouped by their configuration without the two fields; if that leaves several groups (the
    sweep also varied something else), each group gets its own sections rather than being averaged.
    """
    collection = _collection(results, stale_after)
    fields = (row_field, column_field)
    if row_field == column_field:
        raise CollectError(f"the two ablation fields must differ, got {row_field!r} twice")
    check_fields(collection, fields, "ablation field")
    for name in fields:
        if not is_learning_field(name):
            raise CollectError(f"ablation field {name!r} is not a learning field (use agent.* or train.*)")
    metric_key = _metric_key(metric)
    scores, notes = seed_scores(collection, select, k, (), include_incomplete, metric_key)
    lines = list(collection.notes) + _attach_notes({}, notes, lambda note: None)

    runs = {run.name: run for run in collection.runs}
    scores = scores.assign(
        row=[runs[name].config.get(row_field) for name in scores["run"]],
        col=[runs[name].config.get(column_field) for name in scores["run"]],
        rest=[describe({k_: v for k_, v in runs[name].identity.items() if k_ not in fields})
              for name in scores["run"]])
    row_values, col_values = _sort_values(scores["row"]), _sort_values(scores["col"])
    row_label = {v: f"{row_field}={v}" for v in row_values}
    col_label = {v: f"{column_field}={v}" for v in col_values}
    columns = [col_label[v] for v in col_values]

    sections = []
    groups = list(scores.groupby("rest", sort=True))
    for rest, group in groups:
        suffix = f" ({rest})" if len(groups) > 1 else ""
        cells = _cells_from_scores(group, ["task", "row", "col"])
        tasks = task_order(set(group["task"]))
        per_task = []
        for task in tasks:
            rows = [(row_label[r], {col_label[c]: cells[(task, r, c)]
                                    for c in col_values if (task, r, c) in cells}) for r in row_values]
            rows = [(label, row) for label, row in rows if row]
            per_task.append((task, rows))
        average_rows = []
        for r in row_values:
            row = {}
            for c in col_values:
                means = [cells[(t, r, c)].mean for t in tasks if (t, r, c) in cells]
                if means and len(means) == len(tasks):
                    row[col_label[c]] = Cell(sum(means) / len(means))
                elif means:
                    lines.append(f"average{suffix}: no value for {row_label[r]}, {col_label[c]} "
                                 f"({len(tasks) - len(means)} of {len(tasks)} tasks lack it)")
            if row:
                average_rows.append((row_label[r], row))
        per_task.append((f"{AVERAGE_ROW} over {len(tasks)} task(s)", average_rows))
        for title, rows in per_task:
            _mark_best([cell for _, row in rows for cell in row.values()])
            sections.append(Section(title + suffix, rows))

    statistic = statistic_caption(select, k)
    tasks = {run.task for run in collection.runs}
    caption = _caption(metric, statistic, tasks).replace("Bold: best of the row.", "Bold: best of each task's grid.")
    return Table(f"Ablation: {row_field} × {column_field}", caption, f"{row_field} \\ {column_field}",
                 columns, sections, lines, {}, [], statistic, scores)

