"""Per-seed scores: which runs a table uses, which score each contributes, and notes on everything else.

One score per run, chosen by the table's statistic (``select``):

* ``last``   — the last evaluation;
* ``best``   — the best evaluation during training ("online model selection", what the official code and
  Diffusion-QL report);
* ``last-k`` — the mean of the last k evaluations (a smoother, selection-free number).

The three come from :func:`erdiff.results.summarize` on the run's deduplicated evaluation records. Runs that
are not complete (still running, died, stopped early) are left out unless ``include_incomplete`` is set;
diverged runs are always left out (their records stop before the divergence, so their scores would describe
a run that failed), and every run left out, included while incomplete, resumed, duplicated or short of
evaluations is named in a :class:`Note`: nothing is dropped or averaged in silently.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pandas as pd

from analysis.collect import PRESET_LABEL, CollectError, Collection, Run, describe, domain_of
from erdiff.config import did_you_mean
from erdiff.results import summarize

SELECTIONS = ("last", "best", "last-k")
SUMMARY_KEYS = {"last": "last", "best": "best", "last-k": "last_k_mean"}
METRICS = {"normalized": "normalized_score_mean", "return": "return_mean"}


def statistic_caption(select: str, k: int) -> str:
    """The statistic a table shows, in the words its caption uses."""
    return {"last": "last evaluation",
            "best": "best evaluation during training (online model selection)",
            "last-k": f"mean of the last {k} evaluations"}[select]


@dataclass(frozen=True)
class Note:
    """A remark for a table's notes; ``task`` and ``column`` name the cell it concerns, if any."""

    text: str
    task: str | None = None
    column: str | None = None


def _label_value(run: Run, field: str) -> str:
    value = run.config.get(field, "(unset)")
    # Tags are labels already ("trial_00003"); config fields need their name ("agent.T=3").
    return str(value) if field.startswith("tags.") else f"{field}={value}"


def column_label(run: Run, fields: tuple[str, ...] = ()) -> str:
    """The table column of a run: the values of ``fields`` (chosen by the user, or the fields that tell the
    configurations apart), else its configuration as it differs from the task's preset."""
    if not fields:
        return describe(run.identity)
    return ", ".join(_label_value(run, f) for f in fields)


def distinguishing_fields(runs: list[Run]) -> tuple[tuple[str, ...], dict]:
    """The configuration fields whose values differ between runs, and the settings all runs share (a sweep's
    fixed config), so columns are named by what varies; ((), {}) when there is a single configuration."""
    identities = [run.identity for run in runs]
    if len({tuple(sorted(i.items())) for i in identities}) < 2:
        return (), {}
    keys = set().union(*identities)
    shared = {k: identities[0][k] for k in keys
              if all(k in i and i[k] == identities[0][k] for i in identities)}
    return tuple(sorted(keys - set(shared))), shared


def check_fields(collection: Collection, fields, what: str = "label field") -> None:
    """Every named field must occur in some run's config (else it is a typo); errors list the known ones."""
    known = set().union(*(run.config for run in collection.runs))
    unknown = [f for f in fields if f not in known]
    if unknown:
        named = ", ".join(repr(f) + did_you_mean(f, known) for f in unknown)
        raise CollectError(f"unknown {what} {named}: the runs' config fields are {', '.join(sorted(known))}")


def _preference(run: Run) -> tuple:
    """Which of two run directories for the same seed a table uses: complete, then longer, then by name."""
    return (not run.complete, -len(run.records), run.name)


