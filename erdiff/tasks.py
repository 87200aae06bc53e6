"""The task registry: for every task name, its evaluation environment, reference returns and data source.

The task set is exactly :data:`erdiff.presets.PRESETS` (the paper's 20 D4RL tasks, AntMaze v2, maze2d and
the local tasks). D4RL tasks read the original D4RL HDF5 file (fetched by :mod:`erdiff.data.download`);
local tasks read ``$ERDIFF_DATA_DIR/<task>.hdf5`` (default ``~/.erdiff/datasets``) and generate it there
with :mod:`erdiff.data.generate` the first time it is needed.

Reference returns (normalized score = 100 (R - ref_min) / (ref_max - ref_min)) live in
:mod:`erdiff.envs.scores`: D4RL's published table for the D4RL tasks; for the local tasks, ref_min is the
mean return of uniform random actions and ref_max that of the noise-free controller the behaviour
policy is built on, measured over 100 episodes by :func:`erdiff.data.generate.reference_returns` (the
toy task's pair is computed exactly by :func:`erdiff.envs.toy.reference_returns`; hopper-noisy uses
D4RL's hopper pair, because Hopper-v4 is D4RL's hopper).

Evaluation environments (``env_id``): Gymnasium **v4** MuJoCo for the locomotion tasks (v5 changed
Walker2d's friction, so it is not D4RL's env); ``erdiff/...`` ids are D4RL-compatible wrappers registered
by :mod:`erdiff.envs.make` (observation layout, horizon and episode end as in D4RL).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from erdiff.envs.scores import reference_scores
from erdiff.presets import ADROIT, ANTMAZE_V0, ANTMAZE_V2, GYM, KITCHEN, LOCAL_TASKS, MAZE2D, preset_for

MAX_PARALLEL_ENVS = {"kitchen": 20}
"""Evaluation environments alive at once, per domain (default: one per episode). A FrankaKitchen env takes
about 65 MB, so 100 kitchen episodes run as 5 groups of 20; every other env takes under 10 MB."""

DATA_DIR_ENV = "ERDIFF_DATA_DIR"
"""Folder of the generated local datasets (default ``~/.erdiff/datasets``)."""


@dataclass(frozen=True)
class Task:
    """One task: where its data come from and how its policies are evaluated."""

    name: str
    domain: str
    """gym, antmaze, adroit, kitchen, maze2d or local"""
    env_id: str | None
    """``gymnasium.make`` id of the evaluation environment (after importing erdiff.envs.make); None: none"""
    obs_dim: int
    act_dim: int
    max_action: float
    """actions lie in [-max_action, max_action] in every dimension"""
    max_episode_steps: int
    """evaluation horizon, and the episode length d4rl assumes for files without ``timeouts``"""
    ref_min: float | None
    ref_max: float | None
    source: str
    """where the dataset comes from, in words"""


_LOCOMOTION = {"hopper": ("Hopper-v4", 11, 3), "halfcheetah": ("HalfCheetah-v4", 17, 6),
               "walker2d": ("Walker2d-v4", 17, 6)}
_MAZE_SIZES = {"umaze": "UMaze", "medium": "Medium", "large": "Large"}
# As in D4RL's registry: complete and partial share the task list, mixed has another one.
_KITCHEN_ENVS = {"complete": "erdiff/KitchenD4RL-MicrowaveKettleLightSlider-v0",
                 "partial": "erdiff/KitchenD4RL-MicrowaveKettleLightSlider-v0",
                 "mixed": "erdiff/KitchenD4RL-MicrowaveKettleBottomBurnerLight-v0"}
_MAZE2D_STEPS = {"umaze": 300, "medium": 600, "large": 800}
_LOCAL = {  # name -> (env_id, obs_dim, act_dim, max_action, max_episode_steps)
    "toy": ("erdiff/TwoStepToy-v0", 1, 1, 1.0, 2),
    "pendulum-medium": ("Pendulum-v1", 3, 1, 2.0, 200),
    "pendulum-medium-replay": ("Pendulum-v1", 3, 1, 2.0, 200),
    "mountaincar-sparse": ("MountainCarContinuous-v0", 2, 1, 1.0, 999),
    "hopper-noisy": ("Hopper-v4", 11, 3, 1.0, 1000),
}


def _d4rl_source(name: str) -> str:
    return f"D4RL dataset {name} (original HDF5 file, fetched by erdiff.data.download)"


def _build_registry() -> dict[str, Task]:
    tasks: dict[str, Task] = {}

    def add(name: str, domain: str, env_id: str, obs_dim: int, act_dim: int, max_action: float,
            max_episode_steps: int, source: str) -> None:
        ref_min, ref_max = reference_scores(name)
        tasks[name] = Task(name, domain, env_id, obs_dim, act_dim, max_action, max_episode_steps,
                           ref_min, ref_max, source)

    for name in GYM:
        env_id, obs_dim, act_dim = _LOCOMOTION[name.split("-")[0]]
        add(name, "gym", env_id, obs_dim, act_dim, 1.0, 1000, _d4rl_source(name))
    for name in ANTMAZE_V0 + ANTMAZE_V2:
        maze = name.split("-")[1]
        add(name, "antmaze", f"erdiff/AntMazeD4RL-{_MAZE_SIZES[maze]}-v0", 29, 8, 1.0,
            700 if maze == "umaze" else 1000, _d4rl_source(name))
    for name in ADROIT:
        add(name, "adroit", "erdiff/PenD4RL-v1", 45, 24, 1.0, 100, _d4rl_source(name))
    for name in KITCHEN:
        add(name, "kitchen", _KITCHEN_ENVS[name.split("-")[1]], 60, 9, 1.0, 280, _d4rl_source(name))
    for name in MAZE2D:
        maze = name.split("-")[1]
        add(name, "maze2d", f"erdiff/Maze2dD4RL-{_MAZE_SIZES[maze]}-v1", 4, 2, 1.0, _MAZE2D_STEPS[maze],
            _d4rl_source(name))
    for name in LOCAL_TASKS:
        env_id, obs_dim, act_dim, max_action, steps = _LOCAL[name]
        add(name, "local", env_id, obs_dim, act_dim, max_action, steps,
            f"generated on this machine by `erdiff dataset make {name}`")
    return tasks


TASKS = _build_registry()
"""Task name -> Task; the names are exactly those of erdiff.presets.PRESETS (tests/test_tasks.py)."""


def get_task(name: str) -> Task:
    """The task called ``name``; a ConfigError listing the known tasks otherwise."""
    if name not in TASKS:
        preset_for(name)  # raises the project's one "unknown task ...; known tasks: ..." error
    return TASKS[name]


def list_tasks() -> list[str]:
    """All task names, in registry order (paper tasks first, local tasks last)."""
    return list(TASKS)


def data_dir() -> Path:
    """Where generated local datasets live: ``$ERDIFF_DATA_DIR`` or ``~/.erdiff/datasets``."""
    return Path(os.environ.get(DATA_DIR_ENV) or Path.home() / ".erdiff" / "datasets")


def local_dataset_path(name: str) -> Path:
    """The file of local task ``name``, generated first (seed 0, default size) if it does not exist.

    A file lock makes parallel runs generate it once; the file appears atomically, complete.
    """
    from filelock import FileLock

    from erdiff.data.generate import make_dataset

    path = data_dir() / f"{name}.hdf5"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{path}.lock"):
            if not path.is_file():  # else a parallel run generated it while we waited
                print(f"erdiff: generating the {name} dataset at {path} (seed 0; once)", file=sys.stderr)
                make_dataset(name, path, seed=0)
    return path


MINARI_PREFIX = "minari:"
"""``train.dataset`` values starting with this name a Minari dataset id instead of an HDF5 file."""


def load_task_dataset(name: str, path: str | Path | None = None) -> dict[str, np.ndarray]:
    """Q-learning transitions of task ``name`` (float32 observations, actions, next_observations,
    rewards [N], terminals [N]), as d4rl.qlearning_dataset builds them.

    ``path`` replaces the task's own dataset: a D4RL-format HDF5 file, or ``minari:<dataset id>`` for a Minari
    dataset on this machine (AntMaze observations flattened in D4RL's order); its sizes must fit the task.
    An HDF5 file with a ``<file>.sha256`` record (erdiff writes one with every file it downloads or generates)
    must match it (:mod:`erdiff.data.checksum`); a file without one is read as is.
    """
    from erdiff.data.checksum import verify_sha256
    from erdiff.data.d4rl import DatasetError, qlearning_dataset, read_d4rl_hdf5

    task = get_task(name)
    if isinstance(path, str) and path.startswith(MINARI_PREFIX):
        from erdiff.data.minari_io import D4RL_ANTMAZE_OBS_KEYS, load_minari_transitions

        dataset_id = path[len(MINARI_PREFIX):]
        obs_keys = D4RL_ANTMAZE_OBS_KEYS if task.domain == "antmaze" else None
        transitions = load_minari_transitions(dataset_id, obs_keys)
        sizes = (transitions["observations"].shape[1], transitions["actions"].shape[1])
        if sizes != (task.obs_dim, task.act_dim):
            raise DatasetError(f"Minari dataset {dataset_id}: observations/actions have sizes {sizes}, "
                               f"task {name} expects ({task.obs_dim}, {task.act_dim})")
        return transitions
    if path is None:
        if task.domain == "local":
            path = local_dataset_path(name)
        else:
            from erdiff.data.download import d4rl_dataset_path
            path = d4rl_dataset_path(name)
    if Path(path).is_file():  # else read_d4rl_hdf5 says that it is missing
        verify_sha256(path)
    raw = read_d4rl_hdf5(path, expected_obs_dim=task.obs_dim, expected_act_dim=task.act_dim)
    return qlearning_dataset(raw, max_episode_steps=task.max_episode_steps)


def make_evaluator(name: str, episodes: int, seed: int):
    """An :class:`erdiff.envs.evaluate.Evaluator` of ``episodes`` episodes of task ``name``.

    ``seed`` is the run's seed: episode ``i`` is reset with ``seed + 100 + i`` (see erdiff.envs.evaluate).
    None when the task has no environment or ``episodes`` is 0 (no evaluation).
    """
    task = get_task(name)
    if task.env_id is None or episodes == 0:
        return None
    from erdiff.envs.evaluate import Evaluator
    return Evaluator(task, episodes, seed, max_envs=MAX_PARALLEL_ENVS.get(task.domain))
