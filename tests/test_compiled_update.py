"""train.compile: update — the whole update as one compiled program equals the eager update.

Float64, tiny networks (compiling the two graphs, with and without the EMA step, takes tens of seconds on the
2-core CPU). The two differ only in rounding: the compiled update runs torch's multi-tensor Adam, the eager one fused
Adam, and inductor orders some sums differently; parameters agree to ~1e-15. A broken program (no EMA step, no
clipping, a stale learning rate, bias corrections in float32) moves them by 1e-9 or more.
"""

import dataclasses
import io
import math

import pytest
import torch

from erdiff import results
from erdiff.agent import ERDiffAgent, set_learning_rates
from erdiff.config import AgentConfig, make_config
from erdiff.train import train

DEVICES = [pytest.param("cpu"),
           pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                         reason="no CUDA device here: the CUDA-graph path is not run"))]
# The EMA starts within the steps; the small grad_norm makes clipping bite (checked below).
CONFIG = AgentConfig(num_critics=3, hidden_dim=16, ema_start=2, ema_every=2, tau=0.05, grad_norm=0.02)
TOLERANCE = {"rtol": 1e-10, "atol": 1e-12}


def make_agent(compile_mode, device):
    torch.manual_seed(0)
    agent = ERDiffAgent(3, 2, 1.0, CONFIG, compile=compile_mode).double().to(device)
    agent.make_optimizers()
    return agent


def make_batch(generator, device, size=32):
    batch = {"observations": torch.randn(size, 3, generator=generator, dtype=torch.float64),
             "actions": torch.rand(size, 2, generator=generator, dtype=torch.float64) * 2 - 1,
             "next_observations": torch.randn(size, 3, generator=generator, dtype=torch.float64),
             "rewards": torch.randn(size, 1, generator=generator, dtype=torch.float64),
             "not_done": (torch.rand(size, 1, generator=generator) > 0.1).double()}
    return {key: value.to(device) for key, value in batch.items()}


def steps(agents, generator, device, count):
    """``count`` updates of every agent on the same batches and noise; the metrics of each, per step."""
    history = []
    for _ in range(count):
        batch = make_batch(generator, device)
        noise = agents[0].draw_step_noise(32, generator, dtype=torch.float64)
        noise = type(noise)(*(part.to(device) for part in noise))
        history.append([agent.update(batch, noise) for agent in agents])
    return history


def assert_same_state(got, expected):
    assert got.step == expected.step
    for (name, value), other in zip(got.state_dict().items(), expected.state_dict().values()):
        torch.testing.assert_close(value, other, **TOLERANCE, msg=name)
    for name in ("actor_optimizer", "critic_optimizer"):
        got_state, expected_state = getattr(got, name).state_dict(), getattr(expected, name).state_dict()
        assert got_state["param_groups"] == expected_state["param_groups"]
        assert got_state["state"].keys() == expected_state["state"].keys()
        for index, entry in got_state["state"].items():
            assert list(entry) == list(expected_state["state"][index])  # step, exp_avg, exp_avg_sq
            for key, value in entry.items():
                other = expected_state["state"][index][key]
                assert value.dtype == other.dtype and value.device == other.device
                torch.testing.assert_close(value, other, **TOLERANCE, msg=f"{name} {index} {key}")


def assert_same_metrics(history):
    for compiled, eager in history:
        assert compiled.keys() == eager.keys()
        for key in eager:
            torch.testing.assert_close(compiled[key], eager[key], **TOLERANCE, msg=key)


@pytest.mark.parametrize("device", DEVICES)
def test_compiled_update_equals_eager_update_in_float64(device):
    eager, compiled = make_agent("off", device), make_agent("update", device)
    generator = torch.Generator().manual_seed(1)

    # Clipping bites: the first gradients' norms (critic ≈ 0.06, actor ≈ 5) are above grad_norm.
    batch = make_batch(torch.Generator().manual_seed(1), device)
    noise = eager.draw_step_noise(32, torch.Generator().manual_seed(2), dtype=torch.float64)
    noise = type(noise)(*(part.to(device) for part in noise))
    for loss, network in ((eager.critic_objective(batch, noise)[0], eager.critic),
                          (eager.actor_objective(batch, noise)["actor_loss"], eager.actor)):
        gradients = torch.autograd.grad(loss, list(network.parameters()))
        assert torch.nn.utils.get_total_norm(gradients) > 2 * CONFIG.grad_norm

    torch._dynamo.utils.counters.clear()
    history = steps([compiled, eager], generator, device, 4)  # steps 0-3: with and without the EMA step
    ema_before = [p.clone() for p in eager.ema_actor.parameters()]
    for agent in (compiled, eager):
        set_learning_rates(agent, 0.3)
    with torch._dynamo.config.patch(error_on_recompile=True):  # a new learning rate is data, not a new graph
        history += steps([compiled, eager], generator, device, 3)
    assert_same_metrics(history)
    assert_same_state(compiled, eager)
    assert any(not torch.equal(p, q) for p, q in zip(eager.ema_actor.parameters(), ema_before))
    if device == "cuda":  # the program ran as CUDA graphs, not as compiled kernels launched one by one
        assert torch._dynamo.utils.counters["inductor"]["cudagraph_skips"] == 0


