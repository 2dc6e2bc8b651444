"""Does the heuristic beat never growing? Final accuracy of the heuristics vs always-WAIT.

    python benchmarks/heuristic_vs_wait.py [--seeds 5] [--fidelity tiny] [--config baseline impaired]
                                           [--max-epochs 25] [--policies capacity baseline] [--out DIR]

The default heuristic of the benchmarks is ``capacity`` (germinates when the host underfits);
``baseline`` is the original design's plateau rule.

Runs each policy on Esper-SynthCIFAR-v1 (CompactActions) for ``--seeds`` episodes per config,
seeds 0..N-1, next to the always-WAIT policy on the same seeds. Policies act greedily (the argmax
of their greedy distribution, epsilon 0), so every number here can be replayed exactly. The same
seed gives the same host initialisation and data order, so differences to WAIT are paired.

Prints a markdown table (mean and 95% t-interval over seeds) and writes every episode, with the
non-WAIT actions it took and the contributions behind its FOSSILIZE/PRUNE calls, to
OUT/heuristic_vs_wait.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import esper_env  # noqa: F401  (registers the env ids)
from esper_agents.cli_options import add_results_argument
from esper_agents.common.stats import mean_ci as interval
from esper_agents.policies import DEFAULT_HEURISTIC, get_policy
from esper_env.configs import ENVIRONMENT_CONFIGS, FIDELITIES
from esper_env.lifecycle import Op
from esper_env.wrappers import CompactActions

WAIT = "wait"


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval."""
    summary = interval(values)
    return summary["mean"], summary["half_width"]


