"""Run a sweep spec (grid, Optuna or random search over erdiff configurations, K seeds each) on Ray Tune.

Each trial trains one configuration for every seed of the spec; Tune optimises the mean over seeds of each
seed's mean of its last k evaluations. Results land in --out (default results/<spec name>): sweep.yaml,
trials/<trial>/trial.json and trials/<trial>/seed_<k>/ run directories; Tune's state in <out>/ray/.

examples:
  erdiff sweep tune/configs/quickstart.yaml --dry-run     # the trials, resources and estimated hours
  erdiff sweep tune/configs/quickstart.yaml               # local Ray sized to this machine
  erdiff sweep tune/configs/quickstart.yaml --resume      # continue an interrupted sweep
  erdiff status results/quickstart                        # where it stands, from another shell or machine
  erdiff sweep tune/configs/paper_table.yaml --address auto   # an existing Ray cluster
  ray job submit --address http://HEAD:8265 --working-dir . -- python -m tune.sweep tune/configs/paper_table.yaml
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from tune.spec import FIELD_HELP

    parser.add_argument("spec", metavar="SPEC.yaml", help="sweep spec (see tune/configs/)")
    parser.add_argument("--out", metavar="DIR", help="results root (default results/<spec name>)")
    parser.add_argument("--address", help="address of a running Ray cluster, e.g. auto or HOST:6379 (default: "
                                          "RAY_ADDRESS when set, else a local Ray started for this sweep)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted sweep in --out: finished trials are kept, unfinished ones "
                             "continue from their latest checkpoints")
    parser.add_argument("--trust-tune-state", action="store_true",
                        help="DANGEROUS: resume even when Ray Tune's state in --out could have been written by "
                             "another user, or lies in an object store (s3://, gs://): resuming unpickles that "
                             "state, which runs any code it holds (README, 'Reliability')")
    parser.add_argument("--verbose", action="store_true",
                        help="print Ray's own output too: Tune's status tables and per-trial boxes, what the workers "
                             "and raylets print (by default they go to Ray's log files only)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the trials, resources and estimated GPU-/CPU-hours (a CPU sweep's step time "
                             "measured here, and its wall time on a local Ray), then exit without running")
    parser.epilog = "spec fields:\n" + "\n".join(f"  {key}: {text}" for key, text in FIELD_HELP.items())


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tune.spec import load_spec

    spec = load_spec(args.spec)
    out_dir = Path(args.out or Path("results") / spec.name).resolve()
    if args.dry_run:
        from tune.plan import describe

        print(describe(spec, str(out_dir), spec.storage_for(out_dir)))
        return 0
    from tune.sweep import run_sweep

    return run_sweep(spec, out_dir, address=args.address, resume=args.resume, trust_tune_state=args.trust_tune_state,
                     verbose=args.verbose)
