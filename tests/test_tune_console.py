"""The sweep console and `erdiff status`: one line per trial event on a real local sweep, none of Ray's own
output unless --verbose, and the status table of a results folder, finished or part-way."""

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_tune_sweep import (
    REPO,
    tiny_spec,
    write_spec,
)

from erdiff.cli import main
from erdiff.runlock import LOCK_FILE, hold_run_dirs
from erdiff.tasks import local_dataset_path
from tune.aggregate import aggregate, trial_record, write_trial_record
from tune.progress import SPEC_FILE
from tune.spec import parse_spec

RAY_NOISE = ("Trial status", "Current best trial", "Logical resource usage", "╭", "(raylet)", "core_worker",
             "PreemptionWatcher", "Traceback", "Started a local Ray instance", "Token authentication")
EVENT = re.compile(r"^\[\d+:\d\d:\d\d\] (started|evaluation|finished|stopped|retrying|diverged|failed|progress) +(.*)$")


def sweep_command(spec_path: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """`python -m tune.sweep` as a user runs it, with its console output captured."""
    return subprocess.run([sys.executable, "-m", "tune.sweep", str(spec_path), "--out", str(out), *extra], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def status_lines(out: Path, capsys) -> list[str]:
    capsys.readouterr()  # what was printed before
    assert main(["status", str(out)]) == 0
    return capsys.readouterr().out.splitlines()


def test_a_sweep_prints_a_line_per_trial_event_and_nothing_of_rays(ray_session, tmp_path, capsys):
    """Two trials, one after the other: one trains 3 evaluations, one fails on a broken dataset, is retried once
    and fails again. The console says so in a line per event with the trial's name, the failure with its error
    and its traceback file, prints the table of `erdiff status` at the end, and nothing of Ray's."""
    good = local_dataset_path("toy")  # in the test's own ERDIFF_DATA_DIR, which the sweep inherits
    broken = tmp_path / "broken.hdf5"
    broken.write_text("not an HDF5 file\n")
    data = tiny_spec("console", {"mode": "grid", "space": {"train.dataset": {"grid": [str(good), str(broken)]}}},
                     trainable="function", concurrency=1, failure={"trial_retries": 1, "worker_retries": 0})
    spec_path = write_spec(tmp_path / "console.yaml", data)
    out = tmp_path / "out"
    run = sweep_command(spec_path, out)
    console = run.stdout + run.stderr
    print(console)
    assert run.returncode == 1  # a trial failed (not diverged)
    assert not [noise for noise in RAY_NOISE if noise in console]
    good_trial, broken_trial = (plan.name for plan in parse_spec(data).trials())

    lines = run.stdout.splitlines()
    assert lines[0].startswith("Ray's own output: in /") and "--verbose" in lines[0]
    assert lines[1].startswith("console: 2 trials x 2 seeds (trainable function); objective normalized_score_mean: "
                               "mean ± std over seeds (ddof=1) of each seed's mean of its last 2 evaluations")
    events = [EVENT.match(line).groups() for line in lines[2:] if EVENT.match(line)]
    of_good = [(event, text.split()[1:]) for event, text in events if text.split()[0] == good_trial]
    assert [event for event, _ in of_good] == ["started", "evaluation", "evaluation", "evaluation", "finished"]
    assert [rest[0] for _, rest in of_good[1:]] == ["1/3", "2/3", "3/3", "3/3"]
    assert all(re.search(r"normalized_score_mean -?\d+\.\d ± \d+\.\d \(2\)$", text)
               for event, text in events if event == "evaluation")
    of_broken = [(event, text) for event, text in events if text.split()[0] == broken_trial]
    retrying = [text for event, text in of_broken if event == "retrying"]
    failed = [text for event, text in of_broken if event == "failed"]
    assert len(retrying) == 1 and "attempt 2 of 2 after: " in retrying[0] and len(failed) == 1
    error_file = Path(failed[0].rsplit("; traceback: ", 1)[1])
    assert error_file.is_file() and "broken.hdf5" in failed[0] and "broken.hdf5" in error_file.read_text()
    progress = [text for event, text in events if event == "progress"]
    assert progress[-1].startswith("2/2 trials done (1 completed, 1 error); 0 running; 0 left; 3/3 evaluations; "
                                   f"best {good_trial} ")
    assert len(lines) < 25, f"{len(lines)} lines"

    # The sweep ends with the table that `erdiff status` prints for its results folder.
    table = status_lines(out, capsys)
    assert table[0] == f"console: {progress[-1]}" and table[1].startswith("latest trial.json written ")
    assert lines[-(len(table) - 1):] == [table[0], *table[2:]]
    assert [row.split()[0] for row in table[3:]] == [good_trial, broken_trial]
    assert table[4].split()[1:] == ["-", "evaluation", "0/3", "error"]



@pytest.mark.slow
def test_verbose_brings_rays_output_back_and_a_resume_follows_its_own_flag(ray_session, tmp_path):
    """`--verbose` prints Ray's tables, boxes and INFO lines besides the console; a quiet `--resume` of that sweep
    prints none of them (Tune restores the run config the sweep started with: the resume sets its own)."""
    data = tiny_spec("loud", {"mode": "grid", "space": {"agent.T": {"grid": [3]}}}, trainable="function", seeds=1,
                     epochs=1)
    spec_path = write_spec(tmp_path / "loud.yaml", data)
    out = tmp_path / "out"
    verbose = sweep_command(spec_path, out, "--verbose")
    print(verbose.stdout + verbose.stderr)
    assert verbose.returncode == 0
    assert "Trial status" in verbose.stdout and "╭" in verbose.stdout  # Tune's tables and boxes
    assert "Started a local Ray instance" in verbose.stderr  # Ray's INFO lines
    assert re.search(r"^\[\d+:\d\d:\d\d\] finished ", verbose.stdout, re.MULTILINE)  # the console's lines too
    assert "Ray's own output" not in verbose.stdout

    quiet = sweep_command(spec_path, out, "--resume")
    print(quiet.stdout + quiet.stderr)
    assert quiet.returncode == 0 and not [noise for noise in RAY_NOISE if noise in quiet.stdout + quiet.stderr]
    assert quiet.stdout.splitlines()[-1].split()[-1] == "completed"


def write_trial(out: Path, spec, name: str, status: str, values: list[float], evaluation: int, wall_time_s: float):
    """trial.json as TrialRecorder writes it, from the seeds' reports of one evaluation and Tune's wall time."""
    plan = next(plan for plan in spec.trials() if plan.name == name)
    reports = [{"seed": seed, "value": value, "evaluation": evaluation, "planned_evaluations": 3,
                "step": 5 * evaluation, "epoch": evaluation} for seed, value in zip(spec.seeds, values)]
    result = {**aggregate(reports), "time_total_s": wall_time_s}
    write_trial_record(out / "trials" / name, trial_record(spec.name, name, plan.task, plan.params, spec.objective,
                                                           result, status))


def test_status_of_a_sweep_part_way(tmp_path, capsys):
    """One trial done, one running, one started (its folder, no evaluation yet), one not started: the totals, the
    ETA from the trials' wall time per evaluation, the best so far and the ranked rows."""
    spec = parse_spec(tiny_spec("partway", {"mode": "grid", "space": {"agent.T": {"grid": [3, 5]},
                                                                      "agent.ent_coef": {"grid": [0.0, 0.01]}}}))
    out = tmp_path / "results"
    (out / SPEC_FILE).parent.mkdir(parents=True)
    (out / SPEC_FILE).write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    done, running, started, pending = (plan.name for plan in spec.trials())
    write_trial(out, spec, done, "completed", [8.0, 12.0], 3, wall_time_s=30.0)
    write_trial(out, spec, running, "running", [20.0, 22.0], 1, wall_time_s=10.0)
    live = [out / "trials" / running / "seed_0", out / "trials" / started / "seed_0"]
    for run_dir in live:
        run_dir.mkdir(parents=True)

    with hold_run_dirs(live):  # as the sweep's workers do while they train
        table = status_lines(out, capsys)
    # 4 evaluations took (30 + 10) s; 2 + 3 + 3 are left, 2 trials at a time (concurrency): 8 x 10 s / 2 = 40 s.
    assert table[0] == (f"partway: 1/4 trials done (1 completed); 2 running; 1 left; 4/12 evaluations; ETA 0:00:40; "
                        f"best so far {running} 21.0 ± 1.4 (2)")
    rows = [row.split() for row in table[3:]]
    assert rows == [[running, "21.0", "±", "1.4", "(2)", "evaluation", "1/3", "running"],
                    [done, "10.0", "±", "2.8", "(2)", "evaluation", "3/3", "completed"],
                    [started, "-", "evaluation", "0/3", "started"],
                    [pending, "-", "evaluation", "0/3", "pending"]]


def test_status_names_running_trials_that_no_live_process_holds(tmp_path, capsys):
    """A trial marked running whose seeds' lock files name a dead process of this host, or no holder (released),
    is not running: the sweep was killed or stopped, and status says how to resume it. A live holder, or one on
    another host (which this host cannot see), leaves the trial as it is."""
    spec = parse_spec(tiny_spec("killed", {"mode": "grid", "space": {"agent.T": {"grid": [3, 5, 7, 9, 11]}}}))
    out = tmp_path / "results"
    (out / SPEC_FILE).parent.mkdir(parents=True)
    (out / SPEC_FILE).write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    dead, released, live, elsewhere, starting = (plan.name for plan in spec.trials())
    for name in (dead, released, live, elsewhere):
        write_trial(out, spec, name, "running", [20.0, 22.0], 1, wall_time_s=10.0)
        for seed in spec.seeds:
            (out / "trials" / name / f"seed_{seed}").mkdir(parents=True)
    (out / "trials" / starting).mkdir()  # a trial whose seed workers have not made their directories yet
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # a pid of this host that has ended
    for seed in spec.seeds:
        (out / "trials" / dead / f"seed_{seed}" / LOCK_FILE).write_text(json.dumps(
            {"pid": finished.pid, "host": platform.node(), "since": "x"}))
        (out / "trials" / released / f"seed_{seed}" / LOCK_FILE).write_text("")
        (out / "trials" / elsewhere / f"seed_{seed}" / LOCK_FILE).write_text(json.dumps(
            {"pid": os.getpid(), "host": "another-host", "since": "x"}))
    with hold_run_dirs([out / "trials" / live / f"seed_{seed}" for seed in spec.seeds]):
        table = status_lines(out, capsys)
    assert table[2] == (f"not running: no live process holds the run directories of 2 trial(s) marked running (the "
                        f"sweep was stopped or killed); `erdiff sweep {out / SPEC_FILE} --out {out} --resume` "
                        "continues it")
    statuses = {row.split()[0]: row.split(" evaluation ")[1].split(" ", 1)[1].strip() for row in table[4:]}
    assert statuses == {dead: "running (no process)", released: "running (no process)", live: "running",
                        elsewhere: "running", starting: "started"}


def test_status_into_a_closed_pipe_ends_quietly(tmp_path):
    """`erdiff status DIR | head -1`: the reader closes the pipe early; no error message, no traceback."""
    spec = parse_spec(tiny_spec("piped", {"mode": "grid", "space": {"agent.T": {"grid": [3, 5]}}}))
    (tmp_path / SPEC_FILE).write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    status = subprocess.Popen([sys.executable, "-m", "erdiff.cli", "status", str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    status.stdout.close()
    assert (status.wait(timeout=60), status.stderr.read().decode()) == (1, "")


def test_status_refuses_what_is_not_a_sweep_results_folder(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"erdiff status: error: {tmp_path}: not a sweep results folder: it has no {SPEC_FILE} (expected "
                   "the --out folder of `erdiff sweep`, e.g. results/quickstart)"]
    spec = parse_spec(tiny_spec("torn", {"mode": "grid", "space": {"agent.T": {"grid": [3]}}}))
    (tmp_path / SPEC_FILE).write_text(yaml.safe_dump(spec.to_dict()))
    record = tmp_path / "trials" / spec.trials()[0].name / "trial.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"trial": ')
    assert main(["status", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"erdiff status: error: {record}: not valid JSON")
