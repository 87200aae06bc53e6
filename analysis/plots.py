"""Figures for a table, each written as PNG and PDF with matplotlib's non-interactive Agg backend.

* :func:`learning_curves` — per task, the evaluation metric against the training step for each column:
  the mean over seeds with a band of ± one standard deviation.
* :func:`ablation_heatmaps` — one heatmap per section of an ablation table (each task and the average).
* :func:`aggregate_metrics` — IQM and mean over runs × tasks with stratified-bootstrap 95% intervals, and
  performance profiles (:mod:`analysis.stats`), on the tasks every column has; also returns the numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never open a window, also on a cluster node without a display

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.collect import Collection  # noqa: E402
from analysis.stats import aggregate, iqm, performance_profile  # noqa: E402
from analysis.tables import Table, task_order  # noqa: E402


def _save(fig, out_dir: str | Path, name: str) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def _grid(count: int, width: int = 4):
    columns = min(count, width)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def learning_curves(collection: Collection, table: Table, metric: str, out_dir: str | Path) -> list[Path]:
    """Mean ± std over seeds of ``metric`` against the step, per task, for the runs behind ``table``."""
    runs = {run.name: run for run in collection.runs}
    points = [{"column": row.column, "task": row.task, "seed": row.seed, "step": record["step"],
               "value": record[metric]}
              for row in table.scores.itertuples() for record in runs[row.run].records
              if record.get(metric) is not None]
    if not points:
        return []
    frame = pd.DataFrame(points)
    tasks = task_order(set(frame["task"]))
    # One colour per column across all panels, and one legend below them (labels can be long).
    colors = {column: f"C{i % 10}" for i, column in enumerate(sorted(set(frame["column"])))}
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes, tasks):
        for column, group in frame[frame["task"] == task].groupby("column", sort=True):
            by_step = group.groupby("step")["value"]
            steps, mean = by_step.mean().index.to_numpy(), by_step.mean().to_numpy()
            std = by_step.std(ddof=1).fillna(0.0).to_numpy()
            ax.plot(steps, mean, marker="o", markersize=3, color=colors[column])
            ax.fill_between(steps, mean - std, mean + std, color=colors[column], alpha=0.2)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("gradient step")
        ax.set_ylabel(metric.replace("_mean", ""))
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=color, marker="o", markersize=3) for color in colors.values()]
    fig.legend(handles, list(colors), loc="outside lower center", fontsize=7)
    fig.suptitle(f"Learning curves (mean ± std over seeds); table statistic: {table.statistic}", fontsize=10)
    return _save(fig, out_dir, "learning_curves")


def ablation_heatmaps(table: Table, out_dir: str | Path) -> list[Path]:
    """One annotated heatmap per section (task or average) of an ablation table; none for an empty table."""
    if not table.sections:  # no run was scored (all incomplete or diverged)
        return []
    fig, axes = _grid(len(table.sections), width=3)
    for ax, section in zip(axes, table.sections):
        rows = [name for name, _ in section.rows]
        values = np.array([[row[c].mean if c in row and row[c].mean is not None else np.nan
                            for c in table.columns] for _, row in section.rows], dtype=float).reshape(
            len(rows), len(table.columns))
        image = ax.imshow(values, cmap="viridis", aspect="auto")
        for (i, j), value in np.ndenumerate(values):
            if not np.isnan(value):
                # dark text on the bright end of the colour map, light text on the dark end
                color = "black" if image.norm(value) > 0.5 else "white"
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=8, color=color)
        ax.set_xticks(range(len(table.columns)), [c.split("=")[-1] for c in table.columns])
        ax.set_yticks(range(len(rows)), [r.split("=")[-1] for r in rows])
        ax.set_xlabel(table.columns[0].split("=")[0] if table.columns else "")
        ax.set_ylabel(rows[0].split("=")[0] if rows else "")
        ax.set_title(section.title, fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle(f"{table.title} ({table.statistic})", fontsize=10)
    return _save(fig, out_dir, "ablation_heatmaps")


def _common_tasks(scores: pd.DataFrame) -> set[str]:
    """The tasks on which every column has at least one score."""
    return set.intersection(*(set(group["task"]) for _, group in scores.groupby("column")))


def aggregate_frame(table: Table, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per column: IQM and mean over runs × tasks with 95% stratified-bootstrap intervals.

    Only the tasks that every column has are used, so that the columns are compared on the same tasks.
    """
    scores = table.scores
    if scores.empty:
        return pd.DataFrame()
    rows = []
    for column, group in scores[scores["task"].isin(_common_tasks(scores))].groupby("column", sort=True):
        by_task = {task: g["score"].to_numpy() for task, g in group.groupby("task")}
        iqm_value, iqm_low, iqm_high = aggregate(by_task, iqm, reps=reps, seed=seed)
        mean_value, mean_low, mean_high = aggregate(by_task, np.mean, reps=reps, seed=seed)
        rows.append({"column": column, "tasks": len(by_task), "runs": len(group), "iqm": iqm_value,
                     "iqm_low": iqm_low, "iqm_high": iqm_high, "mean": mean_value, "mean_low": mean_low,
                     "mean_high": mean_high})
    return pd.DataFrame(rows)


def aggregate_metrics(table: Table, out_dir: str | Path, reps: int = 2000,
                      seed: int = 0) -> tuple[pd.DataFrame, list[Path]]:
    """IQM / mean interval plot and performance profiles; the numbers are also written as aggregate.csv."""
    frame = aggregate_frame(table, reps, seed)
    if frame.empty:
        return frame, []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / "aggregate.csv", index=False)
    paths = [out_dir / "aggregate.csv"]

    fig, axes = plt.subplots(1, 2, figsize=(9, 0.6 * len(frame) + 1.6), sharey=True)
    for ax, name in zip(axes, ("iqm", "mean")):
        y = np.arange(len(frame))
        errors = [frame[name] - frame[f"{name}_low"], frame[f"{name}_high"] - frame[name]]
        ax.errorbar(frame[name], y, xerr=errors, fmt="o", capsize=4)
        ax.set_yticks(y, frame["column"])
        ax.set_xlabel("IQM" if name == "iqm" else "mean")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Aggregate over {frame['tasks'].iloc[0]} task(s), 95% stratified-bootstrap CIs "
                 f"({table.statistic})", fontsize=10)
    paths += _save(fig, out_dir, "aggregate")

    tasks = _common_tasks(table.scores)
    scores = table.scores[table.scores["task"].isin(tasks)]
    top = max(100.0, float(scores["score"].max()))
    thresholds = np.linspace(min(0.0, float(scores["score"].min())), top, 201)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for column, group in scores.groupby("column", sort=True):
        by_task = {task: g["score"].to_numpy() for task, g in group.groupby("task")}
        ax.plot(thresholds, performance_profile(by_task, thresholds), label=column)
    ax.set_xlabel("score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_title(f"Performance profile over {len(tasks)} task(s)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    paths += _save(fig, out_dir, "performance_profile")
    return frame, paths
