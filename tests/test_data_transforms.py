"""Reward transforms, checked against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from erdiff.config import ConfigError
from erdiff.data import DatasetError, episode_returns, qlearning_dataset, transform_rewards


def transitions(rewards, terminals=None, breaks=()):
    """A transition dict whose observations chain (next_observations[i] == observations[i+1]) except
    after the rows listed in ``breaks``, which end an episode without a terminal (a timeout)."""
    n = len(rewards)
    observations = np.arange(n, dtype=np.float32)[:, None]
    next_observations = observations + 1
    for row in breaks:
        next_observations[row] = -7.0
    return {
        "observations": observations,
        "actions": np.zeros((n, 1), dtype=np.float32),
        "next_observations": next_observations,
        "rewards": np.array(rewards, dtype=np.float32),
        "terminals": np.array(terminals if terminals is not None else [0] * n, dtype=np.float32),
    }


@pytest.mark.parametrize("kind, rewards, expected", [
    ("no", [0.0, 1.0, 0.5], [0.0, 1.0, 0.5]),
    ("cql_antmaze", [0.0, 1.0, 0.0, 1.0], [-2.0, 2.0, -2.0, 2.0]),
    ("iql_antmaze", [0.0, 1.0, 0.25], [-1.0, 0.0, -0.75]),
    # mean 2.5, sample std sqrt(5/3) = 1.2909944
    ("normalize", [1.0, 2.0, 3.0, 4.0], [-1.1618950, -0.3872983, 0.3872983, 1.1618950]),
])
def test_elementwise_transforms(kind, rewards, expected):
    dataset = transitions(rewards)
    out = transform_rewards(dataset, kind)
    np.testing.assert_allclose(out["rewards"], expected, rtol=1e-6)
    assert out["rewards"].dtype == np.float32
    assert out is not dataset
    np.testing.assert_array_equal(dataset["rewards"], np.array(rewards, dtype=np.float32))  # not mutated
    assert out["observations"] is dataset["observations"]


def test_iql_locomotion_splits_on_terminals_and_observation_jumps():
    # Episodes: rows 0-1 (terminal at 1), rows 2-4 (ends by a jump after row 4), row 5 (end of data).
    # Returns 3, 10 and 0.5: spread 9.5, scale 1000 / 9.5 = 105.263158.
    dataset = transitions([1.0, 2.0, 3.0, 3.0, 4.0, 0.5], terminals=[0, 1, 0, 0, 0, 0], breaks=[4])
    np.testing.assert_allclose(episode_returns(dataset), [3.0, 10.0, 0.5])
    out = transform_rewards(dataset, "iql_locomotion")
    np.testing.assert_allclose(out["rewards"], [105.263158, 210.526316, 315.789474, 315.789474,
                                                421.052632, 52.631579], rtol=1e-6)
    np.testing.assert_array_equal(dataset["rewards"], [1.0, 2.0, 3.0, 3.0, 4.0, 0.5])


def test_iql_locomotion_on_qlearning_output_finds_dropped_timeouts():
    # Raw rows 0-2 end in a terminal, rows 3-5 in a timeout (row 5 is dropped), rows 6-7 follow.
    # Transitions keep raw rows 0,1,2,3,4,6 with rewards 0,1,2,3,4,6; episodes [0,1,2], [3,4], [6]
    # have returns 3, 7, 6: spread 4, so every reward is multiplied by 250.
    index = np.arange(8, dtype=np.float64)
    raw = {"observations": index[:, None], "actions": np.zeros((8, 1)), "rewards": index.copy(),
           "terminals": index == 2, "timeouts": index == 5}
    out = transform_rewards(qlearning_dataset(raw), "iql_locomotion")
    np.testing.assert_array_equal(out["rewards"], [0.0, 250.0, 500.0, 750.0, 1000.0, 1500.0])


def test_unknown_kind_and_degenerate_rewards_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown reward transform 'scale'; expected one of no, cql"):
        transform_rewards(transitions([1.0, 2.0]), "scale")
    with pytest.raises(DatasetError, match="'normalize' needs rewards that vary; all 3 rewards equal 1.0"):
        transform_rewards(transitions([1.0, 1.0, 1.0]), "normalize")
    with pytest.raises(DatasetError, match="'iql_locomotion' needs episodes with different returns"):
        transform_rewards(transitions([1.0, 2.0, 3.0]), "iql_locomotion")
