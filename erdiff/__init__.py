"""erdiff: entropy-regularized diffusion policy with Q-ensembles for offline RL (Zhang et al., NeurIPS 2024).

The learner is plain torch: :mod:`erdiff.sde` (mean-reverting SDE), :mod:`erdiff.policy` (diffusion
policy), :mod:`erdiff.critic` (Q-ensemble), :mod:`erdiff.agent` (the update), :mod:`erdiff.train` (the
loop and run directories). No Ray import anywhere in this package.

:func:`load_policy` (from :mod:`erdiff.policy_io`) turns a run directory back into a batched numpy policy.
"""

__version__ = "0.1.0"

__all__ = ["load_policy"]


def __getattr__(name: str):
    # Imported on first use: `import erdiff` (every CLI command does it) stays free of torch.
    if name == "load_policy":
        from erdiff.policy_io import load_policy

        return load_policy
    raise AttributeError(f"module 'erdiff' has no attribute {name!r}")
