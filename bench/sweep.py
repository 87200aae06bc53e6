"""Overhead of a sweep trial over the bare training loop, for the sweep's trainables, measured side by side.

    python bench/sweep.py --spec tune/configs/quickstart.yaml --repeats 3 --json out.json
    python bench/sweep.py --task toy --epochs 4 --steps-per-epoch 50 --eval-every 2 --seeds 1 --json out.json

The spec is ``--spec`` FILE (its trials, seeds and config) or a one-trial spec built from the flags, run one
trial at a time (``concurrency: 1``, no scheduler), once per trainable (``--trainables``, default ``function``
and ``packed``). Each repeat runs, for each trainable in turn, a pair:

* bare: every trial's seeds trained directly in this process, from the very configs the sweep's seeds get
  (``spec.seed_config``): :func:`erdiff.train.train` for each seed in turn, or for ``packed``
  :func:`erdiff.train.train_seeds` of all of them (what a packed trial trains); after one untimed warm-up run;
* Ray's start and stop alone (the ``connect`` call a sweep makes), then the sweep by
  :func:`tune.sweep.run_sweep`, which starts and stops its own local Ray (``address="local"``, in a private
  ``RAY_TMPDIR``, so other Ray instances on the machine are untouched).

Three overheads over the bare seconds, as percentages, the median over the repeats: the *trial* overhead, from
Tune's own clock of each trial (``time_total_s`` of its last result: the trainable's start in its worker to
its last report, so restore, set-up, evaluation periods, snapshots and reports, but neither Ray's start nor the
trial actor's start and imports); the sweep's wall time less Ray's start and stop (adds Tune's own work and the
trial actors); and the sweep all in. The metrics of every seed must equal the bare runs' bitwise on CPU
(``matches_bare``; ``loss_max_rel_diff`` is the largest relative difference of a loss in any record).
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import torch
import yaml
from report import commit, print_rows, write_json  # bench/report.py (this script's folder is on sys.path)

from erdiff import results
from erdiff.errors import ErdiffError
from erdiff.steptime import cpu_model
from erdiff.tasks import get_task, load_task_dataset
from erdiff.train import train, train_seeds
from tune.snapshots import seed_dir_name
from tune.spec import SweepSpec, parse_spec
from tune.sweep import connect, run_sweep

TRAINABLES = ("train", "function", "packed")
LOSS_KEYS = ("critic_loss", "bc_loss", "actor_loss")


def bench_spec(args: argparse.Namespace, trainable: str) -> SweepSpec:
    """The benchmark's spec: ``--spec`` FILE (its trials, seeds and config) or a one-trial spec from the flags;
    either way one trial at a time, so that the trials run as the bare loop runs them, in turn."""
    if args.spec:
        data = yaml.safe_load(Path(args.spec).read_text())
        return parse_spec({**data, "name": f"bench-{trainable}", "trainable": trainable, "concurrency": 1,
                           "scheduler": None}, source=args.spec)
    return parse_spec({
        "name": f"bench-{trainable}", "tasks": [args.task], "seeds": args.seeds, "trainable": trainable,
        "config": {"agent": {"num_critics": args.critics, "hidden_dim": args.hidden},
                   "train": {"epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
                             "eval_every": args.eval_every, "eval_episodes": args.eval_episodes}},
        "objective": {"last_k": 1}, "resources": {"cpu": args.cpu}, "concurrency": 1,
    }, source="bench/sweep.py")


def run_bare(spec: SweepSpec, out_dir: Path) -> dict[str, float]:
    """Seconds per trial to train the trial's seeds directly: with ``train`` one after another, or for
    ``trainable: packed`` together with ``train_seeds`` (what such a trial trains)."""
    seconds = {}
    for plan in spec.trials():
        configs = [spec.seed_config(plan.task, plan.params, seed, plan.name) for seed in spec.seeds]
        run_dirs = [out_dir / plan.name / seed_dir_name(seed) for seed in spec.seeds]
        start = time.perf_counter()
        if spec.trainable == "packed":
            train_seeds(configs, run_dirs, progress=False)
        else:
            for config, run_dir in zip(configs, run_dirs):
                train(config, run_dir, progress=False)
        seconds[plan.name] = time.perf_counter() - start
    return seconds


def learned_metrics(run_dir: Path) -> list[dict]:
    """The run's metric records without wall times: equal for equal training on CPU."""
    return [{key: value for key, value in record.items() if key != "time_s"}
            for record in results.read_metrics(run_dir)]


def trial_seconds(out: Path, spec: SweepSpec, trial: str) -> float:
    """Tune's own clock of the trial (``time_total_s`` of its last result): from the trainable's start in its
    worker to its last report, so neither Ray's start nor the trial actor's start and imports."""
    lines = (out / "ray" / spec.name / trial / "result.json").read_text().splitlines()
    return json.loads(lines[-1])["time_total_s"]


def time_ray_start_stop() -> tuple[float, float]:
    """Seconds to start a local Ray the way a sweep does, and to shut it down."""
    start = time.perf_counter()
    connect(None)
    started = time.perf_counter()
    ray.shutdown()
    return started - start, time.perf_counter() - started


