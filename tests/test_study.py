"""Study pages (`erdiff study`): numbers equal analysis.stats on the runs' scores, the rule for what is stated,
figures; one real sweep end to end on a local Ray."""

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import yaml
from test_analysis_support import write_run
from test_tune_sweep import tiny_spec

from analysis import plots
from analysis.stats import aggregate, iqm
from analysis.study import ALL_TASKS, STUDY_FILE, write_study_page
from erdiff.cli import main
from tune.aggregate import TRIAL_FILE
from tune.spec import parse_spec

ENSEMBLE_STUDY = {
    "name": "study_m", "tasks": ["toy", "pendulum-medium"], "seeds": 5,
    "search": {"mode": "grid", "cases": [{"agent.num_critics": 1, "agent.pessimism": "min"},
                                         {"agent.num_critics": 4}]},
    "objective": {"last_k": 2},
}

# Per (task, M): each seed's evaluations. On toy M = 4 is far above M = 1 (the intervals separate); on
# pendulum-medium the two overlap.
EVALUATIONS = {
    ("toy", 1): [[5.0, 10.0 + s, 12.0 + s] for s in range(5)],
    ("toy", 4): [[50.0, 80.0 + s, 82.0 - s] for s in range(5)],
    ("pendulum-medium", 1): [[0.0, 30.0 + 5 * s, 40.0 + 5 * s] for s in range(5)],
    ("pendulum-medium", 4): [[0.0, 32.0 + 5 * s, 38.0 + 4 * s] for s in range(5)],
}


def write_hand_made_study(out: Path, spec) -> dict[tuple, list[float]]:
    """The study's runs, in the sweep layout, written by hand; returns each cell's per-seed last-k means."""
    last_k = {}
    for plan in spec.trials():
        m = plan.params["agent.num_critics"]
        overrides = {key: str(value) for key, value in plan.params.items()}
        for seed, scores in enumerate(EVALUATIONS[(plan.task, m)]):
            write_run(out / "trials" / plan.name / f"seed_{seed}", plan.task, seed, scores, overrides=overrides)
        last_k[(plan.task, m)] = [float(np.mean(s[-2:])) for s in EVALUATIONS[(plan.task, m)]]
    # A diverged sixth seed is never scored: it shows in the notes only.
    write_run(out / "trials" / spec.trials()[0].name / "seed_5", "toy", 5, [1.0], status="diverged",
              overrides={"agent.num_critics": "1", "agent.pessimism": "min"},
              divergence={"step": 100, "epoch": 1, "quantity": "critic_loss"})
    return last_k


def test_a_page_from_hand_made_runs_has_the_stats_numbers_and_states_only_separated_differences(tmp_path):
    spec = parse_spec(ENSEMBLE_STUDY, source="study_m.yaml")
    last_k = write_hand_made_study(tmp_path / "out", spec)
    page, frame = write_study_page(spec, "study_m.yaml", tmp_path / "out", tmp_path / "docs" / "study_m.md",
                                   tmp_path / "docs" / "img")

    written = pd.read_csv(page.with_suffix(".csv"))
    assert len(written) == len(frame) == 6  # 2 tasks + all tasks, x 2 configurations
    for (task, m), values in last_k.items():
        row = written[(written["section"] == task) & (written["agent.num_critics"] == m)].iloc[0]
        assert (row["iqm"], row["low"], row["high"]) == pytest.approx(aggregate({task: values}, iqm))
        assert row["runs"] == 5 and row["mean"] == pytest.approx(np.mean(values))
    for m in (1, 4):
        row = written[(written["section"] == ALL_TASKS) & (written["agent.num_critics"] == m)].iloc[0]
        pooled = {task: last_k[(task, m)] for task in spec.tasks}
        assert (row["iqm"], row["low"], row["high"]) == pytest.approx(aggregate(pooled, iqm))

    text = page.read_text()
    toy = written[written["section"] == "toy"].set_index("agent.num_critics")
    assert toy.loc[1, "high"] < toy.loc[4, "low"]  # the hand-made data separate on toy ...
    assert (f"On toy: num_critics=4 has the highest IQM, {toy.loc[4, 'iqm']:.1f} [{toy.loc[4, 'low']:.1f}, "
            f"{toy.loc[4, 'high']:.1f}], and its interval lies above those of num_critics=1, pessimism=min") in text
    assert "On pendulum-medium: no difference at this budget" in text  # ... and overlap there
    # Beside the score: median last-period Q (100 + the last score: 82 - seed) and steps per second (300 / 2 s).
    assert toy.loc[4, "q_end"] == 180.0 and toy.loc[4, "steps_per_s"] == 150.0
    assert (f"| 4 | lcb | 5 | {toy.loc[4, 'iqm']:.1f} | [{toy.loc[4, 'low']:.1f}, {toy.loc[4, 'high']:.1f}] | "
            f"{toy.loc[4, 'mean']:.1f} | 180 | 150 |") in text
    assert "1 diverged run(s) (non-finite critic_loss), never scored" in text
    assert "![study_m_curves](img/study_m_curves.png)" in text
    assert (tmp_path / "docs" / "img" / "study_m_curves.png").stat().st_size > 0
    assert "not recorded (no study.json" in text  # these runs were not made by `erdiff study`


