"""Make, inspect and check D4RL-format datasets.

  erdiff dataset list                                   generated kinds and D4RL tasks
  erdiff dataset make pendulum-medium --out data/pendulum-medium.hdf5 [--seed 0] [--size N]
  erdiff dataset info data/pendulum-medium.hdf5 [--task pendulum-medium]
  erdiff dataset check data/hopper-noisy.hdf5 --task hopper-noisy [--limit N]
  erdiff dataset checksum data/pendulum-medium.hdf5 [--record]

`make` (and every download or first-use generation) records the file's SHA-256 in <file>.sha256, and
training checks the file against it; `checksum` does that check, and `--record` re-records a file you changed
on purpose. `info` shows the digest and whether it matches the record.

`check` resets the simulator to each row's infos/qpos and infos/qvel, replays the row's action and
compares the reward, next observation and terminal flag with the file: a dataset made on the same
environment matches to float32 precision.
"""

from __future__ import annotations

import argparse
import time

from erdiff.presets import LOCAL_TASKS


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="dataset_action", metavar="ACTION", required=True)
    actions.add_parser("list", help="list the dataset kinds this machine can generate and the D4RL tasks")

    make = actions.add_parser("make", help="generate a local dataset in D4RL HDF5 format")
    make.add_argument("kind", choices=LOCAL_TASKS, help="dataset kind (= the task that trains on it)")
    make.add_argument("--out", required=True, help="output HDF5 file (written atomically)")
    make.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    make.add_argument("--size", type=int, default=None, help="number of rows (default: the kind's default)")

    info = actions.add_parser("info", help="print a dataset's keys, shapes, metadata and episode statistics")
    info.add_argument("file", help="D4RL-format HDF5 file")
    info.add_argument("--task", default=None, help="also print the behaviour's normalized score for TASK")

    check = actions.add_parser("check", help="replay a dataset in the simulator and report mismatches")
    check.add_argument("file", help="D4RL-format HDF5 file with infos/qpos and infos/qvel")
    check.add_argument("--task", required=True, help="task whose environment made the file, e.g. hopper-noisy")
    check.add_argument("--limit", type=int, default=None, help="check only the first LIMIT rows")

    checksum = actions.add_parser("checksum", help="check a dataset file against its <file>.sha256 record")
    checksum.add_argument("file", help="dataset file")
    checksum.add_argument("--record", action="store_true",
                          help="write <file>.sha256 with the file's current digest instead (a file changed on "
                               "purpose, or one placed by hand)")


def run(args: argparse.Namespace) -> int:
    handlers = {"list": _list, "make": _make, "info": _info, "check": _check, "checksum": _checksum}
    return handlers[args.dataset_action](args)


def _list(args: argparse.Namespace) -> int:
    from erdiff.data.generate import KINDS
    from erdiff.tasks import TASKS

    print("Generated on this machine (erdiff dataset make KIND; the task of the same name trains on it):")
    for kind in KINDS.values():
        task = TASKS[kind.name]
        print(f"  {kind.name:28s} {kind.env_id:26s} {kind.default_size:>7d} rows  "
              f"refs [{task.ref_min:g}, {task.ref_max:g}]  {kind.summary}")
    print("D4RL tasks (original HDF5 files, fetched on first use):")
    for task in TASKS.values():
        if task.domain != "local":
            print(f"  {task.name:28s} {task.env_id:52s} refs [{task.ref_min:g}, {task.ref_max:g}]")
    return 0


def _make(args: argparse.Namespace) -> int:
    from erdiff.data.generate import make_dataset

    start = time.perf_counter()
    path = make_dataset(args.kind, args.out, seed=args.seed, size=args.size)
    print(f"wrote {path} ({args.kind}, seed {args.seed}) in {time.perf_counter() - start:.1f} s")
    return _info(argparse.Namespace(file=path, task=args.kind))


