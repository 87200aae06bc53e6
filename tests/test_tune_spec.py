"""Sweep specs: validation (one clear error per mistake), trials, seed configs, the shipped specs and --dry-run."""

import copy
from pathlib import Path

import pytest
import yaml

from erdiff.cli import main
from erdiff.presets import PAPER_TASKS
from tune.plan import check_cluster_fits
from tune.spec import SpecError, load_spec, parse_spec

CONFIGS = Path(__file__).resolve().parents[1] / "tune" / "configs"

VALID = {
    "name": "unit",
    "tasks": ["toy"],
    "seeds": 2,
    "config": {"agent": {"num_critics": 2, "hidden_dim": 16}, "train": {"epochs": 4, "steps_per_epoch": 5}},
    "search": {"mode": "grid", "space": {"agent.ent_coef": {"grid": [0.0, 0.01]}, "agent.T": {"grid": [3, 5]}}},
    "resources": {"cpu": 0.49, "gpu": 0},
}


def with_changes(**changes):
    """VALID with top-level fields replaced; a value of None removes the field."""
    data = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return data


def grid(**space):
    return {"mode": "grid", "space": space}


def sampled(mode="optuna", **space):
    return {"mode": mode, "num_samples": 3, "space": space}


INVALID = {
    "not a mapping": (["name", "x"], "must be a mapping of spec fields"),
    "unknown top-level field": (with_changes(trials=3), "unknown field(s) trials in the spec"),
    "missing name": (with_changes(name=None), "'name' must be a value (it is required)"),
    "bad name": (with_changes(name="my sweep/1"), "'name' must be a name of letters"),
    "missing tasks": (with_changes(tasks=None), "'tasks' must be a value (it is required)"),
    "empty tasks": (with_changes(tasks=[]), "'tasks' must be a non-empty list"),
    "unknown task": (with_changes(tasks=["toy", "hopper-medium-v9"]), "unknown task 'hopper-medium-v9' (did you mean"),
    "repeated task": (with_changes(tasks=["toy", "toy"]), "a list without repeats"),
    "zero seeds": (with_changes(seeds=0), "'seeds' must be an integer >= 1"),
    "negative seed": (with_changes(seeds=[0, -1]), "'seeds' must be a count >= 1 or a non-empty list"),
    "repeated seed": (with_changes(seeds=[1, 1]), "'seeds' must be a list without repeats"),
    "unknown trainable": (with_changes(trainable="torch"), "'trainable' must be one of train, function, packed"),
    "unknown fixed config field": (with_changes(config={"agent": {"num_critic": 4}}),
                                   "unknown config field(s) agent.num_critic"),
    "bad fixed config value": (with_changes(config={"train": {"batch_size": 0}}), "'train.batch_size' = 0"),
    "seed in fixed config": (with_changes(config={"seed": 3}), "'config.seed' must be absent"),
    "unknown search field": (with_changes(search={"mode": "grid", "spaces": {}}), "unknown field(s) spaces in search"),
    "unknown search mode": (with_changes(search={"mode": "bayes"}),
                            "'search.mode' must be one of grid, optuna, random"),
    "unknown space field": (with_changes(search=grid(**{"agent.entropy": {"grid": [0.1]}})),
                            "unknown learner config field agent.entropy"),
    "space key not dotted": (with_changes(search=grid(seed={"grid": [1, 2]})), "keyed by a dotted learner field"),
    "unknown dimension kind": (with_changes(search=sampled(**{"agent.ent_coef": {"normal": [0, 1]}})),
                               "must be one of {grid: [...]}, {choice: [...]}"),
    "empty grid": (with_changes(search=grid(**{"agent.T": {"grid": []}})), "with at least one value"),
    "repeated grid value": (with_changes(search=grid(**{"agent.T": {"grid": [3, 3]}})), "without repeated values"),
    "grid value rejected by the learner": (
        with_changes(search=grid(**{"agent.schedule": {"grid": ["cosine", "sine"]}})),
        "'agent.schedule' = 'sine' is invalid"),
    "low >= high": (with_changes(search=sampled(**{"agent.ent_coef": {"uniform": [0.1, 0.001]}})),
                    "with low < high"),
    "loguniform low <= 0": (with_changes(search=sampled(**{"agent.ent_coef": {"loguniform": [0, 0.1]}})),
                            "{loguniform: [low, high]} with low > 0"),
    "range not two numbers": (with_changes(search=sampled(**{"agent.ent_coef": {"uniform": [0.1]}})),
                              "{uniform: [low, high]} with two numbers"),
    "int with float bounds": (with_changes(search=sampled(**{"agent.num_critics": {"int": [2.5, 8]}})),
                              "{int: [low, high]} with integer bounds"),
    "uniform on an int field": (with_changes(search=sampled(**{"agent.max_q_samples": {"uniform": [2, 64]}})),
                                "agent.max_q_samples is not a float field"),
    "range value rejected by the learner": (with_changes(search=sampled(**{"agent.tau": {"uniform": [0.5, 2.0]}})),
                                            "'agent.tau' = 2.0 is invalid"),
    "sampled dimension in grid mode": (with_changes(search=grid(**{"agent.ent_coef": {"choice": [0.0, 0.1]}})),
                                       "a {grid: [...]} dimension in grid mode"),
    "grid dimension in optuna mode": (with_changes(search=sampled(**{"agent.ent_coef": {"grid": [0.0, 0.1]}})),
                                      "a sampled dimension"),
    "num_samples in grid mode": (with_changes(search={**grid(), "num_samples": 4}), "absent in grid mode"),
    "zero num_samples": (with_changes(search={**sampled(**{"agent.eta": {"uniform": [0.5, 2]}}), "num_samples": 0}),
                         "'search.num_samples' must be an integer >= 1"),
    "empty optuna space": (with_changes(search={"mode": "optuna", "num_samples": 3}), "at least one dimension"),
    "field both fixed and searched": (with_changes(search=grid(**{"agent.num_critics": {"grid": [2, 4]}})),
                                      "absent from the fixed config too (config.agent.num_critics"),
    "optuna over two tasks": (with_changes(tasks=["toy", "pendulum-medium"],
                                           search=sampled(**{"agent.eta": {"uniform": [0.5, 2]}})),
                              "exactly one task in optuna mode"),
    "paper default outside the space": (with_changes(search=sampled(**{"agent.ent_coef": {"uniform": [0.05, 0.1]}})),
                                        "contains the paper default 0.01"),
    "unknown objective metric": (with_changes(objective={"metric": "score"}), "'objective.metric' must be one of"),
    "objective needs evaluations": (with_changes(config={"train": {"eval_episodes": 0}}),
                                    "a loss metric when train.eval_episodes is 0"),
    "bad objective mode": (with_changes(objective={"mode": "maximize"}), "'objective.mode' must be one of max, min"),
    "zero last_k": (with_changes(objective={"last_k": 0}), "'objective.last_k' must be an integer >= 1"),
    "zero cpu": (with_changes(resources={"cpu": 0}), "'resources.cpu' must be a number in (0.0, inf]"),
    "gpu fraction above 1": (with_changes(resources={"gpu": 1.5}), "'resources.gpu' must be a number in [0.0, 1.0]"),
    "unknown resource": (with_changes(resources={"memory": 4}), "unknown field(s) memory in resources"),
    "zero concurrency": (with_changes(concurrency=0), "'concurrency' must be an integer >= 1"),
    "empty storage": (with_changes(storage=""), "'storage' must be a path or a URI"),
    "unknown scheduler": (with_changes(scheduler={"type": "pbt"}), "'scheduler.type' must be one of asha"),
    "grace period past the budget": (with_changes(scheduler={"type": "asha", "grace_period": 20}),
                                     "fewer gradient steps than max_t (20)"),
    "negative retries": (with_changes(failure={"trial_retries": -1}), "'failure.trial_retries' must be an integer"),
    "unknown tracking library": (with_changes(tracking=["tensorbord"]),
                                 "'tracking': unknown tracking library 'tensorbord' (did you mean 'tensorboard'?)"),
    "repeated tracking library": (with_changes(tracking=["mlflow", "mlflow"]), "'tracking' must be a list without"),
    "task_config of a task not swept": (with_changes(task_config={"pendulum-medium": {}}),
                                        "'task_config' must be keyed by tasks of the spec (toy)"),
    "bad task_config value": (with_changes(task_config={"toy": {"agent": {"eta": -1}}}),
                              "'task_config.toy', config field 'agent.eta' = -1.0 is invalid"),
    "cases in optuna mode": (with_changes(search={**sampled(**{"agent.eta": {"uniform": [0.5, 2]}}),
                                                  "cases": [{"agent.T": 3}]}), "absent in optuna and random mode"),
    "empty case": (with_changes(search={**grid(), "cases": [{}]}), "'search.cases[0]' must be a non-empty mapping"),
    "case field also in space": (with_changes(search={**grid(**{"agent.T": {"grid": [3, 5]}}),
                                                      "cases": [{"agent.T": 3}]}),
                                 "without agent.T: it is a dimension of search.space too"),
    "case field also fixed": (with_changes(search={**grid(), "cases": [{"agent.num_critics": 4}]}),
                              "it is set in the fixed config too (config.agent.num_critics)"),
    "repeated case": (with_changes(search={**grid(), "cases": [{"agent.T": 3}, {"agent.T": 3}]}),
                      "a list without repeated cases"),
    "case the learner rejects": (with_changes(config={}, search={**grid(), "cases": [{"agent.num_critics": 1}]}),
                                 "trial 000_toy_num_critics=1: config field 'agent.num_critics' = 1"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_spec_gives_one_clear_error(case):
    data, message = INVALID[case]
    with pytest.raises(SpecError) as error:
        parse_spec(data, source="specs/unit.yaml")
    assert message in str(error.value)
    assert str(error.value).startswith("specs/unit.yaml")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="is not valid YAML"):
        load_spec(tmp_path / "bad.yaml")


def test_grid_trials_configs_and_defaults():
    spec = parse_spec(VALID, source="unit.yaml")
    assert [(t.name, t.params) for t in spec.trials()] == [
        ("000_toy_ent_coef=0_T=3", {"agent.ent_coef": 0.0, "agent.T": 3}),
        ("001_toy_ent_coef=0_T=5", {"agent.ent_coef": 0.0, "agent.T": 5}),
        ("002_toy_ent_coef=0.01_T=3", {"agent.ent_coef": 0.01, "agent.T": 3}),
        ("003_toy_ent_coef=0.01_T=5", {"agent.ent_coef": 0.01, "agent.T": 5}),
    ]
    config = spec.seed_config("toy", {"agent.ent_coef": 0.01, "agent.T": 3}, 1, "002_toy_ent_coef=0.01_T=3")
    assert (config.seed, config.agent.T, config.agent.ent_coef, config.agent.num_critics) == (1, 3, 0.01, 2)
    assert config.train.epochs == 4 and config.train.eval_every == 25  # the rest comes from the toy preset
    assert config.tags == {"sweep": "unit", "trial": "002_toy_ent_coef=0.01_T=3"}
    assert config.train.num_threads == 1  # follows resources.cpu
    assert spec.to_dict()["seeds"] == [0, 1] and spec.to_dict()["objective"]["last_k"] == 5
    assert parse_spec(spec.to_dict(), source="again").to_dict() == spec.to_dict()


def test_cases_are_crossed_with_the_grid_and_task_config_applies_to_its_task(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = with_changes(
        tasks=["toy", "pendulum-medium"], config={"train": {"epochs": 4}},
        task_config={"pendulum-medium": {"agent": {"hidden_dim": 8}, "train": {"dataset": "data/p.hdf5"}}},
        search={"mode": "grid", "space": {"agent.ent_coef": {"grid": [0.0, 0.1]}},
                "cases": [{"agent.num_critics": 1, "agent.pessimism": "min"}, {"agent.num_critics": 4}]})
    spec = parse_spec(data)
    toy = [t.params for t in spec.trials() if t.task == "toy"]
    assert toy == [{"agent.num_critics": 1, "agent.pessimism": "min", "agent.ent_coef": 0.0},
                   {"agent.num_critics": 1, "agent.pessimism": "min", "agent.ent_coef": 0.1},
                   {"agent.num_critics": 4, "agent.ent_coef": 0.0}, {"agent.num_critics": 4, "agent.ent_coef": 0.1}]
    assert spec.trials()[0].name == "000_toy_num_critics=1_pessimism=min_ent_coef=0"
    pendulum = spec.seed_config("pendulum-medium", spec.trials()[4].params, 0, "t")
    assert pendulum.agent.hidden_dim == 8 and pendulum.agent.pessimism == "min"
    assert pendulum.train.dataset == str(tmp_path / "data" / "p.hdf5")  # absolute: trials run elsewhere
    toy_config = spec.seed_config("toy", {}, 0, "t")
    assert toy_config.train.dataset is None and toy_config.agent.hidden_dim == 256
    assert parse_spec(spec.to_dict()).to_dict() == spec.to_dict()
    assert "cases" not in parse_spec(VALID).to_dict()["search"] and "task_config" not in parse_spec(VALID).to_dict()


def test_random_trials_start_at_the_paper_default_and_are_reproducible():
    data = with_changes(config={}, search=sampled("random", **{"agent.ent_coef": {"loguniform": [1e-3, 0.1]},
                                                               "agent.num_critics": {"int": [2, 64]}}))
    trials = parse_spec(data).trials()
    assert trials[0].params == {"agent.ent_coef": 0.01, "agent.num_critics": 64}
    assert len(trials) == 3 and trials == parse_spec(data).trials()
    for trial in trials[1:]:
        assert 1e-3 <= trial.params["agent.ent_coef"] <= 0.1 and 2 <= trial.params["agent.num_critics"] <= 64


def test_tracking_sets_every_seeds_train_track_and_is_written_only_when_set():
    spec = parse_spec(with_changes(tracking=["mlflow", "tensorboard"]))
    assert spec.tracking == ("mlflow", "tensorboard")
    assert spec.seed_config("toy", {}, 0, "t").train.track == ["mlflow", "tensorboard"]
    assert spec.to_dict()["tracking"] == ["mlflow", "tensorboard"]
    assert parse_spec(spec.to_dict()).to_dict() == spec.to_dict()
    untracked = parse_spec(VALID)
    # sweeps written before tracking existed have no such key, and must still resume with an equal spec
    assert "tracking" not in untracked.to_dict() and untracked.seed_config("toy", {}, 0, "t").train.track == []


def test_gpu_fraction_caps_gpu_memory():
    spec = parse_spec(with_changes(resources={"cpu": 2, "gpu": 0.25}))
    config = spec.seed_config("toy", {}, 0, "t")
    assert config.train.gpu_memory_fraction == 0.25 and config.train.num_threads == 2


def test_cluster_fit_check():
    spec = parse_spec(with_changes(resources={"cpu": 1.0}))  # 2 workers x 1 CPU + 0.01 driver
    with pytest.raises(SpecError, match="one trial needs 2.01 CPU and 0 GPU .* has 2 CPU"):
        check_cluster_fits(spec, {"CPU": 2.0}, local=True)
    assert "has 2 CPU" in check_cluster_fits(spec, {"CPU": 2.0}, local=False)
    assert check_cluster_fits(spec, {"CPU": 4.0}, local=True) is None
    function = parse_spec(with_changes(resources={"cpu": 1.0}, trainable="function"))
    assert check_cluster_fits(function, {"CPU": 2.0}, local=True) is None


def test_shipped_specs():
    specs = {path.stem: load_spec(path) for path in sorted(CONFIGS.glob("*.yaml"))}
    assert {"quickstart", "ablation_alpha_M", "ablation_schedule", "search_optuna", "paper_table"} <= set(specs)
    quick = specs["quickstart"]
    assert len(quick.trials()) == 4 and len(quick.seeds) == 2 and quick.tasks == ("toy",)
    ablation = specs["ablation_alpha_M"]
    values = {(t.params["agent.ent_coef"], t.params["agent.num_critics"]) for t in ablation.trials()}
    assert values == {(a, m) for a in (0.0, 0.001, 0.01, 0.1) for m in (2, 4, 16, 64)} and len(ablation.seeds) == 5
    schedule = specs["ablation_schedule"]
    assert {(t.params["agent.schedule"], t.params["agent.T"]) for t in schedule.trials()} == {
        (s, T) for s in ("cosine", "linear", "vp", "constant") for T in (3, 5, 10)}
    optuna = specs["search_optuna"]
    assert optuna.search.mode == "optuna"
    assert set(optuna.search.space) == {"agent.ent_coef", "agent.lcb_coef", "agent.eta", "agent.num_critics"}
    assert optuna.trials()[0].params == {"agent.ent_coef": 0.01, "agent.lcb_coef": 4.0, "agent.eta": 1.0,
                                         "agent.num_critics": 64}
    table = specs["paper_table"]
    assert list(table.tasks) == PAPER_TASKS and len(table.seeds) == 5
    assert all(t.params == {} for t in table.trials())  # every task at its preset


def test_dry_run_prints_trials_resources_and_gpu_hours(tmp_path, capsys):
    data = with_changes(resources={"cpu": 2, "gpu": 0.25, "step_seconds": 90})
    spec_path = tmp_path / "unit.yaml"
    spec_path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["sweep", str(spec_path), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "4 trials:" in out and "003_toy_ent_coef=0.01_T=5" in out
    assert "2 seed workers x (cpu 2, gpu 0.25) + driver cpu 0.01 = 4.01 CPU, 0.5 GPU" in out
    # 4 trials x 2 seeds x 20 steps x 90 s = 4 h of seed workers, each holding 0.25 GPU and 2 CPUs
    assert "gradient steps: 160 (20 per seed)" in out
    assert "estimated GPU-hours: 1.0, CPU-hours: 8.0" in out
    assert f"{tmp_path / 'out'}/trials/<trial>/seed_<k>/" in out
    assert not (tmp_path / "out").exists()  # nothing ran

    spec_path.write_text(yaml.safe_dump({**data, "trainable": "packed"}, sort_keys=False))
    assert main(["sweep", str(spec_path), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "one process (cpu 2, gpu 0.25) running the 2 seeds together as one batched model" in out


def test_dry_run_of_a_cpu_sweep_measures_its_step_time_here(capsys):
    # The quickstart is a CPU sweep without resources.step_seconds: its step time is timed on this machine, so
    # its CPU-hours are a positive number (they printed 0.0 at an assumed GPU step time), and so is its wall time.
    assert main(["sweep", str(CONFIGS / "quickstart.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("estimated GPU-hours"))
    assert line.startswith("estimated GPU-hours: 0.0, CPU-hours: ") and "measured on this machine's CPU now" in line
    assert float(line.split("CPU-hours: ")[1].split()[0]) > 0
    wall = next(line for line in out.splitlines() if line.startswith("wall time on a local Ray here"))
    assert "2 trial(s) at once" in wall  # 0.99 CPU per trial, concurrency 2
    # A GPU sweep without it says that its step time is assumed.
    assert main(["sweep", str(CONFIGS / "ablation_alpha_M.yaml"), "--dry-run"]) == 0
    assert "0.02 s per gradient step, assumed: set resources.step_seconds" in capsys.readouterr().out


def test_sweep_command_reports_spec_errors(tmp_path, capsys):
    spec_path = tmp_path / "bad.yaml"
    spec_path.write_text(yaml.safe_dump(with_changes(seeds=0)))
    assert main(["sweep", str(spec_path), "--dry-run"]) == 2
    assert "erdiff sweep: error: " in capsys.readouterr().err


@pytest.mark.parametrize("change, expected", [
    ({"tasks": ["hoper-medium-v2"]}, "unknown task 'hoper-medium-v2' (did you mean 'hopper-medium-v2'"),
    ({"objectiv": {"last_k": 3}}, "unknown field(s) objectiv in the spec (did you mean 'objective'?)"),
    ({"search": {"mode": "grid", "space": {"agent.num_critic": {"grid": [2, 4]}}}},
     "unknown learner config field agent.num_critic (did you mean 'agent.num_critics'"),
])
def test_a_mistyped_spec_name_gets_its_closest_match(tmp_path, change, expected):
    spec = {"name": "typo", "tasks": ["toy"], "seeds": 1, **change}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    assert expected in str(raised.value)


def test_automatic_alpha_and_the_entropy_estimator_are_searched_like_any_field():
    mixed = parse_spec(with_changes(search=grid(**{"agent.ent_coef": {"grid": [0.01, "auto"]},
                                                   "agent.entropy_estimator": {"grid": ["official", "knn"]}})))
    assert [t.name for t in mixed.trials()] == ["000_toy_ent_coef=0.01_entropy_estimator=official",
                                                "001_toy_ent_coef=0.01_entropy_estimator=knn",
                                                "002_toy_ent_coef=auto_entropy_estimator=official",
                                                "003_toy_ent_coef=auto_entropy_estimator=knn"]
    config = mixed.seed_config("toy", mixed.trials()[3].params, 0, mixed.trials()[3].name)
    assert (config.agent.ent_coef, config.agent.entropy_estimator) == ("auto", "knn")
    targets = parse_spec(with_changes(config={"agent": {"ent_coef": "auto", "num_critics": 2}},
                                      search=grid(**{"agent.target_entropy": {"grid": [-2.0, 0.5]}})))
    assert [t.params["agent.target_entropy"] for t in targets.trials()] == [-2.0, 0.5]
    assert targets.seed_config("toy", {"agent.target_entropy": 0.5}, 0, "t").agent.target_entropy == 0.5
    # A target without automatic α is refused while parsing the spec, naming the field, before any trial runs.
    with pytest.raises(SpecError, match=r"search.space.agent.target_entropy.*expected null unless agent.ent_coef"):
        parse_spec(with_changes(search=grid(**{"agent.target_entropy": {"grid": [-2.0]}})))
    with pytest.raises(SpecError, match=r"search.space.agent.ent_coef.*a number >= 0 or 'auto'"):
        parse_spec(with_changes(search=grid(**{"agent.ent_coef": {"grid": ["automatic"]}})))


def test_shipped_study_specs(capsys):
    """The two studies (docs/study_*.md), at CPU sizes on local tasks and at the paper's on D4RL tasks."""
    auto = load_spec(CONFIGS / "study_alpha_beta_auto.yaml")
    assert {(t.params["agent.ent_coef"], t.params["agent.entropy_estimator"]) for t in auto.trials()} == {
        ("auto", "official"), ("auto", "knn"), (0.01, "knn")}
    for suffix in ("", "_paper"):
        ensemble = load_spec(CONFIGS / f"study_ensemble_size{suffix}.yaml")
        sizes = {t.params["agent.num_critics"]: t.params.get("agent.pessimism", "lcb") for t in ensemble.trials()}
        assert sizes == {1: "min", 2: "lcb", 4: "lcb", 8: "lcb", 16: "lcb", 64: "lcb"}
        alpha_beta = load_spec(CONFIGS / f"study_alpha_beta{suffix}.yaml")
        alphas = {(t.params["agent.ent_coef"], t.params.get("agent.entropy_estimator", "official"))
                  for t in alpha_beta.trials()}
        betas = {t.params["agent.lcb_coef"] for t in alpha_beta.trials()}
        assert {(0.0, "official"), (0.01, "official"), (0.1, "official")} <= alphas and {0.0, 4.0} <= betas
        if suffix == "_paper":  # automatic alpha and the k-NN estimate are cells of the paper-size study
            assert {("auto", "official"), ("auto", "knn"), (0.01, "knn")} <= alphas
        for spec in (ensemble, alpha_beta):
            assert len(spec.seeds) >= 5 and len(spec.tasks) >= 2 and spec.search.mode == "grid"
            paper = suffix == "_paper"
            assert all(task in PAPER_TASKS for task in spec.tasks) == paper and (spec.resources.gpu > 0) == paper
            assert main(["sweep", str(CONFIGS / f"{spec.name}.yaml"), "--dry-run"]) == 0
    assert "gradient steps" in capsys.readouterr().out
    # The ensemble size on the sparse task and on the shared Hopper data, and the k-NN half of sparse alpha x beta.
    for name, sizes in (("sparse", {1, 2, 4, 8, 16}), ("hopper", {1, 4, 16})):
        spec = load_spec(CONFIGS / f"study_ensemble_size_{name}.yaml")
        assert {t.params["agent.num_critics"] for t in spec.trials()} == sizes and len(spec.seeds) >= 5
        assert all(t.params.get("agent.pessimism", "lcb") == ("min" if t.params["agent.num_critics"] == 1 else "lcb")
                   for t in spec.trials())
    hopper = load_spec(CONFIGS / "study_ensemble_size_hopper.yaml")
    assert hopper.fixed_config("hopper-medium-v2")["train"]["dataset"].endswith("shared/data/hopper-sac-medium.hdf5")
    knn = load_spec(CONFIGS / "study_alpha_beta_sparse_knn.yaml")
    assert {t.params["agent.lcb_coef"] for t in knn.trials()} == {0.0, 4.0} and len(knn.seeds) >= 5
    assert knn.seed_config("mountaincar-sparse", knn.trials()[0].params, 0, "t").agent.entropy_estimator == "knn"
