"""Refuse, before it starts, a multi-node sweep whose results would be scattered over the nodes' own disks.

Since Ray 2.7 Tune no longer copies trial directories to the head node (ray issue #37177): on a cluster of
more than one node, Tune's ``storage_path`` must be storage that every node sees, an object-store URI
(s3://, gs://, ...) or a shared filesystem mounted at the same path on every node (NFS, EFS, Filestore,
Lustre...): :func:`check_storage_for_cluster`. The sweep's ``out`` folder, where the trials write erdiff's
run directories as plain files, must be such a shared filesystem: :func:`check_out_dir_for_cluster`. On a
local disk each trial's checkpoints and run directory land on whichever node ran it, and a resume or a
results table sees only part of the sweep. A single-node cluster may use any absolute path.

Whether a path is shared is read from the filesystem type of its mount (``/proc/mounts`` on the node that
runs the check, the sweep's driver). A shared filesystem of a kind not listed here can be declared with
``ERDIFF_SHARED_STORAGE=1``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from erdiff.errors import ErdiffError

SHARED_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "ceph", "glusterfs", "beegfs", "wekafs",
    "fuse.gcsfuse", "fuse.s3fs", "fuse.mountpoint-s3", "fuse.goofys", "fuse.juicefs", "fuse.rclone",
    "fuse.sshfs", "fuse.glusterfs", "fuse.ceph-fuse", "fuse.cephfs",
})
"""Filesystem types (as /proc/mounts names them) whose files every node of a cluster can see."""

SHARED_STORAGE_ENV = "ERDIFF_SHARED_STORAGE"
URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class StorageError(ErdiffError):
    """A sweep's storage cannot hold the results of every node of the cluster."""


def _unescape_mount_field(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash in paths as octal escapes (``\\040``...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def filesystem_of(path: str, mounts_file: str | Path = "/proc/mounts") -> tuple[str, str] | None:
    """``(filesystem type, mount point)`` of the mount holding ``path`` (which need not exist yet), or None
    when the mount table cannot be read."""
    try:
        lines = Path(mounts_file).read_text().splitlines()
    except OSError:
        return None
    target = str(Path(path).resolve())
    best = None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point, fstype = _unescape_mount_field(fields[1]), fields[2]
        inside = mount_point == "/" or target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        # The longest matching mount point holds the path; a later line for the same point mounts over it.
        if inside and (best is None or len(mount_point) >= len(best[1])):
            best = (fstype, mount_point)
    return best


def _not_shared(path: str, num_nodes: int, mounts_file: str | Path) -> str | None:
    """Why the absolute ``path`` cannot serve ``num_nodes`` nodes, or None when it can."""
    if num_nodes <= 1 or os.environ.get(SHARED_STORAGE_ENV) == "1":
        return None
    mount = filesystem_of(path, mounts_file)
    if mount is not None and mount[0] in SHARED_FILESYSTEMS:
        return None
    where = (f"on a local '{mount[0]}' filesystem (mounted at {mount[1]})" if mount
             else f"on a filesystem erdiff cannot identify ({mounts_file} is unreadable)")
    return f"is {where}, but the Ray cluster has {num_nodes} nodes"


def _declare_hint() -> str:
    return (f"(cluster/README.md, 'Storage'); if this path is shared storage of a kind erdiff does not know, set "
            f"{SHARED_STORAGE_ENV}=1.")


def check_storage_for_cluster(storage_path: str, num_nodes: int, mounts_file: str | Path = "/proc/mounts") -> None:
    """Raise :class:`StorageError` unless every one of ``num_nodes`` nodes can write to ``storage_path``,
    where Ray Tune keeps its experiment state and checkpoints.

    Any non-file URI (s3://, gs://, ...) passes; so does any absolute path on a single node. On more nodes a
    path (or file:// URI) must be on a shared filesystem (:data:`SHARED_FILESYSTEMS`), or
    ``$ERDIFF_SHARED_STORAGE`` must be 1.
    """
    scheme = URI_SCHEME.match(storage_path)
    if scheme and scheme.group(1).lower() != "file":
        return
    path = storage_path[len(scheme.group(0)):] if scheme else storage_path
    if not Path(path).is_absolute():
        raise StorageError(f"storage_path {storage_path!r} must be an absolute path or a URI such as s3://bucket/prefix")
    problem = _not_shared(path, num_nodes, mounts_file)
    if problem:
        raise StorageError(
            f"storage_path {storage_path!r} {problem}: trials on the other nodes would write their checkpoints to "
            "their own disks. Use S3 (s3://bucket/prefix) or a directory on an NFS mount that every node shares "
            + _declare_hint())


def check_out_dir_for_cluster(out_dir: str, num_nodes: int, mounts_file: str | Path = "/proc/mounts") -> None:
    """Raise :class:`StorageError` unless every one of ``num_nodes`` nodes can write run directories under
    ``out_dir``. The trials write them as plain files, so an object-store URI cannot hold them."""
    if URI_SCHEME.match(out_dir):
        raise StorageError(f"out {out_dir!r}: the trials write their run directories as plain files, so it must be a "
                           "path on a filesystem every node mounts (an object store can hold the spec's 'storage')")
    if not Path(out_dir).is_absolute():
        raise StorageError(f"out {out_dir!r} must be an absolute path: a relative one resolves against wherever the "
                           "sweep's driver runs, for a Ray job its temporary copy of the checkout")
    problem = _not_shared(out_dir, num_nodes, mounts_file)
    if problem:
        raise StorageError(
            f"out {out_dir!r} {problem}: trials on the other nodes would write their run directories to their own "
            "disks, out of reach of the results table. Use a directory on an NFS mount that every node shares "
            + _declare_hint())
