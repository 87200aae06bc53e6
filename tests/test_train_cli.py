"""`erdiff train` end to end on a generated task, and its one-line errors."""

import json

import pytest

from erdiff import results
from erdiff.cli import main


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ERDIFF_DATA_DIR", str(tmp_path / "datasets"))


SMALL = ["--agent.num_critics", "2", "--agent.hidden_dim", "16", "--train.batch_size", "32",
         "--train.epochs", "2", "--train.steps_per_epoch", "5", "--train.eval_every", "1",
         "--train.eval_episodes", "3", "--quiet"]


def test_train_toy_then_resume_finishes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "toy", "--out", str(out), *SMALL]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["status"] == "completed" and printed["step"] == 10
    records = results.read_metrics(out)
    assert [r["step"] for r in records] == [5, 10]
    assert len(records[-1]["episode_returns"]) == 3
    assert printed["normalized_score_last"] == pytest.approx(records[-1]["normalized_score_mean"])
    # A finished run resumed with a longer budget is refused: the config changed.
    assert main(["train", "--task", "toy", "--out", str(out), "--resume", *SMALL, "--train.epochs", "3"]) == 2
    assert "train.epochs: 2 -> 3" in capsys.readouterr().err


def test_config_file_and_overrides(tmp_path, capsys):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("task: toy\nseed: 4\nagent: {ent_coef: 0.2}\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(config_file), "--out", str(out), *SMALL]) == 0
    saved = results.read_config(out)
    assert saved["seed"] == 4 and saved["agent"]["ent_coef"] == 0.2 and saved["agent"]["num_critics"] == 2


@pytest.mark.parametrize("argv, message", [
    (["--task", "nope"], "unknown task 'nope'"),
    (["--task", "toy", "--agent.num_critics", "x"], "'agent.num_critics' = 'x' is invalid"),
    (["--task", "toy", "--config", "missing.yaml"], "config file missing.yaml does not exist"),
    (["--task", "toy", "--train.dataset", "missing.hdf5"], "missing.hdf5"),
])
def test_bad_input_is_one_line_and_exit_code_2(argv, message, tmp_path, capsys):
    assert main(["train", *argv, "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_train_packed_seeds_writes_one_run_directory_per_seed(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", "--task", "toy", "--seeds", "3,5", "--out", str(out), *SMALL]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [(p["seed"], p["status"], p["step"]) for p in printed] == [(3, "completed", 10), (5, "completed", 10)]
    for seed in (3, 5):
        assert results.read_config(out / f"seed_{seed}")["seed"] == seed
        assert [r["step"] for r in results.read_metrics(out / f"seed_{seed}")] == [5, 10]
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--task", "toy", "--seeds", "1,1", "--out", str(out), *SMALL])
    assert exit_info.value.code == 2
    assert "seeds must be distinct, got '1,1'" in capsys.readouterr().err
    # `--seed` is the config override, never an abbreviation of `--seeds`.
    assert main(["train", "--task", "toy", "--seeds", "1,2", "--seed", "3", "--out", str(out), *SMALL]) == 2
    assert "give either --seed (one run) or --seeds (packed seeds), not both" in capsys.readouterr().err
    single = tmp_path / "single"
    assert main(["train", "--task", "toy", "--seed", "4", "--out", str(single), *SMALL]) == 0
    assert results.read_config(single)["seed"] == 4


def run_in_zero_size_terminal(argv: list[str], env: dict) -> str:
    """Run ``python -m erdiff.cli ARGV`` on a pseudo-terminal that reports 0 columns and 0 rows; its output."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import sys
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its stdin, stdout and stderr
        os.execve(sys.executable, [sys.executable, "-m", "erdiff.cli", *argv], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
    output = b""
    while select.select([fd], [], [], 300)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.waitpid(pid, 0)
    return output.decode(errors="replace")


def test_progress_bar_moves_within_an_epoch_even_on_a_zero_width_terminal(tmp_path):
    import os
    import re
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    output = run_in_zero_size_terminal(["train", "--task", "toy", "--out", str(tmp_path / "run"),
                                        "--agent.num_critics", "2", "--agent.hidden_dim", "256",
                                        "--train.batch_size", "256", "--train.epochs", "1",
                                        "--train.steps_per_epoch", "400", "--train.eval_episodes", "0"], env)
    counts = {int(done) for done in re.findall(r"(\d+)/400 \[", output)}
    assert 400 in counts, output[-500:]
    # One epoch of several seconds: the bar redraws (at most once a second) before the epoch ends.
    assert any(0 < done < 400 for done in counts), output[-500:]
