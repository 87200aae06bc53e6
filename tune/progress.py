"""Where a sweep stands, read from its results folder: one table for `erdiff sweep` and `erdiff status`.

`erdiff sweep` prints :func:`table_lines` when it ends and :func:`progress_text` as it goes (tune.console);
`erdiff status RESULTS_DIR` prints the same table for a sweep that runs elsewhere (on a cluster whose shared
storage holds the results folder). Both read only what the results format holds (README, "Results format"):
``sweep.yaml``, ``trials/<trial>/trial.json`` and which trial folders exist, and `erdiff status` also the run
directories' lock files (:mod:`erdiff.runlock`); never Ray's state. This module does not import Ray.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from erdiff import results
from erdiff.errors import ErdiffError
from erdiff.runlock import held_by_live_process
from tune.aggregate import DIVERGED, TRIAL_FILE, count_evaluations, read_trial_records
from tune.spec import SweepSpec, TrialPlan, load_spec

SPEC_FILE = "sweep.yaml"
PENDING = "pending"
"""A trial the spec lists that has not started (no folder yet)."""
STARTED = "started"
"""A trial whose folder exists (its seeds began) and that has not reported an evaluation yet."""
RUNNING = "running"
ENDED = ("completed", "stopped", DIVERGED, "error")
"""trial.json statuses of a trial that trains no more."""


class StatusError(ErdiffError):
    """The folder given to `erdiff status` is not a sweep's results folder."""


@dataclass(frozen=True)
class TrialState:
    name: str
    status: str
    evaluation: int
    planned: int
    objective: dict | None
    """trial.json's ``objective`` (mean, std, per_seed); None before the first evaluation"""
    wall_time_s: float | None
    """seconds the trial has run, startup included (trial.json's ``wall_time_s``)"""


@dataclass(frozen=True)
class SweepProgress:
    spec: SweepSpec
    trials: list[TrialState]
    """the trials that reported or started, and the trials a grid or random spec lists that have not"""
    trial_count: int
    """trials the sweep makes, an Optuna search's not yet chosen ones included"""
    planned: int
    """evaluations the spec plans for a trial that has not reported yet (its first trial's budget)"""
    written_at: float | None = None
    """when the latest trial.json was written (for a sweep watched from outside)"""
    unheld: tuple[str, ...] = ()
    """running or started trials whose run directories no live process holds (a stopped or killed sweep), as far
    as this host can tell (erdiff.runlock.held_by_live_process)"""


def planned_evaluations(spec: SweepSpec, plan: TrialPlan) -> int:
    train = spec.seed_config(plan.task, plan.params, spec.seeds[0], plan.name).train
    return count_evaluations(train.epochs, train.eval_every)


def sweep_progress(spec: SweepSpec, out_dir: str | Path) -> SweepProgress:
    """The state of every trial of ``spec`` in the results folder ``out_dir``."""
    out_dir = Path(out_dir)
    records = {record["trial"]: record for record in read_trial_records(out_dir)}
    plans = {plan.name: plan for plan in spec.trials()}
    planned = planned_evaluations(spec, next(iter(plans.values())))
    folders = {path.name for path in (out_dir / "trials").glob("*") if path.is_dir()}
    names = sorted(set(records) | folders | (set() if spec.search.mode == "optuna" else set(plans)))
    trials = []
    for name in names:
        budget = planned_evaluations(spec, plans[name]) if name in plans else planned
        record = records.get(name)
        if record is None:
            trials.append(TrialState(name, STARTED if name in folders else PENDING, 0, budget, None, None))
            continue
        trials.append(TrialState(name, record["status"], record["evaluation"],
                                 record["planned_evaluations"] or budget,
                                 record["objective"] if record["evaluation"] else None, record.get("wall_time_s")))
    trial_count = spec.search.num_samples if spec.search.mode == "optuna" else len(plans)
    return SweepProgress(spec, trials, max(trial_count, len(trials)), planned)


def read_sweep_progress(out_dir: str | Path) -> SweepProgress:
    """:func:`sweep_progress` of the sweep whose results folder is ``out_dir``, with the spec it saved there."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise StatusError(f"{out_dir}: no such folder (expected the results folder of a sweep, its --out)")
    if not (out_dir / SPEC_FILE).is_file():
        raise StatusError(f"{out_dir}: not a sweep results folder: it has no {SPEC_FILE} (expected the --out "
                          "folder of `erdiff sweep`, e.g. results/quickstart)")
    progress = sweep_progress(load_spec(out_dir / SPEC_FILE), out_dir)
    written = [path.stat().st_mtime for path in (out_dir / "trials").glob(f"*/{TRIAL_FILE}")]
    return dataclasses.replace(progress, written_at=max(written, default=None), unheld=unheld_trials(progress, out_dir))


def unheld_trials(progress: SweepProgress, out_dir: str | Path) -> tuple[str, ...]:
    """The running or started trials whose run directories no live process holds (``SweepProgress.unheld``)."""
    return tuple(trial.name for trial in progress.trials if trial.status in (RUNNING, STARTED)
                 and _held_by_nobody(Path(out_dir) / "trials" / trial.name))


def unfinished_trials(progress: SweepProgress) -> int:
    """How many of the sweep's trials have not ended (completed, stopped, diverged or failed), counting those
    not created yet."""
    return progress.trial_count - sum(trial.status in ENDED for trial in progress.trials)


def _held_by_nobody(trial_dir: Path) -> bool:
    """Whether the trial has seed directories and no live process holds any of them (False when one is held on
    another host, and before the first seed directory exists: its workers may be starting)."""
    seed_dirs = list(trial_dir.glob("seed_*"))
    return bool(seed_dirs) and all(held_by_live_process(seed_dir) is False for seed_dir in seed_dirs)


def score_text(objective: dict | None) -> str:
    """``mean ± std (n)`` with the table's decimals; ``mean (1)`` for one seed, ``-`` without a value."""
    if objective is None or objective["mean"] is None:
        return "-"
    values = [v for v in objective["per_seed"].values() if v is not None]
    std = "" if objective["std"] is None else f" ± {objective['std']:.{results.SCORE_DECIMALS}f}"
    return f"{objective['mean']:.{results.SCORE_DECIMALS}f}{std} ({len(values)})"


