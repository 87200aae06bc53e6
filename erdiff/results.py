"""The results format on disk, shared by `erdiff train`, `tune` and `analysis` (README, "Results format").

A *run directory* holds one seed of one configuration::

    config.yaml      the full resolved Config (task, seed, agent.*, train.*, tags)
    metrics.jsonl    one JSON object per evaluation, in step order (keys: METRIC_KEYS and more)
    summary.json     status and the last / best / last-k-mean normalized score and return
    checkpoint.pt    the latest checkpoint (everything for an exact resume)
    tracking.json    with train.track only: the tracked runs' ids and steps (erdiff.tracking)

Every file is replaced atomically (written to a temporary file in the same folder, then renamed), so a
crash leaves either the old or the new version, never a torn one.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from erdiff.errors import ErdiffError

FORMAT = "erdiff-run/1"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoint.pt"
TRACKING_FILE = "tracking.json"

METRIC_KEYS = (
    "step", "epoch", "time_s",
    "return_mean", "return_std", "normalized_score_mean", "normalized_score_std", "episode_returns",
    "actor_loss", "critic_loss", "bc_loss", "q_loss", "entropy_loss", "entropy", "q_mean", "q_std",
    "actor_lr", "critic_lr", "ent_coef",
)
"""Keys of every metrics.jsonl record; evaluation keys are null when the task has no environment."""

DIVERGED = "diverged"
"""summary.json status of a run whose losses, Q-values or weights became non-finite (it has no score)."""

SEED_DDOF = 1
"""The delta degrees of freedom of every std over seeds, in trial.json and in every table and plot: the sample
std, since a handful of seeds is a sample of the seeds one could have run."""
SCORE_DECIMALS = 1
"""Decimals of a score shown as ``mean ± std (n)``, in tables and in a sweep's final ranking alike."""


class ResultsError(ErdiffError):
    """A run directory is missing a file or holds one that cannot be read."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a partial one.

    The file gets the permissions of an ordinary new file (0666 less the umask), not the temporary file's 0600,
    so other readers of a shared results folder can read it. A full disk is one clear error; the previous
    version of the file is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            kept = f"the previous {path.name} is intact" if path.exists() else "nothing was written"
            raise ResultsError(f"no space left on the device to write {path} ({len(data)} bytes); {kept}. "
                               "Free some space, then resume") from err
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _json_safe(value: Any) -> Any:
    """JSON has no NaN/inf: store them as null so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: str | Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(_json_safe(data), indent=2, sort_keys=False) + "\n")


def write_metrics(run_dir: str | Path, records: list[dict]) -> None:
    """Rewrite metrics.jsonl with ``records`` (atomic; small files, one line per evaluation)."""
    lines = "".join(json.dumps(_json_safe(r)) + "\n" for r in records)
    atomic_write_text(Path(run_dir) / METRICS_FILE, lines)


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError as err:
        raise ResultsError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The evaluation records of a run; a torn last line (a crash mid-write by another tool) is an error."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ResultsError(f"{path}, line {number}: not valid JSON ({err})") from err
    return records


def read_json(path: str | Path) -> Any:
    """A JSON file of a run; one that is not valid JSON is a ResultsError naming it."""
    try:
        return json.loads(_read_text(Path(path)))
    except json.JSONDecodeError as err:
        raise ResultsError(f"{path}: not valid JSON ({err})") from err


def read_summary(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        return None
    return read_json(path)


def read_config(run_dir: str | Path) -> dict:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ResultsError(f"{run_dir} is not a run directory: {CONFIG_FILE} is missing")
    try:
        data = yaml.safe_load(_read_text(path))
    except yaml.YAMLError as err:
        raise ResultsError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a mapping")
    return data


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file() and (
        (Path(path) / METRICS_FILE).is_file() or (Path(path) / SUMMARY_FILE).is_file())


def is_checkpoint_copy(path: Path, root: Path) -> bool:
    """Whether ``path`` lies in a Ray checkpoint folder (``checkpoint_*``) below ``root``: sweeps keep copies of
    run directories there, which are snapshots for restarts, not runs of their own."""
    return any(part.startswith("checkpoint_") for part in path.relative_to(root).parts)


def find_run_dirs(root: str | Path) -> list[Path]:
    """Every run directory at or below ``root``, sorted; Ray's checkpoint copies are skipped."""
    root = Path(root)
    if is_run_dir(root):
        return [root]
    return sorted(p.parent for p in root.rglob(CONFIG_FILE)
                  if is_run_dir(p.parent) and not is_checkpoint_copy(p.parent, root))


def summarize(records: list[dict], last_k: int, key: str = "normalized_score_mean") -> dict:
    """Last, best (with its step) and mean of the last ``last_k`` values of ``key`` over evaluations."""
    points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    if not points:
        return {"last": None, "best": None, "best_step": None, "last_k_mean": None, "last_k": last_k}
    values = [v for _, v in points]
    best_index = max(range(len(values)), key=values.__getitem__)
    tail = values[-last_k:]
    return {"last": values[-1], "best": values[best_index], "best_step": points[best_index][0],
            "last_k_mean": sum(tail) / len(tail), "last_k": last_k}


def make_summary(config: dict, records: list[dict], status: str, step: int, epoch: int,
                 time_s: float, divergence: dict | None = None) -> dict:
    """The summary.json of a run. A diverged run (``divergence``: step, epoch, quantity) has no score: its
    normalized_score and return blocks are empty, and its finite evaluations stay in metrics.jsonl only."""
    last_k = config["train"]["last_k"]
    scored = [] if divergence is not None else records
    summary = {
        "format": FORMAT,
        "status": status,
        "task": config["task"],
        "seed": config["seed"],
        "step": step,
        "epoch": epoch,
        "time_s": time_s,
        "evaluations": len(records),
        "normalized_score": summarize(scored, last_k, "normalized_score_mean"),
        "return": summarize(scored, last_k, "return_mean"),
    }
    if divergence is not None:
        summary["divergence"] = divergence
    return summary
