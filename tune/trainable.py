"""Tune trainables: one trial = one configuration trained for every seed of the spec.

Two ways to run a trial, chosen by the spec's ``trainable``:

``train`` (default), :func:`drive_seed_workers`
    The Tune trial is a light driver (0.01 CPU) that builds and fits a Ray Train ``DataParallelTrainer`` with one
    worker per seed, each with the spec's CPUs and GPU fraction. Every worker runs erdiff's training loop
    for its seed (:func:`train_seed_worker`) and reports after each evaluation through ``ray.train.report``
    with a snapshot of its run directory as checkpoint. :class:`SeedAggregateCallback` turns the workers'
    reports of one evaluation into the seed aggregate that Tune sees. Worker failures are retried by Ray
    Train (``ray.train.FailureConfig``), trial failures by Tune.

``function``, :func:`run_seeds_in_process`
    A plain Tune function trainable that advances the seeds in one process, one evaluation period each in
    turn, and reports the aggregate with ``ray.tune.report`` and a ``ray.tune.Checkpoint``. No Ray Train:
    far less overhead on small machines, the seeds share one worker's resources. Each seed's training state
    (an :class:`erdiff.train.TrainingSession`) is built once and kept for the whole trial.

``packed``, also :func:`run_seeds_in_process`
    As ``function``, but the seeds train together as one batched model (:mod:`erdiff.packed`, equal to
    separate runs): one process and one set of kernels for all seeds of the trial.

Either way each seed writes its run directory at ``<out>/trials/<trial>/seed_<k>/`` and a restart continues
from the trial's latest checkpoint (:mod:`tune.snapshots`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ray.train
import ray.tune
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from erdiff import results
from erdiff.config import Config
from erdiff.runlock import hold_run_dirs
from erdiff.train import TrainingSession, load_dataset_for, run_threads, train
from tune.aggregate import DIVERGED, aggregate, count_evaluations, seed_report
from tune.snapshots import log_session, restore_run_dir, seed_dir_name, staged_snapshot
from tune.spec import DRIVER_CPU, SweepSpec

WORKER_GROUP_START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
"""Ray Train gives up placing a trial's workers after this many seconds (then the trial fails, see spec.failure)."""


@dataclass(frozen=True)
class SweepContext:
    """What every trial needs besides its Tune config: the spec and where results and Ray state go."""

    spec: SweepSpec
    out_dir: str
    """absolute results root: run directories land in <out_dir>/trials/<trial>/seed_<k>/"""
    storage: str
    """absolute path or URI of Ray's storage (Tune experiment state and checkpoints)"""

    def run_dir(self, trial: str, seed: int) -> Path:
        return Path(self.out_dir) / "trials" / trial / seed_dir_name(seed)


# ---------------------------------------------------------------------------------------------------------
# trainable: train — a Ray Train trainer per trial, one worker per seed


def drive_seed_workers(config: dict, context: SweepContext) -> None:
    """Tune function trainable: fit a Ray Train trainer whose workers train the trial's seeds."""
    spec = context.spec
    trial = ray.tune.get_context().get_trial_name()
    # Read by Ray Train in this process and passed on to its controller: a trial whose workers cannot be
    # placed fails after this long instead of waiting forever.
    os.environ[WORKER_GROUP_START_TIMEOUT_ENV] = str(spec.failure.start_timeout_s)
    resources = {"CPU": spec.resources.cpu}
    if spec.resources.gpu > 0:
        resources["GPU"] = spec.resources.gpu
    # Not a TorchTrainer: the seeds never exchange tensors, so no torch.distributed process group, whose
    # TCPStore would listen on all interfaces; each worker sees only its own GPU (no shared CUDA_VISIBLE_DEVICES).
    trainer = DataParallelTrainer(
        train_seed_worker,
        train_loop_config={"context": context, "trial": trial, "task": config["trial"]["task"],
                           "params": config["trial"]["params"]},
        scaling_config=ray.train.ScalingConfig(num_workers=len(spec.seeds), use_gpu=spec.resources.gpu > 0,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=trial,  # deterministic: a restarted trial finds its Train run and latest checkpoint again
            storage_path=f"{context.storage}/train",
            failure_config=ray.train.FailureConfig(max_failures=spec.failure.worker_retries,
                                                   controller_failure_limit=spec.failure.worker_retries),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=[SeedAggregateCallback()],
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),  # not a line per report and checkpoint
        ),
    )
    _fail_if_diverged(context, trial)  # a retry of a diverged trial fails at once
    trainer.fit()
    _fail_if_diverged(context, trial)


