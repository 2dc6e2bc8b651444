"""Does growth pay? Scripted growth schedules against always-WAIT, paired on the same reset seeds.

    python benchmarks/growth_headroom.py [--config impaired baseline] [--seeds 5] [--fidelity tiny]
        [--max-epochs 25] [--schedules NAME ...] [--sweep-seeds 3] [--seed-lr-multiplier M]
        [--workers 2] [--out DIR] [--tag TAG]

Every schedule is a fixed rule run through the public API (``gymnasium.make`` and the factored
action), on reset seeds 0..N-1, next to always-WAIT on the same seeds: the same seed gives the
same host initialisation and data order, so differences to WAIT are paired. The schedules are
those of :mod:`esper_agents.policies.schedules` (``wait``, ``now:<blueprint>[@<slots>]``,
``from<E>:<blueprint>``, the harmful ``hold-then-prune``, ``prune-at-23`` and ``churn``,
``heuristic:<policy>``); every blueprint is swept on ``--sweep-seeds`` seeds, the capacity
blueprints run on all seeds. ``static-x<size>`` rows train a static host of the preset's
architecture scaled to the parameter count of a grown network from scratch (the width growth
tries to reach); episodes run through ``benchmarks/_common.py``'s episode runner.

Prints a markdown table (final val accuracy, paired delta vs WAIT with its 95% t-interval, the
benchmark score ``final acc - 0.03 log2(size ratio)``, size ratio, seeds fossilized) and writes
``growth_headroom[_TAG].{json,md,png}`` under ``--out`` (the PNG: mean validation accuracy per
epoch for each schedule). Episodes are cached one JSON line each in
``growth_headroom[_TAG].episodes.jsonl``, so a killed run resumes where it stopped, and
``--report-only`` reports what a partial run has so far (each row says how many seeds it has).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
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

from esper_agents.common.stats import mean_ci
from esper_agents.policies.schedules import Schedule, get_schedule, schedules_for
from esper_env.blueprints import ORIGINAL_BLUEPRINTS
from esper_env.rewards import DEFAULT_RENT_WEIGHT

# ---------------------------------------------------------------------------------------- summary


def summarise(episodes: list[dict], config: str) -> list[dict]:
    """One row per schedule of ``config``: means with 95% t-intervals, paired deltas vs WAIT."""
    here = [e for e in episodes if e["config"] == config]
    wait = {e["seed"]: e for e in here if e["schedule"] == "wait"}
    rows = []
    for name in dict.fromkeys(e["schedule"] for e in here):
        eps = sorted((e for e in here if e["schedule"] == name), key=lambda e: e["seed"])
        row: dict[str, Any] = {"config": config, "schedule": name, "seeds": [e["seed"] for e in eps]}
        for key in (
            "final_val_accuracy",
            "test_accuracy",
            "score",
            "size_ratio",
            "seeds_fossilized",
            "seeds_pruned",
        ):
            row[key] = mean_ci([e[key] for e in eps])
        paired = [e for e in eps if e["seed"] in wait]
        if name != "wait" and paired:
            row["delta_vs_wait"] = mean_ci(
                [e["final_val_accuracy"] - wait[e["seed"]]["final_val_accuracy"] for e in paired]
            )
            row["score_delta_vs_wait"] = mean_ci([e["score"] - wait[e["seed"]]["score"] for e in paired])
        row["seconds_per_episode"] = float(np.mean([e["seconds"] for e in eps]))
        rows.append(row)
    return rows


def _pct(s: dict, signed: bool = False) -> str:
    lo, hi = s["ci95"]
    head = f"{100 * s['mean']:+.1f}" if signed else f"{100 * s['mean']:.1f}%"
    return f"{head} ({100 * lo:+.1f} to {100 * hi:+.1f})" if signed else head


def markdown(rows: list[dict]) -> str:
    lines = [
        (
            "| config | schedule | n | final val acc | paired delta vs WAIT, points (95% CI) | score "
            "| score delta vs WAIT | size vs host | fossilized | pruned |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        delta = _pct(r["delta_vs_wait"], signed=True) if "delta_vs_wait" in r else "-"
        sdelta = _pct(r["score_delta_vs_wait"], signed=True) if "score_delta_vs_wait" in r else "-"
        lines.append(
            f"| {r['config']} | `{r['schedule']}` | {len(r['seeds'])} | {_pct(r['final_val_accuracy'])} | {delta} "
            f"| {100 * r['score']['mean']:.1f} | {sdelta} | {r['size_ratio']['mean']:.2f}x "
            f"| {r['seeds_fossilized']['mean']:.1f} | {r['seeds_pruned']['mean']:.1f} |"
        )
    return "\n".join(lines)


def findings(rows: list[dict]) -> dict[str, Any]:
    """The issue's must-show figures for one preset, computed from its rows."""
    grown = [
        r
        for r in rows
        if r["schedule"] != "wait" and not r["schedule"].startswith("static") and "delta_vs_wait" in r
    ]
    if not grown:
        return {}
    best = max(grown, key=lambda r: r["final_val_accuracy"]["mean"])
    worst = min(grown, key=lambda r: r["delta_vs_wait"]["mean"])
    by_score = max(rows, key=lambda r: r["score"]["mean"])
    everything = next((r for r in rows if r["schedule"] == "now:widen_4x"), None)
    return {
        "best_accuracy_schedule": best["schedule"],
        "best_delta_vs_wait": best["delta_vs_wait"],
        "most_harmful_schedule": worst["schedule"],
        "most_harmful_delta_vs_wait": worst["delta_vs_wait"],
        "best_score_schedule": by_score["schedule"],
        "best_score": by_score["score"],
        "wait_score": next(r["score"] for r in rows if r["schedule"] == "wait"),
        "grow_largest_everywhere_score": None if everything is None else everything["score"],
    }


