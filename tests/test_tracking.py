"""Experiment tracking with the real libraries, read back with their own readers: TensorBoard's event
accumulator, MLflow's client on a sqlite store, and W&B's offline run files (its protobuf records)."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from tracking_readers import read_tensorboard, read_wandb_run, wandb_folders

from erdiff import results
from erdiff.cli import main
from erdiff.config import ConfigError, flatten_config, make_config
from erdiff.tracking import TENSORBOARD_DIR, hyperparameters
from erdiff.train import train, train_seeds

pytest.importorskip("tensorboard")
SMALL = {"agent.num_critics": "2", "agent.hidden_dim": "16", "train.batch_size": "32", "train.steps_per_epoch": "5",
         "train.eval_every": "1", "train.last_k": "2"}
SCALAR_KEYS = [k for k in results.METRIC_KEYS if k not in ("step", "episode_returns")]


def tracked_config(track: str, epochs: int = 3, **overrides):
    return make_config("toy", overrides={**SMALL, "train.epochs": str(epochs), "train.track": track, **overrides})


class CountingEvaluator:
    """Scores 10, 20, 30, ... by call (the policy is still run), so every evaluation's record is known."""

    def __init__(self):
        self.calls = 0

    def __call__(self, policy):
        self.calls += 1
        policy(np.zeros((2, 3), dtype=np.float32))
        score = 10.0 * self.calls
        return {"episode_returns": [score - 1, score + 1], "return_mean": score, "return_std": 1.0,
                "normalized_score_mean": score, "normalized_score_std": 1.0}


@pytest.fixture
def evaluator():
    return CountingEvaluator()


def run_train(config, run_dir, dataset, evaluator, stop_at: int | None = None, **kwargs):
    """Train (``stop_at``: stop after the evaluation at that step, as an interrupted run that --resume continues)."""
    def stop(record, run_dir):
        return stop_at is not None and record["step"] >= stop_at

    return train(config, run_dir, dataset=dataset, evaluator=evaluator, max_action=1.0, progress=False,
                 on_evaluation=stop, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# TensorBoard


def tensorboard_events(run_dir: Path):
    return read_tensorboard(run_dir / TENSORBOARD_DIR)


def test_tensorboard_holds_every_record_key_per_step_and_the_config(tmp_path, linear_dataset, evaluator):
    from tensorboard.plugins.hparams import plugin_data_pb2

    config = tracked_config("tensorboard")
    run_train(config, tmp_path, linear_dataset, evaluator)
    records = results.read_metrics(tmp_path)
    events = tensorboard_events(tmp_path)
    assert sorted(events.Tags()["scalars"]) == sorted(SCALAR_KEYS)
    for key in SCALAR_KEYS:
        logged = [(event.step, event.value) for event in events.Scalars(key)]
        assert logged == [(r["step"], pytest.approx(r[key], rel=1e-6)) for r in records], key
    histograms = events.Histograms("episode_returns")
    assert [(h.step, h.histogram_value.min, h.histogram_value.max) for h in histograms] == [
        (5, 9.0, 11.0), (10, 19.0, 21.0), (15, 29.0, 31.0)]
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    session = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    logged_config = {key: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
                     for key, value in session.hparams.items()}
    # torch's hparams summary writes booleans as numbers
    assert logged_config == pytest.approx({key: float(value) if isinstance(value, bool) else value
                                           for key, value in hyperparameters(config).items()})
    assert logged_config["task"] == "toy" and logged_config["seed"] == 0 and logged_config["agent.num_critics"] == 2
    assert json.loads((tmp_path / results.TRACKING_FILE).read_text())["tensorboard"] == {"logdir": TENSORBOARD_DIR,
                                                                                          "step": 15}


def test_a_resume_continues_tensorboard_without_showing_an_evaluation_twice(tmp_path, linear_dataset, evaluator):
    run_train(tracked_config("tensorboard", epochs=5), tmp_path, linear_dataset, evaluator, stop_at=15)
    # The state a crash leaves between logging step 15 and saving tracking.json: the events hold 15, the file 10.
    tracking = json.loads((tmp_path / results.TRACKING_FILE).read_text())
    tracking["tensorboard"]["step"] = 10
    results.write_json(tmp_path / results.TRACKING_FILE, tracking)
    run_train(tracked_config("tensorboard", epochs=5), tmp_path, linear_dataset, evaluator, resume=True)
    steps = [event.step for event in tensorboard_events(tmp_path).Scalars("critic_loss")]
    assert steps == [5, 10, 15, 20, 25]
    values = [event.value for event in tensorboard_events(tmp_path).Scalars("normalized_score_mean")]
    assert values == [10.0, 20.0, 30.0, 40.0, 50.0]  # step 15 from metrics.jsonl: the resume starts at 15


def test_packed_seeds_are_one_tracked_run_each(tmp_path, linear_dataset):
    configs = [tracked_config("tensorboard", epochs=2, seed=str(seed), **{"train.eval_episodes": "0"})
               for seed in (0, 1)]
    run_dirs = [tmp_path / "seed_0", tmp_path / "seed_1"]
    train_seeds(configs, run_dirs, dataset=linear_dataset, max_action=1.0, progress=False)
    losses = []
    for run_dir in run_dirs:
        events = tensorboard_events(run_dir)
        losses.append([event.value for event in events.Scalars("critic_loss")])
        assert losses[-1] == pytest.approx([r["critic_loss"] for r in results.read_metrics(run_dir)], rel=1e-6)
    assert losses[0] != losses[1]


def test_a_tracker_that_fails_is_switched_off_and_the_run_completes(tmp_path, linear_dataset, evaluator, caplog):
    (tmp_path / TENSORBOARD_DIR).write_text("a file where the event folder should go")
    summary = run_train(tracked_config("tensorboard"), tmp_path, linear_dataset, evaluator)
    assert summary["status"] == "completed" and len(results.read_metrics(tmp_path)) == 3
    failures = [r.getMessage() for r in caplog.records if "tracking with tensorboard failed" in r.getMessage()]
    assert len(failures) == 1 and "the run goes on" in failures[0]
    assert "tensorboard" not in json.loads((tmp_path / results.TRACKING_FILE).read_text())


# ---------------------------------------------------------------------------------------------------------
# MLflow


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory):
    """A sqlite MLflow store with its tables made (about 10 s of migrations), copied by each test."""
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(empty_mlflow_db, tmp_path, monkeypatch):
    path = tmp_path / "mlflow.db"
    shutil.copy(empty_mlflow_db, path)
    uri = f"sqlite:///{path}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return uri