def provenance() -> dict[str, Any]:
    """The code the numbers came from: commit, and whether esper_env had uncommitted changes."""

    root = Path(__file__).resolve().parents[1]

    def git(*cmd: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(root), *cmd], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    dirty = git("status", "--porcelain", "--", "esper_env")
    return {
        "git_commit": git("rev-parse", "HEAD"),
        "esper_env_uncommitted_changes": None if dirty is None else bool(dirty),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def run_episode(policy_name: str, config: str, fidelity: str, max_epochs: int, seed: int) -> dict[str, Any]:
    env = CompactActions(
        gym.make("Esper-SynthCIFAR-v1", fidelity=fidelity, config=config, max_epochs=max_epochs, device="cpu")
    )
    policy = None if policy_name == WAIT else get_policy(policy_name, epsilon=0.0, env=env)
    obs, info = env.reset(seed=seed)
    actions: list[dict[str, Any]] = []
    accuracies: list[float] = []
    invalid = 0
    t0 = time.perf_counter()
    done = False
    while not done:
        action = 0 if policy is None else int(np.argmax(policy.greedy_probs(obs, info["action_mask"])))
        if policy is not None and action != 0:  # log what it did, and the contribution behind a verdict
            a = env.actions[action]
            entry: dict[str, Any] = {"epoch": int(info["epoch"]), "action": env.describe(action)}
            if a.op in (Op.FOSSILIZE, Op.PRUNE):
                s = policy.view(obs).slots[a.slot]
                entry.update(stage=s.stage.name, blueprint=s.blueprint, contribution=s.contribution)
            actions.append(entry)
        obs, _, terminated, truncated, info = env.step(action)
        invalid += not info["action_valid"]
        accuracies.append(float(info["val_accuracy"]))
        done = terminated or truncated
    seconds = time.perf_counter() - t0
    env.close()
    return {
        "policy": policy_name,
        "config": config,
        "seed": seed,
        "final_val_accuracy": info["final_val_accuracy"],
        "best_val_accuracy": info["best_val_accuracy"],
        "test_accuracy": info["test_accuracy"],
        "seeds_created": info["seeds_created"],
        "seeds_fossilized": info["seeds_fossilized"],
        "seeds_pruned": info["seeds_pruned"],
        "param_overhead": (info["host_params"] + info["seed_params"]) / info["base_host_params"] - 1.0,
        "score": info["score"],
        "episode_return": info["episode_return"],
        "termination_reason": info["termination_reason"],
        "invalid_actions": invalid,
        "val_accuracy_curve": accuracies,
        "actions": actions,
        "seconds": seconds,
    }


SUMMARY_KEYS = ("final_val_accuracy", "test_accuracy", "score", "seeds_created", "seeds_fossilized", "seeds_pruned",
                "param_overhead")  # fmt: skip


def summarise(episodes: list[dict[str, Any]], policies: list[str], configs: list[str]) -> list[dict]:
    """Per (config, policy): means and 95% half-widths, and the paired difference to WAIT."""
    rows = []
    for config in configs:
        here = [e for e in episodes if e["config"] == config]
        wait = {e["seed"]: e["final_val_accuracy"] for e in here if e["policy"] == WAIT}
        for policy in policies:
            eps = [e for e in here if e["policy"] == policy]
            row: dict[str, Any] = {"config": config, "policy": policy, "episodes": len(eps)}
            for key in SUMMARY_KEYS:
                row[key], row[key + "_ci95"] = mean_ci([float(e[key]) for e in eps])
            if policy != WAIT:
                diffs = [e["final_val_accuracy"] - wait[e["seed"]] for e in eps]
                row["delta_vs_wait"], row["delta_vs_wait_ci95"] = mean_ci(diffs)
                row["wins_vs_wait"] = sum(d > 0 for d in diffs)
                row["losses_vs_wait"] = sum(d < 0 for d in diffs)
            rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """One row per (config, policy): mean ± 95% half-width over seeds."""

    def cell(row: dict[str, Any], key: str, pct: bool = True) -> str:
        m, h = row[key], row[key + "_ci95"]
        return f"{m:.1%} ± {h:.1%}" if pct else f"{m:.1f} ± {h:.1f}"

    lines = [
        (
            "| config | policy | final val acc | paired delta vs WAIT (wins/losses) | test acc | score "
            "| seeds created | fossilized | pruned | param overhead |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        delta = "-"
        if r["policy"] != WAIT:
            delta = f"{r['delta_vs_wait']:+.1%} ± {r['delta_vs_wait_ci95']:.1%}"
            delta += f" ({r['wins_vs_wait']}/{r['losses_vs_wait']})"
        counts = [cell(r, k, pct=False) for k in ("seeds_created", "seeds_fossilized", "seeds_pruned")]
        cells = [r["config"], r["policy"], cell(r, "final_val_accuracy"), delta, cell(r, "test_accuracy"),
                 cell(r, "score"), *counts, cell(r, "param_overhead")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--seeds", type=int, default=5, help="episodes per policy and config (seeds 0..N-1)")
    parser.add_argument("--fidelity", default="tiny", choices=FIDELITIES, help="fidelity preset")
    parser.add_argument("--config", nargs="+", default=["baseline", "impaired"], choices=ENVIRONMENT_CONFIGS,
                        metavar="PRESET", help="environment presets, one of: %(choices)s")  # fmt: skip
    parser.add_argument("--max-epochs", type=int, default=25, help="epoch budget of an episode")
    parser.add_argument(
        "--policies", nargs="+", default=[DEFAULT_HEURISTIC, "baseline"], help="policy ids compared with WAIT"
    )
    add_results_argument(parser, Path(__file__).parent)
    args = parser.parse_args()
    if args.seeds < 1 or args.max_epochs < 1:
        parser.error("--seeds and --max-epochs must be positive")
    for name in args.policies:
        get_policy(name)  # a bad name fails here, before any training
    policies = [WAIT, *[p for p in args.policies if p != WAIT]]
    episodes = []
    for config in args.config:
        for seed in range(args.seeds):
            for policy in policies:
                e = run_episode(policy, config, args.fidelity, args.max_epochs, seed)
                episodes.append(e)
                acts = " ".join(f"{a['action'].split('(')[0]}@{a['epoch']}" for a in e["actions"])
                print(f"{config:<9} seed {seed} {policy:<12} final {e['final_val_accuracy']:.3f} "
                      f"({e['seconds']:.0f} s) {acts}", flush=True)  # fmt: skip
    rows = summarise(episodes, policies, args.config)
    table = markdown(rows)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {
        "env": "Esper-SynthCIFAR-v1",
        "seeds": list(range(args.seeds)),
        "fidelity": args.fidelity,
        "configs": args.config,
        "max_epochs": args.max_epochs,
        "policies": policies,
        "action_selection": "greedy (argmax of the greedy distribution), epsilon 0",
        **provenance(),
    }
    result = {"settings": settings, "summary": rows, "table": table, "episodes": episodes}
    (args.out / "heuristic_vs_wait.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
