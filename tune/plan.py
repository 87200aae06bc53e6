"""`erdiff sweep --dry-run`: the trials, their resources and the estimated hours, without starting Ray."""

from __future__ import annotations

from tune.spec import DRIVER_CPU, SpecError, SweepSpec


def trial_resources(spec: SweepSpec) -> tuple[float, float]:
    """CPUs and GPUs one running trial holds."""
    if spec.trainable == "train":
        workers = len(spec.seeds)
        return workers * spec.resources.cpu + DRIVER_CPU, workers * spec.resources.gpu
    return spec.resources.cpu, spec.resources.gpu


def check_cluster_fits(spec: SweepSpec, available: dict, local: bool) -> str | None:
    """None when one trial fits into the cluster's ``available`` resources (``ray.cluster_resources()``).

    Otherwise a message; raises SpecError for a local cluster, where Ray would wait for the resources forever.
    """
    cpu, gpu = trial_resources(spec)
    have_cpu, have_gpu = available.get("CPU", 0.0), available.get("GPU", 0.0)
    if cpu <= have_cpu + 1e-9 and gpu <= have_gpu + 1e-9:
        return None
    workers = f"{len(spec.seeds)} seed workers + driver" if spec.trainable == "train" else "one process"
    message = (f"one trial needs {cpu:g} CPU and {gpu:g} GPU ({workers}) but the Ray cluster has {have_cpu:g} CPU "
               f"and {have_gpu:g} GPU")
    if local:
        raise SpecError(f"{spec.source}: 'resources': {message}; lower resources.cpu/gpu, use fewer seeds or "
                        "trainable: function or packed")
    return message


def describe(spec: SweepSpec, out_dir: str, storage: str) -> str:
    """A plain-text plan of the sweep."""
    seeds = len(spec.seeds)
    plans = spec.trials()
    lines = [f"sweep {spec.name} ({spec.source}): search {spec.search.mode}, trainable {spec.trainable}, "
             f"seeds {list(spec.seeds)}"]
    if spec.search.mode == "optuna":
        trial_count = spec.search.num_samples
        lines.append(f"{trial_count} trials chosen by Optuna TPE (seed {spec.search.seed}) on task {spec.tasks[0]}; "
                     "the first is the paper default:")
    else:
        trial_count = len(plans)
        lines.append(f"{trial_count} trials:")
    for plan in plans:
        shown = " ".join(f"{key}={value!r}" for key, value in plan.params.items()) or "(task preset)"
        lines.append(f"  {plan.name:<48} {shown}")
    for key, dim in spec.search.space.items():
        if dim.kind != "grid":
            lines.append(f"  space {key}: {dim.kind} {list(dim.values)}")

    cpu, gpu = trial_resources(spec)
    worker = f"cpu {spec.resources.cpu:g}, gpu {spec.resources.gpu:g}"
    if spec.trainable == "train":
        lines.append(f"resources per trial: {seeds} seed workers x ({worker}) + driver cpu {DRIVER_CPU:g} "
                     f"= {cpu:g} CPU, {gpu:g} GPU")
    else:
        together = "together as one batched model" if spec.trainable == "packed" else "in turn"
        lines.append(f"resources per trial: one process ({worker}) running the {seeds} seeds {together}")
    lines.append(f"concurrency: {spec.concurrency or 'as many trials as the cluster fits'}")

    # Sampled trials are budgeted like the paper-default trial (their searched fields may change the budget).
    steps = [spec.steps_per_seed(plan) for plan in plans]
    step_s, source = step_seconds(spec, plans)
    if spec.search.mode == "optuna":
        steps, step_s = steps * trial_count, step_s * trial_count
    seed_runs = trial_count * seeds
    total_steps = seeds * sum(steps)
    seconds = seeds * sum(count * each for count, each in zip(steps, step_s))
    lines.append(f"seed runs: {seed_runs}; gradient steps: {total_steps:,} "
                 f"({min(steps):,}{'' if min(steps) == max(steps) else f'-{max(steps):,}'} per seed)")
    lines.append(f"estimated GPU-hours: {_hours(seconds * spec.resources.gpu)}, CPU-hours: "
                 f"{_hours(seconds * spec.resources.cpu)} ({source})")
    if spec.resources.gpu == 0:
        lines.append(local_wall_time(spec, steps, step_s, trial_count))
    if spec.scheduler is not None:
        lines.append("scheduler: ASHA may stop trials early, so these are upper bounds")
    lines.append(f"results: {out_dir}/trials/<trial>/seed_<k>/; Ray state: {storage}/{spec.name}")
    return "\n".join(lines)