def _info(args: argparse.Namespace) -> int:
    import numpy as np

    from erdiff.data.checksum import file_sha256, recorded_sha256, sidecar_path
    from erdiff.data.d4rl import read_d4rl_hdf5
    from erdiff.tasks import get_task

    # A behaviour score against another task's references would be meaningless: check the sizes first.
    task = get_task(args.task) if args.task is not None else None
    obs_dim, act_dim = (task.obs_dim, task.act_dim) if task else (None, None)
    raw = read_d4rl_hdf5(args.file, expected_obs_dim=obs_dim, expected_act_dim=act_dim)
    print(f"{args.file}: {len(raw['observations'])} rows")
    digest, recorded = file_sha256(args.file), recorded_sha256(args.file)
    sidecar = sidecar_path(args.file).name
    if recorded is None:
        print(f"sha256: {digest} (no record: {sidecar} does not exist)")
    elif recorded == digest:
        print(f"sha256: {digest} (matches the record in {sidecar})")
    else:
        print(f"sha256: {digest} (DOES NOT MATCH the record in {sidecar}: {recorded}; training refuses this file)")
    for key in sorted(raw):
        value = raw[key]
        if isinstance(value, np.ndarray) and value.ndim >= 1:
            print(f"  {key:28s} {str(value.shape):16s} {value.dtype}")
        else:
            print(f"  {key:28s} = {value}")
    returns, lengths, ended = dataset_episodes(raw)
    timeouts = int(np.sum(raw["timeouts"])) if "timeouts" in raw else 0
    print(f"episodes: {len(returns)} ({int(np.sum(raw['terminals']))} terminal, {timeouts} timeout, "
          f"{len(returns) - ended} unfinished at the end)")
    print(f"episode length: mean {lengths.mean():.1f}, min {lengths.min()}, max {lengths.max()}")
    print(f"episode return: mean {returns.mean():.3f} +- {returns.std():.3f} "
          f"(min {returns.min():.3f}, max {returns.max():.3f})")
    if args.task is not None:
        from erdiff.envs.scores import normalized_score
        print(f"normalized behaviour score ({args.task} references): "
              f"{normalized_score(args.task, returns.mean()):.1f}")
    return 0


def dataset_episodes(raw: dict):
    """(returns, lengths, number of ended episodes) of the episodes in D4RL rows.

    An episode ends at a row with ``terminals`` or ``timeouts`` set; rows after the last such row form
    one more, unfinished episode (a replay buffer cut mid-episode).
    """
    import numpy as np

    ends = raw["terminals"].astype(bool)
    if "timeouts" in raw:
        ends = ends | raw["timeouts"].astype(bool)
    last_rows = np.flatnonzero(ends)
    ended = len(last_rows)
    if len(last_rows) == 0 or last_rows[-1] != len(ends) - 1:
        last_rows = np.append(last_rows, len(ends) - 1)
    first_rows = np.concatenate([[0], last_rows[:-1] + 1])
    cumulative = np.concatenate([[0.0], np.cumsum(raw["rewards"], dtype=np.float64)])
    return cumulative[last_rows + 1] - cumulative[first_rows], last_rows - first_rows + 1, ended


def _checksum(args: argparse.Namespace) -> int:
    from pathlib import Path

    from erdiff.data.checksum import record_sha256, sidecar_path, verify_sha256
    from erdiff.data.d4rl import DatasetError

    if not Path(args.file).is_file():
        raise DatasetError(f"{args.file}: no such file")
    sidecar = sidecar_path(args.file)
    if args.record:
        print(f"{args.file}: recorded sha256 {record_sha256(args.file)} in {sidecar}")
    elif verify_sha256(args.file) is None:
        print(f"{args.file}: no record ({sidecar} does not exist; --record writes one)")
    else:
        print(f"{args.file}: sha256 matches the record in {sidecar}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from erdiff.envs.consistency import check_dataset

    start = time.perf_counter()
    report = check_dataset(args.file, args.task, limit=args.limit)
    print(report.describe())
    print(f"checked in {time.perf_counter() - start:.1f} s")
    return 0
