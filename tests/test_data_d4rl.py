"""D4RL HDF5 reader, validation and qlearning_dataset, on small files written here with h5py.

The golden tests spell out the expected transitions by hand (from d4rl.qlearning_dataset's rules), so a
change in which rows are kept or how they are paired fails them.
"""

from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest

from erdiff.data import DatasetError, qlearning_dataset, read_d4rl_hdf5
from erdiff.errors import ErdiffError


def write_h5(path, arrays: dict, attrs: dict | None = None):
    """A D4RL-style file: one dataset per key ("infos/qpos" creates the group), optional root attributes."""
    with h5py.File(path, "w") as handle:
        for key, value in arrays.items():
            handle.create_dataset(key, data=value)
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value
    return path


def steps(n: int) -> dict:
    """n rows whose values encode the row index: obs [i, 10+i], action [i/10], reward i."""
    index = np.arange(n, dtype=np.float64)
    return {
        "observations": np.stack([index, 10 + index], axis=1),
        "actions": (index / 10)[:, None],
        "rewards": index.copy(),
        "terminals": np.zeros(n, dtype=bool),
    }


def assert_transitions(out: dict, obs, next_obs, rewards, terminals):
    assert set(out) == {"observations", "actions", "next_observations", "rewards", "terminals"}
    for key in out:
        assert out[key].dtype == np.float32, key
    np.testing.assert_array_equal(out["observations"], np.array(obs, dtype=np.float32))
    np.testing.assert_array_equal(out["next_observations"], np.array(next_obs, dtype=np.float32))
    # steps() stores action i/10 in row i, and row i's observation starts with i.
    expected_actions = np.array(obs, dtype=np.float64)[:, :1] / 10
    np.testing.assert_array_equal(out["actions"], expected_actions.astype(np.float32))
    np.testing.assert_array_equal(out["rewards"], np.array(rewards, dtype=np.float32))
    np.testing.assert_array_equal(out["terminals"], np.array(terminals, dtype=np.float32))


@pytest.fixture
def timeouts_file(tmp_path):
    """8 rows: episode A = rows 0-2 ending in a terminal (mid-episode, before any time limit),
    episode B = rows 3-5 ending in a timeout, episode C = rows 6-7 cut by the end of the file.
    The stored next_observations are garbage (-1): d4rl ignores them and so must we."""
    data = steps(8)
    data["terminals"][2] = True
    data["timeouts"] = np.zeros(8, dtype=bool)
    data["timeouts"][5] = True
    data["next_observations"] = -np.ones((8, 2))
    data["infos/qpos"] = np.arange(24, dtype=np.float32).reshape(8, 3)
    data["metadata/algorithm"] = "SAC"
    data["metadata/iteration"] = np.int64(7)
    return write_h5(tmp_path / "timeouts.hdf5", data, attrs={"env_name": "toy-v0"})


def test_golden_terminal_mid_episode_and_timeout(timeouts_file):
    out = qlearning_dataset(read_d4rl_hdf5(timeouts_file))
    # Rows 0..6 are candidates (row 7 has no successor); row 5 is a timeout and is dropped.
    # Row 2 is terminal: its next observation is row 3, the first of episode B, masked by terminal=1.
    assert_transitions(
        out,
        obs=[[0, 10], [1, 11], [2, 12], [3, 13], [4, 14], [6, 16]],
        next_obs=[[1, 11], [2, 12], [3, 13], [4, 14], [5, 15], [7, 17]],
        rewards=[0, 1, 2, 3, 4, 6],
        terminals=[0, 0, 1, 0, 0, 0],
    )


def test_golden_terminate_on_end_keeps_timeout_rows_without_terminal(timeouts_file):
    out = qlearning_dataset(read_d4rl_hdf5(timeouts_file), terminate_on_end=True)
    # Row 5 is kept; d4rl leaves its terminal flag as stored (0) despite the option's name.
    assert_transitions(
        out,
        obs=[[0, 10], [1, 11], [2, 12], [3, 13], [4, 14], [5, 15], [6, 16]],
        next_obs=[[1, 11], [2, 12], [3, 13], [4, 14], [5, 15], [6, 16], [7, 17]],
        rewards=[0, 1, 2, 3, 4, 5, 6],
        terminals=[0, 0, 1, 0, 0, 0, 0],
    )


