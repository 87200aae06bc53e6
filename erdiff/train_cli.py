"""Train one seed of one configuration into a run directory (or several seeds, packed: --seeds).

The configuration is built in layers: the method's defaults < the task's preset < --config FILE.yaml <
overrides on the command line such as `--agent.num_critics 4 --train.epochs 10`. The run directory gets
config.yaml, metrics.jsonl (one line per evaluation), summary.json and checkpoint.pt (README, "Results format").
One process writes a run directory at a time (a second one is refused). A run whose loss, Q-values or weights
become non-finite stops with status `diverged` and no score, keeping its last finite checkpoint.

exit status: 0 trained (or already complete), 1 a seed diverged, 2 bad input (one line says what).

examples:
  erdiff train --task pendulum-medium --out runs/pendulum
  erdiff train --task hopper-medium-v2 --train.dataset ../shared/data/hopper-sac-medium.hdf5 --agent.num_critics 16
  erdiff train --task toy --out runs/toy --resume          # continue an interrupted run exactly
  erdiff train --task toy --seeds 0,1,2 --out runs/toy     # 3 seeds as one batched model: runs/toy/seed_<k>
  erdiff train --task toy --out runs/toy --track tensorboard,mlflow   # also log to TensorBoard and MLflow
"""

from __future__ import annotations

import argparse
import json
import sys

PRESET_DURATIONS = """\
how long a run takes: before training, erdiff train prints its estimate for this machine now ("about N min"), from
a step and an evaluation call it times. The local tasks' presets (M = 64 critics, 256 units) are long on a CPU:
measured on the shared 2-core CPU at a load of 15-18 (bench/RESULTS.md, "Local presets"): toy (10,000 steps)
5.8 h, pendulum-medium and -replay (20,000) 12 h, mountaincar-sparse (20,000) 9 h, hopper-noisy (10,000) 6.8 h;
at the 3.4 steps/s the same CPU gave when idle, toy takes about 50 min and the 20,000-step presets 1.6 h and more.
The learning check's settings (docs/learning.md: --agent.hidden_dim 64 --agent.num_critics 4, 16,000 steps) take
6-13 min plus evaluations at the 23-50 ms per step measured at loads 3-16 (bench/RESULTS.md, "Threads")."""