def plot(episodes: list[dict], configs: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(configs), figsize=(7 * len(configs), 5), squeeze=False)
    for ax, config in zip(axes[0], configs):
        here = [e for e in episodes if e["config"] == config]
        names = list(dict.fromkeys(e["schedule"] for e in here))
        for name in names:
            curves = np.array([e["val_accuracy_curve"] for e in here if e["schedule"] == name])
            style = (
                "k-" if name == "wait" else ("--" if name.startswith(("static", "hold", "churn")) else "-")
            )
            ax.plot(np.arange(1, curves.shape[1] + 1), 100 * curves.mean(0), style, lw=2 if name == "wait" else 1,
                    label=f"{name} (n={len(curves)})")  # fmt: skip
        ax.set(title=f"{config}: validation accuracy (mean over seeds)", xlabel="epoch", ylabel="val acc (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------- run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    add_presets_argument(parser, ["impaired", "baseline"])
    add_episode_arguments(parser, seeds=5, seeds_help="reset seeds 0..N-1 for the main schedules")
    parser.add_argument(
        "--sweep-seeds", type=int, default=3, help="seeds for the sweep over original blueprints"
    )
    parser.add_argument("--schedules", nargs="+", default=None, help="run only these schedule names")
    parser.add_argument("--seed-lr-multiplier", type=float, default=None, help="override the presets' value")
    add_results_argument(parser, resumes=True)
    parser.add_argument("--tag", default="", help="suffix of the output files (for ablations)")
    parser.add_argument("--report-only", action="store_true", help="run nothing: report the cached episodes")
    args = parser.parse_args(argv)
    require_positive(parser, args, "seeds", "sweep_seeds", "max_epochs", "workers")
    stem = "growth_headroom" + (f"_{args.tag}" if args.tag else "")
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / f"{stem}.episodes.jsonl"
    done = load_episodes(cache)

    def run(todo: list[tuple[str, Schedule, int]]) -> None:
        if not args.report_only:
            run_all(todo, cache, done, fidelity=args.fidelity, max_epochs=args.max_epochs, workers=args.workers,
                    seed_lr=args.seed_lr_multiplier)  # fmt: skip

    tasks: list[tuple[str, Schedule, int]] = []
    sweeps: list[tuple[str, Schedule, int]] = []
    for config in args.config:
        plan = schedules_for(config)
        if args.schedules:
            known = {s.name for c in args.config for s in schedules_for(c)}
            unknown = sorted(set(args.schedules) - known - {"static"})
            if unknown:
                parser.error(f"unknown schedules {unknown}; valid: {', '.join(sorted(known))}")
            plan = [s for s in plan if s.name in args.schedules or s.name == "wait"]
        full = (
            len(schedules_for(config)) > 10
        )  # presets with the trimmed list run every schedule on all seeds
        for s in plan:
            sweep = (
                full
                and s.kind == "grow"
                and s.slots == (0, 1, 2)
                and s.start == 0
                and s.blueprint in ORIGINAL_BLUEPRINTS
            )
            (sweeps if sweep else tasks).extend(
                (config, s, seed) for seed in range(args.sweep_seeds if sweep else args.seeds)
            )
    run(tasks)

    # Static references: a host trained from scratch at the size of the grown networks that matter
    # (on the CNN presets with a full schedule list).
    static: list[tuple[str, Schedule, int]] = []
    if not args.schedules or "static" in args.schedules:
        for config in (c for c in args.config if len(schedules_for(c)) > 10):
            rows = summarise(list(done.values()), config)
            grown = [r for r in rows if r["schedule"] not in ("wait",) and len(r["seeds"]) >= args.seeds]
            refs = (
                {max(grown, key=lambda r: r["score"]["mean"])["schedule"], "now:widen_4x"} if grown else set()
            )
            for r in rows:
                if r["schedule"] in refs:
                    size = round(r["size_ratio"]["mean"], 2)
                    static += [
                        (config, get_schedule(f"static-x{size:.2f}"), seed) for seed in range(args.seeds)
                    ]
        run(static)
    run(sweeps)  # the sweep over the original blueprints last: the longest, least decisive
    tasks += sweeps

    episodes = list(done.values())
    wanted = {episode_key(c, s.name, seed) for c, s, seed in tasks + static}
    episodes = [e for e in episodes if episode_key(e["config"], e["schedule"], e["seed"]) in wanted]
    rows = [r for c in args.config for r in summarise(episodes, c)]
    table = markdown(rows)
    print("\n" + table)
    result = {
        "provenance": provenance(__file__, argv, ENV_ID, torch_threads=1),
        "settings": {
            "env": ENV_ID,
            "configs": args.config,
            "fidelity": args.fidelity,
            "max_epochs": args.max_epochs,
            "seeds": args.seeds,
            "sweep_seeds": args.sweep_seeds,
            "rent_weight": DEFAULT_RENT_WEIGHT,
            "seed_lr_multiplier": args.seed_lr_multiplier or "preset default",
            "schedules": {s.name: asdict(s) for _, s, _ in tasks + static},
        },
        "findings": {c: findings([r for r in rows if r["config"] == c]) for c in args.config},
        "summary": rows,
        "table": table,
        "episodes": sorted(episodes, key=lambda e: (e["config"], e["schedule"], e["seed"])),
    }
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(table + "\n")
    plot(episodes, args.config, args.out / f"{stem}.png")
    print(f"\nwrote {args.out / stem}.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
