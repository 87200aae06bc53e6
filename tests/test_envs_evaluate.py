"""Batched evaluation: reproducible, equal to sequential episodes, one policy call per step."""

import numpy as np
import pytest

from erdiff.data.generate import hopper_stand_controller, pendulum_controller
from erdiff.envs.evaluate import SEED_OFFSET
from erdiff.envs.make import make_gym_env
from erdiff.envs.scores import normalized_score
from erdiff.tasks import make_evaluator


def wobbly_hopper_policy(observations: np.ndarray) -> np.ndarray:
    """A deterministic policy whose episodes end at different times (some fall, some stand)."""
    stand = np.stack([hopper_stand_controller(obs) for obs in observations])
    return stand + 0.9 * np.sin(40.0 * observations[:, :3])


def sequential_returns(env_id: str, policy, seeds: list[int]) -> list[float]:
    env = make_gym_env(env_id)
    returns = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            action = np.clip(policy(obs[None].astype(np.float32))[0], env.action_space.low, env.action_space.high)
            obs, reward, terminated, truncated, _ = env.step(action.astype(np.float32))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return returns


def test_batched_episodes_equal_sequential_episodes():
    with make_evaluator("hopper-noisy", episodes=5, seed=7) as evaluator:
        batched = evaluator(wobbly_hopper_policy)["episode_returns"]
    seeds = [7 + SEED_OFFSET + i for i in range(5)]
    assert batched == pytest.approx(sequential_returns("Hopper-v4", wobbly_hopper_policy, seeds), abs=1e-9)
    assert len(set(np.round(batched, 6))) == 5


def test_one_batched_call_per_step_for_the_running_episodes():
    batch_sizes = []

    def recording_policy(observations):
        assert observations.dtype == np.float32 and observations.shape[1] == 11
        batch_sizes.append(len(observations))
        return wobbly_hopper_policy(observations)

    with make_evaluator("hopper-noisy", episodes=5, seed=7) as evaluator:
        evaluator(recording_policy)
    assert batch_sizes[0] == 5
    assert batch_sizes == sorted(batch_sizes, reverse=True)  # finished episodes leave the batch
    assert batch_sizes[-1] >= 1 and len(set(batch_sizes)) > 1


def test_same_seed_same_result_and_repeated_calls_replay_the_same_episodes():
    def policy(observations):
        return np.stack([pendulum_controller(obs) for obs in observations])

    first = make_evaluator("pendulum-medium", episodes=4, seed=3)
    second = make_evaluator("pendulum-medium", episodes=4, seed=3)
    other = make_evaluator("pendulum-medium", episodes=4, seed=4)
    result = first(policy)
    assert result == second(policy) == first(policy)
    assert result["episode_returns"] != other(policy)["episode_returns"]
    for evaluator in (first, second, other):
        evaluator.close()


def test_summary_statistics_and_normalized_scores():
    with make_evaluator("pendulum-medium", episodes=3, seed=0) as evaluator:
        result = evaluator(lambda obs: np.zeros((len(obs), 1)))
    returns = np.array(result["episode_returns"])
    assert result["return_mean"] == pytest.approx(returns.mean())
    assert result["return_std"] == pytest.approx(returns.std())
    scores = normalized_score("pendulum-medium", returns)
    assert result["normalized_score_mean"] == pytest.approx(scores.mean())
    assert result["normalized_score_std"] == pytest.approx(scores.std())


def test_actions_are_clipped_to_the_action_space():
    # Pendulum's torque bound is 2: a policy asking for 50 must score exactly like one asking for 2.
    with make_evaluator("pendulum-medium", episodes=2, seed=0) as evaluator:
        huge = evaluator(lambda obs: np.full((len(obs), 1), 50.0))
        bounded = evaluator(lambda obs: np.full((len(obs), 1), 2.0))
    assert huge["episode_returns"] == bounded["episode_returns"]


def test_bad_policy_output_is_a_clear_error():
    with make_evaluator("toy", episodes=3, seed=0) as evaluator:
        with pytest.raises(ValueError, match=r"actions of shape \(3,\) for 3 observations; expected \(3, 1\)"):
            evaluator(lambda obs: np.zeros(len(obs)))
        with pytest.raises(ValueError, match="NaN or infinite actions"):
            evaluator(lambda obs: np.full((len(obs), 1), np.nan))


def test_no_episodes_means_no_evaluator():
    assert make_evaluator("toy", episodes=0, seed=0) is None


def test_running_episodes_in_groups_gives_the_same_returns():
    from erdiff.envs.evaluate import Evaluator
    from erdiff.tasks import get_task

    task = get_task("hopper-noisy")
    with Evaluator(task, episodes=5, seed=2) as together, Evaluator(task, episodes=5, seed=2, max_envs=2) as grouped:
        assert len(grouped.envs) == 2
        assert grouped(wobbly_hopper_policy) == together(wobbly_hopper_policy)
