"""Does a dataset match the simulator? Replay every row from its recorded MuJoCo state.

For each row ``i``: set the simulator to ``infos/qpos[i]``, ``infos/qvel[i]``, compare the observation
the simulator reports with ``observations[i]``, apply ``actions[i]`` and compare the reward, the next
observation (``next_observations[i]``, else ``observations[i+1]`` inside an episode) and the terminal
flag. A dataset made on the same environment matches to the precision it was stored in; D4RL's data
(made with mujoco-py on the v2 envs) would reveal any dynamics drift of the Gymnasium v4 port.

Supported: the Gym-MuJoCo locomotion environments (their observation is a function of qpos and qvel
alone) and our D4RL-compatible AntMaze (D4RL's AntMaze files hold ``infos/qpos``, ``infos/qvel`` and the
data-collection goal ``infos/goal``, which sets the reward). AntMaze data were collected without the
evaluation rule "end on success", so terminal flags are not compared there. Adroit, kitchen and maze2d
environments carry state that the recorded qpos/qvel do not hold (targets, noise), so they are not supported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from erdiff.config import ConfigError
from erdiff.data.d4rl import DatasetError, read_d4rl_hdf5
from erdiff.envs.make import make_gym_env

LOCOMOTION_ENVS = ("Hopper-v4", "HalfCheetah-v4", "Walker2d-v4")


@dataclass(frozen=True)
class ConsistencyReport:
    """Largest and mean absolute differences between the file and the simulator over the checked rows."""

    rows: int
    observation_max_error: float
    reward_max_error: float
    reward_mean_error: float
    next_observation_max_error: float
    next_observation_mean_error: float
    next_observation_rows: int
    """rows with a known next observation (the last row of an episode has none without next_observations)"""
    terminal_mismatches: int | None
    """None where terminals are not compared (AntMaze data end episodes by time only)"""
    rows_over_tolerance: int
    tolerance: float

    def describe(self) -> str:
        return "\n".join([
            f"checked rows: {self.rows}",
            f"observation vs simulator state: max abs error {self.observation_max_error:.3g}",
            f"reward: max abs error {self.reward_max_error:.3g}, mean {self.reward_mean_error:.3g}",
            f"next observation ({self.next_observation_rows} rows): max abs error "
            f"{self.next_observation_max_error:.3g}, mean {self.next_observation_mean_error:.3g}",
            "terminal flag mismatches: " + ("not compared" if self.terminal_mismatches is None
                                            else str(self.terminal_mismatches)),
            f"rows with any error above {self.tolerance:g}: {self.rows_over_tolerance}",
        ])


def check_dataset(path: str | Path, task_name: str, limit: int | None = None,
                  tolerance: float = 1e-4) -> ConsistencyReport:
    """Replay the first ``limit`` rows (all by default) of the file at ``path`` in ``task_name``'s env."""
    from erdiff.tasks import get_task

    task = get_task(task_name)
    if task.env_id not in LOCOMOTION_ENVS and task.domain != "antmaze":
        raise ConfigError(f"dataset check replays MuJoCo states only in {', '.join(LOCOMOTION_ENVS)} and the "
                          f"AntMaze tasks; task {task_name!r} uses {task.env_id}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit} is invalid: expected a positive number of rows")
    raw = read_d4rl_hdf5(path, expected_obs_dim=task.obs_dim, expected_act_dim=task.act_dim)
    missing = [key for key in ("infos/qpos", "infos/qvel") if key not in raw]
    if missing:
        raise DatasetError(f"{path}: missing key(s) {', '.join(missing)}; the check resets the simulator to "
                           "each row's recorded state")
    env = make_gym_env(task.env_id)
    try:
        env.reset(seed=0)
        sim = env.unwrapped
        for key, size in (("infos/qpos", sim.model.nq), ("infos/qvel", sim.model.nv)):
            if raw[key].ndim != 2 or raw[key].shape[1] != size:
                raise DatasetError(f"{path}: key '{key}' has shape {raw[key].shape}; expected (N, {size}) "
                                   f"for {task.env_id}")
        return _replay(raw, sim, task.domain == "antmaze", limit, tolerance)
    finally:
        env.close()


def _set_row_state(sim, raw: dict, row: int, antmaze: bool) -> np.ndarray:
    """Put the simulator in the recorded state of ``row``; return the observation it then reports."""
    qpos, qvel = raw["infos/qpos"][row], raw["infos/qvel"][row]
    if antmaze:
        return sim.set_d4rl_state(qpos, qvel, raw["infos/goal"][row] if "infos/goal" in raw else None)
    sim.set_state(qpos, qvel)
    return sim._get_obs()


def _replay(raw: dict, sim, antmaze: bool, limit: int | None, tolerance: float) -> ConsistencyReport:
    n_rows = len(raw["observations"]) if limit is None else min(limit, len(raw["observations"]))
    ends = raw["terminals"].astype(bool) | raw.get("timeouts", np.zeros(len(raw["terminals"]), bool)).astype(bool)
    obs_errors, reward_errors, next_errors = np.zeros(n_rows), np.zeros(n_rows), np.full(n_rows, np.nan)
    terminal_mismatches = 0
    for i in range(n_rows):
        obs_errors[i] = np.abs(_set_row_state(sim, raw, i, antmaze) - raw["observations"][i]).max()
        # Step the bare env: the TimeLimit wrapper would count these replays as one long episode.
        next_obs, reward, terminated, _, _ = sim.step(raw["actions"][i])
        reward_errors[i] = abs(reward - float(raw["rewards"][i]))
        if not antmaze:
            terminal_mismatches += bool(terminated) != bool(raw["terminals"][i])
        if "next_observations" in raw:
            expected_next = raw["next_observations"][i]
        elif i + 1 < len(raw["observations"]) and not ends[i]:
            expected_next = raw["observations"][i + 1]
        else:
            continue
        next_errors[i] = np.abs(next_obs - expected_next).max()
    known_next = ~np.isnan(next_errors)
    worst = np.fmax(np.maximum(obs_errors, reward_errors), next_errors)
    return ConsistencyReport(
        rows=n_rows,
        observation_max_error=float(obs_errors.max()),
        reward_max_error=float(reward_errors.max()),
        reward_mean_error=float(reward_errors.mean()),
        next_observation_max_error=float(next_errors[known_next].max()) if known_next.any() else float("nan"),
        next_observation_mean_error=float(next_errors[known_next].mean()) if known_next.any() else float("nan"),
        next_observation_rows=int(known_next.sum()),
        terminal_mismatches=None if antmaze else int(terminal_mismatches),
        rows_over_tolerance=int((worst > tolerance).sum()),
        tolerance=tolerance,
    )
