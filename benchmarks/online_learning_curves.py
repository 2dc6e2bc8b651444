"""Learning curves of the three online algorithms against the always-WAIT and heuristic levels.

    python benchmarks/online_learning_curves.py [--steps 5000] [--n-envs 2] [--config impaired]
        [--fidelity tiny] [--algos ...] [--eval-episodes 5] [--runs DIR] [--out DIR]

Trains (or resumes, or just loads when finished) one ``train_online`` run per algorithm in
``RUNS/<algo>`` (default ``benchmarks/results/local/online_curves``, not committed: the
checkpoints are large), on ``--n-envs`` subprocess envs, seed 0. Then, on the same env settings:

* evaluates each final model greedily for ``--eval-episodes`` episodes (reset seeds 1000..):
  final accuracy, return, action mix, seeds created / fossilized / pruned, illegal actions;
* evaluates always-WAIT and the default heuristic (greedy) on the same seeds: the reference levels.

Writes OUT/online_learning_curves.png (final accuracy and return of each training episode
against env steps, a moving average over ``--window`` episodes, with the reference levels as
lines), and .json / .md with the evaluation table. Training episodes are sampled (stochastic
policy); the evaluation is greedy, so the two need not agree.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import ENV_ID, add_preset_arguments, add_results_argument, provenance

from esper_agents.common.agents import behavior_agent
from esper_agents.common.evaluation import evaluate_in_env, make_eval_env
from esper_agents.online.algorithms import ONLINE_ALGORITHMS
from esper_agents.online.envs import make_online_env
from esper_agents.online.evaluate import evaluate_online
from esper_agents.online.train import train_online
from esper_agents.policies import DEFAULT_HEURISTIC
from esper_env.settings import EnvSettings

EVAL_SEED = 1000
RUNS = Path(__file__).parent / "results" / "local" / "online_curves"


def wait_agent(obs: np.ndarray) -> np.ndarray:
    return np.zeros(len(np.atleast_2d(obs)), dtype=np.int64)


def reference_levels(env_kwargs: dict[str, Any], episodes: int) -> dict[str, dict[str, Any]]:
    """Always-WAIT and the default heuristic, greedy, on the evaluation seeds."""
    env = make_eval_env(EnvSettings(ENV_ID, **env_kwargs), "compact")
    try:
        agents = {
            "wait": wait_agent,
            f"heuristic:{DEFAULT_HEURISTIC}": behavior_agent(DEFAULT_HEURISTIC, env),
        }
        return {name: evaluate_in_env(agent, env, episodes, seed=EVAL_SEED) for name, agent in agents.items()}
    finally:
        env.close()


def read_curve(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        k: np.array([float(r[k]) for r in rows])
        for k in ("timesteps", "final_val_accuracy", "episode_return")
    }


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    window = max(1, min(window, len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot(curves: dict[str, dict[str, np.ndarray]], levels: dict[str, dict[str, Any]], window: int,
         title: str, path: Path) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    panels = (("final_val_accuracy", "final_val_accuracy", "final validation accuracy"),
              ("episode_return", "return", "episode return"))  # fmt: skip
    for ax, (column, level_key, label) in zip(axes, panels):
        for algo, curve in curves.items():
            smooth = moving_average(curve[column], window)
            ax.plot(curve["timesteps"][len(curve[column]) - len(smooth) :], smooth, label=algo)
        for (name, level), style in zip(levels.items(), ("--", ":")):
            ax.axhline(level[level_key]["mean"], color="k", linestyle=style, label=f"{name} (greedy)")
        ax.set_xlabel("env steps")
        ax.set_ylabel(f"{label} ({window}-episode moving average)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def row(name: str, s: dict[str, Any]) -> str:
    mix = ", ".join(f"{op} {share:.0%}" for op, share in s["action_mix"].items() if share > 0)
    acc = s["final_val_accuracy"]
    return (
        f"| {name} | {acc['mean']:.1%} ± {acc['half_width']:.1%} | {s['return']['mean']:.2f} | "
        f"{s.get('seeds_created', 0):.1f} | {s.get('seeds_fossilized', 0):.1f} | {s.get('seeds_pruned', 0):.1f} | "
        f"{s['illegal_actions']} | {mix} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_preset_arguments(parser, fidelity="tiny")
    parser.set_defaults(config="impaired")
    parser.add_argument(
        "--algos", nargs="+", default=list(ONLINE_ALGORITHMS), choices=list(ONLINE_ALGORITHMS)
    )
    parser.add_argument("--steps", type=int, default=5000, help="env steps per algorithm, all envs together")
    parser.add_argument("--n-envs", type=int, default=2)
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--window", type=int, default=20, help="moving-average window, in episodes")
    parser.add_argument("--runs", type=Path, default=RUNS, help="run directories (resumed)")
    add_results_argument(parser)
    args = parser.parse_args()
    env_kwargs = {"config": args.config, "fidelity": args.fidelity}
    results: dict[str, Any] = {"provenance": provenance(__file__, None, ENV_ID, torch.get_num_threads()),
                               "env_id": ENV_ID, "env_kwargs": env_kwargs, "steps": args.steps,
                               "n_envs": args.n_envs, "eval_seed": EVAL_SEED, "algorithms": {}}  # fmt: skip
    curves = {}
    for algo in args.algos:
        out = args.runs / algo
        settings = EnvSettings(ENV_ID, **env_kwargs)
        model = train_online(algo, args.steps, out, settings, n_envs=args.n_envs, seed=0,
                             checkpoint_every=args.checkpoint_every, progress=True)  # fmt: skip
        env = make_online_env(algo, settings)
        try:
            summary = evaluate_online(model, algo, env, args.eval_episodes, seed=EVAL_SEED)
        finally:
            env.close()
        curves[algo] = read_curve(out / "episodes.csv")
        summary["trained_steps"] = int(model.num_timesteps)
        summary["training_episodes"] = len(curves[algo]["timesteps"])
        summary["last_100_training_episodes"] = {
            k: float(np.mean(curves[algo][k][-100:])) for k in ("final_val_accuracy", "episode_return")
        }
        results["algorithms"][algo] = summary
        print(row(algo, summary), flush=True)
    levels = reference_levels(env_kwargs, args.eval_episodes)
    results["levels"] = levels
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / "online_learning_curves"
    title = (
        f"{ENV_ID} {args.config} / {args.fidelity}: {args.steps} env steps per algorithm, {args.n_envs} envs"
    )
    plot(curves, levels, args.window, title, stem.with_suffix(".png"))
    columns = "final val acc | return | seeds created | fossilized | pruned | illegal | action mix"
    header = [f"| agent (greedy, {args.eval_episodes} episodes) | {columns} |", "|---" * 8 + "|"]
    lines = (
        header
        + [row(a, s) for a, s in results["algorithms"].items()]
        + [row(n, s) for n, s in levels.items()]
    )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))
    print(f"wrote {stem}.png, .md and .json")


if __name__ == "__main__":
    main()
