"""`erdiff evaluate` and `erdiff.load_policy` on real run directories trained here, and their videos."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import erdiff
from erdiff import results
from erdiff.cli import main
from erdiff.config import make_config
from erdiff.data.generate import make_dataset
from erdiff.errors import ErdiffError
from erdiff.tasks import make_evaluator
from erdiff.train import train

SMALL = {"agent.num_critics": "2", "agent.hidden_dim": "16", "agent.eval_candidates": "8", "train.batch_size": "32",
         "train.epochs": "2", "train.steps_per_epoch": "5", "train.eval_every": "1"}
EVALUATION_KEYS = {"return_mean", "return_std", "normalized_score_mean", "normalized_score_std", "episode_returns"}


def train_small_run(root, task, dataset_size, seed=0, **overrides):
    """A run directory of ``task`` trained for 10 steps on a generated dataset of ``dataset_size`` rows."""
    dataset = make_dataset(task, root / f"{task}.hdf5", seed=0, size=dataset_size)
    settings = {**SMALL, "train.dataset": str(dataset), "seed": str(seed), **overrides}
    run_dir = root / f"{task}-run"
    train(make_config(task, overrides=settings), run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    return train_small_run(tmp_path_factory.mktemp("toy"), "toy", 200, seed=3, **{"train.eval_episodes": "4"})


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    return train_small_run(tmp_path_factory.mktemp("pendulum"), "pendulum-medium", 400, seed=1,
                           **{"train.eval_episodes": "2"})


def evaluate(capsys, *argv):
    assert main(["evaluate", *map(str, argv)]) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_prints_one_json_object_that_reproduces_the_last_evaluation(toy_run, capsys):
    printed = evaluate(capsys, toy_run)
    last = results.read_metrics(toy_run)[-1]
    assert EVALUATION_KEYS | {"task", "seed", "step", "episodes"} <= set(printed)
    assert (printed["task"], printed["seed"], printed["step"], printed["episodes"]) == ("toy", 3, 10, 4)
    assert printed["episode_returns"] == last["episode_returns"]  # the run's seed and episode count: same numbers
    assert printed["return_mean"] == last["return_mean"]
    assert printed["normalized_score_mean"] == last["normalized_score_mean"]


def test_evaluate_with_a_seed_is_deterministic(toy_run, capsys):
    first = evaluate(capsys, toy_run, "--episodes", 6, "--seed", 11)
    again = evaluate(capsys, toy_run, "--episodes", 6, "--seed", 11)
    assert len(first["episode_returns"]) == first["episodes"] == 6 and first["seed"] == 11
    assert first == again


def test_load_policy_is_batched_and_reproduces_the_runs_evaluation(pendulum_run):
    policy = erdiff.load_policy(pendulum_run)
    observations = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    actions = policy(observations)
    assert actions.shape == (7, 1) and actions.dtype == np.float32
    assert np.all(np.abs(actions) <= 2.0)  # Pendulum's torque bound
    # Random initial states and 200 steps of the run's own evaluation, replayed from the checkpoint alone.
    last = results.read_metrics(pendulum_run)[-1]
    with make_evaluator("pendulum-medium", 2, seed=1) as evaluator:
        outcome = evaluator(erdiff.load_policy(pendulum_run))
    assert outcome["episode_returns"] == last["episode_returns"]
    assert outcome["return_mean"] == last["return_mean"]


def test_load_policy_seed_changes_the_action_draws(pendulum_run):
    observations = np.zeros((5, 3), dtype=np.float32)
    same = [erdiff.load_policy(pendulum_run, seed=4)(observations) for _ in range(2)]
    other = erdiff.load_policy(pendulum_run, seed=5)(observations)
    np.testing.assert_array_equal(same[0], same[1])
    assert not np.array_equal(same[0], other)


def test_toy_gif_has_a_frame_per_state(toy_run, tmp_path, capsys):
    import imageio.v3 as iio

    video = tmp_path / "toy.gif"
    printed = evaluate(capsys, toy_run, "--episodes", 2, "--video", video)
    frames = iio.imread(video)
    assert frames.shape == (3, 128, 256, 3)  # the start state and the two steps' states
    assert printed["video"]["file"] == str(video) and printed["video"]["frames"] == 3 and printed["video"]["steps"] == 2
    assert len({frame.tobytes() for frame in frames}) > 1  # the red bar moves with the state


def test_pendulum_gif_through_classic_controls_rgb_array(pendulum_run, tmp_path, capsys):
    import imageio.v3 as iio

    video = tmp_path / "pendulum.gif"
    printed = evaluate(capsys, pendulum_run, "--episodes", 1, "--video", video)
    frames = iio.imread(video)
    assert printed["video"]["frames"] == 201  # 200 steps and the start
    assert frames.shape[0] >= 190  # the GIF writer merges identical neighbours (the pendulum at rest at first)
    assert len({frame.tobytes() for frame in frames[::20]}) == len(frames[::20])  # the pendulum swings


def test_hopper_mp4_rendered_offscreen(tmp_path):
    import imageio.v3 as iio

    run_dir = train_small_run(tmp_path, "hopper-noisy", 300, **{"train.eval_episodes": "0", "train.epochs": "1",
                                                                "train.steps_per_epoch": "3"})
    video = tmp_path / "hopper.mp4"
    # A fresh process without a display or MUJOCO_GL: the command picks the offscreen GL library itself.
    environment = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "MUJOCO_GL")}
    done = subprocess.run([sys.executable, "-m", "erdiff.cli", "evaluate", str(run_dir), "--episodes", "1",
                           "--video", str(video)], env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["task"] == "hopper-noisy" and printed["step"] == 3 and len(printed["episode_returns"]) == 1
    frames = iio.imread(video)
    assert len(frames) == printed["video"]["frames"] == printed["video"]["steps"] + 1 >= 5  # 125 fps: every step
    assert frames.shape[1:] == (480, 480, 3)
    assert len({frame.tobytes() for frame in frames}) > len(frames) // 2  # the hopper moves: frames differ
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


def test_gif_of_a_fast_environment_keeps_real_time(tmp_path):
    import imageio.v3 as iio

    from erdiff.envs.video import write_video

    frames = [np.full((16, 16, 3), value, dtype=np.uint8) for value in range(0, 250, 10)]  # 25 frames
    written, fps = write_video(tmp_path / "fast.gif", frames, fps=125.0)  # Hopper-v4's rate
    assert (written, fps) == (9, pytest.approx(125.0 / 3))  # every third frame: a 20 ms delay, GIF's shortest
    assert len(iio.imread(tmp_path / "fast.gif")) == 9
    assert write_video(tmp_path / "fast.mp4", frames, fps=125.0) == (25, 125.0)


def one_line_error(capsys, *argv):
    assert main(["evaluate", *map(str, argv)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_a_directory_that_is_not_a_run_is_one_line(tmp_path, capsys):
    assert "is not a run directory: config.yaml is missing" in one_line_error(capsys, tmp_path)
    with pytest.raises(ErdiffError, match="is not a run directory"):
        erdiff.load_policy(tmp_path)


def test_missing_or_corrupt_checkpoint_is_one_line(toy_run, tmp_path, capsys):
    run_dir = tmp_path / "copy"
    shutil.copytree(toy_run, run_dir)
    (run_dir / results.CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    assert "is corrupt or not a torch checkpoint" in one_line_error(capsys, run_dir)
    (run_dir / results.CHECKPOINT_FILE).unlink()
    assert "holds no checkpoint.pt" in one_line_error(capsys, run_dir)


def test_checkpoint_of_another_configuration_is_one_line(toy_run, tmp_path, capsys):
    run_dir = tmp_path / "copy"
    shutil.copytree(toy_run, run_dir)
    config = (run_dir / results.CONFIG_FILE).read_text().replace("hidden_dim: 16", "hidden_dim: 32")
    (run_dir / results.CONFIG_FILE).write_text(config)
    assert "does not fit the agent that config.yaml describes" in one_line_error(capsys, run_dir)


@pytest.mark.parametrize("device, message", [
    ("gpu0", "device 'gpu0': expected auto, cpu, cuda, cuda:N"),
    pytest.param("cuda", "device 'cuda': CUDA is not available", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="this machine has CUDA")),
])
def test_bad_device_is_one_line(toy_run, device, message, capsys):
    assert message in one_line_error(capsys, toy_run, "--device", device)


def test_bad_video_name_and_missing_video_package_are_one_line(toy_run, tmp_path, capsys, monkeypatch):
    assert "expected a file name ending in .mp4 or .gif" in one_line_error(capsys, toy_run, "--video", "toy.avi")
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # what an environment without the package sees
    err = one_line_error(capsys, toy_run, "--video", tmp_path / "toy.mp4")
    assert "needs the Python package imageio-ffmpeg: pip install 'erdiff[video]'" in err
    assert not (tmp_path / "toy.mp4").exists()
