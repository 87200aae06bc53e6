"""One writer per run directory: a file lock held for as long as a process trains into it.

The lock is ``flock`` on ``<run_dir>/.erdiff.lock``, so the kernel drops it when the holding process ends in
any way, SIGKILL included: a killed run can be resumed at once, and a sweep's retry never waits on a dead
worker's lock. The file holds the holder's pid, host and start time, which a second writer's error names. It is
never deleted (deleting a lock file races with the next process opening it) and is not part of the results.

Locks are re-entrant within one process (a Ray Train sweep worker holds its seed's directory while it calls
:func:`erdiff.train.train`, which takes it again; an in-process sweep trial holds its seeds' directories for
as long as it keeps their training sessions, which check that they are held). On NFS, Linux implements
``flock`` with the server's byte-range locks, so the lock also holds across hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from erdiff.errors import ErdiffError

LOCK_FILE = ".erdiff.lock"
_POLL_S = 0.2

_held: dict[Path, list[int]] = {}
"""Run directories locked by this process: resolved path -> [file descriptor, depth]."""


class RunLockedError(ErdiffError):
    """Another process is writing the run directory."""


@contextlib.contextmanager
def hold_run_dirs(run_dirs: Iterable[str | Path], wait_s: float = 0.0) -> Iterator[None]:
    """Hold the lock of every directory in ``run_dirs`` (each must exist) for the ``with`` block.

    ``wait_s``: how long to wait for a lock another process holds before raising :class:`RunLockedError`.
    """
    acquired = []
    try:
        for run_dir in run_dirs:
            path = Path(run_dir).resolve()
            _acquire(path, wait_s)
            acquired.append(path)
        yield
    finally:
        for path in reversed(acquired):
            _release(path)


def holds_run_dir(run_dir: str | Path) -> bool:
    """Whether this process holds the lock of ``run_dir``."""
    return Path(run_dir).resolve() in _held


def held_by_live_process(run_dir: str | Path) -> bool | None:
    """Whether a live process holds ``run_dir``'s lock, read from the lock file without taking the lock (a probe
    could make a starting writer fail): False when nobody has held it or its holder released it or has died on
    this host; None when the holder is on another host (its processes cannot be seen from here)."""
    try:
        holder = _parse_holder((Path(run_dir) / LOCK_FILE).read_text())
    except OSError:
        return False
    if holder is None:
        return False
    if holder["host"] != platform.node():
        return None
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _acquire(path: Path, wait_s: float) -> None:
    if path in _held:
        _held[path][1] += 1
        return
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunLockedError(f"{path} is being written by another process{holder}; wait until it ends, "
                                     "or choose another --out") from None
            time.sleep(_POLL_S)
    holder = {"pid": os.getpid(), "host": platform.node(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    _held[path] = [fd, 1]


def _release(path: Path) -> None:
    entry = _held[path]
    entry[1] -= 1
    if entry[1] == 0:
        del _held[path]
        os.ftruncate(entry[0], 0)  # no stale holder once nobody holds it
        os.close(entry[0])  # releases the flock


def _read_holder(fd: int) -> str:
    """`` (pid P on host H, since T)`` from the lock file, or nothing when it cannot be read."""
    try:
        holder = _parse_holder(os.pread(fd, 4096, 0).decode())
    except (OSError, ValueError):
        return ""
    return "" if holder is None else f" (pid {holder['pid']} on host {holder['host']}, since {holder['since']})"


def _parse_holder(text: str) -> dict | None:
    """The holder a lock file names (pid, host, since), or None when it is empty (released) or not one."""
    try:
        holder = json.loads(text or "null")
    except ValueError:
        return None
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int) or \
            not all(isinstance(holder.get(key), str) for key in ("host", "since")):
        return None
    return holder
