"""What every benchmark script in bench/ prints and writes: the commit it ran from, a name/value table, JSON."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def commit() -> str:
    """The short hash of the checkout's HEAD, or "unknown" outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def print_rows(rows: list[tuple[str, str]]) -> None:
    """Print (name, value) pairs as two aligned columns."""
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def write_json(path: str | Path | None, result: dict) -> None:
    """Write ``result`` as indented JSON to ``path`` (the scripts' --json); nothing when it is None."""
    if path:
        Path(path).write_text(json.dumps(result, indent=2) + "\n")
