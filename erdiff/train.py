"""The training loop: epochs × steps, periodic evaluation and checkpoints, a run directory on disk.

:func:`train` is a plain function used alike by scripts, `erdiff train` and the Ray trainables in `tune/`.
The loop itself is :class:`TrainingSession`, built once and advanced one evaluation period at a time (what a
sweep trial keeps between its reports). Every ``eval_every`` epochs (and after the last one) it evaluates the
policy, appends a record to ``metrics.jsonl``, rewrites ``summary.json`` and writes a checkpoint, all
atomically (see :mod:`erdiff.results`). Metrics are summed on the device between those points: no host sync per step.

Resuming (``resume=True``) restores networks, optimizers, step and all RNG states from the checkpoint and
drops metric records written after it, so a run interrupted at any moment and resumed ends bitwise
identical to an uninterrupted one (on CPU; CUDA kernels may be non-deterministic). A resume never removes
anything else: a run with records but no checkpoint is refused, an ended run is left as it is.

One process writes a run directory at a time (:mod:`erdiff.runlock`). A seed whose losses, Q-values or weights
become non-finite stops at the end of that epoch: summary status ``diverged``, no score, the last finite
checkpoint kept (README, "Reliability"). With ``train.track``, each evaluation also goes to TensorBoard, W&B or
MLflow (:mod:`erdiff.tracking`).
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from erdiff import results
from erdiff.agent import ERDiffAgent, learning_rate_factor, set_learning_rates
from erdiff.buffer import TransitionBuffer
from erdiff.checkpoint import capture_rng_states, load_checkpoint, restore_rng_states, save_checkpoint
from erdiff.config import NON_LEARNING_FIELDS, Config, dump_yaml, flatten_config
from erdiff.errors import ErdiffError
from erdiff.packed import PackedAgents
from erdiff.runlock import LOCK_FILE, hold_run_dirs, holds_run_dir
from erdiff.steptime import default_threads
from erdiff.tracking import RunTracking, check_installed

logger = logging.getLogger(__name__)

LOSS_KEYS = ("actor_loss", "critic_loss", "bc_loss", "q_loss", "entropy_loss", "entropy", "q_mean", "q_std")

Evaluator = Callable[[Callable[[np.ndarray], np.ndarray]], dict]
"""Takes a batched numpy policy, returns episode_returns, return_mean/std, normalized_score_mean/std."""


class RunDirectoryError(ErdiffError):
    """The output directory holds another run, or a resume does not match it."""


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ErdiffError(f"config field 'train.device' = {name!r} but CUDA is not available on this machine")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ErdiffError(f"config field 'train.device' = {name!r} but this machine has "
                          f"{torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ErdiffError(f"config field 'train.device' = {name!r} but MPS is not available on this machine")
    return device


def _changed_fields(old: dict, new: dict, ignore) -> list[str]:
    """Flattened config fields whose values differ, except ``tags.*`` and the fields in ``ignore``."""
    return sorted(k for k in set(old) | set(new)
                  if k not in ignore and not k.startswith("tags.") and old.get(k) != new.get(k))


def _check_resume_config(saved: dict, config: Config, run_dir: Path) -> None:
    # Tags and speed settings may change between a run and its resume; what is learned may not. The saved config
    # goes through Config so that a field added since the run was saved compares as its default.
    old = flatten_config(Config.from_dict(saved, source=f"{run_dir}/checkpoint.pt config").to_dict())
    new = flatten_config(config.to_dict())
    changed = _changed_fields(old, new, ignore=NON_LEARNING_FIELDS)
    if changed:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise RunDirectoryError(f"cannot resume {run_dir}: the config differs from the saved run ({details})")


ENDED_STATUSES = ("completed", results.DIVERGED)
"""Statuses of a run that has nothing left to train: a resume leaves it as it is."""


def _make_run_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RunDirectoryError(f"run directory {run_dir}: a file is in the way (expected a directory or a new "
                                "path); choose another --out") from None
    except OSError as err:
        raise RunDirectoryError(f"cannot create the run directory {run_dir} ({err.strerror}); choose another "
                                "--out") from None


def _ended_summary(run_dir: Path) -> dict | None:
    """The summary of a run that has ended (completed or diverged), else None."""
    summary = results.read_summary(run_dir)
    if isinstance(summary, dict) and summary.get("status") in ENDED_STATUSES:
        return summary
    return None


def _saved_config(run_dir: Path) -> dict:
    """The configuration a run was trained with: its checkpoint's, or config.yaml's when that is gone."""
    if (run_dir / results.CHECKPOINT_FILE).exists():
        return load_checkpoint(run_dir / results.CHECKPOINT_FILE)["config"]
    return results.read_config(run_dir)


def _prepare_run_dir(run_dir: Path, config: Config, resume: bool) -> dict | None:
    """Check the (locked) run directory; return the checkpoint to resume from, if any. Nothing is changed here:
    a directory whose results cannot be continued is refused, never emptied."""
    checkpoint_path = run_dir / results.CHECKPOINT_FILE
    held = [name for name in (results.CHECKPOINT_FILE, results.METRICS_FILE, results.SUMMARY_FILE)
            if (run_dir / name).exists()]
    if held and not resume:
        raise RunDirectoryError(f"{run_dir} already holds a run ({', '.join(held)}); pass --resume to continue it "
                                "or choose another --out")
    if checkpoint_path.exists():
        checkpoint = load_checkpoint(checkpoint_path)
        _check_resume_config(checkpoint["config"], config, run_dir)
        return checkpoint
    records = results.read_metrics(run_dir)
    summary = results.read_summary(run_dir)
    if records or (isinstance(summary, dict) and summary.get("evaluations")):
        count = len(records) or summary["evaluations"]
        raise RunDirectoryError(f"cannot resume {run_dir}: it holds {count} evaluation records but no "
                                f"{results.CHECKPOINT_FILE} to continue them from; nothing was changed. Put the "
                                "checkpoint back, or start afresh with another --out")
    return None


def update_precision(device: torch.device, precision: str):
    """The context of a gradient step: bfloat16 autocast for ``train.precision = bfloat16``, else a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


