"""Configuration: layering, presets and one clear error per bad input."""

import pytest

from erdiff.cli import main
from erdiff.config import (
    AgentConfig,
    Config,
    ConfigError,
    TrainConfig,
    apply_overrides,
    describe_fields,
    load_yaml,
    make_config,
    parse_override_args,
)
from erdiff.presets import PAPER_TASKS, PRESETS


def test_layers_defaults_preset_file_overrides():
    config = make_config("antmaze-medium-play-v0", file_data={"agent": {"num_critics": 8}, "seed": 3},
                         overrides={"agent.lcb_coef": "2", "train.epochs": "7"})
    assert config.agent.eta == 2.0 and config.agent.max_q_backup and config.agent.loss_type == "NML"  # preset
    assert config.agent.num_critics == 8 and config.seed == 3  # file
    assert config.agent.lcb_coef == 2.0 and config.train.epochs == 7  # command line
    assert config.agent.ent_coef == 0.01 and config.agent.T == 5  # global defaults


def test_task_from_file_or_override_selects_its_preset():
    assert make_config(None, file_data={"task": "pen-human-v1"}).agent.actor_lr == 3e-5
    assert make_config("pen-human-v1", overrides={"task": "kitchen-mixed-v0"}).agent.eta == 0.005


def test_paper_presets_match_the_official_table():
    assert len(PAPER_TASKS) == 20 and set(PAPER_TASKS) <= set(PRESETS)
    hopper = make_config("hopper-medium-replay-v2")
    assert (hopper.agent.actor_lr, hopper.agent.eta, hopper.agent.grad_norm, hopper.agent.loss_type,
            hopper.train.epochs, hopper.train.eval_episodes) == (3e-4, 1.0, 4.0, "MLL", 2000, 10)
    umaze = make_config("antmaze-umaze-v0")
    assert not umaze.agent.max_q_backup and umaze.agent.action_clip and umaze.train.reward_tune == "cql_antmaze"
    assert make_config("antmaze-large-diverse-v0").agent.max_q_backup
    pen = make_config("pen-cloned-v1")
    assert (pen.agent.actor_lr, pen.agent.eta, pen.agent.grad_norm, pen.train.reward_tune,
            pen.train.eval_episodes) == (3e-5, 0.1, 8.0, "normalize", 100)
    kitchen = make_config("kitchen-complete-v0")
    assert (kitchen.agent.eta, kitchen.agent.grad_norm, kitchen.train.epochs) == (0.005, 10.0, 1000)
    for name in PAPER_TASKS:
        config = make_config(name)
        assert (config.agent.num_critics, config.agent.lcb_coef, config.agent.ent_coef, config.agent.T,
                config.train.batch_size, config.agent.critic_lr) == (64, 4.0, 0.01, 5, 256, 3e-4)


def test_override_parsing():
    assert parse_override_args(["--agent.T", "3", "--seed=2"]) == {"agent.T": "3", "seed": "2"}
    data = apply_overrides({}, {"agent.actor_lr": "1e-3", "agent.action_clip": "true", "train.dataset": "null"})
    assert data == {"agent": {"actor_lr": 1e-3, "action_clip": True}, "train": {"dataset": None}}
    with pytest.raises(ConfigError, match="has no value"):
        parse_override_args(["--agent.T"])
    with pytest.raises(ConfigError, match="unexpected argument 'stray'"):
        parse_override_args(["stray"])


