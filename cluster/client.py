"""Talking to a Ray cluster's job server: connect with the auth token, follow jobs, turn Ray's errors into one line.

Everything goes through ``ray.job_submission.JobSubmissionClient`` (HTTP to the dashboard, port 8265 by
default). Ray is imported inside the functions, so the ``erdiff`` command starts without it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cluster.auth import TOKEN_ENV, TOKEN_PATH_ENV, AuthToken, default_token_path, find_auth_token
from erdiff.errors import ErdiffError

ADDRESS_ENVS = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
"""Where the address comes from when ``--address`` is not given, in Ray's own order."""

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class ClusterError(ErdiffError):
    """The cluster cannot be reached, refused a request, or does not know a job."""


def resolve_address(address: str | None) -> str:
    """The job server's URL: ``--address``, else ``$RAY_API_SERVER_ADDRESS``, else ``$RAY_ADDRESS``."""
    source = "--address"
    if not address:
        source, address = next(((f"${name}", os.environ[name]) for name in ADDRESS_ENVS if os.environ.get(name)),
                               (None, None))
    if not address:
        raise ClusterError("no cluster address: pass --address http://HEAD:8265 (the Ray dashboard's address) "
                           "or set RAY_API_SERVER_ADDRESS")
    if not address.startswith(("http://", "https://")):
        raise ClusterError(f"{source} {address!r}: expected the Ray dashboard's HTTP address, like http://HEAD:8265")
    return address.rstrip("/")


@contextmanager
def _address_env_hidden() -> Iterator[None]:
    """Ray's client lets RAY_API_SERVER_ADDRESS / RAY_ADDRESS override the address it is given (they are set
    inside every Ray job, for one); erdiff has already chosen the address, so hide them while connecting."""
    saved = {name: os.environ.pop(name) for name in ADDRESS_ENVS if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _missing_token_message(address: str) -> str:
    return (f"the Ray cluster at {address} requires an auth token and none is configured: set {TOKEN_ENV}, "
            f"or {TOKEN_PATH_ENV} to a file holding it, or put it in {default_token_path()} "
            "(print it on the head node with `ray get-auth-token`)")


@contextmanager
def ray_errors(address: str, token: AuthToken | None) -> Iterator[None]:
    """Turn the errors of a job-server request into a :class:`ClusterError` that says what to do."""
    import requests
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError as err:
        if token is None:
            raise ClusterError(_missing_token_message(address)) from err
        raise ClusterError(f"the Ray cluster at {address} rejected the auth token from {token.source}: "
                           "it is not this cluster's token (print it on the head node with `ray get-auth-token`)"
                           ) from err
    except (ConnectionError, requests.RequestException) as err:
        raise ClusterError(f"cannot reach the Ray job server at {address}: is the head running and its dashboard "
                           "port open to you? (cluster/README.md shows how to forward it)") from err
    except RuntimeError as err:  # what JobSubmissionClient raises for a refused request, e.g. an unknown job
        raise ClusterError(f"the Ray job server at {address} refused the request: {err}") from err


class Cluster:
    """A connection to one cluster's job server, every call wrapped in :func:`ray_errors`."""

    def __init__(self, address: str | None):
        try:
            from ray.job_submission import JobSubmissionClient
        except ImportError as err:
            raise ClusterError("talking to a Ray cluster needs Ray's job client: pip install -e '.[tune]'") from err

        # Ray's job client logs every closed log stream at INFO; erdiff prints the job's end itself.
        logging.getLogger("ray.dashboard.modules.job.sdk").setLevel(logging.WARNING)
        self.address = resolve_address(address)
        self.token = find_auth_token()
        headers = self.token.headers() if self.token else None
        with self.errors(), _address_env_hidden():
            self.client = JobSubmissionClient(self.address, headers=headers)

    def errors(self):
        return ray_errors(self.address, self.token)

    def submit(self, **kwargs) -> str:
        with self.errors():
            return self.client.submit_job(**kwargs)

    def jobs(self) -> list:
        """Jobs submitted through the job API (not the drivers they start), oldest first."""
        with self.errors():
            details = self.client.list_jobs()
        return sorted((d for d in details if d.submission_id), key=lambda d: d.start_time or 0)

    def info(self, submission_id: str):
        with self.errors():
            return self.client.get_job_info(submission_id)

    def logs(self, submission_id: str) -> str:
        with self.errors():
            return self.client.get_job_logs(submission_id)

    def stop(self, submission_id: str) -> bool:
        with self.errors():
            return self.client.stop_job(submission_id)

    def follow(self, submission_id: str) -> None:
        """Print the job's output as it comes, until the job ends."""
        async def tail() -> None:
            async for chunk in self.client.tail_job_logs(submission_id):
                print(chunk, end="", flush=True)

        with self.errors():
            asyncio.run(tail())

    def wait(self, submission_id: str, poll_s: float = 1.0,
             on_change: Callable[[str], object] | None = None) -> str:
        """Poll until the job is SUCCEEDED, FAILED or STOPPED; ``on_change(status)`` on every new status."""
        last = None
        while True:
            status = str(self.info(submission_id).status)
            if status != last and on_change is not None:
                on_change(status)
            last = status
            if status in TERMINAL:
                return status
            time.sleep(poll_s)


def describe_end(cluster: Cluster, submission_id: str) -> tuple[int, str]:
    """Exit code (0 only for SUCCEEDED) and a one-line summary of a finished job."""
    info = cluster.info(submission_id)
    status = str(info.status)
    took = ""
    if info.start_time and info.end_time:
        took = f" after {(info.end_time - info.start_time) / 1000:.1f} s"
    message = f": {info.message}" if info.message and status != "SUCCEEDED" else ""
    return (0 if status == "SUCCEEDED" else 1), f"job {submission_id} {status}{took}{message}"
