"""A small hyperparameter sweep of the online algorithms on the fast tier (issue 23).

    python benchmarks/online_sweep.py --algos masked-recurrent-ppo maskable-ppo --steps 10000 \\
        --train-seeds 2 --workers 2 --out benchmarks/results

:data:`CONFIGS` is a base set-up for the fast tier's 25-step episodes and one change at a time
from it (learning rate, entropy bonus, discount, rollout length, reward mode). Each configuration
of each algorithm trains ``--train-seeds`` runs on the micro suite's training env (the
``bottlenecks`` instances of ``TRAIN_SPLIT``; ``--suite micro-optimizers``: the ``optimizers`` ones,
scored against that suite's best heuristic, ``lr-aware``), run ``i`` seeded ``i * n_envs`` as the bench seeds
its runs, each a resumable ``train_online`` directory ``RUNS/<algo>/<config>/seed<seed>`` (default
``benchmarks/results/local/online_sweep``). The final greedy policy is scored on the micro suite's
first ``--eval-instances`` held-out instances, one episode each with its instance pinned, as
``esper bench --suite micro`` scores it; always-WAIT and the best heuristic play the same episodes.
Runs go ``--workers`` at a time; a killed sweep resumes (finished runs and their scores are kept).

Writes ``OUT/online_sweep.{json,md}``: per algorithm and configuration, the mean held-out score
over training seeds with each seed's, the paired difference with WAIT and with the best heuristic
(95% bootstrap intervals over instances, each instance's score averaged over the training seeds,
as the bench reports them), and what the policy did
while it trained (the last checkpoint interval's seeds created, fossilized and pruned per episode).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import _common as sweep
import torch
from _common import MICRO_ID, RESULTS, add_results_argument, provenance, require_positive
from online_learning_curves import diagnostics, evaluate_heldout, micro_suite

from esper_agents.bench.report import paired_difference, per_episode
from esper_agents.bench.runner import evaluate_episode
from esper_agents.common.stats import bootstrap_ci
from esper_agents.online.algorithms import ONLINE_ALGORITHMS, PPO_DEFAULTS
from esper_agents.online.train import train_online

RUNS = RESULTS / "local" / "online_sweep"
#: The fast tier's base: longer rollouts than the tiny suite's (10 episodes per env per update).
BASE: dict[str, Any] = {"n_steps": 250, "batch_size": 125, "n_epochs": 4}
#: Each configuration: PPO hyperparameters over :data:`BASE` and the env's reward mode.
CONFIGS: dict[str, tuple[dict[str, Any], str]] = {
    "base": ({}, "shaped"),
    "lr-1e-3": ({"learning_rate": 1e-3}, "shaped"),
    "ent-0": ({"ent_coef": 0.0}, "shaped"),
    "ent-0.05": ({"ent_coef": 0.05}, "shaped"),
    "gamma-1": ({"gamma": 1.0, "gae_lambda": 1.0}, "shaped"),
    "sparse": ({}, "sparse"),
    "contribution": ({}, "contribution"),
    "rollout-50": ({"n_steps": 50, "batch_size": 50}, "shaped"),
    # for a policy that starts good (maskable-ppo-options-bc): smaller, better-averaged steps
    "lr-1e-4": ({"learning_rate": 1e-4}, "shaped"),
    "rollout-1000": ({"n_steps": 1000, "batch_size": 250}, "shaped"),
}
SCRIPTED = ("wait",)


def train_and_score(algo: str, config: str, seed: int, args: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume) one run and score its final model on the held-out instances."""
    torch.set_num_threads(1)
    suite = micro_suite(args["steps"], args["n_envs"], args["eval_instances"], args["suite"])
    overrides, reward = CONFIGS[config]
    settings = suite.settings.replace(reward=reward)
    run = Path(args["runs"]) / algo / config / f"seed{seed}"
    train_online(algo, args["steps"], run, settings, n_envs=args["n_envs"], seed=seed,
                 checkpoint_every=args["steps"], progress=False, tensorboard=True,
                 hyperparameters={**BASE, **overrides})  # fmt: skip
    rows = evaluate_heldout(suite, algo, run / "model.zip")
    diag = diagnostics(run, [args["steps"]])
    return {"algo": algo, "config": config, "seed": seed, "rows": rows, "diagnostics": diag}


def _scripted(agent: str, seed: int, args: dict[str, Any]) -> dict[str, Any]:
    suite = micro_suite(args["steps"], args["n_envs"], args["eval_instances"], args["suite"])
    row = evaluate_episode(suite, Path(args["runs"]), agent, seed)
    return {"algo": agent, "config": "-", "seed": seed, "rows": [row]}


