"""The ERDiff agent: one gradient step of critic and actor, and evaluation-time action selection.

One :meth:`ERDiffAgent.update` does, in the official code's order (docs/method.md §9–§11):

1. critic: each member m regresses on its own target y_m = r + γ(1 − d) Q̄_m(s', a'), with a' a full posterior
   sample from the EMA actor (or, with the max-Q backup, y_m uses max_k Q̄_m(s', a'_k) over 10 samples);
   L_Q = mean_{b,m} (Q_m(s_b, a_b) − y_{b,m})²; gradient-norm clipping; Adam.
2. actor: L_π = L_diff + η · (−mean Q_LCB(s, clip(â_0)) / mean|Q|) + α · (−mean Ĥ / mean|Ĥ|), the
   denominators detached; gradient-norm clipping; Adam. The critic is frozen in this backward pass.
   With a sample-based ``agent.entropy_estimator`` (knn, gaussian) the entropy term is α · (−mean Ĥ) in nats
   (docs/entropy.md §4);
   with ``agent.ent_coef: auto`` α = exp(log α) (detached here) and log α takes a dual Adam step on
   log α · (mean Ĥ − target) (docs/entropy.md §5).
3. every ``ema_every`` steps from ``ema_start`` on: EMA actor ← decay·EMA + (1 − decay)·actor.
4. every step: target critic ← (1 − τ)·target + τ·critic.

Everything stays on the device: the step returns 0-dim tensors and never synchronises with the host.
The losses are two methods, :meth:`ERDiffAgent.critic_objective` and :meth:`ERDiffAgent.actor_objective`, of
the batch and the step's random draws (:class:`StepNoise`): packed seeds (:mod:`erdiff.packed`) evaluate the
same two methods for K seeds at once.
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.optim.adam import adam

from erdiff.config import AUTO_ENT_COEF, COMPILE_MODES, AgentConfig, ConfigError
from erdiff.critic import EnsembleCritic, lower_confidence_bound, pessimistic_value
from erdiff.policy import DiffusionPolicy, official_target_entropy, sampled_target_entropy

INITIAL_AUTO_ENT_COEF = 0.01
"""α at the start of an ``agent.ent_coef: auto`` run: the paper's fixed value."""


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


def set_learning_rates(learner, factor: float) -> None:
    """Set the actor's and critic's Adam learning rates of ``learner`` (an agent, or packed agents) to
    ``factor`` × their configured base rates."""
    for optimizer, base in ((learner.actor_optimizer, learner.config.actor_lr),
                            (learner.critic_optimizer, learner.config.critic_lr)):
        for group in optimizer.param_groups:
            group["lr"] = base * factor


class StepNoise(NamedTuple):
    """Every random draw of one update. Drawn before the update so that packed seeds (erdiff.packed) can take
    each seed's draws from its own generator, in the order a separate run of that seed would."""

    target_actions: torch.Tensor
    """[T, B·S, A]: the EMA actor's sampling noise for the next actions (S = max_q_samples with the max-Q backup)"""
    diffusion_t: torch.Tensor
    """[B]: the diffusion step of the actor's loss"""
    diffusion_noise: torch.Tensor
    """[B, A]: ε of the actor's loss"""
    entropy_end: torch.Tensor
    """[B, A]: a_T of the entropy estimate"""
    entropy_chains: torch.Tensor
    """[T, n·K, A]: the sampling noise of a sample-based estimate's K chains for each of n states ([T, 0, A], no
    draws, with the official estimate)"""


def ent_coef_dual_loss(log_ent_coef: torch.Tensor, entropy: torch.Tensor, target: float) -> torch.Tensor:
    """The dual objective of automatic α (SAC's temperature loss with −log π read as Ĥ):

        L(log α) = log α · (mean Ĥ − target),   Ĥ detached,

    whose gradient step raises α while the estimate is below the target and lowers it above."""
    return log_ent_coef * (entropy.mean().detach() - target)


