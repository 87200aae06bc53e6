"""Gradient steps per second of the ERDiff update, against the machine's matmul bound.

    python bench/learner.py --obs-dim 11 --act-dim 3 --critics 64 --T 5 --batch 256 --steps 50 --json out.json

With ``--seeds K`` the K seeds are packed into one batched update (erdiff.packed), as ``trainable: packed`` trains
them. The bound: the update's matrix-product FLOPs per step (counted analytically,
erdiff.steptime.update_flops) divided by the machine's batched-matmul rate (measured here on [M, 256, 256]
products). Element-wise work, the optimizer and Python overhead are what separates a run from the bound.
``--compile`` is train.compile (off, activation, update). Operators per step: what one update dispatches from the
host, the CPU-side stand-in for GPU kernel launches (:func:`count_operators`). Prints a table and writes JSON.

``--entropy-estimator knn|gaussian`` (agent.entropy_estimator, docs/entropy.md §4) times that update and the
official one side by side in the same process, alternating blocks of steps so that a changing load hits both
alike, and prints both rates and their ratio; the FLOP count then includes the estimate's K chains of T steps for
each of ``--entropy-states`` states (forward and backward).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import sys
import time

import torch
from report import commit, print_rows, write_json  # bench/report.py (this script's folder is on sys.path)

from erdiff.agent import ERDiffAgent
from erdiff.buffer import TransitionBuffer
from erdiff.config import COMPILE_MODES, ENTROPY_ESTIMATORS, AgentConfig
from erdiff.packed import PackedAgents
from erdiff.steptime import cpu_model, random_buffer, update_flops
from erdiff.train import training_step


def measure_matmul_gflops(critics: int, device: torch.device, dtype: torch.dtype, repeats: int = 10) -> float:
    """Median rate of [M, 256, 256] @ [M, 256, 256] batched products: the ceiling the critic's products run at."""
    members = max(critics, 8)
    a = torch.randn(members, 256, 256, device=device, dtype=dtype)
    b = torch.randn(members, 256, 256, device=device, dtype=dtype)
    times = []
    for i in range(repeats + 3):
        synchronize(device)
        start = time.perf_counter()
        torch.bmm(a, b)
        synchronize(device)
        if i >= 3:
            times.append(time.perf_counter() - start)
    times.sort()
    return 2 * members * 256**3 / times[len(times) // 2] / 1e9


VIEW_OPS = frozenset(f"aten::{name}" for name in (
    "alias", "as_strided", "detach", "detach_", "empty", "empty_like", "empty_strided", "expand", "flatten",
    "lift_fresh", "narrow", "permute", "reshape", "_reshape_alias", "resolve_conj", "resolve_neg", "select", "slice",
    "split", "squeeze", "t", "transpose", "unbind", "unsqueeze", "view", "view_as", "_unsafe_view"))
"""Aten operators that only make views or allocate: no kernel of their own."""


def count_operators(step) -> int:
    """Operators one call of ``step`` dispatches, from torch.profiler's CPU events: the outermost aten operators
    that compute (an operator's own sub-operators, e.g. linear's addmm, are not counted again; views and
    allocations not at all), plus the kernels torch.compile generated (named in the profile when
    ``torch._inductor.config.cpp.enable_kernel_profile`` was set before compiling). On CUDA with CUDA graphs a
    replayed graph's kernels are not host dispatches and are not counted."""

    def counts(event) -> bool:
        return (event.name.startswith("aten::") and event.name not in VIEW_OPS) or "cpp_fused" in event.name

    def inside_counted(event) -> bool:
        parent = event.cpu_parent
        while parent is not None:
            if counts(parent):
                return True
            parent = parent.cpu_parent
        return False

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        step()
    return sum(1 for event in profile.events() if counts(event) and not inside_counted(event))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def make_step(args: argparse.Namespace, config: AgentConfig, buffer: TransitionBuffer, device: torch.device):
    """One training step of the learner of ``config`` (``--seeds`` packed when more than one), as a closure."""
    agents = []
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        agents.append(ERDiffAgent(args.obs_dim, args.act_dim, 1.0, config, compile=args.compile).to(device))
        agents[-1].make_optimizers()
    generators = [torch.Generator(device=device).manual_seed(seed) for seed in range(args.seeds)]
    learner = PackedAgents(agents) if args.seeds > 1 else agents[0]
    del agents  # as in training: packed seeds live only in their stacked tensors

    def step() -> None:
        training_step(learner, buffer, generators, args.batch, args.dtype)

    return step


def timed(step, count: int, device: torch.device) -> float:
    """Seconds that ``count`` calls of ``step`` take, the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(count):
        step()
    synchronize(device)
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":  # as train.tf32 sets it
        torch.backends.cuda.matmul.fp32_precision = "tf32" if args.tf32 else "ieee"
    if args.compile != "off":
        from torch._inductor import config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True  # compiled kernels show in count_operators' profile
    buffer = random_buffer(args.obs_dim, args.act_dim, device, size=100_000)
    config = AgentConfig(num_critics=args.critics, T=args.T, max_q_backup=args.max_q_backup,
                         entropy_estimator=args.entropy_estimator, entropy_samples=args.entropy_samples,
                         entropy_states=args.entropy_states)
    step = make_step(args, config, buffer, device)
    # A sample-based estimate is timed against the official one: same update otherwise, alternating blocks.
    compared = args.entropy_estimator != "official"
    official_config = dataclasses.replace(config, entropy_estimator="official")
    official_step = make_step(args, official_config, buffer, device) if compared else None

    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    synchronize(device)
    warmup_s = time.perf_counter() - start
    if compared:
        for _ in range(args.warmup):
            official_step()
    elapsed, official_elapsed = 0.0, 0.0
    block = 5 if compared else args.steps
    for first in range(0, args.steps, block):
        count = min(block, args.steps - first)
        elapsed += timed(step, count, device)
        if compared:
            official_elapsed += timed(official_step, count, device)
    operators = count_operators(step)

    matmul_dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    peak = measure_matmul_gflops(args.critics, device, matmul_dtype)
    flops = args.seeds * update_flops(args.obs_dim, args.act_dim, config, args.batch)
    steps_per_s = args.steps / elapsed
    bound = peak * 1e9 / flops
    comparison = {}
    if compared:
        comparison = {"official_steps_per_s": args.steps / official_elapsed,
                      "ratio_vs_official": official_elapsed / elapsed,
                      "official_gflop_per_step": args.seeds * update_flops(
                          args.obs_dim, args.act_dim, official_config, args.batch) / 1e9}
    return {
        "steps_per_s": steps_per_s,
        "seed_steps_per_s": args.seeds * steps_per_s,
        "seeds": args.seeds,
        "gflop_per_step": flops / 1e9,
        "achieved_gflops": steps_per_s * flops / 1e9,
        "matmul_peak_gflops": peak,
        "bound_steps_per_s": bound,
        "fraction_of_bound": steps_per_s / bound,
        "peak_memory_mb": peak_memory_mb(device),
        "warmup_s": warmup_s,
        "operators_per_step": operators,
        "entropy_estimator": args.entropy_estimator,
        "entropy_samples": args.entropy_samples if compared else None,
        "entropy_states": args.entropy_states if compared else None,
        **comparison,
        "load_avg": os.getloadavg(),
        "obs_dim": args.obs_dim, "act_dim": args.act_dim, "critics": args.critics, "T": args.T,
        "batch": args.batch, "steps": args.steps, "max_q_backup": args.max_q_backup,
        "device": str(device), "dtype": args.dtype, "compile": args.compile, "tf32": args.tf32,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__, "machine": cpu_model(), "commit": commit(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--obs-dim", type=int, default=11)
    parser.add_argument("--act-dim", type=int, default=3)
    parser.add_argument("--critics", type=int, default=64, help="ensemble size M")
    parser.add_argument("--T", type=int, default=5, help="diffusion steps")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    parser.add_argument("--max-q-backup", action="store_true")
    parser.add_argument("--seeds", type=int, default=1,
                        help="K seeds packed into one batched update (erdiff.packed); steps/s counts packed updates, "
                             "seed-steps/s = K x steps/s, GFLOP per step covers all K (default 1: a plain agent)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="bfloat16: the step under autocast, as train.precision bfloat16 (default float32)")
    parser.add_argument("--compile", choices=COMPILE_MODES, default="activation",
                        help="train.compile: off (eager), activation (the critic's fused bias+Mish compiled; default) "
                             "or update (the whole update compiled)")
    parser.add_argument("--tf32", action="store_true",
                        help="on CUDA, float32 matrix products in TF32, as train.tf32 (no effect on a CPU)")
    parser.add_argument("--entropy-estimator", choices=ENTROPY_ESTIMATORS, default="official",
                        help="agent.entropy_estimator; knn or gaussian is timed side by side with official "
                             "(default official: no comparison)")
    parser.add_argument("--entropy-samples", type=int, default=AgentConfig.entropy_samples,
                        help="agent.entropy_samples K (default %(default)s)")
    parser.add_argument("--entropy-states", type=int, default=AgentConfig.entropy_states,
                        help="agent.entropy_states n (default %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON")
    args = parser.parse_args(argv)
    for name in ("critics", "T", "batch", "steps", "seeds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    result = run(args)
    rows = [("steps/s", f"{result['steps_per_s']:.2f}"),
            ("seed-steps/s", f"{result['seed_steps_per_s']:.2f} ({args.seeds} seed{'s' if args.seeds > 1 else ''})"),
            ("GFLOP per step (matmuls)", f"{result['gflop_per_step']:.2f}"),
            ("achieved GFLOP/s", f"{result['achieved_gflops']:.1f}"),
            ("batched-matmul peak GFLOP/s", f"{result['matmul_peak_gflops']:.1f}"),
            ("bound steps/s", f"{result['bound_steps_per_s']:.2f}"),
            ("fraction of bound", f"{100 * result['fraction_of_bound']:.0f}%"),
            ("peak memory MB", f"{result['peak_memory_mb']:.0f}"),
            ("operators per step", f"{result['operators_per_step']}"),
            ("config", f"M={args.critics} T={args.T} batch={args.batch} {result['device']} {args.dtype} "
                       f"compile={args.compile} threads={result['threads']}")]
    if "ratio_vs_official" in result:
        rows[1:1] = [("official steps/s (side by side)", f"{result['official_steps_per_s']:.2f}"),
                     (f"steps/s ratio {args.entropy_estimator} / official", f"{result['ratio_vs_official']:.2f} "
                      f"(K={args.entropy_samples} samples x {min(args.entropy_states, args.batch)} states)")]
    print_rows(rows)
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
