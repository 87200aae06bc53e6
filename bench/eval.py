"""Evaluation episodes per second: N episodes stepped together (the project's evaluator) vs one at a time.

    python bench/eval.py --tasks hopper-medium-v2 pendulum-medium --episodes 10 --critics 64 --T 5 \\
        --max-steps 200 --json out.json

* vectorized: :class:`erdiff.envs.evaluate.Evaluator`, the N episodes in lockstep, one policy call per step on
  the observations of the episodes still running.
* one at a time: the official code's loop, one environment, the episodes in turn, one policy call per step
  with a batch of one.

Both use the same untrained agent's evaluation policy (``eval_candidates`` actions per state scored by the
Q-ensemble's LCB, softmax choice), the task's environment and the same reset seeds; environments are built
before the clock starts. An untrained agent makes Hopper fall within ~10-30 steps, which would time resets
rather than evaluation, so by default episodes do not end early (Hopper's and Walker2d's
``terminate_when_unhealthy=False``) and every episode lasts exactly ``--max-steps`` steps in both modes, as a
trained agent's full-length episodes would; ``--terminate`` keeps the environment's own episode ends.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import gymnasium as gym
import numpy as np
import torch
from report import commit, write_json  # bench/report.py (this script's folder is on sys.path when it runs)

from erdiff.agent import ERDiffAgent
from erdiff.config import AgentConfig
from erdiff.envs.evaluate import SEED_OFFSET, Evaluator
from erdiff.envs.make import make_gym_env, register_envs
from erdiff.errors import ErdiffError
from erdiff.steptime import cpu_model, median_call_seconds
from erdiff.tasks import MAX_PARALLEL_ENVS, Task, get_task

NO_EARLY_END = {"Hopper-v4": {"terminate_when_unhealthy": False},
                "Walker2d-v4": {"terminate_when_unhealthy": False}}
"""Constructor arguments that stop an environment from ending an episode before its time limit."""


def benchmark_env_id(env_id: str, max_steps: int, terminate: bool) -> str:
    """Register (once) a variant of ``env_id`` whose episodes end after ``max_steps`` steps and, unless
    ``terminate``, never earlier (where :data:`NO_EARLY_END` knows how); return its id."""
    register_envs()
    spec = gym.spec(env_id)
    kwargs = dict(spec.kwargs)
    if not terminate:
        kwargs.update(NO_EARLY_END.get(env_id, {}))
    suffix = "" if terminate else "-full"
    variant = f"erdiff-bench/{spec.name}-{max_steps}steps{suffix}-v{spec.version or 0}"
    if variant not in gym.registry:
        gym.register(id=variant, entry_point=spec.entry_point, kwargs=kwargs, max_episode_steps=max_steps)
    return variant


class CountingPolicy:
    """Wraps a batched policy and counts its calls and the observations it was given (= environment steps)."""

    def __init__(self, policy) -> None:
        self.policy = policy
        self.calls = 0
        self.env_steps = 0

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.env_steps += len(observations)
        return self.policy(observations)


def run_one_at_a_time(task: Task, policy, reset_seeds: list[int]) -> np.ndarray:
    """The official code's evaluation loop: one env, one episode after the other, a policy call per step."""
    env = make_gym_env(task.env_id)
    low, high = env.action_space.low, env.action_space.high
    returns = np.zeros(len(reset_seeds))
    try:
        for episode, seed in enumerate(reset_seeds):
            observation, _ = env.reset(seed=seed)
            done = False
            while not done:
                action = policy(observation[None].astype(np.float32))[0]
                observation, reward, terminated, truncated, _ = env.step(np.clip(action, low, high))
                returns[episode] += reward
                done = terminated or truncated
    finally:
        env.close()
    return returns


def policy_call_seconds(agent: ERDiffAgent, obs_dim: int, batch: int, calls: int = 5) -> float:
    """Median seconds of one evaluation-policy call on ``batch`` states (after one untimed call).

    Its growth from batch 1 to batch N bounds the vectorized speed-up: N episodes cost N calls of batch 1 one
    at a time and one call of batch N together, so the speed-up is at most N × cost(1) / cost(N).
    """
    return median_call_seconds(agent.policy(), np.zeros((batch, obs_dim), dtype=np.float32), calls)


