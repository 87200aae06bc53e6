"""The Q-ensemble: equal to M separate MLPs, EDAC-style initialisation, LCB and min (docs/method.md §8)."""

import numpy as np
import pytest
import torch
from torch import nn

from erdiff.critic import EnsembleCritic, lower_confidence_bound, pessimistic_value


def member_as_mlp(critic: EnsembleCritic, m: int) -> nn.Sequential:
    """Member m as a plain Linear/Mish MLP with the same weights."""
    layers = []
    for layer, (weight, bias) in enumerate(zip(critic.weights, critic.biases)):
        linear = nn.Linear(weight.shape[1], weight.shape[2])
        with torch.no_grad():
            linear.weight.copy_(weight[m].T)
            linear.bias.copy_(bias[m, 0])
        layers.append(linear)
        if layer < len(critic.weights) - 1:
            layers.append(nn.Mish())
    return nn.Sequential(*layers)


def test_ensemble_equals_separate_mlps():
    torch.manual_seed(0)
    critic = EnsembleCritic(state_dim=5, action_dim=2, num_critics=7, hidden_dim=32)
    states, actions = torch.randn(9, 5), torch.randn(9, 2)
    q = critic(states, actions)
    assert q.shape == (9, 7)
    for m in range(7):
        expected = member_as_mlp(critic, m)(torch.cat([states, actions], dim=1)).squeeze(-1)
        torch.testing.assert_close(q[:, m], expected, rtol=1e-5, atol=1e-6)


def test_members_are_independent_in_gradients():
    critic = EnsembleCritic(3, 1, num_critics=4, hidden_dim=8)
    critic(torch.randn(5, 3), torch.randn(5, 1))[:, 2].sum().backward()
    grad_norm_per_member = critic.weights[1].grad.flatten(1).norm(dim=1)
    assert grad_norm_per_member[2] > 0
    assert torch.all(grad_norm_per_member[[0, 1, 3]] == 0)


def test_edac_initialisation():
    critic = EnsembleCritic(11, 3, num_critics=64, hidden_dim=256)
    for layer in range(3):
        assert torch.all(critic.biases[layer] == 0.1)
        bound = 1 / np.sqrt(critic.weights[layer].shape[2])  # the official code's 1/sqrt(out)
        assert critic.weights[layer].abs().max() <= bound
        assert critic.weights[layer].abs().max() > 0.9 * bound
    assert critic.weights[3].abs().max() <= 3e-3 and critic.biases[3].abs().max() <= 3e-3
    # Members start different from each other.
    assert not torch.equal(critic.weights[0][0], critic.weights[0][1])


def test_lcb_and_min():
    q = torch.tensor([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 0.0, 0.0]])
    values = q.numpy()
    expected_lcb = values.mean(1) - 4.0 * values.std(1, ddof=1)
    np.testing.assert_allclose(lower_confidence_bound(q, 4.0).numpy(), expected_lcb, rtol=1e-6)
    np.testing.assert_allclose(pessimistic_value(q, "lcb", 4.0).numpy(), expected_lcb, rtol=1e-6)
    np.testing.assert_allclose(pessimistic_value(q, "min", 4.0).numpy(), [1.0, 0.0])
    with pytest.raises(ValueError, match="unknown pessimism"):
        pessimistic_value(q, "max", 1.0)
