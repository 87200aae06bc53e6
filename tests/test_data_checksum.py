"""SHA-256 records of dataset files: written with every generated file, checked before training reads it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from erdiff.cli import main
from erdiff.data.checksum import ChecksumError
from erdiff.data.generate import make_dataset
from erdiff.tasks import DATA_DIR_ENV, load_task_dataset

TASK = "pendulum-medium"


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def flip_action_bytes(path: Path) -> None:
    """Change one float of the actions array in place, through the raw bytes of the file (no HDF5 rewrite)."""
    with h5py.File(path, "r") as handle:
        offset = handle["actions"].id.get_offset()
    with open(path, "r+b") as raw:
        raw.seek(offset + 4 * 10)
        value = raw.read(4)
        raw.seek(offset + 4 * 10)
        raw.write(bytes(b ^ 0xFF for b in value))


def test_make_records_the_sha256_in_sha256sum_format(tmp_path):
    path = make_dataset(TASK, tmp_path / "p.hdf5", size=200)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (tmp_path / "p.hdf5.sha256").read_text() == f"{digest}  p.hdf5\n"
    if shutil.which("sha256sum"):
        done = subprocess.run(["sha256sum", "-c", "p.hdf5.sha256"], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout == "p.hdf5: OK\n"


def test_changed_bytes_are_one_clear_error_before_training(tmp_path, capsys):
    path = make_dataset(TASK, tmp_path / "p.hdf5", size=200)
    recorded = hashlib.sha256(path.read_bytes()).hexdigest()
    unchanged = load_task_dataset(TASK, path)
    flip_action_bytes(path)
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ChecksumError) as error:
        load_task_dataset(TASK, path)
    message = str(error.value)
    assert message.startswith(f"{path}: sha256 {actual} does not match {recorded} recorded in {path}.sha256")
    assert "Delete both files" in message and f"erdiff dataset checksum {path} --record" in message

    # The same through `erdiff train`: one line, exit status 2, nothing trained.
    argv = ["train", "--task", TASK, "--train.dataset", str(path), "--out", str(tmp_path / "run"), "--quiet",
            "--train.epochs", "1", "--train.steps_per_epoch", "1", "--train.eval_episodes", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"erdiff train: error: {path}: sha256 {actual} does not match") and err.count("\n") == 1
    assert not (tmp_path / "run" / "checkpoint.pt").exists()

    # Changed on purpose: re-recorded, it loads (and holds the changed action).
    assert main(["dataset", "checksum", str(path), "--record"]) == 0
    assert f"recorded sha256 {actual}" in capsys.readouterr().out
    changed = load_task_dataset(TASK, path)
    assert not np.array_equal(changed["actions"], unchanged["actions"])


def test_a_file_without_record_is_read_as_is(tmp_path):
    path = make_dataset(TASK, tmp_path / "p.hdf5", size=200)
    (tmp_path / "p.hdf5.sha256").unlink()
    flip_action_bytes(path)
    assert len(load_task_dataset(TASK, path)["actions"]) > 0


def test_first_use_generation_of_a_local_task_is_recorded_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    load_task_dataset(TASK)
    path = tmp_path / f"{TASK}.hdf5"
    assert (tmp_path / f"{TASK}.hdf5.sha256").read_text().split() == [
        hashlib.sha256(path.read_bytes()).hexdigest(), path.name]
    flip_action_bytes(path)
    with pytest.raises(ChecksumError, match=f"{path}: sha256 .* does not match"):
        load_task_dataset(TASK)


def test_info_and_checksum_show_the_digest_and_the_record(tmp_path, capsys):
    path = make_dataset(TASK, tmp_path / "p.hdf5", size=200)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert main(["dataset", "info", str(path)]) == 0
    assert f"sha256: {digest} (matches the record in p.hdf5.sha256)" in capsys.readouterr().out
    assert main(["dataset", "checksum", str(path)]) == 0
    assert "sha256 matches the record" in capsys.readouterr().out

    flip_action_bytes(path)
    changed = hashlib.sha256(path.read_bytes()).hexdigest()
    assert main(["dataset", "info", str(path)]) == 0
    assert (f"sha256: {changed} (DOES NOT MATCH the record in p.hdf5.sha256: {digest}; training refuses this "
            "file)") in capsys.readouterr().out
    assert main(["dataset", "checksum", str(path)]) == 2
    assert f"sha256 {changed} does not match {digest}" in capsys.readouterr().err

    (tmp_path / "p.hdf5.sha256").unlink()
    assert main(["dataset", "info", str(path)]) == 0
    assert f"sha256: {changed} (no record: p.hdf5.sha256 does not exist)" in capsys.readouterr().out
    assert main(["dataset", "checksum", str(tmp_path / "missing.hdf5")]) == 2
    assert "missing.hdf5: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("record", [b"not a digest\n", b"", b"\xff\xfe" * 40])
def test_a_malformed_record_is_one_clear_error(tmp_path, record):
    path = make_dataset(TASK, tmp_path / "p.hdf5", size=200)
    (tmp_path / "p.hdf5.sha256").write_bytes(record)
    with pytest.raises(ChecksumError, match=r"p.hdf5.sha256: expected '<64 hex digits>  p.hdf5'"):
        load_task_dataset(TASK, path)


def test_generated_file_gets_the_umask_permissions(tmp_path, umask_027):
    path = make_dataset(TASK, tmp_path / "p.hdf5", size=200)
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.hdf5", "p.hdf5.sha256"]  # no temporary file left