def configure(parser: argparse.ArgumentParser) -> None:
    from erdiff.config import describe_fields
    from erdiff.presets import PRESETS

    parser.add_argument("--task", help="task name; known tasks: " + ", ".join(PRESETS))
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file with task/seed/agent/train fields")
    parser.add_argument("--out", metavar="DIR", help="run directory (default runs/<task>/seed_<seed>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its checkpoint (starts fresh in an empty directory; a "
                             "finished run is left as it is, a run with results but no checkpoint is refused)")
    parser.add_argument("--seeds", metavar="S1,S2,...", type=_seed_list,
                        help="train these seeds together in one process as one batched model (packed seeds: the "
                             "same computation as separate runs, but in float32 the rounding differs and the runs "
                             "drift apart, see the README); --out is then the parent of their run directories "
                             "seed_<k> (default runs/<task>)")
    parser.add_argument("--track", metavar="LIB1,LIB2",
                        help="log every evaluation to these tracking libraries: tensorboard, wandb, mlflow (sets "
                             "train.track; README, Tracking)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.epilog = (PRESET_DURATIONS + "\n\nconfig fields (set any as --FIELD VALUE):\n" + describe_fields())
    parser.set_defaults(accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from erdiff import results
    from erdiff.config import ConfigError, load_yaml, make_config, parse_override_args
    from erdiff.train import train_seeds

    file_data = load_yaml(args.config) if args.config else None
    overrides = parse_override_args(args.overrides)
    if args.track is not None:
        overrides["train.track"] = args.track
    if args.seeds and "seed" in overrides:
        raise ConfigError("give either --seed (one run) or --seeds (packed seeds), not both")
    config = make_config(args.task, file_data, overrides, source=args.config or "command line")
    if args.seeds:
        root = Path(args.out) if args.out else Path("runs") / config.task
        configs = [replace(config, seed=seed) for seed in args.seeds]
        run_dirs = [root / f"seed_{seed}" for seed in args.seeds]
    else:
        configs = [config]
        run_dirs = [Path(args.out) if args.out else Path("runs") / config.task / f"seed_{config.seed}"]
    configs = _before_training(configs, run_dirs, args.resume, args.quiet)
    try:
        summaries = train_seeds(configs, run_dirs, resume=args.resume, progress=not args.quiet)
    except KeyboardInterrupt:
        for run_dir in run_dirs:
            print(_what_was_kept(run_dir), file=sys.stderr)
        raise
    for run_dir, summary in zip(run_dirs, summaries):
        print(f"run directory: {run_dir}", file=sys.stderr)
        line = {"task": summary["task"], "seed": summary["seed"], "status": summary["status"], "step": summary["step"]}
        if "divergence" in summary:
            divergence = summary["divergence"]
            kept = (f"the last finite checkpoint (step {summary['step']}) is kept" if summary["evaluations"]
                    else "and no checkpoint: it diverged before its first evaluation")
            print(f"diverged: non-finite {divergence['quantity']} at step {divergence['step']}; no score, {kept}",
                  file=sys.stderr)
            line["divergence"] = divergence
        else:
            line.update(normalized_score_last=summary["normalized_score"]["last"],
                        normalized_score_best=summary["normalized_score"]["best"])
        print(json.dumps(line))
    # A diverged run is an outcome, not a crash, but it produced no result: scripts should see that.
    return 1 if any(summary["status"] == results.DIVERGED for summary in summaries) else 0


def _before_training(configs: list, run_dirs: list, resume: bool, quiet: bool) -> list:
    """On the CPU with ``train.num_threads`` unset: the faster of 1 thread and every CPU, timed here now (the
    configs then record it). Unless ``quiet``: one line on stderr with the time the run should take here."""
    from dataclasses import replace

    from torch import get_num_threads as torch_threads

    from erdiff import results
    from erdiff.steptime import choose_threads, estimate_run_seconds, is_small_step, measure_step_seconds
    from erdiff.tasks import get_task
    from erdiff.train import resolve_device

    config, tc = configs[0], configs[0].train
    task = get_task(config.task)
    device = resolve_device(tc.device)
    sizes = (task.obs_dim, task.act_dim, config.agent, tc.batch_size)
    threads, medians = tc.num_threads, {}
    if device.type == "cpu" and threads is None:
        if quiet and is_small_step(*sizes):  # 1 thread untimed: nothing to print
            threads = 1
        else:
            threads, medians = choose_threads(*sizes, tc.precision)
        configs = [replace(c, train=replace(c.train, num_threads=threads)) for c in configs]
    if quiet:
        return configs
    step_s = medians.get(threads) or measure_step_seconds(*sizes, device, threads=threads, precision=tc.precision)
    timings = ", ".join(f"{count}: {1000 * seconds:.0f} ms/step" for count, seconds in medians.items())
    summary = results.read_summary(run_dirs[0]) if resume and run_dirs[0].is_dir() else None
    steps = tc.epochs * tc.steps_per_epoch - (summary["step"] if summary else 0)
    if steps <= 0:  # an ended run: nothing to estimate
        return configs
    estimate = estimate_run_seconds(config, step_s, steps, device, threads)
    seeds = len(configs)
    packed = f" for {seeds} packed seeds (K x one seed's)" if seeds > 1 else ""
    print(f"erdiff train: {config.task}: about {_duration(seeds * estimate['total_s'])} on this machine{packed}: "
          f"{steps:,} steps x {1000 * step_s:.1f} ms (measured now, eager) + {estimate['evaluations']} evaluations "
          f"x {task.max_episode_steps} policy calls x {1000 * estimate['policy_call_s']:.1f} ms; environment steps "
          f"and checkpoints come on top; torch threads {threads or torch_threads()}"
          f"{f' ({timings})' if len(medians) > 1 else ''}", file=sys.stderr)
    return configs


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _what_was_kept(run_dir) -> str:
    """One line for Ctrl-C: what the run directory holds now and how to go on."""
    from erdiff import results

    summary = results.read_summary(run_dir) if run_dir.is_dir() else None
    if not summary:
        return f"{run_dir}: nothing kept (stopped before the first evaluation)"
    return (f"{run_dir}: kept up to step {summary['step']} (the last evaluation and its checkpoint); "
            "run the same command with --resume to continue")


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integer seeds such as 0,1, got {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct, got {text!r}")
    return seeds
