"""Generators of the local datasets (``erdiff dataset make KIND``); each kind's name is its task's name.

Every kind rolls out a behaviour policy in a Gymnasium environment and returns D4RL rows:
``observations, actions, rewards, next_observations, terminals, timeouts`` (plus ``infos/qpos`` and
``infos/qvel`` for MuJoCo kinds, the simulator state *before* each step, which ``erdiff dataset check``
replays). ``terminals`` marks environment termination; ``timeouts`` marks time-limit truncation and the
cut at the requested size (the last row of a dataset that stops mid-episode).

The kinds:

* ``toy``: the two-step task of :mod:`erdiff.envs.toy`. Each episode aims at the broad low peak with
  probability 0.9 and at the narrow high peak with probability 0.1, with Gaussian action noise 0.25.
* ``pendulum-medium``: Pendulum-v1 with an energy-shaping swing-up and a PD stabiliser near the top; at
  every step the action is uniform random with probability 0.5, else the controller's torque plus
  Gaussian noise (std 0.5).
* ``pendulum-medium-replay``: Pendulum-v1 episodes that are 40% uniform random, 40% as in
  ``pendulum-medium`` and 20% the controller with small noise (std 0.1), like a learner's replay buffer.
* ``mountaincar-sparse``: MountainCarContinuous-v0 (reward +100 at the goal, minus 0.1 a^2 per step).
  85% of episodes take uniform random actions (which essentially never reach the goal in 999 steps),
  15% follow the velocity-sign pump controller with noise (which does): few successful episodes.
* ``hopper-noisy``: Hopper-v4 with a PD controller that holds every joint at 0 (the hopper stands
  upright, earning the healthy reward) plus per-episode Gaussian noise with std uniform in [0.2, 0.8]:
  a mixture of full 1000-step episodes and early falls.

All randomness comes from one ``numpy`` generator seeded with ``seed``: the same seed gives the same file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import erdiff
from erdiff.config import ConfigError
from erdiff.data.d4rl import DatasetError
from erdiff.data.write import write_d4rl_hdf5
from erdiff.envs.make import make_gym_env
from erdiff.envs.toy import PEAKS

GENERATOR_VERSION = 1
"""Bumped whenever a generator's output for a given seed changes."""

Policy = Callable[[np.ndarray], np.ndarray]
EpisodePolicies = Callable[[np.random.Generator], Policy]
"""Draws the behaviour policy of one episode (kinds that mix behaviours choose per episode)."""


@dataclass(frozen=True)
class DatasetKind:
    """A dataset generator: environment, behaviour, default size and the noise-free reference policy."""

    name: str
    env_id: str
    summary: str
    default_size: int
    behaviour: EpisodePolicies
    expert: Policy
    """the noise-free controller the behaviour is built on; its return is the task's ref_max"""
    record_state: bool = False
    """store the MuJoCo state (``infos/qpos``, ``infos/qvel``) of every row"""


# --- behaviour policies -------------------------------------------------------------------------

def _toy_episode(rng: np.random.Generator) -> Policy:
    # (first action, final state): to the broad low peak at -1 (90%) or the narrow high peak at 1.5 (10%).
    low_peak, high_peak = PEAKS[0][0], PEAKS[1][0]
    first_action, final_state = (0.9 * low_peak, low_peak) if rng.random() < 0.9 else (high_peak / 2, high_peak)

    def policy(obs: np.ndarray) -> np.ndarray:
        # Every episode starts at exactly 0; a noisy first action never lands exactly on 0 again.
        aim = first_action if obs[0] == 0.0 else final_state - obs[0]
        return np.array([aim + 0.25 * rng.standard_normal()])
    return policy


def _toy_expert(obs: np.ndarray) -> np.ndarray:
    # The optimal plan: a_0 = 1 then a_1 = 0.5 (see erdiff.envs.toy.reference_returns).
    return np.array([1.0 if obs[0] == 0.0 else 1.5 - obs[0]])


PENDULUM_GRAVITY_GAIN = 15.0
"""3 g / (2 l) of Pendulum-v1: theta'' = 15 sin(theta) + 3 u, theta = 0 upright."""


