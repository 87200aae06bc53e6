"""Figures for a table, each written as PNG and PDF with matplotlib's non-interactive Agg backend.

* :func:`learning_curves` — the evaluation metric against the training step, one small panel per task and
  column: the mean over seeds with a band of ± one standard deviation, the other columns' means in grey.
* :func:`ablation_heatmaps` — one heatmap per section of an ablation table (each task and the average).
* :func:`aggregate_metrics` — IQM and mean over runs × tasks with stratified-bootstrap 95% intervals, and
  performance profiles (:mod:`analysis.stats`), on the tasks every column has; also returns the numbers.
* :func:`iqm_heatmaps`, :func:`iqm_curves` — a study's IQM with 95% intervals (:mod:`analysis.study`) over two
  fields (α × β) or against one (the ensemble size M), one panel per task and one over all tasks.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never open a window, also on a cluster node without a display

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.collect import Collection  # noqa: E402
from analysis.stats import SEED_DDOF, aggregate, improvement_interval, iqm, performance_profile  # noqa: E402
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


def learning_curve_figure(collection: Collection, table: Table, metric: str):
    """Small multiples of ``metric`` against the step: one panel per (task, column) with that column's mean ±
    std over seeds, and the task's other columns' means in grey for comparison (overlapping bands of several
    columns in one panel are unreadable). Panels of a task share the y axis, all panels the x axis; None when
    no evaluation has ``metric``."""
    runs = {run.name: run for run in collection.runs}
    points = [{"column": row.column, "task": row.task, "seed": row.seed, "step": record["step"],
               "value": record[metric]}
              for row in table.scores.itertuples() for record in runs[row.run].records
              if record.get(metric) is not None]
    if not points:
        return None
    frame = pd.DataFrame(points)
    curves = {}  # (task, column) -> (steps, mean, std)
    for (task, column), group in frame.groupby(["task", "column"]):
        by_step = group.groupby("step")["value"]
        std = by_step.std(ddof=SEED_DDOF).fillna(0.0).to_numpy()  # NaN for a single seed: no band
        curves[(task, column)] = (by_step.mean().index.to_numpy(), by_step.mean().to_numpy(), std)
    columns = sorted(set(frame["column"]))
    colors = {column: f"C{i % 10}" for i, column in enumerate(columns)}
    panels = [(task, column) for task in task_order(set(frame["task"])) for column in columns
              if (task, column) in curves]
    # One row per task when the columns fit in it; a single configuration: four tasks per row.
    fig, axes = _grid(len(panels), width=len(columns) if 1 < len(columns) <= 5 else 4)
    first_of_task = {}
    for ax, (task, column) in zip(axes, panels):
        if task in first_of_task:
            ax.sharey(first_of_task[task])
        else:
            first_of_task[task] = ax
        if ax is not axes[0]:
            ax.sharex(axes[0])
        for other in columns:
            if other != column and (task, other) in curves:
                steps, mean, _ = curves[(task, other)]
                ax.plot(steps, mean, color="0.75", linewidth=0.8)
        steps, mean, std = curves[(task, column)]
        ax.fill_between(steps, mean - std, mean + std, color=colors[column], alpha=0.25)
        ax.plot(steps, mean, marker="o", markersize=3, color=colors[column])
        ax.set_title(textwrap.fill(f"{task} · {column}", 48), fontsize=8)
        ax.set_xlabel("gradient step")
        ax.set_ylabel(metric.replace("_mean", ""))
        ax.grid(alpha=0.3)
    others = " (grey: the task's other columns)" if len(columns) > 1 else ""
    fig.suptitle(f"Learning curves: mean ± std over seeds (ddof={SEED_DDOF}){others}; table statistic: "
                 f"{table.statistic}", fontsize=10)
    return fig


def learning_curves(collection: Collection, table: Table, metric: str, out_dir: str | Path) -> list[Path]:
    """:func:`learning_curve_figure` as learning_curves.png and .pdf; none when there is nothing to plot."""
    fig = learning_curve_figure(collection, table, metric)
    return [] if fig is None else _save(fig, out_dir, "learning_curves")


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
    """IQM / mean interval plot, performance profiles and, with two columns or more, the probability of
    improvement of the best column (by IQM) over each other one; the numbers are also written as aggregate.csv
    and probability_of_improvement.csv."""
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

    paths += _save(performance_profile_figure(table), out_dir, "performance_profile")
    if len(frame) > 1:
        improvement = improvement_frame(table, frame, reps, seed)
        improvement.to_csv(out_dir / "probability_of_improvement.csv", index=False)
        paths += [out_dir / "probability_of_improvement.csv"]
        paths += _save(improvement_figure(improvement), out_dir, "probability_of_improvement")
    return frame, paths


def improvement_frame(table: Table, frame: pd.DataFrame, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """P(best > other) with its 95% interval, the best column being the one with the highest IQM in ``frame``,
    on the tasks every column has."""
    scores = table.scores[table.scores["task"].isin(_common_tasks(table.scores))]
    by_column = {column: {task: g["score"].to_numpy() for task, g in group.groupby("task")}
                 for column, group in scores.groupby("column", sort=True)}
    best = frame.loc[frame["iqm"].idxmax(), "column"]
    rows = []
    for column in frame["column"]:
        if column != best:
            value, low, high = improvement_interval(by_column[best], by_column[column], reps=reps, seed=seed)
            rows.append({"x": best, "y": column, "probability": value, "low": low, "high": high})
    return pd.DataFrame(rows)


def improvement_figure(improvement: pd.DataFrame):
    """One interval per pair: P(X > Y) = ½ is the line where neither beats the other."""
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(improvement) + 1.6))
    y = np.arange(len(improvement))
    errors = [improvement["probability"] - improvement["low"], improvement["high"] - improvement["probability"]]
    ax.errorbar(improvement["probability"], y, xerr=errors, fmt="o", capsize=4)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(y, [f"P({row.x} > {row.y})" for row in improvement.itertuples()], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability of improvement (95% stratified-bootstrap CI)")
    ax.grid(axis="x", alpha=0.3)
    return fig


def performance_profile_figure(table: Table):
    """Performance profiles of the columns on the tasks they all have, τ over the scores' range and a margin
    (a fixed 0–100 squeezes low scores into a corner)."""
    tasks = _common_tasks(table.scores)
    scores = table.scores[table.scores["task"].isin(tasks)]
    low, high = float(scores["score"].min()), float(scores["score"].max())
    margin = 0.05 * (high - low) or 1.0  # all scores equal: still a visible step
    thresholds = np.linspace(low - margin, high + margin, 201)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for column, group in scores.groupby("column", sort=True):
        by_task = {task: g["score"].to_numpy() for task, g in group.groupby("task")}
        ax.plot(thresholds, performance_profile(by_task, thresholds), label=column)
    ax.set_xlim(thresholds[0], thresholds[-1])
    ax.set_xlabel("score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_title(f"Performance profile over {len(tasks)} task(s)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def _section_title(section: str, frame: pd.DataFrame) -> str:
    runs = frame[frame["section"] == section]["runs"]
    return f"{section} ({runs.min()}–{runs.max()} runs per cell)" if runs.min() != runs.max() else \
        f"{section} ({runs.min()} runs per cell)"


def field_value_order(values) -> list:
    """A searched field's values for an axis: numbers ascending, then words such as ``auto`` in their order."""
    values = list(dict.fromkeys(values))
    return sorted((v for v in values if not isinstance(v, str)), key=float) + [v for v in values if isinstance(v, str)]


