"""The whole GPU table in one command: learner step rates, packed seeds, evaluation, fractional-GPU trials.

    python bench/gpu_suite.py --json out.json                       # one H100/H200: about 8 minutes
    python bench/gpu_suite.py --device cpu --quick --json out.json  # the same code path on a CPU, tiny sizes

Sections, each a run of the project's own scripts and sweep CLI as a subprocess (so that every measurement has
its own process, peak memory and hard time limit):

* ``learner``: bench/learner.py at M = 2 and 64 (obs 11, act 3, T = 5, batch 256) for each ``train.compile``:
  ``off`` (eager), ``activation`` (the critic's bias + Mish compiled) and ``update`` (the whole update compiled;
  on CUDA it runs as CUDA graphs, mode="reduce-overhead"), and eager M = 64 with TF32 matrix products
  (``train.tf32``): gradient steps/s and peak memory.
* ``packed``: bench/learner.py --seeds K for K = 1, 4, 16 at M = 64 (erdiff.packed): seed-steps/s.
* ``eval``: bench/eval.py on hopper-medium-v2 and pendulum-medium, 10 episodes in lockstep and one at a time:
  evaluation episodes/s.
* ``fractional``: the quickstart sweep (tune/configs/quickstart.yaml, its 4 trials) run by `python -m tune.sweep`
  on a local Ray with ``trainable: function`` and ``resources.gpu: 0.25``, so the 4 trials share one GPU at once:
  the sweep's wall time and seed-steps/s over all trials. On ``--device cpu`` the same sweep runs with ``gpu: 0``
  and a quarter of the CPUs per trial.

Every section has a time budget (scaled by ``--budget-s``, 460 s in all by default, 170 s with ``--quick``); a
measurement runs with what is left of its section's budget as its time limit, and one that overruns is recorded
as an error while the suite goes on. The JSON (``--json``) is rewritten after every measurement, so an
interrupted suite leaves what it measured. At the end the suite prints a Markdown table (also in the JSON as
``table``) with the device's name and the commit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from report import commit  # bench/report.py (this script's folder is on sys.path)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
QUICKSTART = REPO / "tune" / "configs" / "quickstart.yaml"
SECTIONS = ("learner", "packed", "eval", "fractional")
BUDGET_SHARES = {"learner": 0.6, "packed": 0.1, "eval": 0.08, "fractional": 0.22}
"""Each section's share of the suite's time budget (``--budget-s``)."""
COMPILE_MODES = ("off", "activation", "update")
MODE_LABELS = {"off": "eager", "activation": "compiled activation", "update": "compiled update"}
PACKED_SEEDS = (1, 4, 16)
FRACTIONAL_TRIALS = 4


def sizes(args: argparse.Namespace) -> dict:
    """The settings of every section: the GPU table's, or tiny ones with ``--quick``."""
    if args.quick:
        # The whole update compiles in 20-50 s on a quiet CPU, minutes on a loaded one: quick compiles it at M = 2.
        return {"learner": {"critics": (2, 64), "batch": 16, "steps": 3, "warmup": 1, "update_critics": (2,)},
                "packed": {"critics": 2, "batch": 16, "steps": 2, "warmup": 1},
                "eval": ["--episodes", "2", "--critics", "2", "--candidates", "4", "--T", "3", "--max-steps", "10"],
                "fractional": {"seeds": 1, "config": {
                    "agent": {"num_critics": 2, "hidden_dim": 16},
                    "train": {"epochs": 2, "steps_per_epoch": 5, "eval_every": 1, "eval_episodes": 2}}}}
    return {"learner": {"critics": (2, 64), "batch": 256, "steps": 100, "warmup": 10, "update_critics": (2, 64)},
            "packed": {"critics": 64, "batch": 256, "steps": 30, "warmup": 3},
            "eval": ["--episodes", "10", "--critics", "64", "--candidates", "50", "--T", "5", "--max-steps", "200"],
            "fractional": {"seeds": None, "config": {}}}


