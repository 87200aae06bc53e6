"""Write datasets in D4RL's flat HDF5 layout, atomically.

A key with "/" (``infos/qpos``) becomes a dataset inside a group (``infos`` -> ``qpos``), as in D4RL's
files; ``metadata`` entries go under ``metadata/``. The file is written next to its final path and then
renamed, so readers (and parallel seeds waiting on a lock) never see a half-written file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import h5py
import numpy as np


def write_d4rl_hdf5(path: str | Path, data: dict[str, np.ndarray], metadata: dict) -> Path:
    """Write ``data`` (array per key) and ``metadata`` (scalars or strings) to ``path``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; datasets are meant to be shared
    try:
        with h5py.File(tmp, "w") as handle:
            for key, values in data.items():
                handle.create_dataset(key, data=np.asarray(values))
            for key, value in metadata.items():
                handle.create_dataset(f"metadata/{key}", data=value)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
