"""The paper's Figure 1 on the project's toy task (docs/method.md §16): a three-panel figure and a table.

Three variants of the learner are compared, each trained for several seeds:

1. Diffusion-QL-like: diffusion policy + Q, no entropy (α = 0), two critics read by their minimum;
2. + entropy regularization (α = 0.01), the same two critics;
3. + entropy + Q-ensemble LCB (the method): α = 0.01, M critics read by mean − β·std.

They differ in three coupled agent settings, which one sweep spec cannot express (its grid is the product of
independent fields). So the runs come from two specs: ``tune/configs/toy_figure1.yaml`` (M = 2 with min, a
grid over α ∈ {0, 0.01}: variants 1 and 2) and ``tune/configs/toy_figure1_ensemble.yaml`` (variant 3).
A run belongs to a variant by its config (:data:`VARIANTS`), wherever it lies under the results folder.

    python -m analysis.toy_figure --run [RESULTS_DIR]      # run both sweeps into RESULTS_DIR, then draw
    python -m analysis.toy_figure RESULTS_DIR [--out DIR]  # draw from finished runs only

The panels: (left) the reward r(s) with a histogram of the states the dataset's transitions arrive in;
(centre) the evaluation return against the epoch, mean ± std over seeds per variant; (right) the method's
learned Q(0, a) for first actions a ∈ [−1, 1], from each seed's final checkpoint: the ensemble mean and its
LCB (mean − β·std), averaged over seeds (one faint line per seed), next to the exact optimal Q*(0, a).
The table lists, per variant, the last and the last-k evaluation return and normalized score, mean ± std
over seeds (sample std), with the number of seeds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from analysis.collect import Run, collect  # noqa: E402
from analysis.stats import SEED_DDOF, mean_std  # noqa: E402
from erdiff.errors import ErdiffError  # noqa: E402
from erdiff.results import summarize  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SPECS = (REPO / "tune" / "configs" / "toy_figure1.yaml", REPO / "tune" / "configs" / "toy_figure1_ensemble.yaml")
"""The sweeps behind the figure: variants 1 and 2, then variant 3."""
DEFAULT_RESULTS = Path("results") / "toy_figure1"
FIGURE_NAME = "toy_figure1"
TABLE_FILE = "toy_table.md"
Q_GRID_POINTS = 201


class ToyFigureError(ErdiffError):
    """The results folder lacks runs of a variant, or a sweep behind the figure failed."""


@dataclass(frozen=True)
class Variant:
    """One curve of the figure: the agent settings that define it (``num_critics`` None: any ensemble size)."""

    name: str
    label: str
    ent_coef: float
    pessimism: str
    num_critics: int | None

    def matches(self, config: dict) -> bool:
        """Whether a flattened run config is a toy run of this variant."""
        return (config.get("task") == "toy" and config.get("agent.ent_coef") == self.ent_coef
                and config.get("agent.pessimism") == self.pessimism
                and (self.num_critics is None or config.get("agent.num_critics") == self.num_critics))


VARIANTS = (
    Variant("diffusion-ql", "Diffusion-QL-like (α = 0, M = 2, min)", 0.0, "min", 2),
    Variant("entropy", "+ entropy (α = 0.01, M = 2, min)", 0.01, "min", 2),
    Variant("erdiff", "+ entropy + Q-ensemble LCB (method)", 0.01, "lcb", None),
)
METHOD = VARIANTS[-1]
COLORS = {"diffusion-ql": "tab:blue", "entropy": "tab:orange", "erdiff": "tab:green"}


# ---------------------------------------------------------------------------------------------------------
# Runs


def variant_runs(results_dir: str | Path) -> tuple[dict[str, list[Run]], list[str]]:
    """The completed runs of each variant under ``results_dir``, one per seed, and notes on every run left out.

    A seed found twice in one variant keeps its first run directory by name; the note names the others (Ray's
    checkpoint copies of sweep runs are never seen: :func:`erdiff.results.find_run_dirs` skips them).
    """
    collection = collect(results_dir)
    groups: dict[str, list[Run]] = {variant.name: [] for variant in VARIANTS}
    notes = list(collection.notes)
    for run in collection.runs:
        variant = next((v for v in VARIANTS if v.matches(run.config)), None)
        if variant is None:
            notes.append(f"ignored {run.name}: not a toy run of a Figure 1 variant")
        elif not run.complete:
            notes.append(f"excluded {run.name}: {run.issue}")
        elif any(other.seed == run.seed for other in groups[variant.name]):
            notes.append(f"ignored {run.name}: seed {run.seed} of this variant is already used")
        else:
            groups[variant.name].append(run)
    missing = [variant.label for variant in VARIANTS if not groups[variant.name]]
    if missing:
        raise ToyFigureError(f"{results_dir}: no completed toy run of {'; '.join(missing)} "
                             "(run `python -m analysis.toy_figure --run` to make them)")
    return groups, notes


# ---------------------------------------------------------------------------------------------------------
# Table


def _cell(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def table_rows(groups: dict[str, list[Run]], last_k: int) -> list[dict]:
    """Per variant: its settings, the seed count and mean ± std cells of the last and last-k return and score."""
    rows = []
    for variant in VARIANTS:
        runs = groups[variant.name]
        row = {"variant": variant.label, "M": _shared(runs, "agent.num_critics"),
               "pessimism": variant.pessimism, "α": variant.ent_coef, "seeds": len(runs)}
        for key, title in (("return_mean", "return"), ("normalized_score_mean", "normalized score")):
            summaries = [summarize(run.records, last_k, key) for run in runs]
            row[f"{title}, last"] = _cell([s["last"] for s in summaries])
            row[f"{title}, last {last_k}"] = _cell([s["last_k_mean"] for s in summaries])
        rows.append(row)
    return rows


def _shared(runs: list[Run], key: str) -> str:
    """A config value the runs share, or all their values (a variant pooling several ensemble sizes)."""
    return "/".join(str(v) for v in sorted({run.config[key] for run in runs}))


def to_markdown(rows: list[dict]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------
# Figure


def dataset_rows(run: Run) -> dict:
    """The D4RL rows the run trained on: its ``train.dataset`` or the task's generated file."""
    from erdiff.data.d4rl import read_d4rl_hdf5
    from erdiff.tasks import local_dataset_path

    path = run.config.get("train.dataset") or local_dataset_path(run.task)
    return read_d4rl_hdf5(path)


