"""Experiment tracking: every evaluation record of a run also goes to TensorBoard, Weights & Biases or MLflow.

``train.track`` (``erdiff train --track tensorboard,wandb,mlflow``) names the libraries; README, "Tracking". Each
seed is one tracked run in each library, as each seed is one run directory: a packed seed resumes alone, and
W&B's groups and MLflow's tags put the seeds of a configuration side by side (W&B groups them by the sweep's
trial). A tracked run gets, at each evaluation, every key of the metrics.jsonl record at the record's gradient
step (numbers as scalars; ``episode_returns`` as a histogram where the library has them, so not in MLflow), the
flattened config as hyperparameters, and tags task, seed and the config's tags (sweep and trial in sweeps).

Where it goes, offline by default where the library allows: TensorBoard event files in ``<run>/tensorboard/``;
W&B into ``$WANDB_DIR`` or else the run directory (``WANDB_MODE=offline`` writes W&B's offline run folders there),
project ``$WANDB_PROJECT`` or ``erdiff``; MLflow to ``$MLFLOW_TRACKING_URI`` (MLflow's default otherwise: a
sqlite file in the current folder), experiment ``$MLFLOW_EXPERIMENT_NAME``, else the sweep's name, else
``erdiff``.

``<run>/tracking.json`` (:data:`erdiff.results.TRACKING_FILE`) keeps, per library, the ids of the tracked run and
the last step it holds. A resume continues the same tracked runs and logs only records beyond that step, after
first sending the tracked run the records of metrics.jsonl it lacks (so a library added at a resume, or a tracked
run that missed evaluations, catches up). TensorBoard also purges events beyond that step, so an evaluation
logged just before a crash is not shown twice.

Tracking never costs a result: trackers open at the first evaluation (a run that fails before it leaves no
tracked run), and one that raises is reported in one warning and switched off until the training call ends (a
resume tries it again); the run goes on. A library that is not installed is an error before training starts.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from erdiff import results
from erdiff.config import TRACKERS, Config, flatten_config
from erdiff.errors import ErdiffError

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'erdiff[track]'"
TRACKING_FORMAT = "erdiff-tracking/1"
TENSORBOARD_DIR = "tensorboard"
"""The folder of a run's TensorBoard event files, inside the run directory."""
DEFAULT_PROJECT = "erdiff"
"""The W&B project and MLflow experiment of runs outside a sweep, unless the library's own variable names one."""
WANDB_TAG_LENGTH = 64
"""W&B refuses longer tags."""
MODULES = {name: name for name in TRACKERS}
"""The module each tracker needs (torch.utils.tensorboard needs the tensorboard package)."""


class TrackingError(ErdiffError):
    """A tracking library that train.track names is not installed."""


class Tracker(Protocol):
    """One seed's tracked run in one library."""

    continued: bool
    """whether this continues the tracked run that tracking.json names (else a new one, fed from step 0)"""

    def state(self) -> dict:
        """What tracking.json keeps to continue this tracked run (its ids and destination)."""

    def log(self, values: dict, step: int) -> None:
        """Log one evaluation record (without ``step``, its keys never None) at gradient step ``step``."""

    def close(self, status: str) -> None:
        """End this process's part of the tracked run; ``status`` is the run's summary status."""


def check_installed(names: list[str]) -> None:
    """Raise one TrackingError naming the libraries of ``names`` that cannot be imported."""
    missing = [name for name in names if importlib.util.find_spec(MODULES[name]) is None]
    if missing:
        raise TrackingError(f"config field 'train.track' = {names!r}: {', '.join(missing)} is not installed; "
                            f"{INSTALL_HINT}")


def tags_of(config: Config) -> dict[str, str]:
    """The tracked run's tags: task, seed and the config's free-form tags (sweep and trial in a sweep)."""
    return {"task": config.task, "seed": str(config.seed), **{str(k): str(v) for k, v in config.tags.items()}}


def run_name(config: Config) -> str:
    """``<trial>/seed_<k>`` in a sweep, ``<task>/seed_<k>`` otherwise."""
    return f"{config.tags.get('trial', config.task)}/seed_{config.seed}"


def hyperparameters(config: Config) -> dict[str, Any]:
    """The flattened config with values every library accepts as a hyperparameter: numbers, strings, booleans
    (None and lists as their text)."""
    return {key: value if isinstance(value, (bool, int, float, str)) else str(value)
            for key, value in flatten_config(config.to_dict()).items()}


