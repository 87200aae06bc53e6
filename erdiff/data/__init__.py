"""Offline datasets: D4RL HDF5 files (downloaded, read, validated, turned into Q-learning transitions)
and reward transforms.

Public API: :func:`d4rl_dataset_path`, :func:`dataset_url`, :func:`read_d4rl_hdf5`,
:func:`qlearning_dataset`, :func:`validate_raw`, :func:`transform_rewards`, :func:`episode_returns` and
the errors :class:`DatasetError` / :class:`DatasetUnavailableError`.
"""

from erdiff.data.d4rl import (
    DatasetError,
    DatasetUnavailableError,
    qlearning_dataset,
    read_d4rl_hdf5,
    validate_raw,
)
from erdiff.data.download import d4rl_dataset_path, dataset_url
from erdiff.data.transforms import REWARD_TRANSFORMS, episode_returns, transform_rewards

__all__ = [
    "REWARD_TRANSFORMS",
    "DatasetError",
    "DatasetUnavailableError",
    "d4rl_dataset_path",
    "dataset_url",
    "episode_returns",
    "qlearning_dataset",
    "read_d4rl_hdf5",
    "transform_rewards",
    "validate_raw",
]
