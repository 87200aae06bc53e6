"""End to end against a real Ray head on this machine, with token authentication on: `erdiff submit`,
`erdiff jobs`, and the plain `ray job submit` line of cluster/README.md.

The head is private to this module, so that it cannot meet any other Ray on the machine (another test
session's local Ray, someone's `ray start`):

- its own temp dir under a short /tmp path (Ray's Unix socket paths must stay short);
- every port it listens on picked free here, none of Ray's defaults (6379, 8265, 10001, 52365, ...), and
  worker ports left to the OS (``--min-worker-port 0``);
- it is not stopped with ``ray stop``, which kills every Ray process on the machine by name. ``ray start
  --block`` stays the parent of all the head's processes (GCS, raylet, dashboard, workers, and the job
  drivers, which run in sessions of their own), so the fixture sends SIGTERM to that process tree, then checks
  that no process left on the machine mentions the temp dir in its command line or working directory.

The head runs with ``RAY_AUTH_MODE=token`` and a fresh random ``RAY_AUTH_TOKEN`` (so nothing reads or writes
~/.ray/auth_token); clients get the token, or not, through their environment, with HOME pointed at an empty
folder so that no token file on this machine is picked up by accident.
"""

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from analysis.collect import collect

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SPEC = "tune/configs/quickstart.yaml"
QUICKSTART_RUNS = 8  # 2 x 2 grid x 2 seeds
PORT_OPTIONS = ("--port", "--dashboard-port", "--ray-client-server-port", "--node-manager-port",
                "--object-manager-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                "--runtime-env-agent-port", "--metrics-export-port")
pytestmark = pytest.mark.slow  # a real head (~7 s to start) and sweeps of minutes: about 5 minutes together

CLIENT_ENV_DROPPED = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN",
                      "RAY_AUTH_TOKEN_PATH")


# ---------------------------------------------------------------- processes, from /proc


def _state(pid: int) -> str | None:
    """The process state letter (R, S, Z, ...), None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from the parent ids in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def processes_mentioning(path: str) -> dict[int, str]:
    """Live processes whose command line holds ``path`` or whose working directory is under it."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if (path in command or cwd.startswith(path)) and _state(int(entry)) not in (None, "Z"):
            found[int(entry)] = command[:120]
    return found


def _signal_all(pids, sig) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_gone(pids, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid in pids if _state(pid) not in (None, "Z")]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


# ---------------------------------------------------------------- the head


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@dataclass
class Head:
    process: subprocess.Popen
    address: str
    """the job server's (dashboard's) URL"""
    gcs_address: str
    token: str
    temp_dir: Path
    home: Path

    def env(self, token: str | None = None, **extra: str) -> dict:
        """A client's environment: no Ray address or auth variables but ``token``, HOME an empty folder."""
        env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV_DROPPED}
        env.update(HOME=str(self.home), PATH=f"{BIN}:{env['PATH']}", **extra)
        if token is not None:
            env["RAY_AUTH_TOKEN"] = token
        return env

    def run(self, *args: str, token: str | None = None, timeout: float = 120, **extra: str):
        """Run a command from the project root as a client of this head."""
        return subprocess.run(args, cwd=ROOT, env=self.env(token, **extra), capture_output=True, text=True,
                              timeout=timeout)

    def erdiff(self, *args: str, with_token: bool = True, timeout: float = 120):
        return self.run(str(BIN / "erdiff"), *args, token=self.token if with_token else None, timeout=timeout)


