"""Overhead of a sweep trial over the bare training loop, for each of the sweep's trainables.

    python bench/sweep.py --task toy --epochs 4 --steps-per-epoch 50 --eval-every 2 --seeds 1 --json out.json

* bare: :func:`erdiff.train.train` on each seed's config in turn, in this process, after one untimed run
  (which pays for lazy imports and first calls).
* sweep: the same config as a one-trial sweep (one task, empty grid) run by :func:`tune.sweep.run_sweep`,
  which starts and stops its own local Ray (``address="local"``, in a private ``RAY_TMPDIR``, so other Ray
  instances on the machine are untouched), once per trainable: ``train`` (a TorchTrainer, one worker per
  seed), ``function`` (the seeds in turn in the trial's own process) and ``packed`` (the seeds together as one
  batched model in the trial's process).

Both sides train from ``spec.seed_config``, the very configs a sweep's seeds get, so their metrics must agree
exactly on CPU (checked: ``matches_bare``); packed seeds agree to float32 rounding only (their products are
batched differently), so for them ``matches_bare`` is null and ``loss_max_rel_diff`` gives the largest relative
difference of a loss in any record. Overhead = sweep seconds − bare seconds: Ray's start and stop,
the trial's start, worker processes and their imports, reports and run-directory snapshots. Ray's start and
stop are also timed alone just before each sweep (started as the sweep starts it) to tell the per-sweep part
from the per-trial part; under a changing load that difference is rough.
With several seeds a TorchTrainer runs them in parallel while the bare loop runs them in turn, so the
difference then mixes parallelism into the overhead. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import ray
import torch
from report import commit, print_rows, write_json  # bench/report.py (this script's folder is on sys.path)

from erdiff import results
from erdiff.errors import ErdiffError
from erdiff.tasks import get_task, load_task_dataset
from erdiff.train import train
from tune.snapshots import seed_dir_name
from tune.spec import SweepSpec, parse_spec
from tune.sweep import connect, run_sweep

TRAINABLES = ("train", "function", "packed")
LOSS_KEYS = ("critic_loss", "bc_loss", "actor_loss")


def bench_spec(args: argparse.Namespace, trainable: str) -> SweepSpec:
    """A one-trial spec of the benchmark's config: an empty grid on one task."""
    return parse_spec({
        "name": f"bench-{trainable}", "tasks": [args.task], "seeds": args.seeds, "trainable": trainable,
        "config": {"agent": {"num_critics": args.critics, "hidden_dim": args.hidden},
                   "train": {"epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
                             "eval_every": args.eval_every, "eval_episodes": args.eval_episodes}},
        "objective": {"last_k": 1}, "resources": {"cpu": args.cpu}, "concurrency": 1,
    }, source="bench/sweep.py")


def run_bare(spec: SweepSpec, out_dir: Path) -> float:
    """Seconds to train every seed of the spec's one trial with ``train`` directly, one after another."""
    (plan,) = spec.trials()
    start = time.perf_counter()
    for seed in spec.seeds:
        train(spec.seed_config(plan.task, plan.params, seed, plan.name), out_dir / seed_dir_name(seed),
              progress=False)
    return time.perf_counter() - start


def learned_metrics(run_dir: Path) -> list[dict]:
    """The run's metric records without wall times: equal for equal training on CPU."""
    return [{key: value for key, value in record.items() if key != "time_s"}
            for record in results.read_metrics(run_dir)]


def time_ray_start_stop() -> tuple[float, float]:
    """Seconds to start a local Ray the way a sweep does, and to shut it down."""
    start = time.perf_counter()
    connect(None)
    started = time.perf_counter()
    ray.shutdown()
    return started - start, time.perf_counter() - started


def bench_trainable(spec: SweepSpec, work_dir: Path, repeats: int, bare_s: float,
                    bare_metrics: dict[int, list[dict]]) -> dict:
    """Run the spec's sweep ``repeats`` times, each right after a timed Ray start and stop (paired, so that load
    changes hit both); the fastest sweep counts. Its seeds' metrics are compared with the bare runs'."""
    (plan,) = spec.trials()
    runs, matches, max_rel_diff = [], True, 0.0
    for repeat in range(repeats):
        ray_start_s, ray_stop_s = time_ray_start_stop()
        out = work_dir / f"sweep-{spec.trainable}-{repeat}"
        start = time.perf_counter()
        status = run_sweep(spec, out)
        runs.append({"seconds": time.perf_counter() - start, "ray_start_s": ray_start_s, "ray_stop_s": ray_stop_s})
        if status != 0:
            raise SystemExit(f"the {spec.trainable} sweep failed (exit status {status}); its results are in {out}")
        swept = {seed: learned_metrics(out / "trials" / plan.name / seed_dir_name(seed)) for seed in spec.seeds}
        matches &= all(swept[seed] == bare_metrics[seed] for seed in spec.seeds)
        max_rel_diff = max([max_rel_diff] + [abs(a[key] - b[key]) / max(abs(b[key]), 1e-12)
                                             for seed in spec.seeds for a, b in zip(swept[seed], bare_metrics[seed])
                                             for key in LOSS_KEYS])
    best = min(runs, key=lambda run: run["seconds"])
    overhead = best["seconds"] - bare_s
    return {
        **best, "seconds_all": [run["seconds"] for run in runs], "overhead_s": overhead,
        "overhead_per_trial_s": overhead, "overhead_per_seed_s": overhead / len(spec.seeds),
        "overhead_without_ray_start_stop_s": overhead - best["ray_start_s"] - best["ray_stop_s"],
        "matches_bare": None if spec.trainable == "packed" else matches, "loss_max_rel_diff": max_rel_diff,
    }


