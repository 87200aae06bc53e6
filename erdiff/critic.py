"""The Q-ensemble (docs/method.md §8): M critics evaluated as one batched network.

Each member is an MLP on [s, a] with 3 hidden layers of 256 units, Mish, and a scalar output. The members'
weights are stacked on a leading axis of size M and evaluated with batched matrix products, so an ensemble
of 64 critics costs a handful of kernels, not 64 forward passes. The first layer reads the same input for
every member, so that input is broadcast over the members rather than copied M times.

Initialisation is EDAC-style, as the official code does it: hidden weights U(±1/sqrt(out)), hidden biases 0.1,
last layer weights and biases U(±3e−3). (The official code calls ``kaiming_uniform_`` on each member's
[in, out] weight matrix, and torch reads the fan-in of a matrix from its second dimension, so the bound is
1/sqrt(out), not 1/sqrt(in); this matters for the first layer only.)

Speed: at M = 64 the hidden activations are [64, 256, 256] tensors, and element-wise work on them (bias add,
Mish and its gradient) costs as much as the matrix products. Eagerly, Mish(z + b) is aten's one-pass Mish
after the bias add (``activation="aten"``). With ``activation="compiled"`` the one-exponential closed form
:func:`bias_mish` is compiled (torch.compile, dynamic shapes) into one fused kernel for the forward and one for
the backward; uncompiled, that closed form would take several passes and be slower than aten's. With
``activation="traced"`` (the whole update compiled, ``train.compile: update``) the closed form is used where the
critic is traced by torch.compile and aten's Mish where it runs eagerly (evaluation). The matrix products are
plain ``bmm`` calls either way (``baddbmm`` would first copy the broadcast bias into a full [M, B, out] tensor).
The last layer has one output, and a batched product with a single column is slow on CPU (1.44 ms forward at
M = 64, B = 256 against 0.28 ms), so it is an element-wise product and a sum over the hidden units.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def bias_mish(z: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Mish(x) = x · tanh(softplus(x)) at x = z + b, with one exponential:
    tanh(ln(1 + eˣ)) = n / (n + 2) where n = eˣ(eˣ + 2). Above x = 20, n/(n + 2) is 1 in float32 and
    float64, so clamping the exponent there avoids overflow without changing the value."""
    x = z + bias
    e = torch.exp(x.clamp(max=20.0))
    n = e * (e + 2.0)
    return x * n / (n + 2.0)


def eager_bias_mish(z: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Mish(z + b) with aten's Mish kernel: the fastest form when not compiled."""
    return F.mish(z + bias)


def traced_bias_mish(z: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """:func:`bias_mish` inside a torch.compile'd program (the compiler fuses it), aten's Mish outside one."""
    return bias_mish(z, bias) if torch.compiler.is_compiling() else eager_bias_mish(z, bias)


class EnsembleCritic(nn.Module):
    """Q_m(s, a) for m = 1..M; ``forward`` returns a [B, M] tensor."""

    def __init__(self, state_dim: int, action_dim: int, num_critics: int, hidden_dim: int = 256,
                 num_hidden_layers: int = 3, activation: str = "aten"):
        super().__init__()
        self.num_critics = num_critics
        if activation == "compiled":
            self.activation = torch.compile(bias_mish, dynamic=True)
        elif activation == "traced":
            self.activation = traced_bias_mish
        elif activation == "aten":
            self.activation = eager_bias_mish
        else:
            raise ValueError(f"unknown activation {activation!r}; expected aten, compiled or traced")
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
                bound = 1.0 / math.sqrt(weight.shape[2])  # 1/sqrt(out): see the module docstring
                weight.uniform_(-bound, bound)
                bias.fill_(0.1)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([state, action], dim=-1)  # [B, in], shared by every member
        # The input is broadcast over members, never copied M times: [B, in] @ [M, in, out] -> [M, B, out].
        h = self.activation(torch.matmul(x, self.weights[0]), self.biases[0])
        last = len(self.weights) - 1
        for layer in range(1, last):
            h = self.activation(torch.bmm(h, self.weights[layer]), self.biases[layer])
        q = (h * self.weights[last].transpose(1, 2)).sum(-1) + self.biases[last].squeeze(-1)  # [M, B]
        return q.transpose(0, 1)  # [B, M]


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
