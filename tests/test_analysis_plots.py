"""Figures render to real PNG and PDF files with content; aggregate numbers match the statistics by hand."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
from test_analysis_support import write_run

from analysis import plots
from analysis.collect import collect
from analysis.tables import make_ablation_table, make_table

TASKS = ("hopper-medium-v2", "walker2d-medium-v2")


@pytest.fixture
def collection(tmp_path: Path):
    """Two ensemble sizes on two tasks, three seeds, four evaluations each."""
    for t, task in enumerate(TASKS):
        for m in (2, 4):
            for seed in range(3):
                base = 10.0 * m + 5.0 * t + seed
                write_run(tmp_path / "r" / task / f"m{m}" / f"seed_{seed}", task, seed,
                          [base, base + 3, base + 1, base + 6], overrides={"agent.num_critics": str(m)})
    return collect(tmp_path / "r")


def assert_image(path: Path) -> None:
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert pixels.std() > 0.01  # not blank
    assert path.with_suffix(".pdf").read_bytes().startswith(b"%PDF")


def test_learning_curves(collection, tmp_path):
    table = make_table(collection, published=False)
    paths = plots.learning_curves(collection, table, "normalized_score_mean", tmp_path / "fig")
    assert [p.name for p in paths] == ["learning_curves.png", "learning_curves.pdf"]
    assert_image(paths[0])


def test_learning_curves_are_one_panel_per_task_and_configuration(tmp_path):
    """Four configurations on two tasks: eight panels, each one band and its mean in colour, the other three
    means in grey; a task's panels share the y axis, every panel the x axis."""
    for task in TASKS:
        for m in (2, 4, 8, 16):
            for seed in range(2):
                write_run(tmp_path / "r" / task / f"m{m}" / f"seed_{seed}", task, seed, [m, m + seed, 2 * m],
                          overrides={"agent.num_critics": str(m)})
    collection = collect(tmp_path / "r")
    fig = plots.learning_curve_figure(collection, make_table(collection, published=False), "normalized_score_mean")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 8
    for ax in axes:
        colors = [line.get_color() for line in ax.get_lines()]
        assert len(colors) == 4 and colors.count("0.75") == 3
        assert len(ax.collections) == 1  # the band of this panel's configuration only
    hopper, walker = axes[:4], axes[4:]
    assert all(a.get_title().startswith(TASKS[0]) for a in hopper)
    assert all(hopper[0].get_shared_y_axes().joined(hopper[0], a) for a in hopper[1:])
    assert not hopper[0].get_shared_y_axes().joined(hopper[0], walker[0])
    assert all(axes[0].get_shared_x_axes().joined(axes[0], a) for a in axes[1:])


def test_ablation_heatmaps(collection, tmp_path):
    table = make_ablation_table(collection, "agent.ent_coef", "agent.num_critics")
    paths = plots.ablation_heatmaps(table, tmp_path / "fig")
    assert_image(paths[0])


def test_aggregate_metrics_numbers_and_figures(collection, tmp_path):
    table = make_table(collection, select="last", published=False)
    frame, paths = plots.aggregate_metrics(table, tmp_path / "fig", reps=300)
    assert {p.name for p in paths} >= {"aggregate.csv", "aggregate.png", "performance_profile.png"}
    for name in ("aggregate.png", "performance_profile.png"):
        assert_image(tmp_path / "fig" / name)
    row = frame.set_index("column").loc["agent.num_critics=4"]
    # Last scores: hopper 46, 47, 48; walker 51, 52, 53. IQM drops one value at each end of the six.
    assert (row["tasks"], row["runs"]) == (2, 6)
    assert row["iqm"] == pytest.approx((47 + 48 + 51 + 52) / 4)
    assert row["mean"] == pytest.approx((46 + 47 + 48 + 51 + 52 + 53) / 6)
    assert row["iqm_low"] <= row["iqm"] <= row["iqm_high"]
    saved = pd.read_csv(tmp_path / "fig" / "aggregate.csv")
    assert saved.set_index("column").loc["agent.num_critics=4", "iqm"] == pytest.approx(row["iqm"])
    # M = 4 (last scores 46-53) beats M = 2 (26-33) in every pair of runs on both tasks.
    improvement = pd.read_csv(tmp_path / "fig" / "probability_of_improvement.csv")
    assert improvement.to_dict("records") == [{"x": "agent.num_critics=4", "y": "agent.num_critics=2",
                                               "probability": 1.0, "low": 1.0, "high": 1.0}]
    assert_image(tmp_path / "fig" / "probability_of_improvement.png")


def test_performance_profile_axis_fits_the_scores(collection):
    # Last scores run from 26 (M = 2, hopper, seed 0) to 53 (M = 4, walker, seed 2): a 5% margin each side.
    ax = plots.performance_profile_figure(make_table(collection, published=False)).axes[0]
    assert ax.get_xlim() == pytest.approx((26 - 1.35, 53 + 1.35))
    line = ax.get_lines()[0].get_ydata()
    assert (line[0], line[-1]) == (1.0, 0.0)  # from every run above τ to none
