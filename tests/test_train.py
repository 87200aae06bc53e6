"""The training loop: learning signal, run directory, exact resume and clear errors."""

import json

import pytest
import torch
import yaml

from erdiff import results
from erdiff.agent import ERDiffAgent
from erdiff.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from erdiff.config import make_config
from erdiff.runlock import hold_run_dirs
from erdiff.train import RunDirectoryError, TrainingSession, set_seed, train

SMALL = {"agent.num_critics": "4", "agent.hidden_dim": "64", "train.batch_size": "64", "train.eval_episodes": "0"}


def small_config(**overrides):
    return make_config("toy", overrides={**SMALL, **{k: str(v) for k, v in overrides.items()}})


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_few_hundred_steps_lower_diffusion_and_critic_losses(precision, tmp_path, linear_dataset):
    # γ = 0 and a reward linear in (s, a) make the critic a plain regression, so its loss must fall clearly.
    rewards = 2 * linear_dataset["observations"][:, 0] + 3 * linear_dataset["actions"][:, 0]
    dataset = {**linear_dataset, "rewards": rewards}
    config = small_config(**{"train.epochs": 30, "train.steps_per_epoch": 10, "train.eval_every": 1,
                             "agent.discount": 0.0, "agent.critic_lr": 1e-3, "train.precision": precision})
    train(config, tmp_path, dataset=dataset, max_action=1.0, progress=False)
    records = results.read_metrics(tmp_path)
    assert [r["step"] for r in records] == list(range(10, 301, 10))
    assert records[-1]["bc_loss"] < 0.2 * records[0]["bc_loss"]
    assert records[-1]["critic_loss"] < 0.2 * records[0]["critic_loss"]


def test_bfloat16_precision_follows_float32_closely_but_not_exactly(tmp_path, linear_dataset):
    # Same seed and data: under bfloat16 autocast the weights stay float32, and each weight's change over ten
    # steps points the way the float32 run's does (cosine > 0.99) without being equal (autocast is really on).
    runs = {}
    for precision in ("float32", "bfloat16"):
        config = small_config(**{"train.epochs": 2, "train.steps_per_epoch": 5, "train.precision": precision})
        train(config, tmp_path / precision, dataset=linear_dataset, max_action=1.0, progress=False)
        runs[precision] = load_checkpoint(tmp_path / precision / "checkpoint.pt")["agent"]["networks"]
    set_seed(config.seed)  # the initial weights, as train() draws them
    initial = ERDiffAgent(3, 2, 1.0, config.agent).state_dict()
    for name in ("critic.weights.1", "critic.weights.3", "actor.model.mid.2.weight", "actor.model.final.weight"):
        assert runs["bfloat16"][name].dtype == torch.float32, name
        change_32 = (runs["float32"][name] - initial[name]).flatten()
        change_16 = (runs["bfloat16"][name] - initial[name]).flatten()
        assert change_32.norm() > 0 and not torch.equal(change_16, change_32), name
        assert torch.nn.functional.cosine_similarity(change_16, change_32, dim=0) > 0.99, name


def test_run_directory_format(tmp_path, linear_dataset):
    config = small_config(**{"train.epochs": 3, "train.steps_per_epoch": 5, "train.eval_every": 2, "train.last_k": 2})
    scores = iter([10.0, 30.0])

    def evaluator(policy):
        actions = policy(linear_dataset["observations"][:4])
        assert actions.shape == (4, 2)
        score = next(scores)
        return {"episode_returns": [score, score], "return_mean": score, "return_std": 0.0,
                "normalized_score_mean": score, "normalized_score_std": 0.0}

    summary = train(config, tmp_path, dataset=linear_dataset, evaluator=evaluator, max_action=1.0, progress=False)
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == config.to_dict()
    records = results.read_metrics(tmp_path)
    assert [(r["step"], r["epoch"]) for r in records] == [(10, 2), (15, 3)]  # every 2 epochs and the last one
    assert set(results.METRIC_KEYS) <= set(records[0])
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["step"] == 15
    assert summary["normalized_score"] == {"last": 30.0, "best": 30.0, "best_step": 15, "last_k_mean": 20.0,
                                           "last_k": 2}
    assert (tmp_path / "checkpoint.pt").is_file()


def flat_parameters(run_dir):
    state = load_checkpoint(run_dir / "checkpoint.pt")
    return state["agent"]["networks"], state["agent"]["actor_optimizer"], state["rng"]["torch"]


def without_time(records):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in records]


def test_exact_resume_is_bitwise_identical(tmp_path, linear_dataset):
    """2N steps straight == N steps, stop, resume, N steps: same parameters, optimizer state, RNG and metrics."""
    config = small_config(**{"train.epochs": 4, "train.steps_per_epoch": 15, "train.eval_every": 2,
                             "agent.ema_start": 10, "agent.lr_schedule": "cosine"})
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(config, straight, dataset=linear_dataset, max_action=1.0, progress=False)
    first = train(config, resumed, dataset=linear_dataset, max_action=1.0, progress=False,
                  on_evaluation=lambda record, run_dir: True)
    assert first["status"] == "stopped" and first["step"] == 30
    final = train(config, resumed, dataset=linear_dataset, max_action=1.0, progress=False, resume=True)
    assert final["status"] == "completed" and final["step"] == 60

    networks_a, optimizer_a, rng_a = flat_parameters(straight)
    networks_b, optimizer_b, rng_b = flat_parameters(resumed)
    assert networks_a.keys() == networks_b.keys()
    for key in networks_a:
        assert torch.equal(networks_a[key], networks_b[key]), key
    for state_a, state_b in zip(optimizer_a["state"].values(), optimizer_b["state"].values()):
        for key in state_a:
            assert torch.equal(state_a[key], state_b[key])
    assert torch.equal(rng_a, rng_b)
    assert without_time(results.read_metrics(straight)) == without_time(results.read_metrics(resumed))


