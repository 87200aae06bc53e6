"""erdiff: entropy-regularized diffusion policy with Q-ensembles for offline RL (Zhang et al., NeurIPS 2024).

The learner is plain torch: :mod:`erdiff.sde` (mean-reverting SDE), :mod:`erdiff.policy` (diffusion
policy), :mod:`erdiff.critic` (Q-ensemble), :mod:`erdiff.agent` (the update), :mod:`erdiff.train` (the
loop and run directories). No Ray import anywhere in this package.
"""

__version__ = "0.1.0"
