"""Shared fixtures: small synthetic datasets the tests make themselves."""

import numpy as np
import pytest


def make_linear_dataset(size: int = 1024, state_dim: int = 3, action_dim: int = 2, seed: int = 0) -> dict:
    """A dataset in qlearning format: reward = −‖a − tanh(s·W)‖², next state a small drift, rare terminals."""
    rng = np.random.default_rng(seed)
    observations = rng.normal(size=(size, state_dim)).astype(np.float32)
    target = np.tanh(observations @ rng.normal(size=(state_dim, action_dim)))
    actions = np.clip(target + 0.3 * rng.normal(size=target.shape), -1, 1).astype(np.float32)
    return {
        "observations": observations,
        "actions": actions,
        "next_observations": (observations + 0.1 * rng.normal(size=observations.shape)).astype(np.float32),
        "rewards": (-((actions - target) ** 2).sum(axis=1)).astype(np.float32),
        "terminals": (rng.random(size) < 0.01).astype(np.float32),
    }


@pytest.fixture
def linear_dataset():
    return make_linear_dataset()


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    """W&B in offline mode, its folders in the run directories (or Ray's trial folders), nothing in $HOME."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_DIR", "WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):  # nothing written to $HOME
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
