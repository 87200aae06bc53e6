"""Read D4RL HDF5 files and build Q-learning transitions from them, without the ``d4rl`` package.

A D4RL file holds one row per environment step: ``observations (N, obs_dim)``, ``actions (N, act_dim)``,
``rewards (N,)``, ``terminals (N,)`` and, in every file newer than the first gym-mujoco release,
``timeouts (N,)``. Newer files add ``next_observations``, an ``infos/`` group (``infos/qpos`` ...) and a
``metadata/`` group. :func:`read_d4rl_hdf5` returns all of it as a flat dict; :func:`qlearning_dataset`
turns the rows into ``(s, a, r, s', done)`` transitions exactly as ``d4rl.qlearning_dataset`` does, because
that function defines the training set every published D4RL number was obtained on.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
import numpy as np

from erdiff.errors import ErdiffError

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")
"""Keys every D4RL dataset has; ``timeouts`` and ``next_observations`` are optional."""

MATRIX_KEYS = ("observations", "actions", "next_observations")
"""Per-step keys stored as (N, dim) arrays."""

VECTOR_KEYS = ("rewards", "terminals", "timeouts")
"""Per-step keys stored as (N,) arrays; files sometimes store them as (N, 1)."""

FLAG_KEYS = ("terminals", "timeouts")
"""Per-step keys that may only hold 0 and 1."""

DEFAULT_MAX_EPISODE_STEPS = 1000
"""Episode limit of the D4RL gym-mujoco and AntMaze envs; only used for files without ``timeouts``."""


class DatasetError(ErdiffError, ValueError):
    """A dataset file or dict is missing a key or holds values of the wrong shape, type or range."""


class DatasetUnavailableError(DatasetError):
    """A dataset is not on this machine and could not be fetched."""


def read_d4rl_hdf5(path: str | Path, expected_obs_dim: int | None = None,
                   expected_act_dim: int | None = None) -> dict[str, Any]:
    """Every dataset and attribute of the D4RL HDF5 file at ``path``, as a flat dict, after validation.

    Nested datasets keep their HDF5 path as key (``"infos/qpos"``, ``"metadata/algorithm"``); HDF5
    attributes are read too, keyed ``"<object path>/<name>"`` (``"<name>"`` for attributes of the root).
    Arrays come back as numpy arrays, scalar datasets and attributes as numpy scalars, byte strings
    decoded to ``str``. Like d4rl's ``get_dataset``, ``rewards``, ``terminals`` and ``timeouts`` stored as
    (N, 1) are flattened to (N,). Raises :class:`DatasetError` naming the file and key when anything
    :func:`validate_raw` checks is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file; expected a D4RL HDF5 dataset there")
    try:
        with h5py.File(path, "r") as handle:
            raw = _read_group(handle, str(path))
    except OSError as exc:  # h5py's error for files that are not HDF5 or are truncated
        raise DatasetError(f"{path}: cannot be read as an HDF5 file ({exc})") from exc
    for key in VECTOR_KEYS:
        value = raw.get(key)
        if isinstance(value, np.ndarray) and value.ndim == 2 and value.shape[1] == 1:
            raw[key] = value[:, 0]
    validate_raw(raw, str(path), expected_obs_dim, expected_act_dim)
    return raw


def _read_group(handle: h5py.File, source: str) -> dict[str, Any]:
    raw: dict[str, Any] = {}

    def add(key: str, value: Any) -> None:
        if key in raw:
            raise DatasetError(f"{source}: key '{key}' occurs both as a dataset and as an attribute")
        raw[key] = _decode(value)

    def visit(name: str, item: h5py.HLObject) -> None:
        if isinstance(item, h5py.Dataset):
            add(name, item[()])
        for attr, value in item.attrs.items():
            add(f"{name}/{attr}", value)

    for attr, value in handle.attrs.items():
        add(attr, value)
    handle.visititems(visit)
    return raw


