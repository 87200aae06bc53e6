"""Evaluate a trained run's policy on its task's environment, and optionally film one episode.

Loads RUN_DIR/checkpoint.pt (the networks of the run's latest evaluation) as RUN_DIR/config.yaml describes, runs
--episodes episodes with the official evaluation-time action selection (candidates from the actor, one picked by
softmax over the target critic's LCB) and prints one JSON object on stdout: task, seed, step (of the checkpoint),
episodes, return_mean, return_std, normalized_score_mean, normalized_score_std and episode_returns.

Seeding is the training loop's: episode i is reset with seed + 100 + i and actions are drawn from a generator
seeded with seed + 100, so the defaults (the run's seed and its train.eval_episodes) reproduce the last record of
RUN_DIR/metrics.jsonl.

--video FILE.mp4 | FILE.gif renders one more episode (reset like episode 0) offscreen and writes it: MuJoCo
tasks through EGL or OSMesa (MUJOCO_GL is set to the one found when it is unset and there is no display), the toy
task with its own small drawing, Pendulum and MountainCar through Gymnasium's pygame renderer. Writing needs the
video extra: pip install 'erdiff[video]'.

exit status: 0 evaluated, 2 bad input (one line says what).

examples:
  erdiff evaluate runs/toy-a --episodes 10 --video toy.gif
  erdiff evaluate runs/hopper --episodes 5 --seed 7 --video hopper.mp4 --device cuda
"""

from __future__ import annotations

import argparse
import json
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `erdiff train`")
    parser.add_argument("--episodes", type=_positive_int, metavar="N",
                        help="evaluation episodes (default: the run's train.eval_episodes, or 10 if that is 0)")
    parser.add_argument("--seed", type=_non_negative_int, metavar="S",
                        help="evaluation seed: resets with S + 100 + episode, action draws from S + 100 "
                             "(default: the run's seed, as during training)")
    parser.add_argument("--video", metavar="FILE", help="also render one episode into FILE.mp4 or FILE.gif")
    parser.add_argument("--device", default="cpu", help="torch device of the policy: cpu (default), cuda, cuda:N, "
                                                        "mps or auto")


def run(args: argparse.Namespace) -> int:
    from erdiff.errors import ErdiffError
    from erdiff.tasks import get_task, make_evaluator

    video_path = None
    if args.video:
        from erdiff.envs.video import check_video_path, choose_offscreen_gl

        video_path = check_video_path(args.video)  # before any work: a missing package fails at once
        choose_offscreen_gl()  # before MuJoCo's renderer is imported

    from erdiff.policy_io import evaluation_generator, load_agent

    trained = load_agent(args.run_dir, args.device)
    config, agent = trained.config, trained.agent
    task = get_task(config.task)
    seed = config.seed if args.seed is None else args.seed
    episodes = args.episodes or config.train.eval_episodes or 10
    evaluator = make_evaluator(task.name, episodes, seed)
    if evaluator is None:
        raise ErdiffError(f"task {task.name} has no evaluation environment; {args.run_dir} cannot be evaluated")
    with evaluator:
        outcome = evaluator(agent.policy(evaluation_generator(seed, trained.device)))
    line = {"task": task.name, "seed": seed, "step": trained.step, "episodes": episodes, **outcome}
    if video_path is not None:
        from erdiff.envs.video import record_episode, write_video

        # A fresh generator: the filmed episode does not depend on how many episodes were evaluated before it.
        episode = record_episode(task.env_id, agent.policy(evaluation_generator(seed, trained.device)), seed)
        frames, fps = write_video(video_path, episode.frames, episode.fps)
        height, width = episode.frames[0].shape[:2]
        print(f"video: {video_path} ({frames} frames of {width}x{height} at {fps:.3g} fps, episode of "
              f"{len(episode.frames) - 1} steps, return {episode.episode_return:.4g})", file=sys.stderr)
        line["video"] = {"file": str(video_path), "frames": frames, "steps": len(episode.frames) - 1,
                         "return": episode.episode_return}
    print(json.dumps(line))
    return 0


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a positive integer, got 0")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value
