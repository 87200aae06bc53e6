"""D4RL's Franka kitchen tasks on Gymnasium-Robotics' ``FrankaKitchen-v1``, with D4RL's 60-dim observation.

D4RL (``d4rl/kitchen/kitchen_envs.py``) observes ``[robot joint positions (9), object positions (21),
goal (30)]``; the goal vector is zero except at each task element's indices (in the 30-dim
robot + object position layout), where it holds that element's target. Gymnasium-Robotics returns a
dict whose ``observation`` is ``[robot qpos (9), robot qvel (9), object qpos (21), object qvel (20)]``,
so the D4RL layout is rows 0-8 and 18-38 of it plus the constant goal vector built here.

Matching D4RL: the tasks (``kitchen-complete-v0`` and ``kitchen-partial-v0`` use microwave, kettle,
light switch, slide cabinet; ``kitchen-mixed-v0`` uses microwave, kettle, bottom burner, light switch),
the 280-step horizon, velocity actions in [-1, 1] (x2 rad/s), a reward of 1 per task completed (within
0.3 of its target), completed tasks removed, termination when all four are done, the initial pose, and
the observation noise level (D4RL scales every joint's noise amplitude by 0.1 for robot and objects).
Known differences: Gymnasium-Robotics judges completion on noise-free object positions (D4RL on the
noisy observation), and reads the objects' noise amplitudes one joint off from D4RL's, which changes
a noise amplitude by at most 0.01 (the observation noise is uniform with amplitude 0.1 x 0.0005 .. 0.1).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

TASK_SETS = {
    "MicrowaveKettleLightSlider": ("microwave", "kettle", "light switch", "slide cabinet"),
    "MicrowaveKettleBottomBurnerLight": ("microwave", "kettle", "bottom burner", "light switch"),
}
"""D4RL's two kitchen task lists, by the name of D4RL's env class."""

D4RL_NOISE_RATIO = 0.1
"""D4RL's ``robot_noise_ratio``, applied to robot and object observations alike."""

ROBOT_QPOS = slice(0, 9)
OBJECT_QPOS = slice(18, 39)


class D4RLKitchenObservation(gym.ObservationWrapper):
    """Flatten FrankaKitchen's dict observation into D4RL's [qpos (9), object qpos (21), goal (30)]."""

    def __init__(self, env: gym.Env, tasks: tuple[str, ...]) -> None:
        super().__init__(env)
        from gymnasium_robotics.envs.franka_kitchen.kitchen_env import OBS_ELEMENT_GOALS, OBS_ELEMENT_INDICES

        self.goal = np.zeros(30)
        for task in tasks:
            self.goal[OBS_ELEMENT_INDICES[task]] = OBS_ELEMENT_GOALS[task]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (60,), np.float64)

    def observation(self, observation: dict) -> np.ndarray:
        state = observation["observation"]
        return np.concatenate([state[ROBOT_QPOS], state[OBJECT_QPOS], self.goal])


def make_d4rl_kitchen(tasks: str, **kwargs) -> gym.Env:
    """FrankaKitchen with one of D4RL's task lists, D4RL's noise level and D4RL's observation."""
    from gymnasium_robotics.envs.franka_kitchen.kitchen_env import KitchenEnv

    elements = TASK_SETS[tasks]
    env = KitchenEnv(tasks_to_complete=list(elements), robot_noise_ratio=D4RL_NOISE_RATIO,
                     object_noise_ratio=D4RL_NOISE_RATIO, **kwargs)
    return D4RLKitchenObservation(env, elements)
