"""`erdiff train` end to end on every locally generated dataset kind and on a Minari dataset built here."""

import gymnasium as gym
import numpy as np
import pytest

from erdiff import results
from erdiff.cli import main
from erdiff.presets import LOCAL_TASKS

TINY = ["--agent.num_critics", "2", "--agent.hidden_dim", "16", "--agent.eval_candidates", "4",
        "--train.batch_size", "32", "--train.epochs", "2", "--train.steps_per_epoch", "3", "--train.eval_every", "2",
        "--train.eval_episodes", "2", "--quiet"]


@pytest.fixture(autouse=True)
def isolated_data(tmp_path, monkeypatch):
    monkeypatch.setenv("ERDIFF_DATA_DIR", str(tmp_path / "datasets"))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))


def assert_completed_with_scores(run_dir):
    summary = results.read_summary(run_dir)
    assert summary["status"] == "completed" and summary["step"] == 6
    record = results.read_metrics(run_dir)[-1]
    assert len(record["episode_returns"]) == 2
    assert np.isfinite(record["normalized_score_mean"])


@pytest.mark.parametrize("task", LOCAL_TASKS)
def test_train_on_each_generated_kind(task, tmp_path):
    assert main(["train", "--task", task, "--out", str(tmp_path / "run"), *TINY]) == 0
    assert (tmp_path / "datasets" / f"{task}.hdf5").is_file()
    assert_completed_with_scores(tmp_path / "run")


def make_minari_dataset(dataset_id: str, env_id: str, episodes: int = 3, steps: int = 40) -> None:
    """Random-action rollouts of a real environment stored with minari.create_dataset_from_buffers."""
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    env = gym.make(env_id, max_episode_steps=steps)
    env.action_space.seed(0)
    buffers = []
    for episode in range(episodes):
        observation, _ = env.reset(seed=episode)
        observations, actions, rewards, terminations, truncations = [observation], [], [], [], []
        done = False
        while not done:
            action = env.action_space.sample()
            observation, reward, terminated, truncated, _ = env.step(action)
            observations.append(observation)
            actions.append(action)
            rewards.append(float(reward))
            terminations.append(terminated)
            truncations.append(truncated)
            done = terminated or truncated
        buffers.append(EpisodeBuffer(id=episode, observations=np.array(observations), actions=np.array(actions),
                                     rewards=rewards, terminations=terminations, truncations=truncations, infos={}))
    minari.create_dataset_from_buffers(dataset_id, buffers, env=env, data_format="hdf5")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_train_on_a_minari_dataset(tmp_path, capsys):
    make_minari_dataset("local/pendulum/random-v0", "Pendulum-v1")
    out = tmp_path / "run"
    assert main(["train", "--task", "pendulum-medium", "--train.dataset", "minari:local/pendulum/random-v0",
                 "--out", str(out), *TINY]) == 0
    assert_completed_with_scores(out)
    # A dataset whose sizes do not fit the task is one clear error.
    make_minari_dataset("local/mountaincar/random-v0", "MountainCarContinuous-v0")
    assert main(["train", "--task", "pendulum-medium", "--train.dataset", "minari:local/mountaincar/random-v0",
                 "--out", str(tmp_path / "other"), *TINY]) == 2
    assert "task pendulum-medium expects (3, 1)" in capsys.readouterr().err
