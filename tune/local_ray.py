"""The private local Ray of `erdiff sweep`: it listens on 127.0.0.1 only and leaves no process behind.

Loopback only. Ray binds its gRPC servers (GCS, raylet, object manager, workers), the dashboard agent, the
runtime-env agent and the metrics exporters to all interfaces unless the node's address is a loopback one,
and ``ray.init`` turns a requested 127.0.0.1 into the machine's network address. Its only switch that keeps
127.0.0.1 is the one for single-machine Ray on macOS and Windows (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``):
:func:`loopback_only` sets it around ``ray.init``, for this process (Ray read it at import) and for the
processes that ``ray.init`` starts (they inherit the environment).

Nothing left behind. When the driver of a local Ray is SIGKILLed, Ray's dashboard agent and runtime-env
agent stay alive, re-parented to init, listening and ignoring SIGTERM. So a sweep that starts a local Ray
records it (:func:`record_session`: the driver's pid and start time, and the Ray session directory) in
``~/.erdiff/local-ray/``, and every sweep first ends the sessions whose driver is dead
(:func:`end_dead_sessions`). A process belongs to a session when it holds a file of the session directory
open: every Ray process writes its logs there (the agents rename themselves, ``ray::DashboardAgent``, and
overwrite their environment, so neither name nor environment identifies them). Processes are never chosen
by name, and another user's sessions are never touched (the records live in each user's home).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from ray._private import ray_constants

from erdiff import results

CLUSTER_SWITCH_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
KILL_ROUNDS = 50


def records_dir() -> Path:
    return Path.home() / ".erdiff" / "local-ray"


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Within: a local Ray started here takes 127.0.0.1 as its node address and binds every service there."""
    saved_env, saved_switch = os.environ.get(CLUSTER_SWITCH_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[CLUSTER_SWITCH_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_switch
        if saved_env is None:
            os.environ.pop(CLUSTER_SWITCH_ENV, None)
        else:
            os.environ[CLUSTER_SWITCH_ENV] = saved_env


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, /proc/<pid>/stat field 22); None if there is none.

    With the pid it names a process uniquely: a reused pid has another start time."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def record_session(session_dir: str) -> Path:
    """Record that this process drives the local Ray of ``session_dir``; returns the record's path."""
    record = records_dir() / f"{Path(session_dir).name}.json"
    results.write_json(record, {"driver_pid": os.getpid(), "driver_start_time": start_time(os.getpid()),
                                "session_dir": session_dir})
    return record


def session_processes(session_dir: str) -> list[int]:
    """Live processes (other than this one) that hold a file of ``session_dir`` open."""
    inside = session_dir.rstrip("/") + "/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            targets = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:  # gone, or not ours to read
            continue
        if any(target.startswith(inside) for target in targets):
            found.append(int(entry.name))
    return found


def end_session(record: Path, session_dir: str) -> list[int]:
    """SIGKILL what is left of the session, forget its record; returns the pids killed.

    Until none is left (a few rounds at most): a raylet not yet killed may still start a worker, and a killed
    process holds its files until it has exited."""
    killed = []
    for _ in range(KILL_ROUNDS):
        left = session_processes(session_dir)
        if not left:
            break
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):  # gone, or another user's
                os.kill(pid, signal.SIGKILL)
                if pid not in killed:
                    killed.append(pid)
        time.sleep(0.1)
    record.unlink(missing_ok=True)
    return killed


def end_dead_sessions() -> list[int]:
    """End every recorded session whose driver is gone (see the module docstring); returns the pids killed."""
    killed = []
    for record in sorted(records_dir().glob("*.json")):
        try:
            driver = json.loads(record.read_text())
        except (OSError, json.JSONDecodeError):  # being written, or just ended by another sweep
            continue
        if Path(driver["session_dir"]).name != record.stem:  # only a Ray session directory, as recorded
            continue
        if start_time(driver["driver_pid"]) != driver["driver_start_time"]:
            killed += end_session(record, driver["session_dir"])
    return killed
