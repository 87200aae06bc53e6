"""Tables from hand-made run directories: numbers checked against arithmetic done here, partial results
reported in the notes, and the Markdown / LaTeX / CSV outputs."""

from __future__ import annotations

import csv
import io
import math
import shutil
import subprocess
from pathlib import Path

import pytest
from test_analysis_support import write_run

from analysis import render
from analysis.baselines import BaselineError
from analysis.collect import CollectError, collect
from analysis.tables import make_ablation_table, make_table

HOPPER, WALKER = "hopper-medium-v2", "walker2d-medium-v2"
# Evaluations of the preset configuration on hopper, seeds 0-2.
HOPPER_SCORES = {0: [10.0, 30.0, 20.0, 40.0], 1: [20.0, 50.0, 30.0, 35.0], 2: [15.0, 25.0, 45.0, 30.0]}


def sample_std(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


@pytest.fixture
def results_root(tmp_path: Path) -> Path:
    """A mix of single runs and a sweep tree, with one stale run, a missing seed and a resumed run."""
    root = tmp_path / "results"
    for seed, scores in HOPPER_SCORES.items():
        write_run(root / "singles" / f"hopper_s{seed}", HOPPER, seed, scores)
    # Died while training: status still "running", files three hours old.
    write_run(root / "singles" / "hopper_s3", HOPPER, 3, [90.0], status="running", age_s=3 * 3600)
    # Walker: seed 1 never ran; seed 0 was resumed and re-evaluated step 200 (70 before the crash, 9 after).
    write_run(root / "singles" / "walker_s0", WALKER, 0, [5.0, 70.0, 9.0, 11.0], steps=[100, 200, 200, 300])
    write_run(root / "singles" / "walker_s2", WALKER, 2, [6.0, 8.0, 12.0])
    # A sweep over the ensemble size, laid out as tune/ writes it.
    for seed, scores in {0: [50.0, 60.0], 1: [55.0, 70.0]}.items():
        write_run(root / "sweep" / "trials" / "m4" / f"seed_{seed}", HOPPER, seed, scores,
                  overrides={"agent.num_critics": "4"}, tags={"sweep": "sweep", "trial": "m4"})
    return root


def cell(table, task, column):
    for section in table.sections:
        for name, row in section.rows:
            if name == task:
                return row.get(column)
    raise KeyError(task)


def test_last_best_and_last_k_match_arithmetic(results_root):
    last = make_table(results_root, select="last", published=False)
    c = cell(last, HOPPER, "preset")
    assert (c.seeds, c.mean) == (3, pytest.approx((40 + 35 + 30) / 3))
    assert c.std == pytest.approx(sample_std([40, 35, 30]))

    best = cell(make_table(results_root, select="best", published=False), HOPPER, "preset")
    assert best.mean == pytest.approx((40 + 50 + 45) / 3) and best.std == pytest.approx(sample_std([40, 50, 45]))

    last_2 = [(20 + 40) / 2, (30 + 35) / 2, (45 + 30) / 2]
    last_k = cell(make_table(results_root, select="last-k", k=2, published=False), HOPPER, "preset")
    assert last_k.mean == pytest.approx(sum(last_2) / 3) and last_k.std == pytest.approx(sample_std(last_2))

    sweep = cell(last, HOPPER, "agent.num_critics=4")
    assert (sweep.seeds, sweep.mean, sweep.std) == (2, pytest.approx(65.0), pytest.approx(sample_std([60, 70])))


def test_return_metric_and_argument_errors(results_root):
    table = make_table(results_root, metric="return", published=False)
    assert cell(table, HOPPER, "preset").mean == pytest.approx(10 * (40 + 35 + 30) / 3)
    assert "undiscounted episode return" in table.caption
    for kwargs, message in (({"select": "median"}, "unknown statistic 'median'"),
                            ({"select": "last-k", "k": 0}, "k must be at least 1"),
                            ({"metric": "score"}, "unknown metric 'score'")):
        with pytest.raises(CollectError, match=message):
            make_table(results_root, **kwargs)


def test_resumed_run_keeps_the_last_record_of_a_repeated_step(results_root):
    best = make_table(results_root, select="best", published=False)
    walker = cell(best, WALKER, "preset")
    # Seed 0's best is 11 (the pre-crash 70 at step 200 was replaced by the resumed 9); seed 2's is 12.
    assert (walker.seeds, walker.mean) == (2, pytest.approx((11 + 12) / 2))
    assert any("walker_s0 was resumed: 1 repeated evaluation record" in note for note in best.notes)
    last_k = cell(make_table(results_root, select="last-k", k=3, published=False), WALKER, "preset")
    assert last_k.mean == pytest.approx(((5 + 9 + 11) / 3 + (6 + 8 + 12) / 3) / 2)


def test_partial_results_are_reported_in_the_notes(results_root):
    table = make_table(results_root, published=False)
    notes = "\n".join(table.notes)
    assert "excluded results/singles/hopper_s3: status 'running' but no write for 3.0 h" in notes
    assert f"{WALKER} · preset: seed(s) 1 missing (have 0, 2)" in notes
    # A column's expected seeds are its own: the sweep ran seeds 0 and 1 only, so nothing is missing there.
    assert "agent.num_critics=4: seed(s)" not in notes
    assert "was resumed" in notes
    # The Gym average needs all nine tasks; only two have runs.
    assert "Gym locomotion · preset: no average (scores on 2 of 9 tasks)" in notes
    assert any("missing" in n for n in cell(table, WALKER, "preset").notes)


def test_include_incomplete_uses_the_stale_run_and_says_so(results_root):
    table = make_table(results_root, include_incomplete=True, published=False)
    c = cell(table, HOPPER, "preset")
    assert (c.seeds, c.mean) == (4, pytest.approx((40 + 35 + 30 + 90) / 4))
    assert any("included although incomplete: results/singles/hopper_s3" in n for n in table.notes)


def test_running_run_is_not_stale_until_its_files_are_old(tmp_path):
    write_run(tmp_path / "r" / "a", HOPPER, 0, [1.0], status="running")
    write_run(tmp_path / "r" / "b", HOPPER, 1, [1.0], status="stopped")
    write_run(tmp_path / "r" / "c", HOPPER, 2, [1.0], status=None)
    states = {run.name.split("/")[-1]: run.state for run in collect(tmp_path / "r").runs}
    assert states == {"a": "running", "b": "stopped", "c": "incomplete"}
    later = collect(tmp_path / "r", now=1e12)
    assert {run.state for run in later.runs if run.name.endswith("/a")} == {"stale"}


def test_two_directories_for_one_seed_are_not_averaged(tmp_path):
    write_run(tmp_path / "r" / "first", HOPPER, 0, [10.0])
    write_run(tmp_path / "r" / "rerun", HOPPER, 0, [20.0, 30.0])
    table = make_table(tmp_path / "r", published=False)
    c = cell(table, HOPPER, "preset")
    assert (c.seeds, c.mean) == (1, 30.0)  # the completed run with more evaluations
    assert any("seed 0 has 2 run directories: used r/rerun, ignored r/first" in n for n in table.notes)


def test_unreadable_runs_are_reported_not_fatal(tmp_path):
    write_run(tmp_path / "r" / "good", HOPPER, 0, [10.0])
    torn = write_run(tmp_path / "r" / "torn", HOPPER, 1, [10.0])
    (torn / "metrics.jsonl").write_text('{"step": 100, "normalized_score_mean": 1}\n{"step": 2')
    broken = write_run(tmp_path / "r" / "broken", HOPPER, 2, [10.0])
    (broken / "config.yaml").write_text("task: [unclosed")
    table = make_table(tmp_path / "r", published=False)
    notes = "\n".join(table.notes)
    assert "skipped 2 malformed run(s): r/broken: " in notes and "not valid YAML" in notes
    assert "; r/torn: " in notes and "metrics.jsonl, line 2: not valid JSON" in notes
    assert cell(table, HOPPER, "preset").seeds == 1


def _rewrite(name: str, text: str):
    return lambda run: (run / name).write_text(text)


def _edit_config(old: str, new: str):
    return lambda run: (run / "config.yaml").write_text((run / "config.yaml").read_text().replace(old, new))


@pytest.mark.parametrize("damage, reason", [
    (_rewrite("summary.json", "[1, 2]"), "summary.json: holds [1, 2], expected a JSON object"),
    (_rewrite("summary.json", "7"), "summary.json: holds 7, expected a JSON object"),
    (_rewrite("summary.json", '{"status": ["completed"]}'), "summary.json: 'status' = ['completed']; expected a "
                                                          "string"),
    (_rewrite("summary.json", '{"status": "diverged"}'), "summary.json: status 'diverged' needs 'divergence'"),
    (_rewrite("metrics.jsonl", '{"step": 100, "normalized_score_mean": "high"}\n'),
     "metrics.jsonl: record 1 (step 100): 'normalized_score_mean' = 'high'; expected a finite number or null"),
    (_rewrite("metrics.jsonl", '{"step": 100, "return_mean": NaN}\n'), "'return_mean' = nan; expected a finite"),
    (_rewrite("metrics.jsonl", '{"step": 100}\n[1]\n'), "metrics.jsonl: record 2 is [1], expected a JSON "
                                                          "object"),
    (_rewrite("metrics.jsonl", '{"step": true}\n'), "metrics.jsonl: record 1 has no integer 'step'"),
    (_rewrite("config.yaml", "- 1\n"), "config.yaml: expected a mapping"),
    (lambda run: (run / "summary.json").write_bytes(b"\xff\xfe{}"),
     "summary.json: not UTF-8 text (invalid start byte at byte 0)"),
    (_edit_config("num_critics: 64", "num_critics: [4]"), "config.yaml: field 'agent.num_critics' = [4] is not "
                                                          "a single value"),
    (_edit_config("seed: 2", "seed: true"), "config.yaml: field 'seed' is missing or not an integer"),
    (_edit_config(f"task: {HOPPER}", "task: ''"), "config.yaml: field 'task' is missing or not a task name"),
])
def test_malformed_run_is_skipped_with_a_note_and_the_good_runs_still_count(tmp_path, damage, reason):
    write_run(tmp_path / "r" / "good", HOPPER, 0, [10.0])
    write_run(tmp_path / "r" / "m4", HOPPER, 1, [30.0], overrides={"agent.num_critics": "4"})
    damage(write_run(tmp_path / "r" / "bad", HOPPER, 2, [99.0]))
    for include_incomplete in (False, True):
        table = make_table(tmp_path / "r", published=False, include_incomplete=include_incomplete)
        assert (cell(table, HOPPER, "preset").mean, cell(table, HOPPER, "agent.num_critics=4").mean) == (10.0, 30.0)
        note = next(n for n in table.notes if n.startswith("skipped 1 malformed run(s): r/bad: "))
        assert reason in note
        assert render.render(table, "md")  # and the table renders


@pytest.fixture
def diverged_root(tmp_path: Path) -> Path:
    """Two completed seeds and three diverged ones whose finite records before the divergence score high."""
    root = tmp_path / "r"
    write_run(root / "s0", HOPPER, 0, [10.0, 20.0])
    write_run(root / "s1", HOPPER, 1, [30.0, 40.0])
    for seed, quantity, step in ((2, "critic_loss", 300), (3, "critic_loss", 200), (4, "critic_grad_norm", 100)):
        write_run(root / f"s{seed}", HOPPER, seed, [900.0, 999.0], status="diverged",
                  divergence={"step": step, "epoch": step // 100, "quantity": quantity})
    return root


@pytest.mark.parametrize("include_incomplete", [False, True])
@pytest.mark.parametrize("select", ["last", "best", "last-k"])
def test_diverged_runs_are_counted_in_the_notes_and_never_scored(diverged_root, include_incomplete, select):
    table = make_table(diverged_root, select=select, published=False, include_incomplete=include_incomplete)
    preset = cell(table, HOPPER, "preset")
    assert preset.seeds == 2 and preset.mean < 900.0
    assert set(table.scores["run"]) == {"r/s0", "r/s1"}
    assert ("2 diverged run(s) (non-finite critic_loss), never scored: r/s2 (step 300), r/s3 (step 200)"
            in table.notes)
    assert "1 diverged run(s) (non-finite critic_grad_norm), never scored: r/s4 (step 100)" in table.notes
    assert not any("included although incomplete" in note for note in table.notes)
    states = {run.name: run.state for run in collect(diverged_root).runs}
    assert states["r/s2"] == "diverged" and states["r/s0"] == "completed"


def test_diverged_runs_stay_out_of_ablation_cells(diverged_root):
    table = make_ablation_table(diverged_root, "agent.T", "agent.num_critics", include_incomplete=True)
    assert set(table.scores["run"]) == {"r/s0", "r/s1"}
    assert all(c.mean < 900.0 for section in table.sections for _, row in section.rows for c in row.values())


def test_collect_errors_name_the_path(tmp_path):
    with pytest.raises(CollectError, match="does not exist"):
        collect(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CollectError, match="no run directories"):
        collect(tmp_path / "empty")


def test_tidy_frame_has_flattened_config_and_metrics(results_root):
    collection = collect(results_root)
    evals = collection.evals_frame()
    for column in ("task", "domain", "seed", "step", "agent.num_critics", "train.epochs", "tags.trial",
                   "normalized_score_mean", "return_mean", "actor_loss", "critic_loss"):
        assert column in evals.columns
    walker0 = evals[evals["run"] == "results/singles/walker_s0"]
    assert list(walker0["step"]) == [100, 200, 300] and list(walker0["normalized_score_mean"]) == [5, 9, 11]
    assert set(evals["domain"]) == {"Gym locomotion"}
    runs = collection.runs_frame()
    assert runs.set_index("run").loc["results/singles/walker_s0", "duplicates"] == 1


def test_configuration_ignores_non_learning_fields_and_dataset_folder(tmp_path):
    write_run(tmp_path / "r" / "a", HOPPER, 0, [1.0], overrides={"train.device": "cpu", "train.num_threads": "2",
                                                               "train.dataset": "/laptop/data/hop.hdf5"})
    write_run(tmp_path / "r" / "b", HOPPER, 1, [3.0], overrides={"train.dataset": "/cluster/x/hop.hdf5"})
    table = make_table(tmp_path / "r", published=False)
    c = cell(table, HOPPER, "train.dataset=hop.hdf5")
    assert (c.seeds, c.mean) == (2, 2.0)


def test_label_by_tag_or_field(results_root):
    by_trial = make_table(results_root / "sweep", label_fields=["tags.trial"], published=False)
    assert by_trial.columns == ["m4"]
    by_field = make_table(results_root, label_fields=["agent.num_critics"], published=False)
    assert cell(by_field, HOPPER, "agent.num_critics=64").seeds == 3
    with pytest.raises(CollectError, match=r"label field 'agent.num_critic' \(did you mean 'agent.num_critics'"):
        make_table(results_root, label_fields=["agent.num_critic"])


def test_label_pooling_different_configurations_is_noted(tmp_path):
    write_run(tmp_path / "r" / "a", HOPPER, 0, [1.0], overrides={"agent.T": "3"}, tags={"trial": "same"})
    write_run(tmp_path / "r" / "b", HOPPER, 1, [3.0], overrides={"agent.T": "7"}, tags={"trial": "same"})
    table = make_table(tmp_path / "r", label_fields=["tags.trial"], published=False)
    assert any("column 'same' pools 2 configurations that differ in agent.T" in n for n in table.notes)


def test_published_and_user_baselines_with_best_in_bold(results_root, tmp_path):
    user = tmp_path / "mine.csv"
    user.write_text("method,task,score,std,source\nMine,hopper-medium-v2,99.5,1.5,my notes\n")
    table = make_table(results_root, baseline_paths=[user])
    assert table.baseline_columns[-1] == "Mine" and "IQL" in table.baseline_columns
    assert cell(table, HOPPER, "IQL").mean == 66.3  # shipped, from the IQL paper's Table 1
    mine = cell(table, HOPPER, "Mine")
    assert (mine.mean, mine.std, mine.seeds, mine.bold) == (99.5, 1.5, None, True)
    assert not cell(table, HOPPER, "preset").bold
    assert table.sources["Mine"] == "my notes"
    # The IQL and CQL Gym averages over all nine tasks come from their published numbers.
    average = dict(dict(table.sections[0].rows)["Average"])
    iql = [47.4, 66.3, 78.3, 44.2, 94.7, 73.9, 86.7, 91.5, 109.6]
    assert average["IQL"].mean == pytest.approx(sum(iql) / 9)


def test_bad_baseline_files(tmp_path, results_root):
    cases = {"nocol.csv": ("method,task\nA,hopper-medium-v2\n", "missing column"),
             "nan.csv": ("method,task,score\nA,hopper-medium-v2,lots\n", "line 2: column 'score' = 'lots'"),
             "empty.csv": ("method,task,score\nA,hopper-medium-v2,\n", "line 2: column 'score' is empty")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(BaselineError, match=message):
            make_table(results_root, baseline_paths=[tmp_path / name])
    with pytest.raises(BaselineError, match="does not exist"):
        make_table(results_root, baseline_paths=[tmp_path / "absent.csv"])


@pytest.fixture
def ablation_root(tmp_path: Path) -> Path:
    """alpha in {0, 0.1} x M in {2, 4} on two tasks, two seeds, one evaluation: score = M*10 + alpha*100 + seed
    on hopper and half that on walker."""
    root = tmp_path / "ablation"
    for task, scale in ((HOPPER, 1.0), (WALKER, 0.5)):
        for alpha in (0.0, 0.1):
            for m in (2, 4):
                for seed in (0, 1):
                    score = scale * (m * 10 + alpha * 100 + seed)
                    write_run(root / task / f"a{alpha}_m{m}" / f"seed_{seed}", task, seed, [score],
                              overrides={"agent.ent_coef": str(alpha), "agent.num_critics": str(m)})
    return root


def test_ablation_grid_per_task_and_average(ablation_root):
    table = make_ablation_table(ablation_root, "agent.ent_coef", "agent.num_critics")
    assert table.columns == ["agent.num_critics=2", "agent.num_critics=4"]
    sections = {s.title: dict(s.rows) for s in table.sections}
    assert list(sections) == [HOPPER, WALKER, "Average over 2 task(s)"]
    hop = sections[HOPPER]["agent.ent_coef=0.1"]["agent.num_critics=4"]
    assert (hop.mean, hop.seeds) == (pytest.approx((50 + 51) / 2), 2) and hop.bold
    walker = sections[WALKER]["agent.ent_coef=0.0"]["agent.num_critics=2"]
    assert walker.mean == pytest.approx((10 + 10.5) / 2)
    average = sections["Average over 2 task(s)"]["agent.ent_coef=0.0"]["agent.num_critics=4"]
    assert average.mean == pytest.approx(((40 + 41) / 2 + (20 + 20.5) / 2) / 2)


def test_ablation_field_errors(ablation_root):
    with pytest.raises(CollectError, match="unknown ablation field 'agent.alpha'"):
        make_ablation_table(ablation_root, "agent.alpha", "agent.num_critics")
    with pytest.raises(CollectError, match="not a learning field"):
        make_ablation_table(ablation_root, "train.device", "agent.num_critics")


def test_markdown_output(results_root):
    text = render.to_markdown(make_table(results_root, select="best"))
    assert "| Task | BC | CQL | IQL | Diffusion-QL | preset | agent.num_critics=4 |" in text
    assert "per seed: best evaluation during training (online model selection)" in text
    assert f"| {HOPPER} | 52.9 | 58.5 | 66.3 | **90.5** | 45.0 ± 5.0 (3) | 65.0 ± 7.1 (2) |" in text
    assert "| **Gym locomotion** |" in text and "Notes:" in text and "Published baselines:" in text


def test_csv_output_parses_back(results_root):
    table = make_table(results_root, select="last-k", k=2)
    rows = list(csv.DictReader(io.StringIO(render.to_csv(table))))
    assert list(rows[0]) == list(render.CSV_COLUMNS)
    ours = next(r for r in rows if r["row"] == HOPPER and r["column"] == "preset")
    assert (ours["section"], ours["kind"], int(ours["seeds"])) == ("Gym locomotion", "run", 3)
    assert float(ours["mean"]) == pytest.approx((30 + 32.5 + 37.5) / 3)
    assert ours["statistic"] == "mean of the last 2 evaluations"
    walker = next(r for r in rows if r["row"] == WALKER and r["column"] == "preset")
    assert "seed(s) 1 missing" in walker["notes"] and "resumed" in walker["notes"]
    iql_average = next(r for r in rows if r["row"] == "Average" and r["column"] == "IQL")
    assert iql_average["kind"] == "baseline"


def test_latex_output(results_root, tmp_path):
    text = render.to_latex(make_table(results_root))
    assert r"\begin{tabular}{lrrrrrr}" in text and r"\textbf{90.5}" in text
    assert r"35.0 $\pm$ 5.0 (3)" in text and r"agent.num\_critics=4" in text
    assert r"\multicolumn{7}{l}{\textit{Gym locomotion}}" in text
    if shutil.which("pdflatex") is None:
        pytest.skip("no pdflatex on this machine: LaTeX not compiled")
    document = tmp_path / "table.tex"
    document.write_text("\\documentclass{article}\n\\begin{document}\n" + text + "\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", document.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "table.pdf").stat().st_size > 1000


def test_caption_and_title_name_the_task_family(tmp_path):
    write_run(tmp_path / "toy" / "s0", "toy", 0, [50.0])
    write_run(tmp_path / "pendulum" / "s0", "pendulum-medium", 0, [40.0])
    local = make_table(tmp_path, published=False)
    assert local.title == "Results on locally generated tasks" and "D4RL" not in local.caption
    assert "locally generated task(s) pendulum-medium, toy" in local.caption
    assert "D4RL" not in make_ablation_table(tmp_path, "agent.T", "agent.num_critics").caption
    write_run(tmp_path / "hopper" / "s0", HOPPER, 0, [30.0])
    mixed = make_table(tmp_path, published=False)
    assert mixed.title == "Results on D4RL and locally generated tasks"
    assert "D4RL normalized score" in mixed.caption and "task(s) pendulum-medium, toy" in mixed.caption
    shutil.rmtree(tmp_path / "toy")
    shutil.rmtree(tmp_path / "pendulum")
    d4rl = make_table(tmp_path, published=False)
    assert d4rl.title == "D4RL results" and "locally" not in d4rl.caption


def test_caption_states_the_ddof_of_the_seed_std(results_root):
    assert "mean ± std over seeds (ddof=1)" in make_table(results_root, published=False).caption


def test_a_configuration_whose_runs_were_all_excluded_is_dropped_with_a_note(results_root):
    for seed in range(2):  # a sweep trial that died: both seeds still "running", files three hours old
        write_run(results_root / "sweep" / "trials" / "m8" / f"seed_{seed}", HOPPER, seed, [1.0],
                  status="running", age_s=3 * 3600, overrides={"agent.num_critics": "8"})
    table = make_table(results_root, published=False)
    assert table.columns == ["preset", "agent.num_critics=4"]
    assert "column agent.num_critics=8 dropped: no run of it was scored (2 note(s) above say why)" in table.notes
    assert sum("excluded" in note and "trials/m8/seed_" in note for note in table.notes) == 2
    assert "agent.num_critics=8" not in render.to_markdown(table).split("Notes:")[0]
    kept = make_table(results_root, published=False, include_incomplete=True)
    assert "agent.num_critics=8" in kept.columns and not any("dropped" in note for note in kept.notes)


def test_columns_order_their_numbers_as_numbers(tmp_path):
    for critics in (16, 2, 32, 4):  # the hopper preset has 64
        write_run(tmp_path / f"m{critics}", HOPPER, 0, [10.0], overrides={"agent.num_critics": str(critics)})
    table = make_table(tmp_path, published=False)
    assert table.columns == [f"agent.num_critics={m}" for m in (2, 4, 16, 32)]


def test_a_diverged_run_of_another_configuration_does_not_name_the_columns(tmp_path):
    m4 = {"agent.num_critics": "4"}
    write_run(tmp_path / "s0", HOPPER, 0, [10.0], overrides=m4)
    write_run(tmp_path / "s1", HOPPER, 1, [30.0], overrides=m4)
    write_run(tmp_path / "big_alpha", HOPPER, 2, [900.0], overrides={**m4, "agent.ent_coef": "0.5"},
              status="diverged", divergence={"step": 10, "epoch": 1, "quantity": "critic_loss"})
    table = make_table(tmp_path, published=False)
    assert table.columns == ["agent.num_critics=4"] and cell(table, HOPPER, "agent.num_critics=4").seeds == 2