def mlflow_run(uri: str, run_dir: Path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    saved = json.loads((run_dir / results.TRACKING_FILE).read_text())["mlflow"]
    assert saved["tracking_uri"] == uri
    return client, client.get_run(saved["run_id"])


def test_mlflow_holds_params_metric_history_and_tags(mlflow_uri, tmp_path, linear_dataset, evaluator):
    config = tracked_config("mlflow")
    run_dir = tmp_path / "run"
    run_train(config, run_dir, linear_dataset, evaluator)
    client, run = mlflow_run(mlflow_uri, run_dir)
    records = results.read_metrics(run_dir)
    assert run.info.status == "FINISHED" and run.info.run_name == "toy/seed_0"
    assert client.get_experiment(run.info.experiment_id).name == "erdiff"
    assert run.data.params == {key: str(value) for key, value in flatten_config(config.to_dict()).items()}
    assert {"task": "toy", "seed": "0"}.items() <= run.data.tags.items()
    assert sorted(run.data.metrics) == sorted(SCALAR_KEYS)  # lists (episode_returns) have no MLflow metric
    for key in SCALAR_KEYS:
        history = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
        assert history == [(r["step"], pytest.approx(r[key])) for r in records], key


# ---------------------------------------------------------------------------------------------------------
# Weights & Biases, offline


def test_wandb_offline_run_holds_every_record_the_config_and_tags(wandb_offline, tmp_path, linear_dataset,
                                                                   evaluator):
    config = tracked_config("wandb", **{"train.epochs": "2"})
    run_dir = tmp_path / "run"
    run_train(config, run_dir, linear_dataset, evaluator)
    (folder,) = wandb_folders(run_dir)
    logged = read_wandb_run(folder)
    saved = json.loads((run_dir / results.TRACKING_FILE).read_text())["wandb"]
    assert saved == {"run_id": logged["id"], "project": "erdiff", "mode": "offline", "step": 10}
    assert (logged["name"], logged["project"], sorted(logged["tags"])) == ("toy/seed_0", "erdiff",
                                                                           ["seed=0", "task=toy"])
    assert {key: logged["config"][key] for key in ("task", "seed", "agent", "train")} == {
        key: config.to_dict()[key] for key in ("task", "seed", "agent", "train")}
    records = results.read_metrics(run_dir)
    assert sorted(logged["history"]) == [r["step"] for r in records]
    for record in records:
        row = logged["history"][record["step"]]
        for key in SCALAR_KEYS:
            assert row[key] == pytest.approx(record[key]), key
        assert row["episode_returns/_type"] == "histogram" and sum(row["episode_returns/values"]) == 2


def wandb_services() -> list[int]:
    """The W&B service processes this process started (wandb-core, a child process)."""
    children = []
    for entry in Path("/proc").iterdir():
        try:
            if (entry.name.isdigit() and f"PPid:\t{os.getpid()}\n" in (entry / "status").read_text()
                    and b"wandb-core" in (entry / "cmdline").read_bytes()):
                children.append(int(entry.name))
        except OSError:  # gone meanwhile
            continue
    return children


def test_packed_wandb_runs_are_written_when_training_returns(wandb_offline, tmp_path, linear_dataset):
    """W&B's service writes a run's file a moment after run.finish(); Ray kills a trial's process and its children
    as soon as it returns. So the last W&B run of a process to close shuts the service down and waits for it: no
    service is left when training returns, and both packed seeds' files are whole."""
    configs = [tracked_config("wandb", epochs=2, seed=str(seed), **{"train.eval_episodes": "0"}) for seed in (0, 1)]
    run_dirs = [tmp_path / "seed_0", tmp_path / "seed_1"]
    train_seeds(configs, run_dirs, dataset=linear_dataset, max_action=1.0, progress=False)
    assert wandb_services() == []
    runs = [read_wandb_run(folder) for run_dir in run_dirs for folder in wandb_folders(run_dir)]
    assert [(run["name"], sorted(run["history"])) for run in runs] == [("toy/seed_0", [5, 10]), ("toy/seed_1", [5, 10])]


# ---------------------------------------------------------------------------------------------------------
# Resume, the command line and the config field


def test_a_resumed_run_continues_the_same_tracked_runs_and_a_new_library_catches_up(
        mlflow_uri, wandb_offline, tmp_path, linear_dataset, evaluator):
    run_dir = tmp_path / "run"
    run_train(tracked_config("tensorboard,mlflow", epochs=5), run_dir, linear_dataset, evaluator, stop_at=10)
    first = json.loads((run_dir / results.TRACKING_FILE).read_text())
    # train.track may change at a resume (it does not change what is learned): W&B joins and gets every record.
    run_train(tracked_config("tensorboard,mlflow,wandb", epochs=5), run_dir, linear_dataset, evaluator,
              stop_at=20, resume=True)
    second = json.loads((run_dir / results.TRACKING_FILE).read_text())
    assert second["mlflow"]["run_id"] == first["mlflow"]["run_id"]
    assert {name: entry["step"] for name, entry in second.items() if name != "format"} == {
        "tensorboard": 20, "mlflow": 20, "wandb": 20}
    client, run = mlflow_run(mlflow_uri, run_dir)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "critic_loss")] == [5, 10, 15, 20]
    assert run.info.status == "KILLED"  # stopped: MLflow's status of a run that has not finished
    assert [e.step for e in tensorboard_events(run_dir).Scalars("critic_loss")] == [5, 10, 15, 20]
    (folder,) = wandb_folders(run_dir)
    assert sorted(read_wandb_run(folder)["history"]) == [5, 10, 15, 20]

    # A resume of W&B continues its run id: a second offline folder of the same run, with the new steps only.
    run_train(tracked_config("wandb", epochs=5), run_dir, linear_dataset, evaluator, resume=True)
    folders = wandb_folders(run_dir)
    assert len(folders) == 2
    runs = [read_wandb_run(folder) for folder in folders]
    assert runs[0]["id"] == runs[1]["id"] == second["wandb"]["run_id"]
    assert sorted(runs[1]["history"]) == [25]
    assert mlflow_run(mlflow_uri, run_dir)[1].info.status == "KILLED"  # no longer tracked: left as it was


