"""The Ray runtime environment of a submitted sweep: the project's code, its requirements, environment variables.

The job runs ``python -m tune.sweep SPEC`` in an uploaded copy of the checkout (``working_dir``), so the
code on the cluster is exactly the code here, uncommitted edits included. What is left out of the upload and
the variables every job gets come from ``cluster/runtime_env.yaml``, the same file the plain
``ray job submit --runtime-env cluster/runtime_env.yaml`` line uses, so both ways submit the same job.

Python requirements are the project's own (its dependencies plus the chosen extras, read from the installed
package's metadata) unless the cluster image already has them (``--no-pip``). For each distinct requirement
list Ray makes a virtualenv per node that starts from the cluster Python's packages (``--system-site-packages``,
or a full copy when that Python is itself a virtualenv: 1.6 GB and 9 s for this project's .venv), so
requirements already satisfied are not downloaded again.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import yaml

from erdiff.errors import ErdiffError

RUNTIME_ENV_FILE = Path(__file__).with_name("runtime_env.yaml")
PROJECT = "erdiff"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class RuntimeEnvError(ErdiffError):
    """The runtime environment of a job cannot be built from the given options."""


def base_runtime_env() -> dict:
    """The excludes and environment variables of ``cluster/runtime_env.yaml``."""
    data = yaml.safe_load(RUNTIME_ENV_FILE.read_text())
    return {"excludes": list(data["excludes"]), "env_vars": dict(data["env_vars"])}


def is_project_root(path: Path) -> bool:
    return all((path / name).is_file() for name in ("pyproject.toml", "erdiff/__init__.py", "tune/__init__.py"))


def find_project_root(start: Path) -> Path:
    """The erdiff checkout containing ``start`` (the folder with pyproject.toml, erdiff/ and tune/)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if is_project_root(folder):
            return folder
    raise RuntimeEnvError(f"no erdiff checkout (a folder with pyproject.toml, erdiff/ and tune/) at or above {start}: "
                          "run from your checkout or pass --working-dir")


def project_requirements(extras: list[str]) -> list[str]:
    """The requirement strings of the installed erdiff: its dependencies plus those of ``extras``.

    Extras that name other extras (``all = ["erdiff[envs,tune,...]"]``) are expanded; the order is the
    metadata's, without repeats. Ray is left out: the job runs on the cluster's Ray.
    """
    from packaging.requirements import Requirement

    try:
        metadata = importlib.metadata.metadata(PROJECT)
        lines = importlib.metadata.requires(PROJECT) or []
    except importlib.metadata.PackageNotFoundError as err:
        raise RuntimeEnvError(f"{PROJECT} is not installed (pip install -e .), so its requirements are unknown; "
                              "install it, or pass --no-pip if the cluster image already has them") from err
    known = set(metadata.get_all("Provides-Extra") or [])
    unknown = sorted(set(extras) - known)
    if unknown:
        raise RuntimeEnvError(f"--extras: unknown extra(s) {', '.join(unknown)}; "
                              f"{PROJECT} has: {', '.join(sorted(known))}")

    requirements: list[str] = []
    queue, seen = ["", *extras], set()  # "" stands for the unconditional dependencies
    while queue:
        extra = queue.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in map(Requirement, lines):
            if not _selected_by(requirement, extra):
                continue
            if requirement.name == PROJECT:
                queue.extend(sorted(requirement.extras))
                continue
            if requirement.name == "ray":
                continue  # the cluster's own Ray runs the job; a job cannot bring another one
            requirement.marker = None
            if str(requirement) not in requirements:
                requirements.append(str(requirement))
    return requirements


def _selected_by(requirement, extra: str) -> bool:
    """Whether ``requirement`` is installed with ``extra`` ("" for none); other markers (python_version...)
    are evaluated here, on the submitting machine."""
    if requirement.marker is None:
        return extra == ""
    return requirement.marker.evaluate({"extra": extra})


def parse_env_vars(assignments: list[str]) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` from repeated ``--env`` options, as a dict."""
    env_vars = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not ENV_NAME.fullmatch(key):
            raise RuntimeEnvError(f"--env {item!r}: expected NAME=VALUE with a shell-style variable name")
        env_vars[key] = value
    return env_vars


def build_runtime_env(working_dir: Path, requirements: list[str] | None, env_vars: dict[str, str]) -> dict:
    """The ``runtime_env`` of a sweep job: the checkout (minus the excludes), pip requirements (``None`` for
    none) and environment variables (``env_vars`` added to and overriding the file's)."""
    runtime_env = base_runtime_env()
    runtime_env["working_dir"] = str(working_dir)
    runtime_env["env_vars"].update(env_vars)
    if requirements:
        runtime_env["pip"] = list(requirements)
    return runtime_env
