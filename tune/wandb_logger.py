"""A W&B run per trial, logged from the sweep's driver: the trial's seed aggregate at each evaluation.

Not Ray's ``WandbLoggerCallback``: that one logs from a Ray actor per trial, which Ray kills, with W&B's service
process, as soon as the actor's ``wandb.finish()`` returns, and under CPU load that lost whole offline runs (seen
here: a .wandb file of its 7-byte header; another without its history and exit records). The driver outlives
every trial, so here a trial's run is finished when the trial ends, and W&B's service is shut down, after it has
written every run, when the sweep ends (``wandb.teardown``). A module of its own because it imports wandb.
"""

from __future__ import annotations

import numbers

import ray.tune
import wandb

RESULT_KEYS = ("objective", "objective_std", "evaluation", "planned_evaluations", "step", "epoch", "num_seeds",
               "time_total_s")
"""What a trial's run logs of each seed aggregate (tune.aggregate) besides the per-seed values."""


class TrialWandbCallback(ray.tune.Callback):
    """One W&B run per trial (id: Tune's trial id, so a resumed sweep continues it), grouped by the sweep, with
    the trial's config; its history is the seed aggregate by evaluation number."""

    def __init__(self, project: str, group: str, job_type: str, tags: list[str]):
        self.project, self.group, self.job_type, self.tags = project, group, job_type, tags
        self._runs: dict[str, wandb.sdk.wandb_run.Run] = {}

    def __getstate__(self) -> dict:  # Tune saves its callbacks with the experiment: open runs are not state
        return {**self.__dict__, "_runs": {}}

    def _run(self, trial) -> wandb.sdk.wandb_run.Run:
        if trial.trial_id not in self._runs:
            self._runs[trial.trial_id] = wandb.init(
                project=self.project, group=self.group, job_type=self.job_type, tags=self.tags, name=str(trial),
                id=trial.trial_id, resume="allow", reinit="create_new", dir=trial.local_path,
                config=trial.config.get("trial", trial.config), allow_val_change=True,
                settings=wandb.Settings(console="off", quiet=True))
        return self._runs[trial.trial_id]

    def on_trial_start(self, iteration, trials, trial, **info):
        self._run(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        values = {key: result[key] for key in RESULT_KEYS if _is_number(result.get(key))}
        values.update({f"objective_seeds/{seed}": value for seed, value in (result.get("objective_seeds") or {}).items()
                       if _is_number(value)})
        self._run(trial).log(values, step=int(result["evaluation"]))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, exit_code=0)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, exit_code=1)

    def on_experiment_end(self, trials, **info):
        for trial_id in list(self._runs):
            self._runs.pop(trial_id).finish()
        wandb.teardown()  # waits until W&B's service has written every run's file

    def _finish(self, trial, exit_code: int) -> None:
        run = self._runs.pop(trial.trial_id, None)
        if run is not None:
            run.finish(exit_code=exit_code)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value  # not NaN
