"""Run a sweep spec on Ray Tune: `python -m tune.sweep SPEC [--out DIR] [--address ADDR] [--resume] [--dry-run]`.

The same as `erdiff sweep`; this form is what `ray job submit ... -- python -m tune.sweep SPEC` runs on a
cluster. Where results land::

    <out>/sweep.yaml                         the spec as run (every default filled in)
    <out>/trials/<trial>/trial.json          the trial's configuration and seed aggregate (tune.aggregate)
    <out>/trials/<trial>/seed_<k>/           one run directory per seed (erdiff's results format)
    <storage>/<name>/                        Tune's experiment state (default storage: <out>/ray)
    <storage>/train/<trial>/                 Ray Train checkpoints of trainable: train

Without --address (and without RAY_ADDRESS, which `ray job submit` sets) the sweep starts its own local Ray
sized to this machine, never attaching to another Ray instance; every one of its services listens on
127.0.0.1 only, and no process of it outlives the sweep by more than the start of the next sweep, even when
this driver is SIGKILLed (tune.local_ray). The dashboard stays on (Ray Train needs it to release stopped
trials' workers, docs/stack.md §3.2). Ray 2.59+ turns token authentication on for local clusters: this process
handles it; `ray job submit` against a cluster needs RAY_AUTH_MODE=token or a token (cluster/ README).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import ray
import ray.tune
import yaml

from cluster.storage import URI_SCHEME, check_out_dir_for_cluster, check_storage_for_cluster
from erdiff import results
from erdiff.errors import ErdiffError
from erdiff.runlock import RunLockedError, hold_run_dirs
from tune import local_ray
from tune.aggregate import DIVERGED, trial_record, write_trial_record
from tune.console import SweepConsole, init_options, quiet_ray, tune_verbosity
from tune.plan import check_cluster_fits
from tune.progress import SPEC_FILE, sweep_progress, table_lines, unfinished_trials, unheld_trials
from tune.spec import SweepSpec, scheduler_grace_period, scheduler_max_t, trial_name
from tune.tracking import set_tracking_environment, tracking_callbacks
from tune.trainable import SweepContext, diverged_seeds, make_trainable
from tune.trust import check_tune_state

METRIC = "objective"
"""The key of the seed aggregate that Tune, Optuna and ASHA optimise (tune.aggregate.aggregate)."""


class SweepError(ErdiffError):
    """The results folder does not fit the request (a sweep already there, nothing to resume, ...)."""


def run_sweep(spec: SweepSpec, out_dir: str | Path, address: str | None = None, resume: bool = False,
              trust_tune_state: bool = False, verbose: bool = False) -> int:
    """Run (or with ``resume`` continue) ``spec``; return 0 when every trial finished or diverged, 1 otherwise.

    A resume first checks that no one else could have written Tune's state (tune.trust), unless
    ``trust_tune_state``. The console shows trial events and progress (tune.console); ``verbose`` adds Ray's
    own output."""
    local_ray.end_dead_sessions()  # first: what a killed local sweep left, even when this sweep is refused
    if URI_SCHEME.match(str(out_dir)):  # refused on any cluster: run directories are plain files
        check_out_dir_for_cluster(str(out_dir), num_nodes=1)
    context = SweepContext(spec, str(Path(out_dir).resolve()), spec.storage_for(out_dir))
    experiment = f"{context.storage}/{spec.name}"
    _check_results_folder(context, experiment, resume, trust_tune_state)
    # Tune saves its state whenever a trial reports a checkpoint (it keeps the last two): with evaluations a
    # few seconds apart (small tasks) it would warn about every one of those saves.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    set_tracking_environment(spec, context.out_dir)
    with quiet_ray(verbose):
        session = connect(address, verbose)
        try:
            # Before anything is written: on several nodes, run directories and Tune state need shared storage.
            num_nodes = sum(1 for node in ray.nodes() if node["Alive"])
            check_out_dir_for_cluster(context.out_dir, num_nodes)
            check_storage_for_cluster(context.storage, num_nodes)
            shortage = check_cluster_fits(spec, ray.cluster_resources(), local=session is not None)
            if shortage:
                print(f"warning: {shortage}; its trials wait until the cluster grows", file=sys.stderr)
            if resume:
                tuner = ray.tune.Tuner.restore(experiment, trainable=make_trainable(context), resume_unfinished=True,
                                               resume_errored=True)
                _use_this_console(tuner, context, verbose)
            else:
                spec_text = yaml.safe_dump(spec.to_dict(), sort_keys=False)
                results.atomic_write_text(Path(context.out_dir) / SPEC_FILE, spec_text)
                tuner = build_tuner(context, verbose)
            grid = tuner.fit()
        finally:
            if session is not None:
                ray.shutdown()
                local_ray.end_session(*session)  # the agents may outlive a shutdown too
    return _print_outcome(context, grid)


def connect(address: str | None, verbose: bool = False) -> tuple[Path, str] | None:
    """Connect to ``address``, to the job's cluster (RAY_ADDRESS) or start a local Ray; unless ``verbose``, what
    Ray's processes print goes to its log files only (tune.console).

    For a local Ray started here: its record and session directory (tune.local_ray), else None."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home
    options = init_options(verbose)
    if address:
        try:
            ray.init(address=address, **options)
        except ConnectionError as err:
            raise SweepError(f"cannot connect to the Ray cluster at {address} ({err}); a cluster of Ray 2.59 or "
                             "newer wants an auth token: set RAY_AUTH_MODE=token (the token is read from "
                             "RAY_AUTH_TOKEN or ~/.ray/auth_token)") from err
        return None
        _say_where_ray_logs(verbose, "on the cluster's nodes, in /tmp/ray/session_latest/logs")
        return None
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**options)  # inside `ray job submit`: the cluster's resources, not ours
        _say_where_ray_logs(verbose, "on the cluster's nodes, in /tmp/ray/session_latest/logs")
        return None
    with local_ray.loopback_only():
        context = ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=True,
                           dashboard_host="127.0.0.1", **options)
    session_dir = context.address_info["session_dir"]
    _say_where_ray_logs(verbose, f"in {session_dir}/logs; dashboard http://{context.dashboard_url}")
    return local_ray.record_session(session_dir), session_dir


