"""The Q-ensemble (method.md §1.5): M critics evaluated as one batched network.

Each member is an MLP on [s, a] with 3 hidden layers of 256 units, Mish, and a scalar output. The members'
weights are stacked on a leading axis of size M and evaluated with batched matrix products, so an ensemble
of 64 critics costs a handful of kernels, not 64 forward passes. The first layer reads the same input for
every member, so it is one matrix product of the shared input with all members' weights side by side.

Initialisation is EDAC-style: hidden weights like ``nn.Linear``'s default (U(±1/sqrt(fan_in))), hidden
biases 0.1, last layer weights and biases U(±3e−3).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class EnsembleCritic(nn.Module):
    """Q_m(s, a) for m = 1..M; ``forward`` returns a [B, M] tensor."""

    def __init__(self, state_dim: int, action_dim: int, num_critics: int, hidden_dim: int = 256,
                 num_hidden_layers: int = 3):
        super().__init__()
        self.num_critics = num_critics
        dims = [state_dim + action_dim] + [hidden_dim] * num_hidden_layers + [1]
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.empty(num_critics, d_in, d_out)) for d_in, d_out in zip(dims[:-1], dims[1:])])
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.empty(num_critics, 1, d_out)) for d_out in dims[1:]])
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            if layer == last:
                weight.uniform_(-3e-3, 3e-3)
                bias.uniform_(-3e-3, 3e-3)
            else:
                bound = 1.0 / math.sqrt(weight.shape[1])
                weight.uniform_(-bound, bound)
                bias.fill_(0.1)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([state, action], dim=-1)  # [B, in], shared by every member
        first_w, first_b = self.weights[0], self.biases[0]
        members, d_in, d_out = first_w.shape
        # One product for all members: [B, in] @ [in, M·out] -> [M, B, out].
        stacked = first_w.permute(1, 0, 2).reshape(d_in, members * d_out)
        h = (x @ stacked).reshape(-1, members, d_out).transpose(0, 1) + first_b
        for layer in range(1, len(self.weights)):
            h = torch.baddbmm(self.biases[layer], F.mish(h), self.weights[layer])
        return h.squeeze(-1).transpose(0, 1)  # [B, M]


def lower_confidence_bound(q: torch.Tensor, beta: float) -> torch.Tensor:
    """Q_LCB = mean_m Q_m − β · std_m Q_m over the ensemble axis of a [B, M] tensor (unbiased std, as torch's)."""
    return q.mean(dim=1) - beta * q.std(dim=1)


def pessimistic_value(q: torch.Tensor, pessimism: str, beta: float) -> torch.Tensor:
    """The actor's view of the ensemble: the LCB (default) or the minimum over members. Shape [B]."""
    if pessimism == "lcb":
        return lower_confidence_bound(q, beta)
    if pessimism == "min":
        return q.min(dim=1).values
    raise ValueError(f"unknown pessimism {pessimism!r}; expected 'lcb' or 'min'")