def train_seed_worker(loop_config: dict) -> None:
    """Ray Train worker: train seed number ``world_rank`` of the trial, reporting after each evaluation."""
    _quiet_report_logs()
    context: SweepContext = loop_config["context"]
    spec, trial = context.spec, loop_config["trial"]
    seed = spec.seeds[ray.train.get_context().get_world_rank()]
    run_dir = context.run_dir(trial, seed)
    config = spec.seed_config(loop_config["task"], loop_config["params"], seed, trial)
    planned = count_evaluations(config.train.epochs, config.train.eval_every)

    def report_snapshot() -> None:
        with staged_snapshot({seed: run_dir}) as snapshot:
            ray.train.report(seed_report(run_dir, seed, spec.objective, planned),
                             checkpoint=ray.train.Checkpoint.from_directory(snapshot))

    def report_evaluation(record: dict, run_dir: Path) -> bool:
        report_snapshot()
        # The report is a barrier: a seed that diverged in this period has written its summary by now.
        return bool(diverged_seeds(context, trial))

    with _hold_run_dirs([run_dir]):
        restored, diverged = _restore_seeds(ray.train.get_checkpoint(), {seed: run_dir}, planned)
        if restored or diverged:
            # Every worker restored the same evaluation: report it again so that Tune sees the trial's state at
            # once, even when nothing is left to train (every worker reports the same number of times).
            ray.train.report(seed_report(run_dir, seed, spec.objective, planned))
        if diverged:
            return  # a seed of this trial diverged: nothing to train, the driver fails the trial
        summary = train(config, run_dir, resume=True, progress=False, on_evaluation=report_evaluation)
        if summary["status"] == DIVERGED:
            report_snapshot()  # in place of this period's evaluation, so that the others' reports meet it


class SeedAggregateCallback(TuneReportCallback):
    """Forwards to Tune the aggregate over all workers' reports instead of rank 0's report alone.

    Ray Train calls ``after_report`` once per round of ``ray.train.report`` with every worker's metrics, in
    rank order, and the merged checkpoint of that round.
    """

    def after_report(self, run_context, metrics: list[dict], checkpoint) -> None:
        super().after_report(run_context, [aggregate(metrics)], checkpoint)


# ---------------------------------------------------------------------------------------------------------
# trainable: function — every seed in this process


def run_seeds_in_process(config: dict, context: SweepContext) -> None:
    """Tune function trainable: advance every seed by one evaluation period (in turn, or packed together),
    report the aggregate, and so on to the end.

    The seeds' training state (:class:`erdiff.train.TrainingSession`: agents, optimizers, RNG streams,
    evaluators, the dataset on the device) is built once per trial, from the restored checkpoint if there is
    one, and lives until the trial ends: the checkpoint written after each period is for a restart, never read
    back by a healthy trial."""
    _quiet_report_logs()
    spec = context.spec
    trial = ray.tune.get_context().get_trial_name()
    run_dirs = {seed: context.run_dir(trial, seed) for seed in spec.seeds}
    task, params = config["trial"]["task"], config["trial"]["params"]
    configs = {seed: spec.seed_config(task, params, seed, trial) for seed in spec.seeds}
    first = configs[spec.seeds[0]]
    planned = count_evaluations(first.train.epochs, first.train.eval_every)

    def reports() -> list[dict]:
        return [seed_report(run_dirs[seed], seed, spec.objective, planned) for seed in spec.seeds]

    with _hold_run_dirs(run_dirs.values()):
        restored, _ = _restore_seeds(ray.tune.get_checkpoint(), run_dirs, planned)
        if restored:
            ray.tune.report(aggregate(reports()))
        _fail_if_diverged(context, trial)  # a retry of a diverged trial fails at once
        if restored == planned:
            return
        with contextlib.ExitStack() as open_sessions:
            open_sessions.enter_context(run_threads(first))  # the trial's threads, as erdiff train sets them
            sessions = [open_sessions.enter_context(session)
                        for session in _training_sessions(spec.trainable, [configs[seed] for seed in spec.seeds],
                                                          [run_dirs[seed] for seed in spec.seeds])]
            for _ in range(restored, planned):
                for session in sessions:
                    session.run_period()
                    if any(session.diverged):
                        break  # the trial fails: the seeds after this one need not train this period
                    # Between reports the seeds read stopped: Tune may stop the trial at this report (ASHA), and
                    # its thread only notices at its next report.
                    session.mark_stopped()
                # A diverged seed's summary goes into the checkpoint too: a restart of the trial finds it there.
                with staged_snapshot(run_dirs) as snapshot:
                    ray.tune.report(aggregate(reports()), checkpoint=ray.tune.Checkpoint.from_directory(snapshot))
                _fail_if_diverged(context, trial)