def bench_pair(spec: SweepSpec, work_dir: Path, repeat: int) -> dict:
    """One bare run of the spec's trials, then Ray's start and stop alone, then the sweep: side by side, so that
    a load change hits both. The sweep's metrics are compared with the bare runs'."""
    bare_dir = work_dir / f"bare-{spec.trainable}-{repeat}"
    bare = run_bare(spec, bare_dir)
    ray_start_s, ray_stop_s = time_ray_start_stop()
    out = work_dir / f"sweep-{spec.trainable}-{repeat}"
    start = time.perf_counter()
    status = run_sweep(spec, out)
    sweep_s = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"the {spec.trainable} sweep failed (exit status {status}); its results are in {out}")
    trials = {plan.name: trial_seconds(out, spec, plan.name) for plan in spec.trials()}
    matches, max_rel_diff = True, 0.0
    for plan in spec.trials():
        for seed in spec.seeds:
            swept = learned_metrics(out / "trials" / plan.name / seed_dir_name(seed))
            alone = learned_metrics(bare_dir / plan.name / seed_dir_name(seed))
            matches &= swept == alone
            max_rel_diff = max([max_rel_diff] + [abs(a[key] - b[key]) / max(abs(b[key]), 1e-12)
                                                 for a, b in zip(swept, alone) for key in LOSS_KEYS])
    bare_s, trial_s = sum(bare.values()), sum(trials.values())
    return {
        "bare_s": bare_s, "bare_trial_s": bare, "sweep_s": sweep_s, "trial_s": trials,
        "ray_start_s": ray_start_s, "ray_stop_s": ray_stop_s,
        "trial_overhead_pct": 100 * (trial_s / bare_s - 1),
        "sweep_overhead_without_ray_start_stop_pct": 100 * ((sweep_s - ray_start_s - ray_stop_s) / bare_s - 1),
        "sweep_overhead_pct": 100 * (sweep_s / bare_s - 1),
        "matches_bare": matches, "loss_max_rel_diff": max_rel_diff,
    }


def run(args: argparse.Namespace, work_dir: Path) -> dict:
    specs = {trainable: bench_spec(args, trainable) for trainable in args.trainables}
    reference = next(iter(specs.values()))
    for task in reference.tasks:
        get_task(task)  # an unknown task fails here, before anything is timed
        load_task_dataset(task)  # a local task's dataset is generated once, off the clock
    load_before = os.getloadavg()
    run_bare(reference, work_dir / "bare-warmup")  # lazy imports and first calls, off the clock
    pairs = {trainable: [] for trainable in specs}
    for repeat in range(args.repeats):  # alternating: each trainable's pairs are spread over the whole run
        for trainable, spec in specs.items():
            pairs[trainable].append(bench_pair(spec, work_dir, repeat))
    sweeps = {}
    for trainable, runs in pairs.items():
        summary = {key: float(np.median([run[key] for run in runs]))
                   for key in ("trial_overhead_pct", "sweep_overhead_without_ray_start_stop_pct",
                               "sweep_overhead_pct", "bare_s", "sweep_s", "ray_start_s", "ray_stop_s")}
        summary.update(matches_bare=all(run["matches_bare"] for run in runs),
                       loss_max_rel_diff=max(run["loss_max_rel_diff"] for run in runs), runs=runs)
        sweeps[trainable] = summary
    return {
        "sweeps": sweeps, "spec": args.spec, "tasks": list(reference.tasks), "seeds": len(reference.seeds),
        "trials": len(reference.trials()), "repeats": args.repeats, "cpus": os.cpu_count(),
        "load_avg_before": list(load_before), "load_avg_after": list(os.getloadavg()),
        "ray": ray.__version__, "torch": torch.__version__, "machine": cpu_model(),
        "commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", metavar="FILE", help="a sweep spec (e.g. tune/configs/quickstart.yaml): its trials, "
                        "seeds and config, one trial at a time; the flags below then do not apply")
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
    parser.add_argument("--trainables", nargs="+", choices=TRAINABLES, default=["function", "packed"])
    parser.add_argument("--repeats", type=int, default=1,
                        help="bare/sweep pairs of each trainable, alternating; medians are reported")
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

    rows = []
    for trainable, sweep in result["sweeps"].items():
        bare = "train_seeds (packed)" if trainable == "packed" else "train, each seed in turn"
        rows += [(f"{trainable}: bare {bare}", f"{sweep['bare_s']:.2f} s"),
                 (f"{trainable}: sweep", f"{sweep['sweep_s']:.2f} s (local Ray start / stop alone: "
                                         f"{sweep['ray_start_s']:.2f} / {sweep['ray_stop_s']:.2f} s)"),
                 (f"{trainable}: trial overhead (Tune's trial clock)", f"{sweep['trial_overhead_pct']:+.1f} %"),
                 (f"{trainable}: sweep overhead without Ray start/stop",
                  f"{sweep['sweep_overhead_without_ray_start_stop_pct']:+.1f} %"),
                 (f"{trainable}: sweep overhead, all in", f"{sweep['sweep_overhead_pct']:+.1f} %"),
                 (f"{trainable}: metrics equal to bare",
                  f"{sweep['matches_bare']} (losses: max relative difference {sweep['loss_max_rel_diff']:.1e})")]
    rows.append(("config", f"{args.spec or args.task}: {result['trials']} trial(s) x {result['seeds']} seed(s), "
                           f"{args.repeats} pair(s) each, medians; load {result['load_avg_before'][0]:.2f} -> "
                           f"{result['load_avg_after'][0]:.2f}"))
    print()
    print_rows(rows)
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
