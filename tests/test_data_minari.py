"""Minari datasets built here with minari.create_dataset_from_buffers (real envs, a tmp
MINARI_DATASETS_PATH), read back as transitions and checked against the buffers."""

from __future__ import annotations

import sys

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")
minari = pytest.importorskip("minari")
gymnasium_robotics = pytest.importorskip("gymnasium_robotics")
from gymnasium import spaces  # noqa: E402
from minari.data_collector.episode_buffer import EpisodeBuffer  # noqa: E402

from erdiff.data import (  # noqa: E402
    D4RL_ANTMAZE_OBS_KEYS,
    DatasetError,
    DatasetUnavailableError,
    flatten_observations,
    load_minari_transitions,
    recover_eval_env,
)

gym.register_envs(gymnasium_robotics)
pytestmark = pytest.mark.filterwarnings("ignore:`.*` is set to None:UserWarning")


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def buffer(episode_id, observations, actions, rewards, terminations, truncations):
    return EpisodeBuffer(id=episode_id, observations=observations,
                         actions=np.array(actions, dtype=np.float32), rewards=list(rewards),
                         terminations=list(terminations), truncations=list(truncations), infos={})


def test_pendulum_transitions_match_the_buffers():
    # Episode 0: 3 steps ending in a termination; episode 1: 2 steps ending in a truncation.
    obs0 = np.array([[0.0, 0.0, 0.0], [0.1, -0.1, 1.0], [0.2, -0.2, 2.0], [0.3, -0.3, 3.0]], dtype=np.float32)
    obs1 = np.array([[0.9, 0.8, 5.0], [0.9, 0.8, 6.0], [0.9, 0.8, 7.0]], dtype=np.float32)
    minari.create_dataset_from_buffers(
        "test/pendulum/tiny-v0",
        [buffer(0, obs0, [[0.5], [-0.5], [1.0]], [-1.0, -2.0, -3.0], [False, False, True], [False] * 3),
         buffer(1, obs1, [[0.25], [0.75]], [-4.0, -5.0], [False, False], [False, True])],
        env=gym.make("Pendulum-v1"), data_format="hdf5")

    out = load_minari_transitions("test/pendulum/tiny-v0")
    # Every step is kept (5 = 3 + 2); the truncated last step keeps its true next observation.
    expected = {
        "observations": [[0.0, 0.0, 0.0], [0.1, -0.1, 1.0], [0.2, -0.2, 2.0], [0.9, 0.8, 5.0], [0.9, 0.8, 6.0]],
        "next_observations": [[0.1, -0.1, 1.0], [0.2, -0.2, 2.0], [0.3, -0.3, 3.0], [0.9, 0.8, 6.0],
                              [0.9, 0.8, 7.0]],
        "actions": [[0.5], [-0.5], [1.0], [0.25], [0.75]],
        "rewards": [-1.0, -2.0, -3.0, -4.0, -5.0],
        "terminals": [0.0, 0.0, 1.0, 0.0, 0.0],
    }
    assert set(out) == set(expected)
    for key, values in expected.items():
        assert out[key].dtype == np.float32, key
        np.testing.assert_array_equal(out[key], np.array(values, dtype=np.float32), err_msg=key)