class Suite:
    """The results so far, written to ``--json`` after every measurement; the sections' clocks."""

    def __init__(self, args: argparse.Namespace, work_dir: Path):
        self.args = args
        self.work_dir = work_dir
        self.start = time.perf_counter()
        self.section_start = self.start
        self.section_budget = 0.0
        self.result = {"device": describe_device(args.device), "quick": args.quick, "budget_s": args.budget_s,
                       "sections": {}, "complete": False}

    def begin(self, name: str) -> dict:
        self.section_start = time.perf_counter()
        self.section_budget = BUDGET_SHARES[name] * self.args.budget_s
        section = {"budget_s": self.section_budget, "seconds": 0.0, "runs": {}}
        self.result["sections"][name] = section
        self.save()
        return section

    def time_left(self) -> float:
        return self.section_budget - (time.perf_counter() - self.section_start)

    def record(self, section: dict, key: str, outcome: dict) -> None:
        section["runs"][key] = outcome
        section["seconds"] = time.perf_counter() - self.section_start
        self.save()

    def save(self) -> None:
        self.result["seconds"] = time.perf_counter() - self.start
        self.result["table"] = markdown_table(self.result)
        if self.args.json:  # atomically: a suite killed mid-write leaves the previous version
            path = Path(self.args.json)
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_text(json.dumps(self.result, indent=2) + "\n")
            temporary.replace(path)

    def run_script(self, command: list[str], json_path: Path | None = None) -> dict:
        """Run a benchmark command with the section's remaining time as its limit: the JSON it wrote to
        ``json_path`` with its wall time ``wall_s``, or an error."""
        limit = self.time_left()
        if limit < 1:
            return {"error": "skipped: the section's time budget was spent"}
        started = time.perf_counter()
        # A session of its own, so that a time-out ends the command and every process it started (Ray's).
        process = subprocess.Popen(command, cwd=REPO, env=self.environment(), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            return {"error": f"timed out after {limit:.0f} s", "output_tail": output[-2000:]}
        seconds = time.perf_counter() - started
        if process.returncode != 0 or (json_path is not None and not json_path.exists()):
            return {"error": f"exit status {process.returncode}", "output_tail": output[-2000:], "wall_s": seconds}
        return {**(json.loads(json_path.read_text()) if json_path else {}), "wall_s": seconds}

    def environment(self) -> dict:
        environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
        environment.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        environment["RAY_TMPDIR"] = str(self.work_dir / "ray")  # a private Ray, apart from any other here
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        return environment


def describe_device(device: str) -> dict:
    """The device's name, the software and the commit, for the table's caption."""
    from erdiff.steptime import cpu_model

    info = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda, "commit": commit(),
            "machine": cpu_model(), "cpus": os.cpu_count(),
            "load_avg_before": list(os.getloadavg()), "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    if device.startswith("cuda"):
        properties = torch.cuda.get_device_properties(torch.device(device))
        info.update(name=properties.name, memory_gb=properties.total_memory / 2**30)
    else:
        info["name"] = info["machine"] or "cpu"
    return info


def learner_command(args: argparse.Namespace, json_path: Path, critics: int, compile_mode: str, seeds: int,
                    settings: dict, tf32: bool = False) -> list[str]:
    command = [sys.executable, str(BENCH / "learner.py"), "--obs-dim", "11", "--act-dim", "3", "--T", "5",
               "--critics", str(critics), "--batch", str(settings["batch"]), "--steps", str(settings["steps"]),
               "--warmup", str(settings["warmup"]), "--compile", compile_mode, "--seeds", str(seeds),
               "--device", args.device, "--json", str(json_path)]
    return command + (["--threads", str(args.threads)] if args.threads else []) + (["--tf32"] if tf32 else [])


def run_learner(suite: Suite, settings: dict) -> None:
    """Per M: eager, the whole update compiled, the activation compiled (the cheap ones first), then eager M = 64
    with TF32 products (a no-op on a CPU: there it only exercises the option)."""
    section = suite.begin("learner")
    runs = [(critics, mode, False) for critics in settings["critics"]
            for mode in sorted(suite.args.modes, key=("off", "update", "activation").index)
            if mode != "update" or critics in settings["update_critics"]]
    if "off" in suite.args.modes:
        runs.append((max(settings["critics"]), "off", True))
    for critics, compile_mode, tf32 in runs:
        key = f"M={critics} {compile_mode}{' tf32' if tf32 else ''}"
        json_path = suite.work_dir / f"learner-{critics}-{compile_mode}{'-tf32' if tf32 else ''}.json"
        command = learner_command(suite.args, json_path, critics, compile_mode, 1, settings, tf32)
        suite.record(section, key, suite.run_script(command, json_path))


def run_packed(suite: Suite, settings: dict) -> None:
    section = suite.begin("packed")
    for seeds in PACKED_SEEDS:
        json_path = suite.work_dir / f"packed-{seeds}.json"
        command = learner_command(suite.args, json_path, settings["critics"], "off", seeds, settings)
        suite.record(section, f"K={seeds}", suite.run_script(command, json_path))


def run_eval(suite: Suite, settings: list[str]) -> None:
    section = suite.begin("eval")
    json_path = suite.work_dir / "eval.json"
    command = [sys.executable, str(BENCH / "eval.py"), "--tasks", "hopper-medium-v2", "pendulum-medium", *settings,
               "--device", suite.args.device, "--json", str(json_path)]
    command += ["--threads", str(suite.args.threads)] if suite.args.threads else []
    suite.record(section, "eval", suite.run_script(command, json_path))


def fractional_spec(args: argparse.Namespace, settings: dict) -> dict:
    """The quickstart spec with its 4 trials at once: one process per trial holding a quarter of the GPU (or on a
    CPU, a quarter of the CPUs)."""
    spec = yaml.safe_load(QUICKSTART.read_text())
    from erdiff.config import merge
    from erdiff.steptime import available_cpus

    cpus = available_cpus()
    on_gpu = args.device.startswith("cuda")
    spec["name"] = "gpu-suite-fractional"
    spec["trainable"] = "function"
    spec["config"] = merge(merge(spec["config"], settings["config"]), {"train": {"device": args.device}})
    if settings["seeds"]:
        spec["seeds"] = settings["seeds"]
    # Ray hands out CPUs to the hundredth: 4 trials x (cpus/4 - 0.01) fit the machine's cpus.
    spec["resources"] = {"cpu": min(2.0, cpus / FRACTIONAL_TRIALS) if on_gpu else cpus / FRACTIONAL_TRIALS - 0.01,
                         "gpu": 1.0 / FRACTIONAL_TRIALS if on_gpu else 0}
    spec["concurrency"] = FRACTIONAL_TRIALS
    return spec


def run_fractional(suite: Suite, settings: dict) -> None:
    from erdiff.tasks import load_task_dataset

    section = suite.begin("fractional")
    spec = fractional_spec(suite.args, settings)
    for task in spec["tasks"]:  # generated once here, not by four trials at once on the clock
        load_task_dataset(task)
    spec_path = suite.work_dir / "fractional.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = suite.work_dir / "fractional"
    outcome = suite.run_script([sys.executable, "-m", "tune.sweep", str(spec_path), "--out", str(out)])
    if "error" in outcome:
        from tune.local_ray import end_dead_sessions

        end_dead_sessions()  # a sweep killed on time-out leaves Ray's agents alive: end them now
        suite.record(section, "sweep", outcome)
        return
    summaries = [json.loads(path.read_text()) for path in sorted(out.glob("trials/*/seed_*/summary.json"))]
    steps = sum(summary["step"] for summary in summaries)
    suite.record(section, "sweep", {
        "trials": len({path.parent.parent.name for path in out.glob("trials/*/seed_*/summary.json")}),
        "seed_runs": len(summaries), "completed": sum(summary["status"] == "completed" for summary in summaries),
        "resources": spec["resources"], "wall_s": outcome["wall_s"], "seed_steps": steps,
        "seed_steps_per_s": steps / outcome["wall_s"],
        "training_steps_per_s": [summary["step"] / summary["time_s"] for summary in summaries if summary["time_s"]],
    })


def markdown_table(result: dict) -> str:
    """The suite's results as one Markdown table, the device and commit in its caption."""
    device = result["device"]
    lines = [f"Device: {device['name']} ({device['device']}), torch {device['torch']}, commit {device['commit']}, "
             f"{device['date']}{', --quick sizes' if result['quick'] else ''}.", "",
             "| section | setting | result | peak memory MB |", "|---|---|---|--:|"]
    sections = result["sections"]
    graphs = " as CUDA graphs" if device["device"].startswith("cuda") else ""
    for key, run in sections.get("learner", {}).get("runs", {}).items():
        critics, mode, *tf32 = key.split()
        label = MODE_LABELS[mode] + (graphs if mode == "update" else "") + (", TF32 matmuls" if tf32 else "")
        lines.append(row("learner", f"{critics}, {label} (train.compile {mode})", run,
                         lambda r: f"{r['steps_per_s']:.1f} steps/s", "peak_memory_mb"))
    for key, run in sections.get("packed", {}).get("runs", {}).items():
        lines.append(row("packed", f"{key} seeds, M={run.get('critics', '?')}", run,
                         lambda r: f"{r['seed_steps_per_s']:.1f} seed-steps/s ({r['steps_per_s']:.1f} steps/s)",
                         "peak_memory_mb"))
    for run in sections.get("eval", {}).get("runs", {}).values():
        if "error" in run:
            lines.append(row("eval", "evaluation", run, None, None))
            continue
        for task, outcome in run["tasks"].items():
            lines.append(row("eval", f"{task}, {run['episodes']} episodes, M={run['critics']}", outcome,
                             lambda r: f"{r['vectorized']['episodes_per_s']:.2f} episodes/s in lockstep "
                                       f"({r['one_at_a_time']['episodes_per_s']:.2f} one at a time)", None))
    for run in sections.get("fractional", {}).get("runs", {}).values():
        setting = (f"quickstart, {run.get('trials', FRACTIONAL_TRIALS)} trials at once, "
                   f"gpu {run['resources']['gpu']:g} each" if "resources" in run else "quickstart trials")
        lines.append(row("fractional", setting, run,
                         lambda r: f"{r['seed_steps_per_s']:.1f} seed-steps/s over all trials, {r['wall_s']:.0f} s "
                                   f"({r['completed']}/{r['seed_runs']} runs completed)", None))
    return "\n".join(lines)


def row(section: str, setting: str, run: dict, result, memory_key: str | None) -> str:
    if "error" in run:
        return f"| {section} | {setting} | {run['error']} | |"
    memory = f"{run[memory_key]:.0f}" if memory_key else ""
    return f"| {section} | {setting} | {result(run)} | {memory} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda or cuda:N")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: the same code path in a few minutes")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="which sections to run (default all)")
    parser.add_argument("--modes", nargs="+", choices=COMPILE_MODES, default=list(COMPILE_MODES),
                        help="train.compile modes of the learner section (default all three)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="time budget of the whole suite in seconds, shared by the sections (default 460, "
                             "170 with --quick)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads of the learner and eval runs (default: theirs; --quick: 1)")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON (rewritten after each measurement)")
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device} but CUDA is not available on this machine")
    if args.budget_s is None:
        args.budget_s = 170.0 if args.quick else 460.0
    if args.threads is None and args.quick:
        args.threads = 1  # tiny sizes: a second thread only adds contention
    if os.environ.get("RAY_ADDRESS"):
        parser.error("RAY_ADDRESS is set: the fractional section would join that cluster; unset it")

    settings = sizes(args)
    # Short: Ray's socket paths under RAY_TMPDIR are length-limited.
    work_dir = Path(tempfile.mkdtemp(prefix="erg-", dir="/tmp"))
    suite = Suite(args, work_dir)
    runners = {"learner": run_learner, "packed": run_packed, "eval": run_eval, "fractional": run_fractional}
    try:
        for name in args.sections:
            runners[name](suite, settings[name])
        suite.result["complete"] = True
        suite.save()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    print(suite.result["table"])
    errors = [f"{name} {key}" for name, section in suite.result["sections"].items()
              for key, run in section["runs"].items() if "error" in run]
    if errors:
        print(f"\n{len(errors)} measurement(s) failed or ran out of time: {', '.join(errors)}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
