"""The fast update equals a straightforward one, in float64 on CPU.

The reference below is written the plain way (as the official code): M separate critic MLPs in a Python loop,
non-fused Adam, the critic's weight gradients computed in the actor's backward (then discarded), Polyak and EMA
updates as loops over parameters. The fast path (stacked ensemble with batched matmuls, shared first layer, fused
bias+Mish, fused Adam, frozen critic in the actor's backward, foreach lerp) must give the same numbers.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from erdiff.agent import ERDiffAgent
from erdiff.config import AgentConfig


class ReferenceCritic(nn.Module):
    """M plain MLPs, evaluated one after another."""

    def __init__(self, ensemble):
        super().__init__()
        self.members = nn.ModuleList()
        for m in range(ensemble.num_critics):
            layers = []
            for layer, (weight, bias) in enumerate(zip(ensemble.weights, ensemble.biases)):
                linear = nn.Linear(weight.shape[1], weight.shape[2]).double()
                with torch.no_grad():
                    linear.weight.copy_(weight[m].T)
                    linear.bias.copy_(bias[m, 0])
                layers += [linear] if layer == len(ensemble.weights) - 1 else [linear, nn.Mish()]
            self.members.append(nn.Sequential(*layers))

    def forward(self, state, action):
        x = torch.cat([state, action], dim=1)
        return torch.cat([member(x) for member in self.members], dim=1)


def reference_step(actor, ema_actor, critic, critic_target, actor_opt, critic_opt, batch, config, step):
    s, a, s2, r, not_done = (batch[k] for k in ("observations", "actions", "next_observations", "rewards", "not_done"))
    with torch.no_grad():
        target = r + not_done * config.discount * critic_target(s2, ema_actor.sample(s2))
    critic_loss = F.mse_loss(critic(s, a), target)
    critic_opt.zero_grad()
    critic_loss.backward()
    nn.utils.clip_grad_norm_(critic.parameters(), config.grad_norm, foreach=False)
    critic_opt.step()

    bc_loss, a0 = actor.loss(a, s)
    entropy = actor.entropy(a0)
    q = critic(s, a0.clamp(-1.0, 1.0))
    q_loss = -(q.mean(1) - config.lcb_coef * q.std(1)).mean() / q.abs().mean().detach()
    entropy_loss = -entropy.mean() / entropy.abs().mean().detach()
    actor_loss = bc_loss + config.eta * q_loss + config.ent_coef * entropy_loss
    actor_opt.zero_grad()
    actor_loss.backward()  # also fills critic .grad, which the next critic step zeroes
    nn.utils.clip_grad_norm_(actor.parameters(), config.grad_norm, foreach=False)
    actor_opt.step()

    if step % config.ema_every == 0 and step >= config.ema_start:
        for ema, online in zip(ema_actor.parameters(), actor.parameters()):
            ema.data.copy_(config.ema_decay * ema.data + (1 - config.ema_decay) * online.data)
    for target_p, online in zip(critic_target.parameters(), critic.parameters()):
        target_p.data.copy_(config.tau * online.data + (1 - config.tau) * target_p.data)


def ensemble_as_reference_tensors(ensemble):
    """Stacked critic weights, rearranged per member like ReferenceCritic's parameters."""
    out = []
    for m in range(ensemble.num_critics):
        for weight, bias in zip(ensemble.weights, ensemble.biases):
            out += [weight[m].T, bias[m, 0]]
    return out


@pytest.mark.parametrize("compile_mode", ["off", "activation"])
def test_fast_update_equals_straightforward_update_in_float64(compile_mode):
    config = AgentConfig(num_critics=3, hidden_dim=16, ema_start=2, ema_every=2, tau=0.05)
    torch.manual_seed(0)
    agent = ERDiffAgent(3, 2, 1.0, config, compile=compile_mode).double()
    agent.make_optimizers()
    actor = copy.deepcopy(agent.actor)
    ema_actor = copy.deepcopy(agent.ema_actor)
    critic = ReferenceCritic(agent.critic)
    critic_target = ReferenceCritic(agent.critic_target).requires_grad_(False)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=config.actor_lr, foreach=False)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=config.critic_lr, foreach=False)

    g = torch.Generator().manual_seed(1)
    for step in range(6):
        batch = {"observations": torch.randn(32, 3, generator=g, dtype=torch.float64),
                 "actions": torch.rand(32, 2, generator=g, dtype=torch.float64) * 2 - 1,
                 "next_observations": torch.randn(32, 3, generator=g, dtype=torch.float64),
                 "rewards": torch.randn(32, 1, generator=g, dtype=torch.float64),
                 "not_done": (torch.rand(32, 1, generator=g) > 0.1).double()}
        torch.manual_seed(100 + step)
        agent.update(batch)
        torch.manual_seed(100 + step)
        reference_step(actor, ema_actor, critic, critic_target, actor_opt, critic_opt, batch, config, step)

    pairs = [(ensemble_as_reference_tensors(agent.critic), critic.parameters()),
             (ensemble_as_reference_tensors(agent.critic_target), critic_target.parameters()),
             (agent.actor.parameters(), actor.parameters()),
             (agent.ema_actor.parameters(), ema_actor.parameters())]
    for fast_tensors, slow_tensors in pairs:
        fast_tensors, slow_tensors = list(fast_tensors), list(slow_tensors)
        assert len(fast_tensors) == len(slow_tensors)
        for fast, slow in zip(fast_tensors, slow_tensors):
            torch.testing.assert_close(fast, slow, rtol=1e-9, atol=1e-11)


def test_closed_form_mish_equals_mish():
    from erdiff.critic import bias_mish

    x = torch.linspace(-40, 40, 20001, dtype=torch.float64)
    torch.testing.assert_close(bias_mish(x, torch.zeros(())), F.mish(x), rtol=1e-13, atol=1e-15)
    x32 = x.float()
    torch.testing.assert_close(bias_mish(x32, torch.zeros(())), F.mish(x32), rtol=2e-6, atol=1e-7)
