"""Faults a training run must survive: divergence, a second writer, a lost checkpoint, a full disk, bad paths.

Each test reproduces a fault as a user meets it (real HDF5 files, real processes, a real full filesystem) and
checks that the run says what happened and that nothing already written is lost.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import make_linear_dataset

from erdiff import results
from erdiff.checkpoint import load_checkpoint
from erdiff.cli import main
from erdiff.config import make_config
from erdiff.data.generate import make_dataset
from erdiff.runlock import RunLockedError, hold_run_dirs
from erdiff.train import RunDirectoryError, train, train_seeds

SMALL = {"agent.num_critics": "4", "agent.hidden_dim": "32", "train.batch_size": "32", "train.eval_episodes": "0",
         "train.epochs": "20", "train.steps_per_epoch": "10", "train.eval_every": "2"}


def small_config(**overrides):
    return make_config("toy", overrides={**SMALL, **{k: str(v) for k, v in overrides.items()}})


def dataset_with_one_huge_reward():
    """One transition in 4096 with reward 1e38: the critic's loss overflows the first time a batch holds it,
    a few evaluations into the run (the step depends on the seed's batch draws only)."""
    dataset = make_linear_dataset(size=4096)
    dataset["rewards"][7] = 1e38
    return dataset


def file_bytes(run_dir: Path) -> dict[str, bytes]:
    return {name: (run_dir / name).read_bytes() for name in (results.METRICS_FILE, results.SUMMARY_FILE,
                                                             results.CHECKPOINT_FILE, results.CONFIG_FILE)}


# ---- divergence is a status, never a score ------------------------------------------------------------------

def test_a_run_whose_critic_loss_overflows_is_diverged_with_its_last_finite_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    summary = train(small_config(), run_dir, dataset=dataset_with_one_huge_reward(), max_action=1.0, progress=False)
    assert summary["status"] == "diverged"
    divergence = summary["divergence"]
    assert divergence["quantity"] == "critic_loss" and divergence["step"] == 74 and divergence["epoch"] == 8
    # No score, even though evaluations before the divergence exist.
    assert summary["normalized_score"]["last"] is None and summary["return"]["last"] is None
    records = results.read_metrics(run_dir)
    assert [r["step"] for r in records] == [20, 40, 60]
    assert all(np.isfinite(r[key]) for r in records for key in ("critic_loss", "actor_loss", "q_mean"))
    checkpoint = load_checkpoint(run_dir / results.CHECKPOINT_FILE)
    assert checkpoint["agent"]["step"] == summary["step"] == 60 and checkpoint["epoch"] == summary["epoch"] == 6
    assert all(torch.isfinite(value).all() for value in checkpoint["agent"]["networks"].values())
    # Resuming a diverged run would only diverge again: it is left exactly as it is.
    before = file_bytes(run_dir)
    assert train(small_config(), run_dir, dataset=dataset_with_one_huge_reward(), max_action=1.0, progress=False,
                 resume=True)["status"] == "diverged"
    assert file_bytes(run_dir) == before


def test_finite_weights_finds_the_seed_and_network_whose_weights_are_not_finite():
    from erdiff.agent import ERDiffAgent
    from erdiff.packed import PackedAgents

    config = small_config()
    agents = [ERDiffAgent(3, 2, 1.0, config.agent) for _ in range(3)]
    for agent in agents:
        agent.make_optimizers()
    assert agents[0].finite_weights().tolist() == [[True], [True]]
    packed = PackedAgents(agents)
    with torch.no_grad():
        packed.params["critic.weights.0"][1].view(-1)[0] = float("inf")
    assert packed.finite_weights().tolist() == [[True, True, True], [True, False, True]]


def test_finite_weights_names_the_network_whose_weights_are_not_finite():
    from erdiff.train import find_divergence

    since = torch.full((8, 2), -1, dtype=torch.long)
    weights = torch.tensor([[True, True], [True, False]])
    assert find_divergence(since, weights, step=50, epoch=5) == [
        None, {"step": 50, "epoch": 5, "quantity": "critic_weights"}]


def test_packed_seeds_diverge_one_by_one_and_the_others_finish(tmp_path):
    configs = [small_config(**{"train.epochs": 12, "seed": seed}) for seed in (0, 1, 2)]
    run_dirs = [tmp_path / f"seed_{seed}" for seed in (0, 1, 2)]
    summaries = train_seeds(configs, run_dirs, dataset=dataset_with_one_huge_reward(), max_action=1.0,
                            progress=False)
    assert [s["status"] for s in summaries] == ["diverged", "completed", "diverged"]
    # The step at which a seed first draws the huge reward is set by its batch draws alone: as separate runs.
    assert [s.get("divergence", {}).get("step") for s in summaries] == [74, None, 38]
    assert [len(results.read_metrics(d)) for d in run_dirs] == [3, 6, 1]
    separate = train(configs[1], tmp_path / "alone", dataset=dataset_with_one_huge_reward(), max_action=1.0,
                     progress=False)
    assert separate["status"] == "completed" and separate["step"] == summaries[1]["step"] == 120


def write_hdf5(path: Path, data: dict) -> None:
    with h5py.File(path, "w") as handle:
        for key, value in data.items():
            handle[key] = value


def test_cli_reproduction_rewards_of_1e38_are_reported_diverged_not_scored(tmp_path, capsys, monkeypatch):
    # The reproduction: toy data with rewards of 1e38 used to end 'completed' with a score.
    monkeypatch.setenv("ERDIFF_DATA_DIR", str(tmp_path / "datasets"))
    toy = make_dataset("toy", tmp_path / "toy.hdf5", size=2000)
    with h5py.File(toy) as handle:
        data = {key: handle[key][()] for key in ("observations", "actions", "rewards", "terminals", "timeouts")}
    data["rewards"][:] = 1e38
    write_hdf5(tmp_path / "huge.hdf5", data)
    out = tmp_path / "run"
    code = main(["train", "--task", "toy", "--train.dataset", str(tmp_path / "huge.hdf5"), "--out", str(out),
                 "--agent.num_critics", "2", "--agent.hidden_dim", "16", "--train.batch_size", "32",
                 "--train.epochs", "3", "--train.steps_per_epoch", "5", "--train.eval_every", "1",
                 "--train.eval_episodes", "2", "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    printed = json.loads(captured.out.strip().splitlines()[-1])
    assert printed["status"] == "diverged" and "normalized_score_last" not in printed
    assert printed["divergence"]["step"] == 1 and "critic_loss" in printed["divergence"]["quantity"]
    assert "diverged: non-finite critic_loss at step 1; no score, and no checkpoint" in captured.err
    assert results.read_summary(out)["normalized_score"]["last"] is None
    assert results.read_metrics(out) == []


# ---- one writer per run directory ---------------------------------------------------------------------------

TRAIN_ARGS = ["--task", "toy", "--agent.num_critics", "2", "--agent.hidden_dim", "16", "--train.batch_size", "32",
              "--train.eval_episodes", "0", "--quiet"]


def erdiff_train(out: Path, *extra: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "erdiff.cli", "train", *TRAIN_ARGS, "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """The environment of `erdiff train` subprocesses, with the toy dataset already generated so that two
    processes started together reach their run directory together."""
    from erdiff.tasks import load_task_dataset

    monkeypatch.setenv("ERDIFF_DATA_DIR", str(tmp_path / "datasets"))
    load_task_dataset("toy", None)
    return {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}


def test_two_trainings_started_together_into_one_directory_one_is_refused(tmp_path, env):
    out = tmp_path / "run"
    budget = ["--train.epochs", "4", "--train.steps_per_epoch", "20", "--train.eval_every", "2"]
    first, second = erdiff_train(out, *budget, env=env), erdiff_train(out, "--seed", "1", *budget, env=env)
    outcomes = sorted((p.wait(timeout=300), p.stderr.read()) for p in (first, second))
    (ok, _), (refused, message) = outcomes
    assert ok == 0 and refused == 2
    assert "is being written by another process (pid" in message and str(out) in message
    assert "Traceback" not in message
    assert results.read_summary(out)["status"] == "completed"


def test_a_run_being_trained_cannot_be_resumed_and_a_killed_one_resumes_at_once(tmp_path, env):
    out = tmp_path / "run"
    budget = ["--train.epochs", "400", "--train.steps_per_epoch", "20", "--train.eval_every", "1"]
    running = erdiff_train(out, *budget, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (out / results.CHECKPOINT_FILE).exists():
            assert running.poll() is None and time.monotonic() < deadline, running.stderr.read()
            time.sleep(0.2)
        config = make_config("toy", overrides={"agent.num_critics": "2", "agent.hidden_dim": "16",
                                               "train.batch_size": "32", "train.eval_episodes": "0",
                                               "train.epochs": "400", "train.steps_per_epoch": "20",
                                               "train.eval_every": "1"})
        with pytest.raises(RunLockedError, match=rf"{out} is being written by another process \(pid {running.pid}"):
            train(config, out, resume=True, progress=False)
    finally:
        running.send_signal(signal.SIGKILL)
        running.wait()
    # The kernel dropped the dead process's lock: a resume goes on at once (stopped after one evaluation here).
    resumed = train(config, out, resume=True, progress=False, on_evaluation=lambda record, run_dir: True)
    assert resumed["status"] == "stopped" and resumed["step"] > 20


def lock_from_another_process(run_dir: Path) -> subprocess.CompletedProcess:
    code = f"from erdiff.runlock import hold_run_dirs\nwith hold_run_dirs([{str(run_dir)!r}]): pass"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})


def test_the_lock_is_reentrant_within_a_process_and_released_after(tmp_path):
    with hold_run_dirs([tmp_path]):
        with hold_run_dirs([tmp_path]):
            pass
        probe = lock_from_another_process(tmp_path)  # still held by the outer block
        assert probe.returncode != 0 and f"pid {os.getpid()}" in probe.stderr
    assert lock_from_another_process(tmp_path).returncode == 0


# ---- a resume never destroys --------------------------------------------------------------------------------

def test_resume_without_checkpoint_is_refused_and_changes_nothing(tmp_path, linear_dataset):
    # The reproduction: a run with 10 records whose checkpoint.pt is gone used to be emptied and
    # retrained from scratch by --resume.
    config = small_config(**{"train.eval_every": 1})
    train(config, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False,
          on_evaluation=lambda record, run_dir: record["step"] == 100)
    assert len(results.read_metrics(tmp_path)) == 10
    (tmp_path / results.CHECKPOINT_FILE).unlink()
    before = {name: (tmp_path / name).read_bytes() for name in (results.METRICS_FILE, results.SUMMARY_FILE)}
    with pytest.raises(RunDirectoryError, match="10 evaluation records but no checkpoint.pt"):
        train(config, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False, resume=True)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before


def test_resume_of_a_completed_run_without_checkpoint_leaves_it_as_it_is(tmp_path, linear_dataset, caplog):
    config = small_config(**{"train.epochs": 4})
    train(config, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False)
    (tmp_path / results.CHECKPOINT_FILE).unlink()
    before = {name: (tmp_path / name).read_bytes() for name in (results.METRICS_FILE, results.SUMMARY_FILE)}
    summary = train(config, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False, resume=True)
    assert summary["status"] == "completed"
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert "already ended (status completed)" in caplog.text


def test_a_fresh_run_into_a_directory_with_only_a_summary_is_refused(tmp_path, linear_dataset):
    config = small_config(**{"train.epochs": 2})
    train(config, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False)
    for name in (results.CHECKPOINT_FILE, results.METRICS_FILE):
        (tmp_path / name).unlink()
    with pytest.raises(RunDirectoryError, match=r"already holds a run \(summary.json\)"):
        train(config, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False)


# ---- full disk, bad paths, permissions ----------------------------------------------------------------------

@pytest.fixture
def small_filesystem(tmp_path):
    """A real 768 KiB tmpfs: room for one checkpoint of the run below (496 KB) but not for the next one beside
    it, so the second checkpoint meets ENOSPC (mounting needs root)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=768k", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_at_a_checkpoint_is_one_error_and_the_previous_checkpoint_is_intact(small_filesystem, capsys,
                                                                                        monkeypatch, tmp_path):
    monkeypatch.setenv("ERDIFF_DATA_DIR", str(tmp_path / "datasets"))
    out = small_filesystem / "run"
    code = main(["train", *TRAIN_ARGS, "--out", str(out), "--agent.hidden_dim", "64", "--train.epochs", "50",
                 "--train.steps_per_epoch", "2", "--train.eval_every", "1"])
    message = capsys.readouterr().err
    assert code == 2 and "Traceback" not in message
    assert "no space left on the device to write" in message and "intact" in message
    checkpoint = load_checkpoint(out / results.CHECKPOINT_FILE)  # the previous one: complete and readable
    assert checkpoint["agent"]["step"] == 2 * checkpoint["epoch"] > 0
    records = results.read_metrics(out)
    assert records and all(r["step"] <= checkpoint["agent"]["step"] + 2 for r in records)


@pytest.mark.parametrize("out, expected", [("/etc/hostname", "a file is in the way"),
                                           ("/etc/hostname/run", "a file is in the way"),
                                           ("/proc/erdiff/run", "cannot create the run directory")])
def test_an_out_path_that_cannot_be_a_directory_is_one_error(out, expected, capsys):
    assert main(["train", *TRAIN_ARGS, "--out", out]) == 2
    message = capsys.readouterr().err
    assert expected in message and out.split("/run")[0] in message and "Traceback" not in message


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_run_files_get_the_process_umask(tmp_path, linear_dataset, umask, mode):
    previous = os.umask(umask)
    try:
        train(small_config(**{"train.epochs": 2}), tmp_path, dataset=linear_dataset, max_action=1.0, progress=False)
    finally:
        os.umask(previous)
    for name in (results.CONFIG_FILE, results.METRICS_FILE, results.SUMMARY_FILE, results.CHECKPOINT_FILE):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


@pytest.mark.parametrize("device", ["cuda:1", "mps"])
def test_a_device_this_machine_lacks_is_one_error(device, capsys):
    if device == "mps" and torch.backends.mps.is_available() or device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip(f"{device} exists here")
    assert main(["train", *TRAIN_ARGS, "--train.device", device, "--train.epochs", "1"]) == 2
    message = capsys.readouterr().err
    assert f"'train.device' = {device!r}" in message and "not available" in message



def test_a_run_that_fails_before_training_leaves_nothing_behind(tmp_path, capsys):
    out = tmp_path / "runs" / "new"
    assert main(["train", *TRAIN_ARGS, "--out", str(out), "--train.dataset", str(tmp_path / "missing.hdf5")]) == 2
    assert "missing.hdf5" in capsys.readouterr().err
    assert not out.exists()  # a retry with the right file needs no --resume and trips over nothing


def test_a_failed_resume_keeps_the_directory_it_did_not_create(tmp_path, linear_dataset):
    config = small_config(**{"train.epochs": 2})
    train(config, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False)
    before = file_bytes(tmp_path)
    with pytest.raises(RunDirectoryError, match="config differs"):
        train(small_config(**{"train.epochs": 3}), tmp_path, dataset=linear_dataset, max_action=1.0,
              progress=False, resume=True)
    assert file_bytes(tmp_path) == before


def wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.1)


def test_ctrl_c_says_what_was_kept(tmp_path, env):
    out = tmp_path / "run"
    budget = ["--train.epochs", "400", "--train.steps_per_epoch", "20", "--train.eval_every", "1"]
    running = erdiff_train(out, *budget, env=env)
    wait_for(out / results.SUMMARY_FILE, running)
    running.send_signal(signal.SIGINT)
    assert running.wait(timeout=60) == 130
    message = running.stderr.read()
    step = results.read_summary(out)["step"]
    assert f"{out}: kept up to step {step}" in message and "--resume" in message and "Traceback" not in message


def test_ctrl_c_before_the_first_evaluation_says_nothing_was_kept(tmp_path, env):
    out = tmp_path / "run"
    running = erdiff_train(out, "--train.epochs", "1", "--train.steps_per_epoch", "100000", env=env)
    wait_for(out / results.METRICS_FILE, running)  # written (empty) just before the first step
    running.send_signal(signal.SIGINT)
    assert running.wait(timeout=60) == 130
    assert f"{out}: nothing kept" in running.stderr.read()
    assert not out.exists()
