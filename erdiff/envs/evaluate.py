"""Evaluate a policy on a task: N episodes in lockstep, one batched policy call per environment step.

Seeding: episode ``i`` of an evaluator built with ``seed`` is reset with ``seed + 100 + i`` (the
official code seeds its evaluation env with ``seed + 100``; giving each episode its own reset seed is
what makes the result independent of how episodes are batched). An episode's trajectory then depends
only on its reset seed and the policy, so N episodes run together equal the same N run one by one, and
every call of the same evaluator replays the same N initial states (evaluations during training are
compared on equal terms). The official code instead draws successive episodes from one seeded env, so
its initial states differ from ours; the distribution is the same.

Actions are clipped to the action space before stepping; a policy that returns the wrong shape or
non-finite actions is an error rather than a silently broken score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from erdiff.envs.make import make_gym_env
from erdiff.envs.scores import normalize

if TYPE_CHECKING:
    from erdiff.tasks import Task

SEED_OFFSET = 100
"""Evaluation reset seeds start at ``seed + SEED_OFFSET`` (the official code's offset)."""

Policy = Callable[[np.ndarray], np.ndarray]
"""Maps float32 observations [N, obs_dim] to actions [N, act_dim]."""


class Evaluator:
    """Runs ``episodes`` episodes of ``task``'s environment in lockstep; call it with a batched policy.

    The environments are built once here and reused by every call. With ``max_envs`` (for environments
    that need much memory) only that many are built and the episodes run in consecutive groups of that
    size; the results do not change. Normalized scores use the task's reference returns (None without).
    """

    def __init__(self, task: Task, episodes: int, seed: int, max_envs: int | None = None) -> None:
        if episodes < 1:
            raise ValueError(f"an evaluator needs at least one episode, got {episodes}")
        self.task = task
        self.reset_seeds = [seed + SEED_OFFSET + episode for episode in range(episodes)]
        self.envs = [make_gym_env(task.env_id) for _ in range(min(episodes, max_envs or episodes))]
        space = self.envs[0].action_space
        self._low, self._high = space.low, space.high
        self._act_shape = space.shape

    def __call__(self, policy: Policy) -> dict:
        """Run every episode to its end; return the returns and their (normalized) mean and std."""
        returns = []
        for start in range(0, len(self.reset_seeds), len(self.envs)):
            returns.extend(self._run_together(policy, self.reset_seeds[start:start + len(self.envs)]))
        return self._summary(np.array(returns))

    def _run_together(self, policy: Policy, reset_seeds: list[int]) -> np.ndarray:
        """Returns of the episodes with ``reset_seeds``, stepped in lockstep, one policy call per step."""
        envs = self.envs[:len(reset_seeds)]
        observations = [env.reset(seed=seed)[0] for env, seed in zip(envs, reset_seeds)]
        returns = np.zeros(len(envs))
        running = list(range(len(envs)))
        while running:
            batch = np.stack([observations[i] for i in running]).astype(np.float32)
            actions = self._checked_actions(policy(batch), len(running))
            still_running = []
            for action, i in zip(actions, running):
                observations[i], reward, terminated, truncated, _ = envs[i].step(action)
                returns[i] += reward
                if not (terminated or truncated):
                    still_running.append(i)
            running = still_running
        return returns

    def _checked_actions(self, actions, count: int) -> np.ndarray:
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (count, *self._act_shape):
            raise ValueError(f"the policy returned actions of shape {actions.shape} for {count} observations; "
                             f"expected {(count, *self._act_shape)}")
        if not np.isfinite(actions).all():
            raise ValueError("the policy returned NaN or infinite actions")
        return np.clip(actions, self._low, self._high).astype(np.float32)

    def _summary(self, returns: np.ndarray) -> dict:
        summary = {"episode_returns": returns.tolist(), "return_mean": float(returns.mean()),
                   "return_std": float(returns.std()), "normalized_score_mean": None,
                   "normalized_score_std": None}
        if self.task.ref_min is not None and self.task.ref_max is not None:
            scores = normalize(returns, self.task.ref_min, self.task.ref_max)
            summary["normalized_score_mean"] = float(scores.mean())
            summary["normalized_score_std"] = float(scores.std())
        return summary

    def close(self) -> None:
        """Close every environment."""
        for env in self.envs:
            env.close()
        self.envs = []

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
