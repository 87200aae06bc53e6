"""Submit a sweep spec to a Ray cluster as a Ray job.

  erdiff submit tune/configs/quickstart.yaml --address http://HEAD:8265 [--follow | --no-wait]
                [--out DIR] [--resume] [--env NAME=VALUE ...] [--no-pip | --extras LIST] [--working-dir DIR]

The job runs `python -m tune.sweep SPEC --out OUT` in an uploaded copy of this checkout (cluster/runtime_env.yaml
says what stays out of the upload) and is named erdiff-<spec>-<YYYYmmdd-HHMMSS>. Without --follow or
--no-wait the command waits for the job and prints its status changes; the exit code is 0 only if the
job succeeded. `erdiff jobs` lists, follows and stops jobs later.

OUT is an absolute path on the cluster where the trials write their run directories (plain files): on a
cluster of several nodes, a directory every node sees (an NFS mount). An object store (s3://) can hold the
spec's `storage` (Tune's state and checkpoints) but not OUT. OUT is required for a remote cluster; for a
cluster on this machine (127.0.0.1 / localhost) it defaults to results/<spec name> in this checkout, where
`erdiff sweep` would write.

The Ray auth token is sent when one is configured: $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token.
"""

from __future__ import annotations

import argparse
import re
import shlex
import time
from pathlib import Path
from urllib.parse import urlsplit

from cluster.storage import check_out_dir_for_cluster
from erdiff.errors import ErdiffError

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class SubmitError(ErdiffError):
    """A sweep cannot be submitted with the given spec and options."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="sweep spec (YAML) inside the checkout, e.g. tune/configs/quickstart.yaml")
    parser.add_argument("--address", default=None,
                        help="the cluster's Ray dashboard, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, "
                             "then $RAY_ADDRESS)")
    parser.add_argument("--out", default=None,
                        help="absolute path on the cluster for the run directories, shared by every node (NFS); "
                             "required for a remote cluster (default for a local one: results/<spec name> here)")
    parser.add_argument("--resume", action="store_true", help="resume the sweep already in OUT")
    parser.add_argument("--verbose", action="store_true",
                        help="the job's output holds Ray's own output too (erdiff sweep --verbose): Tune's status "
                             "tables and per-trial boxes, what the workers print; by default the sweep's console")
    wait = parser.add_mutually_exclusive_group()
    wait.add_argument("--follow", action="store_true", help="print the job's output until it ends")
    wait.add_argument("--no-wait", action="store_true", help="return as soon as the job is submitted")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment variable for the job, repeatable; e.g. D4RL_DATASET_DIR=/mnt/nfs/d4rl, "
                             "ERDIFF_DATA_DIR=/mnt/nfs/erdiff-data")
    pip = parser.add_mutually_exclusive_group()
    pip.add_argument("--no-pip", action="store_true",
                     help="send no pip requirements: the cluster image already has erdiff's dependencies")
    pip.add_argument("--extras", default="all",
                     help="comma-separated extras whose requirements the job installs (default: all)")
    parser.add_argument("--working-dir", default=None,
                        help="the checkout to upload (default: the one containing the current directory)")


def spec_in_checkout(spec: str, working_dir: Path) -> str:
    """The spec's path relative to the checkout (the job's working directory), in POSIX form."""
    path = Path(spec)
    if not path.is_file():
        raise SubmitError(f"spec {spec} does not exist")
    try:
        return path.resolve().relative_to(working_dir).as_posix()
    except ValueError:
        raise SubmitError(f"spec {spec} is outside the uploaded checkout {working_dir}: the job could not read it; "
                          "copy it into the checkout (e.g. tune/configs/)") from None


def is_local(address: str) -> bool:
    return urlsplit(address).hostname in LOOPBACK_HOSTS


def results_location(out: str | None, address: str, working_dir: Path, name: str) -> str:
    """Where the sweep writes on the cluster (see the module docstring)."""
    if out is None:
        if not is_local(address):
            raise SubmitError(f"--out is required for the remote cluster at {address}: give a directory every node "
                              "sees (an NFS mount); without it results would stay in the job's temporary copy of "
                              "the checkout")
        return str(working_dir / "results" / name)
    # The form only: whether every node sees it is checked on the cluster, by the sweep, against its mounts.
    check_out_dir_for_cluster(out, num_nodes=1)
    return out


def submission_id(name: str, now: float | None = None) -> str:
    """``erdiff-<name>-<YYYYmmdd-HHMMSS>``, the name reduced to letters, digits, ``-`` and ``_``."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "sweep"
    return f"erdiff-{safe}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}"


def sweep_entrypoint(spec: str, out: str, resume: bool, verbose: bool = False) -> str:
    return shlex.join(["python", "-m", "tune.sweep", spec, "--out", out, *(["--resume"] if resume else []),
                       *(["--verbose"] if verbose else [])])


def run(args: argparse.Namespace) -> int:
    from cluster.client import Cluster, describe_end, resolve_address
    from cluster.runtime_env import (
        build_runtime_env,
        find_project_root,
        is_project_root,
        parse_env_vars,
        project_requirements,
    )
    from tune.spec import load_spec

    address = resolve_address(args.address)
    if args.working_dir is None:
        working_dir = find_project_root(Path.cwd())
    else:
        working_dir = Path(args.working_dir).resolve()
        if not is_project_root(working_dir):
            raise SubmitError(f"--working-dir {args.working_dir}: not an erdiff checkout "
                              "(pyproject.toml, erdiff/ and tune/ expected)")
    spec = spec_in_checkout(args.spec, working_dir)
    name = load_spec(working_dir / spec).name  # a broken spec fails here, before anything is uploaded
    out = results_location(args.out, address, working_dir, name)
    extras = [e.strip() for e in args.extras.split(",") if e.strip()]
    requirements = None if args.no_pip else project_requirements(extras)
    runtime_env = build_runtime_env(working_dir, requirements, parse_env_vars(args.env))

    cluster = Cluster(address)
    job_id = cluster.submit(entrypoint=sweep_entrypoint(spec, out, args.resume, args.verbose), runtime_env=runtime_env,
                            submission_id=submission_id(name), metadata={"erdiff_spec": spec, "erdiff_out": out})
    print(f"submitted {job_id} to {address}\n"
          f"  sweep {spec} -> {out}\n"
          f"  follow: erdiff jobs logs {job_id} --follow --address {address}\n"
          f"  stop:   erdiff jobs stop {job_id} --address {address}", flush=True)
    if args.no_wait:
        return 0
    try:
        if args.follow:
            cluster.follow(job_id)
        cluster.wait(job_id, on_change=None if args.follow else lambda status: print(status, flush=True))
    except KeyboardInterrupt:
        print(f"\nstopped waiting; job {job_id} keeps running (erdiff jobs stop {job_id} --address {address})")
        return 130
    code, summary = describe_end(cluster, job_id)
    print(summary)
    return code
