"""Sweep specs: one YAML file describes a whole sweep; :func:`load_spec` validates it into a :class:`SweepSpec`.

A spec names the tasks, the seeds every configuration is trained with, a fixed learner config (nested like
`erdiff train --config`), a search space over any learner config field, the search mode, the objective and
the resources of one seed worker. Example (``tune/configs/quickstart.yaml``)::

    name: quickstart
    tasks: [toy]
    seeds: 2                       # a count (seeds 0..n-1) or a list of seeds
    trainable: train               # a Ray Train trainer per trial, one worker per seed (or: function, packed)
    config:                        # fixed config, on top of each task's preset
      agent: {num_critics: 4, hidden_dim: 32}
      train: {epochs: 20, steps_per_epoch: 20, eval_every: 4, eval_episodes: 10}
    search:
      mode: grid                   # grid | optuna | random
      space:                       # dotted learner config fields
        agent.ent_coef: {grid: [0.0, 0.01]}
        agent.T: {grid: [3, 5]}
    objective: {metric: normalized_score_mean, mode: max, last_k: 3}
    resources: {cpu: 0.49, gpu: 0}  # per seed worker
    concurrency: 2

Every field, its default and its meaning is listed in :data:`FIELD_HELP`. This module does not import Ray:
`erdiff sweep --dry-run` and the spec tests run without it. Every mistake raises one :class:`SpecError` that
names the file and the field.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np

from erdiff.config import SECTIONS, TRACKERS, Config, ConfigError, did_you_mean, load_yaml, make_config, merge
from erdiff.errors import ErdiffError
from erdiff.presets import PRESETS
from erdiff.results import METRIC_KEYS


class SpecError(ErdiffError):
    """A sweep spec is missing a field, has an unknown one or holds a value out of range."""


FIELD_HELP = {
    "name": "the sweep's name: results go to results/<name> by default (letters, digits, . _ -)",
    "tasks": "list of task names; each configuration is trained on each task (optuna: exactly one task)",
    "seeds": "seeds per configuration: a count n (seeds 0..n-1) or a list of seeds (default 1)",
    "trainable": "train (default: a Ray Train trainer per trial, one worker per seed), function (the seeds run "
                 "one after another in one process: much less overhead on small machines) or packed (the seeds "
                 "train together in one process as one batched model, equal to separate runs; resources are "
                 "those of the whole trial)",
    "config": "fixed learner config {agent: {...}, train: {...}} applied on top of each task's preset; a "
              "relative train.dataset path is read from the directory the sweep is started in",
    "task_config": "fixed learner config of one task, {TASK: {agent: {...}, train: {...}}}, applied on top of "
                   "config for that task only (e.g. its train.dataset file)",
    "search": "{mode: grid|optuna|random, space: {FIELD: DIMENSION}, cases: [{FIELD: VALUE, ...}], num_samples: N, "
              "seed: S}; a DIMENSION is {grid: [..]} (grid mode) or {choice: [..]}, {uniform: [lo, hi]}, "
              "{loguniform: [lo, hi]}, {int: [lo, hi]} (optuna and random; int includes hi); cases (grid mode "
              "only) are settings of coupled fields, each crossed with the grid of space",
    "objective": "{metric: a metrics.jsonl key (default normalized_score_mean), mode: max|min, last_k: k}: each "
                 "seed's value is the mean of its last k evaluations, the trial's the mean over seeds",
    "resources": "per seed worker (trainable train) or per trial process (function, packed): {cpu: 1, gpu: 0 "
                 "(a fraction of one GPU), step_seconds: seconds per gradient step of one seed, only for the dry "
                 "run's time estimate (default: measured on this machine when gpu is 0, else 0.02 assumed)}",
    "concurrency": "maximum number of trials running at once (default: as many as the resources allow)",
    "storage": "where Ray keeps Tune state and checkpoints: an absolute path, an NFS mount or s3://...; "
               "default <out>/ray (multi-node clusters need shared storage here)",
    "scheduler": "null (default: every trial runs to the end) or {type: asha, grace_period: STEPS, "
                 "reduction_factor: 3, max_t: STEPS}; ASHA's time is the gradient step, default grace half the "
                 "budget",
    "failure": "{trial_retries: 2, worker_retries: 3, start_timeout_s: 300}: restarts of a failed trial, of a "
               "failed seed worker, and how long a trial may wait for its workers to be placed",
    "tracking": "experiment tracking: a list of tensorboard, wandb, mlflow (default none); Ray Tune's logger "
                "callbacks log each trial's seed aggregate, each seed's own run logs its records (train.track; "
                "README, Tracking)",
}

MODES = ("grid", "optuna", "random")
SAMPLED_KINDS = ("choice", "uniform", "loguniform", "int")
KINDS = ("grid",) + SAMPLED_KINDS
OBJECTIVE_METRICS = tuple(k for k in METRIC_KEYS if k not in ("step", "epoch", "time_s", "episode_returns"))
EVALUATION_METRICS = ("return_mean", "return_std", "normalized_score_mean", "normalized_score_std")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DRIVER_CPU = 0.01
"""CPU reserved by the Tune trial that drives a Ray Train trainer: the workers do the work (docs/stack.md §3.1)."""


@dataclass(frozen=True)
class Dimension:
    """One searched config field: ``kind`` is grid, choice, uniform, loguniform or int."""

    kind: str
    values: tuple
    """grid and choice: the candidate values; uniform, loguniform and int: (low, high)"""


@dataclass(frozen=True)
class Search:
    mode: str = "grid"
    space: dict[str, Dimension] = field(default_factory=dict)
    num_samples: int = 1
    """number of trials of an optuna or random search (per task for random)"""
    seed: int = 0
    """seed of the sampler (optuna TPE, random)"""
    cases: tuple[dict[str, Any], ...] = ()
    """grid mode: settings of coupled fields (e.g. M = 1 with pessimism min), each crossed with the grid of space"""


@dataclass(frozen=True)
class Objective:
    metric: str = "normalized_score_mean"
    mode: str = "max"
    last_k: int = 5


@dataclass(frozen=True)
class Resources:
    cpu: float = 1.0
    gpu: float = 0.0
    step_seconds: float | None = None
    """seconds per gradient step of one seed, for the dry run's estimate; None: measured here on a CPU sweep"""