def roundtrip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@pytest.mark.parametrize("first, second", [("update", "off"), ("off", "update")])
def test_checkpoint_resumes_across_compile_modes(first, second):
    """A checkpoint written by a compiled run resumes in an eager one and vice versa, and goes on as a run in one
    mode throughout."""
    reference, before = make_agent("off", "cpu"), make_agent(first, "cpu")
    generator = torch.Generator().manual_seed(1)
    steps([reference, before], generator, "cpu", 3)
    after = make_agent(second, "cpu")
    after.load_training_state(roundtrip(before.training_state()))
    history = steps([after, reference], generator, "cpu", 3)
    assert_same_metrics(history)
    assert_same_state(after, reference)


def test_compiled_update_under_bfloat16_autocast_follows_the_eager_one():
    """train.precision bfloat16 with the whole update compiled: the critic enters the actor's objective frozen, as
    eagerly (not as the bfloat16 copies autocast cached for the critic's own step, which also fails to compile).
    The products run in the same bfloat16 kernels; the element-wise work rounds differently (1e-5 here)."""
    agents = []
    for mode in ("update", "off"):
        torch.manual_seed(0)
        agents.append(ERDiffAgent(3, 2, 1.0, CONFIG, compile=mode))
        agents[-1].make_optimizers()
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        batch = {key: value.float() for key, value in make_batch(generator, "cpu").items()}
        noise = agents[0].draw_step_noise(32, generator)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            compiled, eager = (agent.update(batch, noise) for agent in agents)
        for key in ("critic_loss", "bc_loss", "q_loss"):
            torch.testing.assert_close(compiled[key], eager[key], rtol=1e-3, atol=1e-5, msg=key)


def test_training_run_resumes_across_compile_modes(tmp_path, linear_dataset):
    """Through erdiff.train: a run trained compiled and stopped resumes eagerly (train.compile may change across a
    resume) and records what an eager run records, to float32 rounding."""
    small = {"agent.num_critics": "3", "agent.hidden_dim": "16", "train.batch_size": "32", "train.eval_episodes": "0",
             "agent.ema_start": "4", "agent.ema_every": "2", "train.steps_per_epoch": "5", "train.eval_every": "1",
             "train.epochs": "4"}

    def run(name, compile_mode, **kwargs):
        config = make_config("toy", overrides={**small, "train.compile": compile_mode})
        return train(config, tmp_path / name, dataset=linear_dataset, max_action=1.0, progress=False, **kwargs)

    assert run("resumed", "update", on_evaluation=lambda record, _: record["epoch"] == 2)["status"] == "stopped"
    assert run("resumed", "off", resume=True)["status"] == "completed"
    assert run("eager", "off")["status"] == "completed"
    resumed, eager = (results.read_metrics(tmp_path / name) for name in ("resumed", "eager"))
    assert [record["step"] for record in resumed] == [record["step"] for record in eager] == [5, 10, 15, 20]
    for got, expected in zip(resumed, eager):
        for key in ("critic_loss", "actor_loss", "bc_loss", "q_mean"):
            assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), (got["step"], key)


@pytest.mark.slow  # one more compilation: about a minute on the 2-core CPU, more under load
@pytest.mark.parametrize("device", DEVICES)
def test_compiled_update_learns_alpha_with_a_sampled_estimate_as_the_eager_one(device):
    """agent.ent_coef auto with the knn estimate inside the compiled program: log α's Adam step (its learning rate
    a third entry of the rates tensor) and the estimate's K chains per state agree with the eager update. Two steps,
    before the EMA starts: one graph to compile."""
    config = dataclasses.replace(CONFIG, ent_coef="auto", alpha_lr=0.05, entropy_estimator="knn", entropy_states=4,
                                 entropy_samples=8)
    agents = []
    for mode in ("update", "off"):
        torch.manual_seed(0)
        agents.append(ERDiffAgent(3, 2, 1.0, config, compile=mode).double().to(device))
        agents[-1].make_optimizers()
    history = steps(agents, torch.Generator().manual_seed(1), device, 2)
    assert_same_metrics(history)
    compiled, eager = agents
    assert_same_state(compiled, eager)
    assert eager.log_ent_coef.item() != math.log(0.01)
    for key in ("exp_avg", "exp_avg_sq", "step"):
        torch.testing.assert_close(compiled.ent_coef_optimizer.state_dict()["state"][0][key],
                                   eager.ent_coef_optimizer.state_dict()["state"][0][key], **TOLERANCE)
