"""What the entropy estimate depends on (docs/entropy.md): a fixed quadratic in â_0 and a_T, blind to the policy."""

import matplotlib.image
import numpy as np
import pytest
import torch
from torch import nn

from analysis import entropy_figure
from erdiff.policy import DiffusionPolicy, entropy_coefficients
from erdiff.sde import SCHEDULES

STEPS = (3, 5, 10)


def closed_form(coefficients, predicted_start, end_noise):
    c0, a, b, c = coefficients
    per_dim = c0 + a * predicted_start**2 + b * predicted_start * end_noise + c * end_noise**2
    return per_dim.sum(dim=-1, keepdim=True)


def expected_over_end_noise(policy, predicted_start):
    """E over a_T ~ N(0, I) of Ĥ, exactly: Ĥ is quadratic in a_T, and 3-point Gauss–Hermite is exact to degree 5
    (the same node in every dimension is enough, since Ĥ is a sum of one-dimensional terms)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(3)
    weights = weights / weights.sum()
    return sum(w * policy.entropy(predicted_start, torch.full_like(predicted_start, x)) for x, w in
               zip(nodes.tolist(), weights.tolist()))


@pytest.mark.parametrize("T", STEPS)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_entropy_is_the_closed_form_quadratic(schedule, T):
    policy = DiffusionPolicy(3, 4, max_action=1.0, T=T, schedule=schedule).double()
    generator = torch.Generator().manual_seed(T)
    predicted_start = 1.5 * torch.randn(64, 4, generator=generator, dtype=torch.float64)
    end_noise = torch.randn(64, 4, generator=generator, dtype=torch.float64)
    expected = closed_form(entropy_coefficients(policy.sde), predicted_start, end_noise)
    torch.testing.assert_close(policy.entropy(predicted_start, end_noise), expected, rtol=1e-12, atol=1e-12)


def test_closed_form_reproduces_the_measured_default_values():
    """Cosine, T = 5, one dimension, a_T = 0: the values measured from the code, and ≈ 0.779 + 0.063·â_0²."""
    policy = DiffusionPolicy(3, 1, max_action=1.0)
    predicted_start = torch.tensor([[0.0], [0.5], [1.0], [2.0]])
    measured = torch.tensor([[0.7786], [0.7943], [0.8414], [1.0297]])
    torch.testing.assert_close(policy.entropy(predicted_start, torch.zeros_like(predicted_start)), measured,
                               rtol=0, atol=5e-5)
    coefficients = entropy_coefficients(policy.sde)
    torch.testing.assert_close(closed_form(coefficients, predicted_start.double(), 0.0), measured.double(),
                               rtol=0, atol=5e-5)
    c0, a, _, _ = coefficients
    assert (round(c0, 3), round(a, 3)) == (0.779, 0.063)
    # a_T moves it by less than 0.002 for |â_0| ≤ 2 and |a_T| ≤ 1
    grid = torch.linspace(-2, 2, 41)[:, None]
    at_zero = policy.entropy(grid, torch.zeros_like(grid))
    for end in (-1.0, -0.5, 0.5, 1.0):
        assert (policy.entropy(grid, torch.full_like(grid, end)) - at_zero).abs().max().item() < 0.002


class GaussianNoisePredictor(nn.Module):
    """The exact noise predictor E[ε | a_t] for actions a_0 ~ N(mean, spread²): with a_t = d_t a_0 + std_t ε,
    it is std_t (a_t − mean·d_t) / (spread² d_t² + std_t²), affine in a_t, one slope and offset per step; the
    state is ignored. The spread of its posterior samples grows with ``spread`` (the test measures it)."""

    def __init__(self, policy: DiffusionPolicy, mean: float, spread: float):
        super().__init__()
        decay, std = policy.sde.mean_decay.double(), policy.sde.stds.double()
        var = spread**2 * decay**2 + std**2
        self.slope = nn.Parameter(std / var)
        self.offset = nn.Parameter(-std * mean * decay / var)

    def forward(self, x_t, t, state):
        return self.slope[t][:, None] * x_t + self.offset[t][:, None]


def gaussian_policy(mean: float, spread: float) -> DiffusionPolicy:
    policy = DiffusionPolicy(3, 2, max_action=10.0).double()
    policy.model = GaussianNoisePredictor(policy, mean, spread)
    return policy


def test_estimate_cannot_see_the_policy_spread():
    narrow, wide = gaussian_policy(mean=0.8, spread=0.01), gaussian_policy(mean=0.0, spread=1.0)
    generator = torch.Generator().manual_seed(0)
    narrow_states = torch.randn(2000, 3, generator=generator, dtype=torch.float64)
    wide_states = 5.0 + torch.randn(2000, 3, generator=generator, dtype=torch.float64)
    narrow_spread = narrow.sample(narrow_states, generator=generator).std(dim=0)
    wide_spread = wide.sample(wide_states, generator=generator).std(dim=0)
    assert (wide_spread > 100 * narrow_spread).all(), (narrow_spread, wide_spread)

    # the same â_0 and a_T give the same Ĥ, whatever the weights
    predicted_start = torch.randn(256, 2, generator=generator, dtype=torch.float64)
    end_noise = torch.randn(256, 2, generator=generator, dtype=torch.float64)
    assert torch.equal(narrow.entropy(predicted_start, end_noise), wide.entropy(predicted_start, end_noise))

    # on the actor loss's path the state reaches Ĥ only through â_0 (here, each policy on its own states) ...
    coefficients = entropy_coefficients(narrow.sde)
    mean_estimate = {}
    for name, policy, states in (("narrow", narrow, narrow_states), ("wide", wide, wide_states)):
        actions = policy.sample(states, generator=generator)
        t = torch.randint(0, policy.sde.T, (len(states),), generator=generator)
        noise = torch.randn(actions.shape, generator=generator, dtype=torch.float64)
        _, start = policy.loss(actions, states, t=t, noise=noise)
        estimate = policy.entropy(start, end_noise[:1].expand_as(start))
        torch.testing.assert_close(estimate, closed_form(coefficients, start, end_noise[:1]), rtol=1e-12, atol=1e-12)
        mean_estimate[name] = estimate.mean().item()
    # ... so the nearly deterministic policy away from 0 gets the higher "entropy"
    assert mean_estimate["narrow"] > mean_estimate["wide"] + 0.02, mean_estimate


@pytest.mark.parametrize("T", STEPS)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_maximizing_the_expected_estimate_pushes_predictions_away_from_zero(schedule, T):
    """E_{a_T}[Ĥ] = Σ_dims c0 + C + A·â_0², and A > 0: its gradient has the sign of â_0."""
    policy = DiffusionPolicy(3, 3, max_action=1.0, T=T, schedule=schedule).double()
    c0, a, _, c = entropy_coefficients(policy.sde)
    assert a > 0
    predicted_start = torch.tensor([[-2.0, -0.3, 0.05], [0.7, -1e-3, 1.5]], dtype=torch.float64, requires_grad=True)
    expected = expected_over_end_noise(policy, predicted_start)
    torch.testing.assert_close(expected, (c0 + c + a * predicted_start**2).sum(dim=-1, keepdim=True).detach(),
                               rtol=1e-12, atol=1e-12)
    (gradient,) = torch.autograd.grad(expected.sum(), predicted_start)
    assert torch.equal(gradient.sign(), predicted_start.sign())
    torch.testing.assert_close(gradient, 2 * a * predicted_start.detach(), rtol=1e-10, atol=1e-12)


def test_figure_script_writes_the_plot_and_prints_the_coefficients(tmp_path, capsys):
    out = tmp_path / "entropy.png"
    entropy_figure.main(["--out", str(out)])
    assert matplotlib.image.imread(out).ndim == 3
    printed = capsys.readouterr().out
    c0, a, b, c = entropy_coefficients(DiffusionPolicy(1, 1, max_action=1.0).sde)
    for value in (c0, a, b, c):
        assert f"{value:.6g}" in printed
