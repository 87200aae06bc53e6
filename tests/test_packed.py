"""Packed seeds: K seeds trained as one batched model equal K separate runs."""

import numpy as np
import pytest
import torch

from erdiff import results
from erdiff.agent import ERDiffAgent
from erdiff.buffer import TransitionBuffer
from erdiff.checkpoint import load_checkpoint
from erdiff.config import AgentConfig, make_config
from erdiff.errors import ErdiffError
from erdiff.packed import PackedAgents, clip_grad_norm_per_seed_
from erdiff.train import train, train_seeds

SMALL = {"agent.num_critics": "3", "agent.hidden_dim": "32", "train.batch_size": "32", "train.eval_episodes": "0",
         "agent.ema_start": "4", "agent.ema_every": "2"}


def small_config(seed, **overrides):
    return make_config("toy", overrides={**SMALL, "seed": str(seed), **{k: str(v) for k, v in overrides.items()}})


def seeded_agent(seed, config):
    """An agent and its training generator, as a separate run of ``seed`` makes them."""
    torch.manual_seed(seed)
    agent = ERDiffAgent(3, 2, 1.0, config).double()
    agent.make_optimizers()
    generator = torch.Generator()
    generator.set_state(torch.get_rng_state())
    return agent, generator


@pytest.mark.parametrize("max_q_backup", [False, True])
def test_packed_update_equals_separate_updates_in_float64(linear_dataset, max_q_backup):
    # A small grad_norm makes the per-seed clipping bite; EMA and Polyak updates start within the 6 steps.
    config = AgentConfig(num_critics=3, hidden_dim=16, ema_start=2, ema_every=2, tau=0.05, grad_norm=0.3,
                         max_q_backup=max_q_backup)
    buffer = TransitionBuffer(linear_dataset)
    buffer.tensors = {key: value.double() for key, value in buffer.tensors.items()}
    seeds = [0, 5, 11]

    separate = []
    for seed in seeds:
        agent, generator = seeded_agent(seed, config)
        for _ in range(6):
            agent.update(buffer.sample(32, generator), agent.draw_step_noise(32, generator, dtype=torch.float64))
        separate.append(agent)

    pairs = [seeded_agent(seed, config) for seed in seeds]
    packed = PackedAgents([agent for agent, _ in pairs])
    generators = [generator for _, generator in pairs]
    for _ in range(6):
        metrics = packed.update(*packed.draw(buffer, 32, generators))
    assert all(value.shape == (3,) for value in metrics.values())

    weights = []
    for k, alone in enumerate(separate):
        in_pack = packed.seed_agent(k)
        weights.append(in_pack.state_dict()["critic.weights.1"].clone())
        assert in_pack.step == alone.step == 6
        expected, got = alone.state_dict(), in_pack.state_dict()
        for name in expected:
            torch.testing.assert_close(got[name], expected[name], rtol=1e-10, atol=1e-12, msg=name)
        for optimizer in ("actor_optimizer", "critic_optimizer"):
            expected_state = getattr(alone, optimizer).state_dict()["state"]
            got_state = getattr(in_pack, optimizer).state_dict()["state"]
            for index in expected_state:
                for key in ("exp_avg", "exp_avg_sq", "step"):
                    torch.testing.assert_close(got_state[index][key], expected_state[index][key],
                                               rtol=1e-10, atol=1e-14)
    # The seeds really differ: packing did not make them one.
    assert not torch.equal(weights[0], weights[1])


def test_clipping_per_seed_equals_clip_grad_norm_of_each_seed():
    generator = torch.Generator().manual_seed(0)
    shapes = [(3, 4, 5), (3, 5), (3, 1)]
    stacked = [torch.zeros(shape, dtype=torch.float64, requires_grad=True) for shape in shapes]
    for tensor, scale in zip(stacked, (1.0, 10.0, 0.1)):
        tensor.grad = scale * torch.randn(tensor.shape, generator=generator, dtype=torch.float64)
    stacked[0].grad[1] *= 1e-4  # seed 1's norm ends up below max_norm: left unscaled
    separate = [[torch.zeros(shape[1:], dtype=torch.float64, requires_grad=True) for shape in shapes] for _ in range(3)]
    for k in range(3):
        for tensor, source in zip(separate[k], stacked):
            tensor.grad = source.grad[k].clone()
        torch.nn.utils.clip_grad_norm_(separate[k], max_norm=1.0)
    clip_grad_norm_per_seed_(stacked, max_norm=1.0)
    for k in range(3):
        for tensor, source in zip(separate[k], stacked):
            torch.testing.assert_close(source.grad[k], tensor.grad, rtol=1e-12, atol=1e-15)