def start_head(temp_dir: Path, home: Path, token: str, num_cpus: int = 2) -> Head:
    ports = free_ports(len(PORT_OPTIONS))
    command = [str(BIN / "ray"), "start", "--head", "--block", "--num-cpus", str(num_cpus),
               "--dashboard-host", "127.0.0.1", "--disable-usage-stats", "--temp-dir", str(temp_dir),
               "--object-store-memory", str(200 * 2**20),
               "--min-worker-port", "0", "--max-worker-port", "0"]
    for option, port in zip(PORT_OPTIONS, ports):
        command += [option, str(port)]
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV_DROPPED}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_USAGE_STATS_ENABLED="0",
               PATH=f"{BIN}:{env['PATH']}")  # the jobs' `python` is this venv's
    log = (temp_dir / "head.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    head = Head(process, f"http://127.0.0.1:{ports[PORT_OPTIONS.index('--dashboard-port')]}",
                f"127.0.0.1:{ports[PORT_OPTIONS.index('--port')]}", token, temp_dir, home)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ray start exited with {process.returncode}:\n{(temp_dir / 'head.log').read_text()}")
        try:
            urllib.request.urlopen(f"{head.address}/api/version", timeout=2)
            return head
        except urllib.error.HTTPError:  # 401 without a token: the job server is up
            return head
        except OSError:
            time.sleep(0.5)
    stop_head(head)
    raise RuntimeError(f"the head's job server did not answer within 120 s:\n{(temp_dir / 'head.log').read_text()}")


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def stop_head(head: Head) -> dict[int, str]:
    """SIGTERM to the head's whole process tree, SIGKILL to what is left after 15 s (Ray's DashboardAgent and
    RuntimeEnvAgent may ignore SIGTERM); returns the processes that still mention the temp dir after that."""
    tree = process_tree(head.process.pid)
    _signal_all(tree, signal.SIGTERM)
    stubborn = _wait_gone(tree, 15)
    if stubborn:
        print(f"\nSIGKILL after 15 s: {sorted(_name(pid) for pid in stubborn)}")
    _signal_all(stubborn, signal.SIGKILL)
    head.process.wait(timeout=30)
    _wait_gone(tree, 10)
    leftovers = processes_mentioning(str(head.temp_dir))
    _signal_all(leftovers, signal.SIGKILL)
    return leftovers


@pytest.fixture(scope="module")
def head():
    temp_dir = Path(tempfile.mkdtemp(prefix="erc-", dir="/tmp"))
    home = temp_dir / "client-home"
    home.mkdir()
    started = time.monotonic()
    head = start_head(temp_dir, home, secrets.token_hex(32))
    print(f"\nhead up in {time.monotonic() - started:.1f} s at {head.address}")
    try:
        yield head
    finally:
        stopping = time.monotonic()
        leftovers = stop_head(head)
        print(f"\nhead stopped in {time.monotonic() - stopping:.1f} s")
        removing = time.monotonic()
        shutil.rmtree(temp_dir, ignore_errors=True)
        print(f"temp dir removed in {time.monotonic() - removing:.1f} s")
        assert not leftovers, f"processes of the test head survived its process tree: {leftovers}"


def submission_id(stdout: str) -> str:
    match = re.search(r"^submitted (\S+) to ", stdout, re.MULTILINE)
    assert match, stdout
    return match.group(1)


def assert_quickstart_results(out: Path) -> None:
    """The sweep's run directories are where they belong and analysis reads every one as completed."""
    collection = collect(out / "trials")
    runs = collection.runs_frame()
    assert len(runs) == QUICKSTART_RUNS, runs
    assert set(runs["state"]) == {"completed"}, runs[["run", "state", "issue"]]
    assert set(runs["task"]) == {"toy"} and set(runs["seed"]) == {0, 1}
    assert all(re.fullmatch(r"trials/[^/]+/seed_[01]", name) for name in runs["run"])
    assert (collection.evals_frame()["normalized_score_mean"].notna()).all()


# ---------------------------------------------------------------- token authentication


def test_without_a_token_the_cluster_refuses_with_what_to_set(head, tmp_path):
    listed = head.erdiff("jobs", "list", "--address", head.address, with_token=False)
    assert listed.returncode == 2
    assert listed.stderr.strip().count("\n") == 0
    assert "requires an auth token and none is configured: set RAY_AUTH_TOKEN" in listed.stderr
    submitted = head.erdiff("submit", SPEC, "--address", head.address, "--no-wait", "--no-pip",
                            "--out", str(tmp_path / "out"), with_token=False)
    assert submitted.returncode == 2 and "requires an auth token" in submitted.stderr
    assert "no jobs" in head.erdiff("jobs", "list", "--address", head.address).stdout


def test_a_wrong_token_is_rejected(head):
    result = head.run(str(BIN / "erdiff"), "jobs", "list", "--address", head.address, token="0" * 64)
    assert result.returncode == 2
    assert "rejected the auth token from $RAY_AUTH_TOKEN" in result.stderr


@pytest.mark.parametrize("source", ["RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token"])
def test_the_token_is_found_where_ray_looks_for_it(head, tmp_path, source):
    if source == "RAY_AUTH_TOKEN":
        result = head.erdiff("jobs", "list", "--address", head.address)
    elif source == "RAY_AUTH_TOKEN_PATH":
        (tmp_path / "token").write_text(head.token + "\n")
        result = head.run(str(BIN / "erdiff"), "jobs", "list", "--address", head.address,
                          RAY_AUTH_TOKEN_PATH=str(tmp_path / "token"))
    else:
        token_file = head.home / ".ray" / "auth_token"
        token_file.parent.mkdir(exist_ok=True)
        token_file.write_text(head.token)
        try:
            result = head.erdiff("jobs", "list", "--address", head.address, with_token=False)
        finally:
            token_file.unlink()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(("no jobs on", "SUBMISSION ID"))


