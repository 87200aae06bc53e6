"""Sweeps end to end on a real local Ray (CPU): grids, Optuna, a killed seed worker, an interrupted driver.

Each test runs its own Ray in a private temp dir (RAY_TMPDIR) and its teardown shuts it down and kills any
process left from that session only (found by its environment or by its open files in the temp dir: Ray's
agents overwrite their environment), never other Ray instances on the machine.
Only the smallest Ray Train sweep runs by default; the others are marked slow (`pytest -m slow`).
"""

import ipaddress
import itertools
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import ray
import torch
import yaml
from conftest import kill_session_processes

from erdiff import results
from erdiff.data.write import write_d4rl_hdf5
from erdiff.runlock import LOCK_FILE
from erdiff.tasks import local_dataset_path
from erdiff.train import train, train_seeds
from tune import local_ray
from tune.aggregate import TRIAL_FILE, read_trial_records
from tune.snapshots import SESSIONS_FILE, read_sessions
from tune.spec import parse_spec
from tune.sweep import SPEC_FILE, SweepError, run_sweep
from tune.trust import UntrustedStateError, check_tune_state

REPO = Path(__file__).resolve().parents[1]


def tiny_spec(name: str, search: dict, trainable: str = "train", epochs: int = 3, steps_per_epoch: int = 5,
              **fields) -> dict:
    return {
        "name": name, "tasks": ["toy"], "seeds": 2, "trainable": trainable,
        "config": {"agent": {"num_critics": 2, "hidden_dim": 16},
                   "train": {"batch_size": 32, "steps_per_epoch": steps_per_epoch, "epochs": epochs,
                             "eval_every": 1, "eval_episodes": 2}},
        "search": search, "objective": {"last_k": 2}, "resources": {"cpu": 0.49}, "concurrency": 2, **fields,
    }


def check_sweep_results(out: Path, spec) -> None:
    """Run directories, trial.json and sweep.yaml are there and agree: the aggregate is recomputed from disk."""
    assert yaml.safe_load((out / SPEC_FILE).read_text()) == spec.to_dict()
    plans = spec.trials()
    assert sorted(p.name for p in (out / "trials").iterdir()) == [plan.name for plan in plans]
    for plan in plans:
        trial_dir = out / "trials" / plan.name
        record = json.loads((trial_dir / TRIAL_FILE).read_text())
        assert (record["status"], record["task"], record["params"]) == ("completed", plan.task, plan.params)
        per_seed = {}
        for seed in spec.seeds:
            run_dir = trial_dir / f"seed_{seed}"
            config = results.read_config(run_dir)
            assert config["seed"] == seed and config["tags"] == {"sweep": spec.name, "trial": plan.name}
            for key, value in plan.params.items():
                section, field = key.split(".")
                assert config[section][field] == value
            assert results.read_summary(run_dir)["status"] == "completed"
            scores = [r["normalized_score_mean"] for r in results.read_metrics(run_dir)]
            assert len(scores) == config["train"]["epochs"]
            per_seed[f"seed_{seed}"] = np.mean(scores[-spec.objective.last_k:])
        assert record["objective"]["per_seed"] == pytest.approx(per_seed)
        assert record["objective"]["mean"] == pytest.approx(np.mean(list(per_seed.values())))
        assert record["objective"]["std"] == pytest.approx(np.std(list(per_seed.values()), ddof=1))
        assert record["evaluation"] == record["planned_evaluations"] == len(scores)