def _say_where_ray_logs(verbose: bool, where: str) -> None:
    if not verbose:
        print(f"Ray's own output: {where} (`erdiff sweep --verbose` prints it here)", flush=True)


def _use_this_console(tuner: ray.tune.Tuner, context: SweepContext, verbose: bool) -> None:
    """Give a restored tuner this run's console: Tune restores the run config the sweep started with."""
    if tuner._local_tuner is None:  # through Ray Client (ray://) the tuner lives on the cluster: as it was saved
        return
    run_config = tuner._local_tuner.get_run_config()  # Ray's restore sets its fields the same way
    run_config.verbose = tune_verbosity(verbose)
    run_config.callbacks = [c for c in run_config.callbacks or [] if not isinstance(c, SweepConsole)]
    run_config.callbacks.append(SweepConsole(context))


def build_tuner(context: SweepContext, verbose: bool = False) -> ray.tune.Tuner:
    spec = context.spec
    if spec.search.mode == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        task = spec.tasks[0]
        param_space = {"trial": {"task": task, "params": {key: _domain(dim) for key, dim in spec.search.space.items()}}}
        first = {f"trial/params/{key}": value for key, value in spec.paper_default(task).items()}
        search_alg = OptunaSearch(points_to_evaluate=[first], seed=spec.search.seed)
        num_samples = spec.search.num_samples
    else:  # grid and random: the trials listed by the spec (random ones sampled there, with its seed)
        plans = [{"name": p.name, "task": p.task, "params": p.params} for p in spec.trials()]
        param_space = {"trial": ray.tune.grid_search(plans)}
        search_alg, num_samples = None, 1
    return ray.tune.Tuner(
        make_trainable(context),
        param_space=param_space,
        tune_config=ray.tune.TuneConfig(
            metric=METRIC, mode=spec.objective.mode, search_alg=search_alg, scheduler=_scheduler(spec),
            num_samples=num_samples, max_concurrent_trials=spec.concurrency,
            # An in-process trial's next trial runs in the same worker process, which has imported torch and
            # erdiff and built its first kernels already (bench/RESULTS.md, "Sweep overhead"). Not under ASHA:
            # a stopped trial trains on to its next report, and Tune fails the trial that would reuse its
            # process if that takes over 2 s (TUNE_FUNCTION_THREAD_TIMEOUT_S).
            reuse_actors=spec.trainable != "train" and spec.scheduler is None,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=ray.tune.RunConfig(
            name=spec.name, storage_path=context.storage,
            failure_config=ray.tune.FailureConfig(max_failures=spec.failure.trial_retries),
            checkpoint_config=ray.tune.CheckpointConfig(num_to_keep=2),
            # The console reads what TrialRecorder wrote: after it.
            callbacks=[TrialRecorder(context), SweepConsole(context), *tracking_callbacks(spec)],
            verbose=tune_verbosity(verbose)),
    )


def _domain(dim):
    if dim.kind == "choice":
        return ray.tune.choice(list(dim.values))
    low, high = dim.values
    if dim.kind == "uniform":
        return ray.tune.uniform(low, high)
    if dim.kind == "loguniform":
        return ray.tune.loguniform(low, high)
    return ray.tune.randint(low, high + 1)  # the spec's int range includes high


def _scheduler(spec: SweepSpec):
    if spec.scheduler is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    # Time is the gradient step the seeds report, not training_iteration (which restarts after a restore).
    return ASHAScheduler(time_attr="step", max_t=scheduler_max_t(spec), grace_period=scheduler_grace_period(spec),
                         reduction_factor=spec.scheduler.reduction_factor)


def _trial_name(trial) -> str:
    """Grid and random trials carry their name; Optuna's get one from Tune's trial counter (starts at 1)."""
    request = trial.config["trial"]
    if "name" in request:
        return request["name"]
    index = int(trial.experiment_tag.split("_")[0]) - 1
    return trial_name(index, request["task"], request["params"])


class TrialRecorder(ray.tune.Callback):
    """Writes ``<out>/trials/<trial>/trial.json`` on this (the driver's) machine from the trials' results.

    A trial that ends before its last evaluation (stopped by ASHA) is recorded as stopped, and so are its
    seeds' summaries, which the killed workers left at 'running'. A trial that failed because a seed diverged
    (tune.trainable.SeedDiverged) is recorded as diverged, with where each diverged seed did.
    """

    def __init__(self, context: SweepContext):
        self.context = context

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._record(trial, result, "running")

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        finished = result.get("evaluation", 0) >= (result.get("planned_evaluations") or 0)
        if not finished:
            self._mark_seeds_stopped(str(trial))
        self._record(trial, result, "completed" if finished else "stopped")

    def on_trial_error(self, iteration, trials, trial, **info):
        divergence = {f"seed_{seed}": where for seed, where in diverged_seeds(self.context, str(trial)).items()}
        self._record(trial, trial.last_result, DIVERGED if divergence else "error", divergence)

    def _record(self, trial, result: dict | None, status: str, divergence: dict | None = None) -> None:
        spec, request = self.context.spec, trial.config["trial"]
        record = trial_record(spec.name, str(trial), request["task"], request["params"], spec.objective, result,
                              status, divergence)
        write_trial_record(Path(self.context.out_dir) / "trials" / str(trial), record)

    def _mark_seeds_stopped(self, trial: str) -> None:
        for seed in self.context.spec.seeds:
            run_dir = self.context.run_dir(trial, seed)
            if not run_dir.is_dir():
                continue
            try:  # the stopped worker may still be on its way out: wait for it to let go of the run
                with hold_run_dirs([run_dir], wait_s=60):
                    summary = results.read_summary(run_dir)
                    if summary is not None and summary["status"] == "running":
                        results.write_json(run_dir / results.SUMMARY_FILE, {**summary, "status": "stopped"})
            except RunLockedError as err:
                print(f"warning: {err}; its summary still says 'running'", file=sys.stderr)


def _check_results_folder(context: SweepContext, experiment: str, resume: bool, trust_tune_state: bool) -> None:
    saved_spec = Path(context.out_dir) / SPEC_FILE
    if resume and not trust_tune_state:
        inside_out = Path(context.out_dir) in Path(context.storage).parents
        check_tune_state(experiment, root=context.out_dir if inside_out else context.storage)
    can_restore = ray.tune.Tuner.can_restore(experiment)
    if not resume:
        if saved_spec.exists() or can_restore:
            raise SweepError(f"{context.out_dir} already holds the sweep {context.spec.name}: pass --resume to "
                             "continue it, or choose another --out")
        return
    if not can_restore:
        raise SweepError(f"nothing to resume: no Tune experiment state at {experiment}")
    if saved_spec.exists():
        saved = yaml.safe_load(saved_spec.read_text())
        changed = sorted(k for k in set(saved) | set(context.spec.to_dict())
                         if saved.get(k) != context.spec.to_dict().get(k))
        if changed:
            raise SweepError(f"cannot resume: {context.spec.source} differs from the spec the sweep was started with "
                             f"({saved_spec}) in: {', '.join(changed)}; restore it or start a new sweep")


def _print_outcome(context: SweepContext, grid) -> int:
    """The table of `erdiff status` (tune.progress) once the sweep is over; 1 if a trial failed, or if the sweep
    was stopped (Ctrl-C) before every trial ended: the table then says how to resume it.

    A diverged trial is a result of its configuration, not a failure of the sweep: listed last, as diverged.
    """
    progress = sweep_progress(context.spec, context.out_dir)
    progress = dataclasses.replace(progress, unheld=unheld_trials(progress, context.out_dir))
    print("\n" + "\n".join(table_lines(progress, context.out_dir)))
    diverged = sum(trial.status == DIVERGED for trial in progress.trials)
    return 1 if len(grid.errors) > diverged or unfinished_trials(progress) else 0


if __name__ == "__main__":
    from erdiff.cli import main

    sys.exit(main(["sweep", *sys.argv[1:]]))
