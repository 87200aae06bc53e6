"""Evaluation environments, reference returns and normalized scores.

:func:`normalized_score` is the public scoring function; :mod:`erdiff.envs.make` builds environments
(importing it imports Gymnasium), :mod:`erdiff.envs.evaluate` runs batched evaluations.
"""

from erdiff.envs.scores import normalized_score, reference_scores

__all__ = ["normalized_score", "reference_scores"]