def iqm_heatmaps(frame: pd.DataFrame, sections: list[str], row_field: str, column_field: str,
                 out_dir: str | Path, name: str) -> list[Path]:
    """One heatmap of the IQM over ``row_field`` × ``column_field`` per section (a task, or all tasks) of a
    study's :func:`analysis.study.interval_frame`, each cell annotated with its IQM and 95% interval."""
    fig, axes = _grid(len(sections), width=3)
    rows = field_value_order(frame[row_field])
    columns = field_value_order(frame[column_field])
    for ax, section in zip(axes, sections):
        cells = frame[frame["section"] == section].set_index([row_field, column_field])
        values = np.array([[cells.loc[(r, c), "iqm"] if (r, c) in cells.index else np.nan for c in columns]
                           for r in rows], dtype=float)
        image = ax.imshow(values, cmap="viridis", aspect="auto")
        for (i, j), value in np.ndenumerate(values):
            if not np.isnan(value):
                cell = cells.loc[(rows[i], columns[j])]
                color = "black" if image.norm(value) > 0.5 else "white"  # readable on both ends of the map
                ax.text(j, i, f"{value:.1f}\n[{cell['low']:.1f}, {cell['high']:.1f}]", ha="center",
                        va="center", fontsize=7, color=color)
        ax.set_xticks(range(len(columns)), [f"{c:g}" if isinstance(c, float) else str(c) for c in columns])
        ax.set_yticks(range(len(rows)), [f"{r:g}" if isinstance(r, float) else str(r) for r in rows])
        ax.set_xlabel(column_field)
        ax.set_ylabel(row_field)
        ax.set_title(_section_title(section, frame), fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle("IQM of the normalized score with 95% stratified-bootstrap intervals", fontsize=10)
    return _save(fig, out_dir, f"{name}_heatmaps")


def iqm_curves(frame: pd.DataFrame, sections: list[str], field: str, out_dir: str | Path,
               name: str) -> list[Path]:
    """IQM against ``field`` (e.g. the ensemble size) with its 95% interval as a band, one panel per section
    of a study's :func:`analysis.study.interval_frame`; a log2 axis when the values are positive."""
    fig, axes = _grid(len(sections), width=3)
    for ax, section in zip(axes, sections):
        rows = frame[frame["section"] == section].sort_values(field)
        x = rows[field].to_numpy(dtype=float)
        ax.fill_between(x, rows["low"], rows["high"], alpha=0.25, label="95% CI")
        ax.plot(x, rows["iqm"], "o-", label="IQM")
        if (x > 0).all():
            ax.set_xscale("log", base=2)
            ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.set_xlabel(field)
        ax.set_ylabel("normalized score")
        ax.set_title(_section_title(section, frame), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("IQM of the normalized score with 95% stratified-bootstrap intervals", fontsize=10)
    return _save(fig, out_dir, f"{name}_curves")


def iqm_intervals(frame: pd.DataFrame, sections: list[str], out_dir: str | Path, name: str) -> list[Path]:
    """The IQM of every configuration with its 95% interval as a horizontal bar, one panel per section of a study's
    :func:`analysis.study.interval_frame`: the figure for a study of three fields or more, where no heatmap or
    curve fits."""
    labels = list(dict.fromkeys(frame["label"]))
    fig, axes = plt.subplots(1, len(sections), figsize=(3.2 * len(sections) + 3.5, 0.45 * len(labels) + 1.6),
                             sharey=True, squeeze=False)
    y = np.arange(len(labels))
    for ax, section in zip(axes[0], sections):
        rows = frame[frame["section"] == section].set_index("label").reindex(labels)
        errors = [rows["iqm"] - rows["low"], rows["high"] - rows["iqm"]]
        ax.errorbar(rows["iqm"], y, xerr=errors, fmt="o", capsize=3)
        ax.set_yticks(y, labels, fontsize=7)
        ax.invert_yaxis()  # the spec's order, top to bottom
        ax.set_xlabel("normalized score")
        ax.set_title(_section_title(section, frame), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("IQM of the normalized score with 95% stratified-bootstrap intervals", fontsize=10)
    return _save(fig, out_dir, f"{name}_intervals")