@dataclass(frozen=True)
class Scheduler:
    type: str = "asha"
    grace_period: int | None = None
    reduction_factor: int = 3
    max_t: int | None = None


@dataclass(frozen=True)
class Failure:
    trial_retries: int = 2
    worker_retries: int = 3
    start_timeout_s: float = 300.0


@dataclass(frozen=True)
class TrialPlan:
    """One trial: a task and the values of the searched fields (a configuration), trained for every seed."""

    name: str
    task: str
    params: dict[str, Any]


@dataclass(frozen=True)
class SweepSpec:
    name: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    trainable: str = "train"
    config: dict = field(default_factory=dict)
    task_config: dict[str, dict] = field(default_factory=dict)
    """per-task fixed config, applied on top of ``config`` for that task"""
    search: Search = field(default_factory=Search)
    objective: Objective = field(default_factory=Objective)
    resources: Resources = field(default_factory=Resources)
    concurrency: int | None = None
    storage: str | None = None
    scheduler: Scheduler | None = None
    failure: Failure = field(default_factory=Failure)
    tracking: tuple[str, ...] = ()
    """tracking libraries (erdiff.config.TRACKERS) of the trials' aggregates and of every seed's run"""
    source: str = "spec"
    """the file the spec was read from (for error messages); not part of the spec"""

    def to_dict(self) -> dict:
        """The spec with every default filled in, as written to ``<out>/sweep.yaml``."""
        data = dataclasses.asdict(self)
        data.pop("source")
        data["tasks"] = list(self.tasks)
        data["seeds"] = list(self.seeds)
        if self.tracking:
            data["tracking"] = list(self.tracking)
        else:  # as sweeps wrote it before tracking existed, so that they still resume
            del data["tracking"]
        data["search"]["space"] = {key: {dim.kind: list(dim.values)} for key, dim in self.search.space.items()}
        if self.search.mode == "grid":  # the grid fixes the trials: no budget, no sampler
            del data["search"]["num_samples"], data["search"]["seed"]
        # Left out when unused, so that sweep.yaml files written before these fields existed still resume.
        data["search"]["cases"] = [dict(case) for case in self.search.cases]
        if not data["search"]["cases"]:
            del data["search"]["cases"]
        if not self.task_config:
            del data["task_config"]
        return data

    def storage_for(self, out_dir: str | Path) -> str:
        """Ray's storage: the spec's, or ``<out_dir>/ray`` (absolute: Ray rejects relative paths)."""
        return self.storage or str(Path(out_dir).resolve() / "ray")

    def fixed_config(self, task: str) -> dict:
        """The spec's fixed config of ``task``: ``config`` with that task's ``task_config`` on top."""
        return merge(self.config, self.task_config.get(task, {}))

    def seed_config(self, task: str, params: dict[str, Any], seed: int, trial_name: str) -> Config:
        """The learner config of one seed of one trial: preset < fixed config < searched values < seed, tags.

        Threads follow the worker's CPUs, on a shared GPU the memory cap follows its GPU fraction, and the seed's
        run is tracked with the spec's ``tracking``, unless the fixed config sets them.
        """
        data = merge(self.fixed_config(task), _nest(params))
        data = merge(data, {"seed": seed, "tags": {"sweep": self.name, "trial": trial_name}})
        train = dict(data.get("train", {}))
        train.setdefault("num_threads", max(1, int(self.resources.cpu)))
        train.setdefault("track", list(self.tracking))
        if 0 < self.resources.gpu < 1:
            train.setdefault("gpu_memory_fraction", self.resources.gpu)
        data["train"] = train
        return make_config(task, data, source=self.source)

    def steps_per_seed(self, plan: TrialPlan) -> int:
        train = self.seed_config(plan.task, plan.params, self.seeds[0], plan.name).train
        return train.epochs * train.steps_per_epoch

    def trials(self) -> list[TrialPlan]:
        """Every trial of a grid or random search, in run order; an optuna search's first (paper default) trial.

        Random searches are sampled here, with the spec's seed, so `--dry-run` lists the very trials a run makes.
        """
        if self.search.mode == "grid":
            keys = list(self.search.space)
            combos = itertools.product(self.tasks, self.search.cases or ({},),
                                       *(self.search.space[k].values for k in keys))
            requests = [(task, {**case, **dict(zip(keys, values))}) for task, case, *values in combos]
        elif self.search.mode == "random":
            rng = np.random.default_rng(self.search.seed)
            requests = [(task, self.paper_default(task) if i == 0 else _sample(self.search.space, rng))
                        for task in self.tasks for i in range(self.search.num_samples)]
        else:
            requests = [(self.tasks[0], self.paper_default(self.tasks[0]))]
        return [TrialPlan(trial_name(index, task, params), task, params)
                for index, (task, params) in enumerate(requests)]

    def paper_default(self, task: str) -> dict[str, Any]:
        """The searched fields' values in the task's preset with the fixed config: the first sampled trial."""
        config = make_config(task, self.fixed_config(task), source=self.source).to_dict()
        return {key: config[key.split(".")[0]][key.split(".")[1]] for key in self.search.space}


