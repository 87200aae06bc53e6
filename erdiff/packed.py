"""Packed seeds: K seeds of one configuration trained in one process as one batched model.

Each seed is an ordinary :class:`~erdiff.agent.ERDiffAgent`, built after ``set_seed(seed)`` exactly as a
separate run builds it. Their parameters are stacked on a new leading axis of size K, and one update evaluates
the agent's own objectives (``critic_objective`` and ``actor_objective``) for all K seeds at once with
``torch.func.vmap`` over ``torch.func.functional_call``: the same math as K separate updates, a few large
kernels instead of K small ones. What differs from a single update, and why it still equals K of them:

* random draws: every seed draws its batch indices and its :class:`~erdiff.agent.StepNoise` from its own
  generator, in the order a separate run draws them from torch's default generator;
* gradients: the K losses are summed before one backward pass; seed k's loss depends only on slice k of the
  stacked parameters, so slice k of each gradient is that seed's own gradient;
* Adam, Polyak and EMA act element-wise, so on stacked tensors they are K independent updates; only the
  gradient-norm clipping needs a norm per seed (:func:`clip_grad_norm_per_seed_`).

``tests/test_packed.py`` checks that K packed seeds equal K separate runs (float64; in float32 the batched
products round differently, and training amplifies that until the runs separate: see the README). Packing is
meant for a device that one seed leaves idle (a GPU running small ensembles); on the 2-core CPU here it is
slower than separate runs (bench/RESULTS.md).
"""

from __future__ import annotations

import copy

import torch
from torch.func import functional_call, vmap

from erdiff.agent import ERDiffAgent, StepNoise, ema_due, soft_updates, step_metrics
from erdiff.buffer import TransitionBuffer
from erdiff.critic import eager_bias_mish

TRAINED = ("actor.", "critic.")
"""Parameter-name prefixes of the networks with optimizers; ``ema_actor.`` and ``critic_target.`` follow them."""

LOG_ENT_COEF = "log_ent_coef"
"""The parameter of automatic α (ERDiffAgent.log_ent_coef): one per seed, [K] stacked, with its own Adam."""


def clip_grad_norm_per_seed_(parameters: list[torch.Tensor], max_norm: float) -> None:
    """``torch.nn.utils.clip_grad_norm_`` for each seed of stacked parameters: seed k's gradients (slice k
    of every ``.grad``) are scaled by min(1, max_norm / (‖g_k‖ + 1e−6)), ‖g_k‖ the 2-norm over all of them."""
    grads = [p.grad for p in parameters if p.grad is not None]
    per_tensor = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads])  # [P, K]
    total = torch.linalg.vector_norm(per_tensor, dim=0)  # [K]
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))


