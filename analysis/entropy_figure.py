"""The entropy estimate as a function of its two inputs (docs/entropy.md): Ĥ against â_0 for a few a_T.

    python -m analysis.entropy_figure --out docs/img/entropy_estimate.png

Prints the coefficients (c0, A, B, C) of Ĥ = c0 + A·â_0² + B·â_0·a_T + C·a_T² (per action dimension) for every
schedule at T ∈ {3, 5, 10}, then draws the plotted schedule: (left) Ĥ from ``DiffusionPolicy.entropy`` against â_0,
one curve per a_T; (right) how far a_T moves it, Ĥ(â_0, a_T) − Ĥ(â_0, 0).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import torch  # noqa: E402

from erdiff.policy import DiffusionPolicy, entropy_coefficients  # noqa: E402
from erdiff.sde import SCHEDULES, MeanRevertingSDE  # noqa: E402

STEPS = (3, 5, 10)
END_NOISE = (-2.0, -1.0, 0.0, 1.0, 2.0)


def print_coefficients() -> None:
    print(f"{'schedule':<9} {'T':>3} {'c0':>10} {'A':>10} {'B':>12} {'C':>12}")
    for schedule in SCHEDULES:
        for T in STEPS:
            c0, a, b, c = entropy_coefficients(MeanRevertingSDE(T, schedule))
            print(f"{schedule:<9} {T:>3} {c0:>10.6g} {a:>10.6g} {b:>12.6g} {c:>12.6g}")


def draw(out: Path, schedule: str, T: int) -> None:
    policy = DiffusionPolicy(1, 1, max_action=1.0, T=T, schedule=schedule).double()
    start = torch.linspace(-2.0, 2.0, 201, dtype=torch.float64)[:, None]
    at_zero = policy.entropy(start, torch.zeros_like(start))[:, 0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for end in END_NOISE:
        estimate = policy.entropy(start, torch.full_like(start, end))[:, 0]
        left.plot(start[:, 0], estimate, label=f"a_T = {end:g}")
        right.plot(start[:, 0], estimate - at_zero, label=f"a_T = {end:g}")
    left.set(xlabel="one-step prediction â_0", ylabel="Ĥ per action dimension",
             title=f"entropy estimate ({schedule}, T = {T}): curves overlap")
    right.set(xlabel="one-step prediction â_0", ylabel="Ĥ(â_0, a_T) − Ĥ(â_0, 0)", title="what a_T changes")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img/entropy_estimate.png"))
    parser.add_argument("--schedule", choices=SCHEDULES, default="cosine")
    parser.add_argument("--T", type=int, default=5)
    args = parser.parse_args(argv)
    print_coefficients()
    draw(args.out, args.schedule, args.T)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
