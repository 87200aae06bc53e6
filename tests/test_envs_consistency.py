"""Replaying a dataset from its recorded MuJoCo states (the `erdiff dataset check` core)."""

import h5py
import pytest

from erdiff.config import ConfigError
from erdiff.data.d4rl import DatasetError, read_d4rl_hdf5
from erdiff.data.generate import make_dataset
from erdiff.data.write import write_d4rl_hdf5
from erdiff.envs.consistency import check_dataset


@pytest.fixture(scope="module")
def hopper_file(tmp_path_factory):
    return make_dataset("hopper-noisy", tmp_path_factory.mktemp("data") / "hopper.hdf5", seed=1, size=1500)


def test_generated_hopper_data_match_the_simulator(hopper_file):
    report = check_dataset(hopper_file, "hopper-noisy")
    assert report.rows == 1500 and report.next_observation_rows == 1500
    assert report.observation_max_error < 1e-6
    assert report.reward_max_error < 1e-6
    assert report.next_observation_max_error < 1e-6
    assert report.terminal_mismatches == 0 and report.rows_over_tolerance == 0


def test_corrupted_rows_are_found(hopper_file, tmp_path):
    raw = read_d4rl_hdf5(hopper_file)
    data = {key: value for key, value in raw.items() if not key.startswith("metadata/")}
    data["rewards"] = data["rewards"].copy()
    data["rewards"][10] += 0.5
    data["actions"] = data["actions"].copy()
    data["actions"][20] = -data["actions"][20]
    path = write_d4rl_hdf5(tmp_path / "corrupt.hdf5", data, {})
    report = check_dataset(path, "hopper-noisy")
    assert report.reward_max_error == pytest.approx(0.5, abs=1e-5)
    assert report.rows_over_tolerance == 2


def test_without_next_observations_the_next_row_is_used_inside_episodes(hopper_file, tmp_path):
    raw = read_d4rl_hdf5(hopper_file)
    data = {key: value for key, value in raw.items()
            if not key.startswith("metadata/") and key != "next_observations"}
    path = write_d4rl_hdf5(tmp_path / "no-next.hdf5", data, {})
    report = check_dataset(path, "hopper-noisy", limit=800)
    episode_ends = int((raw["terminals"][:800] | raw["timeouts"][:800]).sum())
    assert report.rows == 800 and report.next_observation_rows == 800 - episode_ends
    assert report.next_observation_max_error < 1e-6


def test_states_of_the_wrong_size_are_a_clear_error(hopper_file, tmp_path):
    path = tmp_path / "short-qpos.hdf5"
    raw = read_d4rl_hdf5(hopper_file)
    with h5py.File(path, "w") as handle:
        for key in ("observations", "actions", "rewards", "terminals", "timeouts", "infos/qvel"):
            handle[key] = raw[key]
        handle["infos/qpos"] = raw["infos/qpos"][:, :5]
    with pytest.raises(DatasetError, match=r"key 'infos/qpos' has shape \(1500, 5\); expected \(N, 6\) for Hopper-v4"):
        check_dataset(path, "hopper-noisy")
    with pytest.raises(ConfigError, match="--limit 0 is invalid"):
        check_dataset(hopper_file, "hopper-noisy", limit=0)
