"""Tables from results produced by real (tiny) training runs of erdiff.train, including a run stopped early
and then resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis import plots, render
from analysis.tables import make_table

train_module = pytest.importorskip("erdiff.train")
pytest.importorskip("erdiff.tasks")

from erdiff.config import make_config  # noqa: E402

TINY = {"train.epochs": "2", "train.steps_per_epoch": "5", "train.eval_every": "1",
        "agent.num_critics": "2", "agent.hidden_dim": "16"}


def tiny_run(root: Path, name: str, seed: int, extra: dict | None = None, **kwargs) -> dict:
    config = make_config("toy", overrides={**TINY, "seed": str(seed), **(extra or {})})
    return train_module.train(config, root / name / f"seed_{seed}", progress=False, **kwargs)


def last_scores(root: Path, name: str) -> list[float]:
    """Each completed seed's last normalized score, read straight from its summary.json."""
    summaries = [json.loads(p.read_text()) for p in sorted((root / name).glob("seed_*/summary.json"))]
    return [s["normalized_score"]["last"] for s in summaries if s["status"] == "completed"]


def test_table_from_real_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("ERDIFF_DATA_DIR", str(tmp_path / "data"))
    root = tmp_path / "results"
    for seed in (0, 1):
        tiny_run(root, "base", seed)
    tiny_run(root, "no_entropy", 0, {"agent.ent_coef": "0.0"})
    stopped = tiny_run(root, "base", 2, on_evaluation=lambda record, run_dir: True)
    assert stopped["status"] == "stopped"

    table = make_table(root, select="last")
    # Columns are named by what tells them apart; the settings they share are stated once in the notes.
    base_label = "agent.ent_coef=0.01"
    assert set(table.columns) == {base_label, "agent.ent_coef=0.0"}
    assert ("every column also has agent.hidden_dim=16, agent.num_critics=2, train.epochs=2, train.eval_every=1, "
            "train.steps_per_epoch=5") in table.notes
    other = dict(next(s for s in table.sections if s.title == "Other").rows)
    base = other["toy"][base_label]
    expected = last_scores(root, "base")
    assert base.seeds == 2 and base.mean == pytest.approx(sum(expected) / 2)
    assert any("excluded results/base/seed_2: stopped before its last epoch" in n for n in table.notes)

    # Resume the stopped seed: it completes, and the table now uses three seeds.
    resumed = tiny_run(root, "base", 2, resume=True)
    assert resumed["status"] == "completed" and resumed["evaluations"] == 2
    table = make_table(root, select="best")
    base = dict(next(s for s in table.sections if s.title == "Other").rows)["toy"][base_label]
    assert base.seeds == 3 and not any("excluded" in n for n in table.notes)

    assert "| toy |" in render.to_markdown(table)
    assert base_label in render.to_csv(table)
    assert r"\begin{tabular}" in render.to_latex(table)
    from analysis.collect import collect

    paths = plots.learning_curves(collect(root), table, "normalized_score_mean", tmp_path / "fig")
    assert paths[0].stat().st_size > 10_000
