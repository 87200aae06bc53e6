"""The benchmark scripts bench/eval.py and bench/sweep.py, run with tiny settings on real envs and a real local Ray.

bench/eval.py runs in this process (its main takes argv); bench/sweep.py runs as a subprocess so that its
local Ray lives and dies with that process. The sweep benchmark's full run is slow (`pytest -m slow`).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from erdiff.steptime import cpu_model

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
MODE_KEYS = {"seconds", "episodes_per_s", "env_steps", "env_steps_per_s", "policy_calls", "return_mean"}


@pytest.fixture
def eval_script(monkeypatch):
    """bench/eval.py as a module; its folder on sys.path as when it runs (it imports bench/report.py).

    The runs use one torch thread (tiny networks: a second thread only adds contention); the test process's
    thread count is restored afterwards.
    """
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_eval", BENCH / "eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    yield module
    torch.set_num_threads(threads)


def run_eval(eval_script, tmp_path, *args: str) -> dict:
    out = tmp_path / "eval.json"
    tiny = ["--episodes", "3", "--critics", "2", "--candidates", "4", "--T", "3", "--threads", "1"]
    assert eval_script.main([*tiny, *args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_eval_counts_full_length_episodes_in_both_modes(eval_script, tmp_path, capsys):
    result = run_eval(eval_script, tmp_path, "--tasks", "hopper-medium-v2", "pendulum-medium", "--max-steps", "15")
    assert set(result["tasks"]) == {"hopper-medium-v2", "pendulum-medium"}
    for outcome in result["tasks"].values():
        assert MODE_KEYS <= set(outcome["vectorized"]) and MODE_KEYS <= set(outcome["one_at_a_time"])
        # Episodes never end early, so both modes step 3 x 15 times; together it takes 15 calls, alone 45.
        assert outcome["vectorized"]["env_steps"] == outcome["one_at_a_time"]["env_steps"] == 45
        assert outcome["vectorized"]["policy_calls"] == 15
        assert outcome["one_at_a_time"]["policy_calls"] == 45
        assert outcome["speedup"] == pytest.approx(
            outcome["one_at_a_time"]["seconds"] / outcome["vectorized"]["seconds"])
        assert outcome["policy_call_s_batch_1"] > 0 and outcome["policy_call_s_batch_n"] > 0
    assert result["tasks"]["hopper-medium-v2"]["env_id"] == "erdiff-bench/Hopper-15steps-full-v4"
    for key in ("episodes", "critics", "T", "max_steps", "commit", "torch", "load_avg_before", "date"):
        assert key in result
    assert result["machine"] == cpu_model()  # lscpu's model name, not just "x86_64"
    assert "speed-up" in capsys.readouterr().out


def test_eval_terminate_keeps_hopper_falls(eval_script, tmp_path):
    # An untrained agent makes Hopper fall long before 300 steps once its own termination is on.
    result = run_eval(eval_script, tmp_path, "--tasks", "hopper-medium-v2", "--max-steps", "300", "--terminate")
    outcome = result["tasks"]["hopper-medium-v2"]
    assert outcome["env_id"] == "erdiff-bench/Hopper-300steps-v4"
    assert outcome["one_at_a_time"]["env_steps"] < 3 * 300
    assert outcome["vectorized"]["policy_calls"] < 300


def test_eval_rejects_unknown_task_and_bad_counts(eval_script, capsys):
    with pytest.raises(SystemExit) as exit_info:
        eval_script.main(["--tasks", "no-such-task"])
    assert exit_info.value.code == 2
    assert "unknown task 'no-such-task'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        eval_script.main(["--episodes", "0"])
    assert "--episodes must be at least 1" in capsys.readouterr().err


def run_sweep_script(tmp_path, *args: str, ray_address: str | None = None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    environment.update(ERDIFF_DATA_DIR=str(tmp_path / "data"), RAY_USAGE_STATS_ENABLED="0")
    if ray_address:
        environment["RAY_ADDRESS"] = ray_address
    return subprocess.run([sys.executable, str(BENCH / "sweep.py"), *args], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=600)


def test_sweep_refuses_a_ray_cluster_address(tmp_path):
    finished = run_sweep_script(tmp_path, ray_address="127.0.0.1:6379")
    assert finished.returncode == 2
    assert "RAY_ADDRESS is set" in finished.stderr


@pytest.mark.slow
def test_sweep_reports_overheads_and_equal_metrics(tmp_path):
    out = tmp_path / "sweep.json"
    finished = run_sweep_script(tmp_path, "--epochs", "2", "--steps-per-epoch", "5", "--eval-every", "1",
                                "--eval-episodes", "2", "--critics", "2", "--hidden", "16", "--json", str(out))
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["sweeps"]) == {"function", "packed"}
    for sweep in result["sweeps"].values():
        assert sweep["matches_bare"] is True and sweep["loss_max_rel_diff"] == 0.0  # packed: as train_seeds
        (run,) = sweep["runs"]
        assert set(run["trial_s"]) == set(run["bare_trial_s"]) == {"000_toy"} and run["trial_s"]["000_toy"] > 0
        assert run["trial_overhead_pct"] == pytest.approx(100 * (run["trial_s"]["000_toy"] / run["bare_s"] - 1))
        assert sweep["sweep_overhead_pct"] == pytest.approx(100 * (run["sweep_s"] / run["bare_s"] - 1))
    for key in ("commit", "ray", "torch", "load_avg_before", "load_avg_after", "date", "seeds", "trials"):
        assert key in result
    assert "function: trial overhead" in finished.stdout


@pytest.mark.parametrize("seeds", [1, 2])
def test_learner_bench_writes_steps_per_second(tmp_path, seeds):
    out = tmp_path / "learner.json"
    command = [sys.executable, str(BENCH / "learner.py"), "--obs-dim", "4", "--act-dim", "2", "--critics", "2",
               "--T", "3", "--batch", "16", "--steps", "3", "--warmup", "1", "--compile", "off", "--threads", "1",
               "--seeds", str(seeds), "--json", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    result = json.loads(out.read_text())
    assert result["steps_per_s"] > 0 and result["seeds"] == seeds and result["machine"] == cpu_model()
    assert result["seed_steps_per_s"] == pytest.approx(seeds * result["steps_per_s"])
    assert result["fraction_of_bound"] == pytest.approx(result["steps_per_s"] / result["bound_steps_per_s"])
    assert "steps/s" in completed.stdout and "fraction of bound" in completed.stdout
    assert result["operators_per_step"] > 100 and "operators per step" in completed.stdout


def test_learner_bench_times_a_sampled_entropy_estimate_beside_the_official_one(tmp_path):
    out = tmp_path / "learner.json"
    command = [sys.executable, str(BENCH / "learner.py"), "--obs-dim", "4", "--act-dim", "2", "--critics", "2",
               "--T", "3", "--batch", "16", "--steps", "6", "--warmup", "1", "--compile", "off", "--threads", "1",
               "--entropy-estimator", "knn", "--entropy-states", "4", "--entropy-samples", "8", "--json", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    result = json.loads(out.read_text())
    assert result["entropy_estimator"] == "knn" and (result["entropy_samples"], result["entropy_states"]) == (8, 4)
    assert result["ratio_vs_official"] == pytest.approx(result["steps_per_s"] / result["official_steps_per_s"])
    # The estimate's 4 x 8 chains of 3 steps, forward and backward, on top of the official update's products.
    assert result["gflop_per_step"] > result["official_gflop_per_step"]
    assert "steps/s ratio knn / official" in completed.stdout


def test_learner_bench_rejects_zero_seeds():
    completed = subprocess.run([sys.executable, str(BENCH / "learner.py"), "--seeds", "0"], capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 2 and "--seeds must be at least 1, got 0" in completed.stderr


def test_official_comparison_names_a_folder_without_the_official_code(tmp_path):
    completed = subprocess.run([sys.executable, str(BENCH / "vs_official.py"), "--official-src", str(tmp_path),
                                "--critics", "2"], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 1
    assert f"--official-src {tmp_path}: cannot import the official code" in completed.stderr


def run_gpu_suite(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "suite.json"
    environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    environment.update(ERDIFF_DATA_DIR=str(tmp_path / "data"), RAY_USAGE_STATS_ENABLED="0")
    finished = subprocess.run([sys.executable, str(BENCH / "gpu_suite.py"), "--device", "cpu", "--quick", *args,
                               "--json", str(out)], cwd=REPO, env=environment, capture_output=True, text=True,
                              timeout=900)
    return finished, json.loads(out.read_text())


def check_learner_runs(runs: dict, keys: set[str]) -> None:
    assert set(runs) == keys
    for run in runs.values():
        assert run["steps_per_s"] > 0 and run["peak_memory_mb"] > 0 and run["device"] == "cpu"


def test_gpu_suite_quick_eager_learner_and_eval(tmp_path):
    finished, result = run_gpu_suite(tmp_path, "--sections", "learner", "eval", "--modes", "off")
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert result["complete"] is True and set(result["sections"]) == {"learner", "eval"}
    assert result["device"]["name"] and result["device"]["commit"]
    check_learner_runs(result["sections"]["learner"]["runs"], {"M=2 off", "M=64 off", "M=64 off tf32"})
    (evaluation,) = result["sections"]["eval"]["runs"].values()
    for outcome in evaluation["tasks"].values():
        assert outcome["vectorized"]["episodes_per_s"] > 0 and outcome["one_at_a_time"]["episodes_per_s"] > 0
    assert "| learner | M=64, eager (train.compile off) |" in finished.stdout
    assert result["table"] in finished.stdout


def test_gpu_suite_records_a_spent_budget_as_errors_and_exits_1(tmp_path):
    finished, result = run_gpu_suite(tmp_path, "--sections", "packed", "--budget-s", "1")
    assert finished.returncode == 1 and "ran out of time" in finished.stderr
    runs = result["sections"]["packed"]["runs"]
    assert set(runs) == {"K=1", "K=4", "K=16"} and all("budget was spent" in run["error"] for run in runs.values())


@pytest.mark.slow
def test_gpu_suite_quick_runs_every_section(tmp_path):
    # Starts a local Ray (the fractional section): run under the shared Ray lock.
    finished, result = run_gpu_suite(tmp_path, "--budget-s", "900")
    assert finished.returncode == 0, finished.stderr[-3000:]
    sections = result["sections"]
    assert set(sections) == {"learner", "packed", "eval", "fractional"} and result["complete"] is True
    check_learner_runs(sections["learner"]["runs"], {"M=2 off", "M=2 activation", "M=2 update", "M=64 off",
                                                     "M=64 activation", "M=64 off tf32"})
    packed = sections["packed"]["runs"]
    assert set(packed) == {"K=1", "K=4", "K=16"}
    for seeds, run in zip((1, 4, 16), packed.values()):
        assert run["seeds"] == seeds and run["seed_steps_per_s"] == pytest.approx(seeds * run["steps_per_s"])
    sweep = sections["fractional"]["runs"]["sweep"]
    assert sweep["trials"] == 4 and sweep["completed"] == sweep["seed_runs"] == 4
    assert sweep["seed_steps"] == 4 * 10 and sweep["seed_steps_per_s"] > 0
    assert "| fractional | quickstart, 4 trials at once" in finished.stdout
