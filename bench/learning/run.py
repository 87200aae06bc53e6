"""CPU learning benchmark: the method against its ablations and behaviour cloning on two local datasets.

    python bench/learning/run.py --out /tmp/erdiff-learning           # train everything, then the tables
    python bench/learning/run.py --out /tmp/erdiff-learning --seeds 5  # more seeds (finished runs are kept)

Tasks (generated on this machine, see erdiff.data.generate): ``pendulum-medium-replay`` (dense reward, a
mixed-quality replay: 40% random, 40% medium, 20% good episodes) and ``mountaincar-sparse`` (reward only at
the goal, 15% successful episodes). Variants (:data:`VARIANTS`), all on each task's preset otherwise:

* ``method``: α = 0.01, M critics read by their LCB (β = 4);
* ``alpha=0``: the same without the entropy term;
* ``M=2,min``: α = 0.01 with two critics read by their minimum (the actor's view; evaluation scores candidates
  by the LCB whatever the pessimism, as the official code does);
* ``BC``: η = α = 0, and one candidate action at evaluation, so the Q-ensemble plays no part: the diffusion
  policy alone clones the data.

The budget (:data:`BUDGET`) is far below the paper's (1M steps, M = 64, 256-unit networks) so that the whole
benchmark fits well under an hour on 2 CPU cores; bench/learning/README.md gives the reasons. Runs go to
``OUT/<task>/<variant>/seed_<k>`` (an interrupted benchmark continues where it stopped); the tables (mean ±
std over seeds of the normalized score, with the registry's reference returns) are built by
:func:`analysis.tables.make_table` with the variant as column and written to ``OUT/results.md`` together
with the commit, the machine and the wall time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from analysis import render
from analysis.tables import make_table
from erdiff.config import make_config, merge
from erdiff.data.d4rl import read_d4rl_hdf5
from erdiff.errors import ErdiffError
from erdiff.results import read_summary
from erdiff.steptime import cpu_model
from erdiff.tasks import get_task, local_dataset_path

REPO = Path(__file__).resolve().parents[2]
TASKS = ("pendulum-medium-replay", "mountaincar-sparse")
VARIANTS = {
    "method": {"agent": {"ent_coef": 0.01, "num_critics": 4, "pessimism": "lcb"}},
    "alpha=0": {"agent": {"ent_coef": 0.0, "num_critics": 4, "pessimism": "lcb"}},
    "M=2,min": {"agent": {"ent_coef": 0.01, "num_critics": 2, "pessimism": "min"}},
    "BC": {"agent": {"ent_coef": 0.0, "eta": 0.0, "num_critics": 2, "pessimism": "min", "eval_candidates": 1}},
}
"""Variant name -> its config on top of the task preset and :data:`BUDGET`, in the order they start."""
BUDGET = {
    "agent": {"hidden_dim": 64, "loss_type": "NML"},
    "train": {"epochs": 32, "steps_per_epoch": 500, "eval_every": 4, "eval_episodes": 10, "last_k": 3,
              "num_threads": 1},
}
"""Shared by every run: 16,000 gradient steps, 64-unit networks, NML loss, eight evaluations of 10 episodes."""
LAST_K = BUDGET["train"]["last_k"]


def run_config(task: str, variant: str, seed: int):
    data = merge(merge(BUDGET, VARIANTS[variant]), {"tags": {"bench": "learning", "variant": variant}})
    return make_config(task, data, overrides={"seed": str(seed)}, source=f"bench/learning {variant}")


def train_one(task: str, variant: str, seed: int, out: str) -> tuple[str, float]:
    """Train (or continue) one run in a worker process; returns its directory and the seconds it took."""
    from erdiff.train import train

    run_dir = Path(out) / task / variant / f"seed_{seed}"
    start = time.perf_counter()
    train(run_config(task, variant, seed), run_dir, resume=True, progress=False)
    return str(run_dir), time.perf_counter() - start


def pending_runs(out: Path, seeds: int) -> list[tuple[str, str, int]]:
    """Every (task, variant, seed) without a completed run directory, the costly variants first."""
    runs = []
    for variant in VARIANTS:
        for task in TASKS:
            for seed in range(seeds):
                summary = read_summary(out / task / variant / f"seed_{seed}")
                if summary is None or summary["status"] != "completed":
                    runs.append((task, variant, seed))
    return runs


def dataset_scores(task: str) -> tuple[float, float]:
    """Mean and std of the normalized score of the dataset's complete episodes (the behaviour's level)."""
    rows = read_d4rl_hdf5(local_dataset_path(task))
    ends = np.flatnonzero(rows["terminals"] | rows["timeouts"])
    returns = np.diff(np.cumsum(rows["rewards"], dtype=np.float64)[ends], prepend=0.0)[:-1]  # last: cut off
    info = get_task(task)
    scores = 100 * (returns - info.ref_min) / (info.ref_max - info.ref_min)
    return float(scores.mean()), float(scores.std())


def source_line() -> str:
    """The commit the runs are trained from (and whether the learner or this benchmark has local changes)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "erdiff", "bench/learning/run.py"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    return f"commit {commit}{' with uncommitted changes' if dirty else ''}"


def load_line() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def report(out: Path, source: str, wall_s: float, load_at_start: str) -> str:
    """The benchmark's Markdown: setup, one table per statistic, the datasets' own levels."""
    lines = ["# Learning benchmark results", "",
             f"Trained from {source}; {cpu_model()}, {os.cpu_count()} cores.",
             f"Wall time {wall_s / 60:.1f} min; load average (1, 5, 15 min) {load_at_start} at the start, "
             f"{load_line()} at the end.", "", f"Budget: {BUDGET}.", "", f"Variants: {VARIANTS}.", ""]
    for select in ("last-k", "best"):
        table = make_table(out, select=select, k=LAST_K, label_fields=("tags.variant",), published=False)
        lines.append(render.to_markdown(table))
    lines.append("Dataset episodes (the behaviour), normalized score mean ± std over episodes:\n")
    lines += [f"- {task}: {mean:.1f} ± {std:.1f}" for task in TASKS for mean, std in [dataset_scores(task)]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of the run directories and results.md")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per task and variant (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="runs trained at once, one CPU thread each")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.workers < 1:
        parser.error("--seeds and --workers must be at least 1")
    start, source, load_at_start = time.perf_counter(), source_line(), load_line()
    try:
        for task in TASKS:
            local_dataset_path(task)  # generate once here, not in every worker
        runs = pending_runs(args.out, args.seeds)
        print(f"{len(runs)} run(s) to train with {args.workers} worker(s)", flush=True)
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            futures = [pool.submit(train_one, *run, str(args.out)) for run in runs]
            for future in futures:
                run_dir, seconds = future.result()
                print(f"done {run_dir} in {seconds:.0f} s", flush=True)
        text = report(args.out, source, time.perf_counter() - start, load_at_start)
    except ErdiffError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    (args.out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
