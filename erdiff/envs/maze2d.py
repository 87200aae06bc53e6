"""D4RL's maze2d tasks on Gymnasium-Robotics' PointMaze (registered as ``erdiff/Maze2dD4RL-<Size>-v1``).

D4RL's maze2d (``d4rl/pointmaze/maze_model.py``) puts the wall of layout cell (row r, column c) at world
(r + 1, c + 1) and the point mass's body at (1.2, 1.2), so its observation ``[qpos (2), qvel (2)]`` has
position ``world - 1.2``: about (r, c) inside cell (r, c). Gymnasium-Robotics builds the same walls with
cell (r, c) centred at (c + 0.5 - W/2, H/2 - r - 0.5). The two frames differ by a rotation of 90 degrees
and a shift (no mirror image), under which the point mass's dynamics are identical (same model: Euler,
dt 0.01, gear 100, velocity clipped to 5 per axis). This module converts positions, velocities and
actions between the frames, so observations and actions are D4RL's.

Episode rules as D4RL's ``maze2d-<size>-v1``: reset in a uniformly drawn open cell (the goal cell
included) at (r, c) + U(-0.1, 0.1) with velocity N(0, 0.1^2); the goal is the layout's G cell, fixed;
reward 1 at every step within 0.5 of the goal, else 0; no termination (300 / 600 / 800 steps).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

LAYOUTS = {  # D4RL's maze2d layouts: '#' wall, 'O' open, 'G' goal
    "UMaze": ("#####",
              "#GOO#",
              "###O#",
              "#OOO#",
              "#####"),
    "Medium": ("########",
               "#OO##OO#",
               "#OO#OOO#",
               "##OOO###",
               "#OO#OOO#",
               "#O#OO#O#",
               "#OOO#OG#",
               "########"),
    "Large": ("############",
              "#OOOO#OOOOO#",
              "#O##O#O#O#O#",
              "#OOOOOO#OOO#",
              "#O####O###O#",
              "#OO#O#OOOOO#",
              "##O#O#O#O###",
              "#OO#OOO#OGO#",
              "############"),
}
BODY_OFFSET = 1.2
"""D4RL's point-mass body sits at world (1.2, 1.2); observed positions are relative to it."""
GOAL_RADIUS = 0.5


class D4RLMaze2dEnv(gym.Env):
    """A point mass in one of D4RL's maze2d layouts, with D4RL's frame, resets, goal and sparse reward."""

    metadata = {"render_modes": []}

    def __init__(self, maze: str) -> None:
        from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv

        layout = LAYOUTS[maze]
        self._height, self._width = len(layout), len(layout[0])
        walls = [[1 if cell == "#" else 0 for cell in row] for row in layout]
        # Gymnasium-Robotics builds the walls and the point-mass model; resets and rewards are ours.
        self._maze = PointMazeEnv(maze_map=walls, continuing_task=True)
        self.point = self._maze.point_env
        open_cells = sorted((r, c) for r, row in enumerate(layout) for c, cell in enumerate(row) if cell == "O")
        goal_cells = [(r, c) for r, row in enumerate(layout) for c, cell in enumerate(row) if cell == "G"]
        self.reset_cells = np.array(open_cells + goal_cells, dtype=np.float64)
        self.goal = np.array(goal_cells[0], dtype=np.float64)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def to_world(self, position: np.ndarray) -> np.ndarray:
        """Gymnasium-Robotics world position of D4RL observed position ``position``."""
        x_d4rl, y_d4rl = np.asarray(position, dtype=np.float64) + BODY_OFFSET
        return np.array([y_d4rl - 0.5 - self._width / 2, self._height / 2 + 0.5 - x_d4rl])

    def to_d4rl(self, world: np.ndarray) -> np.ndarray:
        """D4RL observed position of Gymnasium-Robotics world position ``world``."""
        x_world, y_world = world
        return np.array([self._height / 2 + 0.5 - y_world, x_world + self._width / 2 + 0.5]) - BODY_OFFSET

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.point.reset(seed=seed)
        cell = self.reset_cells[self.np_random.integers(len(self.reset_cells))]
        position = cell + self.np_random.uniform(-0.1, 0.1, size=2)
        velocity = 0.1 * self.np_random.standard_normal(2)
        # D4RL velocity (vx, vy) is world velocity (vy, -vx) in Gymnasium-Robotics' frame.
        self.point.set_state(self.to_world(position), np.array([velocity[1], -velocity[0]]))
        return self._observation(), {}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self.point.step(np.array([action[1], -action[0]]))  # D4RL's x axis is the world's -y axis
        observation = self._observation()
        reached = np.linalg.norm(observation[:2] - self.goal) <= GOAL_RADIUS
        return observation, float(reached), False, False, {"success": bool(reached)}

    def _observation(self) -> np.ndarray:
        world_velocity = self.point.data.qvel
        return np.concatenate([self.to_d4rl(self.point.data.qpos),
                               [-world_velocity[1], world_velocity[0]]])

    def close(self) -> None:
        self._maze.close()