def trial_name(index: int, task: str, params: dict[str, Any]) -> str:
    """A readable, deterministic trial name (no timestamps, so a restarted sweep finds its trials again)."""
    parts = [f"{index:03d}", task] + [f"{key.split('.')[-1]}={_short(value)}" for key, value in params.items()]
    return re.sub(r"[^A-Za-z0-9_.=+-]", "-", "_".join(parts))


def _short(value: Any) -> str:
    return format(value, ".4g") if isinstance(value, float) else str(value)


def _nest(params: dict[str, Any]) -> dict:
    """``{'agent.T': 3}`` -> ``{'agent': {'T': 3}}``."""
    nested: dict = {}
    for key, value in params.items():
        section, name = key.split(".")
        nested.setdefault(section, {})[name] = value
    return nested


def _sample(space: dict[str, Dimension], rng: np.random.Generator) -> dict[str, Any]:
    values = {}
    for key, dim in space.items():
        low, high = dim.values[0], dim.values[-1]
        if dim.kind == "choice":
            values[key] = dim.values[int(rng.integers(len(dim.values)))]
        elif dim.kind == "uniform":
            values[key] = float(rng.uniform(low, high))
        elif dim.kind == "loguniform":
            values[key] = float(math.exp(rng.uniform(math.log(low), math.log(high))))
        else:
            values[key] = int(rng.integers(low, high + 1))
    return values


