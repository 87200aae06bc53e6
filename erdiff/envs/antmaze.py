"""D4RL's AntMaze evaluation env, rebuilt on Gymnasium-Robotics' AntMaze (``erdiff/AntMazeD4RL-<Size>-v0``).

D4RL (``d4rl/locomotion/{maze_env,ant,goal_reaching_env,wrappers}.py``; env kwargs ``eval=True``,
``reward_type='sparse'``, ``maze_size_scaling=4``, ``expose_all_qpos=True``) defines:

* the layouts ``U_MAZE_TEST``, ``BIG_MAZE_TEST``, ``HARDEST_MAZE_TEST`` (umaze, medium, large; see
  ``LAYOUTS``), cells 4 units wide, the wall of cell (row i, column j) centred at (4 (j - j_R), 4 (i - i_R))
  for the start cell R = (i_R, j_R) = (1, 1), so the ant starts at the origin;
* a 29-dim observation ``[qpos[:15], qvel[:14]]``: torso x, y (in that frame), z, quaternion, 8 joint
  angles, then the 14 velocities. In evaluation mode the goal is *not* part of the observation;
* the goal: the G cell's corner (4 (j_G - j_R), 4 (i_G - i_R)) plus U(0, 1) + U(0, 0.5) per coordinate,
  clipped at 0; the episode ends with reward 1 as soon as the torso is within 0.5 of it (reward 0 before),
  otherwise after 700 (umaze) or 1000 steps. A return is 0 or 1; the normalized score is the success rate.
* reset: qpos = (0, 0, 0.75, 1, 0, ...) + U(-0.1, 0.1) per coordinate, qvel = N(0, 0.1^2);
* its own ant model: timestep 0.02 (RK4, 5 frames per step, so 0.1 s per step), motors with gear 1 and
  control range [-30, 30] reached from actions in [-1, 1] (``NormalizedBoxEnv``), and contact softness
  ``solimp = (0.8, 0.8, 0.01)``. Gymnasium's ant differs (timestep 0.01, gear 150, range [-1, 1], default
  solimp), so those parameters are set on the model here; everything else in the two ant models is equal.

Gymnasium-Robotics' maze builder puts cell (i, j) at (4 (j + 0.5) - 2 W, 2 H - 4 (i + 0.5)), a mirror
image of D4RL's frame in y. We hand it the layout upside down, which makes its world a pure translation
of D4RL's (:attr:`D4RLAntMazeEnv.world_offset`); observations and the goal are reported in D4RL's frame.

Differences we know of: the simulator (MuJoCo 3 through the ``mujoco`` bindings vs MuJoCo 2.x through
mujoco-py) may integrate contacts slightly differently; and every episode draws its own goal from the
env's seeded generator (D4RL's ``-v2`` rule; ``-v0`` drew one goal per env from NumPy's global generator).
Not verified here: agreement with D4RL's AntMaze files, which could not be downloaded on this machine.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

LAYOUTS = {  # D4RL's evaluation layouts: '#' wall, 'R' start, 'G' goal, '.' open
    "UMaze": ("#####",
              "#R..#",
              "###.#",
              "#G..#",
              "#####"),
    "Medium": ("########",
               "#R.##..#",
               "#..#...#",
               "##...###",
               "#..#...#",
               "#.#..#.#",
               "#...#.G#",
               "########"),
    "Large": ("############",
              "#R...#.....#",
              "#.##.#.#.#.#",
              "#......#...#",
              "#.####.###.#",
              "#..#.#.....#",
              "##.#.#.#.###",
              "#..#...#.G.#",
              "############"),
}
CELL_SIZE = 4.0
GOAL_RADIUS = 0.5
MAX_TORQUE = 30.0
"""D4RL's motor control range; actions in [-1, 1] are scaled to it (motor gear 1)."""
TIMESTEP = 0.02
SOLIMP = (0.8, 0.8, 0.01, 0.5, 2.0)
"""D4RL's contact impedance (its XML sets the first three; MuJoCo's defaults fill midpoint and power)."""
RESET_NOISE = 0.1


