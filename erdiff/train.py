"""The training loop: epochs × steps, periodic evaluation and checkpoints, a run directory on disk.

:func:`train` is a plain function used alike by scripts, `erdiff train` and the Ray trainable in `tune/`.
Every ``eval_every`` epochs (and after the last one) it evaluates the policy, appends a record to
``metrics.jsonl``, rewrites ``summary.json`` and writes a checkpoint, all atomically (see
:mod:`erdiff.results`). Metrics are summed on the device between those points: no host sync per step.

Resuming (``resume=True``) restores networks, optimizers, step and all RNG states from the checkpoint and
drops metric records written after it, so a run interrupted at any moment and resumed ends bitwise
identical to an uninterrupted one (on CPU; CUDA kernels may be non-deterministic).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from erdiff import results
from erdiff.agent import ERDiffAgent, learning_rate_factor
from erdiff.buffer import TransitionBuffer
from erdiff.checkpoint import capture_rng_states, load_checkpoint, restore_rng_states, save_checkpoint
from erdiff.config import NON_LEARNING_FIELDS, Config, dump_yaml, flatten_config
from erdiff.errors import ErdiffError

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
    return device


def _check_resume_config(saved: dict, config: Config, run_dir: Path) -> None:
    # Tags and speed settings may change between a run and its resume; what is learned may not. The saved config
    # goes through Config so that a field added since the run was saved compares as its default.
    old = flatten_config(Config.from_dict(saved, source=f"{run_dir}/checkpoint.pt config").to_dict())
    new = flatten_config(config.to_dict())
    changed = sorted(k for k in set(old) | set(new)
                     if k not in NON_LEARNING_FIELDS and not k.startswith("tags.") and old.get(k) != new.get(k))
    if changed:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise RunDirectoryError(f"cannot resume {run_dir}: the config differs from the saved run ({details})")


def _prepare_run_dir(run_dir: Path, config: Config, resume: bool) -> dict | None:
    """Create or check the run directory; return the checkpoint to resume from, if any."""
    checkpoint_path = run_dir / results.CHECKPOINT_FILE
    if checkpoint_path.exists():
        if not resume:
            raise RunDirectoryError(f"{run_dir} already holds a run ({results.CHECKPOINT_FILE}); "
                                    "pass --resume to continue it or choose another --out")
        checkpoint = load_checkpoint(checkpoint_path)
        _check_resume_config(checkpoint["config"], config, run_dir)
        return checkpoint
    if (run_dir / results.METRICS_FILE).exists() and not resume:
        raise RunDirectoryError(f"{run_dir} already holds results ({results.METRICS_FILE}); "
                                "choose another --out or pass --resume")
    run_dir.mkdir(parents=True, exist_ok=True)
    return None


def update_precision(device: torch.device, precision: str):
    """The context of a gradient step: bfloat16 autocast for ``train.precision = bfloat16``, else a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


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
    run_dir = Path(out_dir)
    checkpoint = _prepare_run_dir(run_dir, config, resume)
    tc = config.train
    device = resolve_device(tc.device)
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    if device.type == "cuda" and tc.gpu_memory_fraction:
        torch.cuda.set_per_process_memory_fraction(tc.gpu_memory_fraction, device)
    set_seed(config.seed)

    if dataset is None:
        dataset = load_dataset_for(config)
    if max_action is None:
        from erdiff.tasks import get_task

        max_action = get_task(config.task).max_action
    buffer = TransitionBuffer(dataset, device)
    agent = ERDiffAgent(buffer.state_dim, buffer.action_dim, max_action, config.agent, compile=tc.compile).to(device)
    agent.make_optimizers()

    config_dict = config.to_dict()
    records: list[dict] = []
    start_epoch, previous_time = 0, 0.0
    if checkpoint is not None:
        agent.load_training_state(checkpoint["agent"])
        restore_rng_states(checkpoint["rng"])
        start_epoch, previous_time = checkpoint["epoch"], checkpoint["time_s"]
        records = [r for r in results.read_metrics(run_dir) if r["step"] <= agent.step]
        results.write_metrics(run_dir, records)
    else:
        results.write_metrics(run_dir, [])
    results.atomic_write_text(run_dir / results.CONFIG_FILE, dump_yaml(config))

    if evaluator is None and tc.eval_episodes > 0:
        from erdiff.tasks import make_evaluator

        evaluator = make_evaluator(config.task, tc.eval_episodes, config.seed)

    steps_per_period = tc.eval_every * tc.steps_per_epoch
    total_steps = tc.epochs * tc.steps_per_epoch
    session_start = time.perf_counter()
    loss_sums = torch.zeros(len(LOSS_KEYS), device=device)
    steps_in_period = 0
    lr_factor = None
    progress_bar = _progress_bar(progress, total_steps, agent.step, config.task, config.seed)
    try:
        for epoch in range(start_epoch + 1, tc.epochs + 1):
            for _ in range(tc.steps_per_epoch):
                factor = learning_rate_factor(config.agent.lr_schedule, agent.step, total_steps, steps_per_period,
                                              tc.epochs)
                if factor != lr_factor:
                    agent.set_learning_rate_factor(factor)
                    lr_factor = factor
                with update_precision(device, tc.precision):
                    step_metrics = agent.update(buffer.sample(tc.batch_size))
                loss_sums += torch.stack([step_metrics[key] for key in LOSS_KEYS])
                steps_in_period += 1
            progress_bar.update(tc.steps_per_epoch)
            if epoch % tc.eval_every != 0 and epoch != tc.epochs:
                continue

            record = {"step": agent.step, "epoch": epoch,
                      "time_s": previous_time + time.perf_counter() - session_start}
            record.update(_evaluate(agent, evaluator, config.seed, device))
            record.update(zip(LOSS_KEYS, (loss_sums / steps_in_period).tolist()))
            record["actor_lr"] = agent.actor_optimizer.param_groups[0]["lr"]
            record["critic_lr"] = agent.critic_optimizer.param_groups[0]["lr"]
            loss_sums.zero_()
            steps_in_period = 0
            records.append(record)

            results.write_metrics(run_dir, records)
            save_checkpoint(run_dir / results.CHECKPOINT_FILE, {
                "agent": agent.training_state(), "epoch": epoch, "time_s": record["time_s"],
                "rng": capture_rng_states(), "config": config_dict})
            finished = epoch == tc.epochs
            summary_args = (run_dir, config_dict, records, agent.step, epoch, record["time_s"])
            _write_summary(*summary_args, status="completed" if finished else "running")
            stop = bool(on_evaluation(record, run_dir)) if on_evaluation is not None else False
            if stop and not finished:
                _write_summary(*summary_args, status="stopped")
            if record.get("normalized_score_mean") is not None:
                progress_bar.set_postfix(score=f"{record['normalized_score_mean']:.1f}")
            if stop:
                break
    finally:
        progress_bar.close()
        if evaluator is not None and hasattr(evaluator, "close"):
            evaluator.close()
    return results.read_summary(run_dir)


def _write_summary(run_dir: Path, config_dict: dict, records: list[dict], step: int, epoch: int, time_s: float,
                   status: str) -> None:
    summary = results.make_summary(config_dict, records, status, step, epoch, time_s)
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


def _progress_bar(enabled: bool, total: int, initial: int, task: str, seed: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", desc=f"{task} seed {seed}",
                dynamic_ncols=True, mininterval=1.0)
