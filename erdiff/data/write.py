"""Write datasets in D4RL's flat HDF5 layout, atomically.

A key with "/" (``infos/qpos``) becomes a dataset inside a group (``infos`` -> ``qpos``), as in D4RL's
files; ``metadata`` entries go under ``metadata/``. The file is written next to its final path and then
renamed, so readers (and parallel seeds waiting on a lock) never see a half-written file; its SHA-256 is
recorded next to it (:mod:`erdiff.data.checksum`).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from erdiff.data.checksum import file_sha256, replace_with_record, temporary_sibling


def write_d4rl_hdf5(path: str | Path, data: dict[str, np.ndarray], metadata: dict) -> Path:
    """Write ``data`` (array per key) and ``metadata`` (scalars or strings) to ``path`` and record its SHA-256
    in ``<path>.sha256``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path, ".tmp")
    try:
        with h5py.File(tmp, "w-") as handle:  # h5py creates the file: the umask's permissions
            for key, values in data.items():
                handle.create_dataset(key, data=np.asarray(values))
            for key, value in metadata.items():
                handle.create_dataset(f"metadata/{key}", data=value)
        replace_with_record(tmp, path, file_sha256(tmp))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