def timed(mode: str, task: Task, agent: ERDiffAgent, args: argparse.Namespace, device: torch.device) -> dict:
    """Run the N episodes of ``task`` in ``mode``; wall time, rates and the work done."""
    # A fresh generator per run, seeded as the training loop seeds its evaluations.
    policy = CountingPolicy(agent.policy(torch.Generator(device=device).manual_seed(args.seed + SEED_OFFSET)))
    if mode == "vectorized":
        with Evaluator(task, args.episodes, args.seed, max_envs=MAX_PARALLEL_ENVS.get(task.domain)) as evaluator:
            start = time.perf_counter()
            returns = evaluator(policy)["episode_returns"]
            seconds = time.perf_counter() - start
    else:
        reset_seeds = [args.seed + SEED_OFFSET + episode for episode in range(args.episodes)]
        start = time.perf_counter()
        returns = run_one_at_a_time(task, policy, reset_seeds)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "episodes_per_s": args.episodes / seconds, "env_steps": policy.env_steps,
            "env_steps_per_s": policy.env_steps / seconds, "policy_calls": policy.calls,
            "return_mean": float(np.mean(returns))}


def bench_task(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    """Both modes on one task, ``repeats`` times, alternating (so load changes hit both); the fastest run counts."""
    task = get_task(name)
    if task.env_id is None:
        raise SystemExit(f"task {name!r} has no evaluation environment")
    task = dataclasses.replace(task, env_id=benchmark_env_id(task.env_id, args.max_steps, args.terminate))
    torch.manual_seed(args.seed)
    config = AgentConfig(num_critics=args.critics, T=args.T, eval_candidates=args.candidates)
    agent = ERDiffAgent(task.obs_dim, task.act_dim, task.max_action, config).to(device)
    # Also warms the policy up: first calls pay for lazy initialisation, which stays off the clock.
    single_call_s = policy_call_seconds(agent, task.obs_dim, 1)
    batch_call_s = policy_call_seconds(agent, task.obs_dim, args.episodes)
    runs = {"vectorized": [], "one_at_a_time": []}
    for _ in range(args.repeats):
        for mode, results in runs.items():
            results.append(timed(mode, task, agent, args, device))
    best = {mode: min(results, key=lambda run: run["seconds"]) for mode, results in runs.items()}
    return {"env_id": task.env_id, **best,
            "policy_call_s_batch_1": single_call_s, "policy_call_s_batch_n": batch_call_s,
            "speedup_bound": args.episodes * single_call_s / batch_call_s,
            "seconds_all": {mode: [run["seconds"] for run in results] for mode, results in runs.items()},
            "speedup": best["vectorized"]["episodes_per_s"] / best["one_at_a_time"]["episodes_per_s"]}


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    tasks = {name: bench_task(name, args, device) for name in args.tasks}
    return {
        "tasks": tasks,
        "episodes": args.episodes, "critics": args.critics, "T": args.T, "candidates": args.candidates,
        "max_steps": args.max_steps, "terminate": args.terminate, "repeats": args.repeats, "seed": args.seed,
        "device": str(device), "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_avg_before": list(load_before), "load_avg_after": list(os.getloadavg()),
        "torch": torch.__version__, "machine": cpu_model(), "commit": commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["hopper-medium-v2", "pendulum-medium"],
                        help="task names (their evaluation environments are used; no dataset is needed)")
    parser.add_argument("--episodes", type=int, default=10, help="N, episodes per evaluation")
    parser.add_argument("--critics", type=int, default=64, help="ensemble size M")
    parser.add_argument("--T", type=int, default=5, help="diffusion steps")
    parser.add_argument("--candidates", type=int, default=50, help="candidate actions per state (eval_candidates)")
    parser.add_argument("--max-steps", type=int, default=200, help="episode length cap")
    parser.add_argument("--terminate", action="store_true",
                        help="keep the environment's own early episode ends (default: episodes last --max-steps)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per mode; the fastest is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON")
    args = parser.parse_args(argv)
    for name in ("episodes", "critics", "candidates", "max_steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    try:
        result = run(args)
    except ErdiffError as err:  # an unknown task, say: one line, not a traceback
        parser.error(str(err))
    print(f"{'task':<18} {'mode':<14} {'episodes/s':>10} {'env steps/s':>11} {'calls':>6} {'seconds':>8}")
    for name, outcome in result["tasks"].items():
        for mode in ("vectorized", "one_at_a_time"):
            row = outcome[mode]
            print(f"{name:<18} {mode:<14} {row['episodes_per_s']:>10.3f} {row['env_steps_per_s']:>11.1f} "
                  f"{row['policy_calls']:>6} {row['seconds']:>8.1f}")
        print(f"{name:<18} speed-up       {outcome['speedup']:>9.2f}x   (policy call: batch 1 "
              f"{1000 * outcome['policy_call_s_batch_1']:.1f} ms, batch {args.episodes} "
              f"{1000 * outcome['policy_call_s_batch_n']:.1f} ms; bound {outcome['speedup_bound']:.2f}x)")
    print(f"N={args.episodes} M={args.critics} T={args.T} candidates={args.candidates} max_steps={args.max_steps} "
          f"terminate={args.terminate} {result['device']} threads={result['threads']} "
          f"load {result['load_avg_before'][0]:.2f} -> {result['load_avg_after'][0]:.2f}")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