def episode_returns(rows: dict) -> np.ndarray:
    """Returns of the dataset's complete episodes (ended by a terminal; a cut-off last episode is dropped)."""
    ends = np.flatnonzero(rows["terminals"])
    sums = np.cumsum(rows["rewards"], dtype=np.float64)[ends]
    return np.diff(sums, prepend=0.0)


def optimal_q(actions: np.ndarray, discount: float) -> np.ndarray:
    """Q*(0, a) = r(a) + γ max_a' r(a + a'): the first step's reward plus the best second step."""
    from erdiff.envs.toy import MAX_ACTION, reward

    second = np.linspace(-MAX_ACTION, MAX_ACTION, 2001)
    return reward(actions) + discount * reward(actions[:, None] + second[None, :]).max(axis=1)


def q_curves(run_dir: Path, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ensemble mean, LCB) of Q(0, a) over ``actions`` from the critic in the run's final checkpoint."""
    from erdiff.agent import ERDiffAgent
    from erdiff.checkpoint import load_checkpoint
    from erdiff.config import Config
    from erdiff.critic import lower_confidence_bound
    from erdiff.envs.toy import MAX_ACTION
    from erdiff.results import CHECKPOINT_FILE, read_config

    config = Config.from_dict(read_config(run_dir), source=str(run_dir / "config.yaml"))
    agent = ERDiffAgent(1, 1, MAX_ACTION, config.agent)
    agent.load_state_dict(load_checkpoint(run_dir / CHECKPOINT_FILE)["agent"]["networks"])
    a = torch.as_tensor(actions, dtype=torch.float32)[:, None]
    with torch.no_grad():
        q = agent.critic(torch.zeros_like(a), a)
    return q.mean(dim=1).numpy(), lower_confidence_bound(q, config.agent.lcb_coef).numpy()