# ---------------------------------------------------------------------------------------------------------
# Reading and validation


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate the sweep spec at ``path``."""
    return parse_spec(load_yaml(path, "sweep spec", SpecError), source=str(path))


def parse_spec(data: Any, source: str = "spec") -> SweepSpec:
    """Validate a spec given as a mapping; every mistake is one SpecError naming ``source`` and the field."""
    fail = _Fail(source)
    if not isinstance(data, dict):
        fail("the spec", "a mapping of spec fields at the top level", data)
    _check_keys(fail, "the spec", data, FIELD_HELP)
    for required in ("name", "tasks"):
        if required not in data:
            fail(required, "a value (it is required)", None)

    name = data["name"]
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        fail("name", "a name of letters, digits, '.', '_' or '-'", name)
    tasks = _parse_tasks(fail, data["tasks"])
    config = _parse_fixed_config(fail, "config", data.get("config") or {}, tasks)
    spec = SweepSpec(
        name=name, tasks=tasks, seeds=_parse_seeds(fail, data.get("seeds", 1)),
        trainable=_choice(fail, "trainable", data.get("trainable", "train"), ("train", "function", "packed")),
        config=config, task_config=_parse_task_config(fail, data.get("task_config") or {}, tasks, config),
        search=_parse_search(fail, data.get("search") or {}),
        objective=_parse_objective(fail, data.get("objective") or {}),
        resources=_parse_resources(fail, data.get("resources") or {}),
        concurrency=_optional_int(fail, "concurrency", data.get("concurrency"), 1),
        storage=_parse_storage(fail, data.get("storage")),
        scheduler=_parse_scheduler(fail, data.get("scheduler")),
        failure=_parse_failure(fail, data.get("failure") or {}),
        tracking=_parse_tracking(fail, data.get("tracking") or []),
        source=source,
    )
    _check_space_against_config(fail, spec)
    _check_every_trial(fail, spec)
    _check_scheduler_budget(fail, spec)
    return spec


@dataclass(frozen=True)
class _Fail:
    """Raises the SpecError of one field of the spec read from ``source``."""

    source: str

    def __call__(self, where: str, expected: str, got: Any) -> None:
        shown = "" if got is None else f", got {got!r}"
        raise SpecError(f"{self.source}: '{where}' must be {expected}{shown}")


def _check_keys(fail: _Fail, where: str, data: dict, known) -> None:
    unknown = sorted(set(data) - set(known), key=str)
    if unknown:
        hints = "".join(did_you_mean(name, known) for name in unknown)
        raise SpecError(f"{fail.source}: unknown field(s) {', '.join(map(str, unknown))} in {where}{hints}; "
                        f"known fields: {', '.join(sorted(known))}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice(fail: _Fail, where: str, value: Any, choices: tuple) -> str:
    if value not in choices:
        fail(where, "one of " + ", ".join(choices), value)
    return value


def _int(fail: _Fail, where: str, value: Any, low: int) -> int:
    if not _is_int(value) or value < low:
        fail(where, f"an integer >= {low}", value)
    return value


def _optional_int(fail: _Fail, where: str, value: Any, low: int) -> int | None:
    return None if value is None else _int(fail, where, value, low)


def _number(fail: _Fail, where: str, value: Any, low: float, high: float | None = None,
            low_open: bool = False) -> float:
    bad = not _is_number(value) or (value <= low if low_open else value < low) or (high is not None and value > high)
    if bad:
        interval = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}]"
        fail(where, f"a number in {interval}", value)
    return float(value)


def _parse_tasks(fail: _Fail, value: Any) -> tuple[str, ...]:
    return _parse_names(fail, "tasks", value, tuple(PRESETS), expected="a non-empty list of task names",
                        unknown="unknown task", known_label="known tasks", allow_empty=False)


def _parse_names(fail: _Fail, key: str, value: Any, known: tuple[str, ...], *, expected: str, unknown: str,
                 known_label: str, allow_empty: bool) -> tuple[str, ...]:
    """A list of names out of ``known`` (one name alone is a list of one) without repeats; an unknown name is one
    error that suggests the closest known one."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not (value or allow_empty):
        fail(key, expected, value)
    for name in value:
        if name not in known:
            raise SpecError(f"{fail.source}: '{key}': {unknown} {name!r}{did_you_mean(name, known)}; {known_label}: "
                            f"{', '.join(known)}")
    if len(set(value)) != len(value):
        fail(key, "a list without repeats", value)
    return tuple(value)


