"""Offline datasets: D4RL HDF5 files (downloaded, read, validated, turned into Q-learning transitions),
Minari datasets as the same transitions, and reward transforms.

Public API: :func:`d4rl_dataset_path`, :func:`dataset_url`, :func:`read_d4rl_hdf5`,
:func:`qlearning_dataset`, :func:`validate_raw`, :func:`load_minari_transitions`,
:func:`flatten_observations`, :func:`recover_eval_env`, :func:`transform_rewards`,
:func:`episode_returns` and the errors :class:`DatasetError` / :class:`DatasetUnavailableError`.
``minari`` is imported only when a Minari function is called.
"""

from erdiff.data.d4rl import (
    DatasetError,
    DatasetUnavailableError,
    qlearning_dataset,
    read_d4rl_hdf5,
    validate_raw,
)
from erdiff.data.download import d4rl_dataset_path, dataset_url
from erdiff.data.minari_io import (
    D4RL_ANTMAZE_OBS_KEYS,
    flatten_observations,
    load_minari_transitions,
    recover_eval_env,
)
from erdiff.data.transforms import REWARD_TRANSFORMS, episode_returns, transform_rewards

__all__ = [
    "D4RL_ANTMAZE_OBS_KEYS",
    "REWARD_TRANSFORMS",
    "DatasetError",
    "DatasetUnavailableError",
    "d4rl_dataset_path",
    "dataset_url",
    "episode_returns",
    "flatten_observations",
    "load_minari_transitions",
    "qlearning_dataset",
    "read_d4rl_hdf5",
    "recover_eval_env",
    "transform_rewards",
    "validate_raw",
]