def return_curves(runs: list[Run]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, mean, std) of the evaluation return over seeds, on the epochs every seed evaluated."""
    by_epoch = [{r["epoch"]: r["return_mean"] for r in run.records if r.get("return_mean") is not None}
                for run in runs]
    epochs = np.array(sorted(set.intersection(*(set(b) for b in by_epoch))))
    values = np.array([[b[e] for e in epochs] for b in by_epoch])
    return epochs, values.mean(axis=0), values.std(axis=0, ddof=SEED_DDOF)


def draw_figure(groups: dict[str, list[Run]], out_dir: Path) -> list[Path]:
    """The three panels, written as PNG and PDF into ``out_dir``; returns the paths."""
    from erdiff.envs.toy import reward
    from erdiff.tasks import get_task

    fig, (left, centre, right) = plt.subplots(1, 3, figsize=(15, 5), layout="constrained")
    method_runs = groups[METHOD.name]
    rows = dataset_rows(method_runs[0])

    states = np.linspace(-2, 2, 401)
    left.plot(states, reward(states), color="black", label="reward r(s)")
    left.set_xlabel("state s")
    left.set_ylabel("reward")
    counts = left.twinx()
    counts.hist(rows["next_observations"][:, 0], bins=80, range=(-2, 2), color="tab:gray", alpha=0.5,
                label="dataset states")
    counts.set_ylabel("transitions arriving in s")
    left.set_title("reward and offline data")
    handles = left.get_legend_handles_labels()[0] + counts.get_legend_handles_labels()[0]
    left.legend(handles=handles, loc="upper left", fontsize=8)

    for variant in VARIANTS:
        epochs, mean, std = return_curves(groups[variant.name])
        color = COLORS[variant.name]
        label = f"{variant.label}, n = {len(groups[variant.name])}"
        centre.plot(epochs, mean, color=color, label=label)
        centre.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2)
    task = get_task("toy")
    centre.axhline(task.ref_max, color="black", linestyle=":", label=f"optimal return {task.ref_max:.2f}")
    behaviour = episode_returns(rows).mean()
    centre.axhline(behaviour, color="tab:gray", linestyle="--", label=f"dataset mean return {behaviour:.2f}")
    centre.set_xlabel("epoch")
    centre.set_ylabel("return (mean ± std over seeds)")
    centre.set_title("training")
    centre.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize=8)

    actions = np.linspace(-1, 1, Q_GRID_POINTS)
    curves = [q_curves(run.path, actions) for run in method_runs]
    for mean, lcb in curves:
        right.plot(actions, mean, color="tab:green", alpha=0.25, linewidth=0.8)
        right.plot(actions, lcb, color="tab:purple", alpha=0.25, linewidth=0.8)
    beta = method_runs[0].config["agent.lcb_coef"]
    right.plot(actions, np.mean([c[0] for c in curves], axis=0), color="tab:green", label="ensemble mean Q")
    right.plot(actions, np.mean([c[1] for c in curves], axis=0), color="tab:purple",
               label=f"LCB = mean − {beta:g}·std")
    discount = method_runs[0].config["agent.discount"]
    right.plot(actions, optimal_q(actions, discount), color="black", linestyle=":", label="optimal Q*(0, a)")
    right.set_xlabel("first action a (state 0)")
    right.set_ylabel("Q(0, a)")
    right.set_title(f"method's Q-ensemble (M = {_shared(method_runs, 'agent.num_critics')}), final checkpoints")
    right.legend(loc="upper left", fontsize=8)

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{FIGURE_NAME}.png", out_dir / f"{FIGURE_NAME}.pdf"]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


# ---------------------------------------------------------------------------------------------------------
# Command line


def run_sweeps(results_dir: Path) -> None:
    """Run every spec of :data:`SPECS` with `erdiff sweep SPEC --out RESULTS_DIR/<spec name>`, one after another."""
    from tune.spec import load_spec

    for spec_path in SPECS:
        out = results_dir / load_spec(spec_path).name
        command = [sys.executable, "-m", "tune.sweep", str(spec_path), "--out", str(out)]
        print("running:", " ".join(command), flush=True)
        code = subprocess.run(command, cwd=REPO).returncode
        if code != 0:
            raise ToyFigureError(f"the sweep {spec_path.name} exited with status {code} (results in {out})")


def make_outputs(results_dir: Path, out_dir: Path, last_k: int) -> str:
    """Figure and table from the runs under ``results_dir``, written to ``out_dir``; returns the table text."""
    groups, notes = variant_runs(results_dir)
    table = to_markdown(table_rows(groups, last_k))
    if notes:
        table += "\nNotes:\n" + "".join(f"- {note}\n" for note in notes)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TABLE_FILE).write_text(table)
    paths = draw_figure(groups, out_dir)
    print(table)
    print("wrote", ", ".join(str(p) for p in [out_dir / TABLE_FILE, *paths]))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.toy_figure", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", type=Path,
                        help=f"results folder of the figure's runs (with --run: where they go; default "
                             f"{DEFAULT_RESULTS})")
    parser.add_argument("--run", action="store_true", help="run the sweeps first (about 17 minutes on 2 CPU cores)")
    parser.add_argument("--out", type=Path, help="folder for the figure and table (default: the results folder)")
    parser.add_argument("--last-k", type=int, default=5, help="evaluations averaged in the last-k columns")
    args = parser.parse_args(argv)
    if args.results is None and not args.run:
        parser.error("give a RESULTS folder, or --run to make the runs first")
    if args.last_k < 1:
        parser.error(f"--last-k must be at least 1, got {args.last_k}")
    results_dir = args.results or DEFAULT_RESULTS
    start = time.perf_counter()
    try:
        if args.run:
            run_sweeps(results_dir)
        make_outputs(results_dir, args.out or results_dir, args.last_k)
    except ErdiffError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