def test_a_two_field_study_gets_heatmaps_and_names_the_cells_without_runs(tmp_path):
    spec = parse_spec({"name": "study_ab", "tasks": ["toy"], "seeds": 2, "objective": {"last_k": 1},
                       "search": {"mode": "grid", "space": {"agent.ent_coef": {"grid": [0.0, 0.1]},
                                                            "agent.lcb_coef": {"grid": [1.0, 4.0]}}}})
    for plan in spec.trials()[:3]:  # the last cell never ran
        for seed in spec.seeds:
            write_run(tmp_path / "out" / "trials" / plan.name / f"seed_{seed}", "toy", seed, [10.0 * seed + 1],
                      overrides={key: str(value) for key, value in plan.params.items()})
    page, frame = write_study_page(spec, "study_ab.yaml", tmp_path / "out", tmp_path / "ab.md", tmp_path / "img")
    assert (tmp_path / "img" / "study_ab_heatmaps.png").is_file() and len(frame) == 3
    assert "1 of 4 (task, configuration) cells have no finished run (toy: ent_coef=0.1, lcb_coef=4)" in page.read_text()


def test_auto_among_numbers_orders_the_heatmap_and_replaces_a_curve(tmp_path):
    """agent.ent_coef: [0.1, 0.0, auto]: the heatmap's axis is 0, 0.1, auto; with it alone, no number axis for a
    curve, so the page gets one interval per configuration."""
    assert plots.field_value_order([0.1, "auto", 0.0, 0.1]) == [0.0, 0.1, "auto"]
    for name, space in (("study_ab_auto", {"agent.ent_coef": {"grid": [0.1, 0.0, "auto"]},
                                           "agent.lcb_coef": {"grid": [0.0, 4.0]}}),
                        ("study_a_auto", {"agent.ent_coef": {"grid": [0.1, 0.0, "auto"]}})):
        spec = parse_spec({"name": name, "tasks": ["toy"], "seeds": 2, "objective": {"last_k": 1},
                           "search": {"mode": "grid", "space": space}})
        for plan in spec.trials():
            for seed in spec.seeds:
                write_run(tmp_path / name / "trials" / plan.name / f"seed_{seed}", "toy", seed, [10.0 * seed + 1],
                          overrides={key: str(value) for key, value in plan.params.items()})
        page, frame = write_study_page(spec, f"{name}.yaml", tmp_path / name, tmp_path / f"{name}.md",
                                       tmp_path / "img")
        figure = "heatmaps" if "agent.lcb_coef" in space else "intervals"
        assert f"img/{name}_{figure}.png" in page.read_text()
        assert (tmp_path / "img" / f"{name}_{figure}.png").is_file() and len(frame) == len(spec.trials())


