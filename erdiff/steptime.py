"""How long a configuration's gradient steps and evaluations take on this machine, timed over a few steps.

`erdiff train` prints the estimate before it starts ("about N min on this machine"), `erdiff sweep --dry-run`
budgets CPU trials with it, and the thread rule (:func:`default_threads`) was chosen from measurements of it
(bench/threads.py, bench/RESULTS.md). The measurement trains a throwaway agent of the configuration's sizes on
random transitions: the step's cost depends on the sizes, not on the data. It runs eagerly (``train.compile``
off; a compiled step is faster, so the estimate is then an upper bound) in the configuration's precision, and
leaves the global RNG states and the thread count as it found them, so the run that follows is unchanged.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from erdiff.agent import ERDiffAgent
from erdiff.buffer import TransitionBuffer
from erdiff.config import AgentConfig, Config

SMALL_STEP_GFLOP = 1.0
"""Below this many matrix-product GFLOP per step one thread is used by default (:func:`default_threads`)."""


def random_buffer(obs_dim: int, act_dim: int, device: torch.device, size: int = 10_000) -> TransitionBuffer:
    """Random transitions of the given sizes (seed 0), for timing: an update costs the same on any data."""
    rng = np.random.default_rng(0)
    return TransitionBuffer({"observations": rng.normal(size=(size, obs_dim)),
                             "actions": rng.uniform(-1, 1, size=(size, act_dim)),
                             "next_observations": rng.normal(size=(size, obs_dim)),
                             "rewards": rng.normal(size=size), "terminals": np.zeros(size)}, device)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: a container's or a Ray worker's share), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def critic_forward_flops(obs_dim: int, act_dim: int, critics: int, hidden: int) -> int:
    """Matrix-product FLOPs of one ensemble forward for one sample: 2·M·(in·H + 2·H² + H)."""
    return 2 * critics * ((obs_dim + act_dim) * hidden + 2 * hidden * hidden + hidden)


def actor_forward_flops(obs_dim: int, act_dim: int, hidden: int, time_dim: int = 16) -> int:
    """Matrix-product FLOPs of one noise-predictor forward for one sample (its time MLP included)."""
    time_mlp = 2 * (time_dim * 2 * time_dim + 2 * time_dim * time_dim)
    return time_mlp + 2 * ((act_dim + time_dim + obs_dim) * hidden + 2 * hidden * hidden + hidden * act_dim)


def update_flops(obs_dim: int, act_dim: int, config: AgentConfig, batch_size: int) -> int:
    """Matrix-product FLOPs of one update. Critic: target forward (1) + forward and full backward (3) + the actor's
    pass through the frozen critic, forward and input gradients only (2) = 6 forwards. Actor: T forwards to sample
    next actions from the EMA actor (× max-Q samples) + forward and backward of the loss (3), and with a
    sample-based entropy estimate (agent.entropy_estimator knn or gaussian) forward and backward (3) of the T steps
    of each of its n·K chains (agent.entropy_states n of the batch, agent.entropy_samples K)."""
    samples = config.max_q_samples if config.max_q_backup else 1
    critic = critic_forward_flops(obs_dim, act_dim, config.num_critics, config.hidden_dim) * (samples + 5)
    actor = actor_forward_flops(obs_dim, act_dim, config.hidden_dim)
    sampled = config.entropy_estimator != "official"
    chains = min(config.entropy_states, batch_size) * config.entropy_samples if sampled else 0
    return batch_size * (critic + actor * (config.T * samples + 3)) + actor * 3 * config.T * chains


def is_small_step(obs_dim: int, act_dim: int, config: AgentConfig, batch_size: int) -> bool:
    """Whether one update's matrix products are under :data:`SMALL_STEP_GFLOP` (1 thread is then best)."""
    return update_flops(obs_dim, act_dim, config, batch_size) < SMALL_STEP_GFLOP * 1e9


def idle_cpus() -> int:
    """CPUs this process may use that the machine's other work leaves free: those minus the 1-minute load
    average (rounded), at least 1."""
    return max(1, available_cpus() - round(os.getloadavg()[0]))


def default_threads(config: Config) -> int:
    """torch threads for a run started from Python with ``train.num_threads`` unset: 1 for a step under
    :data:`SMALL_STEP_GFLOP`, else the idle CPUs (:func:`idle_cpus`).

    Measured side by side on the shared 2-core machine (bench/threads.py, bench/RESULTS.md "Threads"): at a load
    of 3-6, a second thread made the step 9-12x slower for the small sizes (the quickstart's, the learning
    check's, M = 2) and 2-3x slower for the presets' M = 64 with 256 units (27 GFLOP): each parallel region waits
    for the thread that is off its core. Where the load leaves CPUs idle, a large step gets them.
    """
    from erdiff.tasks import get_task

    task = get_task(config.task)
    if is_small_step(task.obs_dim, task.act_dim, config.agent, config.train.batch_size):
        return 1
    return idle_cpus()


