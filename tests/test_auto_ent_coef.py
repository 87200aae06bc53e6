"""Automatic α (agent.ent_coef: auto, docs/entropy.md §5): the dual step's direction, its defaults, the metrics
record, packed seeds and an exact resume."""

import math

import pytest
import torch
from test_packed import seeded_agent

from erdiff import results
from erdiff.agent import INITIAL_AUTO_ENT_COEF, ERDiffAgent, ent_coef_dual_loss
from erdiff.buffer import TransitionBuffer
from erdiff.checkpoint import load_checkpoint
from erdiff.config import AgentConfig, ConfigError, make_config
from erdiff.packed import PackedAgents
from erdiff.policy import entropy_coefficients
from erdiff.train import train, train_seeds

SMALL = {"agent.num_critics": "3", "agent.hidden_dim": "16", "train.batch_size": "32", "train.eval_episodes": "0",
         "agent.ema_start": "4", "agent.ema_every": "2", "agent.ent_coef": "auto", "agent.alpha_lr": "0.01",
         "agent.entropy_states": "4", "agent.entropy_samples": "8"}


def small_config(seed=0, **overrides):
    return make_config("toy", overrides={**SMALL, "seed": str(seed), **{k: str(v) for k, v in overrides.items()}})


def test_the_dual_loss_gradient_is_the_estimate_minus_the_target():
    log_ent_coef = torch.tensor(math.log(0.01), requires_grad=True)
    entropy = torch.tensor([[1.0], [2.0], [4.0]], requires_grad=True)
    loss = ent_coef_dual_loss(log_ent_coef, entropy, target=5.0)
    (gradient,) = torch.autograd.grad(loss, log_ent_coef)
    assert gradient.item() == pytest.approx(7.0 / 3.0 - 5.0)  # below the target: descent raises log α
    assert not loss.grad_fn.next_functions[1][0]  # Ĥ enters detached: the dual step never moves the policy


@pytest.mark.parametrize("estimator", ["official", "knn", "gaussian"])
@pytest.mark.parametrize("target, direction", [(1e7, 1), (-1e7, -1)])
def test_alpha_rises_below_the_target_and_falls_above(linear_dataset, estimator, target, direction):
    config = AgentConfig(num_critics=2, hidden_dim=16, ent_coef="auto", target_entropy=target, alpha_lr=0.05,
                         entropy_estimator=estimator, entropy_states=4, entropy_samples=8)
    torch.manual_seed(0)
    agent = ERDiffAgent(3, 2, 1.0, config)
    agent.make_optimizers()
    buffer, generator = TransitionBuffer(linear_dataset), torch.Generator().manual_seed(0)
    alphas = [float(agent.ent_coef())]
    for _ in range(4):
        agent.update(buffer.sample(32, generator), agent.draw_step_noise(32, generator))
        alphas.append(float(agent.ent_coef()))
    assert alphas[0] == pytest.approx(INITIAL_AUTO_ENT_COEF)
    steps = [direction * (b - a) for a, b in zip(alphas, alphas[1:])]
    assert all(step > 0 for step in steps), alphas


def test_default_targets_per_estimator():
    official = ERDiffAgent(3, 2, 1.0, AgentConfig(ent_coef="auto"))
    c0, a, _, c = entropy_coefficients(official.actor.sde)
    assert official.target_entropy == pytest.approx(2 * (c0 + c + a / 3))  # ≈ 1.60 at cosine T = 5
    for estimator in ("knn", "gaussian"):
        assert ERDiffAgent(3, 2, 1.0, AgentConfig(ent_coef="auto", entropy_estimator=estimator)).target_entropy == -2
    assert ERDiffAgent(3, 2, 1.0, AgentConfig(ent_coef="auto", target_entropy=0.5)).target_entropy == 0.5


def test_config_values():
    assert make_config("toy", overrides={"agent.ent_coef": "auto"}).agent.ent_coef == "auto"
    assert make_config("toy", overrides={"agent.ent_coef": "0.1"}).agent.ent_coef == 0.1
    with pytest.raises(ConfigError, match=r"'agent.ent_coef' = 'autp' is invalid: expected a number >= 0 or 'auto'"):
        make_config("toy", overrides={"agent.ent_coef": "autp"})
    with pytest.raises(ConfigError, match=r"'agent.target_entropy' = -2.0 is invalid: expected null unless"):
        make_config("toy", overrides={"agent.target_entropy": "-2"})
    # A fixed α keeps the official state: no log α parameter, no third optimizer.
    agent = ERDiffAgent(3, 2, 1.0, AgentConfig())
    agent.make_optimizers()
    assert "log_ent_coef" not in agent.state_dict() and "ent_coef_optimizer" not in agent.training_state()


