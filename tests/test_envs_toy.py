"""The two-step toy task (our reconstruction of the paper's Figure 1)."""

import numpy as np
import pytest

from erdiff.envs import toy
from erdiff.envs.make import make_gym_env
from erdiff.envs.scores import LOCAL_REF_SCORES


def run_episode(env, actions):
    env.reset(seed=0)
    trace = []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(np.array([action], dtype=np.float32))
        trace.append((float(obs[0]), reward, terminated, truncated))
    return trace


def test_two_additive_steps_then_termination():
    env = make_gym_env("erdiff/TwoStepToy-v0")
    obs, _ = env.reset(seed=3)
    assert obs.shape == (1,) and obs.dtype == np.float32 and obs[0] == 0.0
    trace = run_episode(env, [0.75, 0.5])
    assert [state for state, *_ in trace] == [0.75, 1.25]
    assert [terminated for *_, terminated, _ in trace] == [False, True]
    assert not any(truncated for *_, truncated in trace)


def test_actions_are_clipped_to_the_unit_interval():
    env = make_gym_env("erdiff/TwoStepToy-v0")
    assert [state for state, *_ in run_episode(env, [3.0, -5.0])] == [1.0, 0.0]


def test_reward_has_a_broad_low_peak_and_a_narrow_high_peak():
    low_peak, high_peak = toy.reward(-1.0), toy.reward(1.5)
    assert low_peak == pytest.approx(1.0, abs=1e-5) and high_peak == pytest.approx(2.5, abs=1e-5)
    # Narrow: 0.3 away from the high peak loses most of it; broad: the low peak keeps most of its value.
    assert toy.reward(1.2) < 0.5 * high_peak
    assert toy.reward(-1.3) > 0.8 * low_peak


def test_optimal_plan_beats_the_low_plan():
    env = make_gym_env("erdiff/TwoStepToy-v0")
    optimal = sum(reward for _, reward, *_ in run_episode(env, [1.0, 0.5]))
    low = sum(reward for _, reward, *_ in run_episode(env, [-1.0, 0.0]))
    assert optimal == pytest.approx(2.6102, abs=1e-4)
    assert low == pytest.approx(2.0, abs=1e-3)


def test_reference_returns_are_the_table_values():
    random_return, optimal_return = toy.reference_returns()
    assert (round(random_return, 4), round(optimal_return, 4)) == LOCAL_REF_SCORES["toy"]