@pytest.mark.parametrize("overrides, message", [
    ({"agent.num_critics": "many"}, "'agent.num_critics' = 'many' is invalid: expected an integer"),
    ({"agent.ent_coef": "-0.1"}, r"'agent.ent_coef' = -0.1 is invalid: expected a value in \[0.0, inf\]"),
    ({"agent.schedule": "sigmoid"}, "'agent.schedule' = 'sigmoid' is invalid: expected one of 'cosine'"),
    ({"agent.T": "2"}, "'agent.T' = 2 is invalid: expected an integer >= 3"),
    ({"agent.num_critics": "1"}, "at least 2 when agent.pessimism is 'lcb'"),
    ({"agent.action_clip": "3"}, "'agent.action_clip' = 3 is invalid: expected true or false"),
    ({"train.device": "tpu"}, "'train.device' = 'tpu' is invalid"),
    ({"train.gpu_memory_fraction": "1.5"}, "'train.gpu_memory_fraction' = 1.5"),
    ({"train.precision": "float16"}, "'train.precision' = 'float16' is invalid: expected one of 'float32'"),
    ({"train.compile": "max"}, "'train.compile' = 'max' is invalid: expected one of 'off', 'activation', 'update'"),
    ({"train.tf32": "fast"}, "'train.tf32' = 'fast' is invalid: expected true or false"),
    ({"agent.bogus": "1"}, "unknown config field\\(s\\) agent.bogus"),
    ({"model.T": "1"}, "unknown config section 'model'"),
])
def test_bad_values_name_the_field_and_what_is_allowed(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_config("toy", overrides=overrides)


@pytest.mark.parametrize("value, mode", [("false", "off"), ("true", "activation"), ("off", "off"),
                                         ("activation", "activation"), ("update", "update")])
def test_compile_accepts_its_modes_and_the_old_booleans(tmp_path, value, mode):
    # Old config.yaml files and checkpoints' configs say compile: false / true.
    assert make_config("toy", overrides={"train.compile": value}).train.compile == mode
    path = tmp_path / "config.yaml"
    path.write_text(f"task: toy\ntrain:\n  compile: {value}\n")
    assert Config.from_dict(load_yaml(path)).train.compile == mode
    assert TrainConfig(compile=mode).compile == mode


@pytest.mark.parametrize("device", ["cuda:abc", "cuda:-1", "cuda:01", "cuda0", "gpu", "CPU"])
def test_device_must_be_one_torch_accepts(device):
    with pytest.raises(ConfigError, match=f"'train.device' = '{device}' is invalid: expected auto, cpu, cuda, "
                                          "cuda:N with N = 0, 1, ... or mps"):
        make_config("toy", overrides={"train.device": device})


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_valid_devices_pass(device):
    assert make_config("toy", overrides={"train.device": device}).train.device == device


@pytest.mark.parametrize("text, message", [
    ("agent: [4]\n", "'agent' must be a mapping of field: value, got list [4]"),
    # a list of pairs must not be read as a mapping either
    ("agent: [[T, 3]]\n", "'agent' must be a mapping of field: value, got list"),
    ("train: fast\n", "'train' must be a mapping of field: value, got str 'fast'"),
    ("train: 2024-01-01\n", "'train' must be a mapping of field: value, got date"),
    ("tags: [a]\n", "'tags' must be a mapping of field: value, got list"),
    ("task: [toy]\n", "config field 'task' = ['toy'] is invalid: expected a task name"),
    ("- agent\n", "must hold a mapping at the top level, got list"),
    ("7\n", "must hold a mapping at the top level, got int"),
])
def test_config_file_of_the_wrong_shape_is_one_error_naming_file_and_section(tmp_path, capsys, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    # --agent.T makes the overrides touch the sections too; a tiny budget in case a bad file were accepted
    argv = ["train", "--config", str(path), "--task", "toy", "--out", str(tmp_path / "run"), "--agent.T", "3",
            "--train.epochs", "1", "--train.steps_per_epoch", "1", "--train.eval_episodes", "0", "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("erdiff train: error: ") and err.count("\n") == 1, err
    assert message in err, err
    if "config field 'task'" not in message:
        assert str(path) in err


def test_unknown_task_lists_known_tasks():
    with pytest.raises(ConfigError, match="unknown task 'hopper-medium-v9' .*; known tasks: .*hopper-medium-v2"):
        make_config("hopper-medium-v9")


@pytest.mark.parametrize("argv, config_text, suggestion", [
    (["--task", "hoper-medium-v2"], None, "unknown task 'hoper-medium-v2' (did you mean 'hopper-medium-v2'"),
    (["--task", "toy", "--agent.num_critic", "4"], None,
     "unknown config field(s) agent.num_critic (did you mean 'agent.num_critics'"),
    (["--task", "toy", "--agnet.T", "4"], None,
     "unknown config section 'agnet' in '--agnet.T' (did you mean 'agent'?)"),
    (["--task", "toy"], "train:\n  eval_evry: 5\n",
     "unknown config field(s) train.eval_evry (did you mean 'train.eval_every'"),
    (["--task", "toy"], "sed: 3\n", "unknown config field(s) sed (did you mean 'seed'?)"),
    # nothing close: no suggestion
    (["--task", "toy", "--agent.zzz", "1"], None, "unknown config field(s) agent.zzz; known fields here: T, "),
])
def test_a_mistyped_name_gets_its_closest_matches_before_the_full_list(tmp_path, capsys, argv, config_text,
                                                                       suggestion):
    if config_text is not None:
        (tmp_path / "run.yaml").write_text(config_text)
        argv = [*argv, "--config", str(tmp_path / "run.yaml")]
    assert main(["train", *argv, "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and suggestion in err, err


def test_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        load_yaml(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_yaml(listing)
    with pytest.raises(ConfigError, match="'agent' must be a mapping"):
        Config.from_dict({"task": "toy", "agent": 3})
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfeagent: {}")
    with pytest.raises(ConfigError, match="binary.yaml is not UTF-8 text"):
        load_yaml(binary)


def test_every_field_is_documented():
    text = describe_fields()
    for cls, prefix in ((AgentConfig, "agent."), (TrainConfig, "train.")):
        for name in cls.__dataclass_fields__:
            assert f"--{prefix}{name} " in text or f"--{prefix}{name}\n" in text, name
