"""Evaluation environments, reference returns and normalized scores.

:func:`normalized_score` is the public scoring function (:mod:`erdiff.envs.scores`, no Gymnasium import).
The rest imports Gymnasium: :mod:`erdiff.envs.make` registers and builds environments (the two-step toy
task of :mod:`erdiff.envs.toy`, and D4RL-compatible wrappers in :mod:`erdiff.envs.adroit`,
:mod:`erdiff.envs.kitchen`, :mod:`erdiff.envs.maze2d`, :mod:`erdiff.envs.antmaze`),
:mod:`erdiff.envs.evaluate` runs batched evaluations and :mod:`erdiff.envs.consistency` replays datasets
in the simulator.
"""

from erdiff.envs.scores import normalized_score, reference_scores

__all__ = ["normalized_score", "reference_scores"]