def training_step(learner: ERDiffAgent | PackedAgents, buffer: TransitionBuffer, generators: list[torch.Generator],
                  batch_size: int, precision: str) -> dict[str, torch.Tensor]:
    """One update of one agent, or of packed seeds (metrics are then [K] tensors), with each seed's batch and
    step noise drawn from its own generator."""
    if isinstance(learner, PackedAgents):
        batch, noise = learner.draw(buffer, batch_size, generators)
    else:
        batch = buffer.sample(batch_size, generators[0])
        noise = learner.draw_step_noise(batch_size, generators[0], buffer.device)
    with update_precision(buffer.device, precision):
        return learner.update(batch, noise)


def load_dataset_for(config: Config) -> dict[str, np.ndarray]:
    """The task's dataset (or ``train.dataset``) with the configured reward transform applied."""
    from erdiff.data.transforms import transform_rewards
    from erdiff.tasks import load_task_dataset

    return transform_rewards(load_task_dataset(config.task, config.train.dataset), config.train.reward_tune)


def train(config: Config, out_dir: str | Path, *, dataset: dict[str, np.ndarray] | None = None,
          evaluator: Evaluator | None = None, max_action: float | None = None, resume: bool = False,
          progress: bool = True,
          on_evaluation: Callable[[dict, Path], bool | None] | None = None) -> dict:
    """Train one seed of ``config`` into the run directory ``out_dir`` and return its summary.

    Args:
        dataset: transitions in ``qlearning_dataset`` format; default: the task's dataset with ``train.reward_tune``.
        evaluator: callable evaluating a batched numpy policy; default: the task's environments when
            ``train.eval_episodes > 0`` (no environment evaluation when it is 0: losses are still recorded).
        max_action: the action bound; default: the task's.
        resume: continue from ``out_dir/checkpoint.pt`` if there is one (a fresh start otherwise).
        on_evaluation: called after each evaluation record is written and checkpointed, with the record and
            the run directory; returning True stops training there (summary status ``stopped``).
    """
    return train_seeds([config], [out_dir], dataset=dataset, evaluators=None if evaluator is None else [evaluator],
                       max_action=max_action, resume=resume, progress=progress, on_evaluation=on_evaluation)[0]