def objective_label(spec: SweepSpec) -> str:
    """What the objective of a trial is, in the words of the final ranking."""
    return (f"{spec.objective.metric}: mean ± std over seeds (ddof={results.SEED_DDOF}) of each seed's mean of its "
            f"last {spec.objective.last_k} evaluations, (number of seeds)")


def ranked(trials: list[TrialState], mode: str) -> list[TrialState]:
    """Best first; trials without a score (diverged, not evaluated yet) after every scored one."""
    sign = -1 if mode == "max" else 1

    def key(trial: TrialState):
        mean = None if trial.status == DIVERGED or trial.objective is None else trial.objective["mean"]
        return mean is None, sign * (mean or 0.0)

    return sorted(trials, key=key)


def seconds_per_evaluation(trials: list[TrialState]) -> float | None:
    """s = Σ_trials wall_time_s / Σ_trials evaluations, over the trials that reported: a trial's wall time per
    evaluation, its startup included; None before the first evaluation."""
    timed = [t for t in trials if t.evaluation > 0 and t.wall_time_s is not None]
    if not timed:
        return None
    return sum(t.wall_time_s for t in timed) / sum(t.evaluation for t in timed)


def eta_seconds(evaluations_left: int, per_evaluation: float, parallel: int) -> float:
    """ETA = evaluations left × seconds per evaluation / trials running in parallel."""
    return evaluations_left * per_evaluation / parallel


def clock_text(seconds: float) -> str:
    """``h:mm:ss``."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def progress_text(progress: SweepProgress) -> str:
    """Trials done, running and left, evaluations done, the ETA while trials are left, the best trial so far."""
    trials = progress.trials
    ended = [t for t in trials if t.status in ENDED]
    running = [t for t in trials if t.status in (RUNNING, STARTED)]
    left = progress.trial_count - len(ended) - len(running)
    unnamed = progress.trial_count - len(trials)  # an Optuna search's trials not chosen yet
    evaluations = sum(t.evaluation for t in trials)
    evaluations_left = (sum(t.planned - t.evaluation for t in trials if t.status not in ENDED)
                        + unnamed * progress.planned)
    by_status = {status: sum(t.status == status for t in ended) for status in ENDED}
    done = ", ".join(f"{count} {status}" for status, count in by_status.items() if count)
    parts = [f"{len(ended)}/{progress.trial_count} trials done" + (f" ({done})" if done else ""),
             f"{len(running)} running", f"{left} left",
             f"{evaluations}/{evaluations + evaluations_left} evaluations"]
    if evaluations_left:
        per_evaluation = seconds_per_evaluation(trials)
        parallel = min(progress.spec.concurrency or max(1, len(running)), len(running) + left)
        parts.append("ETA -" if per_evaluation is None else
                     f"ETA {clock_text(eta_seconds(evaluations_left, per_evaluation, max(1, parallel)))}")
    best = ranked(trials, progress.spec.objective.mode)
    if best and best[0].objective is not None and best[0].objective["mean"] is not None and \
            best[0].status != DIVERGED:
        label = "best so far" if running or left else "best"
        parts.append(f"{label} {best[0].name} {score_text(best[0].objective)}")
    return "; ".join(parts)


def table_lines(progress: SweepProgress, out_dir: str | Path) -> list[str]:
    """The sweep's trials ranked by their objective, under a line of totals: `erdiff status` and the end of
    `erdiff sweep`. A diverged trial is listed as diverged, after the scored ones, never with a score."""
    spec, k = progress.spec, progress.spec.objective.last_k
    lines = [f"{spec.name}: {progress_text(progress)}"]
    if progress.written_at is not None:
        written = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(progress.written_at))
        lines.append(f"latest trial.json written {written} ({clock_text(max(0.0, time.time() - progress.written_at))} "
                     "ago)")
    if progress.unheld:
        lines.append(f"not running: no live process holds the run directories of {len(progress.unheld)} trial(s) "
                     f"marked running (the sweep was stopped or killed); `erdiff sweep {Path(out_dir) / SPEC_FILE} "
                     f"--out {out_dir} --resume` continues it")
    lines.append(f"ranked by the {spec.objective.mode} of {objective_label(spec)}; "
                 f"`erdiff table {out_dir} --select last-k --k {k}` shows the same numbers")
    for trial in ranked(progress.trials, spec.objective.mode):
        shown = DIVERGED if trial.status == DIVERGED else score_text(trial.objective)
        status = f"{trial.status} (no process)" if trial.name in progress.unheld else trial.status
        lines.append(f"  {trial.name:<48} {shown:>20}  evaluation {trial.evaluation}/{trial.planned}  {status}")
    return lines
