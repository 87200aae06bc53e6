"""Build the evaluation environment of a task.

Every task's ``env_id`` is an id that ``gymnasium.make`` understands once this module is imported: the
Gymnasium/Gymnasium-Robotics ids themselves, or ``erdiff/...`` ids registered here for environments that
need our code (the toy task, and D4RL-compatible wrappers whose observations and episode rules follow
D4RL rather than Gymnasium-Robotics).
"""

from __future__ import annotations

import warnings

import gymnasium as gym

_registered = False


def register_envs() -> None:
    """Register the ``erdiff/`` ids and Gymnasium-Robotics' ids with Gymnasium (idempotent)."""
    global _registered
    if _registered:
        return
    gym.register(id="erdiff/TwoStepToy-v0", entry_point="erdiff.envs.toy:TwoStepToyEnv")
    gym.register(id="erdiff/PenD4RL-v1", entry_point="erdiff.envs.adroit:make_d4rl_pen", max_episode_steps=100)
    for tasks in ("MicrowaveKettleLightSlider", "MicrowaveKettleBottomBurnerLight"):
        gym.register(id=f"erdiff/KitchenD4RL-{tasks}-v0", entry_point="erdiff.envs.kitchen:make_d4rl_kitchen",
                     kwargs={"tasks": tasks}, max_episode_steps=280)
    for maze, steps in (("UMaze", 300), ("Medium", 600), ("Large", 800)):
        gym.register(id=f"erdiff/Maze2dD4RL-{maze}-v1", entry_point="erdiff.envs.maze2d:D4RLMaze2dEnv",
                     kwargs={"maze": maze}, max_episode_steps=steps)
    for maze, steps in (("UMaze", 700), ("Medium", 1000), ("Large", 1000)):
        gym.register(id=f"erdiff/AntMazeD4RL-{maze}-v0", entry_point="erdiff.envs.antmaze:D4RLAntMazeEnv",
                     kwargs={"maze": maze}, max_episode_steps=steps)
    _registered = True


def make_gym_env(env_id: str, **kwargs) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)`` with the ``erdiff/`` ids registered.

    The "v4 is out of date" deprecation notice is silenced: v4 is what D4RL's locomotion data match.
    """
    register_envs()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is out of date.*")
        return gym.make(env_id, **kwargs)