def check_packable(configs: list[Config]) -> None:
    """Packed seeds must be one configuration: configs may differ in ``seed`` and ``tags`` only."""
    first = flatten_config(configs[0].to_dict())
    for config in configs[1:]:
        changed = _changed_fields(first, flatten_config(config.to_dict()), ignore={"seed"})
        if changed:
            raise ErdiffError(f"packed seeds must share one configuration; seed {config.seed} differs from seed "
                              f"{configs[0].seed} in {', '.join(changed)}")
    seeds = [config.seed for config in configs]
    if len(set(seeds)) != len(seeds):
        raise ErdiffError(f"packed seeds must be distinct, got {seeds}")


def train_seeds(configs: list[Config], out_dirs: list[str | Path], *,
                dataset: dict[str, np.ndarray] | None = None, evaluators: list[Evaluator] | None = None,
                max_action: float | None = None, resume: bool = False, progress: bool = True,
                on_evaluation: Callable[[dict, Path], bool | None] | None = None,
                lock_wait_s: float = 0.0) -> list[dict]:
    """Train the seeds of one configuration together and return their summaries: one seed is a plain
    :class:`ERDiffAgent`, several are packed into one batched model (:mod:`erdiff.packed`, equal to separate
    runs). Each seed writes its own run directory, exactly as :func:`train` of that seed would, so a packed
    seed can be resumed alone and vice versa. Arguments as :func:`train`, per seed where they are lists;
    ``on_evaluation`` is called for every seed, and any True stops all of them.

    Each run directory is locked for the whole call (:mod:`erdiff.runlock`; ``lock_wait_s``: how long to wait for
    another process's lock). With ``resume``, a seed whose run has ended (completed or diverged) is left as it is.
    A seed whose loss, Q-value or weights become non-finite stops at the end of that epoch with summary status
    ``diverged`` and its last finite checkpoint (the other packed seeds go on)."""
    check_packable(configs)
    check_installed(configs[0].train.track)
    run_dirs = [Path(out_dir) for out_dir in out_dirs]
    created = [run_dir for run_dir in run_dirs if not run_dir.exists()]
    for run_dir in run_dirs:
        _make_run_dir(run_dir)
    with hold_run_dirs(run_dirs, wait_s=lock_wait_s):
        try:
            active = _seeds_to_train(configs, run_dirs, resume)
            if active:
                with run_threads(configs[0]), TrainingSession(
                        [configs[k] for k in active], [run_dirs[k] for k in active], dataset=dataset,
                        evaluators=None if evaluators is None else [evaluators[k] for k in active],
                        max_action=max_action, resume=resume, progress=progress) as session:
                    while not session.done:
                        session.run_period(on_evaluation)
        except BaseException:
            for run_dir in created:
                _remove_if_no_results(run_dir)
            raise
    return [results.read_summary(run_dir) for run_dir in run_dirs]


@contextmanager
def run_threads(config: Config) -> Iterator[None]:
    """torch's CPU threads while a run trains: ``train.num_threads``, or when it is unset and the run is on the
    CPU, :func:`erdiff.steptime.default_threads` (1 for a small step, else the CPUs this process may use);
    the caller's thread count is restored afterwards."""
    saved = torch.get_num_threads()
    threads = config.train.num_threads
    if threads is None and resolve_device(config.train.device).type == "cpu":
        threads = default_threads(config)
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _seeds_to_train(configs: list[Config], run_dirs: list[Path], resume: bool) -> list[int]:
    """Indices of the seeds to train: with ``resume``, a run that has ended is left as it is."""
    active = list(range(len(configs)))
    if resume:
        for k, run_dir in enumerate(run_dirs):
            ended = _ended_summary(run_dir)
            if ended is not None:
                _check_resume_config(_saved_config(run_dir), configs[k], run_dir)
                logger.warning("%s: the run has already ended (status %s); nothing to resume", run_dir,
                               ended["status"])
                active.remove(k)
    return active


