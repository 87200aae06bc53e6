"""Typed configuration: dataclasses with a docstring per field, validated on construction.

A run is described by one :class:`Config` with three parts: the task and seed, the agent (the method's
hyperparameters, paper notation in brackets) and the training loop. Every field can be set from YAML
(`Config.from_dict`) or from the command line as ``--agent.num_critics 4`` (:func:`apply_overrides`).
Defaults are the official code's global defaults (docs/method.md §14); per-task values come from
:mod:`erdiff.presets`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from erdiff.errors import ErdiffError


class ConfigError(ErdiffError, ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


def did_you_mean(name: str, known, prefix: str = "") -> str:
    """`` (did you mean 'x'?)`` naming the known names closest to a mistyped ``name``, best first, each shown
    after ``prefix`` (a section such as ``agent.``); '' when none is close.

    The one suggestion helper of every "unknown ..." error (tasks, config fields, label fields; tune's spec
    keys can use it too), so that the likely fix comes before the full list of names.
    """
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=3)
    return f" (did you mean {' or '.join(repr(prefix + c) for c in close)}?)" if close else ""


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"config field '{name}' = {value!r} is invalid: expected {allowed}")


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        _fail(name, value, "one of " + ", ".join(repr(c) for c in choices))


def _check_range(name: str, value: float, low: float | None = None, high: float | None = None,
                 low_open: bool = False) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        _fail(name, value, "a finite number")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        left = "(" if low_open else "["
        _fail(name, value, f"a value in {left}{low if low is not None else '-inf'}, "
                           f"{high if high is not None else 'inf'}]")


AUTO_ENT_COEF = "auto"
"""The agent.ent_coef value that learns alpha (docs/entropy.md §5)."""

ENTROPY_ESTIMATORS = ("official", "knn", "gaussian")
"""The agent.entropy_estimator values (docs/entropy.md §4)."""


@dataclass
class AgentConfig:
    """Hyperparameters of the ERDiff agent (docs/method.md §2–§14)."""

    T: int = 5
    """number of diffusion steps of the mean-reverting SDE (paper: 5)"""
    schedule: str = "cosine"
    """theta schedule of the SDE: cosine | linear | constant | vp"""
    num_critics: int = 64
    """ensemble size M of the Q-ensemble"""
    pessimism: str = "lcb"
    """how the actor reads the ensemble: lcb (mean - beta*std) or min (minimum over members)"""
    lcb_coef: float = 4.0
    """beta, the weight of the ensemble std in the lower confidence bound"""
    ent_coef: float | str = 0.01
    """alpha, the entropy temperature: a number (fixed, as in the official code) or auto (learned by a dual step on
    log alpha toward agent.target_entropy, as in SAC; starts at 0.01; docs/entropy.md §5)"""
    target_entropy: float | None = None
    """the entropy automatic alpha steers the estimate toward; None: the estimator's default (official: the estimate
    for one-step predictions uniform over the action box; knn and gaussian: -action_dim; docs/entropy.md §5)"""
    alpha_lr: float = 3e-4
    """Adam learning rate of log alpha when agent.ent_coef is auto (constant, not scheduled)"""
    entropy_estimator: str = "official"
    """the entropy term's estimate: official (the paper's closed form in the one-step prediction; it cannot see the
    policy's spread, docs/entropy.md), or from agent.entropy_samples reparameterized samples per state: knn
    (Kozachenko-Leonenko nearest-neighbour; handles several modes) or gaussian (a fitted Gaussian's; exact for a
    Gaussian policy, too high for a multimodal one); docs/entropy.md §4"""
    entropy_samples: int = 16
    """knn, gaussian: samples K of the policy per state (K reverse chains of T steps each; gaussian needs K > action
    dimensions)"""
    entropy_states: int = 32
    """knn, gaussian: states per update whose entropy is estimated (the first of the batch, itself a random draw)"""
    eta: float = 1.0
    """eta, the weight of the normalized Q-LCB term in the actor loss"""
    loss_type: str = "MLL"
    """diffusion loss: MLL (maximum likelihood, IR-SDE style) or NML (noise matching)"""
    action_clip: bool = False
    """clip the predicted clean action a_0 to the action bounds at every sampling step"""
    max_q_backup: bool = False
    """critic target from the max over several next-action samples, per member"""
    max_q_samples: int = 10
    """number of next-action samples for the max-Q backup"""
    actor_lr: float = 3e-4
    """Adam learning rate of the diffusion policy"""
    critic_lr: float = 3e-4
    """Adam learning rate of the Q-ensemble"""
    lr_schedule: str = "official"
    """official (cosine stepped once per evaluation period, nearly constant), cosine (per step) or constant"""
    grad_norm: float = 4.0
    """max gradient norm for actor and critic; 0 turns clipping off"""
    discount: float = 0.99
    """gamma, the discount factor"""
    tau: float = 0.005
    """Polyak rate of the target critic, applied every step"""
    ema_decay: float = 0.995
    """decay of the EMA actor that produces next actions for the critic target"""
    ema_start: int = 1000
    """the EMA actor stays at its initial weights until this step (official behaviour)"""
    ema_every: int = 5
    """update the EMA actor every this many steps"""
    hidden_dim: int = 256
    """width of the three hidden layers of the actor and of every critic"""
    eval_candidates: int = 50
    """number of candidate actions drawn per state at evaluation"""
    eval_selection: str = "softmax"
    """how one candidate is chosen: softmax over its Q-LCB (official) or argmax"""

    def __post_init__(self) -> None:
        if isinstance(self.T, bool) or not isinstance(self.T, int) or self.T < 3:
            _fail("agent.T", self.T, "an integer >= 3 (the entropy estimate uses diffusion steps 1 and T-1)")
        _check_choice("agent.schedule", self.schedule, ("cosine", "linear", "constant", "vp"))
        _check_range("agent.num_critics", self.num_critics, 1)
        _check_choice("agent.pessimism", self.pessimism, ("lcb", "min"))
        if self.pessimism == "lcb" and self.num_critics < 2:
            _fail("agent.num_critics", self.num_critics, "at least 2 when agent.pessimism is 'lcb' "
                                                         "(the ensemble std needs two members)")
        _check_range("agent.lcb_coef", self.lcb_coef, 0.0)
        if self.ent_coef != AUTO_ENT_COEF:
            if isinstance(self.ent_coef, str):
                _fail("agent.ent_coef", self.ent_coef, f"a number >= 0 or {AUTO_ENT_COEF!r}")
            _check_range("agent.ent_coef", self.ent_coef, 0.0)
        if self.target_entropy is not None:
            if self.ent_coef != AUTO_ENT_COEF:
                _fail("agent.target_entropy", self.target_entropy,
                      f"null unless agent.ent_coef is {AUTO_ENT_COEF!r} (a fixed alpha has no target)")
            _check_range("agent.target_entropy", self.target_entropy)
        _check_range("agent.alpha_lr", self.alpha_lr, 0.0, 1.0, low_open=True)
        _check_choice("agent.entropy_estimator", self.entropy_estimator, ENTROPY_ESTIMATORS)
        _check_range("agent.entropy_samples", self.entropy_samples, 2)
        _check_range("agent.entropy_states", self.entropy_states, 1)
        _check_range("agent.eta", self.eta, 0.0)
        _check_choice("agent.loss_type", self.loss_type, ("MLL", "NML"))
        _check_range("agent.max_q_samples", self.max_q_samples, 1)
        _check_range("agent.actor_lr", self.actor_lr, 0.0, 1.0, low_open=True)
        _check_range("agent.critic_lr", self.critic_lr, 0.0, 1.0, low_open=True)
        _check_choice("agent.lr_schedule", self.lr_schedule, ("official", "cosine", "constant"))
        _check_range("agent.grad_norm", self.grad_norm, 0.0)
        _check_range("agent.discount", self.discount, 0.0, 1.0)
        _check_range("agent.tau", self.tau, 0.0, 1.0)
        _check_range("agent.ema_decay", self.ema_decay, 0.0, 1.0)
        _check_range("agent.ema_start", self.ema_start, 0)
        _check_range("agent.ema_every", self.ema_every, 1)
        _check_range("agent.hidden_dim", self.hidden_dim, 1)
        _check_range("agent.eval_candidates", self.eval_candidates, 1)
        _check_choice("agent.eval_selection", self.eval_selection, ("softmax", "argmax"))


COMPILE_MODES = ("off", "activation", "update")
"""The train.compile values (see TrainConfig.compile)."""

LEGACY_COMPILE = {False: "off", True: "activation"}
"""train.compile was a bool before it had modes: old config files and checkpoints' configs still say false/true."""

