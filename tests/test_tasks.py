"""Task registry and task datasets: names, environments, local generation, D4RL files."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from erdiff.config import ConfigError
from erdiff.data.d4rl import DatasetError, read_d4rl_hdf5
from erdiff.data.download import dataset_url
from erdiff.data.generate import make_dataset
from erdiff.envs import toy
from erdiff.envs.make import make_gym_env
from erdiff.presets import LOCAL_TASKS, PRESETS
from erdiff.tasks import DATA_DIR_ENV, TASKS, get_task, list_tasks, load_task_dataset

REPO = Path(__file__).resolve().parents[1]


def test_registry_has_exactly_the_preset_tasks():
    assert set(list_tasks()) == set(PRESETS)
    assert list_tasks()[-len(LOCAL_TASKS):] == LOCAL_TASKS


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown task 'hopper-medium-v9'; known tasks: .*hopper-medium-v2"):
        get_task("hopper-medium-v9")


def test_fields_of_some_tasks():
    hopper = get_task("hopper-medium-replay-v2")
    assert (hopper.domain, hopper.env_id, hopper.obs_dim, hopper.act_dim) == ("gym", "Hopper-v4", 11, 3)
    assert (hopper.ref_min, hopper.ref_max, hopper.max_action) == (-20.272305, 3234.3, 1.0)
    assert get_task("antmaze-umaze-v0").max_episode_steps == 700
    assert get_task("antmaze-large-play-v2").max_episode_steps == 1000
    assert get_task("pendulum-medium").max_action == 2.0
    assert get_task("kitchen-partial-v0").env_id == get_task("kitchen-complete-v0").env_id  # D4RL's registry
    assert "BottomBurner" in get_task("kitchen-mixed-v0").env_id
    assert {task.domain for task in TASKS.values()} == {"gym", "antmaze", "adroit", "kitchen", "maze2d", "local"}
    with pytest.raises(AttributeError):
        hopper.env_id = "Hopper-v5"  # frozen


def assert_task_matches_env(name: str) -> None:
    """The task's sizes, action bound and horizon are those of its evaluation environment."""
    task = get_task(name)
    env = make_gym_env(task.env_id)
    assert env.observation_space.shape == (task.obs_dim,)
    assert env.action_space.shape == (task.act_dim,)
    assert np.all(env.action_space.high == task.max_action) and np.all(env.action_space.low == -task.max_action)
    # The toy env ends itself after its two steps (a termination, so no time limit is registered).
    horizon = toy.HORIZON if name == "toy" else env.spec.max_episode_steps
    assert horizon == task.max_episode_steps
    env.close()


ONE_TASK_PER_ENV = sorted({task.env_id: name for name, task in TASKS.items()}.values())


@pytest.mark.parametrize("name", ONE_TASK_PER_ENV)
def test_task_fields_match_the_environment(name):
    assert_task_matches_env(name)


def test_tasks_sharing_an_environment_agree_on_it():
    for env_id in {task.env_id for task in TASKS.values()}:
        sharing = {(t.obs_dim, t.act_dim, t.max_action, t.max_episode_steps)
                   for t in TASKS.values() if t.env_id == env_id}
        assert len(sharing) == 1, env_id


def test_local_dataset_is_generated_once_then_read(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    first = load_task_dataset("toy")
    assert "generating the toy dataset" in capsys.readouterr().err
    assert (tmp_path / "toy.hdf5").is_file()
    again = load_task_dataset("toy")
    assert capsys.readouterr().err == ""
    for key in ("observations", "actions", "next_observations", "rewards", "terminals"):
        assert again[key].dtype == np.float32
        np.testing.assert_array_equal(first[key], again[key])
    # 10,000 rows, all terminal-ended episodes: every row but the last becomes a transition (as in d4rl).
    assert first["observations"].shape == (9_999, 1) and first["rewards"].shape == (9_999,)


def test_parallel_runs_generate_the_local_dataset_once(tmp_path):
    env = {**os.environ, DATA_DIR_ENV: str(tmp_path), "PYTHONPATH": str(REPO)}
    code = "from erdiff.tasks import load_task_dataset; print(len(load_task_dataset('pendulum-medium')['rewards']))"
    workers = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0]
    assert sum("generating the pendulum-medium dataset" in err for _, err in outputs) == 1
    assert len({out for out, _ in outputs}) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        "pendulum-medium.hdf5", "pendulum-medium.hdf5.sha256"]


def test_path_overrides_the_task_dataset(tmp_path):
    path = make_dataset("pendulum-medium-replay", tmp_path / "replay.hdf5", seed=5, size=400)
    transitions = load_task_dataset("pendulum-medium", path)
    raw = read_d4rl_hdf5(path)
    np.testing.assert_array_equal(transitions["actions"], raw["actions"][:-1][~raw["timeouts"][:-1]])


def test_a_file_of_another_task_is_a_clear_error(tmp_path):
    path = make_dataset("toy", tmp_path / "toy.hdf5", size=20)
    with pytest.raises(DatasetError, match="key 'observations' has size 1 per step; expected 3 for this task"):
        load_task_dataset("pendulum-medium", path)


def test_d4rl_task_reads_the_file_from_the_d4rl_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    cached = tmp_path / dataset_url("hopper-medium-v2").rsplit("/", 1)[1]
    make_dataset("hopper-noisy", cached, seed=0, size=300)
    transitions = load_task_dataset("hopper-medium-v2")
    assert transitions["observations"].shape[1] == 11
    assert len(transitions["rewards"]) == 300 - 1 - int(read_d4rl_hdf5(cached)["timeouts"][:-1].sum())
