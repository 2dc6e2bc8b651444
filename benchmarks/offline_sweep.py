"""A small hyperparameter sweep of the offline algorithms on a fast-tier pack (issue 23).

    python benchmarks/offline_sweep.py --suite micro-offline-optimizers \\
        --pack runs/bench-micro-offline-optimizers/pack --algos iql --configs base expectile-0.9 temp-10 \\
        --steps 20000 --train-seeds 3 --eval-instances 200 --out benchmarks/results/offline_sweep_optimizers

:data:`CONFIGS` changes one or two fields of an algorithm's default config
(:func:`esper_agents.offline.algorithms.make_config`) at a time: IQL's expectile and the inverse
temperature of its advantage weights, CQL's conservative weight. Each configuration of each
algorithm trains ``--train-seeds`` runs on the pack that ``esper bench --suite <suite>`` generated
(``--pack``), run ``i`` seeded as the bench seeds its run ``i``, so that the ``base`` configuration
reproduces the bench's own agent. The runs are laid out as bench run directories
(``RUNS/<algo>/<config>/offline/<algo>-seed<i>``), and each final greedy policy plays the
suite's first ``--eval-instances`` held-out instances, one episode each with its instance pinned,
through the bench's own evaluation (:func:`esper_agents.bench.runner.evaluate_episode`);
always-WAIT and the suite's best heuristic play the same episodes. Runs go ``--workers`` at a time
(one torch thread each); a killed sweep resumes (finished runs and their scores are kept).

Writes ``OUT/offline_sweep.{json,md}``: per algorithm and configuration, the mean held-out score
over training seeds with each seed's, the paired difference with WAIT and with the best heuristic
(95% bootstrap intervals over instances, each instance's score averaged over the training seeds,
as the bench reports them), and how often the policy grew (seeds created per episode).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from _common import (
    RESULTS,
    add_results_argument,
    format_ci,
    load_sweep,
    mean_score,
    provenance,
    require_positive,
    run_sweep,
)

from esper_agents.bench.report import paired_difference, per_episode
from esper_agents.bench.runner import evaluate_episode
from esper_agents.bench.suites import SUITES, Suite, agent_family, get_suite, run_name
from esper_agents.common.stats import bootstrap_ci
from esper_agents.offline.algorithms import ALGORITHMS, make_config
from esper_env.env import torch_threads

RUNS = RESULTS / "local" / "offline_sweep"
#: Each configuration: config fields over the algorithm's defaults, and the algorithms it applies to.
CONFIGS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "base": ({}, ALGORITHMS),
    # IQL extracts its policy by advantage-weighted regression: exp(weight_temp * A(s, a)). The
    # fast tier's returns move about 0.1 per point of score, so at the default weight_temp 3 a
    # 3-point advantage weighs 2.5x and the policy stays close to the pack's (60% WAIT) actions.
    "expectile-0.9": ({"expectile": 0.9}, ("iql",)),
    "temp-10": ({"weight_temp": 10.0}, ("iql",)),
    "temp-30": ({"weight_temp": 30.0}, ("iql",)),
    "expectile-0.9-temp-10": ({"expectile": 0.9, "weight_temp": 10.0}, ("iql",)),
    "alpha-1": ({"alpha": 1.0}, ("cql",)),
}
SCRIPTED = ("wait",)
#: The suites that train offline agents on a pack.
OFFLINE_SUITES = [
    name for name, suite in SUITES.items() if any(agent_family(a) == "offline" for a in suite.agents)
]


def sweep_suite(name: str, steps: int, eval_instances: int) -> Suite:
    """The suite ``name`` with this sweep's budget and its first ``eval_instances`` held-out instances."""
    return dataclasses.replace(get_suite(name), offline_steps=steps, eval_episodes=eval_instances)


