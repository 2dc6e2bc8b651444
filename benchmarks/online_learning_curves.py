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

With ``--env Esper-Micro-v3`` (the fast tier) it draws held-out learning curves instead::

    python benchmarks/online_learning_curves.py --env Esper-Micro-v3 [--steps 20000] [--n-envs 2]
        [--train-seeds 3] [--eval-every 2000] [--eval-instances 50] [--n-steps N] [--runs DIR] [--out DIR]

Each algorithm trains ``--train-seeds`` runs on the micro suite's training env (the
``bottlenecks`` instances of ``TRAIN_SPLIT``), run ``i`` with seed ``i * n_envs`` (so no two runs
share an env's first reset seed), each its own resumable ``train_online`` directory
``RUNS/<algo>/seed<seed>`` (default ``benchmarks/results/local/online_curves_micro``) with a
checkpoint at the first rollout boundary at or past every multiple of ``--eval-every`` env steps.
Every checkpoint (and the final model) is evaluated greedily on the micro suite's first
``--eval-instances`` held-out instances (``HELDOUT_SPLIT``), one episode each with its instance
pinned, as ``esper bench --suite micro`` evaluates (the :class:`~esper_agents.bench.suites.Suite`'s
seeds and instances, the online family's env); the scores are cached in ``heldout.jsonl`` in the
run directory, so a rerun resumes. Writes OUT/online_learning_curves_micro.png (benchmark score
x100 against env steps: per algorithm the mean over training seeds with a min-max band, and the
registry's WAIT, best heuristic, single best schedule and virtual best as horizontal lines, with
the other heuristics' held-out means from ``benchmarks/results/micro_headroom.json`` where it
exists), .json and .md. The lines were measured on held-out instances 1,000,000-1,000,049 (reset
seeds 0 and 1 each); the curves meet the same instances at the default ``--eval-instances 50``
(one episode each, reset seeds 1000..), and fewer instances give a noisier curve that the lines
do not describe.

``--suite micro-optimizers`` draws them on that suite instead: its ``optimizers`` training
instances and held-out instances, the registry's ``.../optimizers`` entry and
``benchmarks/results/micro_optimizers/micro_headroom.json`` for the lines, runs in
``benchmarks/results/local/online_curves_micro_optimizers`` and
OUT/online_learning_curves_micro_optimizers.{png,md,json}.

``--bench DIR`` reads the training runs of an ``esper bench --suite micro`` directory instead of
training its own (``DIR/online/<algo>`` and ``<algo>-seed<i>``: the same settings, seeds and
checkpoint period: ``--steps`` = the suite's online steps, ``--eval-every`` = ``Suite.checkpoint_every``),
so the bench's runs give the curves without training anything again::

    python benchmarks/online_learning_curves.py --env Esper-Micro-v3 --bench runs/bench-micro \
        --steps 10000 --train-seeds 3 --eval-every 2000 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import ENV_ID, MICRO_ID, add_preset_arguments, add_results_argument, provenance, require_positive

from esper_agents.bench.families import FAMILY_IMPLEMENTATIONS
from esper_agents.bench.suites import Suite, get_suite, run_name
from esper_agents.common.agents import behavior_agent
from esper_agents.common.evaluation import evaluate_in_env, make_eval_env
from esper_agents.common.io import append_jsonl, read_jsonl
from esper_agents.common.rollout import run_episode
from esper_agents.online.algorithms import ONLINE_ALGORITHMS, PPO_DEFAULTS
from esper_agents.online.checkpoints import list_checkpoints
from esper_agents.online.envs import make_online_env
from esper_agents.online.evaluate import OnlineModelAgent, evaluate_online
from esper_agents.online.saved import load_online_model
from esper_agents.online.train import train_online
from esper_agents.policies import DEFAULT_HEURISTIC
from esper_env.references import ReferenceScores
from esper_env.settings import EnvSettings

EVAL_SEED = 1000
RUNS = Path(__file__).parent / "results" / "local" / "online_curves"
MICRO_RUNS = Path(__file__).parent / "results" / "local" / "online_curves_micro"
#: The fast tier's headroom study: the held-out mean of every scripted schedule and heuristic.
HEADROOM = Path(__file__).parent / "results" / "micro_headroom.json"
#: The suites ``--suite`` takes (an online suite of the fast tier each), and their headroom studies.
HEADROOMS: dict[str, Path] = {
    "micro": HEADROOM,
    "micro-optimizers": Path(__file__).parent / "results" / "micro_optimizers" / "micro_headroom.json",
}


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


# ------------------------------------------------------------------------- the fast tier: held-out curves


def micro_suite(steps: int, n_envs: int, eval_instances: int, name: str = "micro") -> Suite:
    """The suite ``name`` with this run's budget and its first ``eval_instances`` held-out instances."""
    return dataclasses.replace(
        get_suite(name), online_steps=steps, n_envs=n_envs, eval_episodes=eval_instances
    )


def evaluation_points(run: Path) -> list[tuple[Path, int]]:
    """The run's checkpoints and final model, ``(zip, env steps)``, oldest first, one per step count."""
    points = {steps: path for path, steps in list_checkpoints(run)}
    final = run / "model.zip"
    if final.exists():
        from esper_agents.online.saved import read_model_data

        points.setdefault(int(read_model_data(final)["num_timesteps"]), final)
    return [(points[k], k) for k in sorted(points)]


def evaluate_heldout(suite: Suite, algo: str, model_zip: Path) -> list[dict[str, Any]]:
    """One greedy episode of the model at ``model_zip`` on each of the suite's held-out instances
    (reset seed ``eval_seed + i``, instance pinned): the bench's evaluation of an online agent."""
    env = FAMILY_IMPLEMENTATIONS["online"].make_env(suite, algo, model_zip.parent, "cpu")
    try:
        model = load_online_model(model_zip, env, device="cpu")[1]
        rows = []
        for seed in suite.eval_seeds:
            instance = suite.eval_instance(seed)
            episode = run_episode(
                env, OnlineModelAgent(model, algo, env), seed=seed, options={"instance": instance}
            )
            if episode.instance != instance:
                raise RuntimeError(
                    f"held-out episode of seed {seed} ran on instance {episode.instance}, not {instance}"
                )
            rows.append({"seed": seed, "instance": instance, "score": float(episode.info["score"])})
        return rows
    finally:
        env.close()


def heldout_curve(suite: Suite, algo: str, run: Path) -> list[dict[str, Any]]:
    """The run's held-out score (x100, mean over instances) at every evaluation point, cached in
    ``run/heldout.jsonl`` (one line per point: steps, checkpoint, per-instance scores)."""
    cache = run / "heldout.jsonl"
    done = {(r["steps"], tuple(r["instances"])): r for r in (read_jsonl(cache) if cache.exists() else [])}
    curve = []
    for path, steps in evaluation_points(run):
        key = (steps, tuple(suite.eval_instances or ()))
        if key not in done:
            rows = evaluate_heldout(suite, algo, path)
            done[key] = {"steps": steps, "model": path.name, "instances": list(key[1]),
                         "scores": [r["score"] for r in rows]}  # fmt: skip
            append_jsonl(cache, done[key])
        record = done[key]
        curve.append(
            {"steps": steps, "score": 100 * float(np.mean(record["scores"])), "scores": record["scores"]}
        )
        print(f"{algo} {run.name} {steps:>7} steps: held-out score {curve[-1]['score']:.2f}", flush=True)
    return curve


#: The TensorBoard scalars the diagnostics report (first and last logged value of each run).
DIAGNOSTIC_TAGS = ("train/explained_variance", "train/entropy_loss", "train/approx_kl")


def tensorboard_scalars(tb: Path) -> dict[str, list[float]]:
    """Every scalar of a run's TensorBoard logs, by tag, in step order (``{}`` without tensorboard)."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return {}
    values: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(tb.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path))
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            values.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return {tag: [v for _, v in sorted(pairs)] for tag, pairs in values.items()}


def diagnostics(run: Path, steps: list[int]) -> dict[str, Any]:
    """What the run did while it trained: per interval between evaluation points, the training
    episodes' (sampled) mean score and seeds created, fossilized and pruned per episode (the action
    mix); and the first and last value of the PPO statistics (explained variance, entropy, the
    masked recurrent PPO's entropy per head)."""
    rows = list(csv.DictReader((run / "episodes.csv").open())) if (run / "episodes.csv").exists() else []
    intervals, start = [], 0
    for end in steps:
        part = [r for r in rows if start < int(r["timesteps"]) <= end]
        if part:
            intervals.append({"from": start, "to": end, "episodes": len(part), **{
                k: float(np.mean([float(r[k]) for r in part]))
                for k in ("score", "seeds_created", "seeds_fossilized", "seeds_pruned")}})  # fmt: skip
        start = end
    scalars = tensorboard_scalars(run / "tb")
    wanted = [t for t in scalars if t in DIAGNOSTIC_TAGS or t.startswith("train/entropy_")]
    return {"intervals": intervals, "ppo": {t: [scalars[t][0], scalars[t][-1]] for t in wanted if scalars[t]}}


def diagnostics_table(algos: dict[str, dict[str, Any]]) -> list[str]:
    """The diagnostics of every run as markdown lines."""
    lines = ["", ("| algorithm | run | env steps | training episodes | score (sampled) | created | fossilized "
             "| pruned |"), "|---|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    ppo_lines = ["", "| algorithm | run | statistic | first | last |", "|---|---|---|---:|---:|"]
    for algo, record in algos.items():
        for run, diag in record.get("diagnostics", {}).items():
            for i in diag["intervals"]:
                lines.append(
                    f"| {algo} | {run} | {i['from']}-{i['to']} | {i['episodes']} | {100 * i['score']:.1f} "
                    f"| {i['seeds_created']:.2f} | {i['seeds_fossilized']:.2f} | {i['seeds_pruned']:.2f} |"
                )
            for tag, (first, last) in diag["ppo"].items():
                ppo_lines.append(f"| {algo} | {run} | {tag} | {first:.3f} | {last:.3f} |")
    return lines + ppo_lines


def aggregate(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Mean, std, min and max over training seeds at each step count every run reached."""
    common = sorted(set.intersection(*({p["steps"] for p in run} for run in runs)))
    points = []
    for steps in common:
        values = np.array([next(p["score"] for p in run if p["steps"] == steps) for run in runs])
        points.append({"steps": steps, "mean": float(values.mean()), "std": float(values.std()),
                       "min": float(values.min()), "max": float(values.max()), "per_seed": values.tolist()})  # fmt: skip
    return points


def reference_lines(entry: ReferenceScores, headroom: Path = HEADROOM) -> dict[str, float]:
    """The registry's four levels (x100), and the other heuristics' held-out means from the headroom study."""
    lines = {
        "WAIT": 100 * entry.wait,
        f"best heuristic ({entry.heuristic_policy})": 100 * entry.heuristic,
        f"single best ({entry.best_scripted_schedule})": 100 * entry.best_scripted,
    }
    if entry.virtual_best is not None:
        lines["virtual best"] = 100 * entry.virtual_best
    if headroom.exists():
        means = json.loads(headroom.read_text()).get("held_out_means", {})
        for name, mean in means.items():
            if name.startswith("heuristic:") and name.removeprefix("heuristic:") != entry.heuristic_policy:
                lines[name] = float(mean)
    return lines


def plot_micro(
    curves: dict[str, list[dict[str, Any]]], lines: dict[str, float], title: str, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for algo, curve in curves.items():
        x = [p["steps"] for p in curve]
        (line,) = ax.plot(x, [p["mean"] for p in curve], marker="o", markersize=3, label=f"{algo} (mean)")
        ax.fill_between(
            x, [p["min"] for p in curve], [p["max"] for p in curve], color=line.get_color(), alpha=0.2
        )
    main = ("k", "--"), ("tab:green", "-."), ("tab:purple", ":"), ("tab:red", "--")
    for i, (name, value) in enumerate(lines.items()):
        color, style = main[i] if i < len(main) else ("0.6", ":")
        ax.axhline(value, color=color, linestyle=style, linewidth=1.0 if i < len(main) else 0.8, label=name)
    ax.set_xlabel("env steps (all envs together)")
    ax.set_ylabel("benchmark score x100, held-out instances (greedy)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def check_bench(args: argparse.Namespace, suite: Suite) -> None:
    """``SystemExit`` unless ``args.bench`` is a micro bench whose runs are this command's."""
    path = args.bench / "bench.json"
    if not path.exists():
        raise SystemExit(f"--bench {args.bench}: not an esper bench directory (no bench.json)")
    bench = json.loads(path.read_text())
    ours = {"name": suite.name, "online_steps": args.steps, "n_envs": args.n_envs,
            "settings": suite.settings.to_dict(), "every": suite.checkpoint_every}  # fmt: skip
    theirs = {**{k: bench.get(k) for k in ours}, "every": args.eval_every}
    if ours != theirs or bench.get("train_seeds", 1) < args.train_seeds or args.n_steps is not None:
        raise SystemExit(
            f"--bench {args.bench} holds suite {bench.get('name')!r} with {bench.get('online_steps')} online steps "
            f"on {bench.get('n_envs')} env(s) and {bench.get('train_seeds', 1)} training run(s): give --steps, "
            f"--n-envs, --train-seeds up to its runs, --eval-every {suite.checkpoint_every} (its checkpoint period), "
            "no --n-steps"
        )


def micro_main(args: argparse.Namespace) -> None:
    suite = micro_suite(args.steps, args.n_envs, args.eval_instances, args.suite)
    settings = suite.settings
    hyperparameters = None
    if args.n_steps is not None:
        batch = min(PPO_DEFAULTS["batch_size"], args.n_steps * args.n_envs)
        hyperparameters = {"n_steps": args.n_steps, "batch_size": batch}
    entry = settings.reference_scores()
    lines = reference_lines(entry, HEADROOMS[args.suite])
    slug = args.suite.replace("-", "_")
    runs_dir = args.runs if args.runs is not None else MICRO_RUNS.parent / f"online_curves_{slug}"
    if args.bench is not None:
        check_bench(args, suite)
    results: dict[str, Any] = {
        "provenance": provenance(__file__, None, MICRO_ID, torch.get_num_threads()), "env_id": MICRO_ID,
        "settings": settings.to_dict(), "steps": args.steps, "n_envs": args.n_envs,
        "train_seeds": [i * args.n_envs for i in range(args.train_seeds)], "eval_every": args.eval_every,
        "hyperparameters": {**PPO_DEFAULTS, **(hyperparameters or {})},
        "eval_seeds": suite.eval_seeds, "eval_instances": suite.eval_instances,
        "eval_split": suite.split_description(), "reference_key": entry.key,
        "reference_lines": lines, "algorithms": {},
    }  # fmt: skip
    curves = {}
    for algo in args.algos:
        runs, run_dirs = [], []
        for i, seed in enumerate(results["train_seeds"]):
            run = (
                runs_dir / algo / f"seed{seed}"
                if args.bench is None
                else args.bench / "online" / run_name(algo, i)
            )
            train_online(algo, args.steps, run, settings, n_envs=args.n_envs, seed=seed,
                         checkpoint_every=args.eval_every, progress=args.progress, tensorboard=args.progress,
                         hyperparameters=hyperparameters)  # fmt: skip
            runs.append(heldout_curve(suite, algo, run))
            run_dirs.append(run)
        curves[algo] = aggregate(runs)
        results["algorithms"][algo] = {"curve": curves[algo], "runs": {
            f"seed{seed}": run for seed, run in zip(results["train_seeds"], runs)}, "diagnostics": {
            f"seed{seed}": diagnostics(d, [p["steps"] for p in run])
            for seed, d, run in zip(results["train_seeds"], run_dirs, runs)}}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"online_learning_curves_{slug}"
    title = (
        f"{MICRO_ID} ({settings.instances}): {args.steps} env steps per run, {args.n_envs} envs, {args.train_seeds} training seed(s) "
        f"(mean, min-max band); {args.eval_instances} held-out instances"
    )
    plot_micro(curves, lines, title, stem.with_suffix(".png"))
    seeds = f"mean over {args.train_seeds} training seed(s)"
    header = [f"| algorithm | env steps | held-out score x100, {seeds} | std | min | max |", "|---" * 6 + "|"]
    rows = [f"| {algo} | {p['steps']} | {p['mean']:.2f} | {p['std']:.2f} | {p['min']:.2f} | {p['max']:.2f} |"
            for algo, curve in curves.items() for p in curve]  # fmt: skip
    levels = ["", "| reference (registry `" + entry.key + f"`, heuristics: {HEADROOMS[args.suite].relative_to(HEADROOM.parent)}) | score x100 |",
              "|---|---|"] + [f"| {name} | {value:.2f} |" for name, value in lines.items()]  # fmt: skip
    diag = diagnostics_table(results["algorithms"])
    stem.with_suffix(".md").write_text("\n".join(header + rows + levels + diag) + "\n")
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(header + rows + levels + diag))
    print(f"wrote {stem}.png, .md and .json")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default=ENV_ID, choices=[ENV_ID, MICRO_ID],
                        help=f"{MICRO_ID}: held-out learning curves on the fast tier (see above)")  # fmt: skip
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
    parser.add_argument("--runs", type=Path, default=None, help="run directories (resumed)")
    parser.add_argument("--bench", type=Path, default=None, metavar="DIR",
                        help=f"{MICRO_ID}: the training runs of this esper bench --suite micro directory")  # fmt: skip
    micro = parser.add_argument_group(f"{MICRO_ID} only")
    micro.add_argument("--suite", default="micro", choices=list(HEADROOMS),
                       help="the suite whose training env, held-out instances and lines the curves use")  # fmt: skip
    micro.add_argument("--train-seeds", type=int, default=1, help="training runs per algorithm")
    micro.add_argument("--eval-every", type=int, default=2000, help="env steps between held-out evaluations")
    micro.add_argument("--eval-instances", type=int, default=50, help="held-out instances, one episode each")
    micro.add_argument(
        "--n-steps", type=int, default=None, help="PPO rollout length per env (default: PPO_DEFAULTS')"
    )
    micro.add_argument("--no-progress", dest="progress", action="store_false",
                       help="no progress bar and no TensorBoard logs")  # fmt: skip
    add_results_argument(parser)
    args = parser.parse_args(argv)
    if args.env == MICRO_ID:
        require_positive(parser, args, "steps", "n_envs", "train_seeds", "eval_every", "eval_instances")
        micro_main(args)
        return
    args.runs = RUNS if args.runs is None else args.runs
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
