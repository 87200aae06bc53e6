"""The offline dataset as tensors on the training device, sampled uniformly with replacement.

Sampling with ``torch.randint`` on the device keeps the step free of host work and host syncs
(the official sampler draws indices the same way, on the CPU).
"""

from __future__ import annotations

import numpy as np
import torch

from erdiff.errors import ErdiffError

REQUIRED_KEYS = ("observations", "actions", "next_observations", "rewards", "terminals")


class TransitionBuffer:
    """Transitions (s, a, s', r, 1 − done) as float32 tensors; rewards and not_done have shape [N, 1]."""

    def __init__(self, dataset: dict[str, np.ndarray], device: torch.device | str = "cpu"):
        missing = [key for key in REQUIRED_KEYS if key not in dataset]
        if missing:
            raise ErdiffError(f"dataset is missing key(s) {', '.join(missing)}; expected {', '.join(REQUIRED_KEYS)}")
        size = len(dataset["observations"])
        if size == 0:
            raise ErdiffError("dataset has no transitions")

        def column(key: str) -> torch.Tensor:
            values = np.asarray(dataset[key], dtype=np.float32)
            if len(values) != size:
                raise ErdiffError(f"dataset key '{key}' has {len(values)} rows, expected {size} like 'observations'")
            return torch.as_tensor(values, device=device)

        self.tensors = {
            "observations": column("observations"),
            "actions": column("actions"),
            "next_observations": column("next_observations"),
            "rewards": column("rewards").reshape(-1, 1),
            "not_done": 1.0 - column("terminals").reshape(-1, 1),
        }
        self.size = size
        self.device = torch.device(device)

    @property
    def state_dim(self) -> int:
        return self.tensors["observations"].shape[1]

    @property
    def action_dim(self) -> int:
        return self.tensors["actions"].shape[1]

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        index = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        return {key: value[index] for key, value in self.tensors.items()}
