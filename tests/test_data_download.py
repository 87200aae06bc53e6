"""D4RL downloads against a real HTTP server on 127.0.0.1 (http.server in a thread, random port)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from erdiff.data import DatasetError, DatasetUnavailableError, d4rl_dataset_path, dataset_url
from erdiff.data.checksum import ChecksumError
from erdiff.presets import ANTMAZE_V2, MAZE2D, PAPER_TASKS
from erdiff.tasks import load_task_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
TASK = "hopper-medium-v2"
SERVED_PATH = "/gym_mujoco_v2/hopper_medium-v2.hdf5"
BODY = os.urandom(300_000)
WAIT_S = 30


class Handler(BaseHTTPRequestHandler):
    """Serves BODY at SERVED_PATH. server.mode: "ok"; "truncate" (close after half the body); "pause"
    (send half, set server.midway, wait for server.release, send the rest)."""

    def do_GET(self):
        server = self.server
        with server.count_lock:
            server.gets += 1
        if self.path != SERVED_PATH:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        half = len(BODY) // 2
        self.wfile.write(BODY[:half])
        self.wfile.flush()
        if server.mode == "truncate":
            self.close_connection = True
            return
        if server.mode == "pause":
            server.midway.set()
            server.release.wait(WAIT_S)
        self.wfile.write(BODY[half:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.mode, httpd.gets, httpd.count_lock = "ok", 0, threading.Lock()
    httpd.midway, httpd.release = threading.Event(), threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "d4rl-cache"
    monkeypatch.setenv("D4RL_DATASET_DIR", str(folder))
    return folder


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.part")) if folder.exists() else []


def test_url_table_covers_the_tasks_with_d4rl_file_names(monkeypatch):
    monkeypatch.delenv("ERDIFF_D4RL_BASE_URL", raising=False)
    for task in PAPER_TASKS + ANTMAZE_V2 + MAZE2D:
        assert dataset_url(task).startswith("http://rail.eecs.berkeley.edu/datasets/offline_rl/")
    base = "http://rail.eecs.berkeley.edu/datasets/offline_rl"
    assert dataset_url("hopper-medium-replay-v2") == f"{base}/gym_mujoco_v2/hopper_medium_replay-v2.hdf5"
    assert dataset_url("antmaze-large-play-v0") == (
        f"{base}/ant_maze_new/Ant_maze_hardest-maze_noisy_multistart_True_multigoal_False_sparse.hdf5")
    assert dataset_url("antmaze-umaze-v2") == (
        f"{base}/ant_maze_v2/Ant_maze_u-maze_noisy_multistart_False_multigoal_False_sparse_fixed.hdf5")
    assert dataset_url("pen-cloned-v1") == f"{base}/hand_dapg_v1/pen-cloned-v1.hdf5"
    assert dataset_url("kitchen-complete-v0") == (
        f"{base}/kitchen/mini_kitchen_microwave_kettle_light_slider-v0.hdf5")
    assert dataset_url("maze2d-large-v1") == f"{base}/maze2d/maze2d-large-sparse-v1.hdf5"
    monkeypatch.setenv("ERDIFF_D4RL_BASE_URL", "http://mirror.example/d4rl/")
    assert dataset_url("pen-human-v1") == "http://mirror.example/d4rl/hand_dapg_v1/pen-human-v1.hdf5"
    assert dataset_url("pen-human-v1", base_url="http://other") == "http://other/hand_dapg_v1/pen-human-v1.hdf5"
    with pytest.raises(DatasetError, match="no D4RL dataset is known for task 'hopper-v9'"):
        dataset_url("hopper-v9")


def test_download_once_then_cached_with_sha256_sidecar(server, cache):
    path = d4rl_dataset_path(TASK, base_url=server.base_url)
    assert path == cache / "hopper_medium-v2.hdf5"
    assert path.read_bytes() == BODY
    digest = hashlib.sha256(BODY).hexdigest()
    assert (cache / "hopper_medium-v2.hdf5.sha256").read_text() == f"{digest}  hopper_medium-v2.hdf5\n"
    assert d4rl_dataset_path(TASK, base_url=server.base_url, expected_sha256=digest) == path
    assert server.gets == 1
    assert leftovers(cache) == []


def test_download_gets_the_umask_permissions(server, cache):
    old = os.umask(0o027)
    try:
        path = d4rl_dataset_path(TASK, base_url=server.base_url)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640  # not mkstemp's 0600


def test_a_download_changed_on_disk_is_refused_before_training(server, cache, monkeypatch):
    path = d4rl_dataset_path(TASK, base_url=server.base_url)
    changed = bytearray(BODY)
    changed[1000] ^= 0xFF
    path.write_bytes(bytes(changed))
    monkeypatch.setenv("ERDIFF_D4RL_BASE_URL", server.base_url)
    with pytest.raises(ChecksumError, match=f"{path}: sha256 {hashlib.sha256(changed).hexdigest()} does not "
                                            f"match {hashlib.sha256(BODY).hexdigest()} recorded in {path}.sha256"):
        load_task_dataset(TASK)
    assert server.gets == 1


def test_missing_file_without_download_says_where_to_put_it(cache):
    with pytest.raises(DatasetUnavailableError) as info:
        d4rl_dataset_path(TASK, download=False)
    message = str(info.value)
    assert str(cache / "hopper_medium-v2.hdf5") in message
    assert "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2/hopper_medium-v2.hdf5" in message


def test_offline_connection_refused_is_one_clear_error(cache):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DatasetUnavailableError) as info:
        d4rl_dataset_path(TASK, base_url=f"http://127.0.0.1:{port}")
    message = str(info.value)
    assert f"could not download http://127.0.0.1:{port}{SERVED_PATH}" in message
    assert "Connection refused" in message
    assert f"put it at {cache / 'hopper_medium-v2.hdf5'}" in message
    assert not (cache / "hopper_medium-v2.hdf5").exists()


def test_http_error_names_the_url(server, cache):
    with pytest.raises(DatasetUnavailableError, match="could not download .*/hand_dapg_v1/pen-human-v1.hdf5 "
                                                      "\\(Not Found\\)"):
        d4rl_dataset_path("pen-human-v1", base_url=server.base_url)


def test_no_partial_file_under_the_final_name(server, cache):
    cache.mkdir()
    stale = cache / ".hopper_medium-v2.hdf5.killed.part"  # left by a download that was killed
    stale.write_bytes(b"old")
    server.mode = "pause"
    result = {}

    def load():
        result["path"] = d4rl_dataset_path(TASK, base_url=server.base_url)

    worker = threading.Thread(target=load)
    worker.start()
    assert server.midway.wait(WAIT_S)
    deadline = time.monotonic() + WAIT_S
    while not leftovers(cache) and time.monotonic() < deadline:  # the client opens its .part file
        time.sleep(0.01)
    assert len(leftovers(cache)) == 1 and not stale.exists()
    assert not (cache / "hopper_medium-v2.hdf5").exists()
    server.release.set()
    worker.join(WAIT_S)
    assert result["path"].read_bytes() == BODY
    assert leftovers(cache) == []


def test_interrupted_download_leaves_nothing_and_a_retry_succeeds(server, cache):
    server.mode = "truncate"
    with pytest.raises(DatasetUnavailableError,
                       match=f"interrupted after {len(BODY) // 2} of {len(BODY)} bytes; nothing was kept"):
        d4rl_dataset_path(TASK, base_url=server.base_url)
    assert not (cache / "hopper_medium-v2.hdf5").exists()
    assert leftovers(cache) == []
    server.mode = "ok"
    assert d4rl_dataset_path(TASK, base_url=server.base_url).read_bytes() == BODY


def test_sha256_mismatch_removes_the_download(server, cache):
    wrong, right = "0" * 64, hashlib.sha256(BODY).hexdigest()
    with pytest.raises(DatasetError, match=f"has sha256 {right}, expected {wrong}; the file was removed"):
        d4rl_dataset_path(TASK, base_url=server.base_url, expected_sha256=wrong)
    assert sorted(p.name for p in cache.iterdir()) == ["hopper_medium-v2.hdf5.lock"]
    path = d4rl_dataset_path(TASK, base_url=server.base_url, expected_sha256=right)
    with pytest.raises(DatasetError, match="does not match the expected 0000"):
        d4rl_dataset_path(TASK, base_url=server.base_url, expected_sha256=wrong)
    assert path.read_bytes() == BODY  # an existing file is reported, not deleted


def test_existing_file_without_sidecar_is_hashed(cache):
    cache.mkdir()
    (cache / "hopper_medium-v2.hdf5").write_bytes(b"placed by hand")
    digest = hashlib.sha256(b"placed by hand").hexdigest()
    d4rl_dataset_path(TASK, download=False, expected_sha256=digest)
    assert (cache / "hopper_medium-v2.hdf5.sha256").read_text().split()[0] == digest


LOADER = """
import sys
from erdiff.data import d4rl_dataset_path
print("ready", flush=True)
print(d4rl_dataset_path(sys.argv[1]), flush=True)
"""


def test_two_processes_download_once(server, cache):
    """Process A is paused mid-download (holding the lock); process B starts its load meanwhile. Without
    the lock B would send its own GET during the pause; with it, B waits and finds A's file."""
    server.mode = "pause"
    env = {**os.environ, "D4RL_DATASET_DIR": str(cache), "ERDIFF_D4RL_BASE_URL": server.base_url,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}

    def start():
        return subprocess.Popen([sys.executable, "-c", LOADER, TASK], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    first = start()
    assert first.stdout.readline().strip() == "ready"
    assert server.midway.wait(WAIT_S)
    second = start()
    assert second.stdout.readline().strip() == "ready"
    try:
        second.wait(1.0)  # B's GET, if it sent one, would arrive within this second
    except subprocess.TimeoutExpired:
        pass
    assert server.gets == 1
    server.release.set()
    outputs = [process.communicate(timeout=WAIT_S) for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], outputs
    assert {out.strip() for out, _ in outputs} == {str(cache / "hopper_medium-v2.hdf5")}
    assert server.gets == 1
    assert (cache / "hopper_medium-v2.hdf5").read_bytes() == BODY