class TensorBoardTracker:
    """Event files in ``<run>/tensorboard/``: a scalar per record key, ``episode_returns`` as a histogram, the
    config in the HParams dashboard."""

    def __init__(self, config: Config, run_dir: Path, saved: dict | None):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        # Events beyond the step the tracked run holds are hidden from TensorBoard when a resume writes again.
        purge_step = None if saved is None else saved["step"] + 1
        self.writer = SummaryWriter(log_dir=str(run_dir / TENSORBOARD_DIR), purge_step=purge_step)
        if saved is None:
            metrics = {key: 0.0 for key in results.METRIC_KEYS if key not in ("step", "episode_returns")}
            experiment, session_start, self._session_end = hparams(hyperparameters(config), metrics)
            for summary in (experiment, session_start):
                self.writer.file_writer.add_summary(summary)
        else:
            self._session_end = None
        self.continued = saved is not None

    def state(self) -> dict:
        return {"logdir": TENSORBOARD_DIR}

    def log(self, values: dict, step: int) -> None:
        for key, value in values.items():
            if isinstance(value, list):
                self.writer.add_histogram(key, np.asarray(value), global_step=step)
            else:
                self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()

    def close(self, status: str) -> None:
        if self._session_end is not None and status == "completed":
            self.writer.file_writer.add_summary(self._session_end)
        self.writer.close()


class WandbTracker:
    """A W&B run per seed (``reinit="create_new"``: packed seeds are several runs of one process), resumed by
    its id; the config as W&B's nested config, which W&B shows flattened as ``agent.T``.

    W&B's service process writes a run's file only when it closes the run's stream, a moment after
    ``run.finish()`` has returned; Ray kills a trial's process and its children as soon as the trial returns,
    which can lose an offline run whole. So the last of this process's W&B runs to close also shuts the
    service down and waits for it (``wandb.teardown``); the next run starts a new one."""

    open_runs = 0
    """The W&B runs of this process that are open."""

    def __init__(self, config: Config, run_dir: Path, saved: dict | None):
        import wandb

        project = os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
        run_id = saved["run_id"] if saved is not None and saved.get("project") == project else None
        self.continued = run_id is not None
        tags = [f"{key}={value}"[:WANDB_TAG_LENGTH] for key, value in tags_of(config).items()]
        self.run = wandb.init(
            project=project, dir=os.environ.get("WANDB_DIR") or str(run_dir),
            id=run_id, resume="allow", reinit="create_new", name=run_name(config),
            group=config.tags.get("trial"), tags=tags, config=config.to_dict(), allow_val_change=True,
            # No capture of this process's console: the progress bar and Ray's logs stay as they are.
            settings=wandb.Settings(console="off", quiet=True))
        WandbTracker.open_runs += 1
        self.project = project
        self._histogram = wandb.Histogram
        self._teardown = wandb.teardown

    def state(self) -> dict:
        return {"run_id": self.run.id, "project": self.project, "mode": self.run.settings.mode}

    def log(self, values: dict, step: int) -> None:
        self.run.log({key: self._histogram(value) if isinstance(value, list) else value
                      for key, value in values.items()}, step=step)

    def close(self, status: str) -> None:
        try:
            self.run.finish(exit_code=1 if status == results.DIVERGED else 0)
        finally:
            WandbTracker.open_runs -= 1
            if WandbTracker.open_runs == 0:
                self._teardown()


MLFLOW_STATUS = {"completed": "FINISHED", results.DIVERGED: "FAILED"}
"""The MLflow status of a run that ends with a summary status; any other (stopped, interrupted) is KILLED."""


