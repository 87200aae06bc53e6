"""Reference returns and the normalized score: 100 * (R - ref_min) / (ref_max - ref_min).

``D4RL_REF_SCORES`` holds D4RL's published reference returns (the ``REF_MIN_SCORE`` and
``REF_MAX_SCORE`` tables of D4RL's ``d4rl/infos.py``). As in D4RL, every dataset of one Gym-MuJoCo environment
(v0, v1, v2) shares the pair of its ``-random-v0`` entry, and the Adroit v1 datasets share the v0 pair.

``LOCAL_REF_SCORES`` holds the references of the tasks this project generates itself; how each pair was
measured is written next to it (the generators live in :mod:`erdiff.data.generate`).
"""

from __future__ import annotations

import numpy as np

from erdiff.config import ConfigError

_LOCOMOTION_DATASETS = ("random", "medium", "expert", "medium-replay", "full-replay", "medium-expert")
_LOCOMOTION_REFS = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}
_ADROIT_REFS = {
    "pen": (96.262799, 3076.8331017826877),
    "hammer": (-274.856578, 12794.134825156867),
    "door": (-56.512833, 2880.5693087298737),
    "relocate": (-6.425911, 4233.877797728884),
}
_ANTMAZE_DATASETS = ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse")


def _d4rl_table() -> dict[str, tuple[float, float]]:
    table: dict[str, tuple[float, float]] = {}
    for env, refs in _LOCOMOTION_REFS.items():
        for dataset in _LOCOMOTION_DATASETS:
            for version in ("v0", "v1", "v2"):
                table[f"{env}-{dataset}-{version}"] = refs
    for maze in _ANTMAZE_DATASETS:
        for version in ("v0", "v2"):
            table[f"antmaze-{maze}-{version}"] = (0.0, 1.0)
    for env, refs in _ADROIT_REFS.items():
        for dataset in ("human", "cloned", "expert"):
            table[f"{env}-{dataset}-v1"] = refs
    for dataset in ("human", "cloned", "expert"):
        table[f"pen-{dataset}-v0"] = _ADROIT_REFS["pen"]
    for dataset in ("complete", "partial", "mixed"):
        table[f"kitchen-{dataset}-v0"] = (0.0, 4.0)
    table.update({
        "maze2d-open-v0": (0.01, 20.66),
        "maze2d-umaze-v1": (23.85, 161.86),
        "maze2d-medium-v1": (13.13, 277.39),
        "maze2d-large-v1": (6.7, 273.99),
        "maze2d-open-dense-v0": (11.17817, 27.166538620695782),
        "maze2d-umaze-dense-v1": (68.537689, 193.66285642381482),
        "maze2d-medium-dense-v1": (44.264742, 297.4552547777125),
        "maze2d-large-dense-v1": (30.569041, 303.4857382709002),
    })
    return table


D4RL_REF_SCORES = _d4rl_table()
"""D4RL dataset name -> (REF_MIN_SCORE, REF_MAX_SCORE)."""

LOCAL_REF_SCORES: dict[str, tuple[float, float]] = {
    # Exact: the expected return of uniform random actions and the optimal return of our toy reward,
    # both from erdiff.envs.toy.reference_returns().
    "toy": (0.7863, 2.6102),
    # Measured by erdiff.data.generate.reference_returns(kind): mean return over 100 episodes (reset seeds
    # 0..99) of uniform random actions (ref_min) and of the noise-free controller the behaviour policy is
    # built on (ref_max). Pendulum-v1 (200 steps): energy-shaping swing-up + PD stabiliser.
    "pendulum-medium": (-1207.6, -144.8),
    "pendulum-medium-replay": (-1207.6, -144.8),
    # MountainCarContinuous-v0 (999 steps): full throttle along the velocity (reaches the goal every time).
    "mountaincar-sparse": (-33.3, 89.4),
    # Hopper-v4 is the Gymnasium port of D4RL's hopper: D4RL's references keep scores comparable with the
    # paper's hopper numbers (our standing controller scores about 31, uniform random actions about 1).
    "hopper-noisy": _LOCOMOTION_REFS["hopper"],
}
"""Local task name -> (random-policy return, expert-ish return)."""

REF_SCORES = {**D4RL_REF_SCORES, **LOCAL_REF_SCORES}


def reference_scores(task: str) -> tuple[float, float]:
    """(ref_min, ref_max) of ``task``; a clear error if the task has none."""
    if task not in REF_SCORES:
        raise ConfigError(f"no reference scores for task {task!r}; tasks with references: "
                          + ", ".join(sorted(REF_SCORES)))
    return REF_SCORES[task]


def normalize(returns: float | np.ndarray, ref_min: float, ref_max: float) -> float | np.ndarray:
    """100 * (returns - ref_min) / (ref_max - ref_min): a float for a scalar, an array for an array."""
    scores = 100.0 * (np.asarray(returns, dtype=np.float64) - ref_min) / (ref_max - ref_min)
    return float(scores) if scores.ndim == 0 else scores


def normalized_score(task: str, returns: float | np.ndarray) -> float | np.ndarray:
    """D4RL's normalized score on the 0-100 scale of ``task``, for one return or an array of returns."""
    return normalize(returns, *reference_scores(task))