def _remove_if_no_results(run_dir: Path) -> None:
    """Remove a run directory this call created when it failed (or was interrupted) before its first
    evaluation: it holds only the lock, the config and an empty metrics file, which a retry would trip over."""
    names = {path.name for path in run_dir.iterdir()}
    if not names <= {LOCK_FILE, results.CONFIG_FILE, results.METRICS_FILE} or results.read_metrics(run_dir):
        return
    for name in names:
        (run_dir / name).unlink()
    run_dir.rmdir()


class TrainingSession:
    """The training state of one seed, or of packed seeds, built once and advanced one evaluation period at a time.

    Holds the buffer, the agent(s) and their optimizers, the training generators, the evaluators, the process-wide
    RNG states and the metric records: :func:`train_seeds` runs one to the end, and a sweep trial keeps one alive
    between its reports (tune/trainable.py), so that its state is built once, not read back from the checkpoint
    each period. Every period writes its metrics, checkpoint and summary exactly as a run that is never
    interrupted; a resume (``resume=True``) reads the checkpoint once, here.

    The run directories must exist and be locked by the caller (:func:`erdiff.runlock.hold_run_dirs`) for the
    session's life. ``buffer``: a :class:`TransitionBuffer` of the dataset on the configured device to share with
    other sessions of the same data (default: one built from ``dataset``). Use as a context manager, or call
    :meth:`close`, to close the evaluators and the progress bar. torch's thread count is the caller's to set
    (:func:`run_threads`).
    """

    def __init__(self, configs: list[Config], run_dirs: list[Path], *, dataset: dict[str, np.ndarray] | None = None,
                 buffer: TransitionBuffer | None = None, evaluators: list[Evaluator] | None = None,
                 max_action: float | None = None, resume: bool = False, progress: bool = True):
        check_packable(configs)
        unlocked = [str(run_dir) for run_dir in run_dirs if not holds_run_dir(run_dir)]
        if unlocked:
            raise RuntimeError(f"a training session needs its run directories locked first: {', '.join(unlocked)}")
        checkpoints = [_prepare_run_dir(run_dir, config, resume) for run_dir, config in zip(run_dirs, configs)]
        steps = [0 if checkpoint is None else checkpoint["agent"]["step"] for checkpoint in checkpoints]
        if len(set(steps)) > 1:
            listing = ", ".join(f"{run_dir}: step {step}" for run_dir, step in zip(run_dirs, steps))
            raise RunDirectoryError(f"cannot resume packed seeds from different steps ({listing})")
        self.configs, self.run_dirs = configs, run_dirs
        config, tc = configs[0], configs[0].train
        self.device = device = resolve_device(tc.device)
        if device.type == "cuda" and tc.gpu_memory_fraction:
            torch.cuda.set_per_process_memory_fraction(tc.gpu_memory_fraction, device)
        if device.type == "cuda":  # set either way: a process may train runs of both settings one after another
            torch.backends.cuda.matmul.fp32_precision = "tf32" if tc.tf32 else "ieee"

        if buffer is None:
            buffer = TransitionBuffer(load_dataset_for(config) if dataset is None else dataset, device)
        if max_action is None:
            from erdiff.tasks import get_task

            max_action = get_task(config.task).max_action
        self.buffer = buffer
        agents, self.generators, self.records = [], [], []
        self.epoch, self.time_s = 0, 0.0
        for seed_config, run_dir, checkpoint in zip(configs, run_dirs, checkpoints):
            set_seed(seed_config.seed)
            agent = ERDiffAgent(buffer.state_dim, buffer.action_dim, max_action, config.agent, compile=tc.compile)
            agent.to(device).make_optimizers()
            generator = _training_generator(device, seed_config.seed)
            if checkpoint is not None:
                agent.load_training_state(checkpoint["agent"])
                restore_rng_states(checkpoint["rng"])
                generator.set_state(_saved_generator_state(checkpoint["rng"], device))
                self.epoch, self.time_s = checkpoint["epoch"], checkpoint["time_s"]
                self.records.append([r for r in results.read_metrics(run_dir) if r["step"] <= agent.step])
            else:
                self.records.append([])
            results.write_metrics(run_dir, self.records[-1])
            results.atomic_write_text(run_dir / results.CONFIG_FILE, dump_yaml(seed_config))
            agents.append(agent)
            self.generators.append(generator)
        self.config_dicts = [seed_config.to_dict() for seed_config in configs]
        # Packed seeds live stacked in the learner; dropping the list frees the separate copies.
        self.packed = PackedAgents(agents) if len(agents) > 1 else None
        self.learner = self.packed or agents[0]
        del agents

        if evaluators is None and tc.eval_episodes > 0:
            from erdiff.tasks import make_evaluator

            evaluators = [make_evaluator(config.task, tc.eval_episodes, seed_config.seed) for seed_config in configs]
        self.evaluators = evaluators

        self.steps_per_period = tc.eval_every * tc.steps_per_epoch
        self.total_steps = tc.epochs * tc.steps_per_epoch
        self.diverged = [False] * len(configs)
        self.done = self.epoch >= tc.epochs
        self._lr_factor = None
        self._progress_bar = _progress_bar(progress, self.total_steps, self.learner.step, config.task,
                                           [c.seed for c in configs])
        # This session's place in the process-wide RNG streams, put back before each period: another session in
        # the same process (the seeds of a `function` sweep trial) moves them in between.
        self.rng = capture_rng_states()
        self.trackings = [RunTracking(seed_config, run_dir) for seed_config, run_dir in zip(configs, run_dirs)] \
            if tc.track else []

    def __enter__(self) -> TrainingSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._progress_bar.close()
        for tracking in self.trackings:
            tracking.close((results.read_summary(tracking.run_dir) or {}).get("status", "running"))
        for evaluator in self.evaluators or []:
            if hasattr(evaluator, "close"):
                evaluator.close()

    def run_period(self, on_evaluation: Callable[[dict, Path], bool | None] | None = None) -> None:
        """Train up to the next evaluation (every ``train.eval_every`` epochs and after the last one) and write its
        records, or until every seed diverged. ``on_evaluation`` as in :func:`train`; a True ends the session
        (summary status ``stopped``), as do the last epoch and divergence of every seed (:attr:`done`)."""
        if self.done:
            return
        config, tc = self.configs[0], self.configs[0].train
        learner, device = self.learner, self.device
        restore_rng_states(self.rng)
        period_start = time.perf_counter()
        loss_sums = torch.zeros(len(LOSS_KEYS), len(self.configs), device=device)
        # For each metric and seed, the first step at which it was non-finite (-1: not yet), kept on the device.
        nonfinite_since = torch.full((len(LOSS_KEYS), len(self.configs)), -1, dtype=torch.long, device=device)
        steps_in_period = 0
        for epoch in range(self.epoch + 1, tc.epochs + 1):
            for _ in range(tc.steps_per_epoch):
                factor = learning_rate_factor(config.agent.lr_schedule, learner.step, self.total_steps,
                                              self.steps_per_period, tc.epochs)
                if factor != self._lr_factor:
                    set_learning_rates(learner, factor)
                    self._lr_factor = factor
                step_metrics = training_step(learner, self.buffer, self.generators, tc.batch_size, tc.precision)
                values = torch.stack([step_metrics[key] for key in LOSS_KEYS]).reshape(len(LOSS_KEYS), -1)
                loss_sums += values
                nonfinite_since = first_nonfinite_step(nonfinite_since, values, learner.step)
                steps_in_period += 1
                self._progress_bar.update()  # redraws at most once a second, so an epoch of minutes still moves
            self.epoch = epoch
            time_s = self.time_s + time.perf_counter() - period_start
            for k, divergence in enumerate(find_divergence(nonfinite_since, learner.finite_weights(), learner.step,
                                                           epoch)):
                if divergence is not None and not self.diverged[k]:
                    self.diverged[k] = True
                    last = self.records[k][-1] if self.records[k] else {"step": 0, "epoch": 0}
                    _write_summary(self.run_dirs[k], self.config_dicts[k], self.records[k], last["step"],
                                   last["epoch"], time_s, status=results.DIVERGED, divergence=divergence)
            if all(self.diverged):
                self.done = True
                break
            if epoch % tc.eval_every == 0 or epoch == tc.epochs:
                self.done = self._write_evaluation((loss_sums / steps_in_period).T.tolist(), time_s, on_evaluation)
                break
        self.time_s += time.perf_counter() - period_start
        self.rng = capture_rng_states()

    def mark_stopped(self) -> None:
        """Write summary status ``stopped`` for every seed that has neither finished nor diverged: what a run
        stopped after its latest evaluation leaves (a next :meth:`run_period` writes ``running`` again)."""
        for k, run_dir in enumerate(self.run_dirs):
            if not self.diverged[k] and self.epoch < self.configs[k].train.epochs:
                last = self.records[k][-1]
                _write_summary(run_dir, self.config_dicts[k], self.records[k], last["step"], last["epoch"],
                               last["time_s"], status="stopped")

    def _write_evaluation(self, mean_losses: list[list[float]], time_s: float, on_evaluation) -> bool:
        """Evaluate every seed that has not diverged and write its record, checkpoint and summary; whether the
        session has ended (the last epoch, or ``on_evaluation`` said stop)."""
        epoch, finished, stop = self.epoch, self.epoch == self.configs[0].train.epochs, False
        for k, (seed_config, run_dir) in enumerate(zip(self.configs, self.run_dirs)):
            if self.diverged[k]:
                continue
            agent = self.packed.seed_agent(k) if self.packed is not None else self.learner
            record = {"step": agent.step, "epoch": epoch, "time_s": time_s}
            record.update(_evaluate(agent, self.evaluators[k] if self.evaluators else None, seed_config.seed,
                                    self.device))
            record.update(zip(LOSS_KEYS, mean_losses[k]))
            record["actor_lr"] = agent.actor_optimizer.param_groups[0]["lr"]
            record["critic_lr"] = agent.critic_optimizer.param_groups[0]["lr"]
            record["ent_coef"] = float(agent.ent_coef())  # α now: fixed, or learned with agent.ent_coef auto
            self.records[k].append(record)

            results.write_metrics(run_dir, self.records[k])
            rng = capture_rng_states()
            rng["generator"] = self.generators[k].get_state()
            save_checkpoint(run_dir / results.CHECKPOINT_FILE, {
                "agent": agent.training_state(), "epoch": epoch, "time_s": time_s, "rng": rng,
                "config": self.config_dicts[k]})
            _write_summary(run_dir, self.config_dicts[k], self.records[k], agent.step, epoch, time_s,
                           status="completed" if finished else "running")
            if self.trackings:  # after the checkpoint: a tracked run never holds a step that a resume redoes
                self.trackings[k].log(self.records[k])
            if on_evaluation is not None and on_evaluation(record, run_dir):
                stop = True
        if stop and not finished:
            self.mark_stopped()
        scores = [r[-1].get("normalized_score_mean") for k, r in enumerate(self.records) if r and not self.diverged[k]]
        if scores and all(score is not None for score in scores):
            self._progress_bar.set_postfix(score=" ".join(f"{score:.1f}" for score in scores))
        return finished or stop


