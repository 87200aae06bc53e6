"""`erdiff dataset make | info | check | list`, end to end through erdiff.cli.main."""

import h5py
import numpy as np
import pytest

from erdiff.cli import main
from erdiff.data.d4rl import read_d4rl_hdf5


def test_make_then_info_then_check(tmp_path, capsys):
    path = tmp_path / "hopper.hdf5"
    assert main(["dataset", "make", "hopper-noisy", "--out", str(path), "--seed", "4", "--size", "1200"]) == 0
    made = capsys.readouterr().out
    assert f"wrote {path} (hopper-noisy, seed 4)" in made
    raw = read_d4rl_hdf5(path)
    assert len(raw["rewards"]) == 1200 and raw["metadata/seed"] == 4

    assert main(["dataset", "info", str(path), "--task", "hopper-noisy"]) == 0
    info = capsys.readouterr().out
    assert "infos/qpos" in info and "(1200, 6)" in info
    episodes = int(raw["terminals"].sum() + raw["timeouts"].sum())
    assert f"episodes: {episodes} ({int(raw['terminals'].sum())} terminal" in info
    assert "normalized behaviour score (hopper-noisy references)" in info

    assert main(["dataset", "check", str(path), "--task", "hopper-noisy"]) == 0
    check = capsys.readouterr().out
    assert "checked rows: 1200" in check
    assert "terminal flag mismatches: 0" in check
    assert "rows with any error above 0.0001: 0" in check


def test_info_reports_an_unfinished_last_episode(tmp_path, capsys):
    path = tmp_path / "cut.hdf5"
    with h5py.File(path, "w") as handle:
        handle["observations"] = np.zeros((5, 2), np.float32)
        handle["actions"] = np.zeros((5, 1), np.float32)
        handle["rewards"] = np.array([1, 2, 3, 4, 5], np.float32)
        handle["terminals"] = np.array([0, 1, 0, 0, 0], bool)
        handle["timeouts"] = np.zeros(5, bool)
    assert main(["dataset", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "episodes: 2 (1 terminal, 0 timeout, 1 unfinished at the end)" in out
    assert "episode return: mean 7.500 +- 4.500 (min 3.000, max 12.000)" in out


def test_list_names_every_generator_and_d4rl_task(capsys):
    assert main(["dataset", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("toy", "pendulum-medium-replay", "mountaincar-sparse", "hopper-noisy", "hopper-medium-v2",
                 "antmaze-large-diverse-v0", "kitchen-mixed-v0"):
        assert name in out


def test_check_without_simulator_states_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "pendulum.hdf5"
    assert main(["dataset", "make", "pendulum-medium", "--out", str(path), "--size", "50"]) == 0
    capsys.readouterr()
    assert main(["dataset", "check", str(path), "--task", "pendulum-medium"]) == 2
    assert "dataset check replays MuJoCo states only in Hopper-v4" in capsys.readouterr().err
    hopper_shaped = tmp_path / "no-states.hdf5"
    with h5py.File(hopper_shaped, "w") as handle:
        handle["observations"] = np.zeros((3, 11), np.float32)
        handle["actions"] = np.zeros((3, 3), np.float32)
        handle["rewards"] = np.zeros(3, np.float32)
        handle["terminals"] = np.zeros(3, bool)
    assert main(["dataset", "check", str(hopper_shaped), "--task", "hopper-noisy"]) == 2
    assert "missing key(s) infos/qpos, infos/qvel" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["dataset", "info", "/nonexistent/file.hdf5"], "/nonexistent/file.hdf5: no such file"),
    (["dataset", "make", "toy", "--out", "{tmp}/t.hdf5", "--size", "0"], "dataset size 0 is too small"),
    (["dataset", "check", "{tmp}/t.hdf5", "--task", "nope"], "unknown task 'nope'; known tasks:"),
    (["dataset", "check", "{tmp}/t.hdf5", "--task", "hopper-noisy"], "key 'observations' has size 1 per step; "
                                                                      "expected 11"),
])
def test_bad_input_is_one_clear_error(argv, message, tmp_path, capsys):
    assert main(["dataset", "make", "toy", "--out", str(tmp_path / "t.hdf5"), "--size", "10"]) == 0
    capsys.readouterr()
    assert main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("obs_dim, act_dim, message", [
    (1, 1, "key 'observations' has size 1 per step; expected 3"),
    (3, 2, "key 'actions' has size 2 per step; expected 1"),
])
def test_info_for_a_task_of_other_sizes_is_an_error_not_a_score(tmp_path, capsys, obs_dim, act_dim, message):
    path = tmp_path / "other.hdf5"
    with h5py.File(path, "w") as handle:
        handle["observations"] = np.zeros((4, obs_dim), np.float32)
        handle["actions"] = np.zeros((4, act_dim), np.float32)
        handle["rewards"] = np.ones(4, np.float32)
        handle["terminals"] = np.array([0, 0, 0, 1], bool)
    assert main(["dataset", "info", str(path), "--task", "pendulum-medium"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"erdiff dataset: error: {path}: {message} for this task\n"
    assert "behaviour score" not in captured.out
    assert main(["dataset", "info", str(path), "--task", "nope"]) == 2
    assert "unknown task 'nope'; known tasks:" in capsys.readouterr().err


def test_unknown_kind_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["dataset", "make", "cartpole", "--out", "x.hdf5"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'cartpole'" in capsys.readouterr().err
