"""Read run directories — single runs and sweeps, from a laptop or a cluster — into pandas frames.

Every run directory at or below the given results roots is found with :func:`erdiff.results.find_run_dirs`
and read with the readers of :mod:`erdiff.results`, so a single `erdiff train` run, a sweep's
``<spec>/trials/<trial>/seed_<k>/`` tree or any mix of them are read the same way. Runs are named by their
path relative to the root they were found under (prefixed by the root's own name), so results copied from a
cluster read exactly like results made here.

Nothing here crashes on a bad run. A run still training, one that stopped early, died or diverged, and a
resumed run with repeated evaluation steps are all kept, classified and explained (``Run.state`` /
``Run.issue``) so that tables can exclude or include them *explicitly*; a diverged run is never scored. A
malformed run directory (a file that cannot be parsed, or holds values of the wrong type) is skipped and named
in :attr:`Collection.notes`.

A run's *configuration* (what a table column stands for) is its config minus the seed, the tags and the
fields that do not change what is learned (:data:`erdiff.config.NON_LEARNING_FIELDS`), expressed as the fields that
differ from the task's preset (:func:`erdiff.config.make_config`). The paper's default settings on every
task are therefore one configuration, "preset", and a sweep over ``agent.num_critics`` gives one
configuration per value.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pandas as pd

from erdiff import presets
from erdiff.config import NON_LEARNING_FIELDS, Config, ConfigError, flatten_config, make_config
from erdiff.errors import ErdiffError
from erdiff.results import (
    CONFIG_FILE,
    DIVERGED,
    METRIC_KEYS,
    METRICS_FILE,
    SUMMARY_FILE,
    ResultsError,
    find_run_dirs,
    read_config,
    read_metrics,
    read_summary,
)

STALE_AFTER_S = 2 * 3600.0
"""A run whose summary says "running" but whose files are older than this is taken to have died."""

PRESET_LABEL = "preset"
"""Column label of the configuration equal to the task's preset (the paper's settings)."""

DOMAINS = (
    ("Gym locomotion", presets.GYM),
    ("AntMaze", presets.ANTMAZE_V0),
    ("AntMaze v2", presets.ANTMAZE_V2),
    ("Adroit", presets.ADROIT),
    ("Kitchen", presets.KITCHEN),
    ("Maze2D", presets.MAZE2D),
)
"""Table blocks in the paper's order, each with its tasks in table order; any other task is "Other"."""

OTHER_DOMAIN = "Other"


class CollectError(ErdiffError):
    """A results root does not exist, holds no run, or a label field is unknown."""


def domain_of(task: str) -> str:
    for name, tasks in DOMAINS:
        if task in tasks:
            return name
    return OTHER_DOMAIN


@cache
def _reference(task: str) -> tuple:
    """The task's preset config, flattened (global defaults for a task this version does not know)."""
    try:
        config = make_config(task)
    except ConfigError:
        config = Config(task=task)
    return tuple(flatten_config(config.to_dict()).items())


def is_learning_field(key: str) -> bool:
    """Whether a flattened config field changes what is learned (not the task, seed, tags or device)."""
    return key not in NON_LEARNING_FIELDS and key not in ("task", "seed") and not key.startswith("tags.")


def configuration(flat_config: dict) -> dict:
    """The fields of a flattened run config that differ from its task's preset, i.e. what defines its column.

    ``train.dataset`` is compared by file name only: the same file sits at different paths on a laptop
    and on a cluster.
    """
    reference = dict(_reference(flat_config["task"]))
    identity = {}
    for key, value in flat_config.items():
        if not is_learning_field(key):
            continue
        if key == "train.dataset" and value is not None:
            value = Path(str(value)).name
        if key not in reference or reference[key] != value:
            identity[key] = value
    return identity


def describe(identity: dict) -> str:
    """A configuration as a short text: ``agent.num_critics=4, train.epochs=2`` or ``preset``."""
    if not identity:
        return PRESET_LABEL
    return ", ".join(f"{key}={value}" for key, value in sorted(identity.items()))