def seed_scores(collection: Collection, select: str = "last", k: int = 5, label_fields: tuple[str, ...] = (),
                include_incomplete: bool = False,
                metric: str = "normalized_score_mean") -> tuple[pd.DataFrame, list[Note]]:
    """One row per (column, task, seed) with its ``score`` and ``run``, and notes on every special run."""
    if select not in SELECTIONS:
        raise CollectError(f"unknown statistic {select!r}: expected one of {', '.join(SELECTIONS)}")
    if k < 1:
        raise CollectError(f"k must be at least 1, got {k}")
    check_fields(collection, label_fields)
    notes: list[Note] = []
    candidates: dict[tuple, list[Run]] = defaultdict(list)
    column_fields = label_fields
    if not label_fields:
        # Diverged runs never become a column, so they do not name the columns either.
        column_fields, shared = distinguishing_fields([run for run in collection.runs if not run.diverged])
        if shared:
            notes.append(Note(f"every column also has {describe(shared)}"))
    diverged: dict[str, list[Run]] = defaultdict(list)
    for run in collection.runs:
        at_preset = not label_fields and not run.identity  # the paper's settings keep their own name
        column = PRESET_LABEL if at_preset else column_label(run, column_fields)
        where = dict(task=run.task, column=column)
        if run.diverged:
            diverged[run.divergence["quantity"]].append(run)
            continue
        if not run.complete:
            if include_incomplete:
                notes.append(Note(f"included although incomplete: {run.name} ({run.issue})", **where))
            else:
                notes.append(Note(f"excluded {run.name}: {run.issue}", **where))
                continue
        if run.duplicates:
            notes.append(Note(f"{run.name} was resumed: {run.duplicates} repeated evaluation record(s) "
                              "removed (the last record of each step kept)", **where))
        candidates[(column, run.task, run.seed)].append(run)

    rows = []
    for (column, task, seed), runs in candidates.items():
        runs.sort(key=_preference)
        chosen = runs[0]
        if len(runs) > 1:
            others = ", ".join(r.name for r in runs[1:])
            notes.append(Note(f"seed {seed} has {len(runs)} run directories: used {chosen.name}, "
                              f"ignored {others}", task, column))
        summary = summarize(chosen.records, k, metric)
        score = summary[SUMMARY_KEYS[select]]
        if score is None:
            notes.append(Note(f"{chosen.name} has no evaluation with {metric}", task, column))
            continue
        evaluations = sum(r.get(metric) is not None for r in chosen.records)
        if select == "last-k" and evaluations < k:
            notes.append(Note(f"{chosen.name} has only {evaluations} evaluation(s), fewer than k={k}: "
                              "mean over those", task, column))
        rows.append({"column": column, "task": task, "domain": domain_of(task), "seed": seed, "score": score,
                     "run": chosen.name})
    scores = pd.DataFrame(rows, columns=["column", "task", "domain", "seed", "score", "run"])
    for quantity, runs in sorted(diverged.items()):
        where = ", ".join(f"{run.name} (step {run.divergence['step']})" for run in runs)
        notes.append(Note(f"{len(runs)} diverged run(s) (non-finite {quantity}), never scored: {where}"))
    notes += _missing_seed_notes(scores) + _mixed_configuration_notes(collection, label_fields)
    return scores, notes


def _missing_seed_notes(scores: pd.DataFrame) -> list[Note]:
    """A column's expected seeds are those it has on any task; a task lacking some of them gets a note."""
    notes = []
    for column, group in scores.groupby("column", sort=False):
        expected = set(group["seed"])
        for task, cell in group.groupby("task", sort=False):
            missing = sorted(expected - set(cell["seed"]))
            if missing:
                notes.append(Note(f"seed(s) {', '.join(map(str, missing))} missing (have "
                                  f"{', '.join(map(str, sorted(cell['seed'])))})", task, column))
    return notes


def _mixed_configuration_notes(collection: Collection, label_fields: tuple[str, ...]) -> list[Note]:
    """With user-chosen labels one column may pool different configurations: say which fields differ."""
    if not label_fields:
        return []
    identities: dict[str, list[dict]] = defaultdict(list)
    for run in collection.runs:
        column = column_label(run, label_fields)
        if run.identity not in identities[column]:
            identities[column].append(run.identity)
    notes = []
    for column, found in identities.items():
        if len(found) > 1:
            keys = set().union(*found)
            differing = sorted(key for key in keys if len({repr(i.get(key)) for i in found}) > 1)
            notes.append(Note(f"column '{column}' pools {len(found)} configurations that differ in "
                              f"{', '.join(differing)}", column=column))
    return notes