TRACKERS = ("tensorboard", "wandb", "mlflow")
"""The train.track values: the tracking libraries erdiff.tracking logs to."""

DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:(0|[1-9][0-9]*))?")
"""The train.device values: what torch.device accepts of the devices the learner runs on (no leading zeros)."""


@dataclass
class TrainConfig:
    """The training loop: budget, evaluation, data handling and device."""

    epochs: int = 2000
    """number of epochs (paper: 2000 for Gym locomotion, 1000 otherwise)"""
    steps_per_epoch: int = 1000
    """gradient steps per epoch"""
    batch_size: int = 256
    """transitions per gradient step"""
    eval_every: int = 50
    """evaluate (and checkpoint) every this many epochs; the last epoch is always evaluated"""
    eval_episodes: int = 10
    """episodes per evaluation (paper: 10 for Gym, 100 otherwise)"""
    last_k: int = 5
    """summary.json reports the mean of the last k evaluations besides last and best"""
    reward_tune: str = "no"
    """reward transform applied to the dataset: no | cql_antmaze | normalize | iql_antmaze | iql_locomotion"""
    dataset: str | None = None
    """a D4RL-format HDF5 file, or minari:<dataset id>, to train on instead of the task's own dataset"""
    device: str = "auto"
    """torch device: auto (cuda if available), cpu, cuda, cuda:N (N = 0, 1, ...) or mps (Apple GPUs)"""
    gpu_memory_fraction: float | None = None
    """on CUDA, cap this process's share of the GPU memory (set by sweeps that pack trials per GPU)"""
    num_threads: int | None = None
    """torch CPU threads; None: `erdiff train` times 1 thread against every CPU the process may use and takes the
    faster, a sweep worker gets its resources.cpu, a run started from Python 1 for a small step (< 1 GFLOP) and
    every CPU otherwise (erdiff/steptime.py)"""
    compile: str = "off"
    """off | activation: torch.compile the critic's fused bias+Mish (one kernel instead of several passes; same math;
    about 30% more steps/s at M = 64 on CPU, a few seconds of start-up) | update: the whole update as one compiled
    program (losses, gradients, clipping, Adam, EMA and Polyak; CUDA graphs on CUDA; about a minute of start-up on
    CPU; packed seeds keep their own path). Both need a C++ compiler on CPU. false and true (this field's old values)
    mean off and activation"""
    precision: str = "float32"
    """float32 (the method's) | bfloat16: gradient steps under bfloat16 autocast (matrix products and the
    activations after them in bfloat16; weights and optimizer state in float32; evaluation stays float32). About 2x
    the steps/s at M = 64 on a CPU with AVX-512 BF16 (bench/RESULTS.md); it changes the numerics: a learning setting"""
    tf32: bool = False
    """on CUDA, float32 matrix products in TF32 (torch.backends.cuda.matmul.fp32_precision = "tf32"; false sets
    "ieee"): faster on GPUs with tensor cores, with a 10-bit mantissa in the products; a speed setting"""
    track: list[str] = field(default_factory=list)
    """experiment tracking of every evaluation: any of tensorboard, wandb, mlflow, as a list or comma-separated
    (`--track tensorboard,wandb`); needs `pip install 'erdiff[track]'`; README, section Tracking"""

    def __post_init__(self) -> None:
        if isinstance(self.compile, bool):
            self.compile = LEGACY_COMPILE[self.compile]
        _check_choice("train.compile", self.compile, COMPILE_MODES)
        _check_range("train.epochs", self.epochs, 1)
        _check_range("train.steps_per_epoch", self.steps_per_epoch, 1)
        _check_range("train.batch_size", self.batch_size, 1)
        _check_range("train.eval_every", self.eval_every, 1)
        _check_range("train.eval_episodes", self.eval_episodes, 0)
        _check_range("train.last_k", self.last_k, 1)
        _check_choice("train.reward_tune", self.reward_tune,
                      ("no", "cql_antmaze", "normalize", "iql_antmaze", "iql_locomotion"))
        if not DEVICE_PATTERN.fullmatch(self.device):
            _fail("train.device", self.device, "auto, cpu, cuda, cuda:N with N = 0, 1, ... or mps")
        if self.gpu_memory_fraction is not None:
            _check_range("train.gpu_memory_fraction", self.gpu_memory_fraction, 0.0, 1.0, low_open=True)
        if self.num_threads is not None:
            _check_range("train.num_threads", self.num_threads, 1)
        _check_choice("train.precision", self.precision, ("float32", "bfloat16"))
        for name in self.track:
            if name not in TRACKERS:
                _fail("train.track", self.track, f"a list of {', '.join(TRACKERS)}{did_you_mean(name, TRACKERS)}")
        if len(set(self.track)) != len(self.track):
            _fail("train.track", self.track, "a list without repeats")


