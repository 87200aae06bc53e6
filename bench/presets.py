"""How long each local task's preset takes on this machine: the estimate `erdiff train` prints, for all of them.

    python bench/presets.py --check-epochs 2 --json out.json

For each local task (erdiff.presets.LOCAL_TASKS) at its preset: the thread count `erdiff train` would choose
(erdiff.steptime.choose_threads), the measured step and policy-call times and the resulting estimate
(erdiff.steptime.estimate_run_seconds). With ``--check-epochs N`` the first task's preset is also trained for N
epochs (evaluating after the last) and its measured seconds per step, ``time_s / step`` from summary.json, are
set beside the estimate's. Prints a table and writes JSON with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace

import torch
from report import commit, write_json  # bench/report.py (this script's folder is on sys.path)

from erdiff.config import make_config
from erdiff.presets import LOCAL_TASKS
from erdiff.steptime import choose_threads, cpu_model, estimate_run_seconds
from erdiff.tasks import get_task
from erdiff.train import train


def estimate(task_name: str) -> tuple[dict, object]:
    config = make_config(task_name)
    task, tc = get_task(task_name), config.train
    threads, medians = choose_threads(task.obs_dim, task.act_dim, config.agent, tc.batch_size, tc.precision)
    steps = tc.epochs * tc.steps_per_epoch
    result = estimate_run_seconds(config, medians[threads], steps, threads=threads)
    config = replace(config, train=replace(tc, num_threads=threads))
    return {**result, "threads": threads, "step_s_by_threads": {str(n): s for n, s in medians.items()},
            "num_critics": config.agent.num_critics, "hidden_dim": config.agent.hidden_dim}, config


def check(config, epochs: int) -> dict:
    """Train ``config`` for ``epochs`` epochs (one evaluation, at the end): its measured seconds per step."""
    short = replace(config, train=replace(config.train, epochs=epochs, eval_every=epochs))
    with tempfile.TemporaryDirectory(prefix="erdiff-presets-") as out:
        summary = train(short, out, progress=False)
    return {"epochs": epochs, "steps": summary["step"], "time_s": summary["time_s"],
            "seconds_per_step": summary["time_s"] / summary["step"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=LOCAL_TASKS, default=list(LOCAL_TASKS))
    parser.add_argument("--check-epochs", type=int, default=0,
                        help="train the first task's preset for this many epochs to check its estimate (default 0)")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    estimates, configs = {}, {}
    for name in args.tasks:
        estimates[name], configs[name] = estimate(name)
    checked = check(configs[args.tasks[0]], args.check_epochs) if args.check_epochs > 0 else None
    result = {"presets": estimates, "check": checked and {"task": args.tasks[0], **checked},
              "cpus": os.cpu_count(), "load_avg_before": list(load_before), "load_avg_after": list(os.getloadavg()),
              "torch": torch.__version__, "machine": cpu_model(), "commit": commit(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    print(f"{'task':<24} {'M':>3} {'units':>5} {'steps':>7} {'threads':>7} {'ms/step':>8} {'eval min':>8} "
          f"{'total min':>9}")
    for name, row in estimates.items():
        print(f"{name:<24} {row['num_critics']:>3} {row['hidden_dim']:>5} {row['steps']:>7,} {row['threads']:>7} "
              f"{1000 * row['step_s']:>8.0f} {row['eval_s'] / 60:>8.1f} {row['total_s'] / 60:>9.0f}")
    if checked:
        print(f"check: {args.tasks[0]} trained {checked['steps']} steps in {checked['time_s']:.1f} s = "
              f"{1000 * checked['seconds_per_step']:.0f} ms/step (one evaluation included) against "
              f"{1000 * estimates[args.tasks[0]]['step_s']:.0f} ms estimated")
    print(f"load {result['load_avg_before'][0]:.2f} -> {result['load_avg_after'][0]:.2f}")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