def first_nonfinite_step(since: torch.Tensor, values: torch.Tensor, step: int) -> torch.Tensor:
    """``since`` with ``step`` written where ``values`` is non-finite for the first time (device only, no sync)."""
    return torch.where((since < 0) & ~torch.isfinite(values), step, since)


def find_divergence(nonfinite_since: torch.Tensor, finite_weights: torch.Tensor, step: int,
                    epoch: int) -> list[dict | None]:
    """Per seed, None or ``{step, epoch, quantity}``: the first step at which a metric (a loss, the Q-values'
    mean or spread) was non-finite and which metrics; else ``actor_weights`` / ``critic_weights`` when an update
    left non-finite weights behind (a non-finite gradient). The one host sync of the check, once an epoch."""
    since, weights_ok = nonfinite_since.cpu(), finite_weights.cpu()
    found = []
    for k in range(since.shape[1]):
        seen = since[:, k][since[:, k] >= 0]
        if len(seen):
            first = int(seen.min())
            quantity = ", ".join(key for key, at in zip(LOSS_KEYS, since[:, k].tolist()) if at == first)
            found.append({"step": first, "epoch": epoch, "quantity": quantity})
        elif not weights_ok[:, k].all():
            quantity = ", ".join(f"{name}_weights" for name, ok in zip(("actor", "critic"), weights_ok[:, k]) if not ok)
            found.append({"step": step, "epoch": epoch, "quantity": quantity})
        else:
            found.append(None)
    return found


