"""Measure the reference scores of ``esper_env.reference_scores`` and write them to the registry.

    python benchmarks/reference_scores.py [--config impaired baseline] [--fidelity tiny]
        [--max-epochs 25] [--seeds 5] [--first-seed 1000] [--workers 2]
        [--registry esper_env/reference_scores.json] [--out DIR]

For each preset it runs, on reset seeds ``--first-seed ..`` (the benchmark's evaluation seeds,
apart from every training seed), the three references through ``benchmarks/_common.py``'s
episode runner: always-WAIT, the default heuristic acting greedily, and the best scripted growth
schedule of the growth-headroom benchmark (the grown schedule with the highest benchmark score in
``benchmarks/results/growth_headroom.json`` for that preset; ``now:widen_4x@0`` where the preset
is not in it). The registry entry (mean benchmark score, final accuracy, return under every reward
mode, seeds, this command and the code version) replaces any entry of the same key. Episodes are
cached in ``OUT/reference_scores_<fidelity>.episodes.jsonl``: a killed run resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    ENV_ID,
    add_episode_arguments,
    add_presets_argument,
    add_results_argument,
    episode_key,
    load_episodes,
    provenance,
    require_positive,
    run_all,
)

from esper_agents.policies import DEFAULT_HEURISTIC
from esper_agents.policies.schedules import get_schedule
from esper_env.references import REFERENCE_PATH, ReferenceScores
from esper_env.rewards import REWARD_MODES

HEADROOM = Path(__file__).parent / "results" / "growth_headroom.json"
FALLBACK_SCHEDULE = "now:widen_4x@0"


def best_scripted_schedule(config: str, headroom: Path = HEADROOM) -> str:
    """The grown scripted schedule with the best mean benchmark score for ``config`` (issue 6's table)."""
    if headroom.exists():
        rows = [r for r in json.loads(headroom.read_text())["summary"] if r["config"] == config]
        grown = [r for r in rows if not r["schedule"].startswith(("wait", "heuristic", "static"))]
        if grown:
            return max(grown, key=lambda r: r["score"]["mean"])["schedule"]
    return FALLBACK_SCHEDULE


def entry(
    config: str,
    episodes: dict[str, list[dict]],
    args: argparse.Namespace,
    schedules: dict,
    argv: list[str] | None,
) -> dict:
    def mean(name: str, key: str) -> float:
        return float(np.mean([e[key] for e in episodes[name]]))

    header = provenance(__file__, argv, ENV_ID, torch_threads=1)
    names = {"wait": "wait", "heuristic": schedules["heuristic"], "best_scripted": schedules["best_scripted"]}
    return ReferenceScores(
        env_id=ENV_ID,
        config=config,
        fidelity=args.fidelity,
        max_epochs=args.max_epochs,
        wait=mean("wait", "score"),
        heuristic=mean(names["heuristic"], "score"),
        heuristic_policy=DEFAULT_HEURISTIC,
        best_scripted=mean(names["best_scripted"], "score"),
        best_scripted_schedule=names["best_scripted"],
        seeds=tuple(range(args.first_seed, args.first_seed + args.seeds)),
        final_val_accuracy={ref: mean(name, "final_val_accuracy") for ref, name in names.items()},
        returns={
            ref: {m: float(np.mean([e["returns"][m] for e in episodes[name]])) for m in REWARD_MODES}
            for ref, name in names.items()
        },
        command=header["command"],
        code_version={k: v for k, v in header.items() if k != "command"},
    ).to_json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    add_presets_argument(parser, ["impaired", "baseline"])
    add_episode_arguments(parser, seeds=5, seeds_help="episodes per reference")
    parser.add_argument(
        "--first-seed", type=int, default=1000, help="first reset seed (the evaluation seeds)"
    )
    parser.add_argument("--registry", type=Path, default=REFERENCE_PATH, help="the registry file to update")
    add_results_argument(parser, resumes=True)
    args = parser.parse_args(argv)
    require_positive(parser, args, "seeds", "max_epochs", "workers")
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / f"reference_scores_{args.fidelity}_{args.max_epochs}.episodes.jsonl"
    done = load_episodes(cache)

    plans: dict[str, dict[str, Any]] = {}
    tasks = []
    for config in args.config:
        plan = {
            "heuristic": f"heuristic:{DEFAULT_HEURISTIC}",
            "best_scripted": best_scripted_schedule(config),
        }
        plans[config] = plan
        for name in ("wait", *plan.values()):
            tasks += [
                (config, get_schedule(name), s) for s in range(args.first_seed, args.first_seed + args.seeds)
            ]
    run_all(tasks, cache, done, fidelity=args.fidelity, max_epochs=args.max_epochs, workers=args.workers)

    registry = json.loads(args.registry.read_text()) if args.registry.exists() else {"entries": {}}
    registry["about"] = (
        "Reference scores of esper_env.reference_scores; written by benchmarks/reference_scores.py"
    )
    for config in args.config:
        episodes: dict[str, list[dict]] = {}
        for c, s, seed in tasks:
            if c == config:
                episodes.setdefault(s.name, []).append(done[episode_key(c, s.name, seed)])
        new = entry(config, episodes, args, plans[config], argv)
        key = ReferenceScores.from_json(new).key
        registry["entries"][key] = new
        print(f"{key}: wait {new['wait']:.4f}  heuristic {new['heuristic']:.4f}  "
              f"best scripted {new['best_scripted_schedule']} {new['best_scripted']:.4f}")  # fmt: skip
    registry["entries"] = dict(sorted(registry["entries"].items()))
    args.registry.write_text(json.dumps(registry, indent=1) + "\n")
    print(f"wrote {args.registry}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
