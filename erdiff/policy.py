"""The diffusion policy: a noise-prediction network on the mean-reverting SDE (docs/method.md §4–§7).

The network ε_φ(a_t, t, s) predicts the noise of a noised action. From it the policy gets
* its training loss (noise matching, NML, or the IR-SDE maximum-likelihood loss, MLL),
* the one-step clean-action prediction â_0 that the Q and entropy terms of the actor loss use,
* actions, by posterior ("optimal") sampling over the T steps,
* the entropy estimate Ĥ(s) ≈ −log π(â_0 | s) from one closed-form posterior step (official), or
* a spread-sensitive estimate of H(π(·|s)) from K reparameterized samples per state (k-nearest-neighbour or a
  fitted Gaussian's, docs/entropy.md §4).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from erdiff.sde import MeanRevertingSDE


def entropy_coefficients(sde: MeanRevertingSDE) -> tuple[float, float, float, float]:
    """(c0, A, B, C) of the entropy estimate written out per action dimension (docs/entropy.md):

        Ĥ = c0 + A·â_0² + B·â_0·a_T + C·a_T²      (summed over dimensions by :meth:`DiffusionPolicy.entropy`).

    With r = 1 − θ_0·dt (so a_1 = r·â_0) and, for the three log-densities ℓ(x1, x2; t1, t2) of
    :meth:`MeanRevertingSDE.log_reverse_transition`, m = e^{−Δ} and v = 1 − e^{−2Δ} at their Δ = θ̄[t2] − θ̄[t1]:
    term 1 ℓ(a_1, a_T; 1, T−1) with (m1, v1), term 2 ℓ(â_0, a_1; 0, 1) with (m2, v2), term 3 ℓ(â_0, a_T; 0, T−1)
    with (m3, v3), the estimate −(ℓ1 + ℓ2 − ℓ3) expands to

        c0 = ½ ln(2π v1 v2 / v3),        A = ½ [r²/v1 + (1 − m2 r)²/v2 − 1/v3],
        B  = m3/v3 − r m1/v1,            C = ½ [m1²/v1 − m3²/v3].

    Only the SDE's constants enter: not the network, not the state. Computed in float64 from the SDE's buffers.
    """
    thetas_bar = [float(value) for value in sde.thetas_bar]
    r = 1.0 - float(sde.thetas[0]) * sde.dt

    def decay_and_var(t1: int, t2: int) -> tuple[float, float]:
        m = math.exp(-(thetas_bar[t2] - thetas_bar[t1]))
        return m, 1.0 - m**2

    m1, v1 = decay_and_var(1, sde.T - 1)
    m2, v2 = decay_and_var(0, 1)
    m3, v3 = decay_and_var(0, sde.T - 1)
    c0 = 0.5 * math.log(2.0 * math.pi * v1 * v2 / v3)
    a = 0.5 * (r**2 / v1 + (1.0 - m2 * r) ** 2 / v2 - 1.0 / v3)
    b = m3 / v3 - r * m1 / v1
    c = 0.5 * (m1**2 / v1 - m3**2 / v3)
    return c0, a, b, c


def unit_ball_log_volume(dim: int) -> float:
    """log V_d of the d-dimensional Euclidean unit ball: V_d = π^{d/2} / Γ(d/2 + 1)."""
    return 0.5 * dim * math.log(math.pi) - math.lgamma(0.5 * dim + 1.0)


KNN_MIN_SQUARED_DISTANCE = 1e-12
"""Floor of a squared neighbour distance: coincident samples (actions clipped onto one bound) give a finite
log-distance instead of −∞."""


def knn_entropy(samples: torch.Tensor) -> torch.Tensor:
    """Kozachenko–Leonenko estimate of the differential entropy of each row's distribution, [..., K, d] -> [...]
    (docs/entropy.md §4): with r_i the Euclidean distance from sample i to its nearest other sample,

        Ĥ = ψ(K) − ψ(1) + log V_d + (d / K) Σ_i log r_i,      V_d = π^{d/2} / Γ(d/2 + 1).

    Differentiable in the samples (the nearest neighbour is chosen, then its distance differentiated); the
    distances are formed as sums of squares, never through a square root at 0.
    """
    count, dim = samples.shape[-2], samples.shape[-1]
    squared = ((samples.unsqueeze(-2) - samples.unsqueeze(-3)) ** 2).sum(dim=-1)  # [..., K, K]
    itself = torch.eye(count, dtype=torch.bool, device=samples.device)
    nearest = squared.masked_fill(itself, math.inf).amin(dim=-1).clamp(min=KNN_MIN_SQUARED_DISTANCE)
    digamma_difference = sum(1.0 / j for j in range(1, count))  # ψ(K) − ψ(1) = Σ_{j<K} 1/j
    offset = digamma_difference + unit_ball_log_volume(dim)
    return offset + 0.5 * dim * nearest.log().mean(dim=-1)


def digamma_of_half_integer(x: float) -> float:
    """ψ(x) for x a positive multiple of ½ (the Wishart expectation below needs no other):
    ψ(n) = −γ + Σ_{j<n} 1/j and ψ(n + ½) = −γ − 2 ln 2 + Σ_{j=1}^{n} 2/(2j − 1)."""
    euler_gamma = 0.5772156649015329
    if float(x).is_integer():
        return -euler_gamma + sum(1.0 / j for j in range(1, int(x)))
    n = int(x - 0.5)
    return -euler_gamma - 2.0 * math.log(2.0) + sum(2.0 / (2 * j - 1) for j in range(1, n + 1))


COVARIANCE_JITTER = 1e-8
"""Added to the diagonal of a fitted covariance (actions are O(1)): a policy collapsed in some direction gives a
finite log-determinant instead of a failed factorisation."""


def gaussian_entropy(samples: torch.Tensor) -> torch.Tensor:
    """Entropy of the Gaussian fitted to each row's K samples, [..., K, d] -> [...] (docs/entropy.md §4), with
    the finite-sample bias of the log-determinant removed: for Gaussian samples (K − 1)Σ̂ ~ Wishart(Σ, K − 1), so

        Ĥ = ½ log det(2πe Σ̂) − ½ Σ_{i=1}^{d} [ψ((K − i)/2) + log(2/(K − 1))],

    unbiased for a Gaussian when K > d. An upper bound on the entropy of any other distribution with the same
    covariance (a Gaussian has the most entropy for a covariance): it over-estimates a multimodal policy's.
    log det from a Cholesky factor of Σ̂ + jitter·I; differentiable in the samples.
    """
    count, dim = samples.shape[-2], samples.shape[-1]
    centred = samples - samples.mean(dim=-2, keepdim=True)
    covariance = centred.transpose(-1, -2) @ centred / (count - 1)
    jitter = COVARIANCE_JITTER * torch.eye(dim, dtype=samples.dtype, device=samples.device)
    factor = torch.linalg.cholesky_ex(covariance + jitter).L
    log_det = 2.0 * torch.log(torch.diagonal(factor, dim1=-2, dim2=-1)).sum(dim=-1)
    bias = sum(digamma_of_half_integer((count - i) / 2) + math.log(2.0 / (count - 1)) for i in range(1, dim + 1))
    return 0.5 * (dim * math.log(2.0 * math.pi * math.e) + log_det - bias)


SAMPLED_ESTIMATORS = {"knn": knn_entropy, "gaussian": gaussian_entropy}
"""The sample-based values of agent.entropy_estimator and their estimates of H from [..., K, d] samples."""


def official_target_entropy(sde: MeanRevertingSDE, action_dim: int, max_action: float) -> float:
    """Default target of automatic α for the official estimate (docs/entropy.md §5): E[Ĥ] for one-step
    predictions spread uniformly over the action box, E[â_0²] = max_action² / 3 per dimension:

        target = action_dim · (c0 + C + A · max_action² / 3).
    """
    c0, a, _, c = entropy_coefficients(sde)
    return action_dim * (c0 + c + a * max_action**2 / 3.0)


def sampled_target_entropy(action_dim: int) -> float:
    """Default target of automatic α for the sample-based estimates (knn, gaussian): −action_dim nats (SAC's
    heuristic), the entropy of a Gaussian with standard deviation e^{−1}/sqrt(2πe) ≈ 0.089 in every dimension
    (docs/entropy.md §5)."""
    return -float(action_dim)


class SinusoidalEmbedding(nn.Module):
    """Transformer-style embedding of the diffusion step: [sin(t·ω_k), cos(t·ω_k)], ω_k = 10000^{−k/(d/2−1)}."""

    def __init__(self, dim: int):
        super().__init__()
        half = dim // 2
        self.register_buffer("frequencies", torch.exp(torch.arange(half) * -(math.log(10000.0) / (half - 1))),
                             persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.float()[:, None] * self.frequencies[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class NoisePredictor(nn.Module):
    """ε_φ(a_t, t, s): time embedding 16 → 32 → 16 (Mish), then [a_t, t_emb, s] → 3 × (Linear 256 + Mish) → action."""

    def __init__(self, state_dim: int, action_dim: int, hidden_dim: int = 256, time_dim: int = 16):
        super().__init__()
        self.time_mlp = nn.Sequential(SinusoidalEmbedding(time_dim), nn.Linear(time_dim, time_dim * 2), nn.Mish(),
                                      nn.Linear(time_dim * 2, time_dim))
        self.mid = nn.Sequential(
            nn.Linear(action_dim + time_dim + state_dim, hidden_dim), nn.Mish(),
            nn.Linear(hidden_dim, hidden_dim), nn.Mish(),
            nn.Linear(hidden_dim, hidden_dim), nn.Mish(),
        )
        self.final = nn.Linear(hidden_dim, action_dim)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.final(self.mid(torch.cat([x_t, self.time_mlp(t), state], dim=-1)))


class DiffusionPolicy(nn.Module):
    """π_φ(a | s) defined by the reverse process of a :class:`MeanRevertingSDE` and a noise predictor."""

    def __init__(self, state_dim: int, action_dim: int, max_action: float, T: int = 5, schedule: str = "cosine",
                 loss_type: str = "MLL", action_clip: bool = False, hidden_dim: int = 256):
        super().__init__()
        self.action_dim = action_dim
        self.max_action = float(max_action)
        self.loss_type = loss_type
        self.action_clip = action_clip
        self.model = NoisePredictor(state_dim, action_dim, hidden_dim)
        self.sde = MeanRevertingSDE(T, schedule)

    # ---- training ----------------------------------------------------------------------------------
    def loss(self, actions: torch.Tensor, states: torch.Tensor, t: torch.Tensor | None = None,
             noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Diffusion loss on dataset actions and the one-step prediction â_0 (docs/method.md §5).

        t ~ U{0..T−1}, ε ~ N(0, I), a_t = a_0 e^{−θ̄_t} + std_t ε, ε̂ = ε_φ(a_t, t, s), â_0 = (a_t − std_t ε̂) e^{θ̄_t}.
        NML: mean ‖ε̂ − ε‖².   MLL: mean ‖(a_t − (da_t)_φ) − ã_{t−1}(a_t, a_0)‖², with (da_t)_φ the reverse-SDE
        Euler step using score −ε̂/std_t and ã_{t−1} the posterior mean (the optimal reverse state).
        ``t`` and ``ε`` are drawn here unless given (packed seeds pass their own draws, see erdiff.packed).
        Returns (loss, â_0); â_0 carries gradients into φ.
        """
        if t is None:
            t = torch.randint(0, self.sde.T, (actions.shape[0],), device=actions.device)
        if noise is None:
            noise = torch.randn_like(actions)
        x_t = self.sde.sample_marginal(actions, t, noise)
        predicted_noise = self.model(x_t, t, states)
        predicted_start = self.sde.predict_start_from_noise(x_t, t, predicted_noise)
        if self.loss_type == "NML":
            loss = F.mse_loss(predicted_noise, noise)
        else:
            score = self.sde.score_from_noise(predicted_noise, t)
            predicted_prev = x_t - self.sde.reverse_sde_drift(x_t, score, t)
            loss = F.mse_loss(predicted_prev, self.sde.optimal_reverse_step(x_t, actions, t))
        return loss, predicted_start

    def entropy(self, predicted_start: torch.Tensor, end_noise: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample entropy estimate Ĥ(s) = −Σ_dims log p(a_1 | a_T, â_0), shape [B, 1] (docs/method.md §7).

        a_1 = â_0 + (−θ_0 â_0)·dt is one deterministic forward step, a_T ~ N(0, I) fresh noise, and the log-density
        is the closed-form posterior of the SDE at the official indices t1 = 1, t2 = T − 1. ``end_noise`` is
        that a_T when given.
        """
        sde = self.sde
        x_1 = predicted_start + sde.forward_drift(predicted_start, 0) * sde.dt
        x_T = torch.randn_like(predicted_start) if end_noise is None else end_noise
        log_prob = sde.log_reverse_transition(predicted_start, x_1, x_T, 1, sde.T - 1)
        return -log_prob.sum(dim=-1, keepdim=True)

    # ---- sampling ----------------------------------------------------------------------------------
    def sample_noise(self, batch: int, generator: torch.Generator | None = None, device: torch.device | None = None,
                     dtype: torch.dtype | None = None) -> torch.Tensor:
        """The T standard-normal draws of one :meth:`sample` call, [T, batch, action_dim]: a_T, then the noise
        added at t = T−1, …, 1. Drawn one [batch, action_dim] tensor at a time, so the values are those that
        drawing inside :meth:`sample` would give."""
        shape = (batch, self.action_dim)
        return torch.stack([torch.randn(shape, generator=generator, device=device, dtype=dtype)
                            for _ in range(self.sde.T)])

    def sample(self, states: torch.Tensor, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None, clip: bool = True) -> torch.Tensor:
        """Posterior sampling (docs/method.md §6): a_T ~ N(0, I); for t = T−1..0: â_0 from ε_φ (clipped to the
        action bounds if ``action_clip``), a_{t−1} = ã_{t−1}(a_t, â_0) + sqrt(β̃_t) z (no noise at t = 0).
        The final action is clipped to [−max_action, max_action] unless ``clip`` is False. ``noise``
        ([T, B, action_dim], see :meth:`sample_noise`) replaces the draws when given; the chain is differentiable
        in the network's weights (reparameterized: the draws are inputs)."""
        sde = self.sde
        batch = states.shape[0]
        if noise is None:
            noise = self.sample_noise(batch, generator, states.device, states.dtype)
        x = noise[0]
        for t in reversed(range(sde.T)):
            t_batch = torch.full((batch,), t, device=states.device, dtype=torch.long)
            predicted_start = sde.predict_start_from_noise(x, t, self.model(x, t_batch, states))
            if self.action_clip:
                predicted_start = predicted_start.clamp(-self.max_action, self.max_action)
            x = sde.optimal_reverse_step(x, predicted_start, t)
            if t > 0:
                x = x + sde.posterior_stds[t] * noise[sde.T - t]
        return x.clamp(-self.max_action, self.max_action) if clip else x

    def sampled_entropy(self, states: torch.Tensor, noise: torch.Tensor, estimator: str) -> torch.Tensor:
        """An estimate of H(π(·|s)) for each of ``states`` [n, S], shape [n, 1]: K reparameterized chains per state
        (``noise`` [T, n·K, action_dim], the draws of :meth:`sample`), their final actions before the clip to the
        action bounds (the clip would stack samples on a bound), then the ``estimator`` of
        :data:`SAMPLED_ESTIMATORS` (``knn`` or ``gaussian``)."""
        count = noise.shape[1] // states.shape[0]
        actions = self.sample(states.repeat_interleave(count, dim=0), noise=noise, clip=False)
        return SAMPLED_ESTIMATORS[estimator](actions.view(states.shape[0], count, self.action_dim)).unsqueeze(-1)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.sample(states)