def test_a_three_field_study_gets_one_interval_per_configuration(tmp_path):
    spec = parse_spec({"name": "study_auto", "tasks": ["toy"], "seeds": 2, "objective": {"last_k": 1},
                       "search": {"mode": "grid", "space": {"agent.lcb_coef": {"grid": [0.0, 4.0]}},
                                  "cases": [{"agent.ent_coef": "auto", "agent.entropy_estimator": "official"},
                                            {"agent.ent_coef": 0.01, "agent.entropy_estimator": "knn"}]}})
    for plan in spec.trials():
        for seed in spec.seeds:
            write_run(tmp_path / "out" / "trials" / plan.name / f"seed_{seed}", "toy", seed, [10.0 * seed + 1],
                      overrides={key: str(value) for key, value in plan.params.items()})
    page, frame = write_study_page(spec, "auto.yaml", tmp_path / "out", tmp_path / "auto.md", tmp_path / "img")
    figure = tmp_path / "img" / "study_auto_intervals.png"
    assert figure.is_file() and len(frame) == 4 and "img/study_auto_intervals.png" in page.read_text()
    assert matplotlib.image.imread(figure).std() > 0.01  # not blank


def test_erdiff_study_runs_the_sweep_then_writes_the_page(ray_session, tmp_path):
    """A real sweep (2 configurations x 2 seeds on the toy task, a few steps) through `erdiff study`: the
    page's numbers are analysis.stats on the per-seed objectives the sweep itself recorded in trial.json."""
    data = tiny_spec("study_tiny", {"mode": "grid", "space": {"agent.ent_coef": {"grid": [0.0, 0.1]}}},
                     trainable="function", epochs=2)
    spec_path = tmp_path / "study_tiny.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    out, page = tmp_path / "out", tmp_path / "docs" / "study_tiny.md"
    assert main(["study", str(spec_path), "--out", str(out), "--page", str(page),
                 "--img-dir", str(tmp_path / "docs" / "img")]) == 0

    info = json.loads((out / STUDY_FILE).read_text())
    assert info["sweep_exit"] == 0 and info["wall_s"] > 0 and info["machine"] and info["commit"]
    written = pd.read_csv(page.with_suffix(".csv")).set_index("agent.ent_coef")
    assert len(written) == 2
    for trial in (out / "trials").iterdir():
        record = json.loads((trial / TRIAL_FILE).read_text())
        per_seed = list(record["objective"]["per_seed"].values())
        row = written.loc[record["params"]["agent.ent_coef"]]
        assert (row["iqm"], row["low"], row["high"]) == pytest.approx(aggregate({"toy": per_seed}, iqm))
    text = page.read_text()
    assert f"* commit `{info['commit']}`" in text and "wall time" in text
    assert "![study_tiny_curves](img/study_tiny_curves.png)" in text
    assert (tmp_path / "docs" / "img" / "study_tiny_curves.png").is_file()


def test_a_study_needs_a_grid_spec(tmp_path, capsys):
    spec_path = tmp_path / "s.yaml"
    spec_path.write_text(yaml.safe_dump({"name": "s", "tasks": ["toy"], "search": {
        "mode": "random", "num_samples": 2, "space": {"agent.ent_coef": {"uniform": [0.0, 0.1]}}}}))
    assert main(["study", str(spec_path), "--render-only", "--out", str(tmp_path / "o")]) == 2
    assert "'search.mode' must be grid for a study" in capsys.readouterr().err


def test_a_resumed_study_keeps_the_interrupted_sessions_record_and_its_page_names_both(tmp_path):
    from analysis.study import finish_study_info, read_study_info, start_study_info

    spec = parse_spec(ENSEMBLE_STUDY, source="study_m.yaml")
    out = tmp_path / "out"
    write_hand_made_study(out, spec)
    first = start_study_info(out, "study_m.yaml")  # a session killed before it could record its end
    first["commit"] = "0ld5e55"  # as if the code moved on between the two sessions
    (out / STUDY_FILE).write_text(json.dumps(first))

    second = finish_study_info(out, start_study_info(out, "study_m.yaml", resume=True), 1800.0, 0)
    first.pop("earlier")  # an earlier session's own "earlier" moves up into the list
    assert read_study_info(out) == second and second["earlier"] == [first]
    assert start_study_info(out, "study_m.yaml")["earlier"] == []  # a fresh study starts a new record

    finish_study_info(out, second, 1800.0, 0)
    page, _ = write_study_page(spec, "study_m.yaml", out, tmp_path / "study_m.md", tmp_path / "img")
    text = page.read_text()
    assert "* run in 2 sessions, each after the first resuming the sweep:" in text  # no total: one wall is unknown
    assert "  * commit `0ld5e55`" in text and f"  * started {first['started']}, finished interrupted" in text
    assert f"  * commit `{second['commit']}`" in text and "wall time 0.50 h" in text
