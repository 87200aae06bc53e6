"""Statistics over seeds and tasks, in plain numpy.

* :func:`mean_std` — a table cell: the mean over seeds and the sample standard deviation (ddof=1,
  :data:`SEED_DDOF`; none for a single seed, where it is undefined).
* :func:`iqm` — the interquartile mean of scores pooled over runs × tasks: sort, drop the lowest and the
  highest quarter (``floor(n/4)`` values each), average the rest. It is robust to a few outlier runs yet
  uses half the data, unlike the median (Agarwal et al., 2021, "Deep RL at the edge of the statistical
  precipice").
* :func:`stratified_bootstrap` — confidence intervals for such an aggregate: each replicate resamples, with
  replacement, the runs *within each task* (so every task keeps its number of runs) and recomputes the
  statistic on the pooled resample; the interval is the percentile interval of the replicates.
* :func:`performance_profile` — for each threshold τ, the fraction of runs scoring above τ, computed per
  task and averaged over tasks (each task weighs the same, whatever its number of seeds).
* :func:`probability_of_improvement` — the chance that a run of configuration X beats a run of Y on a task, averaged
  over tasks (Agarwal et al., 2021), with :func:`improvement_interval` its stratified-bootstrap interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from erdiff.results import SEED_DDOF  # noqa: F401  (re-exported: what every std over seeds here uses)


def mean_std(values) -> tuple[float, float | None]:
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("mean_std needs at least one value")
    std = float(values.std(ddof=SEED_DDOF)) if values.size > 1 else None
    return float(values.mean()), std


def iqm(values) -> float:
    """Interquartile mean: the mean of the sorted values without the lowest and highest floor(n/4)."""
    ordered = np.sort(np.asarray(values, dtype=float).ravel())
    if ordered.size == 0:
        raise ValueError("iqm needs at least one value")
    cut = ordered.size // 4
    return float(ordered[cut:ordered.size - cut].mean())


def _pooled(scores_by_task: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(v, dtype=float).ravel() for v in scores_by_task.values()])


def stratified_bootstrap(scores_by_task: Mapping[str, np.ndarray], statistic: Callable = iqm,
                         reps: int = 2000, seed: int = 0) -> np.ndarray:
    """``reps`` values of ``statistic`` on resamples that redraw the runs within each task."""
    rng = np.random.default_rng(seed)
    tasks = [np.asarray(v, dtype=float).ravel() for v in scores_by_task.values()]
    replicates = np.empty(reps)
    for i in range(reps):
        resample = [task[rng.integers(0, task.size, task.size)] for task in tasks]
        replicates[i] = statistic(np.concatenate(resample))
    return replicates


def aggregate(scores_by_task: Mapping[str, np.ndarray], statistic: Callable = iqm, confidence: float = 0.95,
              reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """The statistic on the pooled scores and its stratified-bootstrap percentile interval (low, high)."""
    replicates = stratified_bootstrap(scores_by_task, statistic, reps, seed)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return statistic(_pooled(scores_by_task)), float(low), float(high)


def performance_profile(scores_by_task: Mapping[str, np.ndarray], thresholds) -> np.ndarray:
    """Fraction of runs with score > τ for each τ in ``thresholds``, averaged over tasks."""
    thresholds = np.asarray(thresholds, dtype=float)
    per_task = [(np.asarray(v, dtype=float).ravel()[:, None] > thresholds[None, :]).mean(axis=0)
                for v in scores_by_task.values()]
    return np.mean(per_task, axis=0)


def probability_of_improvement(x_by_task: Mapping[str, np.ndarray], y_by_task: Mapping[str, np.ndarray]) -> float:
    """P(X > Y) = (1/N) Σ_tasks (1/(n·m)) Σ_i Σ_j S(x_i, y_j), S = 1 if x_i > y_j, ½ if equal, 0 otherwise:
    the Mann–Whitney U statistic of each task's n runs of X against its m runs of Y, averaged over the tasks both
    have. ½ means neither configuration tends to beat the other."""
    tasks = sorted(set(x_by_task) & set(y_by_task))
    if not tasks:
        raise ValueError("probability_of_improvement needs at least one task with scores of both configurations")
    per_task = []
    for task in tasks:
        x = np.asarray(x_by_task[task], dtype=float).ravel()[:, None]
        y = np.asarray(y_by_task[task], dtype=float).ravel()[None, :]
        per_task.append(((x > y) + 0.5 * (x == y)).mean())
    return float(np.mean(per_task))


def improvement_interval(x_by_task: Mapping[str, np.ndarray], y_by_task: Mapping[str, np.ndarray],
                         confidence: float = 0.95, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """P(X > Y) and its percentile interval over stratified-bootstrap replicates that redraw, within each task,
    the runs of X and the runs of Y independently."""
    rng = np.random.default_rng(seed)
    tasks = sorted(set(x_by_task) & set(y_by_task))
    xs = {task: np.asarray(x_by_task[task], dtype=float).ravel() for task in tasks}
    ys = {task: np.asarray(y_by_task[task], dtype=float).ravel() for task in tasks}
    replicates = np.empty(reps)
    for i in range(reps):
        replicates[i] = probability_of_improvement({t: v[rng.integers(0, v.size, v.size)] for t, v in xs.items()},
                                                   {t: v[rng.integers(0, v.size, v.size)] for t, v in ys.items()})
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return probability_of_improvement(xs, ys), float(low), float(high)