def pendulum_controller(obs: np.ndarray) -> np.ndarray:
    """Swing up by pumping energy (bang-bang along the velocity), then stabilise with PD near the top."""
    cos, sin, velocity = (float(x) for x in obs)
    if cos > 0.9:
        angle = np.arctan2(sin, cos)
        return np.array([np.clip(-(10.0 * angle + 2.0 * velocity), -2.0, 2.0)])
    # E = 0.5 w^2 + 15 cos(theta) equals 15 at rest upright; dE/dt = 3 u w, so push along w to add energy.
    energy = 0.5 * velocity ** 2 + PENDULUM_GRAVITY_GAIN * cos
    direction = np.sign(velocity) if velocity != 0.0 else 1.0
    return np.array([2.0 * direction * np.sign(PENDULUM_GRAVITY_GAIN - energy)])


def _noisy(controller: Policy, rng: np.random.Generator, low: float, high: float, random_prob: float,
           noise_std: float) -> Policy:
    """``controller`` plus Gaussian noise, replaced by a uniform random action with ``random_prob``."""
    def policy(obs: np.ndarray) -> np.ndarray:
        if rng.random() < random_prob:
            return rng.uniform(low, high, size=1)
        return controller(obs) + noise_std * rng.standard_normal(1)
    return policy


def _pendulum_medium_episode(rng: np.random.Generator) -> Policy:
    return _noisy(pendulum_controller, rng, -2.0, 2.0, random_prob=0.5, noise_std=0.5)


def _pendulum_replay_episode(rng: np.random.Generator) -> Policy:
    draw = rng.random()
    if draw < 0.4:
        return _noisy(pendulum_controller, rng, -2.0, 2.0, random_prob=1.0, noise_std=0.0)
    if draw < 0.8:
        return _pendulum_medium_episode(rng)
    return _noisy(pendulum_controller, rng, -2.0, 2.0, random_prob=0.0, noise_std=0.1)


def mountaincar_controller(obs: np.ndarray) -> np.ndarray:
    """Full throttle along the velocity: pumps energy until the car reaches the goal (~100 steps)."""
    return np.array([1.0 if obs[1] >= 0.0 else -1.0])


def _mountaincar_episode(rng: np.random.Generator) -> Policy:
    if rng.random() < 0.85:
        return _noisy(mountaincar_controller, rng, -1.0, 1.0, random_prob=1.0, noise_std=0.0)
    return _noisy(mountaincar_controller, rng, -1.0, 1.0, random_prob=0.3, noise_std=0.5)


def hopper_stand_controller(obs: np.ndarray) -> np.ndarray:
    """PD control of thigh, leg and foot joints to angle 0: the Hopper-v4 stands upright indefinitely."""
    return -2.0 * obs[2:5] - 0.2 * obs[8:11]


def _hopper_episode(rng: np.random.Generator) -> Policy:
    noise_std = rng.uniform(0.2, 0.8)
    return lambda obs: hopper_stand_controller(obs) + noise_std * rng.standard_normal(3)


KINDS = {kind.name: kind for kind in (
    DatasetKind("toy", "erdiff/TwoStepToy-v0", "two-step 1-D toy task, 90/10 unbalanced behaviour",
                10_000, _toy_episode, _toy_expert),
    DatasetKind("pendulum-medium", "Pendulum-v1", "swing-up controller, 50% random actions + noise",
                100_000, _pendulum_medium_episode, pendulum_controller),
    DatasetKind("pendulum-medium-replay", "Pendulum-v1", "episodes 40% random, 40% medium, 20% good",
                100_000, _pendulum_replay_episode, pendulum_controller),
    DatasetKind("mountaincar-sparse", "MountainCarContinuous-v0", "85% random episodes, 15% noisy pump",
                100_000, _mountaincar_episode, mountaincar_controller),
    DatasetKind("hopper-noisy", "Hopper-v4", "standing PD controller + noise std U(0.2, 0.8)",
                30_000, _hopper_episode, hopper_stand_controller, record_state=True),
)}
"""Dataset kind name (= task name) -> generator."""


def get_kind(name: str) -> DatasetKind:
    """The generator called ``name``; a clear error listing the known kinds otherwise."""
    if name not in KINDS:
        raise ConfigError(f"unknown dataset kind {name!r}; known kinds: {', '.join(KINDS)}")
    return KINDS[name]


# --- rollouts -----------------------------------------------------------------------------------

