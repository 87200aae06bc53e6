"""The sample-based entropy estimates (agent.entropy_estimator knn | gaussian, docs/entropy.md §4) on samplers of
known entropy, their gradients, and their place in the actor loss.

Tolerances are stated at K = 16 samples per state (the default agent.entropy_samples), averaged over 1024 states:
the mean of the estimates is within TOLERANCE nats of the true entropy (the per-state spread is about 0.5 nats for
knn, so the mean's standard error is about 0.02)."""

import math

import pytest
import torch

from erdiff.agent import ERDiffAgent
from erdiff.config import AgentConfig, ConfigError
from erdiff.policy import DiffusionPolicy, gaussian_entropy, knn_entropy

SAMPLES, STATES = 16, 1024
TOLERANCE = {"gaussian": 0.08, "knn": 0.25}
ESTIMATORS = {"gaussian": gaussian_entropy, "knn": knn_entropy}


def random_rotation(dim, generator):
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def gaussian_samples(stds, generator):
    """STATES × SAMPLES draws of N(0.3, R diag(stds²) Rᵀ) with a random rotation R; and the covariance."""
    dim = len(stds)
    scale = random_rotation(dim, generator) * torch.tensor(stds, dtype=torch.float64)
    z = torch.randn(STATES, SAMPLES, dim, generator=generator, dtype=torch.float64)
    return z @ scale.T + 0.3, scale @ scale.T


def gaussian_entropy_exact(covariance):
    """½ log det(2πe Σ)."""
    return 0.5 * torch.logdet(2 * math.pi * math.e * covariance).item()


@pytest.mark.parametrize("dim", range(1, 7))
def test_gaussian_estimate_of_gaussians_with_any_covariance(dim):
    # Standard deviations from 0.03 to 0.3 along rotated axes: strongly anisotropic and correlated.
    generator = torch.Generator().manual_seed(dim)
    stds = torch.logspace(math.log10(0.03), math.log10(0.3), dim).tolist() if dim > 1 else [0.2]
    samples, covariance = gaussian_samples(stds, generator)
    estimate = gaussian_entropy(samples).mean().item()
    assert abs(estimate - gaussian_entropy_exact(covariance)) < TOLERANCE["gaussian"]


@pytest.mark.parametrize("dim", range(1, 7))
def test_knn_estimate_of_gaussians_with_moderately_anisotropic_covariance(dim):
    # knn's stated range: standard deviations within a factor 2 of each other (docs/entropy.md §4 gives its bias for
    # a factor 10: up to +0.7 nats at d = 6, where the gaussian estimate stays exact).
    generator = torch.Generator().manual_seed(dim)
    stds = torch.linspace(0.1, 0.2, dim).tolist() if dim > 1 else [0.2]
    samples, covariance = gaussian_samples(stds, generator)
    estimate = knn_entropy(samples).mean().item()
    assert abs(estimate - gaussian_entropy_exact(covariance)) < TOLERANCE["knn"]


def mixture_samples(shape, generator, offset=0.5, std=0.1):
    """½ N(−offset·1, std² I) + ½ N(+offset·1, std² I): two modes on the diagonal of the action box."""
    sign = (torch.rand(*shape[:-1], 1, generator=generator, dtype=torch.float64) < 0.5).double() * 2 - 1
    return sign * offset + std * torch.randn(shape, generator=generator, dtype=torch.float64)


def mixture_log_density(x, offset=0.5, std=0.1):
    dim = x.shape[-1]
    const = -0.5 * dim * math.log(2 * math.pi * std**2) - math.log(2.0)
    return torch.logaddexp(const - ((x - offset) ** 2).sum(-1) / (2 * std**2),
                           const - ((x + offset) ** 2).sum(-1) / (2 * std**2))


@pytest.mark.parametrize("dim", [1, 2])
def test_two_mode_mixture(dim):
    generator = torch.Generator().manual_seed(10 + dim)
    # The true entropy by Monte Carlo of −log p over 400k draws (standard error < 0.002 nats).
    exact = -mixture_log_density(mixture_samples((400_000, dim), generator)).mean().item()
    samples = mixture_samples((STATES, SAMPLES, dim), generator)
    assert abs(knn_entropy(samples).mean().item() - exact) < TOLERANCE["knn"]
    # The fitted Gaussian's entropy bounds it from above, far above: the modes' gap counts as spread.
    assert gaussian_entropy(samples).mean().item() > exact + 0.8


