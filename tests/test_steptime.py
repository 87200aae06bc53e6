"""erdiff.steptime: step and evaluation timings measured here, the thread rule, and what `erdiff train` prints."""

import json

import pytest
import torch

from erdiff import results
from erdiff.cli import main
from erdiff.config import AgentConfig, make_config
from erdiff.steptime import (
    available_cpus,
    choose_threads,
    default_threads,
    estimate_run_seconds,
    measure_policy_call_seconds,
    measure_step_seconds,
    update_flops,
)
from erdiff.tasks import get_task
from erdiff.train import run_threads

SMALL_AGENT = AgentConfig(num_critics=2, hidden_dim=16, T=3)


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ERDIFF_DATA_DIR", str(tmp_path / "datasets"))


@pytest.fixture
def torch_threads():
    """Restore the test process's thread count whatever a test sets."""
    saved = torch.get_num_threads()
    yield
    torch.set_num_threads(saved)


def test_update_flops_counts_the_step_of_bench_results():
    # bench/RESULTS.md: 27.1 GFLOP per step at obs 11, act 3, M = 64, T = 5, batch 256; 1.40 at M = 2.
    assert update_flops(11, 3, AgentConfig(num_critics=64), 256) / 1e9 == pytest.approx(27.10, abs=0.005)
    assert update_flops(11, 3, AgentConfig(num_critics=2), 256) / 1e9 == pytest.approx(1.40, abs=0.005)
    # A sample-based entropy estimate adds its n·K chains of T actor steps, forward and backward (bench/RESULTS.md:
    # 29.26 GFLOP at M = 64 with n = 32 states, K = 16 samples); a batch smaller than n uses all its states.
    knn = AgentConfig(num_critics=64, entropy_estimator="knn")
    assert update_flops(11, 3, knn, 256) / 1e9 == pytest.approx(29.26, abs=0.005)
    official_8, knn_8 = update_flops(11, 3, AgentConfig(num_critics=64), 8), update_flops(11, 3, knn, 8)
    assert (knn_8 - official_8) * 32 == pytest.approx((update_flops(11, 3, knn, 256) - 27.10e9) * 8, rel=1e-3)


def test_measurements_leave_rng_and_threads_as_they_were(torch_threads):
    torch.set_num_threads(2)
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    step_s = measure_step_seconds(4, 2, SMALL_AGENT, 16, threads=1, steps=2)
    call_s = measure_policy_call_seconds(4, 2, SMALL_AGENT, 3, threads=1, calls=2)
    assert step_s > 0 and call_s > 0
    assert torch.get_num_threads() == 2
    assert torch.equal(torch.rand(3), expected)


def test_small_steps_get_one_thread_untimed_against_more():
    threads, medians = choose_threads(4, 2, SMALL_AGENT, 16)
    assert threads == 1 and list(medians) == [1] and medians[1] > 0
    assert default_threads(make_config("toy", overrides={"agent.num_critics": "4", "agent.hidden_dim": "32"})) == 1
    assert 1 <= default_threads(make_config("toy")) <= available_cpus()  # 27 GFLOP: the idle CPUs


def test_run_threads_sets_the_runs_count_and_restores_the_callers(torch_threads):
    torch.set_num_threads(2)
    with run_threads(make_config("toy", overrides={"agent.num_critics": "4", "agent.hidden_dim": "32",
                                                   "train.device": "cpu"})):
        assert torch.get_num_threads() == 1  # unset: the small step's default
    assert torch.get_num_threads() == 2
    with run_threads(make_config("toy", overrides={"train.num_threads": "3"})):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == 2


def test_estimate_adds_steps_and_evaluations():
    config = make_config("pendulum-medium", overrides={"agent.num_critics": "2", "agent.hidden_dim": "16",
                                                       "train.epochs": "5", "train.steps_per_epoch": "10",
                                                       "train.eval_every": "2", "train.eval_episodes": "3"})
    estimate = estimate_run_seconds(config, step_s=0.01, steps=50)
    assert estimate["evaluations"] == 3  # epochs 2, 4 and the last, 5
    assert estimate["train_s"] == pytest.approx(0.5)
    episode = get_task("pendulum-medium").max_episode_steps
    assert estimate["total_s"] == pytest.approx(0.5 + 3 * episode * estimate["policy_call_s"])
    assert estimate_run_seconds(config, step_s=0.01, steps=30)["evaluations"] == 2  # a resume at step 20


def test_erdiff_train_prints_its_estimate_and_records_the_threads_it_chose(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--task", "toy", "--out", str(out), "--agent.num_critics", "2", "--agent.hidden_dim", "16",
            "--train.batch_size", "32", "--train.epochs", "2", "--train.steps_per_epoch", "5",
            "--train.eval_every", "1", "--train.eval_episodes", "3", "--train.device", "cpu"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "erdiff train: toy: about " in err and " on this machine: 10 steps x " in err
    assert "2 evaluations x 2 policy calls" in err and "torch threads 1" in err
    assert results.read_config(out)["train"]["num_threads"] == 1
    assert json.loads((out / results.SUMMARY_FILE).read_text())["status"] == "completed"