def ema_due(step: int, config: AgentConfig) -> bool:
    """Whether update ``step`` moves the EMA actor: every ``ema_every`` steps from ``ema_start`` on (frozen at its
    initial weights before, as the official code)."""
    return step % config.ema_every == 0 and step >= config.ema_start


def soft_updates(ema: bool, config: AgentConfig, ema_params, actor_params, target_params, critic_params) -> None:
    """Steps 3–4 of an update, on any parameter lists (single or stacked seeds; both are element-wise):
    EMA actor ← lerp toward the actor if ``ema`` (:func:`ema_due`); target critic ← lerp toward the critic by τ."""
    if ema:
        torch._foreach_lerp_(list(ema_params), list(actor_params), 1.0 - config.ema_decay)
    torch._foreach_lerp_(list(target_params), list(critic_params), config.tau)


def step_metrics(critic_loss: torch.Tensor, current_q: torch.Tensor, actor_parts: dict) -> dict[str, torch.Tensor]:
    """The detached metrics of one update; the ensemble is the last axis of ``current_q``."""
    current_q = current_q.detach()
    metrics = {key: value.detach() for key, value in actor_parts.items()}
    metrics["critic_loss"] = critic_loss.detach()
    metrics["q_mean"] = current_q.mean(dim=(-2, -1))
    metrics["q_std"] = (current_q.std(dim=-1).mean(dim=-1) if current_q.shape[-1] > 1
                        else torch.zeros_like(metrics["critic_loss"]))
    return metrics