def train_and_score(algo: str, config: str, index: int, args: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume) one run and score its final policy on the held-out instances."""
    from esper_agents.bench.families import _quiet_d3rlpy
    from esper_agents.offline.datasets import load_pack
    from esper_agents.offline.train import train_offline

    suite = sweep_suite(args["suite"], args["steps"], args["eval_instances"])
    out = Path(args["runs"]) / algo / config
    run = run_name(algo, index)
    summary = out / "offline" / run / "summary.json"
    if not (summary.exists() and json.loads(summary.read_text()).get("steps") == args["steps"]):
        _quiet_d3rlpy()
        records, source = load_pack(args["pack"])
        with torch_threads(1):
            train_offline(algo, records, args["steps"], out / "offline" / run, seed=suite.run_seed(index),
                          show_progress=False, source=source, config_overrides=CONFIGS[config][0])  # fmt: skip
    rows = [evaluate_episode(suite, out, run, seed) for seed in suite.eval_seeds]
    return {"algo": algo, "config": config, "index": index, "rows": rows}


def _scripted(agent: str, seed: int, args: dict[str, Any]) -> dict[str, Any]:
    suite = sweep_suite(args["suite"], args["steps"], args["eval_instances"])
    row = evaluate_episode(suite, Path(args["runs"]), agent, seed)
    return {"algo": agent, "config": "-", "index": seed, "rows": [row]}


def summarize(done: dict[tuple[str, str, int], dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Per algorithm and configuration: scores over training seeds and the paired differences."""
    suite = sweep_suite(args.suite, args.steps, args.eval_instances)
    seeds = set(suite.eval_seeds)

    def scripted(agent: str) -> list[dict[str, Any]]:
        return [r for (a, _, _), v in done.items() if a == agent for r in v["rows"] if r["seed"] in seeds]

    best = f"heuristic:{suite.settings.reference_scores().heuristic_policy}"
    wait, heuristic = scripted("wait"), scripted(best)
    # heuristics an earlier run of the sweep played (e.g. the registry's best before it changed)
    others = sorted({a for (a, c, _) in done if c == "-" and a.startswith("heuristic:") and a != best})
    table = []
    for algo in args.algos:
        for config in CONFIGS:
            runs = [done[algo, config, i] for i in range(args.train_seeds) if (algo, config, i) in done]
            if not runs:
                continue
            rows = [{**r, "train_index": i} for i, run in enumerate(runs) for r in run["rows"]]
            table.append({
                "algo": algo, "config": config, "overrides": CONFIGS[config][0],
                "score": bootstrap_ci([100 * v for v in per_episode(rows, "score").values()]),
                "per_seed": [mean_score(run["rows"]) for run in runs],
                "vs_wait": paired_difference(rows, wait), "vs_heuristic": paired_difference(rows, heuristic),
                "vs_others": {a: paired_difference(rows, scripted(a)) for a in others},
                "seeds_created": sum(r["seeds_created"] for r in rows) / len(rows),
                "grew": sum(r["seeds_created"] > 0 for r in rows) / len(rows),
            })  # fmt: skip
    return {
        "table": table,
        "wait": bootstrap_ci([100 * r["score"] for r in wait]) if wait else None,
        "heuristic": bootstrap_ci([100 * r["score"] for r in heuristic]) if heuristic else None,
        "heuristic_agent": best,
        "others": {a: bootstrap_ci([100 * r["score"] for r in scripted(a)]) for a in others},
        "heuristic_grew": sum(r["seeds_created"] > 0 for r in heuristic) / len(heuristic)
        if heuristic
        else None,
    }