def _decode(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def validate_raw(raw: dict[str, Any], source: str, expected_obs_dim: int | None = None,
                 expected_act_dim: int | None = None) -> None:
    """Check that ``raw`` is a usable D4RL dataset; raise one :class:`DatasetError` for the first problem.

    Checked: the required keys exist; per-step keys are numeric arrays of the right rank; the dataset
    is not empty; every per-step key (including ``next_observations`` and ``infos/*``) has one row per
    step; ``next_observations`` has the shape of ``observations``; float keys hold no NaN or inf;
    ``terminals`` and ``timeouts`` hold only 0 and 1; the observation and action sizes match
    ``expected_obs_dim`` / ``expected_act_dim`` when given. ``source`` (a file name) starts every message.
    """
    for key in REQUIRED_KEYS:
        if key not in raw:
            raise DatasetError(f"{source}: missing key '{key}'; a D4RL dataset needs "
                               f"{', '.join(REQUIRED_KEYS)} (timeouts and next_observations optional)")
    step_keys = [key for key in MATRIX_KEYS + VECTOR_KEYS if key in raw]
    for key in step_keys:
        value = raw[key]
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
            kind = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise DatasetError(f"{source}: key '{key}' holds {kind}; expected an array of numbers "
                               "(float, int or bool)")
        rank = 2 if key in MATRIX_KEYS else 1
        if value.ndim != rank:
            expected = "(N, dim)" if rank == 2 else "(N,)"
            raise DatasetError(f"{source}: key '{key}' has shape {value.shape}; expected {expected}")

    n_steps = len(raw["observations"])
    if n_steps == 0:
        raise DatasetError(f"{source}: the dataset is empty (key 'observations' has 0 rows)")
    info_keys = [key for key in raw if key.startswith("infos/") and np.ndim(raw[key]) >= 1]
    for key in step_keys + info_keys:
        if len(raw[key]) != n_steps:
            raise DatasetError(f"{source}: key '{key}' has {len(raw[key])} rows but 'observations' has "
                               f"{n_steps}; every per-step key needs one row per step")
    if "next_observations" in raw and raw["next_observations"].shape != raw["observations"].shape:
        raise DatasetError(f"{source}: key 'next_observations' has shape {raw['next_observations'].shape}; "
                           f"expected the shape of 'observations', {raw['observations'].shape}")

    for key in step_keys:
        value = raw[key]
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            bad_rows = np.flatnonzero(~np.isfinite(value.reshape(n_steps, -1)).all(axis=1))
            raise DatasetError(f"{source}: key '{key}' holds NaN or inf in {len(bad_rows)} row(s) "
                               f"(first: row {bad_rows[0]}); expected finite numbers")
    for key in FLAG_KEYS:
        if key in raw and not np.isin(raw[key], (0, 1)).all():
            odd = raw[key][~np.isin(raw[key], (0, 1))]
            raise DatasetError(f"{source}: key '{key}' holds the value {odd[0].item()}; "
                               "expected only 0/1 (or booleans)")

    for key, expected in (("observations", expected_obs_dim), ("actions", expected_act_dim)):
        if expected is not None and raw[key].shape[1] != expected:
            raise DatasetError(f"{source}: key '{key}' has size {raw[key].shape[1]} per step; "
                               f"expected {expected} for this task")


def qlearning_dataset(raw: dict[str, Any], terminate_on_end: bool = False,
                      max_episode_steps: int = DEFAULT_MAX_EPISODE_STEPS,
                      use_d4rl_package: bool = False) -> dict[str, np.ndarray]:
    """Transitions ``observations, actions, next_observations, rewards, terminals`` (all float32).

    Same rows and values as ``d4rl.qlearning_dataset(env, dataset=raw, terminate_on_end)``:

    * row ``i`` becomes a transition for ``i`` in ``0 .. N-2``; its next observation is
      ``observations[i + 1]``. A stored ``next_observations`` key is ignored, as d4rl ignores it. After a
      terminal the next observation is the next episode's first one; the terminal flag masks it.
    * row ``i`` is an episode's final step when ``timeouts[i]`` is set or, in files without
      ``timeouts``, when d4rl's step counter reaches ``max_episode_steps - 1`` (see below). Unless
      ``terminate_on_end``, final steps are dropped, because their next observation is unknown; with
      ``terminate_on_end`` they are kept with their stored terminal flag (d4rl does not set it).
    * ``terminals`` is the stored terminal flag; timeouts never count as terminal.

    d4rl returns ``terminals`` as bool; here it is float32 0/1 like everything else.

    ``use_d4rl_package=True`` calls the real ``d4rl.qlearning_dataset`` instead (it must be importable),
    which is useful to cross-check this implementation where d4rl and MuJoCo 2.1 are installed.
    """
    validate_raw(raw, "dataset")
    if use_d4rl_package:
        return _qlearning_with_d4rl_package(raw, terminate_on_end, max_episode_steps)
    n_transitions = len(raw["observations"]) - 1
    if "timeouts" in raw:
        final = raw["timeouts"][:n_transitions].astype(bool)
    else:
        final = _legacy_final_steps(raw["terminals"][:n_transitions], max_episode_steps, terminate_on_end)
    rows = np.arange(n_transitions) if terminate_on_end else np.flatnonzero(~final)
    if len(rows) == 0:
        raise DatasetError(f"dataset: no transitions left from {n_transitions + 1} rows (every row is the "
                           "last of the dataset or an episode's final step)")
    observations = raw["observations"]
    return {
        "observations": observations[rows].astype(np.float32),
        "actions": raw["actions"][rows].astype(np.float32),
        "next_observations": observations[rows + 1].astype(np.float32),
        "rewards": raw["rewards"][rows].astype(np.float32),
        "terminals": raw["terminals"][rows].astype(np.float32),
    }


def _legacy_final_steps(terminals: np.ndarray, max_episode_steps: int, terminate_on_end: bool) -> np.ndarray:
    """Which rows d4rl treats as an episode's final step in a file without ``timeouts``.

    d4rl walks the rows with a counter ``episode_step`` and calls row ``i`` final when the counter is
    ``max_episode_steps - 1``. Its bookkeeping, reproduced here, is uneven:

    * a final row that is dropped resets the counter to 0, so the next row starts a new episode at 0;
    * a kept row that is terminal (or final, with ``terminate_on_end``) resets the counter to 0 and then
      counts itself, so the next episode starts at 1 and reaches the limit one row early.

    In files whose episodes all end by the time limit the two agree with the true boundaries; after a
    terminal, d4rl drops the second-to-last row of a full-length episode and keeps its last row, whose
    next observation is the following episode's first. We keep that quirk: it is part of the data the
    published numbers were trained on.
    """
    final = np.zeros(len(terminals), dtype=bool)
    episode_step = 0
    for i, done in enumerate(terminals.astype(bool).tolist()):
        at_limit = episode_step == max_episode_steps - 1
        final[i] = at_limit
        if at_limit and not terminate_on_end:
            episode_step = 0
        elif at_limit or done:
            episode_step = 1
        else:
            episode_step += 1
    return final


def _qlearning_with_d4rl_package(raw: dict[str, Any], terminate_on_end: bool,
                                 max_episode_steps: int) -> dict[str, np.ndarray]:
    try:
        import d4rl
    # d4rl raises a plain Exception (not ImportError) when the MuJoCo 2.1 binaries are missing.
    except Exception as exc:
        raise DatasetError(
            f"use_d4rl_package=True needs the d4rl package, which could not be imported ({exc}); "
            "install d4rl and mujoco-py, or use use_d4rl_package=False, which reproduces "
            "d4rl.qlearning_dataset exactly") from exc
    # With an explicit dataset, d4rl reads only the env's episode limit (for files without timeouts).
    env = SimpleNamespace(_max_episode_steps=max_episode_steps)
    transitions = d4rl.qlearning_dataset(env, dataset=raw, terminate_on_end=terminate_on_end)
    return {key: np.asarray(value, dtype=np.float32) for key, value in transitions.items()}
