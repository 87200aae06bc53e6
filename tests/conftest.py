"""Shared fixtures: small synthetic datasets the tests make themselves, and a private local Ray per test.

The Ray fixtures live here, not in a test module that others import them from: an imported session fixture is a
separate fixture per importing module, so each module would get its own HOME (and Ray auth token), and the
first in-process Ray of the test process would keep every later one from starting."""

import os
import shutil
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest
import ray

from tune import local_ray


def make_linear_dataset(size: int = 1024, state_dim: int = 3, action_dim: int = 2, seed: int = 0) -> dict:
    """A dataset in qlearning format: reward = −‖a − tanh(s·W)‖², next state a small drift, rare terminals."""
    rng = np.random.default_rng(seed)
    observations = rng.normal(size=(size, state_dim)).astype(np.float32)
    target = np.tanh(observations @ rng.normal(size=(state_dim, action_dim)))
    actions = np.clip(target + 0.3 * rng.normal(size=target.shape), -1, 1).astype(np.float32)
    return {
        "observations": observations,
        "actions": actions,
        "next_observations": (observations + 0.1 * rng.normal(size=observations.shape)).astype(np.float32),
        "rewards": (-((actions - target) ** 2).sum(axis=1)).astype(np.float32),
        "terminals": (rng.random(size) < 0.01).astype(np.float32),
    }


@pytest.fixture
def linear_dataset():
    return make_linear_dataset()


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    """W&B in offline mode, its folders in the run directories (or Ray's trial folders), nothing in $HOME."""
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_DIR", "WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):  # nothing written to $HOME
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    yield
    wandb.teardown()  # ends W&B's service process now: left to atexit, it fails noisily after pytest's summary


def session_processes(temp_dir: Path) -> list[int]:
    """Processes (other than this one) started with RAY_TMPDIR=temp_dir or holding a file in it open: the Ray
    sessions of one test."""
    marker = f"RAY_TMPDIR={temp_dir}".encode()
    pids = set(local_ray.session_processes(str(temp_dir)))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                pids.add(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return sorted(pids)


def kill_session_processes(temp_dir: Path) -> None:
    for pid in session_processes(temp_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="session")
def private_home(tmp_path_factory):
    """One HOME for every sweep of the test session: the local-Ray records and Ray's auth token land there.

    Set once: a process keeps the auth token of its first ray.init, and a later local Ray started under another
    HOME (with another token) never comes up."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        yield Path(os.environ["HOME"])


@pytest.fixture
def ray_session(private_home, tmp_path_factory, monkeypatch):
    """A private Ray temp dir and dataset dir for this test; no Ray process of it outlives the test."""
    temp_dir = Path(tempfile.mkdtemp(prefix="erdt-", dir="/tmp"))  # short: Ray's socket paths are length-limited
    monkeypatch.setenv("RAY_TMPDIR", str(temp_dir))
    monkeypatch.setenv("ERDIFF_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    yield temp_dir
    ray.shutdown()
    kill_session_processes(temp_dir)
    shutil.rmtree(temp_dir, ignore_errors=True)
