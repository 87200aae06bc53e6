"""A sweep's ``tracking:`` through Ray Tune's logger callbacks (README, "Tracking").

Tune logs each trial's results, the seed aggregate (tune.aggregate), through its integrations: TensorBoard event
files in the trial's folder of Tune's storage (``TBXLoggerCallback``, which Tune also adds by itself unless
``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``), a W&B run per trial (:mod:`tune.wandb_logger`, from the driver, grouped
by the sweep) and an MLflow run per trial (``MLflowLoggerCallback``, in the experiment named after the sweep). The
seeds' own runs log their records through :mod:`erdiff.tracking` (the spec sets ``train.track`` of every seed),
tagged with the sweep and the trial. Both sides write where the libraries' variables say; without
``MLFLOW_TRACKING_URI`` a sweep writes to ``sqlite:///<out>/mlflow.db``, set in this process's environment before
Ray starts so that local workers inherit it (on a cluster, set it in the job's runtime environment).
"""

from __future__ import annotations

import os
from pathlib import Path

from erdiff.tracking import DEFAULT_PROJECT, check_installed
from tune.spec import SweepSpec

MLFLOW_DB = "mlflow.db"
"""The sqlite MLflow store of a sweep without MLFLOW_TRACKING_URI, in its results folder."""


def set_tracking_environment(spec: SweepSpec, out_dir: str) -> None:
    """Check the spec's tracking libraries are installed and point the driver and local workers at one MLflow
    store (before Ray starts: its processes inherit this environment)."""
    check_installed(list(spec.tracking))
    if "mlflow" in spec.tracking:
        os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{Path(out_dir).resolve() / MLFLOW_DB}")


def tracking_callbacks(spec: SweepSpec) -> list:
    """Ray Tune's logger callbacks for the spec's ``tracking``, logging each trial's seed aggregate."""
    callbacks = []
    if "tensorboard" in spec.tracking:
        from ray.tune.logger import TBXLoggerCallback

        callbacks.append(TBXLoggerCallback())
    if "wandb" in spec.tracking:
        from tune.wandb_logger import TrialWandbCallback  # imports wandb, so only here

        callbacks.append(TrialWandbCallback(project=os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
                                            group=spec.name, job_type="trial", tags=[f"sweep={spec.name}"]))
    if "mlflow" in spec.tracking:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        callbacks.append(MLflowLoggerCallback(
            tracking_uri=os.environ.get("MLFLOW_TRACKING_URI"),
            experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME") or spec.name, tags={"sweep": spec.name}))
    return callbacks
