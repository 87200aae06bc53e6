"""The D4RL-compatible AntMaze env, checked against D4RL's maze geometry and episode rules."""

import numpy as np
import pytest

from erdiff.envs.antmaze import CELL_SIZE, LAYOUTS, MAX_TORQUE
from erdiff.envs.make import make_gym_env
from erdiff.tasks import get_task, make_evaluator

# D4RL: goal = G cell corner + U(0, 1) + U(0, 0.5) per coordinate, cells 4 wide, start cell (1, 1) at the origin.
GOAL_CORNERS = {"UMaze": (0.0, 8.0), "Medium": (20.0, 20.0), "Large": (32.0, 24.0)}


def make(maze: str):
    env = make_gym_env(f"erdiff/AntMazeD4RL-{maze}-v0")
    return env, env.unwrapped


@pytest.mark.parametrize("maze", list(LAYOUTS))
def test_walls_sit_where_d4rl_puts_them(maze):
    _, inner = make(maze)
    model = inner.ant.model
    blocks = [i for i in range(model.ngeom) if model.geom(i).name.startswith("block")]
    centres = {tuple(np.round(model.geom_pos[i][:2] - inner.world_offset, 6)) for i in blocks}
    expected = {(CELL_SIZE * (j - 1), CELL_SIZE * (i - 1))
                for i, row in enumerate(LAYOUTS[maze]) for j, cell in enumerate(row) if cell == "#"}
    assert centres == expected
    assert all(np.allclose(model.geom_size[i][:2], CELL_SIZE / 2) for i in blocks)


@pytest.mark.parametrize("maze", list(LAYOUTS))
def test_goal_is_drawn_like_d4rl_in_the_goal_cell(maze):
    env, inner = make(maze)
    corner = np.array(GOAL_CORNERS[maze])
    goals = np.array([env.reset(seed=seed)[1]["goal"] for seed in range(40)])
    assert (goals >= corner).all() and (goals <= corner + 1.5).all()
    assert goals.std(axis=0).min() > 0.1  # a new goal every episode
    row, column = int(corner[1] / CELL_SIZE) + 1, int(corner[0] / CELL_SIZE) + 1
    assert LAYOUTS[maze][row][column] == "G"


def test_observation_is_d4rl_qpos_and_qvel_in_the_maze_frame():
    env, inner = make("UMaze")
    obs, _ = env.reset(seed=3)
    assert obs.shape == (29,)
    assert np.abs(obs[:2]).max() <= 0.1 and abs(obs[2] - 0.75) <= 0.1  # start at the origin, torso height
    np.testing.assert_allclose(obs[:2], inner.ant.data.qpos[:2] - inner.world_offset)
    np.testing.assert_allclose(obs[2:15], inner.ant.data.qpos[2:15])
    np.testing.assert_allclose(obs[15:], inner.ant.data.qvel[:14])


def test_d4rl_ant_dynamics_parameters():
    env, inner = make("Medium")
    env.reset(seed=0)
    env.step(np.ones(8, np.float32))
    data, model = inner.ant.data, inner.ant.model
    np.testing.assert_allclose(data.ctrl, MAX_TORQUE)
    np.testing.assert_allclose(data.actuator_force, MAX_TORQUE)  # motor gear 1
    assert model.opt.timestep == 0.02 and inner.ant.dt == pytest.approx(0.1)
    np.testing.assert_allclose(model.geom_solimp[:, :3], np.tile([0.8, 0.8, 0.01], (model.ngeom, 1)))


def test_episode_ends_on_success_with_return_one():
    env, inner = make("UMaze")
    env.reset(seed=0)
    qpos, qvel = inner.ant.data.qpos.copy(), inner.ant.data.qvel.copy()
    qpos[:2] = inner.goal + inner.world_offset + [0.3, 0.0]
    inner.ant.set_state(qpos, qvel)
    obs, reward, terminated, truncated, info = env.step(np.zeros(8, np.float32))
    assert np.linalg.norm(obs[:2] - inner.goal) <= 0.5
    assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True)


def test_standing_still_times_out_after_700_steps_with_return_zero():
    task = get_task("antmaze-umaze-v0")
    lengths = []

    def still(observations):
        lengths.append(len(observations))
        return np.zeros((len(observations), 8))

    with make_evaluator(task.name, episodes=2, seed=0) as evaluator:
        result = evaluator(still)
    assert len(lengths) == task.max_episode_steps == 700
    assert result["episode_returns"] == [0.0, 0.0] and result["normalized_score_mean"] == 0.0