def _parse_seeds(fail: _Fail, value: Any) -> tuple[int, ...]:
    if _is_int(value):
        return tuple(range(_int(fail, "seeds", value, 1)))
    if not isinstance(value, list) or not value or not all(_is_int(s) and s >= 0 for s in value):
        fail("seeds", "a count >= 1 or a non-empty list of integer seeds >= 0", value)
    if len(set(value)) != len(value):
        fail("seeds", "a list without repeats", value)
    return tuple(value)


def _parse_fixed_config(fail: _Fail, where: str, value: Any, tasks: tuple[str, ...], base: dict | None = None) -> dict:
    """A fixed config (``config``, or one task's ``task_config`` on top of ``base``) checked by the learner on
    ``tasks``, with a relative train.dataset made absolute: trials run in other working directories."""
    if not isinstance(value, dict):
        fail(where, "a mapping like {agent: {...}, train: {...}}", value)
    for key in ("task", "seed", "tags"):
        if key in value:
            fail(f"{where}.{key}", "absent: tasks, seeds and tags are set by the spec itself", value[key])
    for task in tasks:
        _check_with_learner(fail, where, task, merge(base or {}, value))
    dataset = (value.get("train") or {}).get("dataset")
    if isinstance(dataset, str) and not dataset.startswith("minari:") and "://" not in dataset:
        value = merge(value, {"train": {"dataset": str(Path(dataset).expanduser().resolve())}})
    return value


def _parse_task_config(fail: _Fail, value: Any, tasks: tuple[str, ...], config: dict) -> dict[str, dict]:
    if not isinstance(value, dict):
        fail("task_config", "a mapping {TASK: {agent: {...}, train: {...}}} over tasks of the spec", value)
    for task in value:
        if task not in tasks:
            fail("task_config", f"keyed by tasks of the spec ({', '.join(tasks)})", task)
    return {task: _parse_fixed_config(fail, f"task_config.{task}", fixed, (task,), config)
            for task, fixed in value.items()}


def _check_with_learner(fail: _Fail, where: str, task: str, data: dict) -> None:
    """The learner's own validation of a config (unknown fields, types, ranges) as a SpecError at ``where``."""
    try:
        make_config(task, data, source=f"task {task}")
    except ConfigError as err:
        raise SpecError(f"{fail.source}: '{where}', {err}") from err