def _training_sessions(trainable: str, configs: list[Config], run_dirs: list[Path]) -> Iterator[TrainingSession]:
    """The trial's training sessions, resumed from the run directories: one for all seeds (``packed``) or one
    per seed (``function``), built one after another and sharing one copy of the dataset on the device."""
    dataset = load_dataset_for(configs[0])  # the seeds share the task, its data and the reward transform
    groups = [(configs, run_dirs)] if trainable == "packed" else [([c], [d]) for c, d in zip(configs, run_dirs)]
    buffer = None
    for group_configs, group_dirs in groups:
        session = TrainingSession(group_configs, group_dirs, dataset=dataset, buffer=buffer, resume=True,
                                  progress=False)
        buffer = session.buffer
        yield session


RUN_LOCK_WAIT_S = 60.0
"""How long a (re)started trial waits for the locks of its seeds' run directories (erdiff.runlock): a worker of
its previous attempt may still be writing them while it dies. A dead worker's lock is gone with it."""


def _hold_run_dirs(run_dirs):
    """Lock the seeds' run directories (created first: each lock lives in its directory) for restore and
    training, so that nothing else writes them meanwhile; erdiff's training takes the same locks again."""
    run_dirs = list(run_dirs)
    for run_dir in run_dirs:
        run_dir.mkdir(parents=True, exist_ok=True)
    return hold_run_dirs(run_dirs, wait_s=RUN_LOCK_WAIT_S)


def _restore_seeds(checkpoint, run_dirs: dict[int, Path], planned: int) -> tuple[int, bool]:
    """Set the seeds' run directories to the trial's latest checkpoint (afresh without one, see
    tune.snapshots); log who trains them from there. Returns the number of evaluations restored and whether
    a seed of the checkpoint (any seed of the trial, not only those in ``run_dirs``) diverged."""
    diverged = False
    if checkpoint is None:
        for seed, run_dir in run_dirs.items():
            restore_run_dir(run_dir, None, seed)
    else:
        with checkpoint.as_directory() as snapshot:
            for seed, run_dir in run_dirs.items():
                restore_run_dir(run_dir, Path(snapshot), seed)
            diverged = any((results.read_summary(seed_dir) or {}).get("status") == DIVERGED
                           for seed_dir in Path(snapshot).iterdir())
    restored = len(results.read_metrics(next(iter(run_dirs.values()))))  # the same for every seed
    if restored < planned and not diverged:
        for run_dir in run_dirs.values():
            log_session(run_dir, restored)
    return restored, diverged


class SeedDiverged(RuntimeError):
    """A seed of the trial diverged (non-finite loss, Q-values or weights): a result of the configuration, which
    Tune records as a failed trial (Optuna sees a failure, ASHA no score) rather than as a number."""


def diverged_seeds(context: SweepContext, trial: str) -> dict[int, dict]:
    """The trial's seeds whose run directory says diverged, with where (summary.json's ``divergence``)."""
    summaries = {seed: results.read_summary(context.run_dir(trial, seed)) for seed in context.spec.seeds}
    return {seed: summary["divergence"] for seed, summary in summaries.items()
            if summary is not None and summary["status"] == DIVERGED}


def _fail_if_diverged(context: SweepContext, trial: str) -> None:
    diverged = diverged_seeds(context, trial)
    if diverged:
        raise SeedDiverged("; ".join(f"seed {seed} diverged at step {where['step']} (epoch {where['epoch']}): "
                                     f"{where['quantity']} is not finite" for seed, where in diverged.items()))


def _quiet_report_logs() -> None:
    """Keep this process's console to warnings: Ray logs a line at INFO for every report and checkpoint.

    In Ray 2.60 the Train worker's report line comes from a logger named by file path, which reaches the root
    logger and ignores ``ray.train.LoggingConfig``; the function trainable's comes from ``ray.train``.
    """
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("ray.train").setLevel(logging.WARNING)


def make_trainable(context: SweepContext):
    """The spec's trainable with the context bound and its resources: what Tuner and Tuner.restore get."""
    spec = context.spec
    if spec.trainable == "train":
        # The driver only waits on its trainer; the workers hold the CPUs and GPUs (docs/stack.md §3.1).
        resources = {"cpu": DRIVER_CPU}
        function = drive_seed_workers
    else:
        resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
        function = run_seeds_in_process
    return ray.tune.with_resources(ray.tune.with_parameters(function, context=context), resources)
