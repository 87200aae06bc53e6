"""Seed aggregation and run-directory snapshots (no Ray needed)."""

import math

import pytest

from erdiff import results
from erdiff.config import make_config
from erdiff.train import train
from tune.aggregate import aggregate, count_evaluations, seed_report, smoothed_value, trial_record
from tune.snapshots import RUN_FILES, log_session, read_sessions, restore_run_dir, staged_snapshot
from tune.spec import Objective


def test_smoothed_value_is_the_mean_of_the_last_k_evaluations_never_the_best():
    records = [{"score": 90.0}, {"score": None}, {"score": 10.0}, {"score": 20.0}, {"score": 30.0}]
    assert smoothed_value(records, "score", 2) == 25.0
    assert smoothed_value(records, "score", 3) == 20.0  # the null record is skipped; 90 (the best) is too old
    assert smoothed_value(records, "score", 10) == pytest.approx(37.5)
    assert smoothed_value([{"score": None}], "score", 3) is None


@pytest.mark.parametrize(("epochs", "eval_every", "expected"), [(4, 1, 4), (10, 5, 2), (10, 4, 3), (3, 5, 1)])
def test_count_evaluations_matches_the_training_loop(epochs, eval_every, expected):
    assert count_evaluations(epochs, eval_every) == expected


def test_aggregate_over_seeds():
    reports = [{"seed": 0, "value": 10.0, "evaluation": 3, "planned_evaluations": 4, "step": 30, "epoch": 3},
               {"seed": 4, "value": 20.0, "evaluation": 3, "planned_evaluations": 4, "step": 30, "epoch": 3}]
    result = aggregate(reports)
    # The sample std over seeds, as in the tables: sqrt(((10-15)² + (20-15)²) / (2 - 1)).
    assert result["objective"] == 15.0 and result["objective_std"] == pytest.approx(50 ** 0.5)
    assert result["objective_seeds"] == {"seed_0": 10.0, "seed_4": 20.0}
    assert (result["evaluation"], result["planned_evaluations"], result["step"]) == (3, 4, 30)
    assert math.isnan(aggregate([{**reports[0], "value": None}])["objective"])
    record = trial_record("s", "t", "toy", {"agent.T": 3}, Objective(last_k=2), result, "completed")
    assert record["objective"] == {"metric": "normalized_score_mean", "mode": "max", "last_k": 2, "mean": 15.0,
                                   "std": pytest.approx(50 ** 0.5), "per_seed": {"seed_0": 10.0, "seed_4": 20.0}}
    assert math.isnan(aggregate(reports[:1])["objective_std"])  # undefined for one seed


def tiny_run(run_dir, dataset, scores, stop_after_first=False):
    """Three epochs of 5 steps, evaluated after each; the evaluations score the next values of ``scores``."""
    config = make_config("toy", {"agent": {"num_critics": 2, "hidden_dim": 16},
                                 "train": {"epochs": 3, "steps_per_epoch": 5, "batch_size": 32,
                                           "eval_every": 1, "eval_episodes": 0}})

    def evaluator(policy):
        score = float(next(scores))
        return {"episode_returns": [score], "return_mean": score, "return_std": 0.0,
                "normalized_score_mean": score, "normalized_score_std": 0.0}

    return train(config, run_dir, dataset=dataset, evaluator=evaluator, max_action=1.0, progress=False, resume=True,
                 on_evaluation=(lambda record, run_dir: True) if stop_after_first else None)


def test_seed_report_reads_the_run_directory(tmp_path, linear_dataset):
    tiny_run(tmp_path, linear_dataset, iter([10, 20, 30]))
    report = seed_report(tmp_path, 7, Objective(last_k=2), planned_evaluations=3)
    assert report == {"seed": 7, "value": 25.0, "evaluation": 3, "planned_evaluations": 3, "step": 15, "epoch": 3,
                      "diverged": False}


def test_snapshot_restore_sets_a_seed_back_to_the_checkpoint(tmp_path, linear_dataset):
    seed_dir = tmp_path / "trials" / "t" / "seed_3"
    tiny_run(seed_dir, linear_dataset, iter([10]), stop_after_first=True)
    with staged_snapshot({3: seed_dir}) as staging:
        assert sorted(p.name for p in (staging / "seed_3").iterdir()) == sorted(RUN_FILES)
        saved = tmp_path / "checkpoint"
        saved.mkdir()
        for path in (staging / "seed_3").iterdir():  # what Ray keeps: a copy in its storage
            (saved / "seed_3").mkdir(exist_ok=True)
            (saved / "seed_3" / path.name).write_bytes(path.read_bytes())
    assert not staging.exists()

    tiny_run(seed_dir, linear_dataset, iter([-1, -1]))  # the seed moves on past the checkpoint...
    assert len(results.read_metrics(seed_dir)) == 3
    config_mtime = (seed_dir / results.CONFIG_FILE).stat().st_mtime_ns
    restore_run_dir(seed_dir, saved, 3)  # ...and is set back to it, as after a crash of another seed
    assert len(results.read_metrics(seed_dir)) == 1
    assert (seed_dir / results.CONFIG_FILE).stat().st_mtime_ns == config_mtime  # unchanged files are kept
    assert results.read_summary(seed_dir)["epoch"] == 1
    tiny_run(seed_dir, linear_dataset, iter([20, 30]))
    assert [r["normalized_score_mean"] for r in results.read_metrics(seed_dir)] == [10.0, 20.0, 30.0]

    restore_run_dir(seed_dir, None, 3)  # no checkpoint: a fresh start
    assert not any((seed_dir / name).exists() for name in RUN_FILES)


def test_sessions_log(tmp_path):
    log_session(tmp_path, 0)
    log_session(tmp_path, 2)
    sessions = read_sessions(tmp_path)
    assert [s["start_evaluation"] for s in sessions] == [0, 2] and all(s["pid"] > 0 for s in sessions)