def _parse_search(fail: _Fail, value: Any) -> Search:
    if not isinstance(value, dict):
        fail("search", "a mapping {mode, space, num_samples, seed}", value)
    _check_keys(fail, "search", value, ("mode", "space", "cases", "num_samples", "seed"))
    mode = _choice(fail, "search.mode", value.get("mode", "grid"), MODES)
    space_data = value.get("space") or {}
    if not isinstance(space_data, dict):
        fail("search.space", "a mapping of dotted config fields to dimensions", space_data)
    space = {key: _parse_dimension(fail, f"search.space.{key}", key, dim) for key, dim in space_data.items()}
    for key, dim in space.items():
        if mode == "grid" and dim.kind != "grid":
            fail(f"search.space.{key}", "a {grid: [...]} dimension in grid mode (sampled dimensions need mode "
                                        "optuna or random)", {dim.kind: list(dim.values)})
        if mode != "grid" and dim.kind == "grid":
            fail(f"search.space.{key}", f"a sampled dimension ({', '.join(SAMPLED_KINDS)}) in {mode} mode",
                 {dim.kind: list(dim.values)})
    if mode == "grid":
        if "num_samples" in value:
            fail("search.num_samples", "absent in grid mode (the grid fixes the trials)", value["num_samples"])
        num_samples = 1
    else:
        if not space:
            fail("search.space", f"at least one dimension in {mode} mode", space_data)
        num_samples = _int(fail, "search.num_samples", value.get("num_samples", 10), 1)
    cases = _parse_cases(fail, value.get("cases"), mode, space)
    return Search(mode, space, num_samples, _int(fail, "search.seed", value.get("seed", 0), 0), cases)


def _parse_cases(fail: _Fail, value: Any, mode: str, space: dict[str, Dimension]) -> tuple[dict[str, Any], ...]:
    """``search.cases``: a list of non-empty mappings of dotted fields to values, none of them also in space."""
    if value is None:
        return ()
    if mode != "grid":
        fail("search.cases", "absent in optuna and random mode (cases are crossed with a grid)", value)
    if not isinstance(value, list) or not value:
        fail("search.cases", "a non-empty list of mappings {FIELD: VALUE, ...}", value)
    for index, case in enumerate(value):
        where = f"search.cases[{index}]"
        if not isinstance(case, dict) or not case:
            fail(where, "a non-empty mapping of dotted learner fields to values", case)
        for key in case:
            _check_field_key(fail, where, key)
            if key in space:
                fail(where, f"without {key}: it is a dimension of search.space too", case)
    if len({repr(sorted(case.items())) for case in value}) != len(value):
        fail("search.cases", "a list without repeated cases", value)
    return tuple(dict(case) for case in value)


def _check_field_key(fail: _Fail, where: str, key: Any) -> None:
    if not isinstance(key, str) or len(key.split(".")) != 2 or key.split(".")[0] not in SECTIONS:
        fail(where, "keyed by a dotted learner field such as agent.ent_coef or train.batch_size "
                    "(task and seed are set by 'tasks' and 'seeds')", key)


def _parse_dimension(fail: _Fail, where: str, key: Any, value: Any) -> Dimension:
    _check_field_key(fail, where, key)
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in KINDS:
        fail(where, "one of " + ", ".join("{" + kind + ": [...]}" for kind in KINDS), value)
    kind, values = next(iter(value.items()))
    if kind in ("grid", "choice"):
        if not isinstance(values, list) or not values:
            fail(where, f"{{{kind}: [v1, v2, ...]}} with at least one value", value)
        if len({repr(v) for v in values}) != len(values):
            fail(where, f"{{{kind}: [...]}} without repeated values", value)
        return Dimension(kind, tuple(values))
    if not isinstance(values, list) or len(values) != 2 or not all(_is_number(v) for v in values):
        fail(where, f"{{{kind}: [low, high]}} with two numbers", value)
    low, high = values
    if low >= high:
        fail(where, f"{{{kind}: [low, high]}} with low < high", value)
    if kind == "loguniform" and low <= 0:
        fail(where, "{loguniform: [low, high]} with low > 0", value)
    if kind == "int" and not (_is_int(low) and _is_int(high)):
        fail(where, "{int: [low, high]} with integer bounds", value)
    return Dimension(kind, (low, high))


