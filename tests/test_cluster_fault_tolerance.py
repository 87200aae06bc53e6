"""Fault tolerance across nodes, for real: a two-node Ray cluster on this machine, a sweep across both, and the
second node's raylet SIGKILLed mid-sweep, once a trial on it has reported a checkpoint.

Both nodes have one CPU and every trial needs most of one, so each node runs one trial of two. Results and
Ray's storage are one folder of this machine, declared shared (``ERDIFF_SHARED_STORAGE=1``), as NFS would be
on a real cluster. The lost trial is retried from its checkpoint on the surviving node and every seed ends
with the metrics of an undisturbed sweep (run by a process of its own on a private local Ray). The head and
the node are private to each test, as in test_cluster_e2e.py (own temp dir, free ports, token auth), and
stopped by their process trees, never with ``ray stop``.
"""

import os
import secrets
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from test_cluster_e2e import (
    BIN,
    CLIENT_ENV_DROPPED,
    ROOT,
    _signal_all,
    _wait_gone,
    free_ports,
    process_tree,
    start_head,
    stop_head,
)
from test_tune_sweep import (
    start_sweep,
    tiny_spec,
    trial_evaluation,
    wait_for,
    without_time,
    write_spec,
)

from erdiff import results
from tune.aggregate import read_trial_records
from tune.snapshots import read_sessions

pytestmark = pytest.mark.slow  # two nodes and two sweeps per test: about two minutes each

NODE_PORT_OPTIONS = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                     "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port")


def start_node(head, log: Path) -> subprocess.Popen:
    """A second node of one CPU joining ``head``, with private ports, in a session of its own."""
    command = [str(BIN / "ray"), "start", "--address", head.gcs_address, "--block", "--num-cpus", "1",
               "--disable-usage-stats", "--object-store-memory", str(200 * 2**20),
               "--min-worker-port", "0", "--max-worker-port", "0"]
    for option, port in zip(NODE_PORT_OPTIONS, free_ports(len(NODE_PORT_OPTIONS))):
        command += [option, str(port)]
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV_DROPPED}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=head.token, RAY_USAGE_STATS_ENABLED="0")
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def alive_nodes(head) -> int:
    result = head.run(str(BIN / "python"), "-c", "import ray; ray.init(address='auto', logging_level='ERROR'); "
                      "print(sum(node['Alive'] for node in ray.nodes()))", RAY_ADDRESS=head.gcs_address,
                      token=head.token, RAY_AUTH_MODE="token")
    return int(result.stdout.split()[-1]) if result.returncode == 0 and result.stdout.split() else 0


def raylet_of(node: subprocess.Popen) -> int:
    """The raylet in the node's process tree (its executable, among the processes this test started)."""
    raylets = [pid for pid in process_tree(node.pid) if os.path.realpath(f"/proc/{pid}/exe").endswith("/raylet")]
    assert len(raylets) == 1, raylets
    return raylets[0]


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """A head of one CPU and a second node of one CPU; the trials' datasets in a private folder."""
    monkeypatch.setenv("ERDIFF_DATA_DIR", str(tmp_path / "data"))  # the nodes pass it on to their workers
    temp_dir = Path(tempfile.mkdtemp(prefix="erf-", dir="/tmp"))
    home = temp_dir / "client-home"
    home.mkdir()
    head = start_head(temp_dir, home, secrets.token_hex(32), num_cpus=1)
    node = start_node(head, temp_dir / "node.log")
    try:
        wait_for(lambda: alive_nodes(head) == 2, 120, "the second node to join")
        yield head, node
    finally:
        tree = process_tree(node.pid)
        _signal_all(tree, signal.SIGKILL)
        node.wait(timeout=30)
        _wait_gone(tree, 10)
        leftovers = stop_head(head)
        assert not leftovers, f"processes of the test cluster survived it: {leftovers}"


def sweep_losing_a_node(cluster, tmp_path: Path, data: dict) -> Path:
    """Run ``data`` on the cluster; SIGKILL the second node's raylet once a trial there reported a checkpoint;
    return the results folder after the sweep finished (exit code 0)."""
    head, node = cluster
    out, log = tmp_path / "out", tmp_path / "sweep.log"
    command = [str(BIN / "erdiff"), "sweep", str(write_spec(tmp_path / f"{data['name']}.yaml", data)),
               "--address", head.gcs_address, "--out", str(out)]
    env = head.env(head.token, RAY_AUTH_MODE="token", ERDIFF_SHARED_STORAGE="1")
    sweep = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)

    def on_the_node_with_a_checkpoint() -> str | None:
        on_node = set(process_tree(node.pid))
        for trial_dir in sorted((out / "trials").glob("*")):
            pids = {s["pid"] for seed_dir in trial_dir.glob("seed_*") for s in read_sessions(seed_dir)}
            if pids & on_node and trial_evaluation(trial_dir) >= 1:
                return trial_dir.name
        return None

    try:
        wait_for(lambda: on_the_node_with_a_checkpoint() is not None, 300, "a checkpoint of a trial on the node",
                 sweep)
        lost = on_the_node_with_a_checkpoint()
        os.kill(raylet_of(node), signal.SIGKILL)
        assert sweep.wait(timeout=600) == 0, log.read_text()[-4000:]
    finally:
        if sweep.poll() is None:
            sweep.kill()
    print(f"\nlost {lost} with the node; sweep log tail:\n{log.read_text()[-1500:]}")
    sessions = [read_sessions(seed_dir) for seed_dir in (out / "trials" / lost).glob("seed_*")]
    assert any(len(s) >= 2 and s[-1]["start_evaluation"] >= 1 for s in sessions), sessions  # resumed, not afresh
    return out


def assert_same_metrics(out: Path, reference: Path, data: dict) -> None:
    records = read_trial_records(out)
    assert [r["status"] for r in records] == ["completed"] * len(records) and records
    for record in records:
        for seed in range(data["seeds"]):
            got = results.read_metrics(out / "trials" / record["trial"] / f"seed_{seed}")
            expected = results.read_metrics(reference / "trials" / record["trial"] / f"seed_{seed}")
            assert len(got) == data["config"]["train"]["epochs"]
            assert without_time(got) == without_time(expected)  # bitwise: CPU resumes are exact
    assert [r["objective"] for r in records] == [r["objective"] for r in read_trial_records(reference)]


@pytest.mark.parametrize(("trainable", "cpu"), [("function", 0.9), ("train", 0.45)])
def test_a_sweep_survives_losing_a_node(cluster, ray_session, tmp_path, trainable, cpu):
    """trainable function: the lost trial's process dies with the node; train: a seed worker does (and maybe the
    trial's driver). Either way the trial continues from its checkpoint on the head."""
    data = tiny_spec(f"lost_node_{trainable}", {"mode": "grid", "space": {"agent.ent_coef": {"grid": [0.001, 0.01]}}},
                     trainable=trainable, epochs=6, steps_per_epoch=150, resources={"cpu": cpu})
    started = time.monotonic()
    out = sweep_losing_a_node(cluster, tmp_path, data)
    print(f"sweep on the cluster: {time.monotonic() - started:.0f} s")
    reference = tmp_path / "reference"  # on a local Ray of its own, in a process of its own
    undisturbed = {**data, "trainable": "function", "resources": {"cpu": 0.49}}
    sweep = start_sweep(write_spec(tmp_path / "reference.yaml", undisturbed), reference, tmp_path / "reference.log")
    assert sweep.wait(timeout=600) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    assert_same_metrics(out, reference, data)