class ERDiffAgent(nn.Module):
    """Diffusion actor, EMA actor, Q-ensemble and its target, with their optimizers."""

    def __init__(self, state_dim: int, action_dim: int, max_action: float, config: AgentConfig,
                 compile: str = "off"):
        """``compile``: ``off``, ``activation`` (the critic's bias + Mish compiled) or ``update`` (the whole update
        compiled: :func:`compiled_update_step`), as ``train.compile``."""
        super().__init__()
        if compile not in COMPILE_MODES:
            raise ValueError(f"unknown compile mode {compile!r}; expected one of {', '.join(COMPILE_MODES)}")
        self.config = config
        self.compile_mode = compile  # not self.compile: that is nn.Module.compile
        self.max_action = float(max_action)
        if config.entropy_estimator == "gaussian" and config.entropy_samples <= action_dim:
            raise ConfigError(f"config field 'agent.entropy_samples' = {config.entropy_samples} is invalid: expected "
                              f"more than the {action_dim} action dimensions for agent.entropy_estimator 'gaussian' "
                              "(a fitted covariance needs K > d samples)")
        self.actor = DiffusionPolicy(state_dim, action_dim, max_action, T=config.T, schedule=config.schedule,
                                     loss_type=config.loss_type, action_clip=config.action_clip,
                                     hidden_dim=config.hidden_dim)
        self.ema_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = EnsembleCritic(state_dim, action_dim, config.num_critics, config.hidden_dim,
                                     activation={"off": "aten", "activation": "compiled", "update": "traced"}[compile])
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.auto_ent_coef = config.ent_coef == AUTO_ENT_COEF
        if self.auto_ent_coef:
            self.log_ent_coef = nn.Parameter(torch.tensor(math.log(INITIAL_AUTO_ENT_COEF)))
        self.target_entropy = self.default_target_entropy() if config.target_entropy is None else config.target_entropy
        self.step = 0
        self.actor_optimizer: torch.optim.Optimizer | None = None
        self.critic_optimizer: torch.optim.Optimizer | None = None
        self.ent_coef_optimizer: torch.optim.Optimizer | None = None
        self.compiled_update: CompiledUpdate | None = None

    def make_optimizers(self) -> None:
        """Adam for actor and critic, fused (one kernel over all parameters); call once the agent is on its device.
        With ``compile="update"`` also the compiled update, which steps the same optimizers' state."""
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=self.config.actor_lr, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=self.config.critic_lr, fused=True)
        if self.auto_ent_coef:
            self.ent_coef_optimizer = torch.optim.Adam([self.log_ent_coef], lr=self.config.alpha_lr, fused=True)
        if self.compile_mode == "update":
            self.compiled_update = CompiledUpdate(self.critic.weights[0].device)

    def default_target_entropy(self) -> float:
        """The target of automatic α when ``agent.target_entropy`` is None, per estimator (docs/entropy.md §5)."""
        if self.config.entropy_estimator != "official":
            return sampled_target_entropy(self.actor.action_dim)
        return official_target_entropy(self.actor.sde, self.actor.action_dim, self.max_action)

    def ent_coef(self) -> torch.Tensor | float:
        """α of the actor loss: the fixed ``agent.ent_coef``, or exp(log α) detached with ``auto``."""
        return self.log_ent_coef.exp().detach() if self.auto_ent_coef else self.config.ent_coef

    # ---- one gradient step ---------------------------------------------------------------------------
    def draw_step_noise(self, batch_size: int, generator: torch.Generator | None = None,
                        device: torch.device | None = None, dtype: torch.dtype | None = None) -> StepNoise:
        """Every random draw of one :meth:`update`, in the order the update makes them (from ``generator``, or
        torch's default generator)."""
        config = self.config
        samples = batch_size * config.max_q_samples if config.max_q_backup else batch_size
        target_actions = self.ema_actor.sample_noise(samples, generator, device, dtype)
        diffusion_t = torch.randint(0, config.T, (batch_size,), generator=generator, device=device)
        diffusion_noise = torch.randn((batch_size, self.actor.action_dim), generator=generator, device=device,
                                      dtype=dtype)
        entropy_end = torch.randn((batch_size, self.actor.action_dim), generator=generator, device=device,
                                  dtype=dtype)
        if config.entropy_estimator != "official":
            chains = min(config.entropy_states, batch_size) * config.entropy_samples
            entropy_chains = self.actor.sample_noise(chains, generator, device, dtype)
        else:
            entropy_chains = torch.empty((config.T, 0, self.actor.action_dim), device=device, dtype=dtype)
        return StepNoise(target_actions, diffusion_t, diffusion_noise, entropy_end, entropy_chains)

    def critic_target_values(self, next_states: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Q̄_m(s', a') per member, [B, M]: next actions from the EMA actor; max over samples with max-Q backup.
        ``noise`` is the EMA actor's sampling noise (see DiffusionPolicy.sample_noise), drawn here if None."""
        config = self.config
        with torch.no_grad():
            if config.max_q_backup:
                repeated = next_states.repeat_interleave(config.max_q_samples, dim=0)
                q = self.critic_target(repeated, self.ema_actor.sample(repeated, noise=noise))
                return q.view(next_states.shape[0], config.max_q_samples, -1).max(dim=1).values
            return self.critic_target(next_states, self.ema_actor.sample(next_states, noise=noise))

    def critic_objective(self, batch: dict[str, torch.Tensor], noise: StepNoise) -> tuple[torch.Tensor, torch.Tensor]:
        """L_Q with per-member targets (no min or LCB inside the target); returns (L_Q, Q(s, a) [B, M])."""
        config = self.config
        target_q = batch["rewards"] + batch["not_done"] * config.discount * self.critic_target_values(
            batch["next_observations"], noise.target_actions)
        current_q = self.critic(batch["observations"], batch["actions"])
        return F.mse_loss(current_q, target_q), current_q

    def actor_objective(self, batch: dict[str, torch.Tensor], noise: StepNoise) -> dict[str, torch.Tensor]:
        """L_π = L_diff + η·L_Q-term + α·L_entropy-term and its parts (``actor_loss`` carries the gradient; with
        automatic α also ``ent_coef_loss``, the dual loss of log α). The critic must be frozen by the caller:
        gradients flow through it to â_0 only."""
        config = self.config
        states, actions = batch["observations"], batch["actions"]
        bc_loss, predicted_start = self.actor.loss(actions, states, noise.diffusion_t, noise.diffusion_noise)
        # The entropy before the Q-term, as the official code orders them: the gradients reaching â_0 then add up
        # in the same order, bit for bit.
        if config.entropy_estimator != "official":
            # In nats, not normalised: the estimate changes sign, so its mean |Ĥ| can be near 0.
            estimated_states = noise.entropy_chains.shape[1] // config.entropy_samples
            entropy = self.actor.sampled_entropy(states[:estimated_states], noise.entropy_chains,
                                                 config.entropy_estimator)
            entropy_loss = -entropy.mean()
        else:
            entropy = self.actor.entropy(predicted_start, noise.entropy_end)
            entropy_loss = -entropy.mean() / entropy.abs().mean().detach()
        q_policy = self.critic(states, predicted_start.clamp(-self.max_action, self.max_action))
        q_loss = -pessimistic_value(q_policy, config.pessimism, config.lcb_coef).mean() / q_policy.abs().mean().detach()
        actor_loss = bc_loss + config.eta * q_loss + self.ent_coef() * entropy_loss
        parts = {"actor_loss": actor_loss, "bc_loss": bc_loss, "q_loss": q_loss, "entropy_loss": entropy_loss,
                 "entropy": entropy.mean()}
        if self.auto_ent_coef:
            parts["ent_coef_loss"] = ent_coef_dual_loss(self.log_ent_coef, entropy, self.target_entropy)
        return parts

    def forward(self, objective: str, batch: dict[str, torch.Tensor], noise: StepNoise):
        """``critic_objective`` or ``actor_objective`` by name: the entry point through which torch.func
        evaluates them with other (stacked) parameters, see :mod:`erdiff.packed`."""
        if objective == "critic":
            return self.critic_objective(batch, noise)
        return self.actor_objective(batch, noise)

    def update(self, batch: dict[str, torch.Tensor], noise: StepNoise | None = None) -> dict[str, torch.Tensor]:
        """One step of critic, actor, EMA and target updates. Returns detached 0-dim metric tensors.
        ``noise``: the step's random draws (:meth:`draw_step_noise`), drawn from torch's default generator if None."""
        config = self.config
        if noise is None:
            states = batch["observations"]
            noise = self.draw_step_noise(states.shape[0], device=states.device, dtype=states.dtype)
        if self.compiled_update is not None:
            metrics = self.compiled_update(self, batch, noise)
            self.step += 1
            return metrics

        # 1. Critic.
        critic_loss, current_q = self.critic_objective(batch, noise)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        if config.grad_norm > 0:
            nn.utils.clip_grad_norm_(self.critic.parameters(), max_norm=config.grad_norm, foreach=True)
        self.critic_optimizer.step()

        # 2. Actor, with the critic frozen.
        self.critic.requires_grad_(False)
        parts = self.actor_objective(batch, noise)
        self.critic.requires_grad_(True)
        self.actor_optimizer.zero_grad(set_to_none=True)
        parts["actor_loss"].backward()
        if config.grad_norm > 0:
            nn.utils.clip_grad_norm_(self.actor.parameters(), max_norm=config.grad_norm, foreach=True)
        self.actor_optimizer.step()
        if self.ent_coef_optimizer is not None:  # the dual step on log α (no clipping: one scalar)
            self.ent_coef_optimizer.zero_grad(set_to_none=True)
            parts["ent_coef_loss"].backward()
            self.ent_coef_optimizer.step()

        # 3-4. EMA actor and target critic.
        soft_updates(ema_due(self.step, config), config, self.ema_actor.parameters(), self.actor.parameters(),
                     self.critic_target.parameters(), self.critic.parameters())
        self.step += 1
        return step_metrics(critic_loss, current_q, parts)

    def finite_weights(self) -> torch.Tensor:
        """[2, 1] bool, on the device (no host sync): whether the actor's and the critic's weights are all finite.
        A non-finite gradient shows here after the step that applied it, even while the losses were finite."""
        return torch.stack([torch.stack([p.isfinite().all() for p in network.parameters()]).all()
                            for network in (self.actor, self.critic)]).unsqueeze(1)

    # ---- evaluation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def select_actions(self, states: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Evaluation-time action selection (docs/method.md §12): for each state draw ``eval_candidates`` actions
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
        """Networks (with log α under automatic α), optimizers and the step counter (RNG states are saved by the
        training loop)."""
        state = {
            "step": self.step,
            "networks": self.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
        }
        if self.ent_coef_optimizer is not None:
            state["ent_coef_optimizer"] = self.ent_coef_optimizer.state_dict()
        return state

    def load_training_state(self, state: dict) -> None:
        self.load_state_dict(state["networks"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        if self.ent_coef_optimizer is not None:
            self.ent_coef_optimizer.load_state_dict(state["ent_coef_optimizer"])
        self.step = int(state["step"])


# ---- the whole update as one compiled program (train.compile: update) ------------------------------------------

class AdamTensors(NamedTuple):
    """One optimizer's parameters and Adam state, as lists that torch's multi-tensor Adam takes."""

    params: list[torch.Tensor]
    exp_avgs: list[torch.Tensor]
    exp_avg_sqs: list[torch.Tensor]
    steps: list[torch.Tensor]


def adam_tensors(optimizer: torch.optim.Adam) -> AdamTensors:
    """The tensors of ``optimizer`` (one parameter group). State a fresh optimizer lacks is created as fused Adam's
    first step creates it (float32 step on the parameter's device), so the eager and the compiled update step one
    state, and its state_dict is the same either way."""
    tensors = AdamTensors([], [], [], [])
    for param in optimizer.param_groups[0]["params"]:
        state = optimizer.state[param]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        tensors.params.append(param)
        tensors.exp_avgs.append(state["exp_avg"])
        tensors.exp_avg_sqs.append(state["exp_avg_sq"])
        tensors.steps.append(state["step"])
    return tensors


def clipped_adam_step(loss: torch.Tensor, tensors: AdamTensors, lr: torch.Tensor, group: dict,
                      max_norm: float) -> None:
    """The gradients of ``loss`` with respect to ``tensors.params`` (torch.autograd.grad: they never go to
    ``.grad``), clip_grad_norm_'s scaling of them, and torch's multi-tensor Adam with a tensor learning rate
    (capturable: every scalar a tensor)."""
    grads = list(torch.autograd.grad(loss, tensors.params))
    if max_norm > 0:
        total = torch.nn.utils.get_total_norm(grads, foreach=True)
        torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp(max=1.0))
    beta1, beta2 = group["betas"]
    with torch.no_grad():
        # Adam reads the step counts for its bias corrections: given in float64, as fused Adam computes them (in
        # the counters' float32, 1 - 0.999^t loses 5 digits at small t). It counts those copies; the state's here.
        steps = [step.double() for step in tensors.steps]
        adam(tensors.params, grads, tensors.exp_avgs, tensors.exp_avg_sqs, [], steps, foreach=True,
             capturable=True, lr=lr, beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
             amsgrad=False, maximize=False)
        torch._foreach_add_(tensors.steps, 1)


def compiled_update_step(agent: ERDiffAgent, batch: dict[str, torch.Tensor], noise: StepNoise,
                         learning_rates: torch.Tensor, ema: bool, critic_adam: AdamTensors, actor_adam: AdamTensors,
                         groups: tuple[dict, ...], ent_coef_adam: AdamTensors | None = None) -> dict[str, torch.Tensor]:
    """Steps 1–4 of :meth:`ERDiffAgent.update` with the same objectives, written so that torch.compile captures them
    as one graph: ``learning_rates`` = [actor, critic(, log α)] a tensor, ``ema`` (:func:`ema_due`) decided by the
    caller, the optimizers' hyperparameters in ``groups`` = (actor, critic(, log α)) as plain dicts;
    ``ent_coef_adam``: log α and its Adam state under automatic α."""
    config = agent.config
    critic_loss, current_q = agent.critic_objective(batch, noise)
    clipped_adam_step(critic_loss, critic_adam, learning_rates[1], groups[1], config.grad_norm)
    # The critic enters the actor's objective detached, as the eager update freezes it (under autocast a frozen
    # weight is cast anew, not taken from the cast cache of the critic's own step, before its Adam step).
    frozen_critic = {f"critic.{name}": param.detach() for name, param in agent.critic.named_parameters()}
    parts = functional_call(agent, frozen_critic, ("actor", batch, noise))
    clipped_adam_step(parts["actor_loss"], actor_adam, learning_rates[0], groups[0], config.grad_norm)
    if ent_coef_adam is not None:
        clipped_adam_step(parts["ent_coef_loss"], ent_coef_adam, learning_rates[2], groups[2], max_norm=0.0)
    with torch.no_grad():
        soft_updates(ema, config, agent.ema_actor.parameters(), agent.actor.parameters(),
                     agent.critic_target.parameters(), agent.critic.parameters())
    return step_metrics(critic_loss, current_q, parts)


class CompiledUpdate:
    """:func:`compiled_update_step` compiled whole (fullgraph: a graph break is an error, not a slow split) for one
    agent's device. Two graphs in all, with and without the EMA step; the learning rates (log α's too under automatic
    α) live in one tensor that a changed rate is written into, so ``set_learning_rates`` and the ``lr_schedule`` never
    recompile. On CUDA the graphs run as CUDA graphs (mode="reduce-overhead": one replay per update; the optimizer
    state and the rates are marked static so they are updated in place, the batch and noise are copied in)."""

    def __init__(self, device: torch.device):
        self.cuda_graphs = device.type == "cuda"
        self.program = torch.compile(compiled_update_step, fullgraph=True,
                                     mode="reduce-overhead" if self.cuda_graphs else None)
        self.learning_rates: torch.Tensor | None = None
        self.rates: list[float] | None = None

    def __call__(self, agent: ERDiffAgent, batch: dict[str, torch.Tensor], noise: StepNoise) -> dict[str, torch.Tensor]:
        optimizers = [agent.actor_optimizer, agent.critic_optimizer]
        if agent.ent_coef_optimizer is not None:
            optimizers.append(agent.ent_coef_optimizer)
        groups = tuple({key: optimizer.param_groups[0][key] for key in ("betas", "eps", "weight_decay")}
                       for optimizer in optimizers)
        self._set_learning_rates([optimizer.param_groups[0]["lr"] for optimizer in optimizers],
                                 agent.critic.weights[0])
        actor_adam, critic_adam, *ent_coef_adam = (adam_tensors(optimizer) for optimizer in optimizers)
        ent_coef_adam = ent_coef_adam[0] if ent_coef_adam else None
        if self.cuda_graphs:
            for adam_state in (critic_adam, actor_adam, ent_coef_adam):
                for tensor in (() if adam_state is None else
                               (*adam_state.exp_avgs, *adam_state.exp_avg_sqs, *adam_state.steps)):
                    torch._dynamo.mark_static_address(tensor)
            torch.compiler.cudagraph_mark_step_begin()
        with torch._dynamo.config.patch(trace_autograd_ops=True):  # torch.autograd.grad inside the graph
            metrics = self.program(agent, batch, noise, self.learning_rates, ema_due(agent.step, agent.config),
                                   critic_adam, actor_adam, groups, ent_coef_adam)
        # A CUDA graph's outputs are overwritten by its next replay: the caller gets its own copies.
        return {key: value.clone() for key, value in metrics.items()} if self.cuda_graphs else metrics

    def _set_learning_rates(self, rates: list[float], like: torch.Tensor) -> None:
        if rates == self.rates:
            return
        if self.learning_rates is None:
            self.learning_rates = torch.tensor(rates, dtype=like.dtype, device=like.device)
            if self.cuda_graphs:
                torch._dynamo.mark_static_address(self.learning_rates)
        else:
            for index, rate in enumerate(rates):  # in place: the graphs read this tensor
                self.learning_rates[index].fill_(rate)
        self.rates = rates