def test_rays_own_cli_sends_the_token_only_with_auth_mode_token(head):
    """Why the README's plain line starts with RAY_AUTH_MODE=token."""
    without = head.run(str(BIN / "ray"), "job", "list", "--address", head.address, token=head.token)
    assert without.returncode != 0 and "Missing authentication token" in without.stdout + without.stderr
    with_mode = head.run(str(BIN / "ray"), "job", "list", "--address", head.address, token=head.token,
                         RAY_AUTH_MODE="token")
    assert with_mode.returncode == 0, with_mode.stderr


# ---------------------------------------------------------------- sweeps (minutes each)


def test_submit_quickstart_follows_the_sweep_and_its_results_land(head, tmp_path):
    out = tmp_path / "quickstart"
    result = head.erdiff("submit", SPEC, "--address", head.address, "--follow", "--out", str(out), timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    job = submission_id(result.stdout)
    assert re.fullmatch(r"erdiff-quickstart-\d{8}-\d{6}", job)
    assert "quickstart: 4 trials" in result.stdout  # the sweep's own summary, streamed by --follow
    assert f"job {job} SUCCEEDED" in result.stdout
    assert_quickstart_results(out)

    listed = head.erdiff("jobs", "list", "--address", head.address)
    row = next(line for line in listed.stdout.splitlines() if line.startswith(job))
    assert "SUCCEEDED" in row and "python -m tune.sweep tune/configs/quickstart.yaml" in row
    status = head.erdiff("jobs", "status", job, "--address", head.address)
    assert re.search(r"^status:\s+SUCCEEDED$", status.stdout, re.MULTILINE)
    assert re.search(rf"^out:\s+{re.escape(str(out))}$", status.stdout, re.MULTILINE)
    logs = head.erdiff("jobs", "logs", job, "--address", head.address)
    assert "quickstart: 4 trials" in logs.stdout


def readme_submit_line() -> str:
    lines = [line for line in (ROOT / "cluster/README.md").read_text().splitlines()
             if line.startswith("RAY_AUTH_MODE=token ray job submit ")]
    assert len(lines) == 1, lines
    return lines[0]


def test_the_readmes_plain_ray_job_submit_line_runs_the_same_sweep(head, tmp_path):
    words = shlex.split(readme_submit_line().removeprefix("RAY_AUTH_MODE=token "))
    words[words.index("--address") + 1] = head.address
    out = tmp_path / "quickstart"
    words[words.index("--out") + 1] = str(out)
    result = head.run(*words, token=head.token, RAY_AUTH_MODE="token", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "quickstart: 4 trials" in result.stdout
    assert_quickstart_results(out)


def placement_groups(head: Head) -> list[dict]:
    """Every placement group of the head's cluster, from Ray's state API on its job server."""
    request = urllib.request.Request(f"{head.address}/api/v0/placement_groups?limit=10000&detail=1",
                                     headers={"Authorization": f"Bearer {head.token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]["result"]["result"]


def test_jobs_stop_stops_a_running_sweep_and_frees_its_placement_groups(head, tmp_path):
    """Stopped while its trials train (placement groups of drivers and seed workers reserved): the job stops and,
    as the earlier report "a stopped job left placement groups reserved" is checked here, its groups go."""
    out = tmp_path / "stopped"
    submitted = head.erdiff("submit", SPEC, "--address", head.address, "--no-wait", "--no-pip", "--out", str(out))
    assert submitted.returncode == 0, submitted.stderr
    job = submission_id(submitted.stdout)
    deadline = time.monotonic() + 300
    while not list(out.glob("trials/*/trial.json")):
        assert time.monotonic() < deadline, "no trial of the job reported within 300 s"
        time.sleep(1)
    assert [pg for pg in placement_groups(head) if pg["state"] == "CREATED"]
    stopped = head.erdiff("jobs", "stop", job, "--wait", "--address", head.address)
    assert stopped.returncode == 0 and f"job {job} STOPPED" in stopped.stdout
    again = head.erdiff("jobs", "stop", job, "--address", head.address)
    assert f"job {job} was not running (STOPPED)" in again.stdout
    deadline = time.monotonic() + 120
    while [pg for pg in placement_groups(head) if pg["state"] != "REMOVED"]:
        assert time.monotonic() < deadline, f"placement groups still reserved 120 s after the stop: " \
                                            f"{[pg for pg in placement_groups(head) if pg['state'] != 'REMOVED']}"
        time.sleep(1)
