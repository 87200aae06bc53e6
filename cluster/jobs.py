"""List, inspect, follow and stop the Ray jobs on a cluster.

  erdiff jobs list   [--address URL]                 submitted jobs, oldest first
  erdiff jobs status ID [--address URL]              status, times, entrypoint, spec and results location
  erdiff jobs logs   ID [--follow] [--address URL]   the job's output so far, or followed until it ends
  erdiff jobs stop   ID [--wait] [--address URL]     ask the cluster to stop the job

URL is the cluster's Ray dashboard, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, then $RAY_ADDRESS).
The Ray auth token is sent when one is configured: $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token.
"""

from __future__ import annotations

import argparse
import time


def configure(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", default=None,
                        help="the cluster's Ray dashboard, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, "
                             "then $RAY_ADDRESS)")
    actions = parser.add_subparsers(dest="jobs_action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[common], help="list the submitted jobs, oldest first")
    status = actions.add_parser("status", parents=[common], help="show one job's status and details")
    status.add_argument("job", help="submission id, e.g. erdiff-quickstart-20260101-120000")
    logs = actions.add_parser("logs", parents=[common], help="print a job's output")
    logs.add_argument("job", help="submission id")
    logs.add_argument("--follow", action="store_true", help="keep printing until the job ends")
    stop = actions.add_parser("stop", parents=[common], help="stop a running job")
    stop.add_argument("job", help="submission id")
    stop.add_argument("--wait", action="store_true", help="wait until the job has stopped")


def _clock(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def _duration(start_ms: int | None, end_ms: int | None) -> str:
    if not start_ms:
        return "-"
    seconds = ((end_ms or time.time() * 1000) - start_ms) / 1000
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _list(cluster, args) -> int:
    jobs = cluster.jobs()
    if not jobs:
        print(f"no jobs on {cluster.address}")
        return 0
    width = max(len(job.submission_id) for job in jobs)
    print(f"{'SUBMISSION ID':{width}}  {'STATUS':9}  {'STARTED':19}  {'DURATION':>9}  ENTRYPOINT")
    for job in jobs:
        print(f"{job.submission_id:{width}}  {job.status!s:9}  {_clock(job.start_time):19}  "
              f"{_duration(job.start_time, job.end_time):>9}  {job.entrypoint}")
    return 0


def _status(cluster, args) -> int:
    info = cluster.info(args.job)
    rows = [("job", args.job), ("status", str(info.status)), ("started", _clock(info.start_time)),
            ("ended", _clock(info.end_time)), ("duration", _duration(info.start_time, info.end_time)),
            ("entrypoint", info.entrypoint)]
    rows += [(key.removeprefix("erdiff_"), value) for key, value in sorted((info.metadata or {}).items())
             if key.startswith("erdiff_")]
    if info.message:
        rows.append(("message", info.message))
    for key, value in rows:
        print(f"{key + ':':12} {value}")
    return 0


def _logs(cluster, args) -> int:
    if not args.follow:
        print(cluster.logs(args.job), end="")
        return 0
    from cluster.client import describe_end

    try:
        cluster.follow(args.job)
        cluster.wait(args.job)
    except KeyboardInterrupt:
        print(f"\nstopped following; job {args.job} keeps running")
        return 130
    code, summary = describe_end(cluster, args.job)
    print(summary)
    return code


def _stop(cluster, args) -> int:
    if not cluster.stop(args.job):
        print(f"job {args.job} was not running ({cluster.info(args.job).status})")
        return 0
    if args.wait:
        print(f"job {args.job} {cluster.wait(args.job)}")
    else:
        print(f"asked the cluster to stop job {args.job}")
    return 0


def run(args: argparse.Namespace) -> int:
    from cluster.client import Cluster

    handlers = {"list": _list, "status": _status, "logs": _logs, "stop": _stop}
    return handlers[args.jobs_action](Cluster(args.address), args)
