"""Before ``--resume`` unpickles Ray Tune's experiment state: refuse state that someone else could have written.

``Tuner.restore`` unpickles ``tuner.pkl``, the trials in ``experiment_state-*.json`` (cloudpickle inside the
JSON), the searcher's state and trials' ``error.pkl``; a pickle can run any code (``__reduce__``). So whoever
can write the experiment folder can run code as the user who resumes. The check: every file and directory of
the experiment folder, and every directory from there up to the results root, must be owned by this user,
writable by no one else (not by others; by the group only when it is the user's own private group) and not
be a symbolic link. Whoever passes that could as well change the user's code, so nothing is lost by trusting
them.

Why not a keyed digest written when the state is saved: Tune rewrites its state throughout a run, from its
own code, and the driver may be SIGKILLed at any moment, so a digest would lag behind the files or be
missing exactly when a resume is needed. Ownership and modes are checked on the files as they are.

Object stores (``s3://``, ``gs://``, ...) have no owners or modes to check: resuming from one is refused
unless the user declares the bucket trusted (``--trust-tune-state``). The check reads the local filesystem
of the driver; on NFS the owners are those the server reports (root squashing makes root's files
``nobody``'s: then the check refuses). It does not check ``<storage>/train/`` (Ray Train's state there is
JSON, not pickles) nor the run directories (``checkpoint.pt`` is loaded with ``weights_only=True``).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

from cluster.storage import URI_SCHEME
from erdiff.errors import ErdiffError

TRUST_FLAG = "--trust-tune-state"
WAY_OUT = (f"start a new sweep with another --out, or, only if you trust everyone who could have written it, pass "
           f"{TRUST_FLAG} (dangerous: resuming runs whatever code the state's pickles hold)")


class UntrustedStateError(ErdiffError):
    """Ray Tune's state of a sweep could have been written by someone else."""


def check_tune_state(experiment: str, root: str) -> None:
    """Raise :class:`UntrustedStateError` unless the Tune experiment folder ``experiment`` (a path below
    ``root``, or a URI) could only have been written by this user (see the module docstring)."""
    if URI_SCHEME.match(experiment):
        raise UntrustedStateError(f"cannot resume from {experiment}: Ray Tune's state is unpickled on resume and "
                                  "erdiff cannot check who could write an object store; " + WAY_OUT)
    problems = []
    for path in [*_tree(Path(experiment)), *_parents(Path(experiment), Path(root))]:
        problem = _why_untrusted(path)
        if problem:
            problems.append(f"{path} {problem}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UntrustedStateError(f"refusing to resume from {experiment}: Ray Tune's state is unpickled on resume, "
                                  f"which runs any code it holds, and {problems[0]}{more}; " + WAY_OUT)


def _tree(top: Path) -> list[Path]:
    """``top`` and everything below it, without following symbolic links."""
    found = [top]
    for directory, dirs, files in os.walk(top):
        found += [Path(directory, name) for name in dirs + files]
    return found


def _parents(path: Path, root: Path) -> list[Path]:
    """The directories above ``path`` up to ``root`` (included)."""
    return [parent for parent in path.parents if parent == root or root in parent.parents]


def _why_untrusted(path: Path) -> str | None:
    try:
        info = path.lstat()
    except FileNotFoundError:  # gone meanwhile: nothing left to unpickle from it
        return None
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if info.st_uid != os.geteuid():
        return f"is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
    if info.st_mode & stat.S_IWOTH:
        return "is writable by others"
    if info.st_mode & stat.S_IWGRP and not _private_group(info.st_gid):
        return f"is writable by its group (gid {info.st_gid})"
    return None


def _private_group(gid: int) -> bool:
    """Whether ``gid`` is this user's own group (its primary group, with no other members): a umask of 002
    then writes group-writable files that no one else can write."""
    try:
        user = pwd.getpwuid(os.geteuid())
        return gid == user.pw_gid and set(grp.getgrgid(gid).gr_mem) <= {user.pw_name}
    except KeyError:
        return False
