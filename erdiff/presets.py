"""Per-task hyperparameters.

The 20 paper tasks use the official code's table verbatim (docs/method.md §14): actor lr, eta, max-Q backup,
reward transform, epochs, gradient-norm clip, diffusion loss and action clipping. Evaluation episodes
follow the official rule: 10 for Gym locomotion, 100 elsewhere. AntMaze v2 and maze2d are not in the
paper: AntMaze v2 reuses the v0 presets; maze2d uses the AntMaze settings without reward transform
(our choice). The local tasks are small CPU-sized problems this project generates itself.
"""

from __future__ import annotations

from erdiff.config import ConfigError, did_you_mean

GYM = [f"{env}-{ds}-v2" for ds in ("medium", "medium-replay", "medium-expert")
       for env in ("halfcheetah", "hopper", "walker2d")]
ANTMAZE_NAMES = ["umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse"]
ANTMAZE_V0 = [f"antmaze-{name}-v0" for name in ANTMAZE_NAMES]
ANTMAZE_V2 = [f"antmaze-{name}-v2" for name in ANTMAZE_NAMES]
ADROIT = ["pen-human-v1", "pen-cloned-v1"]
KITCHEN = ["kitchen-complete-v0", "kitchen-partial-v0", "kitchen-mixed-v0"]
MAZE2D = ["maze2d-umaze-v1", "maze2d-medium-v1", "maze2d-large-v1"]
PAPER_TASKS = GYM + ANTMAZE_V0 + ADROIT + KITCHEN
"""The 20 tasks of the paper's D4RL tables, in table order."""

LOCAL_TASKS = ["toy", "pendulum-medium", "pendulum-medium-replay", "mountaincar-sparse", "hopper-noisy"]
"""Tasks whose datasets `erdiff dataset make` generates on this machine."""


def _paper_preset(domain: str, **agent) -> dict:
    train = {
        "gym": {"epochs": 2000, "eval_episodes": 10, "reward_tune": "no"},
        "antmaze": {"epochs": 1000, "eval_episodes": 100, "reward_tune": "cql_antmaze"},
        "adroit": {"epochs": 1000, "eval_episodes": 100, "reward_tune": "normalize"},
        "kitchen": {"epochs": 1000, "eval_episodes": 100, "reward_tune": "no"},
        "maze2d": {"epochs": 1000, "eval_episodes": 100, "reward_tune": "no"},
    }[domain]
    return {"agent": agent, "train": dict(train)}


def _build_presets() -> dict[str, dict]:
    presets: dict[str, dict] = {}
    for name in GYM:
        presets[name] = _paper_preset("gym", actor_lr=3e-4, eta=1.0, max_q_backup=False, grad_norm=4.0,
                                      loss_type="MLL", action_clip=False)
    for name in ANTMAZE_V0 + ANTMAZE_V2:
        presets[name] = _paper_preset("antmaze", actor_lr=3e-4, eta=2.0,
                                      max_q_backup=not name.startswith("antmaze-umaze-v"),
                                      grad_norm=4.0, loss_type="NML", action_clip=True)
    for name in ADROIT:
        presets[name] = _paper_preset("adroit", actor_lr=3e-5, eta=0.1, max_q_backup=False, grad_norm=8.0,
                                      loss_type="NML", action_clip=True)
    for name in KITCHEN:
        presets[name] = _paper_preset("kitchen", actor_lr=3e-4, eta=0.005, max_q_backup=False,
                                      grad_norm=10.0, loss_type="MLL", action_clip=False)
    for name in MAZE2D:
        presets[name] = _paper_preset("maze2d", actor_lr=3e-4, eta=2.0, max_q_backup=False, grad_norm=4.0,
                                      loss_type="NML", action_clip=True)
    # Local tasks: small budgets that finish on a laptop CPU; the method's own defaults otherwise.
    presets["toy"] = {"agent": {"loss_type": "MLL", "eta": 1.0},
                      "train": {"epochs": 500, "steps_per_epoch": 20, "eval_every": 25, "eval_episodes": 10,
                                "batch_size": 256}}
    for name in ("pendulum-medium", "pendulum-medium-replay"):
        presets[name] = {"agent": {"loss_type": "MLL", "eta": 1.0},
                         "train": {"epochs": 40, "steps_per_epoch": 500, "eval_every": 5, "eval_episodes": 10}}
    presets["mountaincar-sparse"] = {"agent": {"loss_type": "NML", "eta": 2.0, "action_clip": True},
                                     "train": {"epochs": 40, "steps_per_epoch": 500, "eval_every": 5,
                                               "eval_episodes": 10}}
    presets["hopper-noisy"] = {"agent": {"loss_type": "MLL", "eta": 1.0},
                               "train": {"epochs": 20, "steps_per_epoch": 500, "eval_every": 5,
                                         "eval_episodes": 5}}
    return presets


PRESETS = _build_presets()


def preset_for(task: str) -> dict:
    """The preset of ``task`` as a nested config dict; a clear error for an unknown task."""
    if task not in PRESETS:
        known = ", ".join(sorted(PRESETS))
        raise ConfigError(f"unknown task {task!r}{did_you_mean(task, PRESETS)}; known tasks: {known}")
    preset = PRESETS[task]
    return {section: dict(values) for section, values in preset.items()}
