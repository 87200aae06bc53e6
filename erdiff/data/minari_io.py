"""Minari datasets (e.g. ``D4RL/antmaze/umaze-v1``) as the same flat transition dict as
:func:`erdiff.data.qlearning_dataset`, and their evaluation environments.

Minari stores whole episodes: ``T`` actions, rewards, terminations and truncations and ``T + 1``
observations (the last one is the observation after the final step). So, unlike D4RL files:

* ``next_observations`` are exact: the observations shifted by one within each episode, never the next
  episode's first observation;
* a truncated final step (time limit) is kept, with its true next observation and ``terminals`` 0, so
  the critic bootstraps through it; d4rl's ``qlearning_dataset`` has to drop that step instead.
  ``terminals`` are Minari's ``terminations``; truncations are never terminal.

Dict observations (AntMaze, PointMaze, Kitchen) are flattened into one vector per step by
:func:`flatten_observations`: by default all leaves in sorted key order, recursively, which is the
layout of ``gymnasium.spaces.flatten`` (and so of ``gymnasium.wrappers.FlattenObservation``) on the
env's Dict space, so an evaluator can flatten the env's observations the same way.
``obs_keys`` selects and orders the parts instead; :data:`D4RL_ANTMAZE_OBS_KEYS` gives D4RL's AntMaze
layout. Datasets are read from ``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``), as Minari does.

``minari`` is an optional dependency (``pip install 'erdiff[minari]'``), imported only when used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from erdiff.data.d4rl import DatasetError, DatasetUnavailableError, validate_raw

D4RL_ANTMAZE_OBS_KEYS = ("achieved_goal", "observation")
"""D4RL's 29-dim AntMaze observation is the torso x, y (Minari's ``achieved_goal``) followed by the rest of
the ant state (Minari's 27-dim ``observation``); D4RL's policy never sees the goal. The maze coordinate
frames of D4RL and Gymnasium-Robotics may differ by an offset (not checked here)."""

TRANSITION_KEYS = ("observations", "actions", "next_observations", "rewards", "terminals")


def load_minari_transitions(dataset_id: str, obs_keys: Sequence[str] | None = None,
                            download: bool = False) -> dict[str, np.ndarray]:
    """All steps of the Minari dataset ``dataset_id`` as float32 transitions (see the module docstring).

    ``obs_keys`` picks the parts of dict observations, in order: leaf paths such as ``"observation"``
    or ``"desired_goal/kettle"``, or a group, which stands for all its leaves. ``download=True`` lets
    Minari fetch a dataset that is not on this machine.
    """
    dataset = _load_dataset(dataset_id, download)
    parts: dict[str, list[np.ndarray]] = {key: [] for key in TRANSITION_KEYS}
    for episode in dataset.iterate_episodes():
        n_steps = len(episode.rewards)
        observations = flatten_observations(episode.observations, obs_keys)
        if len(observations) != n_steps + 1:
            raise DatasetError(f"Minari dataset {dataset_id}: episode {episode.id} has {len(observations)} "
                               f"observations for {n_steps} steps; expected {n_steps + 1}")
        if isinstance(episode.actions, (dict, tuple)):
            raise DatasetError(f"Minari dataset {dataset_id}: actions are a {type(episode.actions).__name__}; "
                               "expected a Box action space (one array per step)")
        parts["observations"].append(observations[:-1])
        parts["next_observations"].append(observations[1:])
        parts["actions"].append(np.asarray(episode.actions, dtype=np.float32).reshape(n_steps, -1))
        parts["rewards"].append(np.asarray(episode.rewards, dtype=np.float32))
        parts["terminals"].append(np.asarray(episode.terminations, dtype=np.float32))
    if not parts["rewards"]:
        raise DatasetError(f"Minari dataset {dataset_id}: the dataset has no episodes")
    transitions = {key: np.concatenate(arrays) for key, arrays in parts.items()}
    validate_raw(transitions, f"Minari dataset {dataset_id}")
    return transitions


def flatten_observations(observations: Any, obs_keys: Sequence[str] | None = None) -> np.ndarray:
    """A (B, D) float32 array from a batch of observations: an array (B, ...) or a (nested) dict of them.

    Dict leaves are concatenated along the last axis, in sorted key order by default (the order of
    ``gymnasium.spaces.flatten``), else in the order of ``obs_keys`` (see :func:`load_minari_transitions`).
    Works for a dataset episode (B = T + 1) and for a vector env's batched observation alike.
    """
    if not isinstance(observations, dict):
        if obs_keys is not None:
            raise DatasetError(f"obs_keys {list(obs_keys)} given, but the observations are an array, not a dict")
        array = np.asarray(observations)
        return array.reshape(len(array), -1).astype(np.float32)
    leaves = _leaves(observations)
    selected = list(leaves) if obs_keys is None else _select(leaves, obs_keys)
    return np.concatenate([leaves[path].reshape(len(leaves[path]), -1) for path in selected],
                          axis=1).astype(np.float32)


def _leaves(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """Leaf arrays of a nested dict keyed by their "/"-joined path, in sorted order at every level."""
    leaves: dict[str, np.ndarray] = {}
    for key in sorted(tree):
        value = tree[key]
        if isinstance(value, dict):
            leaves.update(_leaves(value, f"{prefix}{key}/"))
        else:
            leaves[f"{prefix}{key}"] = np.asarray(value)
    return leaves


def _select(leaves: dict[str, np.ndarray], obs_keys: Sequence[str]) -> list[str]:
    selected = []
    for key in obs_keys:
        matches = [path for path in leaves if path == key or path.startswith(f"{key}/")]
        if not matches:
            raise DatasetError(f"observation key {key!r} not found; the observations have "
                               f"{', '.join(leaves)}")
        selected.extend(matches)
    return selected


def recover_eval_env(dataset_id: str, download: bool = False, **make_kwargs: Any):
    """The Gymnasium env the dataset names for evaluation (``recover_environment(eval_env=True)``:
    the collecting env when the dataset names none). ``make_kwargs`` go to ``gymnasium.make``."""
    dataset = _load_dataset(dataset_id, download)
    try:
        return dataset.recover_environment(eval_env=True, **make_kwargs)
    except ValueError as exc:  # Minari's error for datasets created without an env spec
        raise DatasetError(f"Minari dataset {dataset_id}: no environment can be recovered ({exc})") from exc


def _load_dataset(dataset_id: str, download: bool):
    try:
        import minari
    except ImportError as exc:
        raise DatasetError(f"loading the Minari dataset {dataset_id} needs the minari package: "
                           "pip install 'erdiff[minari]'") from exc
    try:
        return minari.load_dataset(dataset_id, download=download)
    except FileNotFoundError as exc:
        where = minari.storage.get_dataset_path(dataset_id)
        raise DatasetUnavailableError(
            f"Minari dataset {dataset_id} is not at {where} (set MINARI_DATASETS_PATH to the folder that holds "
            f"it); fetch it with `minari download {dataset_id}` where there is network, copy it there, "
            "or pass download=True") from exc
    except (ImportError, OSError) as exc:  # download=True without huggingface_hub or without network
        raise DatasetUnavailableError(f"could not download the Minari dataset {dataset_id} ({exc})") from exc