@dataclass
class Config:
    """One training run: one task, one seed, the agent and the training loop."""

    task: str = "toy"
    """task name from the registry (`erdiff train --help` lists them)"""
    seed: int = 0
    """seeds torch, numpy and python; evaluation environments use seed + 100 (official)"""
    agent: AgentConfig = field(default_factory=AgentConfig)
    """hyperparameters of the method"""
    train: TrainConfig = field(default_factory=TrainConfig)
    """training-loop settings"""
    tags: dict = field(default_factory=dict)
    """free-form labels (sweeps record their spec and trial here); not used for learning"""

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            _fail("task", self.task, "a task name")
        _check_range("seed", self.seed, 0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> Config:
        """Build a Config from nested dicts, checking every key and type."""
        return _build(cls, data, prefix="", source=source)


SECTIONS = {"agent": AgentConfig, "train": TrainConfig}

NON_LEARNING_FIELDS = frozenset({"train.device", "train.num_threads", "train.gpu_memory_fraction", "train.compile",
                                 "train.tf32", "train.track"})
"""Flattened fields that change how fast or where a run goes, never what it learns (with ``tags.*``)."""


def flatten_config(data: dict, prefix: str = "") -> dict:
    """``{'agent': {'T': 5}, 'tags': {'sweep': 's'}}`` -> ``{'agent.T': 5, 'tags.sweep': 's'}``."""
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _coerce(name: str, hint: Any, value: Any) -> Any:
    """Check (and where lossless, convert) a value against a field's annotated type."""
    text = str(hint)
    optional = "None" in text
    if value is None:
        if optional:
            return None
        _fail(name, value, f"a value of type {text}")
    if "float" in text and "str" in text and isinstance(value, str):
        return value  # a number-or-word field (agent.ent_coef): its __post_init__ checks the word
    if "bool" in text:
        if isinstance(value, bool):
            return value
        _fail(name, value, "true or false")
    if "int" in text and "float" not in text:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            _fail(name, value, "an integer")
        return value
    if "float" in text:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(name, value, "a number")
        return float(value)
    if "list" in text:  # a list of names, also written comma-separated (on the command line)
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            _fail(name, value, "a list of names or one comma-separated string")
        return value
    if "str" in text:
        if not isinstance(value, str):
            _fail(name, value, "a string")
        return value
    if "dict" in text:
        if not isinstance(value, dict):
            _fail(name, value, "a mapping")
        return value
    return value


def _require_mapping(source: str, section: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: '{section}' must be a mapping of field: value, "
                          f"got {type(value).__name__} {value!r}")


def _build(cls: type, data: Any, prefix: str, source: str) -> Any:
    _require_mapping(source, prefix.rstrip(".") or "config", data)
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        named = ", ".join(prefix + u + did_you_mean(u, known, prefix) for u in unknown)
        raise ConfigError(f"{source}: unknown config field(s) {named}; "
                          f"known fields here: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in data.items():
        full = prefix + name
        if name in SECTIONS and cls is Config:
            kwargs[name] = _build(SECTIONS[name], value, prefix=full + ".", source=source)
        elif full == "train.compile" and isinstance(value, bool):
            kwargs[name] = value  # an old value, which TrainConfig maps to its mode
        else:
            kwargs[name] = _coerce(full, hints[name], value)
    return cls(**kwargs)


def _parse_scalar(text: str) -> Any:
    """Parse a command-line value with YAML rules (4 -> int, 1e-3 -> float, true -> bool, null -> None)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # YAML 1.1 reads "1e-3" as a string; accept it as a float.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(data: dict, overrides: dict[str, str]) -> dict:
    """Return a copy of nested config ``data`` with dotted-key overrides applied (``agent.T`` -> ``'3'``)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for key, text in overrides.items():
        parts = key.split(".")
        if len(parts) > 2:
            raise ConfigError(f"unknown config field '{key}': use task, seed, agent.FIELD or train.FIELD")
        if len(parts) == 2:
            section, name = parts
            if section not in SECTIONS:
                raise ConfigError(f"unknown config section '{section}' in '--{key}'{did_you_mean(section, SECTIONS)}: "
                                  "expected agent or train")
            out.setdefault(section, {})
            out[section] = dict(out[section])
            out[section][name] = _parse_scalar(text)
        else:
            out[key] = _parse_scalar(text)
    return out


def parse_override_args(argv: list[str]) -> dict[str, str]:
    """Turn ``['--agent.T', '3', '--seed=2']`` into ``{'agent.T': '3', 'seed': '2'}``."""
    overrides: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(f"unexpected argument {arg!r}: overrides look like --agent.num_critics 4")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(argv):
                raise ConfigError(f"override {arg} has no value")
            key, value = arg[2:], argv[i + 1]
            i += 2
        overrides[key] = value
    return overrides


def load_yaml(path: str | Path, what: str = "config file", error: type[ErdiffError] = ConfigError) -> dict:
    """Read a YAML mapping; a missing or malformed file raises ``error`` naming ``what`` and the path."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except UnicodeDecodeError as err:
        raise error(f"{what} {path} is not UTF-8 text ({err})") from err
    except yaml.YAMLError as err:
        raise error(f"{what} {path} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{what} {path} must hold a mapping at the top level, got {type(data).__name__}")
    return data


def merge(base: dict, update: dict) -> dict:
    """Nested merge of config dicts; values in ``update`` win."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def make_config(task: str | None = None, file_data: dict | None = None,
                overrides: dict[str, str] | None = None, source: str = "config") -> Config:
    """The configuration of a run: global defaults < task preset < YAML file < command-line overrides.

    The task is the override's ``--task`` if given, else the file's ``task``, else ``task``.
    """
    from erdiff.presets import preset_for

    file_data = {} if file_data is None else file_data
    overrides = overrides or {}
    # Check the file's shape first: merging and overriding assume mappings.
    _require_mapping(source, "config", file_data)
    for section in (*SECTIONS, "tags"):
        if section in file_data:
            _require_mapping(source, section, file_data[section])
    name = overrides.get("task") or file_data.get("task") or task
    if not name:
        raise ConfigError(f"{source}: no task given (use --task NAME or a 'task:' key in the config file)")
    if not isinstance(name, str):
        _fail("task", name, "a task name")
    data = merge(merge({"task": name}, preset_for(name)), file_data)
    data = apply_overrides(data, overrides)
    data["task"] = name
    return Config.from_dict(data, source=source)


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a config dataclass (read from its source), for --help and errors."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)):
            docs[node.target.id] = str(following.value.value).strip()
    return docs


def describe_fields() -> str:
    """A help listing of every overridable field with its default and docstring."""
    lines = []
    for prefix, cls in (("", Config), ("agent.", AgentConfig), ("train.", TrainConfig)):
        defaults = {f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
                    for f in fields(cls) if (f.default, f.default_factory) != (dataclasses.MISSING,) * 2}
        for name, doc in field_docs(cls).items():
            if name in SECTIONS or name in ("tags", "task"):
                continue
            default = f" (default {defaults[name]!r})" if name in defaults else ""
            lines.append(f"  --{prefix}{name}{default}\n      {doc}")
    return "\n".join(lines)