def _training_generator(device: torch.device, seed: int) -> torch.Generator:
    """The generator of a seed's training draws (batches, step noise). On CPU it continues torch's default
    generator from after the networks' initialisation; on CUDA it is seeded like torch's default CUDA generator
    after ``torch.manual_seed(seed)``. So a run draws what it drew from the default generators before packing
    existed, and resuming an older checkpoint continues its stream."""
    generator = torch.Generator(device=device)
    if device.type == "cpu":
        generator.set_state(torch.get_rng_state())
    else:
        generator.manual_seed(seed)
    return generator


def _saved_generator_state(rng: dict, device: torch.device) -> torch.Tensor:
    """The training generator's state in a checkpoint (older checkpoints: torch's default generator's)."""
    if "generator" in rng:
        return rng["generator"]
    return rng["torch"] if device.type == "cpu" else rng["cuda"][device.index or 0]


def _write_summary(run_dir: Path, config_dict: dict, records: list[dict], step: int, epoch: int, time_s: float,
                   status: str, divergence: dict | None = None) -> None:
    summary = results.make_summary(config_dict, records, status, step, epoch, time_s, divergence)
    results.write_json(run_dir / results.SUMMARY_FILE, summary)


def _evaluate(agent: ERDiffAgent, evaluator: Evaluator | None, seed: int, device: torch.device) -> dict:
    """Evaluation keys of a metrics record; null when there is no environment to evaluate in."""
    empty = {"return_mean": None, "return_std": None, "normalized_score_mean": None, "normalized_score_std": None,
             "episode_returns": None}
    if evaluator is None:
        return empty
    # A fresh generator per evaluation (seed + 100, as the official evaluation env): evaluations are
    # reproducible and never disturb the training RNG stream.
    generator = torch.Generator(device=device).manual_seed(seed + 100)
    outcome = evaluator(agent.policy(generator))
    return {key: outcome.get(key) for key in empty}


def _progress_bar(enabled: bool, total: int, initial: int, task: str, seeds: list[int]):
    from tqdm.auto import tqdm

    label = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {','.join(map(str, seeds))}"
    # A terminal that reports a size of 0 (some detached ptys) gets no bar at all from tqdm: give it 80 x 24.
    known_size = _terminal_width(sys.stderr) != 0
    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", desc=f"{task} {label}",
                dynamic_ncols=known_size, ncols=None if known_size else 80, nrows=None if known_size else 24,
                mininterval=1.0)


def _terminal_width(stream) -> int | None:
    """The width the terminal behind ``stream`` reports, or None when it is not a terminal."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return None