def test_train_cli_track_option_and_bad_names(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ERDIFF_DATA_DIR", str(tmp_path / "datasets"))
    out = tmp_path / "run"
    small = ["--task", "toy", "--out", str(out), "--quiet", "--agent.num_critics", "2", "--agent.hidden_dim", "16",
             "--train.batch_size", "32", "--train.epochs", "2", "--train.steps_per_epoch", "5",
             "--train.eval_every", "1", "--train.eval_episodes", "0"]
    assert main(["train", *small, "--track", "tensorbord"]) == 2
    error = capsys.readouterr().err
    assert "'train.track'" in error and "did you mean 'tensorboard'?" in error and len(error.splitlines()) == 1
    assert not out.exists()
    assert main(["train", *small, "--track", "tensorboard"]) == 0
    assert yaml.safe_load((out / results.CONFIG_FILE).read_text())["train"]["track"] == ["tensorboard"]
    assert [e.step for e in tensorboard_events(out).Scalars("critic_loss")] == [5, 10]


def test_track_field_reads_lists_and_comma_separated_names():
    assert make_config("toy", {"train": {"track": ["mlflow", "wandb"]}}).train.track == ["mlflow", "wandb"]
    assert make_config("toy", overrides={"train.track": "tensorboard, mlflow"}).train.track == ["tensorboard",
                                                                                               "mlflow"]
    assert make_config("toy").train.track == []
    with pytest.raises(ConfigError, match="'train.track' = \\['wandb', 'wandb'\\].*without repeats"):
        make_config("toy", overrides={"train.track": "wandb,wandb"})