@dataclass
class Run:
    """One run directory, read and classified."""

    name: str
    """path relative to its results root, prefixed by the root's name (how notes refer to the run)"""
    path: Path
    """the run directory itself"""
    config: dict
    """the flattened config (``agent.T``, ``train.epochs``, ``tags.trial``, ...)"""
    records: list[dict]
    """evaluation records in step order, one per step (a resume's repeats removed, the last kept)"""
    state: str
    """completed | running | stale | stopped | diverged | incomplete | any other status the summary names"""
    issue: str = ""
    """why the run is not complete, in words; empty for a completed run"""
    duplicates: int = 0
    """evaluation records dropped because a later record had the same step (a resumed run)"""
    identity: dict = field(default_factory=dict)
    """its configuration: the learning fields that differ from the task's preset"""
    divergence: dict | None = None
    """for a diverged run, summary.json's ``divergence``: ``step``, ``epoch`` and the non-finite ``quantity``"""

    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def seed(self) -> int:
        return self.config["seed"]

    @property
    def complete(self) -> bool:
        return self.state == "completed"

    @property
    def diverged(self) -> bool:
        return self.state == DIVERGED


@dataclass
class Collection:
    """Everything read from the results roots."""

    runs: list[Run]
    notes: list[str]
    """the malformed run directories that were skipped, with the reason for each"""

    def runs_frame(self) -> pd.DataFrame:
        """One row per run: name, task, domain, seed, state, configuration, config fields, and issue,
        duplicates, evaluations."""
        return pd.DataFrame([{**_run_columns(run), "issue": run.issue, "duplicates": run.duplicates,
                              "evaluations": len(run.records)} for run in self.runs])

    def evals_frame(self) -> pd.DataFrame:
        """The tidy frame: one row per (run, evaluation step) with task, domain, seed, config fields and
        every metric of :data:`erdiff.results.METRIC_KEYS` except the per-episode list."""
        metric_keys = [k for k in METRIC_KEYS if k != "episode_returns"]
        return pd.DataFrame([{**_run_columns(run), **{k: record.get(k) for k in metric_keys}}
                             for run in self.runs for record in run.records])


def _run_columns(run: Run) -> dict:
    columns = {"run": run.name, "task": run.task, "domain": domain_of(run.task), "seed": run.seed,
               "state": run.state, "configuration": describe(run.identity)}
    columns.update({k: v for k, v in run.config.items() if k not in ("task", "seed")})
    return columns


def _deduplicate(records: list[dict]) -> tuple[list[dict], int]:
    """One record per step, the last one written winning (a resumed run re-evaluates the same steps)."""
    by_step = {}
    for record in records:
        by_step[record["step"]] = record
    kept = [by_step[step] for step in sorted(by_step)]
    return kept, len(records) - len(kept)


def _state(summary: dict | None, newest_write: float, now: float, stale_after: float) -> tuple[str, str]:
    if summary is None:
        return "incomplete", "no summary.json (it never finished an evaluation)"
    status = summary.get("status")
    if status == "completed":
        return "completed", ""
    if status == "running":
        age = now - newest_write
        if age > stale_after:
            return "stale", f"status 'running' but no write for {age / 3600:.1f} h (crashed or killed?)"
        return "running", f"still running (last write {age / 60:.0f} min ago)"
    if status == "stopped":
        return "stopped", "stopped before its last epoch (by a sweep scheduler or a callback)"
    if status == DIVERGED:
        details = summary["divergence"]
        return DIVERGED, (f"diverged: non-finite {details['quantity']} at step {details['step']} "
                            f"(epoch {details['epoch']})")
    return str(status), f"status {status!r}"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_config(config: dict, file: Path) -> None:
    if not isinstance(config.get("task"), str) or not config["task"]:
        raise ResultsError(f"{file}: field 'task' is missing or not a task name")
    if not _is_int(config.get("seed")):
        raise ResultsError(f"{file}: field 'seed' is missing or not an integer")
    for key, value in config.items():
        # Learning fields name table columns and are grouped on: they must be single values.
        if is_learning_field(key) and not (value is None or isinstance(value, (str, int, float))):
            raise ResultsError(f"{file}: field '{key}' = {value!r} is not a single value")


