"""SHA-256 records of dataset files, so that a file changed after it was written is caught before training.

Every dataset file erdiff writes (a D4RL download, `erdiff dataset make`, a local task's first-use generation)
gets a sidecar ``<file>.sha256`` next to it in ``sha256sum`` format (``<digest>  <file name>``, so
``sha256sum -c <file>.sha256`` checks it too). :func:`erdiff.tasks.load_task_dataset` verifies a file against
its sidecar before reading it; a file without one (placed by hand, or made before these records existed) is
read as is. Hashing reads the file in 1 MiB chunks.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from erdiff.data.d4rl import DatasetError
from erdiff.results import atomic_write_bytes

CHUNK_BYTES = 1 << 20


class ChecksumError(DatasetError):
    """A dataset file does not match the SHA-256 recorded next to it."""


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of the file at ``path``, read in chunks."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            hasher.update(chunk)
    return hasher.hexdigest()


def record_sha256(path: str | Path, digest: str | None = None) -> str:
    """Write the sidecar of ``path`` (atomically) with ``digest``, or the file's digest; return the digest."""
    path = Path(path)
    digest = digest or file_sha256(path)
    atomic_write_bytes(sidecar_path(path), f"{digest}  {path.name}\n".encode())
    return digest


def recorded_sha256(path: str | Path) -> str | None:
    """The digest in the sidecar of ``path``, or None without a sidecar (bare digests of older sidecars too)."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return None
    fields = sidecar.read_text(errors="replace").split()  # binary garbage is reported below, not raised
    digest = fields[0].lower() if fields else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ChecksumError(f"{sidecar}: expected '<64 hex digits>  {Path(path).name}' (sha256sum format); "
                            f"delete it, or re-record it with `erdiff dataset checksum {path} --record`")
    return digest


def verify_sha256(path: str | Path) -> str | None:
    """Check the file at ``path`` against its record: a :class:`ChecksumError` if they differ. Returns the
    recorded digest; None when there is no record (then nothing is read)."""
    recorded = recorded_sha256(path)
    if recorded is not None:
        actual = file_sha256(path)
        if actual != recorded:
            raise ChecksumError(
                f"{path}: sha256 {actual} does not match {recorded} recorded in {sidecar_path(path)} when the "
                f"file was written, so the file changed since. Delete both files and download or generate it "
                f"again (training fetches or generates a task's own dataset when it is missing), or, if you "
                f"changed it on purpose, record the new digest with `erdiff dataset checksum {path} --record`")
    return recorded


def replace_with_record(tmp: Path, path: Path, digest: str) -> None:
    """Rename the complete file ``tmp`` to ``path`` and record ``digest`` next to it.

    The old record goes first: a crash in between leaves a file without a record (read as is), never a new
    file with a stale record.
    """
    sidecar_path(path).unlink(missing_ok=True)
    os.replace(tmp, path)
    record_sha256(path, digest)


def temporary_sibling(path: Path, suffix: str) -> Path:
    """A fresh name next to ``path`` for a file being written. The writer creates it itself (``open(..., "xb")``
    or h5py), so it gets the process's umask permissions, unlike mkstemp's 0600."""
    return path.with_name(f".{path.name}.{os.urandom(6).hex()}{suffix}")
