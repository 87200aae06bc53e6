"""The toy Figure 1: figure and table from tiny real runs, the shipped specs, the exact references and errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from analysis import toy_figure
from analysis.collect import CollectError
from erdiff.config import make_config
from erdiff.envs.toy import reward
from erdiff.train import train
from tune.spec import load_spec

TINY = {"train.epochs": "2", "train.steps_per_epoch": "3", "train.eval_every": "1", "train.eval_episodes": "4",
        "agent.hidden_dim": "16"}
TINY_CRITICS = {"diffusion-ql": 2, "entropy": 2, "erdiff": 3}
SEEDS = (0, 1)


def variant_overrides(variant: toy_figure.Variant) -> dict:
    return {"agent.ent_coef": str(variant.ent_coef), "agent.pessimism": variant.pessimism,
            "agent.num_critics": str(TINY_CRITICS[variant.name])}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """Two seeds of each variant, two epochs each, trained for real on the generated toy dataset."""
    root = tmp_path_factory.mktemp("toy") / "results"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ERDIFF_DATA_DIR", str(root.parent / "data"))
        for variant in toy_figure.VARIANTS:
            for seed in SEEDS:
                config = make_config("toy", overrides={**TINY, **variant_overrides(variant), "seed": str(seed)})
                train(config, root / variant.name / f"seed_{seed}", progress=False)
    return root


@pytest.fixture
def data_dir(results, monkeypatch):
    monkeypatch.setenv("ERDIFF_DATA_DIR", str(results.parent / "data"))


def metric_values(run_dir: Path, key: str) -> list[float]:
    return [json.loads(line)[key] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def expected_cell(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def test_figure_and_table_from_real_runs(results, data_dir, tmp_path):
    out = tmp_path / "figure"
    assert toy_figure.main([str(results), "--out", str(out), "--last-k", "2"]) == 0

    image = matplotlib.image.imread(out / "toy_figure1.png")
    assert image.shape[0] > 300 and image.shape[1] > 900
    non_white = (image[..., :3] < 0.9).any(axis=-1).mean()
    assert non_white > 0.05  # axes, curves, histogram: far from a blank canvas
    assert (out / "toy_figure1.pdf").stat().st_size > 0

    table = (out / "toy_table.md").read_text()
    for variant in toy_figure.VARIANTS:
        runs = [results / variant.name / f"seed_{seed}" for seed in SEEDS]
        returns = [metric_values(run, "return_mean") for run in runs]
        scores = [metric_values(run, "normalized_score_mean") for run in runs]
        expected = [variant.label, str(TINY_CRITICS[variant.name]), variant.pessimism, str(variant.ent_coef),
                    str(len(SEEDS)),
                    expected_cell([r[-1] for r in returns]), expected_cell([np.mean(r[-2:]) for r in returns]),
                    expected_cell([s[-1] for s in scores]), expected_cell([np.mean(s[-2:]) for s in scores])]
        assert "| " + " | ".join(expected) + " |" in table


def test_q_curves_of_the_method(results):
    actions = np.linspace(-1, 1, 11)
    run = next(r for r in toy_figure.variant_runs(results)[0]["erdiff"] if r.seed == 0)
    assert run.path.resolve() == (results / "erdiff" / "seed_0").resolve()
    mean, lcb = toy_figure.q_curves(run.path, actions)
    assert mean.shape == lcb.shape == (11,)
    assert np.isfinite(mean).all() and (lcb < mean).all()  # beta = 4 > 0 and three distinct members


def test_shipped_specs_make_the_three_variants():
    found = {}
    for path in toy_figure.SPECS:
        spec = load_spec(path)
        assert spec.seeds == (0, 1, 2, 3, 4) and spec.tasks == ("toy",)
        for plan in spec.trials():
            config = spec.seed_config(plan.task, plan.params, 0, plan.name)
            assert config.train.epochs == 500 and config.train.compile == "off"
            flat = {"task": config.task, **{f"agent.{k}": v for k, v in config.to_dict()["agent"].items()}}
            names = [v.name for v in toy_figure.VARIANTS if v.matches(flat)]
            assert len(names) == 1
            found[names[0]] = config
    assert set(found) == {v.name for v in toy_figure.VARIANTS}
    # Apart from the three defining fields, the variants are trained alike.
    shared = [{k: v for k, v in c.to_dict()["agent"].items() if k not in ("ent_coef", "num_critics", "pessimism")}
              for c in found.values()]
    assert all(s == shared[0] for s in shared)
    assert len({json.dumps(c.to_dict()["train"], sort_keys=True) for c in found.values()}) == 1


def test_optimal_q_and_episode_returns_by_hand():
    # First action 1 lands on r(1); the best second action (0.5) reaches the high peak at 1.5.
    q = toy_figure.optimal_q(np.array([1.0, -1.0]), discount=0.9)
    assert q[0] == pytest.approx(reward(1.0) + 0.9 * reward(1.5), abs=1e-6)
    assert q[1] == pytest.approx(reward(-1.0) + 0.9 * reward(-1.0), abs=1e-3)  # stay at the low peak
    rows = {"rewards": np.array([1.0, 2.0, 0.5, 0.25, 4.0]),
            "terminals": np.array([False, True, False, True, False])}
    assert toy_figure.episode_returns(rows).tolist() == [3.0, 0.75]  # the cut-off last episode is dropped


def test_missing_variant_is_one_clear_error(results, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(results / "diffusion-ql", partial / "diffusion-ql")
    with pytest.raises(toy_figure.ToyFigureError, match=r"no completed toy run of \+ entropy .*; \+ entropy \+ Q"):
        toy_figure.variant_runs(partial)


def test_incomplete_and_foreign_runs_are_named_in_notes(results, data_dir, tmp_path):
    root = tmp_path / "mixed"
    shutil.copytree(results, root)
    summary = root / "entropy" / "seed_1" / "summary.json"
    summary.write_text(summary.read_text().replace('"completed"', '"stopped"'))
    config = make_config("toy", overrides={**TINY, "agent.num_critics": "2", "agent.ent_coef": "0.1"})
    train(config, root / "other" / "seed_0", progress=False)
    shutil.copytree(root / "erdiff" / "seed_0", root / "erdiff_copy" / "seed_0")
    # A sweep's Ray storage holds copies of its runs: skipped, not counted as more seeds.
    shutil.copytree(root / "erdiff" / "seed_1", root / "ray" / "train" / "t" / "checkpoint_2026-01-01" / "seed_1")
    groups, notes = toy_figure.variant_runs(root)
    assert len(groups["entropy"]) == 1 and sorted(run.seed for run in groups["erdiff"]) == [0, 1]
    assert any("excluded mixed/entropy/seed_1" in note for note in notes)
    assert any("ignored mixed/other/seed_0: not a toy run" in note for note in notes)
    assert any("ignored mixed/erdiff_copy/seed_0: seed 0 of this variant is already used" in n for n in notes)
    assert not any("checkpoint_" in note for note in notes)


def test_command_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        toy_figure.main([])
    assert exit_info.value.code == 2
    assert "give a RESULTS folder, or --run" in capsys.readouterr().err
    assert toy_figure.main([str(tmp_path / "absent")]) == 2
    assert f"error: results directory {tmp_path / 'absent'} does not exist" in capsys.readouterr().err
    with pytest.raises(CollectError, match="does not exist"):
        toy_figure.variant_runs(tmp_path / "absent")
    with pytest.raises(SystemExit):
        toy_figure.main([str(tmp_path), "--last-k", "0"])
    assert "--last-k must be at least 1, got 0" in capsys.readouterr().err


def test_a_failing_sweep_stops_the_run(tmp_path, monkeypatch):
    # The first spec's results folder already holds that sweep: `erdiff sweep` refuses, and so does --run.
    name = load_spec(toy_figure.SPECS[0]).name
    (tmp_path / name).mkdir()
    (tmp_path / name / "sweep.yaml").write_text("name: earlier\n")
    with pytest.raises(toy_figure.ToyFigureError, match=r"toy_figure1.yaml exited with status 2"):
        toy_figure.run_sweeps(tmp_path)