def measure_step_seconds(obs_dim: int, act_dim: int, config: AgentConfig, batch_size: int,
                         device: torch.device | str = "cpu", *, threads: int | None = None, precision: str = "float32",
                         steps: int = 3, warmup: int = 1) -> float:
    """Median seconds of one eager gradient step at these sizes (after ``warmup`` untimed steps)."""
    from erdiff.train import training_step  # erdiff.train imports this module

    device = torch.device(device)
    with _measuring(device, threads):
        agent = ERDiffAgent(obs_dim, act_dim, 1.0, config).to(device)
        agent.make_optimizers()
        buffer = random_buffer(obs_dim, act_dim, device)
        generators = [torch.Generator(device=device).manual_seed(0)]
        times = []
        for index in range(warmup + steps):
            _synchronize(device)
            start = time.perf_counter()
            training_step(agent, buffer, generators, batch_size, precision)
            _synchronize(device)
            if index >= warmup:
                times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure_policy_call_seconds(obs_dim: int, act_dim: int, config: AgentConfig, batch: int,
                                device: torch.device | str = "cpu", *, threads: int | None = None,
                                calls: int = 3) -> float:
    """Median seconds of one evaluation-policy call (``eval_candidates`` actions per state, LCB choice) on
    ``batch`` states: an evaluation of N lockstep episodes makes one such call per environment step."""
    device = torch.device(device)
    with _measuring(device, threads):
        agent = ERDiffAgent(obs_dim, act_dim, 1.0, config).to(device)
        return median_call_seconds(agent.policy(torch.Generator(device=device).manual_seed(0)),
                                   np.zeros((batch, obs_dim), dtype=np.float32), calls)


def median_call_seconds(policy, observations: np.ndarray, calls: int) -> float:
    """Median seconds of ``policy(observations)`` over ``calls`` calls, after one untimed call (the first calls
    pay for lazy initialisation)."""
    policy(observations)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        policy(observations)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


@contextmanager
def _measuring(device: torch.device, threads: int | None) -> Iterator[None]:
    """A measurement that leaves no trace: the RNG states forked (and seeded 0 inside), ``threads`` torch threads
    while it runs, the caller's thread count put back after."""
    saved_threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if threads:
            torch.set_num_threads(threads)
        try:
            torch.manual_seed(0)
            yield
        finally:
            torch.set_num_threads(saved_threads)


def choose_threads(obs_dim: int, act_dim: int, config: AgentConfig, batch_size: int, precision: str = "float32",
                   rounds: int = 2) -> tuple[int, dict[int, float]]:
    """The faster of 1 thread and every CPU this process may use for gradient steps at these sizes, timed in turn
    ``rounds`` times (so a change of load hits both); more threads only when they are at least 10% faster, since
    each one also competes with the machine's other work. A step under :data:`SMALL_STEP_GFLOP` gets 1 thread
    untimed against others (more never paid off there: :func:`default_threads`). Returns the choice and each
    timed count's median step seconds.
    """
    counts = [1] if is_small_step(obs_dim, act_dim, config, batch_size) else sorted({1, available_cpus()})
    times = {threads: [] for threads in counts}
    for _ in range(rounds if len(counts) > 1 else 1):
        for threads in counts:
            times[threads].append(measure_step_seconds(obs_dim, act_dim, config, batch_size, threads=threads,
                                                       precision=precision, steps=2))
    medians = {threads: float(np.median(values)) for threads, values in times.items()}
    fastest = min(medians, key=medians.get)
    return (fastest if medians[fastest] < 0.9 * medians[1] else 1), medians


def estimate_run_seconds(config: Config, step_s: float, steps: int, device: torch.device | str = "cpu",
                         threads: int | None = None) -> dict:
    """Seconds ``steps`` gradient steps of ``config`` should take here at ``step_s`` each, plus the evaluations
    due in them: each ``max_episode_steps`` policy calls on ``eval_episodes`` states (measured here); environment
    steps, checkpoints and start-up come on top. Returns the parts and ``total_s``."""
    from erdiff.tasks import get_task

    task = get_task(config.task)
    tc = config.train
    evaluations = math.ceil(steps / (tc.eval_every * tc.steps_per_epoch))
    call_s = 0.0
    if tc.eval_episodes > 0 and task.env_id is not None:
        call_s = measure_policy_call_seconds(task.obs_dim, task.act_dim, config.agent, tc.eval_episodes, device,
                                             threads=threads)
    eval_s = evaluations * task.max_episode_steps * call_s
    return {"step_s": step_s, "steps": steps, "train_s": steps * step_s, "policy_call_s": call_s,
            "evaluations": evaluations, "eval_s": eval_s, "total_s": steps * step_s + eval_s}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_model() -> str:
    """lscpu's "Model name" (the CPU: machines of one kind differ in it), else the platform's processor string."""
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        output = ""
    for line in output.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
