"""Robust statistics against arithmetic done by hand."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from analysis.stats import (
    SEED_DDOF,
    aggregate,
    improvement_interval,
    iqm,
    mean_std,
    performance_profile,
    probability_of_improvement,
    stratified_bootstrap,
)


def test_mean_std_is_the_sample_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([4.0]) == (4.0, None)
    with pytest.raises(ValueError):
        mean_std([])


def test_iqm_drops_a_quarter_at_each_end():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == (3 + 4 + 5 + 6) / 4
    # An outlier run does not move it: sorted 0 1 2 3 4 5 6 100 -> mean of 2 3 4 5.
    assert iqm([0, 1, 2, 3, 100, 4, 5, 6]) == 3.5
    # floor(n/4) values per end: n = 6 drops one at each end.
    assert iqm([10, 1, 7, 3, 5, 9]) == (3 + 5 + 7 + 9) / 4
    assert iqm([2, 4, 9]) == 5.0  # n < 4 drops nothing


def test_bootstrap_resamples_within_tasks():
    # Each task's runs are identical, so every stratified resample pools four 0s and four 10s: the mean
    # cannot move. An unstratified bootstrap of the pooled eight values would.
    scores = {"a": np.zeros(4), "b": np.full(4, 10.0)}
    replicates = stratified_bootstrap(scores, np.mean, reps=200, seed=1)
    assert np.all(replicates == 5.0)
    assert aggregate(scores, np.mean, reps=200) == (5.0, 5.0, 5.0)


def test_bootstrap_interval_is_reproducible_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    scores = {f"task{i}": rng.normal(50 + 10 * i, 5, size=5) for i in range(3)}
    first = aggregate(scores, iqm, reps=500, seed=3)
    assert first == aggregate(scores, iqm, reps=500, seed=3)
    estimate, low, high = first
    pooled = np.concatenate(list(scores.values()))
    assert estimate == iqm(pooled)
    assert low < estimate < high
    assert pooled.min() <= low and high <= pooled.max()


def test_performance_profile_averages_tasks():
    scores = {"a": np.array([10.0, 20.0, 30.0, 40.0]), "b": np.array([50.0, 60.0])}
    profile = performance_profile(scores, [0.0, 25.0, 55.0])
    # a: 4/4, 2/4, 0/4 above; b: 2/2, 2/2, 1/2 above.
    np.testing.assert_allclose(profile, [(1 + 1) / 2, (0.5 + 1) / 2, (0 + 0.5) / 2])


def test_every_std_in_analysis_uses_the_one_stated_ddof():
    """numpy's std defaults to ddof=0 and pandas' to ddof=1: each call must say which, and say SEED_DDOF."""
    calls = []
    for path in sorted((Path(__file__).resolve().parents[1] / "analysis").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "std":
                ddof = [k.value for k in node.keywords if k.arg == "ddof"]
                calls.append((path.name, node.lineno, ast.unparse(ddof[0]) if ddof else None))
    assert len(calls) >= 3  # tables, learning curves, toy figure
    assert [c for c in calls if c[2] != "SEED_DDOF"] == []
    assert SEED_DDOF == 1


def test_probability_of_improvement_counts_wins_and_half_ties_per_task():
    # Task a: every run of x beats every run of y (1). Task b: pairs (1,2) (1,2) (3,2) (3,2) -> 2 of 4 (0.5);
    # task c: all tied (0.5). Averaged over tasks: 2/3.
    x = {"a": [5.0, 6.0], "b": [1.0, 3.0], "c": [4.0]}
    y = {"a": [0.0, 1.0, 2.0], "b": [2.0, 2.0], "c": [4.0, 4.0]}
    assert probability_of_improvement(x, y) == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    assert probability_of_improvement(y, x) == pytest.approx(1.0 - (1.0 + 0.5 + 0.5) / 3)
    with pytest.raises(ValueError, match="at least one task"):
        probability_of_improvement({"a": [1.0]}, {"b": [1.0]})


def test_improvement_interval_brackets_the_estimate_and_separates_clear_winners():
    rng = np.random.default_rng(1)
    better = {task: rng.normal(10.0, 1.0, 5) for task in "abc"}
    worse = {task: rng.normal(0.0, 1.0, 5) for task in "abc"}
    same = {task: rng.normal(10.0, 1.0, 5) for task in "abc"}
    value, low, high = improvement_interval(better, worse, reps=500)
    assert (value, low, high) == (1.0, 1.0, 1.0)
    value, low, high = improvement_interval(better, same, reps=500)
    assert low < 0.5 < high and low <= value <= high
    assert improvement_interval(better, same, reps=500) == (value, low, high)  # seeded: reproducible
