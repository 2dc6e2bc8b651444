"""Transfer: the fast tier's trained agents, as they are, on the "tiny" fidelity (issue 23).

An agent trained on ``Esper-Micro-v3`` (by ``esper bench --suite micro`` or ``micro-offline``)
acts in ``Esper-SynthCIFAR-v2`` at "tiny" without retraining: every v2 id has the same
observation and action spaces at the same ``num_slots``. This script loads the training runs of a
bench directory and plays them greedily, beside always-WAIT and the heuristics, on one of two
targets:

* ``impaired``: the ``impaired`` host at "tiny", 25 epochs, reset seeds ``1000..`` (the tiny
  suite's evaluation seeds; the registry's ``impaired``/tiny entry anchors the normalized score);
* ``bottlenecks``: the fast tier's instance distribution at "tiny" (a CNN of each instance's
  widths, learning rate and rent on SynthCIFAR), held-out instances ``1000000..`` pinned, one
  each (slow: a 64-wide block widened 4x takes minutes per episode).

Every agent meets the same episodes; the table gives each agent's mean score with its 95%
bootstrap interval over episodes (runs averaged per episode), the range across its training runs,
and its paired difference with always-WAIT and with the best heuristic on the same episodes.
Episodes are cached one JSON line each (a killed run resumes)::

    python benchmarks/transfer_tiny.py --bench runs/bench-micro-offline --agents cql iql bc rwbc \\
        --episodes 5 --workers 2 --out benchmarks/results

writes ``OUT/transfer_tiny_<target>.{json,md}`` and ``OUT/transfer_tiny_<target>.episodes.jsonl``
(``--fidelity`` and ``--max-epochs`` change the target's fidelity and episode length: the test runs
it at "test", 3 epochs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from _common import add_results_argument, provenance

from esper_agents.bench.report import anchors, normalized, paired_difference, summarize_agent
from esper_agents.bench.runner import evaluate_episode
from esper_agents.bench.suites import AGENT_NAMES, Suite, agent_family, get_suite, parse_run
from esper_agents.common.io import append_jsonl, read_jsonl
from esper_agents.generation.backends import LocalBackend
from esper_env.configs import FIDELITIES
from esper_env.instances import HELDOUT_SPLIT, TRAIN_SPLIT
from esper_env.settings import EnvSettings

TARGET_ID = "Esper-SynthCIFAR-v2"
TARGETS = ("impaired", "bottlenecks")
SCRIPTED = ("wait", "heuristic:capacity", "heuristic:rent-aware")


def bench_suite(bench: Path) -> Suite:
    """The suite a bench directory ran, with the number of training runs it holds."""
    path = bench / "bench.json"
    if not path.exists():
        raise SystemExit(f"{bench} is not an esper bench directory (no bench.json)")
    record = json.loads(path.read_text())
    return dataclasses.replace(get_suite(record["name"]), train_seeds=int(record.get("train_seeds", 1)))


def target_suite(
    suite: Suite, target: str, episodes: int, agents: tuple[str, ...], fidelity: str = "tiny",
    max_epochs: int | None = None,
) -> Suite:  # fmt: skip
    """``suite`` with its evaluation moved to ``target`` at ``fidelity`` (its training runs untouched)."""
    epochs = max_epochs or suite.settings.max_epochs
    base = EnvSettings(TARGET_ID, config="impaired", fidelity=fidelity, max_epochs=epochs)
    if target == "impaired":
        return dataclasses.replace(
            suite, settings=base, eval_split=None, eval_episodes=episodes, agents=agents
        )
    settings = base.replace(
        instances=suite.settings.resolved_instances or "bottlenecks",
        start_level=TRAIN_SPLIT.start_level,
        num_levels=TRAIN_SPLIT.num_levels,
    )
    return dataclasses.replace(
        suite, settings=settings, eval_split=HELDOUT_SPLIT, eval_episodes=episodes, agents=agents
    )


def _row_key(row: dict[str, Any]) -> tuple[str, int]:
    return row.get("run", row["agent"]), int(row["seed"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    trained = tuple(args.agents)
    for agent in (*trained, *args.scripted):
        agent_family(agent)
    source = bench_suite(args.bench)
    suite = target_suite(
        source, args.target, args.episodes, (*args.scripted, *trained), args.fidelity, args.max_epochs
    )
    runs = [r for a in suite.agents for r in suite.runs(a)]
    missing = [r for r in runs if agent_family(parse_run(r)[0]) != "scripted" and not _trained(args.bench, r)]
    if missing:
        raise SystemExit(f"{args.bench} has no finished training run for: {', '.join(missing)}")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"transfer_{args.fidelity}_{args.target}"
    cache = args.out / f"{stem}.episodes.jsonl"
    done = {_row_key(r): r for r in read_jsonl(cache)} if cache.exists() else {}
    todo = [
        (suite, args.bench.absolute(), r, s, "cpu")
        for r in runs
        for s in suite.eval_seeds
        if (r, s) not in done
    ]
    print(f"{len(todo)} episodes to run ({len(done)} cached) on {args.target}/tiny", flush=True)
    backend = LocalBackend(args.workers)
    try:
        for row in backend.map(evaluate_episode, todo):
            done[_row_key(row)] = row
            append_jsonl(cache, row)
            print(
                f"{row.get('run', row['agent'])} seed {row['seed']}: score {100 * row['score']:.1f}",
                flush=True,
            )
    finally:
        backend.close()
    return report(suite, source, runs, done, args)


def _trained(bench: Path, run: str) -> bool:
    return any(
        (bench / sub / run / name).exists()
        for sub, name in (("offline", "summary.json"), ("online", "model.zip"), ("fitted_q", "fitted_q.json"))
    )


def report(
    suite: Suite, source: Suite, runs: list[str], done: dict, args: argparse.Namespace
) -> dict[str, Any]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        rows.setdefault(parse_run(r)[0], []).extend(done[r, s] for s in suite.eval_seeds)
    summaries = {a: summarize_agent(a, v, None) for a, v in rows.items()}
    anchor = anchors(suite, summaries)
    best = max((a for a in rows if a.startswith("heuristic:")), key=lambda a: summaries[a]["score"]["mean"])
    lines = [
        (
            f"| agent | family | runs | score [95% CI] | across training runs | normalized [95% CI] "
            f"| vs wait [95% CI] | vs {best} [95% CI] | param overhead | illegal |"
        ),
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]

    def ci(stat: dict[str, Any] | None, scale: float = 100.0, digits: int = 1) -> str:
        if stat is None:
            return "n/a"
        lo, hi = stat["ci95"]
        return f"{scale * stat['mean']:.{digits}f} [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"

    for agent in suite.agents:
        s = summaries[agent]
        s["normalized_score"] = normalized(s["score"], anchor)
        s["vs_wait"] = paired_difference(rows[agent], rows["wait"])
        s["vs_heuristic"] = paired_difference(rows[agent], rows[best])
        scores = s["train_seed_scores"]
        spread = "-" if len(scores) < 2 else ", ".join(f"{100 * v:.1f}" for v in scores)
        lines.append(
            f"| {agent} | {s['family']} | {s['train_runs']} | {ci(s['score'])} | {spread} "
            f"| {ci(s['normalized_score'], 1.0, 2)} | {ci(s['vs_wait'])} | {ci(s['vs_heuristic'])} "
            f"| {100 * s['param_overhead']:+.0f}% | {s['illegal_actions']:.1f} |"
        )
    env = suite.eval_settings
    where = suite.split_description() or f"reset seeds {suite.eval_seeds[0]}-{suite.eval_seeds[-1]}"
    lines += [
        "",
        (
            f"Target: {env.env_id}, preset `{env.config}`, fidelity `{env.resolved_fidelity}`, {env.max_epochs} "
            f"epochs, {where}; agents trained on the fast tier ({args.bench}, suite `{source.name}`, "
            f"{source.train_seeds} training run(s) each), not retrained. "
            f"Normalized anchors: {anchor['source']}."
        ),
    ]
    table = "\n".join(lines) + "\n"
    result = {
        "provenance": provenance(__file__, args.argv, TARGET_ID, 1),
        "target": args.target,
        "suite": suite.to_json(),
        "anchors": anchor,
        "agents": [summaries[a] for a in suite.agents],
        "table": table,
    }
    stem = f"transfer_{args.fidelity}_{args.target}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(table)
    print(table)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bench", type=Path, required=True, metavar="DIR", help="an esper bench run directory"
    )
    parser.add_argument("--agents", nargs="+", required=True, choices=AGENT_NAMES, metavar="AGENT",
                        help="its trained agents to transfer (every training run of each)")  # fmt: skip
    parser.add_argument("--scripted", nargs="+", default=list(SCRIPTED), choices=AGENT_NAMES, metavar="AGENT",
                        help="the scripted agents beside them")  # fmt: skip
    parser.add_argument("--target", choices=TARGETS, default="impaired", help="where to play them")
    parser.add_argument("--fidelity", default="tiny", choices=FIDELITIES, help="the target's fidelity")
    parser.add_argument("--max-epochs", type=int, default=None, help="episode length (default: the suite's)")
    parser.add_argument(
        "--episodes", type=int, default=5, help="evaluation episodes (one per held-out instance)"
    )
    parser.add_argument("--workers", type=int, default=2, help="episodes in parallel (one torch thread each)")
    add_results_argument(parser, resumes=True)
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.episodes < 1 or args.workers < 1:
        parser.error(f"--episodes and --workers must be positive, got {args.episodes} and {args.workers}")
    if "wait" not in args.scripted or not any(a.startswith("heuristic:") for a in args.scripted):
        parser.error("--scripted must hold wait and at least one heuristic:<policy> (the paired comparisons)")
    run(args)


if __name__ == "__main__":
    sys.exit(main())