def without_time(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time_s"} for r in records]


def test_sweep_with_torch_trainer(ray_session, tmp_path, capfd):
    """One configuration x 2 seeds, one Ray Train worker per seed; then the results folder guards itself.

    The smallest real sweep, kept in the default suite (the 2 x 2 grid is marked slow)."""
    data = tiny_spec("grid_small", {"mode": "grid", "space": {"agent.ent_coef": {"grid": [0.001]}}})
    spec = parse_spec(data, source="grid_small.yaml")
    out = tmp_path / "out"
    assert run_sweep(spec, out) == 0
    check_sweep_results(out, spec)
    assert ray.tune.Tuner.can_restore(str(out / "ray" / "grid_small"))
    assert "deprecat" not in capfd.readouterr().err.lower()

    with pytest.raises(SweepError, match="already holds the sweep grid_small: pass --resume"):
        run_sweep(spec, out)
    changed = parse_spec({**data, "seeds": 3}, source="grid_small.yaml")
    with pytest.raises(SweepError, match="differs from the spec the sweep was started with .* in: seeds"):
        run_sweep(changed, out, resume=True)
    with pytest.raises(SweepError, match="nothing to resume"):
        run_sweep(spec, tmp_path / "elsewhere", resume=True)


class RunsCode:
    """A pickle that runs a shell command when loaded: the issue's replaced tuner.pkl."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_resume_refuses_tune_state_that_someone_else_could_have_written(ray_session, tmp_path):
    """A real sweep, then its tuner.pkl replaced by a pickle that runs `touch MARKER`: a resume refuses before
    unpickling anything when the state is writable by others, owned by another user, or sits below a folder
    others can write; with --trust-tune-state the pickle runs (which is why the check exists)."""
    spec = parse_spec(tiny_spec("trust", {"mode": "grid"}, trainable="function", epochs=1))
    out = tmp_path / "out"
    assert run_sweep(spec, out) == 0
    experiment = out / "ray" / "trust"
    check_tune_state(str(experiment), str(out))  # the state Tune wrote itself passes

    marker = tmp_path / "marker"
    tuner_pkl = experiment / "tuner.pkl"
    tuner_pkl.write_bytes(pickle.dumps(RunsCode(f"touch {marker}")))
    tuner_pkl.chmod(0o646)
    with pytest.raises(UntrustedStateError, match=r"tuner.pkl is writable by others; start a new sweep with "
                                                  r"another --out, or, .* pass --trust-tune-state"):
        run_sweep(spec, out, resume=True)
    tuner_pkl.chmod(0o644)
    os.chown(tuner_pkl, 12345, -1)
    with pytest.raises(UntrustedStateError, match=r"tuner.pkl is owned by uid 12345"):
        run_sweep(spec, out, resume=True)
    os.chown(tuner_pkl, os.geteuid(), -1)
    (out / "ray").chmod(0o777)  # anyone could have swapped the experiment folder
    with pytest.raises(UntrustedStateError, match=r"ray is writable by others"):
        run_sweep(spec, out, resume=True)
    assert not marker.exists()

    (out / "ray").chmod(0o755)
    with pytest.raises(UntrustedStateError, match="cannot check who could write an object store"):
        run_sweep(parse_spec({**tiny_spec("trust", {"mode": "grid"}), "storage": "s3://bucket/sweeps"}), out,
                  resume=True)
    with pytest.raises(Exception):  # noqa: B017 -- whatever Tune makes of the pickle's return value
        run_sweep(spec, out, resume=True, trust_tune_state=True)
    assert marker.exists()


def test_packed_sweep_trains_the_seeds_of_a_trial_together(ray_session, tmp_path):
    """trainable: packed writes the same results folder, and each seed's metrics are those of `train` alone
    (to float32 rounding: the packed step batches the seeds' matrix products)."""
    spec = parse_spec(tiny_spec("packed", {"mode": "grid", "space": {"agent.T": {"grid": [3]}}}, trainable="packed",
                                epochs=2, concurrency=1))
    out = tmp_path / "out"
    assert run_sweep(spec, out) == 0
    check_sweep_results(out, spec)
    plan = spec.trials()[0]
    # The trial keeps one packed session for all its periods: bitwise what `erdiff train --seeds 0,1` writes.
    configs = [spec.seed_config(plan.task, plan.params, seed, plan.name) for seed in spec.seeds]
    together = [tmp_path / "together" / f"seed_{seed}" for seed in spec.seeds]
    train_seeds(configs, together, progress=False)
    for seed, run_dir in zip(spec.seeds, together):
        got = results.read_metrics(out / "trials" / plan.name / f"seed_{seed}")
        assert without_time(got) == without_time(results.read_metrics(run_dir))
    for seed in spec.seeds:
        alone = tmp_path / "alone" / f"seed_{seed}"
        train(spec.seed_config(plan.task, plan.params, seed, plan.name), alone, progress=False)
        got = results.read_metrics(out / "trials" / plan.name / f"seed_{seed}")
        expected = results.read_metrics(alone)
        assert [r["step"] for r in got] == [r["step"] for r in expected] == [5, 10]
        for record_got, record_expected in zip(got, expected):
            assert record_got["episode_returns"] == pytest.approx(record_expected["episode_returns"], rel=1e-3)
            assert record_got["critic_loss"] == pytest.approx(record_expected["critic_loss"], rel=1e-4)


def test_function_trials_train_each_seed_exactly_as_train_alone_in_one_reused_process(ray_session, tmp_path):
    """trainable: function builds each seed's training session once and advances the seeds in turn, a period
    each: every seed's metrics and final checkpoint are bitwise those of `train` of that seed alone (RNG streams
    that restarted each period, or leaked from one seed into the other, would show), and no seed was set up twice.
    The second trial runs in the first one's process (Tune's reuse_actors), and nothing of the first leaks into it."""
    spec = parse_spec(tiny_spec("function", {"mode": "grid", "space": {"agent.T": {"grid": [3, 5]}}},
                                trainable="function", epochs=3, concurrency=1))
    out = tmp_path / "out"
    assert run_sweep(spec, out) == 0
    check_sweep_results(out, spec)
    plans = spec.trials()
    pids = {session["pid"] for plan in plans for seed in spec.seeds
            for session in read_sessions(out / "trials" / plan.name / f"seed_{seed}")}
    assert len(pids) == 1
    for plan, seed in itertools.product(plans, spec.seeds):
        run_dir = out / "trials" / plan.name / f"seed_{seed}"
        alone = tmp_path / "alone" / plan.name / f"seed_{seed}"
        train(spec.seed_config(plan.task, plan.params, seed, plan.name), alone, progress=False)
        assert without_time(results.read_metrics(run_dir)) == without_time(results.read_metrics(alone))
        got, expected = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (run_dir, alone))
        for key, value in expected["agent"]["networks"].items():
            assert torch.equal(got["agent"]["networks"][key], value), key
        assert torch.equal(got["rng"]["torch"], expected["rng"]["torch"])
        assert torch.equal(got["rng"]["generator"], expected["rng"]["generator"])
        assert len(read_sessions(run_dir)) == 1


@pytest.mark.slow
def test_grid_2x2_two_seeds_with_torch_trainer(ray_session, tmp_path):
    spec = parse_spec(tiny_spec("grid_2x2", {"mode": "grid", "space": {"agent.ent_coef": {"grid": [0.0, 0.01]},
                                                                       "agent.T": {"grid": [3, 5]}}}))
    assert run_sweep(spec, tmp_path / "out") == 0
    check_sweep_results(tmp_path / "out", spec)


@pytest.mark.slow
def test_optuna_search_starts_at_the_paper_default(ray_session, tmp_path):
    space = {"agent.ent_coef": {"loguniform": [1e-3, 0.1]}, "agent.lcb_coef": {"uniform": [1.0, 8.0]}}
    spec = parse_spec(tiny_spec("optuna", {"mode": "optuna", "num_samples": 3, "space": space},
                                trainable="function", concurrency=1))
    out = tmp_path / "out"
    assert run_sweep(spec, out) == 0
    records = {p.name: json.loads((p / TRIAL_FILE).read_text()) for p in (out / "trials").iterdir()}
    assert len(records) == 3 and all(r["status"] == "completed" for r in records.values())
    first = records[min(records)]
    assert min(records).startswith("000_toy_")
    assert first["params"] == {"agent.ent_coef": 0.01, "agent.lcb_coef": 4.0} == spec.paper_default("toy")
    for record in records.values():
        assert 1e-3 <= record["params"]["agent.ent_coef"] <= 0.1 and 1 <= record["params"]["agent.lcb_coef"] <= 8
        assert record["objective"]["mean"] is not None
    assert len({json.dumps(r["params"], sort_keys=True) for r in records.values()}) == 3


def start_sweep(spec_path: Path, out: Path, log: Path, *extra: str) -> subprocess.Popen:
    """`python -m tune.sweep` in a child process (what `ray job submit` runs), output to ``log``."""
    with open(log, "ab") as handle:
        return subprocess.Popen([sys.executable, "-m", "tune.sweep", str(spec_path), "--out", str(out), *extra],
                                cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the sweep exited (rc {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def write_spec(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def trial_evaluation(trial_dir: Path) -> int:
    """The evaluation of the trial's latest seed aggregate (0 before the first)."""
    path = trial_dir / TRIAL_FILE
    return json.loads(path.read_text())["evaluation"] if path.is_file() else 0


@pytest.mark.slow
def test_a_killed_seed_worker_resumes_from_its_checkpoint(ray_session, tmp_path):
    """SIGKILL one Ray Train worker mid-trial: Ray Train restarts the workers from the latest checkpoint and
    the trial ends with exactly the metrics of an uninterrupted one."""
    data = tiny_spec("killed", {"mode": "grid"}, epochs=12, steps_per_epoch=200)
    spec_path = write_spec(tmp_path / "killed.yaml", data)
    out, log = tmp_path / "killed", tmp_path / "killed.log"
    seed_dir = out / "trials" / "000_toy" / "seed_1"
    sweep = start_sweep(spec_path, out, log)
    try:
        # Tune has the aggregate of an evaluation once Ray Train registered that evaluation's checkpoint.
        wait_for(lambda: trial_evaluation(out / "trials" / "000_toy") >= 2, 240, "a checkpoint", sweep)
        worker = read_sessions(seed_dir)[-1]["pid"]
        os.kill(worker, signal.SIGKILL)
        assert sweep.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        if sweep.poll() is None:
            sweep.kill()
    sessions = read_sessions(seed_dir)
    assert len(sessions) == 2 and sessions[0]["pid"] == worker != sessions[1]["pid"]
    assert sessions[1]["start_evaluation"] >= 1  # resumed from a checkpoint, not from scratch
    assert results.read_summary(seed_dir)["status"] == "completed"
    assert "deprecat" not in log.read_text().lower()

    # The same trial, uninterrupted (in one process: trainable function; the learner resumes bitwise exactly).
    reference = parse_spec({**data, "trainable": "function"})
    assert run_sweep(reference, tmp_path / "reference") == 0
    for seed in (0, 1):
        got = results.read_metrics(out / "trials" / "000_toy" / f"seed_{seed}")
        expected = results.read_metrics(tmp_path / "reference" / "trials" / "000_toy" / f"seed_{seed}")
        assert without_time(got) == without_time(expected)
    got, expected = (json.loads((root / "trials" / "000_toy" / TRIAL_FILE).read_text())["objective"]
                     for root in (out, tmp_path / "reference"))
    assert got == expected


def completed_trials(out: Path) -> list[str]:
    trials = out / "trials"
    if not trials.is_dir():
        return []
    return sorted(p.parent.name for p in trials.glob(f"*/{TRIAL_FILE}")
                  if json.loads(p.read_text())["status"] == "completed")


@pytest.mark.slow
@pytest.mark.parametrize("trainable", ["function", "packed"])
def test_an_interrupted_sweep_resumes_without_rerunning_finished_trials(ray_session, tmp_path, trainable):
    data = tiny_spec("interrupted", {"mode": "grid", "space": {"agent.ent_coef": {"grid": [0.0, 0.001, 0.01, 0.1]}}},
                     trainable=trainable, epochs=6, steps_per_epoch=40, concurrency=1)
    spec_path = write_spec(tmp_path / "interrupted.yaml", data)
    out, log = tmp_path / "out", tmp_path / "sweep.log"
    experiment = out / "ray" / "interrupted"
    sweep = start_sweep(spec_path, out, log)
    try:
        wait_for(lambda: len(completed_trials(out)) >= 2, 300, "two finished trials", sweep)
        finished = completed_trials(out)
        finished_at = max((out / "trials" / name / TRIAL_FILE).stat().st_mtime for name in finished)
        # Tune writes its experiment state every 10 s or so: wait until it knows those trials finished.
        wait_for(lambda: any(p.stat().st_mtime > finished_at for p in experiment.glob("experiment_state*.json")),
                 60, "Tune's state to record the finished trials", sweep)
        sweep.send_signal(signal.SIGKILL)
        sweep.wait(timeout=30)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    kill_session_processes(ray_session)  # what the killed driver left behind (its Ray processes)
    assert len(completed_trials(out)) < 4

    def fingerprint(trial: str) -> list:
        run_dirs = [out / "trials" / trial / f"seed_{seed}" for seed in (0, 1)]
        return [(d / name).stat().st_mtime_ns for d in run_dirs for name in ("checkpoint.pt", "metrics.jsonl")] + [
            len(read_sessions(d)) for d in run_dirs]

    before = {trial: fingerprint(trial) for trial in finished}
    resumed = start_sweep(spec_path, out, log, "--resume")
    assert resumed.wait(timeout=300) == 0, log.read_text()[-3000:]
    assert {trial: fingerprint(trial) for trial in finished} == before  # not trained again
    check_sweep_results(out, parse_spec(data))


@pytest.mark.slow
def test_a_sweep_stopped_with_ctrl_c_exits_1_and_says_how_to_resume(ray_session, tmp_path):
    """SIGINT, what Ctrl-C sends: Tune stops the trials and saves its state; the sweep's last table says which
    trials no process runs any more and the resume command, and the exit code is not success."""
    data = tiny_spec("ctrl_c", {"mode": "grid", "space": {"agent.ent_coef": {"grid": [0.0, 0.1]}}},
                     trainable="function", epochs=400, steps_per_epoch=20, concurrency=1)
    spec_path = write_spec(tmp_path / "ctrl_c.yaml", data)
    out, log = tmp_path / "out", tmp_path / "sweep.log"
    sweep = start_sweep(spec_path, out, log)
    try:
        wait_for(lambda: any(trial_evaluation(t) >= 1 for t in (out / "trials").glob("*")), 300,
                 "a first evaluation", sweep)
        sweep.send_signal(signal.SIGINT)
        rc = sweep.wait(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    text = log.read_text()
    assert rc == 1, text[-3000:]
    assert "not running: no live process holds the run directories of 1 trial(s)" in text, text[-3000:]
    assert f"`erdiff sweep {out.resolve() / 'sweep.yaml'} --out {out.resolve()} --resume` continues it" in text
    assert "running (no process)" in text


@pytest.mark.slow
def test_asha_stops_weak_trials_and_marks_them_stopped(ray_session, tmp_path):
    """ASHA on the seeds' gradient step: stopped trials are recorded as such, in trial.json and in the seeds.

    The objective is the recorded critic learning rate, a stand-in score whose ranking is known in advance:
    every trial after the first is worse than the ones before it, so ASHA stops it at its first rung.
    """
    rates = [3e-4, 1e-4, 3e-5, 1e-5]
    data = tiny_spec("asha", {"mode": "grid", "space": {"agent.critic_lr": {"grid": rates}}},
                     trainable="function", epochs=8, steps_per_epoch=10, concurrency=1,
                     objective={"metric": "critic_lr", "mode": "max", "last_k": 1},
                     scheduler={"type": "asha", "grace_period": 20, "reduction_factor": 2})
    data["config"]["agent"]["lr_schedule"] = "constant"
    out = tmp_path / "out"
    assert run_sweep(parse_spec(data), out) == 0
    records = read_trial_records(out)
    assert [r["status"] for r in records] == ["completed", "stopped", "stopped", "stopped"]
    assert records[0]["evaluation"] == 8 and records[0]["objective"]["mean"] == pytest.approx(3e-4)
    for record in records[1:]:
        assert record["evaluation"] == 2  # at the first rung: 20 steps = 2 evaluations of 10 steps
        for seed in (0, 1):
            run_dir = out / "trials" / record["trial"] / f"seed_{seed}"
            assert 2 <= len(results.read_metrics(run_dir)) < 8
            assert results.read_summary(run_dir)["status"] == "stopped"


# ---------------------------------------------------------------- the local Ray: loopback only, nothing left


def listening_addresses(pids: list[int]) -> set[tuple[int, str]]:
    """(pid, local address) of every listening TCP socket and bound, unconnected UDP socket of ``pids``."""
    owners = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    owners[int(link[8:-1])] = pid
        except OSError:  # gone meanwhile
            continue
    found = set()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1].split(":")[0], fields[3], int(fields[9])
            if inode in owners and state == ("0A" if table.startswith("tcp") else "07"):  # LISTEN / UDP CLOSE
                raw = b"".join(bytes.fromhex(local[i:i + 8])[::-1] for i in range(0, len(local), 8))
                found.add((owners[inode], str(ipaddress.ip_address(raw))))
    return found


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


def the_session_dir(temp_dir: Path) -> str:
    """The one Ray session under the test's RAY_TMPDIR."""
    sessions = [p for p in (temp_dir / "ray").glob("session_2*") if not p.is_symlink()]
    assert len(sessions) == 1, sessions
    return str(sessions[0])


def test_a_local_sweep_listens_on_loopback_only(ray_session, tmp_path):
    """Every socket that any process of the sweep's local Ray listens on, gathered while a Ray Train trial
    trains (GCS, raylet, agents, Tune and Train actors, the seed workers), is on 127.0.0.1."""
    data = tiny_spec("loopback", {"mode": "grid"}, epochs=6, steps_per_epoch=100)
    out, log = tmp_path / "out", tmp_path / "sweep.log"
    sweep = start_sweep(write_spec(tmp_path / "loopback.yaml", data), out, log)
    seen = set()
    try:
        wait_for(lambda: trial_evaluation(out / "trials" / "000_toy") >= 1, 240, "a first evaluation", sweep)
        session_dir = the_session_dir(ray_session)
        while trial_evaluation(out / "trials" / "000_toy") < 4 and sweep.poll() is None:
            seen |= listening_addresses(local_ray.session_processes(session_dir))
            time.sleep(0.5)
        assert sweep.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert len({pid for pid, _ in seen}) >= 5, seen  # GCS, raylet, agents, workers at least
    assert {entry for entry in seen if not is_loopback(entry[1])} == set()
    assert local_ray.session_processes(session_dir) == []  # a finished sweep leaves nothing either


def test_a_record_that_names_no_ray_session_is_left_alone(private_home, tmp_path):
    """A record whose directory is not the Ray session it is named after kills nothing, although its driver is
    gone: else a damaged record naming, say, "/" would kill every process with an open file."""
    (tmp_path / "held").touch()
    bystander = subprocess.Popen(["sleep", "600"], stdin=(tmp_path / "held").open())
    record = local_ray.records_dir() / "session_2026-01-01_00-00-00_000000_1.json"
    results.write_json(record, {"driver_pid": 2**22 + 1, "driver_start_time": 0, "session_dir": str(tmp_path)})
    try:
        assert local_ray.end_dead_sessions() == [] and bystander.poll() is None
    finally:
        record.unlink()
        bystander.kill()
        bystander.wait()


def test_the_next_sweep_ends_what_a_killed_sweep_left(ray_session, tmp_path):
    """SIGKILL the driver of a local sweep mid-trial (Ray's dashboard and runtime-env agents would outlive it,
    listening): the clean-up that every sweep runs first ends every process of that Ray session."""
    data = tiny_spec("killed_driver", {"mode": "grid"}, trainable="function", epochs=20, steps_per_epoch=100)
    out, log = tmp_path / "out", tmp_path / "sweep.log"
    sweep = start_sweep(write_spec(tmp_path / "killed_driver.yaml", data), out, log)
    try:
        wait_for(lambda: trial_evaluation(out / "trials" / "000_toy") >= 1, 240, "a first evaluation", sweep)
        session_dir = the_session_dir(ray_session)
        sweep.send_signal(signal.SIGKILL)
        sweep.wait(timeout=30)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert local_ray.session_processes(session_dir)  # the driver's Ray outlives it, for a while at least
    # The next `erdiff sweep` ends them first, even one refused at once (its --out holds a sweep already).
    with pytest.raises(SweepError, match="already holds the sweep"):
        run_sweep(parse_spec(data, source="killed_driver.yaml"), out)
    assert local_ray.session_processes(session_dir) == []
    assert not list(local_ray.records_dir().glob("*.json"))


# ---------------------------------------------------------------- divergence: a result, not a failure


def diverging_copy(dataset: Path, path: Path) -> Path:
    """``dataset`` with every reward 1e38: the critic's targets overflow float32 within the first steps."""
    with h5py.File(dataset) as handle:
        data = {key: handle[key][()] for key in handle if isinstance(handle[key], h5py.Dataset)}
    data["rewards"] = np.full_like(data["rewards"], 1e38)
    return write_d4rl_hdf5(path, data, {})


@pytest.mark.parametrize("trainable", [pytest.param("train", marks=pytest.mark.slow), "function", "packed"])  # ~1 min
def test_a_diverged_trial_is_a_failed_trial_and_the_sweep_succeeds(ray_session, tmp_path, capsys, trainable):
    """One trial on the toy data, one on a copy whose rewards overflow: Tune records the second as failed (so
    Optuna would see a failure and ASHA no score), trial.json says diverged and where, the ranking prints
    diverged, the exit code is 0; the retry Tune makes (failure.trial_retries) fails at once, training nothing."""
    good = local_dataset_path("toy")  # in the test's own ERDIFF_DATA_DIR
    bad = diverging_copy(good, tmp_path / "bad.hdf5")
    data = tiny_spec("diverge", {"mode": "grid", "space": {"train.dataset": {"grid": [str(good), str(bad)]}}},
                     trainable=trainable, concurrency=1, failure={"trial_retries": 1, "worker_retries": 1})
    out = tmp_path / "out"
    assert run_sweep(parse_spec(data), out) == 0
    records = {r["params"]["train.dataset"]: r for r in read_trial_records(out)}
    assert records[str(good)]["status"] == "completed"
    diverged = records[str(bad)]
    assert diverged["status"] == "diverged" and diverged["objective"]["mean"] is None
    assert diverged["divergence"] and set(diverged["divergence"]) <= {"seed_0", "seed_1"}
    for seed in (0, 1):
        run_dir = out / "trials" / diverged["trial"] / f"seed_{seed}"
        summary = results.read_summary(run_dir)  # None: a seed that trainable function did not reach
        if summary is not None and summary["status"] == "diverged":
            assert diverged["divergence"][f"seed_{seed}"] == summary["divergence"]
        assert all(np.isfinite(r["critic_loss"]) for r in results.read_metrics(run_dir))
        assert len(read_sessions(run_dir)) == 1  # the retry restored the diverged checkpoint and trained nothing
    ranking = capsys.readouterr().out.splitlines()
    assert ranking[-1].split()[:2] == [diverged["trial"], "diverged"]  # last, and no score


# ---------------------------------------------------------------- run-directory locks


HOLD_LOCK = """
import sys, time
from erdiff.runlock import hold_run_dirs
with hold_run_dirs([sys.argv[1]]):
    print("held", flush=True)
    time.sleep(600)
"""


def lock_openers(run_dir: Path) -> set[int]:
    """Processes that have the run directory's lock file open (holding or waiting for the lock)."""
    lock = str(run_dir / LOCK_FILE)
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and any(os.readlink(fd) == lock for fd in (entry / "fd").iterdir()):
                pids.add(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return pids


def test_a_trial_waits_for_a_dying_workers_lock_and_not_for_a_dead_ones(ray_session, tmp_path):
    """A process of an earlier attempt still writes seed 0's run directory (holds its lock): the trial waits for
    it before restoring anything there; once that process is SIGKILLed its lock is gone and the trial trains."""
    data = tiny_spec("locked", {"mode": "grid"}, trainable="function", epochs=2)
    out, log = tmp_path / "out", tmp_path / "sweep.log"
    seed_dir = out / "trials" / "000_toy" / "seed_0"
    seed_dir.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(seed_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        sweep = start_sweep(write_spec(tmp_path / "locked.yaml", data), out, log)
        try:
            wait_for(lambda: lock_openers(seed_dir) - {holder.pid}, 240, "the trial to wait for the lock", sweep)
            assert not (seed_dir / SESSIONS_FILE).exists()  # nothing restored or trained under another's lock
            holder.kill()
            assert sweep.wait(timeout=300) == 0, log.read_text()[-3000:]
        finally:
            if sweep.poll() is None:
                sweep.kill()
    finally:
        holder.kill()
        holder.wait()
    check_sweep_results(out, parse_spec(data))
    assert len(read_sessions(seed_dir)) == 1


def test_optuna_records_a_diverged_trial_as_failed(ray_session, tmp_path):
    """Every trial trains on rewards that overflow: Optuna's study (as Tune saved it) holds failed trials, never a
    value, so its sampler never learns from a diverged configuration as if it had scored."""
    from ray.tune.search.optuna import OptunaSearch

    bad = diverging_copy(local_dataset_path("toy"), tmp_path / "bad.hdf5")
    data = tiny_spec("optuna_diverge", {"mode": "optuna", "num_samples": 2,
                                        "space": {"agent.ent_coef": {"loguniform": [1e-3, 0.1]}}},
                     trainable="function", concurrency=1, failure={"trial_retries": 0})
    data["config"]["train"]["dataset"] = str(bad)
    out = tmp_path / "out"
    assert run_sweep(parse_spec(data), out) == 0
    assert [r["status"] for r in read_trial_records(out)] == ["diverged", "diverged"]
    searcher = OptunaSearch()
    searcher.restore_from_dir(str(out / "ray" / "optuna_diverge"))
    states = [trial.state.name for trial in searcher._ot_study.trials]  # the study Tune checkpointed
    assert states == ["FAIL", "FAIL"]


def test_a_sweep_tracks_trial_aggregates_through_tune_and_each_seed_through_its_run(ray_session, wandb_offline,
                                                                                     tmp_path, monkeypatch):
    """tracking: [tensorboard, wandb, mlflow]: Tune's logger callbacks log the trial's seed aggregate, each seed's
    run its own records, all read back from the files and the MLflow store the sweep wrote (offline)."""
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient
    from tracking_readers import read_tensorboard, read_wandb_run, wandb_folders

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unset below")  # restored after the test: the sweep sets it
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    spec = parse_spec(tiny_spec("tracked", {"mode": "grid", "space": {"agent.T": {"grid": [3]}}}, trainable="function",
                                epochs=2, concurrency=1, tracking=["tensorboard", "wandb", "mlflow"]))
    out = tmp_path / "out"
    assert run_sweep(spec, out) == 0
    plan = spec.trials()[0]
    trial_dir, tune_trial_dir = out / "trials" / plan.name, out / "ray" / "tracked" / plan.name
    objective = json.loads((trial_dir / TRIAL_FILE).read_text())["objective"]
    seed_records = {seed: results.read_metrics(trial_dir / f"seed_{seed}") for seed in spec.seeds}

    # MLflow: one run per trial (Ray's callback, the aggregate) and one per seed, in the sweep's experiment
    uri = f"sqlite:///{out / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])
    (trial_run,) = [run for run in runs if run.data.tags.get("trial_name") == plan.name]
    history = client.get_metric_history(trial_run.info.run_id, "objective")
    assert [m.step for m in history] == [5, 10] and history[-1].value == pytest.approx(objective["mean"])
    seed_runs = {int(run.data.tags["seed"]): run for run in runs if "seed" in run.data.tags}
    assert sorted(seed_runs) == list(spec.seeds)
    for seed, run in seed_runs.items():
        assert (run.data.tags["sweep"], run.data.tags["trial"], run.info.status) == ("tracked", plan.name, "FINISHED")
        scores = client.get_metric_history(run.info.run_id, "normalized_score_mean")
        assert [(m.step, m.value) for m in scores] == [(r["step"], pytest.approx(r["normalized_score_mean"]))
                                                      for r in seed_records[seed]]

    # TensorBoard: Tune's event file of the trial, and each seed's in its run directory
    tune_events = read_tensorboard(tune_trial_dir)
    assert [e.step for e in tune_events.Scalars("ray/tune/objective")] == [5, 10]
    assert tune_events.Scalars("ray/tune/objective")[-1].value == pytest.approx(objective["mean"])
    for seed in spec.seeds:
        seed_events = read_tensorboard(trial_dir / f"seed_{seed}" / "tensorboard")
        assert [e.step for e in seed_events.Scalars("critic_loss")] == [5, 10]

    # W&B: Ray's run of the trial in its Tune folder, grouped by the sweep; each seed's run, grouped by the trial
    (tune_folder,) = wandb_folders(tune_trial_dir)
    trial_wandb = read_wandb_run(tune_folder)
    assert trial_wandb["group"] == "tracked" and "sweep=tracked" in trial_wandb["tags"]
    assert [row["objective"] for _, row in sorted(trial_wandb["history"].items())][-1] == pytest.approx(
        objective["mean"])
    for seed in spec.seeds:
        # trainable: function keeps each seed's training session, and so its one W&B run, for the whole trial
        (seed_folder,) = wandb_folders(trial_dir / f"seed_{seed}")
        seed_run = read_wandb_run(seed_folder)
        assert seed_run["id"] == json.loads((trial_dir / f"seed_{seed}" / results.TRACKING_FILE).read_text())[
            "wandb"]["run_id"]
        assert (seed_run["group"], sorted(seed_run["history"])) == (plan.name, [5, 10])
