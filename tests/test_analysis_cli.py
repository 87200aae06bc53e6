"""`erdiff table`: the analysis.cli module contract and its outputs."""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_analysis_support import write_run

from analysis import cli
from analysis.collect import CollectError

ROOT = Path(__file__).resolve().parents[1]


def run_table(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="erdiff table")
    cli.configure(parser)
    return cli.run(parser.parse_args(argv))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    for seed in range(2):
        write_run(tmp_path / "res" / f"seed_{seed}", "hopper-medium-v2", seed, [20.0 + seed, 40.0 + seed])
    write_run(tmp_path / "res" / "dead", "hopper-medium-v2", 5, [1.0], status="running", age_s=5 * 3600)
    return tmp_path / "res"


def test_importing_the_cli_module_is_cheap():
    code = "import sys, analysis.cli; print(sorted(m for m in ('pandas', 'matplotlib') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_csv_to_file_with_notes_on_stderr(results, tmp_path, capsys):
    out = tmp_path / "out" / "table.csv"
    assert run_table([str(results), "--select", "best", "--format", "csv", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    ours = next(r for r in rows if r["column"] == "preset")
    assert (float(ours["mean"]), int(ours["seeds"])) == (40.5, 2)
    assert "excluded res/dead" in capsys.readouterr().err


def test_markdown_to_stdout_and_plots(results, tmp_path, capsys):
    assert run_table([str(results), "--select", "last-k", "--k", "2", "--no-published",
                      "--plots", str(tmp_path / "fig")]) == 0
    captured = capsys.readouterr()
    assert "| hopper-medium-v2 | 30.5 ± 0.7 (2) |" in captured.out  # (20+40)/2 and (21+41)/2
    assert "mean of the last 2 evaluations" in captured.out and "IQL" not in captured.out
    for name in ("learning_curves.png", "aggregate.png", "performance_profile.pdf", "aggregate.csv"):
        assert (tmp_path / "fig" / name).is_file()


def test_include_incomplete_flag(results, capsys):
    run_table([str(results), "--include-incomplete", "--no-published"])
    assert "| hopper-medium-v2 | 27.3 ± 22.8 (3) |" in capsys.readouterr().out  # (40 + 41 + 1) / 3


def test_malformed_and_diverged_runs_are_notes_not_tracebacks(results, capsys):
    (write_run(results / "list", "hopper-medium-v2", 6, [1.0]) / "summary.json").write_text("[]")
    write_run(results / "nan", "hopper-medium-v2", 7, [500.0, 600.0], status="diverged",
              divergence={"step": 200, "epoch": 2, "quantity": "critic_loss"})
    assert run_table([str(results), "--include-incomplete", "--no-published"]) == 0
    out = capsys.readouterr().out
    assert "| hopper-medium-v2 | 27.3 ± 22.8 (3) |" in out  # the two good seeds and the dead one, as above
    assert "skipped 1 malformed run(s): res/list: " in out
    assert "summary.json: holds [], expected a JSON object" in out
    assert "1 diverged run(s) (non-finite critic_loss), never scored: res/nan (step 200)" in out


def test_plots_of_a_table_without_scores_are_skipped(tmp_path, capsys):
    write_run(tmp_path / "res" / "a", "hopper-medium-v2", 0, [1.0], status="diverged",
              divergence={"step": 100, "epoch": 1, "quantity": "critic_loss"})
    for extra in ([], ["--ablation", "agent.T", "agent.num_critics"]):
        assert run_table([str(tmp_path / "res"), "--plots", str(tmp_path / "fig"), *extra]) == 0
        assert "1 diverged run(s) (non-finite critic_loss)" in capsys.readouterr().out
    assert not (tmp_path / "fig").exists()


def test_ablation_rejects_label(results):
    with pytest.raises(CollectError, match="--label and --baseline apply to the D4RL table"):
        run_table([str(results), "--ablation", "agent.T", "agent.num_critics", "--label", "agent.T"])


def test_through_the_erdiff_command(results):
    """The same table through `python -m erdiff.cli table` (needs every subcommand module to import)."""
    from erdiff import cli as erdiff_cli

    try:
        erdiff_cli.build_parser()
    except ModuleNotFoundError as err:
        pytest.skip(f"the erdiff command cannot load {err.name} yet")
    done = subprocess.run([sys.executable, "-m", "erdiff.cli", "table", str(results), "--format", "latex"],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert r"\begin{tabular}" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "erdiff.cli", "table", str(results / "nope")],
                         cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert bad.returncode == 2 and "does not exist" in bad.stderr