def test_alpha_is_in_every_record_and_the_resume_is_exact(tmp_path, linear_dataset):
    """2N steps straight == N steps, stop, resume, N steps, with a learned α: log α and its Adam state are in the
    checkpoint, and every record carries the α of that moment."""
    config = small_config(**{"train.epochs": 4, "train.steps_per_epoch": 5, "train.eval_every": 1,
                             "agent.entropy_estimator": "knn"})
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(config, straight, dataset=linear_dataset, max_action=1.0, progress=False)
    first = train(config, resumed, dataset=linear_dataset, max_action=1.0, progress=False,
                  on_evaluation=lambda record, run_dir: record["epoch"] == 2)
    assert first["status"] == "stopped" and first["step"] == 10
    train(config, resumed, dataset=linear_dataset, max_action=1.0, progress=False, resume=True)

    a, b = (load_checkpoint(run / "checkpoint.pt")["agent"] for run in (straight, resumed))
    assert a["networks"].keys() == b["networks"].keys()
    for key in a["networks"]:
        assert torch.equal(a["networks"][key], b["networks"][key]), key
    for state_a, state_b in zip(a["ent_coef_optimizer"]["state"].values(), b["ent_coef_optimizer"]["state"].values()):
        for key in state_a:
            assert torch.equal(state_a[key], state_b[key]), key
    records = results.read_metrics(straight)
    drop_time = [{k: v for k, v in r.items() if k != "time_s"} for r in records]
    assert drop_time == [{k: v for k, v in r.items() if k != "time_s"} for r in results.read_metrics(resumed)]
    alphas = [record["ent_coef"] for record in records]
    assert len(set(alphas)) == len(alphas) == 4  # learned: it moves at every evaluation
    assert alphas[-1] == pytest.approx(math.exp(a["networks"]["log_ent_coef"].item()))


def test_packed_seeds_each_learn_their_own_alpha(tmp_path, linear_dataset):
    configs = [small_config(seed, **{"train.epochs": 2, "train.steps_per_epoch": 5, "train.eval_every": 1,
                                     "agent.entropy_estimator": "gaussian"}) for seed in (3, 4)]
    packed_dirs = [tmp_path / "packed" / f"seed_{c.seed}" for c in configs]
    train_seeds(configs, packed_dirs, dataset=linear_dataset, max_action=1.0, progress=False)
    alphas = [[r["ent_coef"] for r in results.read_metrics(run_dir)] for run_dir in packed_dirs]
    assert alphas[0] != alphas[1]
    # Each packed seed's α and its optimizer state are those of the seed alone (float32: to rounding).
    alone = tmp_path / "alone"
    train(configs[1], alone, dataset=linear_dataset, max_action=1.0, progress=False)
    packed_state, alone_state = (load_checkpoint(d / "checkpoint.pt")["agent"] for d in (packed_dirs[1], alone))
    torch.testing.assert_close(packed_state["networks"]["log_ent_coef"], alone_state["networks"]["log_ent_coef"],
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(packed_state["ent_coef_optimizer"]["state"][0]["exp_avg"],
                               alone_state["ent_coef_optimizer"]["state"][0]["exp_avg"], rtol=1e-3, atol=1e-6)
    assert [r["ent_coef"] for r in results.read_metrics(alone)] == pytest.approx(alphas[1], abs=1e-5)


def test_packed_update_equals_separate_updates_in_float64(linear_dataset):
    config = AgentConfig(num_critics=3, hidden_dim=16, ema_start=2, ema_every=2, ent_coef="auto", alpha_lr=0.05,
                         entropy_estimator="knn", entropy_states=4, entropy_samples=8)
    buffer = TransitionBuffer(linear_dataset)
    buffer.tensors = {key: value.double() for key, value in buffer.tensors.items()}

    separate = []
    for seed in (0, 5):
        agent, generator = seeded_agent(seed, config)
        for _ in range(4):
            agent.update(buffer.sample(32, generator), agent.draw_step_noise(32, generator, dtype=torch.float64))
        separate.append(agent)
    pairs = [seeded_agent(seed, config) for seed in (0, 5)]
    packed = PackedAgents([agent for agent, _ in pairs])
    for _ in range(4):
        packed.update(*packed.draw(buffer, 32, [generator for _, generator in pairs]))
    for k, alone in enumerate(separate):
        in_pack = packed.seed_agent(k)
        torch.testing.assert_close(in_pack.log_ent_coef, alone.log_ent_coef, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(in_pack.actor.model.final.weight, alone.actor.model.final.weight,
                                   rtol=1e-10, atol=1e-12)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(in_pack.ent_coef_optimizer.state_dict()["state"][0][key],
                                       alone.ent_coef_optimizer.state_dict()["state"][0][key], rtol=1e-10, atol=1e-14)
    assert separate[0].log_ent_coef.item() != separate[1].log_ent_coef.item()
