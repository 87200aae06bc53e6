"""D4RL's Adroit pen task on Gymnasium-Robotics' ``AdroitHandPen-v1`` (registered as ``erdiff/PenD4RL-v1``).

What matches D4RL's ``pen-*-v1`` envs (``d4rl/hand_manipulation_suite/pen_v0.py``): the model, the 45-dim
observation, the [-1, 1] action scaling, the target orientation drawn at reset, and the *dense* reward
(-distance + orientation similarity, +10 / +50 bonuses near the goal, -5 when the pen drops), which is
Gymnasium-Robotics' ``reward_type="dense"``. Two D4RL rules Gymnasium-Robotics dropped are restored
here: episodes last 100 steps (not 200; D4RL's reference returns are 100-step returns), and an episode
terminates when the pen falls (its height below 0.075), as D4RL's pen env does.
"""

from __future__ import annotations

import gymnasium as gym

PEN_DROP_HEIGHT = 0.075
"""D4RL ends a pen episode when the pen's centre falls below this height."""


class PenDropTermination(gym.Wrapper):
    """Terminate the episode when the pen is dropped, as D4RL's pen env does."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        pen = self.env.unwrapped
        dropped = pen.data.xpos[pen.obj_body_id][2] < PEN_DROP_HEIGHT
        return obs, reward, terminated or bool(dropped), truncated, info


def make_d4rl_pen(**kwargs) -> gym.Env:
    """The pen env with D4RL's dense reward and drop termination (the time limit is set at registration)."""
    from gymnasium_robotics.envs.adroit_hand.adroit_pen import AdroitHandPenEnv

    return PenDropTermination(AdroitHandPenEnv(reward_type="dense", **kwargs))
