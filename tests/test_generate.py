"""Dataset generators: real rollouts, D4RL layout, exact round trip through the reader."""

import h5py
import numpy as np
import pytest

from erdiff.config import ConfigError
from erdiff.data.d4rl import DatasetError, qlearning_dataset, read_d4rl_hdf5
from erdiff.data.generate import GENERATOR_VERSION, KINDS, make_dataset, reference_returns
from erdiff.data.write import write_d4rl_hdf5
from erdiff.envs.scores import LOCAL_REF_SCORES
from erdiff.presets import LOCAL_TASKS

SMALL = {"toy": 400, "pendulum-medium": 700, "pendulum-medium-replay": 700, "mountaincar-sparse": 2500,
         "hopper-noisy": 1500}


def test_every_local_task_has_a_generator_of_the_same_name():
    assert list(KINDS) == LOCAL_TASKS


@pytest.mark.parametrize("kind", LOCAL_TASKS)
def test_generated_file_round_trips_through_reader_and_qlearning(kind, tmp_path):
    path = make_dataset(kind, tmp_path / f"{kind}.hdf5", seed=3, size=SMALL[kind])
    raw = read_d4rl_hdf5(path)
    size = SMALL[kind]
    assert len(raw["observations"]) == size
    assert raw["metadata/generator"] == f"erdiff.data.generate:{kind}"
    assert raw["metadata/generator_version"] == GENERATOR_VERSION
    assert raw["metadata/seed"] == 3
    # The rows chain: inside an episode the next observation is the next row's observation.
    inside = ~(raw["terminals"] | raw["timeouts"])[:-1]
    np.testing.assert_array_equal(raw["next_observations"][:-1][inside], raw["observations"][1:][inside])
    assert not (raw["terminals"] & raw["timeouts"]).any()
    assert raw["terminals"][-1] or raw["timeouts"][-1]  # the last row always ends its episode
    transitions = qlearning_dataset(raw)
    kept = ~raw["timeouts"][:-1]
    assert len(transitions["rewards"]) == kept.sum()
    np.testing.assert_array_equal(transitions["rewards"], raw["rewards"][:-1][kept])
    assert all(value.dtype == np.float32 for value in transitions.values())


def test_same_seed_same_file_different_seed_different_file(tmp_path):
    first = read_d4rl_hdf5(make_dataset("pendulum-medium", tmp_path / "a.hdf5", seed=1, size=500))
    again = read_d4rl_hdf5(make_dataset("pendulum-medium", tmp_path / "b.hdf5", seed=1, size=500))
    other = read_d4rl_hdf5(make_dataset("pendulum-medium", tmp_path / "c.hdf5", seed=2, size=500))
    for key in ("observations", "actions", "rewards"):
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["actions"], other["actions"])


def test_time_limits_are_timeouts_and_falls_are_terminals(tmp_path):
    pendulum = read_d4rl_hdf5(make_dataset("pendulum-medium", tmp_path / "p.hdf5", size=600))
    assert not pendulum["terminals"].any()
    assert np.flatnonzero(pendulum["timeouts"]).tolist() == [199, 399, 599]
    hopper = read_d4rl_hdf5(make_dataset("hopper-noisy", tmp_path / "h.hdf5", size=3000))
    falls = np.flatnonzero(hopper["terminals"])
    assert len(falls) > 0
    # A fall is an unhealthy next state of Hopper-v4: height below 0.7 or torso angle outside 0.2.
    next_states = hopper["next_observations"][falls]
    assert ((next_states[:, 0] <= 0.7) | (np.abs(next_states[:, 1]) >= 0.2)).all()
    assert hopper["infos/qpos"].shape == (3000, 6) and hopper["infos/qvel"].shape == (3000, 6)


def test_toy_data_are_unbalanced_toward_the_low_peak(tmp_path):
    raw = read_d4rl_hdf5(make_dataset("toy", tmp_path / "toy.hdf5", size=4000))
    final_states = raw["next_observations"][raw["terminals"], 0]
    assert len(final_states) == 2000
    near_low = np.mean(final_states < 0.0)
    assert 0.85 < near_low < 0.95


def test_mountaincar_has_few_successful_episodes(tmp_path):
    raw = read_d4rl_hdf5(make_dataset("mountaincar-sparse", tmp_path / "m.hdf5", seed=0))
    episodes = int(raw["terminals"].sum() + raw["timeouts"].sum())
    successes = int(raw["terminals"].sum())
    assert 0 < successes < 0.25 * episodes
    assert (raw["rewards"][raw["terminals"]] > 90).all()  # the +100 goal bonus


@pytest.mark.parametrize("kind", ["pendulum-medium", "mountaincar-sparse"])
def test_measured_references_are_the_table_values(kind):
    random_return, controller_return = reference_returns(kind)
    assert (round(random_return, 1), round(controller_return, 1)) == LOCAL_REF_SCORES[kind]


def test_bad_requests_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset kind 'cartpole'; known kinds: toy"):
        make_dataset("cartpole", tmp_path / "x.hdf5")
    with pytest.raises(ConfigError, match="dataset size 1 is too small"):
        make_dataset("toy", tmp_path / "x.hdf5", size=1)
    with pytest.raises(DatasetError, match="is a directory"):
        make_dataset("toy", tmp_path, size=10)


def test_writer_makes_groups_and_leaves_no_temporary_file(tmp_path):
    path = write_d4rl_hdf5(tmp_path / "d.hdf5", {"observations": np.zeros((4, 2)), "infos/qpos": np.ones((4, 3))},
                           {"generator": "test", "seed": 5})
    with h5py.File(path) as handle:
        assert isinstance(handle["infos"], h5py.Group) and handle["infos/qpos"].shape == (4, 3)
        assert handle["metadata/generator"][()] == b"test" and handle["metadata/seed"][()] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.hdf5", "d.hdf5.sha256"]
