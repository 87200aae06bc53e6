"""The mean-reverting SDE against closed forms computed independently (docs/method.md §2–§4, §7)."""

import math

import numpy as np
import pytest
import torch

from erdiff.sde import MeanRevertingSDE

SCHEDULES = ["cosine", "linear", "constant", "vp"]


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("T", [3, 5, 10])
def test_terminal_marginal_is_standard_normal(schedule, T):
    sde = MeanRevertingSDE(T, schedule)
    assert sde.thetas_bar[-1].item() == pytest.approx(-math.log(1e-3), rel=1e-6)
    assert sde.stds[-1].item() == pytest.approx(1.0, abs=1e-6)
    assert sde.dt == pytest.approx(-math.log(1e-3) / sde.thetas.double().sum().item(), rel=1e-6)
    torch.testing.assert_close(sde.sigmas, torch.sqrt(2 * sde.thetas))
    for name in ("thetas", "thetas_bar", "stds", "posterior_vars"):
        value = getattr(sde, name)
        assert value.dtype == torch.float32 and value.shape == (T,)


def test_cosine_schedule_matches_the_official_table():
    """Numbers of docs/method.md §3 for T = 5 (computed there from the official formulas)."""
    sde = MeanRevertingSDE(5, "cosine")
    expected = {
        "thetas": [0.07213, 0.25712, 0.50616, 0.75355, 0.93404],
        "thetas_bar": [0.1975, 0.9015, 2.2873, 4.3504, 6.9078],
        "stds": [0.5712, 0.9139, 0.9948, 0.9999, 1.0000],
        "posterior_vars": [0.0, 0.2951, 0.7911, 0.9739, 0.9938],
    }
    for name, values in expected.items():
        np.testing.assert_allclose(getattr(sde, name).numpy(), values, atol=1.5e-4, err_msg=name)
    assert sde.dt == pytest.approx(2.7379, abs=1e-4)
    np.testing.assert_allclose(np.exp(-sde.thetas_bar.numpy()), [0.8208, 0.4060, 0.1015, 0.0129, 0.0010],
                               atol=1e-4)


def gaussian_posterior(x_t, x_0, thetas_bar, t):
    """p(x_{t-1} | x_t, x_0) by Gaussian conditioning on the forward transitions, in float64.

    Prior x_{t-1} | x_0 ~ N(x_0 e^{-θ̄_{t-1}}, 1 - e^{-2θ̄_{t-1}}); likelihood x_t | x_{t-1} ~ N(a x_{t-1}, 1 - a²) with
    a = e^{-(θ̄_t - θ̄_{t-1})}; θ̄_{-1} = 0, where x_{-1} is x_0 itself.
    """
    previous = 0.0 if t == 0 else thetas_bar[t - 1]
    if t == 0:
        return x_0, 0.0
    prior_mean, prior_var = x_0 * math.exp(-previous), 1 - math.exp(-2 * previous)
    a = math.exp(-(thetas_bar[t] - previous))
    precision = 1 / prior_var + a * a / (1 - a * a)
    mean = (prior_mean / prior_var + a * x_t / (1 - a * a)) / precision
    return mean, 1 / precision


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("T", [3, 5, 10])
def test_posterior_mean_and_variance_equal_gaussian_conditioning(schedule, T):
    sde = MeanRevertingSDE(T, schedule)
    thetas_bar = [float(v) for v in np.cumsum(sde.thetas.double().numpy()) * sde.dt]
    rng = np.random.default_rng(1)
    x_t, x_0 = rng.normal(size=8), rng.uniform(-1, 1, size=8)
    for t in range(T):
        mean, var = gaussian_posterior(x_t, x_0, thetas_bar, t)
        got = sde.optimal_reverse_step(torch.tensor(x_t, dtype=torch.float32),
                                       torch.tensor(x_0, dtype=torch.float32), t)
        np.testing.assert_allclose(got.numpy(), mean, rtol=2e-5, atol=2e-5)
        assert sde.posterior_vars[t].item() == pytest.approx(var, rel=2e-5, abs=1e-7)


