"""Offline datasets: D4RL HDF5 files (read, validated, turned into Q-learning transitions).

Public API: :func:`read_d4rl_hdf5`, :func:`qlearning_dataset`, :func:`validate_raw` and the errors
:class:`DatasetError` / :class:`DatasetUnavailableError`.
"""

from erdiff.data.d4rl import (
    DatasetError,
    DatasetUnavailableError,
    qlearning_dataset,
    read_d4rl_hdf5,
    validate_raw,
)

__all__ = [
    "DatasetError",
    "DatasetUnavailableError",
    "qlearning_dataset",
    "read_d4rl_hdf5",
    "validate_raw",
]