def _fixed_at(spec: SweepSpec, key: str) -> list[str]:
    """Where the fixed configs set the dotted field ``key``: config.KEY and task_config.TASK.KEY."""
    section, name = key.split(".")
    configs = {"config": spec.config, **{f"task_config.{task}": fixed for task, fixed in spec.task_config.items()}}
    return [f"{where}.{key}" for where, fixed in configs.items() if name in fixed.get(section, {})]


def _check_space_against_config(fail: _Fail, spec: SweepSpec) -> None:
    """Every searched field exists and every candidate value passes the learner's validation on every task."""
    hints = {name: get_type_hints(cls) for name, cls in SECTIONS.items()}
    case_keys = {key: f"search.cases[{index}]" for index, case in enumerate(spec.search.cases) for key in case}
    for key, where in case_keys.items():
        section, name = key.split(".")
        fixed = _fixed_at(spec, key)
        if fixed:
            fail(where, f"without {key}: it is set in the fixed config too ({fixed[0]})", None)
        if name not in hints[section]:
            raise SpecError(f"{spec.source}: '{where}': unknown learner config field {key}"
                            f"{did_you_mean(name, hints[section], prefix=f'{section}.')}")
    for key, dim in spec.search.space.items():
        section, name = key.split(".")
        where = f"search.space.{key}"
        fixed = _fixed_at(spec, key)
        if fixed:
            fail(where, f"absent from the fixed config too ({fixed[0]} is set there)", None)
        if name not in hints[section]:
            known = ", ".join(f"{section}.{n}" for n in hints[section])
            raise SpecError(f"{spec.source}: '{where}': unknown learner config field {key}"
                            f"{did_you_mean(name, hints[section], prefix=f'{section}.')}; known fields: {known}")
        type_text = str(hints[section][name])
        if dim.kind in ("uniform", "loguniform") and "float" not in type_text:
            fail(where, f"a grid, choice or int dimension: {key} is not a float field ({type_text})",
                 {dim.kind: list(dim.values)})
        if dim.kind == "int" and "int" not in type_text and "float" not in type_text:
            fail(where, f"a grid or choice dimension: {key} is not numeric ({type_text})", None)
        for value in dim.values:
            for task in spec.tasks:
                _check_with_learner(fail, where, task, merge(spec.fixed_config(task), _nest({key: value})))
    if spec.search.mode == "optuna" and len(spec.tasks) != 1:
        fail("tasks", "exactly one task in optuna mode (one study optimises one objective; "
                      "write one spec per task)", list(spec.tasks))
    if spec.search.mode != "grid":
        for task in spec.tasks:
            for key, value in spec.paper_default(task).items():
                dim = spec.search.space[key]
                inside = value in dim.values if dim.kind == "choice" else dim.values[0] <= value <= dim.values[1]
                if not inside:
                    fail(f"search.space.{key}", f"a dimension that contains the paper default {value!r} of task "
                                                f"{task} (the first trial of a {spec.search.mode} search is the "
                                                "paper default)", {dim.kind: list(dim.values)})


def _parse_objective(fail: _Fail, value: Any) -> Objective:
    if not isinstance(value, dict):
        fail("objective", "a mapping {metric, mode, last_k}", value)
    _check_keys(fail, "objective", value, ("metric", "mode", "last_k"))
    return Objective(_choice(fail, "objective.metric", value.get("metric", "normalized_score_mean"),
                             OBJECTIVE_METRICS),
                     _choice(fail, "objective.mode", value.get("mode", "max"), ("max", "min")),
                     _int(fail, "objective.last_k", value.get("last_k", 5), 1))


