"""Checkpoints for an exact resume: networks, optimizers, step, epoch and every RNG state.

Written atomically (temporary file, then rename): the previous checkpoint stays in place until the new one
is complete. Loaded with ``torch.load(..., weights_only=True)``, so RNG states are stored as tensors and
plain python values, never as pickled objects.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import torch

from erdiff.errors import ErdiffError
from erdiff.results import atomic_write_bytes

CHECKPOINT_FORMAT = "erdiff-checkpoint/1"


class CheckpointError(ErdiffError):
    """A checkpoint file is missing, unreadable or not an erdiff checkpoint."""


def capture_rng_states() -> dict:
    """RNG states of torch (CPU and CUDA), numpy and python in a weights_only-loadable form."""
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gauss": float(cached_gauss)},
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
    }


def restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    numpy_state = states["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["position"], numpy_state["has_gauss"], numpy_state["cached_gauss"]))
    python_state = states["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss_next"]))


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Serialise ``state`` (plus the format tag) and replace ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch checkpoint ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} is not an erdiff checkpoint (expected format {CHECKPOINT_FORMAT})")
    return state
