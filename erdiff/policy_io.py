"""A trained policy back from its run directory: the agent of ``checkpoint.pt``, built as ``config.yaml`` says.

:func:`load_policy` gives the policy the training loop evaluated: for each observation, candidates from the
actor scored by the target critic's LCB and one picked by softmax (:meth:`erdiff.agent.ERDiffAgent.select_actions`,
docs/method.md §12), drawing from a generator seeded as the loop seeds its evaluations (``seed + 100``). So an
evaluator of the run's own seed and episode count (:func:`erdiff.tasks.make_evaluator`) given this policy
reproduces the run's last evaluation record. Only the networks are read; optimizers and RNG states are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from erdiff import results
from erdiff.agent import ERDiffAgent
from erdiff.checkpoint import CheckpointError, load_checkpoint
from erdiff.config import DEVICE_PATTERN, Config
from erdiff.envs.evaluate import SEED_OFFSET, Policy
from erdiff.errors import ErdiffError
from erdiff.tasks import get_task
from erdiff.train import resolve_device


class TrainedAgent(NamedTuple):
    agent: ERDiffAgent
    """in evaluation mode, on the requested device"""
    config: Config
    """the run's configuration (config.yaml)"""
    step: int
    """the gradient step of the checkpoint"""
    device: torch.device
    """where the agent's networks are"""


def load_agent(run_dir: str | Path, device: str = "cpu") -> TrainedAgent:
    """The agent saved in ``run_dir/checkpoint.pt``. A directory without config.yaml, a missing or corrupt
    checkpoint, or one whose networks do not fit config.yaml is one :class:`~erdiff.errors.ErdiffError`."""
    run_dir = Path(run_dir)
    config = Config.from_dict(results.read_config(run_dir), source=str(run_dir / results.CONFIG_FILE))
    checkpoint_path = run_dir / results.CHECKPOINT_FILE
    if not checkpoint_path.exists():
        raise CheckpointError(f"{run_dir} holds no {results.CHECKPOINT_FILE}: the run has not reached its first "
                              "evaluation, or the file was removed")
    torch_device = policy_device(device)
    checkpoint = load_checkpoint(checkpoint_path, map_location=torch_device)
    task = get_task(config.task)
    # The task's sizes and bound, as the training loop uses when it is given no dataset or bound of its own.
    agent = ERDiffAgent(task.obs_dim, task.act_dim, task.max_action, config.agent)
    try:
        agent.load_state_dict(checkpoint["agent"]["networks"])
        step = int(checkpoint["agent"]["step"])
    except (KeyError, RuntimeError) as err:
        reason = str(err).splitlines()[0] if isinstance(err, RuntimeError) else f"no entry {err}"
        raise CheckpointError(f"checkpoint {checkpoint_path} does not fit the agent that {results.CONFIG_FILE} "
                              f"describes for task {config.task} ({reason})") from None
    agent.to(torch_device).eval()
    return TrainedAgent(agent, config, step, torch_device)


def policy_device(name: str) -> torch.device:
    """The torch device called ``name`` (auto, cpu, cuda, cuda:N or mps); a clear error if it is no such name or
    this machine lacks it."""
    if not DEVICE_PATTERN.fullmatch(name):
        raise ErdiffError(f"device {name!r}: expected auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps")
    try:
        return resolve_device(name)
    except ErdiffError as err:
        # Its message reads "config field 'train.device' = ... but <reason>": keep the reason, name this argument.
        reason = str(err).split(" but ", 1)[-1]
        raise ErdiffError(f"device {name!r}: {reason}") from None


def evaluation_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The generator of an evaluation's action draws for run seed ``seed``, seeded as the training loop seeds it."""
    return torch.Generator(device=device).manual_seed(seed + SEED_OFFSET)


def load_policy(run_dir: str | Path, device: str = "cpu", seed: int | None = None) -> Policy:
    """The run's batched numpy policy, float32 observations [N, obs_dim] -> actions [N, act_dim], drawing
    from one generator seeded with ``seed + 100`` (``seed``: the run's own by default) for the policy's life."""
    trained = load_agent(run_dir, device)
    generator = evaluation_generator(trained.config.seed if seed is None else seed, trained.device)
    return trained.agent.policy(generator)
