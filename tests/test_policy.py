"""The diffusion policy: network shapes, losses, sampling and the entropy estimate (docs/method.md §5–§7)."""

import math

import pytest
import torch
import torch.nn.functional as F

from erdiff.policy import DiffusionPolicy, NoisePredictor


def test_noise_predictor_architecture():
    net = NoisePredictor(state_dim=11, action_dim=3)
    linear_shapes = [tuple(m.weight.shape) for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert linear_shapes == [(32, 16), (16, 32), (256, 3 + 16 + 11), (256, 256), (256, 256), (3, 256)]
    assert sum(isinstance(m, torch.nn.Mish) for m in net.modules()) == 4
    assert net(torch.randn(7, 3), torch.randint(0, 5, (7,)), torch.randn(7, 11)).shape == (7, 3)


@pytest.mark.parametrize("loss_type", ["NML", "MLL"])
def test_losses_follow_their_definitions(loss_type):
    """Recompute the loss from the same random draws: t, ε, then the NML or MLL residual (docs/method.md §5)."""
    policy = DiffusionPolicy(4, 2, max_action=1.0, T=5, loss_type=loss_type)
    sde = policy.sde
    states, actions = torch.randn(32, 4), torch.rand(32, 2) * 2 - 1
    torch.manual_seed(3)
    loss, predicted_start = policy.loss(actions, states)
    torch.manual_seed(3)
    t = torch.randint(0, 5, (32,))
    noise = torch.randn_like(actions)
    decay, std = torch.exp(-sde.thetas_bar[t])[:, None], sde.stds[t][:, None]
    x_t = actions * decay + std * noise
    eps = policy.model(x_t, t, states)
    if loss_type == "NML":
        expected = F.mse_loss(eps, noise)
    else:
        theta, sigma = sde.thetas[t][:, None], sde.sigmas[t][:, None]
        drift = (-theta * x_t - sigma**2 * (-eps / std)) * sde.dt
        expected = F.mse_loss(x_t - drift, sde.optimal_reverse_step(x_t, actions, t))
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(predicted_start, (x_t - std * eps) / decay)
    assert predicted_start.requires_grad


def test_entropy_on_hand_computed_inputs():
    """Ĥ = −Σ log p(a_1 | a_T, â_0) with a_1 = â_0(1 − θ_0 dt), written out with python floats (docs/method.md §7)."""
    policy = DiffusionPolicy(3, 2, max_action=1.0, T=5)
    sde = policy.sde
    tb = [float(v) for v in sde.thetas_bar]
    a0 = torch.tensor([[0.5, -0.25], [1.5, 0.0]])
    torch.manual_seed(7)
    entropy = policy.entropy(a0)
    torch.manual_seed(7)
    a_T = torch.randn_like(a0)

    def log_fwd(x1, x2, t1, t2):
        d = tb[t2] - tb[t1]
        var = 1 - math.exp(-2 * d)
        return -0.5 * (math.log(2 * math.pi * var) + (x1 - x2 * math.exp(-d)) ** 2 / var)

    theta0_dt = float(sde.thetas[0]) * sde.dt
    for row in range(2):
        log_p = 0.0
        for dim in range(2):
            x0, xT = float(a0[row, dim]), float(a_T[row, dim])
            x1 = x0 * (1 - theta0_dt)
            log_p += log_fwd(x1, xT, 1, 4) + log_fwd(x0, x1, 0, 1) - log_fwd(x0, xT, 0, 4)
        assert entropy[row, 0].item() == pytest.approx(-log_p, rel=1e-5)
    assert entropy.shape == (2, 1)


def test_sampling_respects_bounds_and_is_reproducible_with_a_generator():
    policy = DiffusionPolicy(3, 2, max_action=0.5, T=5, action_clip=True)
    states = torch.randn(64, 3)
    first = policy.sample(states, generator=torch.Generator().manual_seed(0))
    second = policy.sample(states, generator=torch.Generator().manual_seed(0))
    assert first.shape == (64, 2)
    assert first.abs().max().item() <= 0.5
    torch.testing.assert_close(first, second)


def test_sampling_with_the_true_noise_network_returns_the_target_action():
    """If ε_φ returns the noise that maps a_t back to a fixed action c, every â_0 is c and the chain ends on c."""
    policy = DiffusionPolicy(1, 1, max_action=2.0, T=5)
    target = 0.37

    class ExactNoise(torch.nn.Module):
        def forward(self, x_t, t, state):
            decay, std = torch.exp(-policy.sde.thetas_bar[t])[:, None], policy.sde.stds[t][:, None]
            return (x_t - target * decay) / std

    policy.model = ExactNoise()
    actions = policy.sample(torch.zeros(1000, 1))
    torch.testing.assert_close(actions, torch.full_like(actions, target), rtol=0, atol=1e-4)
