"""From per-seed run directories to one number per trial: the seed aggregate that Tune optimises.

Each seed's value is the mean of its last ``k`` evaluations of the objective metric (a smoothed score, never
the best-ever evaluation: that would reward lucky noise). The trial's objective is the mean over seeds, with
the sample standard deviation over seeds (ddof = erdiff.results.SEED_DDOF, as in every table; null for one
seed) and every seed's value beside it.

How the per-seed values meet (README, "Sweeps"): every seed worker reports its own value through
``ray.train.report``. Ray Train's report is a barrier, so the Train controller receives one report per worker
for the same evaluation; :class:`tune.trainable.SeedAggregateCallback` turns that list into the aggregate
below before Tune sees it. The in-process trainable computes the same aggregate directly. No shared
filesystem is needed for it. This module does not import Ray.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from erdiff import results
from tune.spec import Objective

TRIAL_FILE = "trial.json"
DIVERGED = results.DIVERGED
"""The status of a diverged run (summary.json) and of its trial (trial.json)."""


def smoothed_value(records: list[dict], metric: str, last_k: int) -> float | None:
    """Mean of the last ``last_k`` non-null values of ``metric``; None before the first one."""
    values = [r[metric] for r in records if r.get(metric) is not None]
    if not values:
        return None
    tail = values[-last_k:]
    return float(sum(tail) / len(tail))


def count_evaluations(epochs: int, eval_every: int) -> int:
    """Evaluations a full run makes: every ``eval_every`` epochs, and after the last epoch."""
    return epochs // eval_every + (1 if epochs % eval_every else 0)


def seed_report(run_dir: str | Path, seed: int, objective: Objective, planned_evaluations: int) -> dict:
    """What one seed reports after an evaluation: its smoothed value, where it stands, whether it diverged."""
    records = results.read_metrics(run_dir)
    last = records[-1] if records else {"step": 0, "epoch": 0}
    summary = results.read_summary(run_dir) or {}
    return {"seed": seed, "value": smoothed_value(records, objective.metric, objective.last_k),
            "evaluation": len(records), "planned_evaluations": planned_evaluations,
            "step": last["step"], "epoch": last["epoch"], "diverged": summary.get("status") == DIVERGED}


def aggregate(reports: list[dict]) -> dict:
    """The trial's result from its seeds' reports for the same evaluation (see the module docstring).

    ``objective`` is NaN while no seed has a value (a metric that is never recorded), and once a seed diverged:
    the trial then has no score (NaN ranks nowhere in ASHA) and fails (tune.trainable.SeedDiverged).
    """
    diverged = any(r.get("diverged") for r in reports)
    values = [] if diverged else [r["value"] for r in reports if r["value"] is not None]
    return {
        "objective": float(np.mean(values)) if values else math.nan,
        "objective_std": float(np.std(values, ddof=results.SEED_DDOF)) if len(values) > 1 else math.nan,
        "objective_seeds": {f"seed_{r['seed']}": r["value"] for r in reports},
        "num_seeds": len(reports),
        "evaluation": min(r["evaluation"] for r in reports),
        "planned_evaluations": max(r["planned_evaluations"] for r in reports),
        "step": min(r["step"] for r in reports),
        # Tune's logger callbacks (TensorBoard, MLflow) put results at this step, here the seeds' gradient step
        "timesteps_total": min(r["step"] for r in reports),
        "epoch": min(r["epoch"] for r in reports),
    }


def trial_record(sweep: str, trial: str, task: str, params: dict, objective: Objective, result: dict | None,
                 status: str, divergence: dict | None = None) -> dict:
    """The content of ``<out>/trials/<trial>/trial.json``: the configuration and its latest seed aggregate;
    for a diverged trial, where each diverged seed did (``divergence``: ``seed_<k>`` -> step, epoch, quantity).

    ``wall_time_s`` is Tune's ``time_total_s`` of the result: seconds the trial has run, startup included (what
    tune.progress estimates the time left from)."""
    result = result or {}
    record = {
        "sweep": sweep,
        "trial": trial,
        "task": task,
        "params": params,
        "status": status,
        "objective": {"metric": objective.metric, "mode": objective.mode, "last_k": objective.last_k,
                      "mean": result.get("objective"), "std": result.get("objective_std"),
                      "per_seed": result.get("objective_seeds", {})},
        "evaluation": result.get("evaluation", 0),
        "planned_evaluations": result.get("planned_evaluations"),
        "step": result.get("step", 0),
        "wall_time_s": result.get("time_total_s"),
    }
    if divergence:
        record["divergence"] = divergence
    return record


def write_trial_record(trial_dir: str | Path, record: dict) -> None:
    results.write_json(Path(trial_dir) / TRIAL_FILE, record)


def read_trial_records(out_dir: str | Path) -> list[dict]:
    """Every ``trials/<trial>/trial.json`` of the sweep in ``out_dir``, by trial name."""
    records = []
    for path in sorted(Path(out_dir).glob(f"trials/*/{TRIAL_FILE}")):
        try:
            records.append(json.loads(path.read_text()))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise results.ResultsError(f"{path}: not valid JSON ({err})") from err
    return records
