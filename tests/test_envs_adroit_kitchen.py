"""D4RL-compatible Adroit pen and Franka kitchen environments (real Gymnasium-Robotics simulations)."""

import numpy as np
import pytest

from erdiff.envs.adroit import PEN_DROP_HEIGHT
from erdiff.envs.make import make_gym_env

KITCHEN_COMPLETE = "erdiff/KitchenD4RL-MicrowaveKettleLightSlider-v0"
KITCHEN_MIXED = "erdiff/KitchenD4RL-MicrowaveKettleBottomBurnerLight-v0"


def pen_height(env) -> float:
    pen = env.unwrapped
    return float(pen.data.xpos[pen.obj_body_id][2])


def test_pen_reward_is_d4rl_dense_reward():
    env = make_gym_env("erdiff/PenD4RL-v1")
    env.reset(seed=0)
    _, reward, *_ = env.step(np.zeros(24, np.float32))
    pen = env.unwrapped
    position = pen.data.xpos[pen.obj_body_id]
    distance = np.linalg.norm(position - pen.data.site_xpos[pen.eps_ball_site_id])
    pen_axis = (pen.data.site_xpos[pen.obj_t_site_id] - pen.data.site_xpos[pen.obj_b_site_id]) / pen.pen_length
    target_axis = (pen.data.site_xpos[pen.tar_t_site_id] - pen.data.site_xpos[pen.tar_b_site_id]) / pen.tar_length
    similarity = float(pen_axis @ target_axis)
    bonus = 10.0 * (distance < 0.075 and similarity > 0.9) + 50.0 * (distance < 0.075 and similarity > 0.95)
    assert reward == pytest.approx(-distance + similarity + bonus)


def test_pen_episode_ends_when_the_pen_drops_or_after_100_steps():
    env = make_gym_env("erdiff/PenD4RL-v1")
    rng = np.random.default_rng(0)
    lengths = []
    for seed in range(4):
        env.reset(seed=seed)
        steps, terminated, truncated = 0, False, False
        while not (terminated or truncated):
            _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 24).astype(np.float32))
            steps += 1
            assert terminated == (pen_height(env) < PEN_DROP_HEIGHT)
        lengths.append(steps)
        assert terminated or steps == 100
    assert min(lengths) < 100  # random hands drop the pen


def test_kitchen_observation_has_d4rl_layout():
    env = make_gym_env(KITCHEN_COMPLETE)
    obs, _ = env.reset(seed=0)
    qpos = env.unwrapped.data.qpos
    assert obs.shape == (60,)
    assert np.abs(obs[:9] - qpos[:9]).max() <= 0.01 + 1e-9  # robot joints, noise amplitude 0.1 x 0.1
    assert np.abs(obs[9:30] - qpos[9:30]).max() <= 0.01 + 1e-9  # object joints
    goal = obs[30:]
    assert goal[22] == -0.75 and goal[19] == 0.37  # microwave, slide cabinet
    np.testing.assert_allclose(goal[17:19], [-0.69, -0.05])  # light switch
    np.testing.assert_allclose(goal[23:30], [-0.23, 0.75, 1.62, 0.99, 0.0, 0.0, -0.06])  # kettle
    assert not goal[:17].any() and goal[20:22].tolist() == [0.0, 0.0]
    mixed, _ = make_gym_env(KITCHEN_MIXED).reset(seed=0)
    np.testing.assert_allclose(mixed[30 + 11:30 + 13], [-0.88, -0.01])  # bottom burner
    assert mixed[30 + 19] == 0.0  # no slide cabinet in kitchen-mixed


def set_objects(env, values: dict[int, float]) -> None:
    kitchen = env.unwrapped
    qpos = kitchen.data.qpos.copy()
    for index, value in values.items():
        qpos[index] = value
    kitchen.robot_env.set_state(qpos, np.zeros_like(kitchen.data.qvel))


def test_kitchen_rewards_each_completed_task_once_and_ends_after_all_four():
    env = make_gym_env(KITCHEN_COMPLETE)
    env.reset(seed=0)
    set_objects(env, {22: -0.75})  # open the microwave
    still = np.zeros(9)
    _, reward, terminated, *_ = env.step(still)
    assert (reward, terminated) == (1.0, False)
    _, reward, terminated, *_ = env.step(still)
    assert (reward, terminated) == (0.0, False)  # a completed task is removed
    set_objects(env, {17: -0.69, 18: -0.05, 19: 0.37, **dict(zip(range(23, 30),
                                                                 [-0.23, 0.75, 1.62, 0.99, 0.0, 0.0, -0.06]))})
    _, reward, terminated, *_ = env.step(still)
    assert (reward, terminated) == (3.0, True)
