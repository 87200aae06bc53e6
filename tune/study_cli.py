"""Run a study — a grid sweep spec whose searched fields are the question — and write its page.

The sweep runs exactly as `erdiff sweep SPEC --out DIR` (tune.sweep), with where and when it ran recorded in
DIR/study.json; then the page is rendered from the run directories (analysis.study): per configuration, per
task and over all tasks, the IQM of the normalized score with its 95% stratified-bootstrap interval, figures
(a heatmap for two fields, IQM against the field for one), and what the data say, a difference stated only
where the intervals do not overlap. The numbers also go to PAGE with .csv for .md.

examples:
  erdiff study tune/configs/study_alpha_beta.yaml --out runs/study_alpha_beta       # docs/study_alpha_beta.md
  erdiff study tune/configs/study_ensemble_size.yaml --out runs/study_M --resume    # continue, then the page
  erdiff study tune/configs/study_alpha_beta.yaml --out runs/study_alpha_beta --render-only
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC.yaml", help="a grid sweep spec (tune/configs/study_*.yaml)")
    parser.add_argument("--out", metavar="DIR", help="results root (default results/<spec name>)")
    parser.add_argument("--page", metavar="FILE.md", help="the page to write (default docs/<spec name>.md)")
    parser.add_argument("--img-dir", metavar="DIR", default="docs/img",
                        help="where the figures go, as PNG and PDF (default docs/img)")
    parser.add_argument("--render-only", action="store_true",
                        help="do not run the sweep: write the page from the runs already in --out")
    parser.add_argument("--address", help="a running Ray cluster (as for erdiff sweep; default: a local Ray)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted sweep in --out first")


def run(args: argparse.Namespace) -> int:
    import sys
    import time
    from pathlib import Path

    from tune.spec import SpecError, load_spec

    spec = load_spec(args.spec)
    if spec.search.mode != "grid":
        raise SpecError(f"{args.spec}: 'search.mode' must be grid for a study (its page compares every "
                        f"configuration of the grid), got {spec.search.mode!r}")
    out_dir = Path(args.out or Path("results") / spec.name).resolve()
    page = Path(args.page or Path("docs") / f"{spec.name}.md")
    exit_code = 0
    if not args.render_only:
        from analysis.study import finish_study_info, start_study_info
        from tune.sweep import run_sweep

        info = start_study_info(out_dir, args.spec, resume=args.resume)
        start = time.monotonic()
        exit_code = run_sweep(spec, out_dir, address=args.address, resume=args.resume)
        finish_study_info(out_dir, info, time.monotonic() - start, exit_code)

    from analysis.study import write_study_page

    written, frame = write_study_page(spec, args.spec, out_dir, page, args.img_dir)
    print(f"wrote {written} and {written.with_suffix('.csv')} ({len(frame)} rows), figures in {args.img_dir}",
          file=sys.stderr)
    return exit_code
