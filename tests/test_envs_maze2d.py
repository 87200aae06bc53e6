"""D4RL maze2d frame, resets and reward on Gymnasium-Robotics' PointMaze, checked from the maze geometry."""

import numpy as np
import pytest

from erdiff.envs.make import make_gym_env
from erdiff.envs.maze2d import BODY_OFFSET, LAYOUTS


def make(maze: str):
    env = make_gym_env(f"erdiff/Maze2dD4RL-{maze}-v1")
    return env, env.unwrapped


@pytest.mark.parametrize("maze", list(LAYOUTS))
def test_walls_sit_where_d4rl_puts_them(maze):
    env, inner = make(maze)
    model = inner.point.model
    walls = {tuple(np.round(inner.to_d4rl(model.geom_pos[i][:2]) + BODY_OFFSET, 6))
             for i in range(model.ngeom) if model.geom(i).name.startswith("block")}
    expected = {(r + 1.0, c + 1.0) for r, row in enumerate(LAYOUTS[maze]) for c, cell in enumerate(row) if cell == "#"}
    assert walls == expected


def test_frames_round_trip():
    _, inner = make("Medium")
    position = np.array([2.3, 4.7])
    np.testing.assert_allclose(inner.to_d4rl(inner.to_world(position)), position)


def test_resets_start_in_open_cells_with_small_noise():
    env, inner = make("UMaze")
    open_cells = {(r, c) for r, row in enumerate(LAYOUTS["UMaze"]) for c, cell in enumerate(row) if cell != "#"}
    starts = set()
    for seed in range(60):
        obs, _ = env.reset(seed=seed)
        cell = tuple(np.round(obs[:2]).astype(int))
        assert cell in open_cells and np.abs(obs[:2] - cell).max() <= 0.1
        assert np.abs(obs[2:]).max() < 0.5
        starts.add(cell)
    assert starts == open_cells  # every open cell, the goal cell included
    np.testing.assert_array_equal(inner.goal, [1.0, 1.0])  # the G cell


def place(inner, position, velocity=(0.0, 0.0)):
    inner.point.set_state(inner.to_world(np.asarray(position, float)), np.array([velocity[1], -velocity[0]]))


def test_actions_move_along_d4rl_axes_and_walls_block():
    env, inner = make("UMaze")
    env.reset(seed=0)
    place(inner, (3.0, 1.0))  # bottom-left open cell; a wall above it (row 2) and left of it (column 0)
    for _ in range(30):
        obs, *_ = env.step(np.array([0.0, 1.0], np.float32))  # +y: along the bottom corridor
    assert obs[1] > 1.5 and abs(obs[0] - 3.0) < 0.05
    place(inner, (3.0, 1.0))
    for _ in range(100):
        obs, *_ = env.step(np.array([-1.0, 0.0], np.float32))  # -x: into the wall of row 2
    # The wall of row 2 ends at world x = 3.5 (D4RL frame), the point's radius is 0.1 and its body offset 1.2.
    assert obs[0] == pytest.approx(3.5 + 0.1 - BODY_OFFSET, abs=0.03)


def test_sparse_reward_near_the_goal_and_no_termination():
    env, inner = make("UMaze")
    env.reset(seed=0)
    place(inner, inner.goal + [0.2, 0.2])
    _, reward, terminated, truncated, _ = env.step(np.zeros(2, np.float32))
    assert (reward, terminated, truncated) == (1.0, False, False)
    place(inner, (3.0, 3.0))
    _, reward, terminated, _, _ = env.step(np.zeros(2, np.float32))
    assert (reward, terminated) == (0.0, False)
