"""check_storage_for_cluster: a multi-node sweep needs storage every node sees.

The mount tables are real files in /proc/mounts format: this machine's own, and small ones written here
for mounts this machine does not have (NFS).
"""

import pytest

from cluster.storage import (
    SHARED_STORAGE_ENV,
    StorageError,
    check_out_dir_for_cluster,
    check_storage_for_cluster,
    filesystem_of,
)

MOUNTS = """\
overlay / overlay rw,relatime 0 0
proc /proc proc rw,relatime 0 0
fs-1.efs.us-west-2.amazonaws.com:/ /mnt/shared nfs4 rw,vers=4.1,hard 0 0
/dev/nvme1n1 /mnt/shared/scratch ext4 rw,relatime 0 0
10.0.0.2:/vol /mnt/my\\040share nfs rw,vers=3 0 0
gcsfuse-bucket /mnt/gcs fuse.gcsfuse rw,nosuid 0 0
"""


@pytest.fixture
def mounts(tmp_path):
    path = tmp_path / "mounts"
    path.write_text(MOUNTS)
    return path


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
    monkeypatch.delenv(SHARED_STORAGE_ENV, raising=False)


@pytest.mark.parametrize("uri", ["s3://bucket/erdiff/quickstart", "gs://bucket/x", "GS://bucket/x", "abfs://c@a/x"])
def test_object_store_uris_pass_on_any_cluster(uri):
    check_storage_for_cluster(uri, num_nodes=16)


def test_any_absolute_path_passes_on_one_node(tmp_path):
    check_storage_for_cluster(str(tmp_path / "results"), num_nodes=1)


def test_local_disk_on_several_nodes_is_refused_with_what_to_use_instead(tmp_path):
    # tmp_path is on this machine's own disk, read from the real /proc/mounts
    fstype, mount_point = filesystem_of(str(tmp_path))
    with pytest.raises(StorageError) as caught:
        check_storage_for_cluster(str(tmp_path / "results"), num_nodes=3)
    message = str(caught.value)
    assert str(tmp_path / "results") in message and "3 nodes" in message
    assert f"'{fstype}'" in message and mount_point in message
    assert "S3" in message and "NFS" in message


def test_file_uri_is_a_local_path(tmp_path):
    with pytest.raises(StorageError, match="local"):
        check_storage_for_cluster(f"file://{tmp_path}/results", num_nodes=2)


@pytest.mark.parametrize("path", ["/mnt/shared/results/quickstart", "/mnt/shared", "/mnt/my share/r", "/mnt/gcs/r"])
def test_paths_on_shared_filesystems_pass(mounts, path):
    check_storage_for_cluster(path, num_nodes=4, mounts_file=mounts)


@pytest.mark.parametrize("path, fstype", [
    ("/mnt/shared/scratch/results", "ext4"),  # a local disk mounted inside the NFS tree
    ("/mnt/sharedx/results", "overlay"),      # a sibling that only shares a name prefix
    ("/home/me/results", "overlay"),
])
def test_the_longest_mount_point_decides(mounts, path, fstype):
    assert filesystem_of(path, mounts)[0] == fstype
    with pytest.raises(StorageError, match=f"local '{fstype}'"):
        check_storage_for_cluster(path, num_nodes=2, mounts_file=mounts)


def test_unreadable_mount_table_is_refused(tmp_path):
    with pytest.raises(StorageError, match="cannot identify"):
        check_storage_for_cluster("/mnt/shared/results", num_nodes=2, mounts_file=tmp_path / "missing")


def test_relative_path_is_refused_even_on_one_node():
    with pytest.raises(StorageError, match="absolute path or a URI"):
        check_storage_for_cluster("results/quickstart", num_nodes=1)


def test_shared_storage_can_be_declared(monkeypatch, mounts):
    monkeypatch.setenv(SHARED_STORAGE_ENV, "1")
    check_storage_for_cluster("/home/me/results", num_nodes=2, mounts_file=mounts)


def test_out_dir_on_nfs_passes_and_on_a_local_disk_is_refused_with_nfs_advice(mounts):
    check_out_dir_for_cluster("/mnt/shared/results/quickstart", num_nodes=4, mounts_file=mounts)
    check_out_dir_for_cluster("/home/me/results", num_nodes=1, mounts_file=mounts)
    with pytest.raises(StorageError) as caught:
        check_out_dir_for_cluster("/home/me/results", num_nodes=4, mounts_file=mounts)
    message = str(caught.value)
    assert "'overlay'" in message and "4 nodes" in message and "NFS" in message and "S3" not in message


@pytest.mark.parametrize("out, expected", [("s3://bucket/results", "plain files"), ("results", "absolute path")])
def test_out_dir_must_be_an_absolute_path(out, expected):
    with pytest.raises(StorageError, match=expected):
        check_out_dir_for_cluster(out, num_nodes=1)


def test_sweep_refuses_an_object_store_out_before_starting_ray(tmp_path):
    from tune.spec import load_spec
    from tune.sweep import run_sweep

    spec = load_spec("tune/configs/quickstart.yaml")
    with pytest.raises(StorageError, match="must be a path on a filesystem every node mounts"):
        run_sweep(spec, "s3://bucket/results")