class PackedAgents:
    """K agents of one configuration updated together. Their weights and optimizer states live stacked here, once:
    the agents passed in are only read (the caller drops all but the first); :meth:`seed_agent` writes one seed's
    state into the first agent for evaluation and checkpoints."""

    def __init__(self, agents: list[ERDiffAgent]):
        self.config = agents[0].config
        # The first agent is also the structure (and the SDE buffers) that functional_call evaluates. Its critic
        # uses aten's Mish: train.compile's compiled activation runs 2x slower under vmap (M = 64, CPU).
        self.view = agents[0]
        for critic in (self.view.critic, self.view.critic_target):
            critic.activation = eager_bias_mish
        names = [name for name, _ in self.view.named_parameters()]
        self.params = {name: torch.stack([agent.get_parameter(name).detach() for agent in agents])
                       .requires_grad_(name.startswith(TRAINED) or name == LOG_ENT_COEF) for name in names}
        self.names = {prefix: [name for name in names if name.startswith(prefix)]
                      for prefix in ("actor.", "ema_actor.", "critic.", "critic_target.", LOG_ENT_COEF)}
        self.step = self.view.step
        self.actor_optimizer = torch.optim.Adam(self._group("actor."), lr=self.config.actor_lr, fused=True)
        self.critic_optimizer = torch.optim.Adam(self._group("critic."), lr=self.config.critic_lr, fused=True)
        self.ent_coef_optimizer = (torch.optim.Adam(self._group(LOG_ENT_COEF), lr=self.config.alpha_lr, fused=True)
                                   if self.view.auto_ent_coef else None)
        for name in self._optimizer_names():
            states = [getattr(agent, name).state_dict() for agent in agents]
            getattr(self, name).load_state_dict(_stack_optimizer_states(states))

    def _optimizer_names(self) -> list[str]:
        names = ["actor_optimizer", "critic_optimizer"]
        return names + ["ent_coef_optimizer"] if self.ent_coef_optimizer is not None else names

    def _group(self, prefix: str) -> list[torch.Tensor]:
        return [self.params[name] for name in self.names[prefix]]

    def draw(self, buffer: TransitionBuffer, batch_size: int, generators: list[torch.Generator]):
        """Each seed's batch and step noise from its own generator, stacked: ([K, B, …] batch, StepNoise)."""
        batches, noises = [], []
        for generator in generators:
            batch = buffer.sample(batch_size, generator)
            batches.append(batch)
            noises.append(self.view.draw_step_noise(batch_size, generator, buffer.device,
                                                    batch["observations"].dtype))
        stacked = {key: torch.stack([batch[key] for batch in batches]) for key in batches[0]}
        return stacked, StepNoise(*(torch.stack(parts) for parts in zip(*noises)))

    def _objective(self, objective: str, params: dict[str, torch.Tensor], batch: dict, noise: StepNoise):
        def one_seed(seed_params, seed_batch, seed_noise):
            return functional_call(self.view, seed_params, (objective, seed_batch, seed_noise))

        return vmap(one_seed)(params, batch, noise)

    def update(self, batch: dict[str, torch.Tensor], noise: StepNoise) -> dict[str, torch.Tensor]:
        """One update of every seed (the steps of ERDiffAgent.update); metrics are [K] tensors."""
        config = self.config
        critic_inputs = {name: self.params[name] for prefix in ("critic.", "critic_target.", "ema_actor.")
                         for name in self.names[prefix]}
        critic_loss, current_q = self._objective("critic", critic_inputs, batch, noise)
        self._optimize(self.critic_optimizer, critic_loss, self._group("critic."))

        # The critic enters the actor's objective detached: gradients flow through it to â_0 only.
        actor_inputs = {name: self.params[name] for name in self.names["actor."] + self.names[LOG_ENT_COEF]}
        actor_inputs.update({name: self.params[name].detach() for name in self.names["critic."]})
        parts = self._objective("actor", actor_inputs, batch, noise)
        self._optimize(self.actor_optimizer, parts["actor_loss"], self._group("actor."))
        if self.ent_coef_optimizer is not None:  # each seed's dual step on its own log α (no clipping)
            self._optimize(self.ent_coef_optimizer, parts["ent_coef_loss"], self._group(LOG_ENT_COEF), clip=False)

        with torch.no_grad():
            soft_updates(ema_due(self.step, config), config, self._group("ema_actor."), self._group("actor."),
                         self._group("critic_target."), self._group("critic."))
        self.step += 1
        return step_metrics(critic_loss, current_q, parts)

    def _optimize(self, optimizer: torch.optim.Optimizer, losses: torch.Tensor, params: list[torch.Tensor],
                  clip: bool = True) -> None:
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # seed k's loss reaches slice k of the parameters only
        if clip and self.config.grad_norm > 0:
            clip_grad_norm_per_seed_(params, self.config.grad_norm)
        optimizer.step()

    def finite_weights(self) -> torch.Tensor:
        """[2, K] bool: whether each seed's actor and critic weights are all finite (ERDiffAgent.finite_weights)."""
        return torch.stack([torch.stack([p.isfinite().flatten(1).all(1) for p in self._group(prefix)]).all(0)
                            for prefix in TRAINED])

    @torch.no_grad()
    def seed_agent(self, k: int) -> ERDiffAgent:
        """Seed k as a plain agent (weights, optimizer state and step written into the first agent, which is
        returned): what evaluation and checkpoints of seed k read. Valid until the next call."""
        for name, stacked in self.params.items():
            self.view.get_parameter(name).copy_(stacked[k])
        for name in self._optimizer_names():
            getattr(self.view, name).load_state_dict(_seed_optimizer_state(getattr(self, name).state_dict(), k))
        self.view.step = self.step
        return self.view


def _stack_optimizer_states(states: list[dict]) -> dict:
    """One optimizer state for stacked parameters from K seeds' states (same step; per-element buffers stacked)."""
    first = states[0]
    stacked = {}
    for index, entry in first["state"].items():
        stacked[index] = {key: value.clone() if key == "step" else torch.stack([s["state"][index][key] for s in states])
                          for key, value in entry.items()}
    return {"state": stacked, "param_groups": copy.deepcopy(first["param_groups"])}


def _seed_optimizer_state(state: dict, k: int) -> dict:
    """Seed k's slice of a stacked optimizer state, in the form a single agent's optimizer loads."""
    return {"state": {index: {key: (value.clone() if key == "step" else value[k].clone())
                              for key, value in entry.items()}
                      for index, entry in state["state"].items()},
            "param_groups": copy.deepcopy(state["param_groups"])}
