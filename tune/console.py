"""The console of `erdiff sweep`: one line per trial event and a progress line, in place of Ray's output.

Every line starts with the time since the sweep started and the event, then the trial's own name (the name of
its folder under ``trials/``)::

    [0:00:55] evaluation 001_toy_ent_coef=0_T=5  1/5  normalized_score_mean 1.9 ± 3.2 (2)
    [0:01:05] progress   1/4 trials done (1 completed); 1 running; 2 left; 10/20 evaluations; ETA 0:00:53; ...

Events: started, evaluation k/n with the objective (labelled once at the start, as the final ranking labels
it), finished, stopped (by ASHA), retrying (a failed trial that Tune restarts), diverged and failed. A failure
is never hidden: its line gives the error's last line and the file with Tune's traceback. A progress line
(tune.progress, the totals of `erdiff status`) follows every trial that ends, and comes every
:data:`PROGRESS_EVERY_S` seconds besides.

Ray's own console output is off unless `erdiff sweep --verbose`; it stays in Ray's log files. In Ray 2.60 that is:

* Tune's reporter (experiment box, status table every 30 s, a config and a result box per trial):
  ``RunConfig(verbose=0)`` with ``RAY_AIR_NEW_OUTPUT=0``. Tune's default output engine prints its experiment
  box, failed trials' result boxes and a final table even at ``verbose=0``; the older one prints nothing at 0.
* Tune's full traceback of each failed trial (``TUNE_PRINT_ALL_TRIAL_ERRORS=0``): it is in the trial's error file.
* What workers, actors and raylets print, which Ray forwards to the driver (``ray.init(log_to_driver=False)``):
  the Train controllers' core-worker errors, the raylet's warnings about worker processes, the seeds' output.
* Ray's INFO lines in this process (``ray.init(logging_level=WARNING)``); warnings still show.
* Two notices of a healthy sweep (:func:`quiet_ray`): token authentication turned on, many worker processes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import ray._private.worker as ray_worker
import ray.tune

from tune.progress import clock_text, objective_label, progress_text, score_text, sweep_progress
from tune.trainable import SweepContext, diverged_seeds

PROGRESS_EVERY_S = 300.0
"""Seconds between two progress lines while no trial ends."""
QUIET_ENV = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_PRINT_ALL_TRIAL_ERRORS": "0"}
"""Read by Tune when a Tuner fits (see the module docstring)."""
WORKER_POOL_NOTICE = "PYTHON worker processes have been started"
ERROR_LINE_CHARS = 300


def init_options(verbose: bool) -> dict:
    """``ray.init`` arguments that keep Ray's output off this console (unless ``verbose``)."""
    return {} if verbose else {"log_to_driver": False, "logging_level": logging.WARNING}


def tune_verbosity(verbose: bool) -> int:
    """``RunConfig.verbose``: Tune's default output with ``verbose``, else none (with :func:`quiet_ray`)."""
    return 1 if verbose else 0


class _DropTokenNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.funcName != "_warn_token_auth_enabled"


def _without_worker_pool_notice(print_to_stdstream):
    """Ray's printer of what its processes send the driver, less the raylet's notice about many worker processes."""

    def print_the_rest(data: dict, ignore_prefix: bool) -> None:
        lines = [line for line in data["lines"] if WORKER_POOL_NOTICE not in line]
        if lines:
            print_to_stdstream({**data, "lines": lines}, ignore_prefix)

    return print_the_rest


