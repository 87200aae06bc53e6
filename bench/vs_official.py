"""erdiff's update against the official code's, side by side in one process, alternating rounds.

    python bench/vs_official.py --official-src ~/src/entropy-offlineRL --critics 2 64 --rounds 3 --json out.json

``--official-src`` is a checkout of the authors' repository (github.com/ruoqizzz/entropy-offlineRL); its
``agents.eql_diffusion.Diffusion_EQL.train`` is timed as it is, its own loop included (sampling, the two updates,
EMA, Polyak and its per-step ``.item()`` metrics). erdiff is timed through ``erdiff.train.training_step`` for every
``--compile`` mode given. Both learners get the same sizes (obs/act dims, M, T, batch, 256-unit networks, MLL loss,
LCB with β = 4, the same gradient clipping) and random transitions of the same shape. Every round times each learner
for ``--steps`` steps in turn, so load from other processes falls on all of them alike; the table reports the median
round and the ratio to the official code's median.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from report import commit, print_rows, write_json  # bench/report.py (this script's folder is on sys.path)

from erdiff.agent import ERDiffAgent
from erdiff.buffer import TransitionBuffer
from erdiff.config import COMPILE_MODES, AgentConfig
from erdiff.steptime import cpu_model
from erdiff.train import training_step


def random_transitions(obs_dim: int, act_dim: int, size: int = 100_000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"observations": rng.normal(size=(size, obs_dim)).astype(np.float32),
            "actions": rng.uniform(-1, 1, size=(size, act_dim)).astype(np.float32),
            "next_observations": rng.normal(size=(size, obs_dim)).astype(np.float32),
            "rewards": rng.normal(size=size).astype(np.float32),
            "terminals": np.zeros(size, dtype=np.float32)}


def official_learner(source: Path, data: dict, config: AgentConfig, batch: int):
    """A step function running one iteration of the official ``Diffusion_EQL.train``."""
    sys.path.insert(0, str(source))
    try:
        eql = importlib.import_module("agents.eql_diffusion")
        sampler = importlib.import_module("utils.data_sampler")
    except ImportError as error:
        raise SystemExit(f"--official-src {source}: cannot import the official code ({error}); expected a checkout "
                         "of github.com/ruoqizzz/entropy-offlineRL with agents/eql_diffusion.py") from None
    obs_dim, act_dim = data["observations"].shape[1], data["actions"].shape[1]
    agent = eql.Diffusion_EQL(obs_dim, act_dim, 1.0, "cpu", config.discount, config.tau, eta=config.eta,
                              schedule=config.schedule, n_timesteps=config.T, ema_decay=config.ema_decay,
                              step_start_ema=config.ema_start, grad_norm=config.grad_norm, ent_coef=config.ent_coef,
                              num_critics=config.num_critics, pess_method=config.pessimism,
                              lcb_coef=config.lcb_coef, loss_type=config.loss_type)
    buffer = sampler.Data_Sampler(data, "cpu")
    return lambda steps: agent.train(buffer, steps, batch_size=batch)


def erdiff_learner(data: dict, config: AgentConfig, batch: int, compile_mode: str):
    obs_dim, act_dim = data["observations"].shape[1], data["actions"].shape[1]
    torch.manual_seed(0)
    agent = ERDiffAgent(obs_dim, act_dim, 1.0, config, compile=compile_mode)
    agent.make_optimizers()
    buffer = TransitionBuffer(data, torch.device("cpu"))
    generators = [torch.Generator().manual_seed(0)]

    def run(steps: int) -> None:
        for _ in range(steps):
            training_step(agent, buffer, generators, batch, "float32")

    return run


def median_rates(learners: dict, steps: int, warmup: int, rounds: int) -> dict[str, list[float]]:
    """Steps/s of every learner per round; each round times them one after the other."""
    for run in learners.values():
        run(warmup)
    rates = {name: [] for name in learners}
    for _ in range(rounds):
        for name, run in learners.items():
            start = time.perf_counter()
            run(steps)
            rates[name].append(steps / (time.perf_counter() - start))
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-src", type=Path, required=True,
                        help="a checkout of github.com/ruoqizzz/entropy-offlineRL")
    parser.add_argument("--critics", type=int, nargs="+", default=[2, 64], help="ensemble sizes M")
    parser.add_argument("--compile", nargs="+", choices=COMPILE_MODES, default=list(COMPILE_MODES),
                        help="erdiff's train.compile modes to time (default: all)")
    parser.add_argument("--obs-dim", type=int, default=11)
    parser.add_argument("--act-dim", type=int, default=3)
    parser.add_argument("--T", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per learner per round (default: 200 / M rounded, at least 10)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = random_transitions(args.obs_dim, args.act_dim)
    results = []
    for critics in args.critics:
        config = AgentConfig(num_critics=critics, T=args.T)
        steps = args.steps or max(10, round(200 / critics))
        learners = {"official": official_learner(args.official_src, data, config, args.batch)}
        for mode in args.compile:
            learners[f"erdiff {mode}"] = erdiff_learner(data, config, args.batch, mode)
        rates = median_rates(learners, steps, args.warmup, args.rounds)
        official = statistics.median(rates["official"])
        for name, per_round in rates.items():
            rate = statistics.median(per_round)
            results.append({"critics": critics, "learner": name, "steps_per_s": rate,
                            "rounds": per_round, "ratio_to_official": rate / official, "steps": steps})
            print_rows([(f"M={critics} {name}", f"{rate:.2f} steps/s  ({rate / official:.2f}x official;"
                                                 f" rounds {', '.join(f'{r:.2f}' for r in per_round)})")])
    write_json(args.json, {"results": results, "threads": torch.get_num_threads(), "torch": torch.__version__,
                           "machine": cpu_model(), "commit": commit(),
                           "rounds": args.rounds, "batch": args.batch, "T": args.T})
    return 0


if __name__ == "__main__":
    sys.exit(main())
