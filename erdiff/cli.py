"""`erdiff`: one command for training, datasets, sweeps, cluster jobs and tables.

Each subcommand lives in its own module with ``configure(parser)`` (argument definitions only, cheap to
import) and ``run(args) -> int``. Heavy dependencies (torch, Ray, pandas, gymnasium) are imported inside
``run``, so ``erdiff --help`` and ``erdiff table`` never start Ray.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from erdiff.errors import ErdiffError

# name -> (module, one-line help)
SUBCOMMANDS = {
    "train": ("erdiff.train_cli", "train one seed of one configuration into a run directory"),
    "evaluate": ("erdiff.evaluate_cli", "evaluate a trained run's policy on its task, optionally filming an episode"),
    "dataset": ("erdiff.data.cli", "make, inspect or check D4RL-format datasets"),
    "sweep": ("tune.cli", "run a sweep spec (grid / Optuna / random) on local or cluster Ray"),
    "status": ("tune.status_cli", "where a sweep stands, from its results folder (also while it runs elsewhere)"),
    "study": ("tune.study_cli", "run a study sweep, then its page: IQM with 95%% CIs per configuration, figures"),
    "submit": ("cluster.submit", "submit a sweep spec to a Ray cluster as a Ray job"),
    "jobs": ("cluster.jobs", "list, follow, inspect or stop Ray jobs on a cluster"),
    "table": ("analysis.cli", "turn run and sweep results into paper tables (Markdown, LaTeX, CSV)"),
}

EPILOG = """\
typical day:
  erdiff dataset make pendulum-medium --out data/pendulum-medium.hdf5
  erdiff train --task pendulum-medium --train.epochs 5 --out runs/pendulum
  erdiff evaluate runs/pendulum --episodes 10
  erdiff sweep tune/configs/quickstart.yaml
  erdiff table results/quickstart
Run `erdiff COMMAND --help` for each command's options.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="erdiff",
        description="Entropy-regularized diffusion policy with Q-ensembles for offline RL "
                    "(Zhang et al., NeurIPS 2024): training, Ray sweeps and paper tables.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            # Only a missing *optional dependency* hides a command; a missing erdiff module is a bug.
            if err.name and err.name.split(".")[0] in {"erdiff", "tune", "cluster", "analysis"}:
                raise
            continue
        # No abbreviations: config overrides pass through as unknown options, and `--seed N` must not be read
        # as an abbreviation of `erdiff train --seeds`.
        sub = commands.add_parser(name, help=help_text, description=module.__doc__, allow_abbrev=False,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.configure(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `erdiff status DIR | head`: the reader has what it wanted
        # Python would report the failed flush of stdout at exit: point it at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except ErdiffError as err:
        print(f"erdiff {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the machine, not the input: a disk, a permission, a path (still one line)
        where = f"{err.filename}: " if err.filename else ""
        print(f"erdiff {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