def markdown(summary: dict[str, Any], args: argparse.Namespace) -> str:
    best, others = summary["heuristic_agent"], list(summary["others"])
    lines = [
        (
            f"| algorithm | config | overrides | held-out score [95% CI] | per seed | vs WAIT [95% CI] "
            f"| vs {best} [95% CI] | "
            + "".join(f"vs {a} [95% CI] | " for a in others)
            + "episodes that grew | seeds created per episode |"
        ),
        "|---|---|---|---:|---|---:|---:|" + "---:|" * len(others) + "---:|---:|",
    ]
    for t in summary["table"]:
        lines.append(
            f"| {t['algo']} | {t['config']} | {json.dumps(t['overrides'])} | {format_ci(t['score'])} "
            f"| {', '.join(f'{v:.1f}' for v in t['per_seed'])} | {format_ci(t['vs_wait'], 100)} "
            f"| {format_ci(t['vs_heuristic'], 100)} | "
            + "".join(f"{format_ci(t['vs_others'][a], 100)} | " for a in others)
            + f"{100 * t['grew']:.0f}% | {t['seeds_created']:.2f} |"
        )
    grew = summary["heuristic_grew"]
    lines += [
        "",
        (
            f"On the same {args.eval_instances} held-out instances: always-WAIT {format_ci(summary['wait'])}, "
            f"{best} {format_ci(summary['heuristic'])}"
            + ("" if grew is None else f" (grows in {100 * grew:.0f}% of them)")
            + "".join(f", {a} {format_ci(v)}" for a, v in summary["others"].items())
            + f". {args.steps} gradient steps per run on the pack {args.pack}, {args.train_seeds} training "
            "seed(s) each, as the bench seeds its runs; each config changes the fields it lists."
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="micro-offline", choices=OFFLINE_SUITES,
                        help="the suite whose pack, training seeds and held-out instances the runs use")  # fmt: skip
    parser.add_argument("--pack", type=Path, required=True, help="the pack `esper bench --suite SUITE` wrote")
    parser.add_argument("--algos", nargs="+", default=["iql"], choices=list(ALGORITHMS))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=20_000, help="gradient steps per run")
    parser.add_argument("--train-seeds", type=int, default=3, help="training runs per configuration")
    parser.add_argument("--eval-instances", type=int, default=None,
                        help="held-out instances, one episode each (default: the suite's)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (one torch thread each)")
    parser.add_argument("--runs", type=Path, default=None,
                        help=f"run directories (resumed; default {RUNS}_<suite>)")  # fmt: skip
    add_results_argument(parser, resumes=True)
    args = parser.parse_args(argv)
    if args.eval_instances is None:
        args.eval_instances = get_suite(args.suite).eval_episodes
    require_positive(parser, args, "steps", "train_seeds", "eval_instances", "workers")
    if not (args.pack / "pack.json").is_file():
        parser.error(
            f"--pack {args.pack} holds no pack.json: give the pack directory of an `esper bench` run"
        )
    for config in args.configs:  # a bad field fails here, not in a worker
        for algo in args.algos:
            if algo in CONFIGS[config][1]:
                make_config(algo, 2, args.steps, **CONFIGS[config][0])
    if args.runs is None:
        args.runs = RUNS.with_name(f"{RUNS.name}_{args.suite.replace('-', '_')}")
    suite = sweep_suite(args.suite, args.steps, args.eval_instances)
    scripted = (*SCRIPTED, f"heuristic:{suite.settings.reference_scores().heuristic_policy}")
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "offline_sweep.runs.jsonl"
    done = load_sweep(cache, "index")
    plain = {"suite": args.suite, "pack": str(args.pack), "steps": args.steps,
             "eval_instances": args.eval_instances, "runs": str(args.runs)}  # fmt: skip
    todo = [(a, c, i, plain) for c in args.configs for a in args.algos if a in CONFIGS[c][1]
            for i in range(args.train_seeds) if (a, c, i) not in done]  # fmt: skip
    todo_scripted = [(a, s, plain) for a in scripted for s in suite.eval_seeds if (a, "-", s) not in done]
    run_sweep(cache, done, "index", [(_scripted, todo_scripted), (train_and_score, todo)], args.workers)
    summary = summarize(done, args)
    table = markdown(summary, args)
    result = {"provenance": provenance(__file__, argv, suite.settings.env_id, 1), "settings": suite.settings.to_dict(),
              "pack": str(args.pack), "steps": args.steps, "train_seeds": args.train_seeds,
              "configs": {k: {"overrides": v[0], "algos": list(v[1])} for k, v in CONFIGS.items()},
              "defaults": {a: {k: v for k, v in dataclasses.asdict(make_config(a, 2, args.steps)).items()
                               if isinstance(v, (int, float, str))} for a in args.algos}, **summary}  # fmt: skip
    (args.out / "offline_sweep.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "offline_sweep.md").write_text(table)
    print(table)


if __name__ == "__main__":
    sys.exit(main())