def test_train_seeds_writes_the_run_directories_of_separate_runs(tmp_path, linear_dataset):
    """Packed training in float32: same files, same records (to float32 rounding) and weights as two `train` runs;
    each packed seed's directory then resumes alone with `train`."""
    configs = [small_config(seed, **{"train.epochs": 4, "train.steps_per_epoch": 10, "train.eval_every": 2})
               for seed in (0, 1)]
    for config in configs:
        train(config, tmp_path / "separate" / f"seed_{config.seed}", dataset=linear_dataset, max_action=1.0,
              progress=False)
    summaries = train_seeds(configs, [tmp_path / "packed" / f"seed_{c.seed}" for c in configs],
                            dataset=linear_dataset, max_action=1.0, progress=False)
    assert [s["status"] for s in summaries] == ["completed", "completed"]

    for config in configs:
        alone, packed = tmp_path / "separate" / f"seed_{config.seed}", tmp_path / "packed" / f"seed_{config.seed}"
        assert sorted(p.name for p in alone.iterdir()) == sorted(p.name for p in packed.iterdir())
        assert (alone / results.CONFIG_FILE).read_text() == (packed / results.CONFIG_FILE).read_text()
        expected, got = results.read_metrics(alone), results.read_metrics(packed)
        assert [r["step"] for r in got] == [r["step"] for r in expected] == [20, 40]
        for record_a, record_b in zip(expected, got):
            for key in ("critic_loss", "bc_loss", "q_mean", "entropy"):
                assert record_b[key] == pytest.approx(record_a[key], rel=1e-4, abs=1e-6), key
        networks_a = load_checkpoint(alone / results.CHECKPOINT_FILE)["agent"]["networks"]
        networks_b = load_checkpoint(packed / results.CHECKPOINT_FILE)["agent"]["networks"]
        for name in networks_a:
            torch.testing.assert_close(networks_b[name], networks_a[name], rtol=1e-4, atol=1e-5, msg=name)

    # Stopped after the first evaluation, a packed seed's directory is finished by `train` alone.
    mixed = tmp_path / "mixed" / "seed_0"
    train_seeds(configs, [mixed, tmp_path / "mixed" / "seed_1"], dataset=linear_dataset, max_action=1.0,
                progress=False, on_evaluation=lambda record, run_dir: True)
    summary = train(configs[0], mixed, dataset=linear_dataset, max_action=1.0, progress=False, resume=True)
    assert summary["status"] == "completed" and summary["step"] == 40
    networks_a = load_checkpoint(tmp_path / "separate" / "seed_0" / results.CHECKPOINT_FILE)["agent"]["networks"]
    networks_b = load_checkpoint(mixed / results.CHECKPOINT_FILE)["agent"]["networks"]
    for name in networks_a:
        torch.testing.assert_close(networks_b[name], networks_a[name], rtol=1e-4, atol=1e-5, msg=name)


def test_packed_stop_and_resume_is_bitwise_identical(tmp_path, linear_dataset):
    configs = [small_config(seed, **{"train.epochs": 4, "train.steps_per_epoch": 10, "train.eval_every": 2})
               for seed in (3, 4)]

    def dirs(name):
        return [tmp_path / name / f"seed_{c.seed}" for c in configs]

    train_seeds(configs, dirs("straight"), dataset=linear_dataset, max_action=1.0, progress=False)
    calls = []
    first = train_seeds(configs, dirs("resumed"), dataset=linear_dataset, max_action=1.0, progress=False,
                        on_evaluation=lambda record, run_dir: calls.append(run_dir) or True)
    assert calls == dirs("resumed")  # every seed reports its evaluation before all stop
    assert [s["status"] for s in first] == ["stopped", "stopped"] and first[0]["step"] == 20
    train_seeds(configs, dirs("resumed"), dataset=linear_dataset, max_action=1.0, progress=False, resume=True)
    for straight, resumed in zip(dirs("straight"), dirs("resumed")):
        a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(resumed / "checkpoint.pt")
        for name in a["agent"]["networks"]:
            assert torch.equal(a["agent"]["networks"][name], b["agent"]["networks"][name]), name
        assert torch.equal(a["rng"]["generator"], b["rng"]["generator"])
        drop_time = [{k: v for k, v in r.items() if k != "time_s"} for r in results.read_metrics(straight)]
        assert drop_time == [{k: v for k, v in r.items() if k != "time_s"} for r in results.read_metrics(resumed)]


def test_packed_seeds_must_share_one_configuration(tmp_path, linear_dataset):
    configs = [small_config(0), small_config(1, **{"agent.eta": 0.5})]
    with pytest.raises(ErdiffError, match=r"seed 1 differs from seed 0 in agent\.eta"):
        train_seeds(configs, [tmp_path / "a", tmp_path / "b"], dataset=linear_dataset, max_action=1.0, progress=False)
    with pytest.raises(ErdiffError, match=r"must be distinct, got \[2, 2\]"):
        train_seeds([small_config(2), small_config(2)], [tmp_path / "a", tmp_path / "b"], dataset=linear_dataset,
                    max_action=1.0, progress=False)
    assert not any(tmp_path.iterdir())  # refused before anything is written


def test_packed_resume_refuses_seeds_at_different_steps(tmp_path, linear_dataset):
    configs = [small_config(seed, **{"train.epochs": 2, "train.steps_per_epoch": 5, "train.eval_every": 1})
               for seed in (0, 1)]
    train(configs[0], tmp_path / "seed_0", dataset=linear_dataset, max_action=1.0, progress=False,
          on_evaluation=lambda record, run_dir: True)
    with pytest.raises(ErdiffError, match="different steps"):
        train_seeds(configs, [tmp_path / "seed_0", tmp_path / "seed_1"], dataset=linear_dataset, max_action=1.0,
                    progress=False, resume=True)
    np.testing.assert_equal([r["step"] for r in results.read_metrics(tmp_path / "seed_0")], [5])
