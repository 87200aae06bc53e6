"""Hand-made run directories for the analysis tests, written with the erdiff.results writers.

Imported by the other ``test_analysis_*`` modules; holds no tests itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from erdiff import results
from erdiff.config import dump_yaml, make_config


def write_run(path: Path, task: str, seed: int, scores, *, status: str | None = "completed", steps=None,
              overrides: dict | None = None, tags: dict | None = None, age_s: float | None = None,
              divergence: dict | None = None) -> Path:
    """A run directory whose evaluations have ``normalized_score_mean`` = ``scores`` (return = 10 × score, the
    critics' ``q_mean`` = 100 + score; ``time_s`` 0, 1, 2, ...).

    ``steps`` defaults to 100, 200, ...; repeat a step to imitate a resumed run. ``status=None`` writes no
    summary.json. ``age_s`` back-dates every file by that many seconds. ``divergence`` (``step``, ``epoch``,
    ``quantity``) is written into summary.json, as the learner does for a run with ``status="diverged"``.
    """
    config = make_config(task, overrides={"seed": str(seed), **(overrides or {})})
    config.tags = dict(tags or {})
    steps = list(steps) if steps is not None else [100 * (i + 1) for i in range(len(scores))]
    records = [{"step": step, "epoch": i + 1, "time_s": float(i), "normalized_score_mean": score,
                "return_mean": None if score is None else 10.0 * score, "actor_loss": 0.5, "critic_loss": 1.5,
                "q_mean": None if score is None else 100.0 + score}
               for i, (step, score) in enumerate(zip(steps, scores))]
    path.mkdir(parents=True, exist_ok=True)
    results.atomic_write_text(path / results.CONFIG_FILE, dump_yaml(config))
    results.write_metrics(path, records)
    if status is not None:
        summary = results.make_summary(config.to_dict(), records, status, steps[-1], len(steps), 1.0)
        if divergence is not None:
            summary["divergence"] = divergence
        results.write_json(path / results.SUMMARY_FILE, summary)
    if age_s is not None:
        for file in path.iterdir():
            stamp = file.stat().st_mtime - age_s
            os.utime(file, (stamp, stamp))
    return path
