"""One rendered episode of a policy, written as an MP4 or GIF file.

Frames come from the environment's ``render_mode="rgb_array"``. MuJoCo renders offscreen through EGL or
OSMesa: without a display, and with ``MUJOCO_GL`` unset, :func:`choose_offscreen_gl` sets it to whichever of the
two libraries the machine has (it must run before MuJoCo's renderer is imported). Files are written with imageio
(MP4 through imageio-ffmpeg, GIF through Pillow), the ``video`` extra.
"""

from __future__ import annotations

import ctypes.util
import importlib
import math
import os
from pathlib import Path
from typing import NamedTuple

import gymnasium as gym
import numpy as np

from erdiff.envs.evaluate import SEED_OFFSET, Policy
from erdiff.envs.make import make_gym_env, register_envs
from erdiff.errors import ErdiffError

VIDEO_SUFFIXES = (".mp4", ".gif")


class VideoError(ErdiffError):
    """A video cannot be made: a missing package or library, a task without frames, a bad file name."""


def choose_offscreen_gl() -> str | None:
    """Set ``MUJOCO_GL`` for offscreen rendering when it is unset and there is no display; return its value.

    EGL first (Mesa's software EGL on CPU machines, the driver's on GPU machines), then OSMesa.
    """
    if os.environ.get("MUJOCO_GL") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return os.environ.get("MUJOCO_GL")
    for backend, library in (("egl", "EGL"), ("osmesa", "OSMesa")):
        if ctypes.util.find_library(library):
            os.environ["MUJOCO_GL"] = backend
            return backend
    return None


def check_video_path(path: str | Path) -> Path:
    """``path`` if it names an .mp4 or .gif file that the ``video`` extra can write, else a VideoError."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoError(f"--video {path}: expected a file name ending in .mp4 or .gif")
    needed = ["imageio"] + (["imageio_ffmpeg"] if path.suffix.lower() == ".mp4" else [])
    for module in needed:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            raise VideoError(f"writing {path.name} needs the Python package {module.replace('_', '-')}: "
                             "pip install 'erdiff[video]'") from None
    return path


class Episode(NamedTuple):
    frames: list[np.ndarray]
    """H×W×3 uint8: the initial state, then one frame per step"""
    episode_return: float
    fps: float
    """the environment's own frame rate (its ``render_fps``), so the video plays in simulated real time"""


DEFAULT_FPS = 30.0
"""Frame rate of environments that do not state one."""
GIF_MAX_FPS = 50.0


def record_episode(env_id: str, policy: Policy, seed: int) -> Episode:
    """One episode of ``policy`` with a frame per step, reset with ``seed + 100`` like the first evaluation
    episode."""
    declared = _declared_render_modes(env_id)
    if declared is not None and "rgb_array" not in declared:  # checked first: gymnasium.make would only warn
        raise VideoError(f"the environment {env_id} cannot render frames (no rgb_array render mode)")
    try:
        env = make_gym_env(env_id, render_mode="rgb_array")
    except TypeError:  # an environment whose constructor takes no render_mode
        raise VideoError(f"the environment {env_id} cannot render frames (no rgb_array render mode)") from None
    try:
        if env.render_mode != "rgb_array":
            raise VideoError(f"the environment {env_id} cannot render frames (no rgb_array render mode)")
        observation, _ = env.reset(seed=seed + SEED_OFFSET)
        frames, episode_return, done = [_render(env, env_id)], 0.0, False
        while not done:
            action = np.asarray(policy(observation[None].astype(np.float32))[0], dtype=np.float32)
            action = np.clip(action, env.action_space.low, env.action_space.high)
            observation, reward, terminated, truncated, _ = env.step(action)
            episode_return += float(reward)
            frames.append(_render(env, env_id))
            done = terminated or truncated
    finally:
        env.close()  # frees the GL context now, not in an interpreter-exit finalizer
    return Episode(frames, episode_return, float(env.metadata.get("render_fps") or DEFAULT_FPS))


def _declared_render_modes(env_id: str) -> list[str] | None:
    """The render modes the environment class of ``env_id`` declares; None when its entry point is a function."""
    register_envs()
    entry_point = gym.spec(env_id).entry_point
    creator = entry_point if callable(entry_point) else gym.envs.registration.load_env_creator(entry_point)
    metadata = getattr(creator, "metadata", None)
    return metadata.get("render_modes") if isinstance(metadata, dict) else None


def _render(env: gym.Env, env_id: str) -> np.ndarray:
    try:
        frame = env.render()
    except gym.error.DependencyNotInstalled as err:  # classic control draws with pygame
        raise VideoError(f"rendering {env_id} needs a package that is not installed: {err}") from None
    except Exception as err:  # GL context creation fails in many library-specific ways
        raise VideoError(f"rendering {env_id} offscreen failed ({type(err).__name__}: {err}); MuJoCo needs EGL or "
                         "OSMesa (Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri) and MUJOCO_GL "
                         "set to egl or osmesa") from None
    return np.asarray(frame, dtype=np.uint8)


def write_video(path: str | Path, frames: list[np.ndarray], fps: float) -> tuple[int, float]:
    """Write ``frames`` to ``path`` (.mp4 or .gif; see :func:`check_video_path`), taken at ``fps`` frames a
    second; return how many frames the file holds and at what rate they play."""
    import imageio.v3 as iio

    path = check_video_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        # GIF delays are whole centiseconds and viewers slow down anything under 2: above 50 fps keep every k-th
        # frame, so the film still plays in simulated real time.
        keep_every = math.ceil(fps / GIF_MAX_FPS)
        kept = frames[::keep_every]
        iio.imwrite(path, np.stack(kept), duration=1000.0 * keep_every / fps, loop=0)
        return len(kept), fps / keep_every
    iio.imwrite(path, np.stack(frames), fps=fps)
    return len(frames), fps
