"""The mean-reverting SDE on actions (docs/method.md §2–§4, §7).

Forward process, with mean 0 and stationary variance 1 and σ_t² = 2θ_t:

    da = −θ_t a dt + σ_t dw,       p(a_t | a_0) = N(a_0 e^{−θ̄_t}, (1 − e^{−2θ̄_t}) I).

Discretisation and conventions follow the official code (they define the published numbers):

* ``thetas[i]`` for i = 0..T−1 come from the schedule; ``dt = −ln(1e−3) / Σ_i θ_i`` so that
  ``θ̄_{T−1} = −ln(1e−3)`` and the last marginal is N(0.001·a_0, ≈1).
* ``thetas_bar[t] = dt · Σ_{i≤t} θ_i``: index t = 0 is already *one step* of noise, not the clean action.
  The clean action a_0 sits "before" index 0; a reverse step at index t maps a_t to a_{t−1}, and at
  t = 0 it returns the clean-action estimate.
* ``stds[t] = sqrt(1 − e^{−2 θ̄_t})``.
* The entropy's one-step log-probability keeps the official indices (t1 = 1, t2 = T − 1) and its
  squared term ``(x1 − x2·e^{−Δθ̄})`` exactly as written there (docs/method.md §7).

``t`` arguments may be a python int or a LongTensor of shape [B] or [B, 1].
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

TERMINAL_MEAN = 1e-3
"""e^{−θ̄_{T−1}}: the last marginal keeps 0.1% of the clean action."""

SCHEDULES = ("cosine", "linear", "constant", "vp")


def cosine_thetas(T: int, s: float = 0.008) -> np.ndarray:
    """Cosine schedule: θ_i = 1 − ᾱ(i+1) for i = 0..T−1, where ᾱ is the DDPM cosine
    cumulative product on T+1 steps, ᾱ(x) = cos²(((x/(T+1)) + s)/(1+s) · π/2) / ᾱ(0)."""
    x = np.linspace(0, T + 1, T + 2, dtype=np.float64)
    alphas_cumprod = np.cos(((x / (T + 1)) + s) / (1 + s) * math.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    return 1.0 - alphas_cumprod[1:-1]


def linear_thetas(T: int) -> np.ndarray:
    """Linear schedule from 1e−4·(1000/T) to 0.02·(1000/T) (the DDPM range rescaled to T steps).
    Only the shape matters: dt renormalises Σθ."""
    scale = 1000.0 / T
    return np.linspace(scale * 1e-4, scale * 0.02, T, dtype=np.float64)


def constant_thetas(T: int) -> np.ndarray:
    """Constant schedule θ_i = 1: θ̄ grows linearly in t."""
    return np.ones(T, dtype=np.float64)


def vp_thetas(T: int, b_min: float = 0.1, b_max: float = 10.0) -> np.ndarray:
    """VP schedule (as Diffusion-QL's ``vp_beta_schedule``):
    θ_k = 1 − exp(−b_min/T − ½(b_max−b_min)(2k−1)/T²) for k = 1..T."""
    i = np.arange(1, T + 1, dtype=np.float64)
    alpha = np.exp(-b_min / T - 0.5 * (b_max - b_min) * (2 * i - 1) / T**2)
    return 1.0 - alpha


def make_thetas(T: int, schedule: str) -> np.ndarray:
    builders = {"cosine": cosine_thetas, "linear": linear_thetas, "constant": constant_thetas, "vp": vp_thetas}
    if schedule not in builders:
        raise ValueError(f"unknown SDE schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    return builders[schedule](T)


def _index(values: torch.Tensor, t: int | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped to broadcast against ``like`` ([B, D]): a scalar for an int t, [B, 1] for a tensor t."""
    if isinstance(t, int):
        return values[t]
    t = t.reshape(-1)
    return values[t].reshape(-1, *([1] * (like.dim() - 1)))


class MeanRevertingSDE(nn.Module):
    """Mean-reverting SDE with T steps and a θ schedule (docs/method.md §2, §3).

    Attributes (float32 tensors of shape [T] unless noted):
        thetas:          θ_i from the schedule
        sigmas:          σ_i = sqrt(2 θ_i)
        thetas_bar:      θ̄_t = dt · Σ_{i≤t} θ_i
        stds:            sqrt(1 − e^{−2 θ̄_t}), the std of p(a_t | a_0)
        posterior_vars:  β̃_t, the variance of p(a_{t−1} | a_t, a_0) (0 at t = 0)
        dt:              float, −ln(1e−3) / Σ θ_i
    All constants are computed in float64 and stored in float32 as non-persistent buffers, so
    ``.to(device)`` moves them and checkpoints do not carry them.
    """

    def __init__(self, T: int, schedule: str = "cosine"):
        super().__init__()
        if T < 1:
            raise ValueError(f"SDE needs T >= 1 steps, got {T}")
        self.T = T
        self.schedule = schedule
        thetas = make_thetas(T, schedule)
        dt = -math.log(TERMINAL_MEAN) / thetas.sum()
        thetas_bar = np.cumsum(thetas) * dt
        # e^{−θ'_t}, e^{−θ̄_t} and e^{−θ̄_{t−1}} (1 before the first step) of the posterior, docs/method.md §4.
        step_decay = np.exp(-thetas * dt)
        decay = np.exp(-thetas_bar)
        prev_decay = np.concatenate([[1.0], decay[:-1]])
        var = 1.0 - decay**2
        posterior_vars = (1.0 - step_decay**2) * (1.0 - prev_decay**2) / var

        constants = {
            "thetas": thetas,
            "sigmas": np.sqrt(2.0 * thetas),
            "thetas_bar": thetas_bar,
            "stds": np.sqrt(var),
            "posterior_vars": posterior_vars,
            "posterior_stds": np.sqrt(posterior_vars),
            # Posterior-mean coefficients: ã_{t−1} = posterior_coef_xt · a_t + posterior_coef_x0 · a_0.
            "posterior_coef_xt": step_decay * (1.0 - prev_decay**2) / var,
            "posterior_coef_x0": prev_decay * (1.0 - step_decay**2) / var,
            "mean_decay": decay,
            "inv_mean_decay": 1.0 / decay,
        }
        for name, values in constants.items():
            self.register_buffer(name, torch.as_tensor(values, dtype=torch.float32), persistent=False)
        self.dt = float(dt)

    def sample_marginal(self, x_0: torch.Tensor, t: int | torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """a_t = a_0 e^{−θ̄_t} + sqrt(1 − e^{−2θ̄_t}) · ε."""
        return x_0 * _index(self.mean_decay, t, x_0) + _index(self.stds, t, x_0) * noise

    def predict_start_from_noise(self, x_t: torch.Tensor, t: int | torch.Tensor,
                                 noise: torch.Tensor) -> torch.Tensor:
        """â_0 = (a_t − std_t · ε) · e^{θ̄_t}, the marginal inverted for a_0 given the noise."""
        return (x_t - _index(self.stds, t, x_t) * noise) * _index(self.inv_mean_decay, t, x_t)

    def score_from_noise(self, noise: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """∇ log p_t(a_t | a_0) = −ε / std_t."""
        return -noise / _index(self.stds, t, noise)

    def optimal_reverse_step(self, x_t: torch.Tensor, x_0: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """Posterior mean of p(a_{t−1} | a_t, a_0) (docs/method.md §4):

        ã_{t−1} = e^{−θ'_t}(1 − e^{−2θ̄_{t−1}})/(1 − e^{−2θ̄_t}) · a_t
                + e^{−θ̄_{t−1}}(1 − e^{−2θ'_t})/(1 − e^{−2θ̄_t}) · a_0,
        with θ'_t = θ_t·dt and θ̄_{−1} = 0 (so the step from t = 0 returns a_0).
        """
        return _index(self.posterior_coef_xt, t, x_t) * x_t + _index(self.posterior_coef_x0, t, x_t) * x_0

    def reverse_sde_drift(self, x_t: torch.Tensor, score: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """One Euler step of the reverse-time SDE's drift: (da)_φ = [−θ_t a_t − σ_t² · score] · dt."""
        theta = _index(self.thetas, t, x_t)
        sigma = _index(self.sigmas, t, x_t)
        return (-theta * x_t - sigma**2 * score) * self.dt

    def forward_drift(self, x: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """Drift of the forward SDE, −θ_t a (mean 0)."""
        return -_index(self.thetas, t, x) * x

    def log_forward_transition(self, x1: torch.Tensor, x2: torch.Tensor, t1: int, t2: int) -> torch.Tensor:
        """Element-wise Gaussian log-density of the forward transition between indices t1 < t2, written as
        in the official code (docs/method.md §7): with Δ = θ̄[t2] − θ̄[t1],

            −½ [ log(2π(1 − e^{−2Δ})) + (x1 − x2·e^{−Δ})² / (1 − e^{−2Δ}) ].

        Note the squared term is ``x1 − x2·e^{−Δ}`` (official), not ``x2 − x1·e^{−Δ}``.
        t1 = 0 is read as θ̄[0] like the official code does.
        """
        delta = self.thetas_bar[t2] - self.thetas_bar[t1]
        var = 1.0 - torch.exp(-2.0 * delta)
        return -0.5 * (torch.log(2.0 * math.pi * var) + (x1 - x2 * torch.exp(-delta)) ** 2 / var)

    def log_reverse_transition(self, x_0: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor,
                               t1: int, t2: int) -> torch.Tensor:
        """Element-wise log p(x1 | x2, x_0) by Bayes' rule on forward transitions (docs/method.md §7):

        log p(x1 | x2, x_0) = log p(x2 | x1) + log p(x1 | x_0) − log p(x2 | x_0),
        evaluated as log_fwd(x1, x2; t1, t2) + log_fwd(x_0, x1; 0, t1) − log_fwd(x_0, x2; 0, t2).
        """
        return (self.log_forward_transition(x1, x2, t1, t2)
                + self.log_forward_transition(x_0, x1, 0, t1)
                - self.log_forward_transition(x_0, x2, 0, t2))