def run(args: argparse.Namespace, work_dir: Path) -> dict:
    get_task(args.task)  # an unknown task fails here, before anything is timed
    load_task_dataset(args.task)  # a local task's dataset is generated once, off the clock
    specs = {trainable: bench_spec(args, trainable) for trainable in args.trainables}
    reference = next(iter(specs.values()))
    load_before = os.getloadavg()
    run_bare(reference, work_dir / "bare-warmup")
    bare = [run_bare(reference, work_dir / f"bare-{repeat}") for repeat in range(args.repeats)]
    bare_metrics = {seed: learned_metrics(work_dir / "bare-0" / seed_dir_name(seed)) for seed in reference.seeds}
    sweeps = {trainable: bench_trainable(spec, work_dir, args.repeats, min(bare), bare_metrics)
              for trainable, spec in specs.items()}
    return {
        "bare_s": min(bare), "bare_s_all": bare, "sweeps": sweeps,
        "task": args.task, "seeds": args.seeds, "trials": 1, "epochs": args.epochs,
        "steps_per_epoch": args.steps_per_epoch, "eval_every": args.eval_every, "eval_episodes": args.eval_episodes,
        "critics": args.critics, "hidden": args.hidden, "cpu_per_seed": args.cpu, "repeats": args.repeats,
        "cpus": os.cpu_count(), "load_avg_before": list(load_before), "load_avg_after": list(os.getloadavg()),
        "ray": ray.__version__, "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="toy")
    parser.add_argument("--seeds", type=int, default=1, help="seeds of the one trial")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--eval-every", type=int, default=2, help="epochs between evaluations (= sweep reports)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--critics", type=int, default=4, help="ensemble size M")
    parser.add_argument("--hidden", type=int, default=32, help="hidden width of actor and critics")
    parser.add_argument("--cpu", type=float, default=1.0,
                        help="CPUs per seed worker (resources.cpu; torch threads = its integer part, at least 1)")
    parser.add_argument("--trainables", nargs="+", choices=TRAINABLES, default=list(TRAINABLES))
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each; the fastest is reported")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON")
    args = parser.parse_args(argv)
    for name in ("seeds", "epochs", "steps_per_epoch", "eval_every", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if os.environ.get("RAY_ADDRESS"):
        parser.error("RAY_ADDRESS is set: the sweep would join that cluster; unset it to measure a local Ray")
    # A private Ray temp dir (short: Ray's socket paths are length-limited) keeps this Ray apart from others.
    work_dir = Path(tempfile.mkdtemp(prefix="erb-", dir="/tmp"))
    os.environ.setdefault("RAY_TMPDIR", str(work_dir / "ray"))
    try:
        result = run(args, work_dir)
    except ErdiffError as err:  # an unknown task or a spec that does not fit this machine: one line
        parser.error(str(err))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    rows = [("bare train, all seeds", f"{result['bare_s']:.2f} s")]
    for trainable, sweep in result["sweeps"].items():
        rows += [(f"sweep ({trainable})", f"{sweep['seconds']:.2f} s"),
                 (f"  local Ray start / stop ({trainable})",
                  f"{sweep['ray_start_s']:.2f} s / {sweep['ray_stop_s']:.2f} s (timed just before)"),
                 (f"  overhead per trial ({trainable})", f"{sweep['overhead_per_trial_s']:.2f} s"),
                 (f"  overhead per seed ({trainable})", f"{sweep['overhead_per_seed_s']:.2f} s"),
                 (f"  without Ray start/stop ({trainable})", f"{sweep['overhead_without_ray_start_stop_s']:.2f} s"),
                 (f"  metrics equal to bare ({trainable})",
                  f"{sweep['matches_bare']} (losses: max relative difference {sweep['loss_max_rel_diff']:.1e})")]
    rows.append(("config", f"{args.task} seeds={args.seeds} epochs={args.epochs}x{args.steps_per_epoch} "
                           f"eval_every={args.eval_every} M={args.critics} hidden={args.hidden} cpu={args.cpu} "
                           f"load {result['load_avg_before'][0]:.2f} -> {result['load_avg_after'][0]:.2f}"))
    print()
    print_rows(rows)
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
