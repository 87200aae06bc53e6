"""Published baseline scores shown beside a table's own columns.

A baseline file is a CSV with one row per (method, task): ``method``, ``task``, ``score`` (the published
normalized score) and optionally ``std`` and ``source`` (paper, table, URL); other columns are kept but not
shown. :data:`PUBLISHED` ships with the package: every number in it was checked against a stored public copy
named in its ``verified_via`` column (see ``baselines/README.md``). Users add their own with
``erdiff table --baseline FILE``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from erdiff.errors import ErdiffError

PUBLISHED = Path(__file__).parent / "baselines" / "published.csv"
REQUIRED_COLUMNS = ("method", "task", "score")


class BaselineError(ErdiffError):
    """A baseline CSV is missing, lacks a required column or holds a value that is not a number."""


@dataclass(frozen=True)
class Baseline:
    method: str
    task: str
    score: float
    std: float | None
    source: str


def _number(path: Path, line: int, column: str, text: str | None, required: bool) -> float | None:
    if text is None or not text.strip():
        if required:
            raise BaselineError(f"{path}, line {line}: column '{column}' is empty; expected a number")
        return None
    try:
        value = float(text)
    except ValueError:
        raise BaselineError(f"{path}, line {line}: column '{column}' = {text!r} is not a number") from None
    if not math.isfinite(value):
        raise BaselineError(f"{path}, line {line}: column '{column}' = {text!r} is not a finite number")
    return value


def load_baselines(path: str | Path) -> list[Baseline]:
    """Read one baseline CSV, checking its header and every value."""
    path = Path(path)
    if not path.is_file():
        raise BaselineError(f"baseline file {path} does not exist")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise BaselineError(f"{path}: missing column(s) {', '.join(missing)}; a baseline CSV needs "
                                f"{', '.join(REQUIRED_COLUMNS)} (and optionally std, source)")
        baselines = []
        for line, row in enumerate(reader, start=2):
            method, task = (row.get("method") or "").strip(), (row.get("task") or "").strip()
            if not method or not task:
                raise BaselineError(f"{path}, line {line}: 'method' and 'task' must not be empty")
            baselines.append(Baseline(method, task, _number(path, line, "score", row.get("score"), True),
                                      _number(path, line, "std", row.get("std"), False),
                                      (row.get("source") or "").strip()))
    return baselines


def load_all(files=(), published: bool = True) -> list[Baseline]:
    """The shipped baselines (unless ``published`` is false) followed by each user file, in order.

    A later file's (method, task) replaces an earlier one's, so a user file can correct a number.
    """
    paths = ([PUBLISHED] if published else []) + [Path(f) for f in files]
    merged: dict[tuple[str, str], Baseline] = {}
    for path in paths:
        for baseline in load_baselines(path):
            merged[(baseline.method, baseline.task)] = baseline
    return list(merged.values())