def _check_every_trial(fail: _Fail, spec: SweepSpec) -> None:
    """Every listed trial's config passes the learner (a case with a grid value may not) and is evaluated when
    the objective is an evaluation metric."""
    for plan in spec.trials():
        try:
            config = spec.seed_config(plan.task, plan.params, spec.seeds[0], plan.name)
        except ConfigError as err:
            raise SpecError(f"{spec.source}: 'search', trial {plan.name}: {err}") from err
        if spec.objective.metric in EVALUATION_METRICS and config.train.eval_episodes == 0:
            fail("objective.metric", f"a loss metric when train.eval_episodes is 0 (task {plan.task} is not "
                                     f"evaluated, so {spec.objective.metric} stays empty)", spec.objective.metric)


def _parse_resources(fail: _Fail, value: Any) -> Resources:
    if not isinstance(value, dict):
        fail("resources", "a mapping {cpu, gpu, step_seconds}", value)
    _check_keys(fail, "resources", value, ("cpu", "gpu", "step_seconds"))
    return Resources(_number(fail, "resources.cpu", value.get("cpu", 1.0), 0.0, low_open=True),
                     _number(fail, "resources.gpu", value.get("gpu", 0.0), 0.0, 1.0),
                     None if value.get("step_seconds") is None else
                     _number(fail, "resources.step_seconds", value["step_seconds"], 0.0, low_open=True))


def _parse_storage(fail: _Fail, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        fail("storage", "a path or a URI such as s3://bucket/prefix", value)
    return value if "://" in value else str(Path(value).expanduser().resolve())


def _parse_scheduler(fail: _Fail, value: Any) -> Scheduler | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        fail("scheduler", "null or a mapping {type: asha, grace_period, reduction_factor, max_t}", value)
    _check_keys(fail, "scheduler", value, ("type", "grace_period", "reduction_factor", "max_t"))
    _choice(fail, "scheduler.type", value.get("type"), ("asha",))
    return Scheduler("asha", _optional_int(fail, "scheduler.grace_period", value.get("grace_period"), 1),
                     _int(fail, "scheduler.reduction_factor", value.get("reduction_factor", 3), 2),
                     _optional_int(fail, "scheduler.max_t", value.get("max_t"), 2))


def _check_scheduler_budget(fail: _Fail, spec: SweepSpec) -> None:
    if spec.scheduler is None:
        return
    max_t = scheduler_max_t(spec)
    grace = scheduler_grace_period(spec)
    if grace >= max_t:
        fail("scheduler.grace_period", f"fewer gradient steps than max_t ({max_t})", grace)


def scheduler_max_t(spec: SweepSpec) -> int:
    """ASHA's horizon in gradient steps: the spec's max_t, else the longest budget among the listed trials
    (for optuna: the paper-default trial's; set max_t when searching train.epochs)."""
    if spec.scheduler.max_t is not None:
        return spec.scheduler.max_t
    return max(spec.steps_per_seed(plan) for plan in spec.trials())


def scheduler_grace_period(spec: SweepSpec) -> int:
    """ASHA's grace period in gradient steps; by default half the horizon (evaluations are noisy early on)."""
    return spec.scheduler.grace_period or max(1, scheduler_max_t(spec) // 2)


def _parse_failure(fail: _Fail, value: Any) -> Failure:
    if not isinstance(value, dict):
        fail("failure", "a mapping {trial_retries, worker_retries, start_timeout_s}", value)
    _check_keys(fail, "failure", value, ("trial_retries", "worker_retries", "start_timeout_s"))
    return Failure(_int(fail, "failure.trial_retries", value.get("trial_retries", 2), 0),
                   _int(fail, "failure.worker_retries", value.get("worker_retries", 3), 0),
                   _number(fail, "failure.start_timeout_s", value.get("start_timeout_s", 300.0), 0.0,
                           low_open=True))


def _parse_tracking(fail: _Fail, value: Any) -> tuple[str, ...]:
    return _parse_names(fail, "tracking", value, TRACKERS, expected=f"a list of {', '.join(TRACKERS)}",
                        unknown="unknown tracking library", known_label="known", allow_empty=True)