def test_golden_legacy_file_without_timeouts(tmp_path):
    """No timeouts key, max_episode_steps=3: d4rl's step counter decides the final rows.

    Rows: episode A = 0-1 (terminal at 1), B = 2-4, C = 5-7, D = 8-9. Counter before each row:
    row 0:0, 1:1 (terminal: reset and count itself -> 1), 2:1, 3:2 = limit-1 -> dropped, reset to 0,
    4:0, 5:1, 6:2 -> dropped, 7:0, 8:1. So d4rl drops rows 3 and 6 (not 4 and 7, B's and C's true last
    rows): row 4 pairs B's last observation with C's first. We reproduce that quirk on purpose.
    """
    data = steps(10)
    data["terminals"][1] = True
    out = qlearning_dataset(read_d4rl_hdf5(write_h5(tmp_path / "legacy.hdf5", data)), max_episode_steps=3)
    assert_transitions(
        out,
        obs=[[0, 10], [1, 11], [2, 12], [4, 14], [5, 15], [7, 17], [8, 18]],
        next_obs=[[1, 11], [2, 12], [3, 13], [5, 15], [6, 16], [8, 18], [9, 19]],
        rewards=[0, 1, 2, 4, 5, 7, 8],
        terminals=[0, 1, 0, 0, 0, 0, 0],
    )


def test_golden_legacy_file_default_limit_is_1000(tmp_path):
    # 1002 rows, no terminals: row 999 is the 1000th step of the first episode and is dropped.
    raw = read_d4rl_hdf5(write_h5(tmp_path / "legacy.hdf5", steps(1002)))
    out = qlearning_dataset(raw)
    assert len(out["rewards"]) == 1000
    np.testing.assert_array_equal(out["rewards"][998:], np.array([998, 1000], dtype=np.float32))
    np.testing.assert_array_equal(out["next_observations"][999], np.array([1001, 1011], dtype=np.float32))


def test_reader_returns_every_key_with_infos_and_metadata(timeouts_file):
    raw = read_d4rl_hdf5(timeouts_file)
    assert set(raw) == {"observations", "actions", "rewards", "terminals", "timeouts", "next_observations",
                        "infos/qpos", "metadata/algorithm", "metadata/iteration", "env_name"}
    np.testing.assert_array_equal(raw["infos/qpos"][2], [6, 7, 8])
    np.testing.assert_array_equal(raw["next_observations"], -np.ones((8, 2)))
    assert raw["metadata/algorithm"] == "SAC"
    assert raw["metadata/iteration"] == 7
    assert raw["env_name"] == "toy-v0"


def test_reader_reads_group_attributes_and_flattens_column_rewards(tmp_path):
    data = steps(4)
    data["rewards"] = data["rewards"][:, None]
    path = write_h5(tmp_path / "cols.hdf5", data)
    with h5py.File(path, "a") as handle:
        handle.create_group("metadata").attrs["policy"] = "random"
    raw = read_d4rl_hdf5(path)
    assert raw["metadata/policy"] == "random"
    assert raw["rewards"].shape == (4,)


def test_use_d4rl_package_without_d4rl_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "d4rl", None)  # makes `import d4rl` raise ImportError
    raw = read_d4rl_hdf5(write_h5(tmp_path / "ok.hdf5", steps(4)))
    with pytest.raises(DatasetError, match="needs the d4rl package"):
        qlearning_dataset(raw, use_d4rl_package=True)


def test_no_transitions_left_is_an_error(tmp_path):
    data = steps(2)
    data["timeouts"] = np.array([True, False])
    raw = read_d4rl_hdf5(write_h5(tmp_path / "short.hdf5", data))
    with pytest.raises(DatasetError, match="no transitions left"):
        qlearning_dataset(raw)


# --- validation: one clear DatasetError per problem, naming the file and the key ---------------------

def _broken(**changes):
    data = steps(5)
    data["timeouts"] = np.zeros(5, dtype=bool)
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    return data


