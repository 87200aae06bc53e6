"""`erdiff sweep --dry-run`: the trials, their resources and the estimated GPU-hours, without starting Ray."""

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
    if spec.search.mode == "optuna":
        steps = steps * trial_count
    seed_runs = trial_count * seeds
    total_steps = seeds * sum(steps)
    seconds = total_steps * spec.resources.step_seconds
    lines.append(f"seed runs: {seed_runs}; gradient steps: {total_steps:,} "
                 f"({min(steps):,}{'' if min(steps) == max(steps) else f'-{max(steps):,}'} per seed)")
    lines.append(f"estimated GPU-hours: {seconds * spec.resources.gpu / 3600:,.1f}, CPU-hours: "
                 f"{seconds * spec.resources.cpu / 3600:,.1f} (at resources.step_seconds = "
                 f"{spec.resources.step_seconds:g} s per gradient step; measure yours: time_s / step in a run's "
                 "summary.json)")
    if spec.scheduler is not None:
        lines.append("scheduler: ASHA may stop trials early, so these are upper bounds")
    lines.append(f"results: {out_dir}/trials/<trial>/seed_<k>/; Ray state: {storage}/{spec.name}")
    return "\n".join(lines)
