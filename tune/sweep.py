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
from tune.aggregate import DIVERGED, read_trial_records, trial_record, write_trial_record
from tune.plan import check_cluster_fits
from tune.spec import SweepSpec, scheduler_grace_period, scheduler_max_t, trial_name
from tune.tracking import set_tracking_environment, tracking_callbacks
from tune.trainable import SweepContext, diverged_seeds, make_trainable
from tune.trust import check_tune_state

SPEC_FILE = "sweep.yaml"
METRIC = "objective"
"""The key of the seed aggregate that Tune, Optuna and ASHA optimise (tune.aggregate.aggregate)."""


class SweepError(ErdiffError):
    """The results folder does not fit the request (a sweep already there, nothing to resume, ...)."""


def run_sweep(spec: SweepSpec, out_dir: str | Path, address: str | None = None, resume: bool = False,
              trust_tune_state: bool = False) -> int:
    """Run (or with ``resume`` continue) ``spec``; return 0 when every trial finished or diverged, 1 otherwise.

    A resume first checks that no one else could have written Tune's state (tune.trust), unless
    ``trust_tune_state``."""
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
    session = connect(address)
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
        else:
            spec_text = yaml.safe_dump(spec.to_dict(), sort_keys=False)
            results.atomic_write_text(Path(context.out_dir) / SPEC_FILE, spec_text)
            tuner = build_tuner(context)
        grid = tuner.fit()
    finally:
        if session is not None:
            ray.shutdown()
            local_ray.end_session(*session)  # the agents may outlive a shutdown too
    return _print_outcome(context, grid)


def connect(address: str | None) -> tuple[Path, str] | None:
    """Connect to ``address``, to the job's cluster (RAY_ADDRESS) or start a local Ray.

    For a local Ray started here: its record and session directory (tune.local_ray), else None."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home
    if address:
        try:
            ray.init(address=address)
        except ConnectionError as err:
            raise SweepError(f"cannot connect to the Ray cluster at {address} ({err}); a cluster of Ray 2.59 or "
                             "newer wants an auth token: set RAY_AUTH_MODE=token (the token is read from "
                             "RAY_AUTH_TOKEN or ~/.ray/auth_token)") from err
        return None
    if os.environ.get("RAY_ADDRESS"):
        ray.init()  # inside `ray job submit`: the cluster's resources, not ours
        return None
    with local_ray.loopback_only():
        context = ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=True,
                           dashboard_host="127.0.0.1")
    session_dir = context.address_info["session_dir"]
    return local_ray.record_session(session_dir), session_dir


def build_tuner(context: SweepContext) -> ray.tune.Tuner:
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
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=ray.tune.RunConfig(
            name=spec.name, storage_path=context.storage,
            failure_config=ray.tune.FailureConfig(max_failures=spec.failure.trial_retries),
            checkpoint_config=ray.tune.CheckpointConfig(num_to_keep=2),
            callbacks=[TrialRecorder(context), *tracking_callbacks(spec)], verbose=1),
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


def _score_text(objective: dict) -> str:
    """``mean ± std (n)`` with the table's decimals; ``mean (1)`` for one seed, ``-`` without a value."""
    if objective["mean"] is None:
        return "-"
    values = [v for v in objective["per_seed"].values() if v is not None]
    std = "" if objective["std"] is None else f" ± {objective['std']:.{results.SCORE_DECIMALS}f}"
    return f"{objective['mean']:.{results.SCORE_DECIMALS}f}{std} ({len(values)})"


def _print_outcome(context: SweepContext, grid) -> int:
    """A ranked list of the sweep's trials from their trial.json files; 1 if a trial failed.

    A diverged trial is a result of its configuration, not a failure of the sweep: listed last, as diverged.
    """
    spec = context.spec
    records = read_trial_records(context.out_dir)
    sign = -1 if spec.objective.mode == "max" else 1
    records.sort(key=lambda r: (r["objective"]["mean"] is None, sign * (r["objective"]["mean"] or 0.0)))
    k = spec.objective.last_k
    print(f"\n{spec.name}: {len(records)} trials, ranked by the {spec.objective.mode} of {spec.objective.metric}: "
          f"mean ± std over seeds (ddof={results.SEED_DDOF}) of each seed's mean of its last {k} evaluations, "
          f"(number of seeds); `erdiff table {context.out_dir} --select last-k --k {k}` shows the same numbers")
    for record in records:
        shown = DIVERGED if record["status"] == DIVERGED else _score_text(record["objective"])
        print(f"  {record['trial']:<48} {shown:>20}  evaluation {record['evaluation']}/"
              f"{record['planned_evaluations']}  {record['status']}")
    diverged = sum(record["status"] == DIVERGED for record in records)
    return 1 if len(grid.errors) > diverged else 0


if __name__ == "__main__":
    from erdiff.cli import main

    sys.exit(main(["sweep", *sys.argv[1:]]))
