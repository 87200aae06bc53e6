"""Where a sweep stands, read from its results folder: its trials ranked by the objective, each with its status
and evaluations k/n, under a line of totals (trials done, running and left, the ETA while any are left, the best
so far) and the time the latest trial.json was written. A trial marked running that no live process trains (its
seeds' run-directory locks released, or naming a dead process of this host) is shown as such, with the command
that resumes the sweep; a lock held on another host cannot be checked from here and counts as live.

The same table that `erdiff sweep` prints at its end. It reads only the results format's files (sweep.yaml and
trials/<trial>/trial.json) and the run directories' lock files, never Ray's state, and needs neither Ray nor a
connection to the cluster: point it at the results folder on the cluster's shared storage while `erdiff submit`
runs the sweep.

examples:
  erdiff status results/quickstart
  watch -n 30 erdiff status /mnt/shared/results/paper_table
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", metavar="RESULTS_DIR",
                        help="the sweep's results folder (its --out, default results/<spec name>)")


def run(args: argparse.Namespace) -> int:
    from tune.progress import read_sweep_progress, table_lines

    print("\n".join(table_lines(read_sweep_progress(args.results_dir), args.results_dir)))
    return 0
