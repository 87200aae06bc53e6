"""Turn run and sweep results into the paper's tables (Markdown, LaTeX or CSV) and figures.

RESULTS are run directories or folders holding them at any depth (single `erdiff train` runs, sweep trees
`<spec>/trials/<trial>/seed_<k>/`, results copied from a cluster), in any mix.

examples:
  erdiff table results/quickstart
  erdiff table results/ --select best --format latex --out paper/table1.tex
  erdiff table results/sweep --select last-k --k 5 --label agent.num_critics --plots figures/
  erdiff table results/ablation --ablation agent.ent_coef agent.num_critics --plots figures/

Runs that are still running, died or stopped early are left out (and listed in the notes) unless
--include-incomplete is given; diverged runs (status "diverged": a loss or gradient became non-finite) are
counted in the notes and never scored, and malformed run directories are skipped with the reason in the notes;
a resumed run's repeated evaluations are counted once.
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULTS", help="run directories or folders holding them")
    parser.add_argument("--select", choices=("last", "best", "last-k"), default="last",
                        help="per-seed statistic: last evaluation, best evaluation (online model selection) "
                             "or mean of the last K evaluations (default: last)")
    parser.add_argument("--k", type=int, default=5, help="K for --select last-k (default: 5)")
    parser.add_argument("--format", choices=("md", "latex", "csv"), default="md", help="output format")
    parser.add_argument("--out", metavar="FILE", help="write the table here instead of standard output")
    parser.add_argument("--label", action="append", default=[], metavar="FIELD",
                        help="name columns by this config field (agent.num_critics) or tag (tags.trial); "
                             "repeatable. Default: the fields that differ from the task preset")
    parser.add_argument("--baseline", action="append", default=[], metavar="FILE",
                        help="extra baseline CSV (method, task, score[, std, source]); repeatable")
    parser.add_argument("--no-published", action="store_true",
                        help="leave out the published baselines shipped with erdiff")
    parser.add_argument("--include-incomplete", action="store_true",
                        help="also use runs that are still running, died or stopped early (never diverged ones)")
    parser.add_argument("--ablation", nargs=2, metavar=("ROW_FIELD", "COLUMN_FIELD"),
                        help="cross two config fields per task and averaged over tasks instead of the D4RL table")
    parser.add_argument("--metric", choices=("normalized", "return"), default="normalized",
                        help="score: D4RL normalized score (default) or undiscounted return")
    parser.add_argument("--plots", metavar="DIR",
                        help="also write learning curves, aggregate IQM / performance profiles, the probability "
                             "of improvement of the best configuration over the others (and heatmaps with "
                             "--ablation) as PNG and PDF into DIR")
    parser.add_argument("--stale-after", type=float, default=2.0, metavar="HOURS",
                        help="a run still marked running whose files are older than this is taken as dead "
                             "(default: 2)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from analysis import render, tables
    from analysis.collect import CollectError, collect
    from analysis.scores import METRICS

    if args.ablation and (args.label or args.baseline):
        raise CollectError("--label and --baseline apply to the D4RL table, not to --ablation")
    collection = collect(args.results, stale_after=args.stale_after * 3600.0)
    if args.ablation:
        table = tables.make_ablation_table(collection, *args.ablation, select=args.select, k=args.k,
                                           include_incomplete=args.include_incomplete, metric=args.metric)
    else:
        table = tables.make_table(collection, select=args.select, k=args.k, label_fields=tuple(args.label),
                                  baseline_paths=args.baseline, published=not args.no_published,
                                  include_incomplete=args.include_incomplete, metric=args.metric)
    text = render.render(table, args.format)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.format == "csv" and table.notes:
        print("notes:\n" + "\n".join(f"- {note}" for note in table.notes), file=sys.stderr)

    if args.plots:
        from analysis import plots

        written = plots.learning_curves(collection, table, METRICS[args.metric], args.plots)
        if args.ablation:
            written += plots.ablation_heatmaps(table, args.plots)
        written += plots.aggregate_metrics(table, args.plots)[1]
        print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0
