"""The ERDiff agent: one gradient step of critic and actor, and evaluation-time action selection.

One :meth:`ERDiffAgent.update` does, in the official code's order (method.md §1.5–1.8):

1. critic: each member m regresses on its own target y_m = r + γ(1 − d) Q̄_m(s', a'), with a' a full posterior
   sample from the EMA actor (or, with the max-Q backup, y_m uses max_k Q̄_m(s', a'_k) over 10 samples);
   L_Q = mean_{b,m} (Q_m(s_b, a_b) − y_{b,m})²; gradient-norm clipping; Adam.
2. actor: L_π = L_diff + η · (−mean Q_LCB(s, clip(â_0)) / mean|Q|) + α · (−mean Ĥ / mean|Ĥ|), the
   denominators detached; gradient-norm clipping; Adam. The critic is frozen in this backward pass.
3. every ``ema_every`` steps from ``ema_start`` on: EMA actor ← decay·EMA + (1 − decay)·actor.
4. every step: target critic ← (1 − τ)·target + τ·critic.

Everything stays on the device: the step returns 0-dim tensors and never synchronises with the host.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from erdiff.config import AgentConfig
from erdiff.critic import EnsembleCritic, lower_confidence_bound, pessimistic_value
from erdiff.policy import DiffusionPolicy


def learning_rate_factor(schedule: str, step: int, total_steps: int, steps_per_period: int,
                         num_epochs: int) -> float:
    """Multiplier of the base learning rate at gradient step ``step``.

    * ``official``: the official code's CosineAnnealingLR(T_max = num_epochs) is stepped once per evaluation
      period, so after n periods the factor is ½(1 + cos(π n / num_epochs)); over a paper run n reaches only
      40 of 2000 (Gym), so the rate stays ≈ constant (final factor ≈ 0.999).
    * ``cosine``: ½(1 + cos(π · step / total_steps)), stepped every gradient step.
    * ``constant``: 1.
    """
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    if schedule == "official":
        periods = step // steps_per_period
        return 0.5 * (1.0 + math.cos(math.pi * periods / num_epochs))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")


class ERDiffAgent(nn.Module):
    """Diffusion actor, EMA actor, Q-ensemble and its target, with their optimizers."""

    def __init__(self, state_dim: int, action_dim: int, max_action: float, config: AgentConfig,
                 compile: bool = False):
        super().__init__()
        self.config = config
        self.max_action = float(max_action)
        self.actor = DiffusionPolicy(state_dim, action_dim, max_action, T=config.T, schedule=config.schedule,
                                     loss_type=config.loss_type, action_clip=config.action_clip,
                                     hidden_dim=config.hidden_dim)
        self.ema_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = EnsembleCritic(state_dim, action_dim, config.num_critics, config.hidden_dim,
                                     compile_activation=compile)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.step = 0
        self.actor_optimizer: torch.optim.Optimizer | None = None
        self.critic_optimizer: torch.optim.Optimizer | None = None

    def make_optimizers(self) -> None:
        """Adam for actor and critic, fused (one kernel over all parameters); call once the agent is on its device."""
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=self.config.actor_lr, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=self.config.critic_lr, fused=True)

    def set_learning_rate_factor(self, factor: float) -> None:
        for optimizer, base in ((self.actor_optimizer, self.config.actor_lr),
                                (self.critic_optimizer, self.config.critic_lr)):
            for group in optimizer.param_groups:
                group["lr"] = base * factor

    # ---- one gradient step ---------------------------------------------------------------------------
    def critic_target_values(self, next_states: torch.Tensor) -> torch.Tensor:
        """Q̄_m(s', a') per member, [B, M]: next actions from the EMA actor; max over samples with max-Q backup."""
        config = self.config
        with torch.no_grad():
            if config.max_q_backup:
                repeated = next_states.repeat_interleave(config.max_q_samples, dim=0)
                q = self.critic_target(repeated, self.ema_actor.sample(repeated))
                return q.view(next_states.shape[0], config.max_q_samples, -1).max(dim=1).values
            return self.critic_target(next_states, self.ema_actor.sample(next_states))

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One step of critic, actor, EMA and target updates. Returns detached 0-dim metric tensors."""
        config = self.config
        states, actions = batch["observations"], batch["actions"]
        next_states, rewards, not_done = batch["next_observations"], batch["rewards"], batch["not_done"]

        # 1. Critic: per-member targets, no min or LCB inside the target.
        target_q = rewards + not_done * config.discount * self.critic_target_values(next_states)
        current_q = self.critic(states, actions)
        critic_loss = F.mse_loss(current_q, target_q)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        if config.grad_norm > 0:
            nn.utils.clip_grad_norm_(self.critic.parameters(), max_norm=config.grad_norm, foreach=True)
        self.critic_optimizer.step()

        # 2. Actor: diffusion loss + normalized Q-LCB term + normalized entropy term.
        bc_loss, predicted_start = self.actor.loss(actions, states)
        entropy = self.actor.entropy(predicted_start)
        self.critic.requires_grad_(False)  # gradients flow through the critic to â_0 only
        q_policy = self.critic(states, predicted_start.clamp(-self.max_action, self.max_action))
        self.critic.requires_grad_(True)
        q_loss = -pessimistic_value(q_policy, config.pessimism, config.lcb_coef).mean() / q_policy.abs().mean().detach()
        entropy_loss = -entropy.mean() / entropy.abs().mean().detach()
        actor_loss = bc_loss + config.eta * q_loss + config.ent_coef * entropy_loss
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        if config.grad_norm > 0:
            nn.utils.clip_grad_norm_(self.actor.parameters(), max_norm=config.grad_norm, foreach=True)
        self.actor_optimizer.step()

        # 3-4. EMA actor (frozen at its initial weights before ema_start, as the official code) and target critic.
        if self.step % config.ema_every == 0 and self.step >= config.ema_start:
            ema_params = list(self.ema_actor.parameters())
            torch._foreach_lerp_(ema_params, list(self.actor.parameters()), 1.0 - config.ema_decay)
        target_params = list(self.critic_target.parameters())
        torch._foreach_lerp_(target_params, list(self.critic.parameters()), config.tau)
        self.step += 1

        current_q = current_q.detach()
        return {
            "actor_loss": actor_loss.detach(),
            "critic_loss": critic_loss.detach(),
            "bc_loss": bc_loss.detach(),
            "q_loss": q_loss.detach(),
            "entropy_loss": entropy_loss.detach(),
            "entropy": entropy.detach().mean(),
            "q_mean": current_q.mean(),
            "q_std": current_q.std(dim=1).mean() if current_q.shape[1] > 1 else torch.zeros_like(critic_loss),
        }

    # ---- evaluation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def select_actions(self, states: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Evaluation-time action selection (method.md §1.7): for each state draw ``eval_candidates`` actions
        from the current (non-EMA) actor, score them with the target critic's LCB, and pick one by softmax over
        the scores (official) or by argmax. As in the official code the scores are the LCB whatever
        ``agent.pessimism`` is (a single critic's own value when M = 1)."""
        config = self.config
        num_states, num_candidates = states.shape[0], config.eval_candidates
        repeated = states.repeat_interleave(num_candidates, dim=0)
        candidates = self.actor.sample(repeated, generator=generator)
        q = self.critic_target(repeated, candidates)
        scores = lower_confidence_bound(q, config.lcb_coef) if q.shape[1] > 1 else q[:, 0]
        scores = scores.view(num_states, num_candidates)
        if config.eval_selection == "softmax":
            chosen = torch.multinomial(F.softmax(scores, dim=-1), 1, generator=generator).squeeze(-1)
        else:
            chosen = scores.argmax(dim=-1)
        return candidates.view(num_states, num_candidates, -1)[torch.arange(num_states), chosen]

    def policy(self, generator: torch.Generator | None = None):
        """A numpy policy for evaluators: [N, obs_dim] observations -> [N, act_dim] actions, one batched call."""
        device = self.critic.weights[0].device

        def act(observations: np.ndarray) -> np.ndarray:
            states = torch.as_tensor(np.asarray(observations, dtype=np.float32), device=device)
            return self.select_actions(states, generator).cpu().numpy()

        return act

    # ---- checkpointing -------------------------------------------------------------------------------
    def training_state(self) -> dict:
        """Networks, optimizers and the step counter (RNG states are saved by the training loop)."""
        return {
            "step": self.step,
            "networks": self.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
        }

    def load_training_state(self, state: dict) -> None:
        self.load_state_dict(state["networks"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.step = int(state["step"])