def test_sessions_advanced_in_turn_equal_train_and_never_read_their_checkpoints(tmp_path, linear_dataset):
    """Two seeds' sessions advanced one period each in turn (as a `function` sweep trial does), each checkpoint
    overwritten with junk once written: metrics and final checkpoints equal `train` of each seed alone. A session
    that read its checkpoint back would fail; one whose RNG streams restarted each period, or whose process-wide
    RNG state leaked from the other seed's session, would differ."""
    configs = [small_config(**{"train.epochs": 4, "train.steps_per_epoch": 6, "train.eval_every": 1, "seed": seed,
                               "agent.ema_start": 5, "agent.lr_schedule": "cosine"}) for seed in (0, 1)]
    run_dirs = [tmp_path / "sessions" / f"seed_{config.seed}" for config in configs]
    for run_dir in run_dirs:
        run_dir.mkdir(parents=True)
    with hold_run_dirs(run_dirs):
        sessions = [TrainingSession([config], [run_dir], dataset=linear_dataset, max_action=1.0, progress=False)
                    for config, run_dir in zip(configs, run_dirs)]
        while not all(session.done for session in sessions):
            for session, run_dir in zip(sessions, run_dirs):
                session.run_period()
                if not session.done:
                    (run_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
        for session in sessions:
            session.close()
    with pytest.raises(RuntimeError, match="needs its run directories locked first"):
        TrainingSession([configs[0]], [tmp_path / "unlocked"], dataset=linear_dataset, max_action=1.0)

    for config, run_dir in zip(configs, run_dirs):
        alone = tmp_path / "alone" / f"seed_{config.seed}"
        train(config, alone, dataset=linear_dataset, max_action=1.0, progress=False)
        assert without_time(results.read_metrics(run_dir)) == without_time(results.read_metrics(alone))
        assert len(results.read_metrics(run_dir)) == 4
        assert results.read_summary(run_dir)["status"] == "completed"
        got, expected = load_checkpoint(run_dir / "checkpoint.pt"), load_checkpoint(alone / "checkpoint.pt")
        for key, value in expected["agent"]["networks"].items():
            assert torch.equal(got["agent"]["networks"][key], value), key
        for name in ("torch", "generator"):
            assert torch.equal(got["rng"][name], expected["rng"][name]), name
        assert got["rng"]["numpy"]["keys"].equal(expected["rng"]["numpy"]["keys"])


def test_resume_drops_records_written_after_the_checkpoint(tmp_path, linear_dataset):
    """A crash between metrics and checkpoint writes leaves an extra record; the resume removes it."""
    config = small_config(**{"train.epochs": 2, "train.steps_per_epoch": 5, "train.eval_every": 1})
    train(config, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False,
          on_evaluation=lambda record, run_dir: True)
    records = results.read_metrics(tmp_path)
    results.write_metrics(tmp_path, records + [{**records[0], "step": 999}])
    train(config, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False, resume=True)
    assert [r["step"] for r in results.read_metrics(tmp_path)] == [5, 10]


def test_existing_run_needs_resume(tmp_path, linear_dataset):
    config = small_config(**{"train.epochs": 1, "train.steps_per_epoch": 2})
    train(config, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False)
    with pytest.raises(RunDirectoryError, match="already holds a run.*--resume"):
        train(config, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False)


def test_resume_of_a_run_saved_before_a_field_existed(tmp_path, linear_dataset):
    # A run written by an older erdiff has no train.precision in its checkpoint's config: it resumes as float32.
    config = small_config(**{"train.epochs": 2, "train.steps_per_epoch": 2, "train.eval_every": 1})
    train(config, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False,
          on_evaluation=lambda record, run_dir: True)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    del state["config"]["train"]["precision"]
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    summary = train(config, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False, resume=True)
    assert summary["status"] == "completed" and summary["step"] == 4
    bfloat16 = small_config(**{"train.epochs": 2, "train.steps_per_epoch": 2, "train.eval_every": 1,
                               "train.precision": "bfloat16"})
    with pytest.raises(RunDirectoryError, match=r"train.precision: 'float32' -> 'bfloat16'"):
        train(bfloat16, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False, resume=True)


def test_resume_with_another_config_names_the_fields(tmp_path, linear_dataset):
    config = small_config(**{"train.epochs": 1, "train.steps_per_epoch": 2})
    train(config, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False)
    other = small_config(**{"train.epochs": 1, "train.steps_per_epoch": 2, "agent.ent_coef": 0.5})
    with pytest.raises(RunDirectoryError, match=r"agent.ent_coef: 0.01 -> 0.5"):
        train(other, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False, resume=True)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, linear_dataset):
    config = small_config(**{"train.epochs": 1, "train.steps_per_epoch": 2})
    train(config, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False)
    data = (tmp_path / "checkpoint.pt").read_bytes()
    (tmp_path / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="checkpoint.pt is corrupt"):
        train(config, tmp_path, dataset=linear_dataset, max_action=1.0, progress=False, resume=True)
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt or not a torch checkpoint"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