@pytest.mark.parametrize("name", ESTIMATORS)
def test_the_estimates_grow_by_d_log_c_when_the_samples_are_scaled_by_c(name):
    # H(cX) = H(X) + d log c holds for both estimates (exactly for knn; gaussian's jitter on the covariance's
    # diagonal moves it by 1e-6 here), so their gradient with respect to log σ of the sampler σ·z is d: ascent on
    # the estimate widens the sampler.
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(8, SAMPLES, 3, generator=generator, dtype=torch.float64)
    log_std = torch.tensor(math.log(0.1), dtype=torch.float64, requires_grad=True)
    estimate = ESTIMATORS[name](log_std.exp() * z)
    (gradient,) = torch.autograd.grad(estimate.mean(), log_std)
    torch.testing.assert_close(gradient, torch.tensor(3.0, dtype=torch.float64), rtol=1e-5, atol=0)
    torch.testing.assert_close(ESTIMATORS[name](2.0 * z), ESTIMATORS[name](z) + 3 * math.log(2.0), rtol=1e-5, atol=0)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_gradient_ascent_through_the_reverse_chain_widens_the_policy(name):
    """The estimate is differentiable through the T-step sampling chain: Adam steps on the policy's weights that
    raise it widen the policy's samples (measured on fresh noise)."""
    torch.manual_seed(0)
    policy = DiffusionPolicy(3, 2, max_action=1.0, T=5, hidden_dim=16).double()
    states = torch.randn(8, 3, dtype=torch.float64)
    generator = torch.Generator().manual_seed(1)

    def spread():
        noise = policy.sample_noise(8 * 64, generator, dtype=torch.float64)
        with torch.no_grad():
            actions = policy.sample(states.repeat_interleave(64, dim=0), noise=noise, clip=False)
        return actions.view(8, 64, 2).std(dim=1).mean().item()

    before = spread()
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    for _ in range(10):
        noise = policy.sample_noise(8 * SAMPLES, generator, dtype=torch.float64)
        loss = -policy.sampled_entropy(states, noise, name).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert spread() > 2 * before


@pytest.mark.parametrize("name", ESTIMATORS)
def test_coincident_samples_give_a_finite_estimate(name):
    # Actions clipped onto one bound coincide: the floors keep the estimate and its gradient finite.
    samples = torch.ones(4, SAMPLES, 2, dtype=torch.float64, requires_grad=True)
    estimate = ESTIMATORS[name](samples)
    (gradient,) = torch.autograd.grad(estimate.sum(), samples)
    assert torch.isfinite(estimate).all() and torch.isfinite(gradient).all()


def test_the_sampled_estimators_draw_after_the_official_draws():
    """The official estimate's step draws nothing new (its chains are empty), and a sample-based one draws its
    chains after all of the official draws: the batch and noise streams agree up to them."""
    official = ERDiffAgent(3, 2, 1.0, AgentConfig(num_critics=2, hidden_dim=16))
    knn = ERDiffAgent(3, 2, 1.0, AgentConfig(num_critics=2, hidden_dim=16, entropy_estimator="knn", entropy_states=4))
    noise_official = official.draw_step_noise(32, torch.Generator().manual_seed(3))
    noise_knn = knn.draw_step_noise(32, torch.Generator().manual_seed(3))
    assert noise_official.entropy_chains.shape == (5, 0, 2)
    assert noise_knn.entropy_chains.shape == (5, 4 * SAMPLES, 2)
    for a, b in zip(noise_official[:-1], noise_knn[:-1]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_the_actor_loss_carries_the_sampled_estimate(name):
    config = AgentConfig(num_critics=2, hidden_dim=16, entropy_estimator=name, entropy_states=4, ent_coef=0.5)
    torch.manual_seed(0)
    agent = ERDiffAgent(3, 2, 1.0, config)
    generator = torch.Generator().manual_seed(0)
    batch = {"observations": torch.randn(32, 3, generator=generator),
             "actions": torch.rand(32, 2, generator=generator) * 2 - 1}
    noise = agent.draw_step_noise(32, generator)
    parts = agent.actor_objective(batch, noise)
    expected = agent.actor.sampled_entropy(batch["observations"][:4], noise.entropy_chains, name)
    torch.testing.assert_close(parts["entropy"], expected.mean())
    torch.testing.assert_close(parts["entropy_loss"], -expected.mean())  # in nats, not normalised
    torch.testing.assert_close(parts["actor_loss"], parts["bc_loss"] + parts["q_loss"] - 0.5 * expected.mean())


def test_gaussian_needs_more_samples_than_action_dimensions():
    with pytest.raises(ConfigError, match=r"'agent.entropy_samples' = 4 .* more than the 6 action dimensions"):
        ERDiffAgent(3, 6, 1.0, AgentConfig(entropy_estimator="gaussian", entropy_samples=4))
