"""The results format helpers: atomic writes, JSON safety, finding run directories."""

import json

from erdiff import results


def make_run(path, step=10):
    path.mkdir(parents=True)
    (path / results.CONFIG_FILE).write_text("task: toy\nseed: 0\n")
    results.write_metrics(path, [{"step": step, "normalized_score_mean": float("nan")}])


def test_find_run_dirs_skips_ray_checkpoint_copies(tmp_path):
    make_run(tmp_path / "trials" / "t0" / "seed_0")
    make_run(tmp_path / "trials" / "t0" / "seed_1")
    make_run(tmp_path / "ray" / "train" / "t0" / "checkpoint_2026-11-24_20-24-17" / "seed_0")
    make_run(tmp_path / "ray" / "exp" / "trial" / "checkpoint_000001" / "seed_0")
    found = results.find_run_dirs(tmp_path)
    assert found == [tmp_path / "trials" / "t0" / "seed_0", tmp_path / "trials" / "t0" / "seed_1"]
    # A run directory given directly is always a run, wherever it lies.
    copy = tmp_path / "ray" / "exp" / "trial" / "checkpoint_000001" / "seed_0"
    assert results.find_run_dirs(copy) == [copy]


def test_non_finite_values_are_stored_as_null(tmp_path):
    make_run(tmp_path / "run")
    line = (tmp_path / "run" / results.METRICS_FILE).read_text().strip()
    assert json.loads(line) == {"step": 10, "normalized_score_mean": None}


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    results.write_json(tmp_path / "summary.json", {"a": 1})
    results.write_json(tmp_path / "summary.json", {"a": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    assert json.loads((tmp_path / "summary.json").read_text()) == {"a": 2}


def test_summary_statistics():
    records = [{"step": s, "normalized_score_mean": v} for s, v in ((1, 5.0), (2, 9.0), (3, None), (4, 7.0))]
    assert results.summarize(records, last_k=2) == {"last": 7.0, "best": 9.0, "best_step": 2, "last_k_mean": 8.0,
                                                    "last_k": 2}
