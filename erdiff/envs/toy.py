"""The two-step toy task of the paper's Figure 1, as a Gymnasium environment.

The paper's caption (docs/method.md §16) fixes only the shape of the task: a 1-D state that starts at 0, two
steps, a reward that is a mixture of Gaussians over states, and an unbalanced offline dataset with most
samples in low-reward states. The numbers below are OUR reconstruction, not the paper's:

* state s in R, s_0 = 0; action a in [-1, 1]; s_{k+1} = s_k + a_k; the episode terminates after 2 steps
  (a real termination, not a time limit), so the final state lies in [-2, 2];
* the reward of every step is r(s_{k+1}) = sum_i h_i * exp(-(s_{k+1} - mu_i)^2 / (2 sigma_i^2)) with
  two peaks (see ``PEAKS``): a broad low peak at -1 (height 1, width 0.5), where most data lie, and a
  narrow high peak at 1.5 (height 2.5, width 0.2), which only a precise two-step plan reaches;
* the observation is the state alone, shape (1,). Step-1 states are always exactly 0 and step-2 states
  lie in [-1, 1], so the state is Markov except on the measure-zero event a_0 = 0.

Returns: the "low" plan (-1 then stay) earns 2.0; the optimal plan (a_0 = 1, a_1 = 0.5) earns 2.6102;
uniformly random actions earn 0.7863 in expectation. :func:`reference_returns` computes the last two,
which are the task's normalized-score references in :mod:`erdiff.envs.scores`.

``render_mode="rgb_array"`` draws the reward curve over the reachable states and the current state as a red
bar (a small numpy picture, for `erdiff evaluate --video`).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

PEAKS = ((-1.0, 0.5, 1.0), (1.5, 0.2, 2.5))
"""(mean, std, height) of each reward peak: broad-and-low near the data, narrow-and-high far from it."""
HORIZON = 2
MAX_ACTION = 1.0


def reward(state: np.ndarray | float) -> np.ndarray:
    """The mixture-of-Gaussians reward of arriving in ``state`` (element-wise)."""
    state = np.asarray(state, dtype=np.float64)
    return sum(height * np.exp(-0.5 * ((state - mean) / std) ** 2) for mean, std, height in PEAKS)


def reference_returns(grid_points: int = 2001) -> tuple[float, float]:
    """(expected return of uniform random actions, optimal return), on a grid of both actions.

    The return is r(a_0) + r(a_0 + a_1) because s_0 = 0. The random return is the grid mean (the
    integral over the uniform action square); the optimum is the grid maximum (at a_0 = 1, a_1 = 0.5).
    """
    actions = np.linspace(-MAX_ACTION, MAX_ACTION, grid_points)
    first, second = np.meshgrid(actions, actions, indexing="ij")
    returns = reward(first) + reward(first + second)
    return float(returns.mean()), float(returns.max())


FRAME_HEIGHT, FRAME_WIDTH = 128, 256
"""Size of a rendered frame; multiples of 16, as MP4 encoders want."""


class TwoStepToyEnv(gym.Env):
    """1-D two-step task: s' = s + a with a in [-1, 1], reward r(s'), terminated after two steps."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(self, render_mode: str | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"the toy task renders only rgb_array frames, not {render_mode!r}")
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-HORIZON * MAX_ACTION, HORIZON * MAX_ACTION, (1,), np.float32)
        self.action_space = gym.spaces.Box(-MAX_ACTION, MAX_ACTION, (1,), np.float32)
        self._state = 0.0
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state = 0.0
        self._steps = 0
        return self._observation(), {}

    def step(self, action):
        move = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -MAX_ACTION, MAX_ACTION))
        self._state += move
        self._steps += 1
        terminated = self._steps >= HORIZON
        return self._observation(), float(reward(self._state)), terminated, False, {}

    def _observation(self) -> np.ndarray:
        return np.array([self._state], dtype=np.float32)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        frame = np.full((FRAME_HEIGHT, FRAME_WIDTH, 3), 255, dtype=np.uint8)
        limit = HORIZON * MAX_ACTION
        states = np.linspace(-limit, limit, FRAME_WIDTH)
        top = max(height for _, _, height in PEAKS)
        # Row 0 is the top of the picture; keep a margin of 8 pixels above and below the curve.
        rows = np.round((FRAME_HEIGHT - 9) - reward(states) / top * (FRAME_HEIGHT - 17)).astype(int)
        frame[rows, np.arange(FRAME_WIDTH)] = (40, 40, 40)
        column = int(round((self._state + limit) / (2 * limit) * (FRAME_WIDTH - 1)))
        frame[:, max(column - 1, 0):column + 2] = (220, 30, 30)
        return frame