@contextlib.contextmanager
def quiet_ray(verbose: bool) -> Iterator[None]:
    """Within (unless ``verbose``): Tune fits without printing (:data:`QUIET_ENV`), and two notices of a healthy
    sweep stay off the console; everything is as before on exit.

    The notices: that a new local Ray turned token authentication on (Ray's default since 2.59; its warning that
    authentication is off still shows), and the raylet's that it started many worker processes (a sweep's
    fractional CPUs do that by design). Ray has no switch for the second: it reaches the driver with the
    raylet's errors, which are not worker output, so the printer of those errors drops its lines; every other
    error the raylet sends (a worker killed, out of memory) still shows.
    """
    if verbose:
        yield
        return
    saved = {key: os.environ.get(key) for key in QUIET_ENV}
    os.environ.update(QUIET_ENV)
    notices = logging.getLogger("ray._private.authentication.authentication_token_setup")
    drop = _DropTokenNotice()
    notices.addFilter(drop)
    printer = ray_worker.print_to_stdstream
    ray_worker.print_to_stdstream = _without_worker_pool_notice(printer)
    try:
        yield
    finally:
        ray_worker.print_to_stdstream = printer
        notices.removeFilter(drop)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def error_line(trial) -> str:
    """The last line of Tune's error file of ``trial`` (the exception) and where the file is."""
    path = trial.error_file
    if not path or not Path(path).is_file():
        return "no error file"
    lines = [line.strip() for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    last = lines[-1] if lines else "(empty)"
    if len(last) > ERROR_LINE_CHARS:
        last = last[:ERROR_LINE_CHARS] + "..."
    return f"{last}; traceback: {path}"


def _number_or_none(value: float | None) -> float | None:
    """NaN (Tune's results hold no null: the aggregate's "no score") as None, as trial.json stores it."""
    return None if value is None or math.isnan(value) else value


class SweepConsole(ray.tune.Callback):
    """Prints the sweep's trial events and progress (see the module docstring).

    Every count comes from the results folder, which TrialRecorder, listed before it, has written when an event
    reaches it; a resumed sweep gets a new console (tune.sweep), not the one saved with Tune's state."""

    def __init__(self, context: SweepContext):
        self.context = context
        self._start = self._last_progress = time.monotonic()

    def setup(self, **info):
        self._start = self._last_progress = time.monotonic()
        spec = self.context.spec
        progress = sweep_progress(spec, self.context.out_dir)
        print(f"{spec.name}: {progress.trial_count} trials x {len(spec.seeds)} seeds (trainable {spec.trainable}); "
              f"objective {objective_label(spec)}, the {spec.objective.mode} is best", flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._say("started", trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._say("evaluation", trial, self._evaluation_text(result))

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        finished = result.get("evaluation", 0) >= (result.get("planned_evaluations") or 0)
        self._say("finished" if finished else "stopped", trial, self._evaluation_text(result))
        self._say_progress()

    def on_trial_recover(self, iteration, trials, trial, **info):
        attempt = trial.run_metadata.num_failures + 1
        self._say("retrying", trial, f"attempt {attempt} of {self.context.spec.failure.trial_retries + 1} after: "
                                     f"{error_line(trial)}")

    def on_trial_error(self, iteration, trials, trial, **info):
        diverged = diverged_seeds(self.context, str(trial))
        if diverged:
            self._say("diverged", trial, "; ".join(
                f"seed {seed} at step {where['step']} (epoch {where['epoch']}): {where['quantity']} is not finite"
                for seed, where in diverged.items()))
        else:
            self._say("failed", trial, error_line(trial))
        self._say_progress()

    def on_step_end(self, iteration, trials, **info):
        if time.monotonic() - self._last_progress >= PROGRESS_EVERY_S:
            self._say_progress()

    def _evaluation_text(self, result: dict) -> str:
        """``k/n  metric mean ± std (seeds)``: the trial's objective as trial.json and the ranking hold it."""
        objective = {"mean": _number_or_none(result.get("objective")),
                     "std": _number_or_none(result.get("objective_std")),
                     "per_seed": result.get("objective_seeds", {})}
        return (f"{result.get('evaluation', 0)}/{result.get('planned_evaluations')}  "
                f"{self.context.spec.objective.metric} {score_text(objective)}")

    def _say_progress(self) -> None:
        self._last_progress = time.monotonic()
        self._print("progress", progress_text(sweep_progress(self.context.spec, self.context.out_dir)))

    def _say(self, event: str, trial, detail: str = "") -> None:
        self._print(event, f"{trial}  {detail}".rstrip())

    def _print(self, event: str, text: str) -> None:
        print(f"[{clock_text(time.monotonic() - self._start)}] {event:<10} {text}", flush=True)