NAN_REWARDS = np.array([0.0, 1.0, np.nan, 2.0, np.nan])
INF_OBS = np.array([[0, 0], [0, 0], [0, 0], [np.inf, 0], [0, 0]])
NAN_ACTIONS = np.array([[0.0], [np.nan], [0.0], [0.0], [0.0]])
STRING_REWARDS = np.array([b"a", b"b", b"c", b"d", b"e"])
HALF_TERMINAL = np.array([0.0, 0.5, 0.0, 0.0, 1.0])


@pytest.mark.parametrize("changes, message", [
    ({"rewards": None}, "missing key 'rewards'"),
    ({"terminals": None}, "missing key 'terminals'"),
    ({"actions": np.zeros((4, 1))}, "key 'actions' has 4 rows but 'observations' has 5"),
    ({"timeouts": np.zeros(6, dtype=bool)}, "key 'timeouts' has 6 rows"),
    ({"infos/qpos": np.zeros((3, 2))}, "key 'infos/qpos' has 3 rows"),
    ({"next_observations": np.zeros((5, 3))}, "key 'next_observations' has shape \\(5, 3\\)"),
    ({"observations": np.arange(5.0)}, "key 'observations' has shape \\(5,\\); expected \\(N, dim\\)"),
    ({"rewards": NAN_REWARDS}, "key 'rewards' holds NaN or inf in 2 row\\(s\\) \\(first: row 2\\)"),
    ({"observations": INF_OBS}, "key 'observations' holds NaN or inf in 1 row\\(s\\) \\(first: row 3"),
    ({"actions": NAN_ACTIONS}, "key 'actions' holds NaN or inf in 1 row\\(s\\) \\(first: row 1"),
    ({"rewards": STRING_REWARDS}, "key 'rewards' holds \\|S1; expected an array of numbers"),
    ({"terminals": HALF_TERMINAL}, "key 'terminals' holds the value 0.5; expected only 0/1"),
])
def test_invalid_file_is_one_clear_error(tmp_path, changes, message):
    path = write_h5(tmp_path / "bad.hdf5", _broken(**changes))
    with pytest.raises(DatasetError, match=message) as info:
        read_d4rl_hdf5(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ErdiffError)


def test_empty_dataset(tmp_path):
    data = {"observations": np.zeros((0, 2)), "actions": np.zeros((0, 1)), "rewards": np.zeros(0),
            "terminals": np.zeros(0, dtype=bool)}
    with pytest.raises(DatasetError, match="the dataset is empty"):
        read_d4rl_hdf5(write_h5(tmp_path / "empty.hdf5", data))


def test_scalar_where_an_array_is_expected(tmp_path):
    with pytest.raises(DatasetError, match="key 'terminals' holds int64"):
        read_d4rl_hdf5(write_h5(tmp_path / "scalar.hdf5", _broken(terminals=np.int64(0))))


@pytest.mark.parametrize("kwargs, message", [
    ({"expected_obs_dim": 3}, "key 'observations' has size 2 per step; expected 3"),
    ({"expected_act_dim": 6}, "key 'actions' has size 1 per step; expected 6"),
])
def test_dimension_mismatch_with_the_task(tmp_path, kwargs, message):
    path = write_h5(tmp_path / "dims.hdf5", steps(5))
    with pytest.raises(DatasetError, match=message):
        read_d4rl_hdf5(path, **kwargs)
    assert read_d4rl_hdf5(path, expected_obs_dim=2, expected_act_dim=1)["observations"].shape == (5, 2)


def test_missing_file_and_non_hdf5_file(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        read_d4rl_hdf5(tmp_path / "absent.hdf5")
    not_hdf5 = tmp_path / "text.hdf5"
    not_hdf5.write_text("observations,actions\n")
    with pytest.raises(DatasetError, match="cannot be read as an HDF5 file"):
        read_d4rl_hdf5(not_hdf5)


def test_qlearning_dataset_validates_a_dict_too():
    data = steps(5)
    del data["actions"]
    with pytest.raises(DatasetError, match="dataset: missing key 'actions'"):
        qlearning_dataset(data)