def test_time_index_may_be_int_or_batched_tensor():
    sde = MeanRevertingSDE(5)
    x_t, x_0 = torch.randn(4, 3), torch.randn(4, 3)
    t = torch.tensor([0, 1, 3, 4])
    by_tensor = sde.optimal_reverse_step(x_t, x_0, t)
    by_column = sde.optimal_reverse_step(x_t, x_0, t[:, None])
    by_int = torch.stack([sde.optimal_reverse_step(x_t[i], x_0[i], int(t[i])) for i in range(4)])
    torch.testing.assert_close(by_tensor, by_int)
    torch.testing.assert_close(by_column, by_int)


def test_marginal_inversion_and_score():
    sde = MeanRevertingSDE(5)
    x_0, noise = torch.randn(16, 2), torch.randn(16, 2)
    t = torch.randint(0, 5, (16,))
    x_t = sde.sample_marginal(x_0, t, noise)
    torch.testing.assert_close(sde.predict_start_from_noise(x_t, t, noise), x_0, rtol=1e-4, atol=1e-3)
    # The score of N(x_0 e^{-θ̄}, std²) at x_t, by autograd of its log-density.
    x = x_t.clone().requires_grad_(True)
    mean, std = x_0 * torch.exp(-sde.thetas_bar[t])[:, None], sde.stds[t][:, None]
    torch.distributions.Normal(mean, std).log_prob(x).sum().backward()
    torch.testing.assert_close(sde.score_from_noise(noise, t), x.grad, rtol=1e-4, atol=1e-4)


def test_reverse_chain_with_true_noise_reproduces_every_marginal_and_the_data():
    """Monte Carlo: data from a 1-D mixture, noised to the last step; the posterior chain driven by the true noise
    (â_0 recovered from it) must pass through the forward marginals p(x_{t-1} | x_0) and end on the data."""
    torch.manual_seed(0)
    sde = MeanRevertingSDE(5)
    n = 200_000
    component = torch.rand(n) < 0.3
    x_0 = torch.where(component, 0.7 + 0.1 * torch.randn(n), -0.4 + 0.2 * torch.randn(n))
    noise = torch.randn(n)
    x = sde.sample_marginal(x_0, 4, noise)
    for t in reversed(range(5)):
        true_noise = (x - x_0 * sde.mean_decay[t]) / sde.stds[t]
        predicted_start = sde.predict_start_from_noise(x, t, true_noise)
        x = sde.optimal_reverse_step(x, predicted_start, t)
        if t > 0:
            x = x + sde.posterior_stds[t] * torch.randn(n)
            residual = (x - x_0 * sde.mean_decay[t - 1]).double()
            assert residual.mean().item() == pytest.approx(0.0, abs=0.01)
            assert residual.var().item() == pytest.approx(sde.stds[t - 1].item() ** 2, rel=0.02)
    assert (x - x_0).abs().max().item() < 1e-3
    assert (x < 0.2).double().mean().item() == pytest.approx(0.7, abs=0.01)


def test_log_transitions_on_hand_computed_inputs():
    sde = MeanRevertingSDE(5)
    thetas_bar = [float(v) for v in sde.thetas_bar]

    def log_fwd(x1, x2, t1, t2):  # docs/method.md §7, written out with python floats
        delta = thetas_bar[t2] - thetas_bar[t1]
        var = 1 - math.exp(-2 * delta)
        return -0.5 * (math.log(2 * math.pi * var) + (x1 - x2 * math.exp(-delta)) ** 2 / var)

    x_0, x1, x2 = 0.3, -0.2, 1.1
    got = sde.log_forward_transition(torch.tensor(x1), torch.tensor(x2), 1, 4).item()
    assert got == pytest.approx(log_fwd(x1, x2, 1, 4), rel=1e-5)
    expected = log_fwd(x1, x2, 1, 4) + log_fwd(x_0, x1, 0, 1) - log_fwd(x_0, x2, 0, 4)
    got = sde.log_reverse_transition(torch.tensor(x_0), torch.tensor(x1), torch.tensor(x2), 1, 4).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_sde_moves_with_its_module():
    sde = MeanRevertingSDE(5).to(torch.float64)
    assert sde.thetas.dtype == torch.float64
    assert sde.state_dict() == {}  # constants are rebuilt, not checkpointed


def test_unknown_schedule_is_rejected():
    with pytest.raises(ValueError, match="unknown SDE schedule 'sigmoid'"):
        MeanRevertingSDE(5, "sigmoid")
