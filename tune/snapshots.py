"""Run directories as Ray checkpoints: snapshot them for ``report``, restore them on a restart.

A seed's run directory (erdiff's results format) already is a complete checkpoint: ``train(..., resume=True)``
continues it exactly. Ray only needs a copy it can keep in its storage: after each evaluation the trainables
report a *snapshot*, a directory ``seed_<k>/`` per seed holding hard links to the run files (so reporting is
free on one filesystem; the files are replaced atomically, never modified in place, so the links stay
consistent). Ray merges the seed workers' snapshots of one evaluation into one checkpoint.

On a (re)start every seed is set back to the trial's latest checkpoint, even when its own run directory got
one evaluation further before a crash: then all seeds stand at the same evaluation and report in step (Ray
Train's report is a barrier), and a restart on another node or from remote storage finds its files too.
Without a checkpoint the seed starts afresh. Resuming on CPU is bitwise exact, so redoing an evaluation
period gives the same numbers.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from erdiff import results

RUN_FILES = (results.CONFIG_FILE, results.METRICS_FILE, results.SUMMARY_FILE, results.CHECKPOINT_FILE)
SESSIONS_FILE = "sessions.jsonl"
"""One line per process that trained the seed (pid, host, the evaluation it started from): restarts show here."""


def seed_dir_name(seed: int) -> str:
    return f"seed_{seed}"


@contextlib.contextmanager
def staged_snapshot(run_dirs: dict[int, Path]) -> Iterator[Path]:
    """A temporary directory with ``seed_<k>/`` links to the run files of each seed in ``run_dirs``."""
    with tempfile.TemporaryDirectory(prefix="erdiff-snapshot-") as staging:
        for seed, run_dir in run_dirs.items():
            target = Path(staging) / seed_dir_name(seed)
            target.mkdir()
            for name in RUN_FILES:
                if (run_dir / name).is_file():
                    _link_or_copy(run_dir / name, target / name)
        yield Path(staging)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem (or one without hard links)
        shutil.copy2(source, target)


def restore_run_dir(run_dir: Path, snapshot: Path | None, seed: int) -> None:
    """Set ``run_dir`` to the seed's files in ``snapshot`` (a checkpoint directory), or empty it without one."""
    source = snapshot / seed_dir_name(seed) if snapshot is not None else None
    if source is not None and not any((source / name).is_file() for name in (results.CHECKPOINT_FILE,
                                                                           results.SUMMARY_FILE)):
        source = None  # a checkpoint reported before this seed existed in it: nothing to restore
    # (a seed that diverged before its first checkpoint has a summary and no checkpoint.pt: restored as is)
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        target = run_dir / name
        if source is not None and (source / name).is_file():
            data = (source / name).read_bytes()
            if not (target.is_file() and target.read_bytes() == data):  # an unchanged file keeps its mtime
                results.atomic_write_bytes(target, data)
        else:
            target.unlink(missing_ok=True)


def log_session(run_dir: Path, evaluation: int) -> None:
    """Append who trains this seed now and from which evaluation (see SESSIONS_FILE)."""
    line = json.dumps({"pid": os.getpid(), "host": platform.node(), "start_evaluation": evaluation,
                       "time": time.time()})
    with open(run_dir / SESSIONS_FILE, "a") as handle:
        handle.write(line + "\n")


def read_sessions(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / SESSIONS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