def rollout(env, episode_id, seed, steps_limit):
    """One real PointMaze episode as an EpisodeBuffer, plus its dict observations (T+1 of them)."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
    for _ in range(steps_limit):
        action = env.action_space.sample()
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        terminations.append(terminated)
        truncations.append(truncated)
        if terminated or truncated:
            break
    stacked = {key: np.array([o[key] for o in observations]) for key in observations[0]}
    return buffer(episode_id, stacked, actions, rewards, terminations, truncations), observations


@pytest.fixture
def pointmaze_dataset():
    env = gym.make("PointMaze_UMaze-v3", max_episode_steps=4)
    first, first_obs = rollout(env, episode_id=0, seed=1, steps_limit=10)
    second, second_obs = rollout(env, episode_id=1, seed=2, steps_limit=10)
    eval_env = gym.make("PointMaze_UMaze-v3", max_episode_steps=7)
    minari.create_dataset_from_buffers("test/pointmaze/tiny-v0", [first, second], env=env, eval_env=eval_env,
                                       data_format="hdf5")
    return env.observation_space, [first_obs, second_obs]


def test_dict_observations_flatten_in_gymnasium_order(pointmaze_dataset):
    space, episodes = pointmaze_dataset
    out = load_minari_transitions("test/pointmaze/tiny-v0")
    assert [len(obs) for obs in episodes] == [5, 5]  # 4 steps each, cut by the time limit
    flat = [[spaces.flatten(space, o) for o in obs] for obs in episodes]
    np.testing.assert_allclose(out["observations"], np.concatenate([f[:-1] for f in flat]), rtol=1e-6)
    np.testing.assert_allclose(out["next_observations"], np.concatenate([f[1:] for f in flat]), rtol=1e-6)
    assert out["observations"].shape == (8, 8)  # achieved_goal 2 + desired_goal 2 + observation 4
    np.testing.assert_array_equal(out["terminals"], np.zeros(8, dtype=np.float32))


def test_obs_keys_choose_and_order_the_parts(pointmaze_dataset):
    _, episodes = pointmaze_dataset
    out = load_minari_transitions("test/pointmaze/tiny-v0", obs_keys=D4RL_ANTMAZE_OBS_KEYS)
    first_obs = episodes[0][0]
    expected = np.concatenate([first_obs["achieved_goal"], first_obs["observation"]]).astype(np.float32)
    np.testing.assert_array_equal(out["observations"][0], expected)
    assert out["observations"].shape == (8, 6)
    with pytest.raises(DatasetError, match="observation key 'goal' not found; the observations have "
                                           "achieved_goal, desired_goal, observation"):
        load_minari_transitions("test/pointmaze/tiny-v0", obs_keys=["goal"])


def test_recover_eval_env_returns_the_dataset_eval_env(pointmaze_dataset):
    env = recover_eval_env("test/pointmaze/tiny-v0")
    try:
        assert env.spec.id == "PointMaze_UMaze-v3"
        assert env.spec.max_episode_steps == 7  # the eval env, not the collecting env (4)
        obs, _ = env.reset(seed=0)
        assert flatten_observations({k: v[None] for k, v in obs.items()}).shape == (1, 8)
    finally:
        env.close()


def test_flatten_nested_dicts_like_gymnasium():
    # Kitchen-style nesting: goals are dicts per task.
    space = spaces.Dict({"observation": spaces.Box(-1, 1, (3,)),
                         "desired_goal": spaces.Dict({"kettle": spaces.Box(-1, 1, (2,)),
                                                      "microwave": spaces.Box(-1, 1, (1,))})})
    batch = [space.sample() for _ in range(4)]
    stacked = {"observation": np.stack([b["observation"] for b in batch]),
               "desired_goal": {key: np.stack([b["desired_goal"][key] for b in batch])
                                for key in ("microwave", "kettle")}}
    np.testing.assert_array_equal(flatten_observations(stacked),
                                  np.stack([spaces.flatten(space, b) for b in batch]).astype(np.float32))
    by_group = flatten_observations(stacked, obs_keys=["observation", "desired_goal"])
    np.testing.assert_array_equal(by_group[:, :3], stacked["observation"])
    np.testing.assert_array_equal(by_group[:, 3:5], stacked["desired_goal"]["kettle"])
    np.testing.assert_array_equal(flatten_observations(stacked, obs_keys=["desired_goal/microwave"]),
                                  stacked["desired_goal"]["microwave"])


def test_missing_dataset_names_the_minari_folder(minari_root):
    with pytest.raises(DatasetUnavailableError) as info:
        load_minari_transitions("D4RL/antmaze/umaze-v1")
    message = str(info.value)
    assert str(minari_root / "D4RL/antmaze/umaze-v1") in message
    assert "MINARI_DATASETS_PATH" in message and "minari download D4RL/antmaze/umaze-v1" in message


def test_without_minari_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)  # makes `import minari` raise ImportError
    with pytest.raises(DatasetError, match="needs the minari package: pip install 'erdiff\\[minari\\]'"):
        load_minari_transitions("D4RL/antmaze/umaze-v1")
