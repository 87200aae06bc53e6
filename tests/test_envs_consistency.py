"""Replaying a dataset from its recorded MuJoCo states (the `erdiff dataset check` core)."""

import h5py
import numpy as np
import pytest

from erdiff.config import ConfigError
from erdiff.data.d4rl import DatasetError, read_d4rl_hdf5
from erdiff.data.generate import make_dataset
from erdiff.data.write import write_d4rl_hdf5
from erdiff.envs.consistency import check_dataset
from erdiff.envs.make import make_gym_env


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


def antmaze_rows(steps: int, seed: int) -> dict:
    """D4RL AntMaze rows recorded from our env: qpos/qvel in D4RL's frame, the goal, sparse rewards."""
    env = make_gym_env("erdiff/AntMazeD4RL-UMaze-v0")
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    rows = {key: [] for key in ("observations", "actions", "rewards", "terminals", "timeouts", "infos/qpos",
                                "infos/qvel", "infos/goal")}
    for step in range(steps):
        action = rng.uniform(-1, 1, 8).astype(np.float32)
        for key, value in (("observations", obs), ("actions", action), ("infos/qpos", obs[:15]),
                           ("infos/qvel", obs[15:]), ("infos/goal", info["goal"])):
            rows[key].append(value)
        obs, reward, _, _, info = env.step(action)
        rows["rewards"].append(reward)
        rows["terminals"].append(False)
        rows["timeouts"].append(step == steps - 1)
    return {key: np.asarray(value) for key, value in rows.items()}


def test_antmaze_rows_replay_in_our_d4rl_antmaze(tmp_path):
    rows = antmaze_rows(200, seed=0)
    path = write_d4rl_hdf5(tmp_path / "antmaze.hdf5", rows, {})
    report = check_dataset(path, "antmaze-umaze-v2")
    assert report.rows == 200 and report.next_observation_rows == 199
    assert report.observation_max_error < 1e-6 and report.next_observation_max_error < 1e-6
    assert report.reward_max_error == 0.0 and report.terminal_mismatches is None
    assert "terminal flag mismatches: not compared" in report.describe()
    # The reward is computed against each row's recorded goal: a goal under the ant's next position pays 1.
    rows["infos/goal"][50] = rows["observations"][51][:2]
    moved_goal = check_dataset(write_d4rl_hdf5(tmp_path / "goal.hdf5", rows, {}), "antmaze-umaze-v2")
    assert moved_goal.reward_max_error == 1.0 and moved_goal.rows_over_tolerance == 1


def test_unsupported_task_is_a_clear_error(hopper_file):
    with pytest.raises(ConfigError, match="task 'pen-human-v1' uses erdiff/PenD4RL-v1"):
        check_dataset(hopper_file, "pen-human-v1")