def _clip_action(env, action: np.ndarray) -> np.ndarray:
    space = env.action_space
    return np.clip(np.asarray(action, dtype=np.float32).reshape(space.shape), space.low, space.high)


def rollout_rows(kind: DatasetKind, size: int, seed: int) -> dict[str, np.ndarray]:
    """Exactly ``size`` D4RL rows of ``kind``'s behaviour, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    env = make_gym_env(kind.env_id)
    columns: dict[str, list] = {key: [] for key in ("observations", "actions", "rewards", "next_observations",
                                                    "terminals", "timeouts", "infos/qpos", "infos/qvel")}
    try:
        while len(columns["rewards"]) < size:
            policy = kind.behaviour(rng)
            obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
            done = False
            while not done and len(columns["rewards"]) < size:
                if kind.record_state:
                    columns["infos/qpos"].append(env.unwrapped.data.qpos.copy())
                    columns["infos/qvel"].append(env.unwrapped.data.qvel.copy())
                action = _clip_action(env, policy(obs))
                next_obs, reward, terminated, truncated, _ = env.step(action)
                cut = len(columns["rewards"]) + 1 == size  # the dataset ends inside this episode
                for key, value in (("observations", obs), ("actions", action), ("rewards", reward),
                                   ("next_observations", next_obs), ("terminals", terminated),
                                   ("timeouts", (truncated or cut) and not terminated)):
                    columns[key].append(value)
                obs, done = next_obs, terminated or truncated
    finally:
        env.close()
    rows = {
        "observations": np.asarray(columns["observations"], dtype=np.float32),
        "actions": np.asarray(columns["actions"], dtype=np.float32),
        "rewards": np.asarray(columns["rewards"], dtype=np.float32),
        "next_observations": np.asarray(columns["next_observations"], dtype=np.float32),
        "terminals": np.asarray(columns["terminals"], dtype=bool),
        "timeouts": np.asarray(columns["timeouts"], dtype=bool),
    }
    if kind.record_state:
        rows["infos/qpos"] = np.asarray(columns["infos/qpos"], dtype=np.float64)
        rows["infos/qvel"] = np.asarray(columns["infos/qvel"], dtype=np.float64)
    return rows


def make_dataset(kind_name: str, out: str | Path, seed: int = 0, size: int | None = None) -> Path:
    """Generate ``kind_name`` with ``seed`` and write it to ``out`` in D4RL format; return the path."""
    kind = get_kind(kind_name)
    size = kind.default_size if size is None else size
    if size < 2:
        raise ConfigError(f"dataset size {size} is too small: expected at least 2 rows")
    if Path(out).is_dir():
        raise DatasetError(f"{out} is a directory; expected the path of the HDF5 file to write")
    rows = rollout_rows(kind, size, seed)
    metadata = {"generator": f"erdiff.data.generate:{kind.name}", "generator_version": GENERATOR_VERSION,
                "erdiff_version": erdiff.__version__, "seed": seed, "size": size, "env_id": kind.env_id}
    return write_d4rl_hdf5(out, rows, metadata)


def policy_returns(kind: DatasetKind, policy: Policy, episodes: int, seed: int = 0) -> np.ndarray:
    """Returns of ``policy`` over ``episodes`` episodes reset with seeds ``seed, seed+1, ...``."""
    env = make_gym_env(kind.env_id)
    returns = np.zeros(episodes)
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            done = False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(_clip_action(env, policy(obs)))
                returns[episode] += reward
                done = terminated or truncated
    finally:
        env.close()
    return returns


def reference_returns(kind_name: str, episodes: int = 100) -> tuple[float, float]:
    """(mean return of uniform random actions, mean return of the noise-free controller).

    This is how the local tasks' ``ref_min`` / ``ref_max`` in :mod:`erdiff.envs.scores` were measured
    (reset seeds 0 .. episodes-1; the random actions come from ``numpy.random.default_rng(0)``).
    """
    kind = get_kind(kind_name)
    rng = np.random.default_rng(0)
    env = make_gym_env(kind.env_id)
    low, high = env.action_space.low, env.action_space.high
    env.close()
    random_policy = lambda obs: rng.uniform(low, high)  # noqa: E731
    return (float(policy_returns(kind, random_policy, episodes).mean()),
            float(policy_returns(kind, kind.expert, episodes).mean()))