class MlflowTracker:
    """An MLflow run per seed through ``MlflowClient`` (no fluent active run: packed seeds log side by side);
    the flattened config as params (once, MLflow params are immutable), tags as run tags."""

    def __init__(self, config: Config, run_dir: Path, saved: dict | None):
        import mlflow
        from mlflow import MlflowClient
        from mlflow.entities import Param

        self.uri = mlflow.get_tracking_uri()  # MLFLOW_TRACKING_URI, else MLflow's default
        self.client = MlflowClient(tracking_uri=self.uri)
        if saved is not None and saved.get("tracking_uri") == self.uri:
            self.run_id, self.continued = saved["run_id"], True
            self.client.update_run(self.run_id, status="RUNNING")
            history = self.client.get_metric_history(self.run_id, "epoch")
            self.logged_step = max((metric.step for metric in history), default=-1)
            return
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or config.tags.get("sweep") or DEFAULT_PROJECT
        run = self.client.create_run(_experiment_id(self.client, experiment), run_name=run_name(config),
                                     tags=tags_of(config))
        self.run_id, self.continued = run.info.run_id, False
        self.logged_step = -1
        params = [Param(key, str(value)) for key, value in hyperparameters(config).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def state(self) -> dict:
        return {"run_id": self.run_id, "tracking_uri": self.uri}

    def log(self, values: dict, step: int) -> None:
        from mlflow.entities import Metric

        if step <= self.logged_step:  # a restarted trial redoing evaluations that this tracked run already holds
            return
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(key, float(value), now, step)
                                                    for key, value in values.items() if not isinstance(value, list)])

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, MLFLOW_STATUS.get(status, "KILLED"))


def _experiment_id(client, name: str) -> str:
    """The id of MLflow experiment ``name``, created if needed (another seed may create it at the same time)."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:
        return client.get_experiment_by_name(name).experiment_id


OPENERS = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker, "mlflow": MlflowTracker}


def read_tracking(run_dir: Path) -> dict:
    """The run's tracking.json (empty before anything was tracked)."""
    path = run_dir / results.TRACKING_FILE
    if not path.is_file():
        return {}
    return results.read_json(path)


class RunTracking:
    """The tracked runs of one seed: opened at its first evaluation, each fed every record it does not hold yet.

    A tracker that raises is switched off with one warning; the run and its results go on.
    """

    def __init__(self, config: Config, run_dir: Path):
        self.config = config
        self.run_dir = run_dir
        self.trackers: dict[str, Tracker] | None = None
        self.steps: dict[str, int] = {}
        self.saved: dict[str, dict] = {}

    def log(self, records: list[dict]) -> None:
        """Send every tracker the records of ``records`` (the run's metrics, in step order) beyond its step."""
        if self.trackers is None:
            self._open()
        for name in list(self.trackers):
            for record in records:
                if record["step"] > self.steps[name]:
                    values = {k: v for k, v in record.items() if k != "step" and v is not None}
                    if not self._guard(name, "log", self.trackers[name].log, values, record["step"]):
                        break
                    self.steps[name] = record["step"]
        self._save()

    def close(self, status: str) -> None:
        for name in list(self.trackers or {}):
            self._guard(name, "close", self.trackers[name].close, status)

    def _open(self) -> None:
        try:
            saved = read_tracking(self.run_dir)
        except results.ResultsError as err:  # the tracked runs cannot be found again: new ones get every record
            logger.warning("%s; tracking starts new tracked runs", err)
            saved = {}
        # Entries of libraries not tracked now are kept: a later resume that tracks them again continues them.
        self.saved = {name: entry for name, entry in saved.items() if name in TRACKERS}
        self.trackers = {}
        for name in self.config.train.track:
            entry = saved.get(name)
            tracker = self._guard(name, "start", OPENERS[name], self.config, self.run_dir, entry)
            if tracker is not None:
                self.trackers[name] = tracker
                # A new tracked run (another W&B project or MLflow URI than the saved one) gets every record.
                self.steps[name] = entry["step"] if tracker.continued else -1

    def _guard(self, name: str, action: str, function, *args):
        """``function(*args)``'s result (True for None), or None when it raised: then one warning, and tracker
        ``name`` is off for the rest of this call."""
        try:
            return function(*args) or True
        except Exception as err:  # a tracking library's failure must never cost the run
            logger.warning("%s: tracking with %s failed to %s (%s: %s); it is off until this training call ends, "
                           "the run goes on", self.run_dir, name, action, type(err).__name__, err)
            if self.trackers is not None:
                self.trackers.pop(name, None)
            return None

    def _save(self) -> None:
        for name, tracker in self.trackers.items():
            self.saved[name] = {**tracker.state(), "step": self.steps[name]}
        results.write_json(self.run_dir / results.TRACKING_FILE, {"format": TRACKING_FORMAT, **self.saved})