def _check_records(records: list, file: Path) -> None:
    """Every record is an object with an integer step and numbers or null under the numeric metric keys."""
    numeric = [k for k in METRIC_KEYS if k not in ("step", "episode_returns")]
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise ResultsError(f"{file}: record {number} is {record!r:.60}, expected a JSON object")
        if not _is_int(record.get("step")):
            raise ResultsError(f"{file}: record {number} has no integer 'step'")
        for key in numeric:
            value = record.get(key)
            if value is not None and not _is_finite_number(value):
                raise ResultsError(f"{file}: record {number} (step {record['step']}): '{key}' = {value!r}; "
                                   "expected a finite number or null")


def _check_summary(summary, file: Path) -> None:
    if not isinstance(summary, dict):
        raise ResultsError(f"{file}: holds {summary!r:.60}, expected a JSON object")
    if not isinstance(summary.get("status"), str):
        raise ResultsError(f"{file}: 'status' = {summary.get('status')!r}; expected a string such as 'completed'")
    if summary["status"] == DIVERGED:
        details = summary.get("divergence")
        if not (isinstance(details, dict) and _is_int(details.get("step")) and _is_int(details.get("epoch"))
                and isinstance(details.get("quantity"), str)):
            raise ResultsError(f"{file}: status 'diverged' needs 'divergence' = {{step: int, epoch: int, "
                               f"quantity: name}}, got {details!r}")


def _read_run(path: Path, name: str, now: float, stale_after: float) -> Run:
    config = flatten_config(read_config(path))
    _check_config(config, path / CONFIG_FILE)
    raw = read_metrics(path)
    _check_records(raw, path / METRICS_FILE)
    summary = read_summary(path)
    if summary is not None:
        _check_summary(summary, path / SUMMARY_FILE)
    records, duplicates = _deduplicate(raw)
    newest_write = max(p.stat().st_mtime for p in path.iterdir() if p.is_file())
    state, issue = _state(summary, newest_write, now, stale_after)
    divergence = summary["divergence"] if state == DIVERGED else None
    return Run(name, path, config, records, state, issue, duplicates, configuration(config), divergence)


def collect(roots, stale_after: float = STALE_AFTER_S, now: float | None = None) -> Collection:
    """Read every run directory at or below each of ``roots`` (a path or a list of paths).

    A directory reached through two roots is read once. ``now`` (seconds since the epoch) is only
    settable for tests of the staleness rule.
    """
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    if not roots:
        raise CollectError("no results directory given")
    now = time.time() if now is None else now
    runs, malformed, seen = [], [], set()
    for root in map(Path, roots):
        if not root.exists():
            raise CollectError(f"results directory {root} does not exist")
        base = root.resolve().name or str(root)
        for path in find_run_dirs(root):
            real = path.resolve()
            if real in seen:
                continue
            seen.add(real)
            relative = path.relative_to(root).as_posix()
            name = base if relative == "." else f"{base}/{relative}"
            try:
                runs.append(_read_run(path, name, now, stale_after))
            except ResultsError as err:
                malformed.append(f"{name}: {err}")
            except OSError as err:  # a file that cannot be opened (permissions, a dangling link)
                malformed.append(f"{name}: a file cannot be read ({err.strerror}: {err.filename})")
    notes = [f"skipped {len(malformed)} malformed run(s): {'; '.join(malformed)}"] if malformed else []
    if not runs:
        where = ", ".join(map(str, roots))
        skipped = f"; {notes[0]}" if notes else ""
        raise CollectError(f"no run directories (config.yaml with metrics.jsonl or summary.json) under "
                           f"{where}{skipped}")
    return Collection(runs, notes)