ASSUMED_GPU_STEP_S = 0.02
"""Seconds per gradient step the dry run assumes for a GPU sweep whose spec gives no resources.step_seconds."""
SWEEP_START_STOP_S = 8.0
TRIAL_START_S = {"train": 18.0, "function": 2.0, "packed": 3.0}
"""Seconds a local Ray's start and stop, and each trial's start, took on the 2-core machine here
(bench/RESULTS.md, "Sweep overhead")."""


def step_seconds(spec: SweepSpec, plans: list) -> tuple[list[float], str]:
    """Seconds per gradient step of one seed of each plan, and where they come from: the spec's
    resources.step_seconds; for a CPU sweep without it, a few steps at each plan's sizes, precision and threads
    timed on this machine now (erdiff.steptime); for a GPU sweep without it, an assumption."""
    if spec.resources.step_seconds is not None:
        return ([spec.resources.step_seconds] * len(plans),
                f"at resources.step_seconds = {spec.resources.step_seconds:g} s per gradient step")
    if spec.resources.gpu > 0:
        return ([ASSUMED_GPU_STEP_S] * len(plans),
                f"at {ASSUMED_GPU_STEP_S:g} s per gradient step, assumed: set resources.step_seconds to yours, "
                "time_s / step in a run's summary.json")
    from erdiff.steptime import measure_step_seconds
    from erdiff.tasks import get_task

    measured: dict[str, float] = {}
    values = []
    for plan in plans:
        config = spec.seed_config(plan.task, plan.params, spec.seeds[0], plan.name)
        task = get_task(config.task)
        key = repr((task.obs_dim, task.act_dim, config.agent, config.train.batch_size, config.train.precision,
                    config.train.num_threads))
        if key not in measured:
            measured[key] = measure_step_seconds(task.obs_dim, task.act_dim, config.agent, config.train.batch_size,
                                                 threads=config.train.num_threads,
                                                 precision=config.train.precision)
        values.append(measured[key])
    shown = f"{1000 * min(values):.1f}" + ("" if min(values) == max(values) else f"-{1000 * max(values):.1f}")
    return values, (f"at {shown} ms per gradient step, measured on this machine's CPU now: eager, one seed at "
                    "a time with the seed's threads")


def local_wall_time(spec: SweepSpec, steps: list[int], step_s: list[float], trial_count: int) -> str:
    """The wall time of a CPU sweep on a local Ray here: the trials' training, as many at once as the CPUs and
    the concurrency allow, each step slowed by the processes sharing the cores, plus the start-up costs of
    :data:`TRIAL_START_S` and :data:`SWEEP_START_STOP_S`. Evaluations are not counted."""
    import os

    cpus = os.cpu_count() or 1
    trial_cpu, _ = trial_resources(spec)
    at_once = max(1, min(trial_count, spec.concurrency or trial_count, int(cpus / trial_cpu + 1e-9)))
    seeds = len(spec.seeds)
    parallel_seeds = seeds if spec.trainable == "train" else 1
    threads = max(1, int(spec.resources.cpu))
    sharing = max(1.0, at_once * parallel_seeds * threads / cpus)
    in_turn = 1 if spec.trainable == "train" else seeds
    trial_s = [count * each * in_turn * sharing + TRIAL_START_S[spec.trainable] for count, each in zip(steps, step_s)]
    wall_s = SWEEP_START_STOP_S + sum(trial_s) / at_once
    return (f"wall time on a local Ray here ({cpus} CPUs): about {_duration(wall_s)} ({at_once} trial(s) at once; "
            f"start-up {TRIAL_START_S[spec.trainable]:g} s per {spec.trainable} trial and "
            f"{SWEEP_START_STOP_S:g} s for Ray as measured on the 2-core machine here; evaluations on top)")


def _hours(seconds: float) -> str:
    """Hours with one decimal, or two significant digits below one hour (a short sweep is not 0.0 hours)."""
    hours = seconds / 3600
    return f"{hours:,.1f}" if hours >= 1 or hours == 0 else f"{hours:.2g}"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