def cell_of(layout: tuple[str, ...], marker: str) -> tuple[int, int]:
    """(row, column) of the single cell holding ``marker``."""
    (cell,) = [(i, j) for i, row in enumerate(layout) for j, value in enumerate(row) if value == marker]
    return cell


def d4rl_cell_corner(layout: tuple[str, ...], cell: tuple[int, int]) -> np.ndarray:
    """D4RL's coordinates of cell (row, column): the start cell is the origin, x along columns."""
    start_row, start_column = cell_of(layout, "R")
    return CELL_SIZE * np.array([cell[1] - start_column, cell[0] - start_row], dtype=np.float64)


class D4RLAntMazeEnv(gym.Env):
    """The ant in one of D4RL's AntMaze evaluation layouts, with D4RL's observation, goal and episode end."""

    metadata = {"render_modes": []}

    def __init__(self, maze: str) -> None:
        from gymnasium_robotics.envs.maze.ant_maze_v4 import AntMazeEnv

        self.layout = LAYOUTS[maze]
        height, width = len(self.layout), len(self.layout[0])
        upside_down = [[1 if cell == "#" else 0 for cell in row] for row in reversed(self.layout)]
        # Gymnasium-Robotics builds the walls and the ant model; resets, goals and rewards are ours.
        self._maze = AntMazeEnv(maze_map=upside_down, continuing_task=True)
        self.ant = self._maze.ant_env
        model = self.ant.model
        model.opt.timestep = TIMESTEP
        model.actuator_gear[:, 0] = 1.0
        model.actuator_ctrlrange[:] = (-MAX_TORQUE, MAX_TORQUE)
        model.geom_solimp[:] = SOLIMP
        start_row, start_column = cell_of(self.layout, "R")
        # World position of D4RL's origin (the centre of the start cell in the upside-down build).
        self.world_offset = np.array([CELL_SIZE * (start_column + 0.5) - CELL_SIZE * width / 2,
                                      CELL_SIZE * (start_row + 0.5) - CELL_SIZE * height / 2])
        self.goal = np.zeros(2)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (29,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (8,), np.float32)

    @property
    def model(self):
        """The ant's MuJoCo model (with D4RL's parameters)."""
        return self.ant.model

    def set_d4rl_state(self, qpos: np.ndarray, qvel: np.ndarray, goal: np.ndarray | None = None) -> np.ndarray:
        """Put the ant in D4RL state ``qpos`` (D4RL frame), ``qvel`` (and the goal); return the observation.

        Used by ``erdiff dataset check`` to replay D4RL's AntMaze files (their ``infos/qpos|qvel|goal``).
        """
        qpos = np.array(qpos, dtype=np.float64)
        qpos[:2] += self.world_offset
        self.ant.set_state(qpos, np.asarray(qvel, dtype=np.float64))
        if goal is not None:
            self.goal = np.asarray(goal, dtype=np.float64)
        return self._observation()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.ant.reset(seed=seed)
        goal_corner = d4rl_cell_corner(self.layout, cell_of(self.layout, "G"))
        self.goal = np.maximum(goal_corner + self.np_random.uniform(0.0, 1.0, 2)
                               + self.np_random.uniform(0.0, 0.5, 2), 0.0)
        qpos = self.ant.init_qpos.copy()
        qpos[:2] = self.world_offset
        qpos += self.np_random.uniform(-RESET_NOISE, RESET_NOISE, size=qpos.shape)
        qvel = RESET_NOISE * self.np_random.standard_normal(self.ant.model.nv)
        self.ant.set_state(qpos, qvel)
        return self._observation(), {"goal": self.goal.copy()}

    def step(self, action):
        torque = MAX_TORQUE * np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self.ant.do_simulation(torque, self.ant.frame_skip)
        observation = self._observation()
        reached = bool(np.linalg.norm(observation[:2] - self.goal) <= GOAL_RADIUS)
        return observation, float(reached), reached, False, {"goal": self.goal.copy(), "success": reached}

    def _observation(self) -> np.ndarray:
        qpos = self.ant.data.qpos[:15].copy()
        qpos[:2] -= self.world_offset
        return np.concatenate([qpos, self.ant.data.qvel[:14]])

    def close(self) -> None:
        self._maze.close()