def summarize(done: dict[tuple[str, str, int], dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Per algorithm and configuration: scores over seeds and the paired differences."""
    suite = micro_suite(args.steps, args.n_envs, args.eval_instances, args.suite)
    wait = [r for (a, _, _), v in done.items() if a == "wait" for r in v["rows"]]
    entry = suite.settings.reference_scores()
    best = f"heuristic:{entry.heuristic_policy}"
    heuristic = [r for (a, _, _), v in done.items() if a == best for r in v["rows"]]
    table = []
    for algo in args.algos:
        for config in CONFIGS:
            runs = [done[algo, config, s] for s in args.seeds if (algo, config, s) in done]
            if not runs:
                continue
            rows = [{**r, "train_index": i} for i, run in enumerate(runs) for r in run["rows"]]
            per_seed = [sweep.mean_score(run["rows"]) for run in runs]
            last = [run["diagnostics"]["intervals"][-1] for run in runs if run["diagnostics"]["intervals"]]
            table.append({
                "algo": algo, "config": config, "overrides": CONFIGS[config][0], "reward": CONFIGS[config][1],
                "seeds": [run["seed"] for run in runs],
                "score": bootstrap_ci([100 * v for v in per_episode(rows, "score").values()]),
                "per_seed": per_seed, "vs_wait": paired_difference(rows, wait),
                "vs_heuristic": paired_difference(rows, heuristic),
                "training": {k: sum(i[k] for i in last) / len(last) for k in
                             ("score", "seeds_created", "seeds_fossilized", "seeds_pruned")} if last else None,
            })  # fmt: skip
    waits = bootstrap_ci([100 * r["score"] for r in wait]) if wait else None
    heur = bootstrap_ci([100 * r["score"] for r in heuristic]) if heuristic else None
    return {"table": table, "wait": waits, "heuristic": heur, "heuristic_agent": best}


def markdown(summary: dict[str, Any], args: argparse.Namespace) -> str:
    best = summary["heuristic_agent"]
    lines = [
        (
            f"| algorithm | config | reward | held-out score [95% CI] | per seed | vs WAIT [95% CI] | vs {best} [95% CI] "
            "| training: score, created, fossilized, pruned per episode (last interval) |"
        ),
        "|---|---|---|---:|---|---:|---:|---|",
    ]
    for t in summary["table"]:
        tr = t["training"]
        train = "n/a" if tr is None else (f"{100 * tr['score']:.1f}, {tr['seeds_created']:.2f}, "
                                          f"{tr['seeds_fossilized']:.2f}, {tr['seeds_pruned']:.2f}")  # fmt: skip
        lines.append(
            f"| {t['algo']} | {t['config']} | {t['reward']} | {sweep.format_ci(t['score'])} "
            f"| {', '.join(f'{v:.1f}' for v in t['per_seed'])} | {sweep.format_ci(t['vs_wait'], 100)} "
            f"| {sweep.format_ci(t['vs_heuristic'], 100)} | {train} |"
        )
    lines += [
        "",
        (
            f"On the same {args.eval_instances} held-out instances: always-WAIT {sweep.format_ci(summary['wait'])}, "
            f"{best} {sweep.format_ci(summary['heuristic'])}. {args.steps} env steps per run on {args.n_envs} envs, "
            f"{len(args.seeds)} training seed(s) ({', '.join(map(str, args.seeds))}); base hyperparameters "
            f"{json.dumps({**PPO_DEFAULTS, **BASE})}, each config changing what its name says."
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--algos", nargs="+", default=["masked-recurrent-ppo"], choices=list(ONLINE_ALGORITHMS)
    )
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=10_000, help="env steps per run, all envs together")
    parser.add_argument("--n-envs", type=int, default=2)
    parser.add_argument("--train-seeds", type=int, default=2, help="training runs per configuration")
    parser.add_argument("--eval-instances", type=int, default=50, help="held-out instances, one episode each")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (one torch thread each)")
    parser.add_argument("--suite", default="micro", choices=["micro", "micro-optimizers"],
                        help="the suite whose training env and held-out instances the runs use")  # fmt: skip
    parser.add_argument("--runs", type=Path, default=None,
                        help=f"run directories (resumed; default {RUNS}, with _<suite> after it for another suite)")  # fmt: skip
    add_results_argument(parser, resumes=True)
    args = parser.parse_args(argv)
    require_positive(parser, args, "steps", "n_envs", "train_seeds", "eval_instances", "workers")
    args.seeds = [i * args.n_envs for i in range(args.train_seeds)]
    if args.runs is None:
        args.runs = (
            RUNS if args.suite == "micro" else RUNS.with_name(f"{RUNS.name}_{args.suite.replace('-', '_')}")
        )
    for config in args.configs:
        rollout = {**PPO_DEFAULTS, **BASE, **CONFIGS[config][0]}["n_steps"] * args.n_envs
        if args.steps < rollout:
            parser.error(
                f"--steps {args.steps} is less than one rollout of config {config!r} ({rollout} env steps)"
            )
    suite = micro_suite(args.steps, args.n_envs, args.eval_instances, args.suite)
    entry = suite.settings.reference_scores()
    scripted = (*SCRIPTED, f"heuristic:{entry.heuristic_policy}")
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "online_sweep.runs.jsonl"
    done = sweep.load_sweep(cache, "seed")
    plain = {
        "steps": args.steps,
        "n_envs": args.n_envs,
        "eval_instances": args.eval_instances,
        "runs": str(args.runs),
        "suite": args.suite,
    }
    todo = [
        (a, c, s, plain)
        for a in args.algos
        for c in args.configs
        for s in args.seeds
        if (a, c, s) not in done
    ]
    todo_scripted = [(a, s, plain) for a in scripted for s in suite.eval_seeds if (a, "-", s) not in done]
    sweep.run_sweep(cache, done, "seed", [(_scripted, todo_scripted), (train_and_score, todo)], args.workers)
    args.configs = list(CONFIGS)
    summary = summarize(done, args)
    table = markdown(summary, args)
    result = {"provenance": provenance(__file__, argv, MICRO_ID, 1), "settings": suite.settings.to_dict(),
              "steps": args.steps, "n_envs": args.n_envs, "seeds": args.seeds, "base": {**PPO_DEFAULTS, **BASE},
              "configs": {k: {"overrides": v[0], "reward": v[1]} for k, v in CONFIGS.items()}, **summary}  # fmt: skip
    (args.out / "online_sweep.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "online_sweep.md").write_text(table)
    print(table)


if __name__ == "__main__":
    sys.exit(main())
