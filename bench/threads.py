"""Seconds per gradient step with 1 thread and with every CPU, side by side, at the local tasks' sizes.

    python bench/threads.py --rounds 5 --steps 10 --json out.json

Each round times every size with each thread count in turn (erdiff.steptime.measure_step_seconds, one process),
so a change of load hits both counts alike; the median over rounds counts. The sizes are those of the toy
quickstart, of the learning check (docs/learning.md), of the local presets (M = 64, 256 units) and M = 2 at
256 units, around the rule of :func:`erdiff.steptime.default_threads`. Prints a table (with the thread count
the rule picks for each) and writes JSON with the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
from report import commit, write_json  # bench/report.py (this script's folder is on sys.path)

from erdiff.config import make_config
from erdiff.steptime import available_cpus, cpu_model, default_threads, measure_step_seconds, update_flops
from erdiff.tasks import get_task

SIZES = {
    "toy quickstart (M=4, 32 units)": ("toy", {"agent.num_critics": "4", "agent.hidden_dim": "32"}),
    "pendulum learning check (M=4, 64 units)": ("pendulum-medium", {"agent.num_critics": "4",
                                                                     "agent.hidden_dim": "64"}),
    "pendulum M=2, 256 units": ("pendulum-medium", {"agent.num_critics": "2"}),
    "toy preset (M=64, 256 units)": ("toy", {}),
    "pendulum preset (M=64, 256 units)": ("pendulum-medium", {}),
}
"""Label -> (task, config overrides on its preset)."""


def run(args: argparse.Namespace) -> dict:
    counts = sorted({1, available_cpus()})
    configs = {label: make_config(task, overrides=overrides) for label, (task, overrides) in SIZES.items()}
    times = {label: {threads: [] for threads in counts} for label in configs}
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for label, config in configs.items():
            task = get_task(config.task)
            for threads in counts:
                times[label][threads].append(measure_step_seconds(
                    task.obs_dim, task.act_dim, config.agent, config.train.batch_size, threads=threads,
                    steps=args.steps))
    sizes = {}
    for label, config in configs.items():
        task = get_task(config.task)
        median = {threads: float(np.median(values)) for threads, values in times[label].items()}
        best = min(median.values())
        chosen = default_threads(config)
        sizes[label] = {"task": config.task, "num_critics": config.agent.num_critics,
                        "hidden_dim": config.agent.hidden_dim,
                        "gflop_per_step": update_flops(task.obs_dim, task.act_dim, config.agent,
                                                       config.train.batch_size) / 1e9,
                        "step_s": {str(threads): value for threads, value in median.items()},
                        "step_s_all": {str(threads): values for threads, values in times[label].items()},
                        "rule_threads": chosen, "rule_vs_best": median[min(chosen, max(counts))] / best}
    return {"sizes": sizes, "thread_counts": counts, "rounds": args.rounds, "steps": args.steps,
            "torch_default_threads": args.torch_default_threads, "cpus": os.cpu_count(),
            "load_avg_before": list(load_before), "load_avg_after": list(os.getloadavg()),
            "torch": torch.__version__, "machine": cpu_model(), "commit": commit(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of all sizes and thread counts")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement (after one untimed)")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON")
    args = parser.parse_args(argv)
    for name in ("rounds", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    args.torch_default_threads = torch.get_num_threads()
    result = run(args)
    counts = result["thread_counts"]
    print(f"{'size':<42} {'GFLOP':>6} " + " ".join(f"{f'{n} thr ms':>10}" for n in counts)
          + f" {'rule':>5} {'rule/best':>9}")
    for label, size in result["sizes"].items():
        print(f"{label:<42} {size['gflop_per_step']:>6.2f} "
              + " ".join(f"{1000 * size['step_s'][str(n)]:>10.1f}" for n in counts)
              + f" {size['rule_threads']:>5} {size['rule_vs_best']:>9.2f}")
    print(f"torch's default: {result['torch_default_threads']} threads; {result['cpus']} CPUs; load "
          f"{result['load_avg_before'][0]:.2f} -> {result['load_avg_after'][0]:.2f}")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
