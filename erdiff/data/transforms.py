"""Reward transforms applied to a transition dataset before training (``train.reward_tune``, docs/method.md §14).

The official code (``utils/data_sampler.py``) uses ``cql_antmaze`` for AntMaze, ``normalize`` for Adroit
and ``no`` elsewhere; ``iql_antmaze`` and ``iql_locomotion`` are the IQL paper's choices, kept for
comparisons.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from erdiff.config import ConfigError
from erdiff.data.d4rl import DatasetError

REWARD_TRANSFORMS = ("no", "cql_antmaze", "normalize", "iql_antmaze", "iql_locomotion")

EPISODE_BREAK_TOLERANCE = 1e-6
"""IQL's test for an episode boundary: ``‖observations[i+1] - next_observations[i]‖ > 1e-6``."""


def transform_rewards(dataset: dict[str, Any], kind: str) -> dict[str, Any]:
    """A new dict equal to ``dataset`` except for its rewards, transformed by ``kind`` (float32).

    ``dataset`` is a transition dict as returned by :func:`erdiff.data.qlearning_dataset`; it is not
    modified (the other arrays are shared with the result, not copied).

    * ``no``: unchanged.
    * ``cql_antmaze``: ``(r - 0.5) * 4``, sparse {0, 1} becomes {-2, +2}.
    * ``normalize``: ``(r - mean) / std`` over all transitions; the std is the sample std (ddof=1),
      because the official code computes it with ``torch.Tensor.std``.
    * ``iql_antmaze``: ``r - 1``.
    * ``iql_locomotion``: ``r * 1000 / (max episode return - min episode return)``, see
      :func:`episode_returns` for where episodes begin and end.
    """
    if kind not in REWARD_TRANSFORMS:
        raise ConfigError(f"unknown reward transform {kind!r}; "
                          f"expected one of {', '.join(REWARD_TRANSFORMS)}")
    rewards = np.asarray(dataset["rewards"], dtype=np.float64)
    if kind == "no":
        new_rewards = rewards
    elif kind == "cql_antmaze":
        new_rewards = (rewards - 0.5) * 4.0
    elif kind == "iql_antmaze":
        new_rewards = rewards - 1.0
    elif kind == "normalize":
        std = rewards.std(ddof=1) if len(rewards) > 1 else 0.0
        if not std > 0:
            raise DatasetError(f"reward transform 'normalize' needs rewards that vary; all {len(rewards)} "
                               f"rewards equal {rewards[0]}")
        new_rewards = (rewards - rewards.mean()) / std
    else:
        returns = episode_returns(dataset)
        spread = returns.max() - returns.min()
        if not spread > 0:
            raise DatasetError(f"reward transform 'iql_locomotion' needs episodes with different returns; "
                               f"all {len(returns)} episodes return {returns[0]}")
        new_rewards = rewards * (1000.0 / spread)
    return {**dataset, "rewards": new_rewards.astype(np.float32)}


def episode_returns(dataset: dict[str, Any]) -> np.ndarray:
    """The return of every episode in a transition dict, in order, as IQL splits them.

    An episode ends at a transition that is terminal or whose next observation is not the following
    transition's observation (the latter marks timeouts, which ``qlearning_dataset`` removes), and at
    the last transition. This is IQL's ``dones_float`` rule (``dataset_utils.py``). The official ERDiff
    code's unused ``iql_normalize`` differs: it splits at terminals only and ignores the episode after the
    last terminal; we follow IQL, whose numbers the option is meant to reproduce.
    """
    observations, next_observations = dataset["observations"], dataset["next_observations"]
    jumps = np.linalg.norm(observations[1:] - next_observations[:-1], axis=1) > EPISODE_BREAK_TOLERANCE
    ends = np.append(jumps | np.asarray(dataset["terminals"][:-1], dtype=bool), True)
    starts = np.concatenate(([0], np.flatnonzero(ends)[:-1] + 1))
    return np.add.reduceat(np.asarray(dataset["rewards"], dtype=np.float64), starts)
