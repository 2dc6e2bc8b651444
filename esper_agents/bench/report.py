"""The benchmark's report: one row per agent, as markdown, CSV, JSON and a PNG plot.

Per agent, over its evaluation episodes: mean final validation and test accuracy and mean
benchmark score, each with a 95% percentile-bootstrap interval
(:func:`~esper_agents.common.stats.bootstrap_ci`); the normalised score
``(score - always-WAIT) / (heuristic - always-WAIT)``; the parameter overhead (final network size
over the host's, minus 1); seeds fossilized and pruned and illegal actions per episode; wall time
(training plus evaluation).

The normalisation's anchors are the reference registry's entry for the suite's env, preset,
fidelity and episode length (:func:`esper_env.reference_scores`) where there is one, else the
suite's own always-WAIT and ``heuristic:capacity`` rows; the report says which. Where the
heuristic does not beat WAIT (the "test" fidelity sits at chance) the normalised score is
undefined and left empty.

On a suite with held-out instances (``Suite.eval_split``: the micro suite) every row names the
split it was scored on (the table's and the CSV's ``eval split`` column), the footer names both
splits, and the anchors say which instances the registry entry was measured on.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from esper_agents.bench.suites import HEURISTIC_AGENT, WAIT_AGENT, Suite, agent_family
from esper_agents.common.stats import bootstrap_ci

__all__ = ["CSV_COLUMNS", "anchors", "normalized", "summarize_agent", "write_report"]

CSV_COLUMNS: tuple[str, ...] = (
    "agent", "family", "episodes", "final_val_accuracy", "final_val_accuracy_lo", "final_val_accuracy_hi",
    "test_accuracy", "test_accuracy_lo", "test_accuracy_hi", "score", "score_lo", "score_hi",
    "normalized_score", "normalized_score_lo", "normalized_score_hi", "param_overhead", "seeds_fossilized",
    "seeds_pruned", "illegal_actions", "train_seconds", "eval_seconds", "wall_seconds",
)  # fmt: skip


def summarize_agent(
    agent: str, rows: Sequence[Mapping[str, Any]], train_seconds: float | None
) -> dict[str, Any]:
    """One agent's summary over its evaluation episodes (see the module docstring)."""
    if not rows:
        raise ValueError(f"agent {agent!r} has no evaluation episodes")
    eval_seconds = float(sum(r["seconds"] for r in rows))
    return {
        "agent": agent,
        "family": agent_family(agent),
        "episodes": len(rows),
        "seeds": [int(r["seed"]) for r in rows],
        **{k: bootstrap_ci([r[k] for r in rows]) for k in ("final_val_accuracy", "test_accuracy", "score")},
        "param_overhead": float(np.mean([r["size_ratio"] for r in rows])) - 1.0,
        **{
            k: float(np.mean([r[k] for r in rows]))
            for k in ("seeds_created", "seeds_fossilized", "seeds_pruned")
        },
        "illegal_actions": float(np.mean([r["illegal"] for r in rows])),
        "return": float(np.mean([r["return"] for r in rows])),
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "wall_seconds": None if train_seconds is None else train_seconds + eval_seconds,
    }


def anchors(suite: Suite, summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The always-WAIT and heuristic scores the normalised score is anchored on, and their source."""
    from esper_env.references import reference_scores

    env = suite.eval_settings
    try:
        ref = reference_scores(
            env.env_id, config=env.config, fidelity=env.resolved_fidelity, max_epochs=env.max_epochs
        )
        where = ref.measured_on()
        source = f"reference registry ({ref.key}" + ("" if where is None else f", measured on {where}") + ")"
        return {"wait": ref.wait, "heuristic": ref.heuristic, "source": source}
    except LookupError:
        pass
    if WAIT_AGENT in summaries and HEURISTIC_AGENT in summaries:
        return {
            "wait": summaries[WAIT_AGENT]["score"]["mean"],
            "heuristic": summaries[HEURISTIC_AGENT]["score"]["mean"],
            "source": f"this run's {WAIT_AGENT} and {HEURISTIC_AGENT} rows",
        }
    return {"wait": None, "heuristic": None, "source": "none (no registry entry and no WAIT/heuristic rows)"}


def normalized(score: Mapping[str, Any], anchor: Mapping[str, Any]) -> dict[str, Any] | None:
    """The normalised mean and interval of a score summary, or None where undefined."""
    from esper_env.references import normalize

    if anchor["wait"] is None:
        return None
    try:
        values = [normalize(v, anchor["wait"], anchor["heuristic"]) for v in (score["mean"], *score["ci95"])]
    except ValueError:
        return None
    return {"mean": values[0], "ci95": values[1:]}


def _ci(s: Mapping[str, Any] | None, scale: float = 100.0, digits: int = 1, unit: str = "%") -> str:
    if s is None:
        return "n/a"
    lo, hi = s["ci95"]
    return f"{scale * s['mean']:.{digits}f}{unit} [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value / 60:.1f} min" if value >= 60 else f"{value:.0f} s"


def eval_split_label(suite: Suite) -> str | None:
    """The rows' ``eval split`` cell: ``held-out A-B`` (``None``: the suite has no held-out split)."""
    instances = suite.eval_instances
    return None if instances is None else f"held-out {instances[0]}-{instances[-1]}"


def markdown(suite: Suite, summaries: Sequence[Mapping[str, Any]], anchor: Mapping[str, Any]) -> str:
    env = suite.settings
    split = eval_split_label(suite)
    lines = [
        (
            "| agent | family | n | "
            + ("" if split is None else "eval split | ")
            + "final val acc [95% CI] | test acc [95% CI] | score [95% CI] | normalized [95% CI] "
            "| param overhead | fossilized | pruned | illegal | wall time |"
        ),
        "|---|---|---:|"
        + ("" if split is None else "---|")
        + "---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['agent']} | {s['family']} | {s['episodes']} | "
            + ("" if split is None else f"{split} | ")
            + f"{_ci(s['final_val_accuracy'])} "
            f"| {_ci(s['test_accuracy'])} | {_ci(s['score'], digits=1, unit='')} "
            f"| {_ci(s['normalized_score'], scale=1.0, digits=2, unit='')} | {100 * s['param_overhead']:+.0f}% "
            f"| {s['seeds_fossilized']:.1f} | {s['seeds_pruned']:.1f} | {s['illegal_actions']:.1f} "
            f"| {_seconds(s['wall_seconds'])} |"
        )
    ref = (
        "undefined"
        if anchor["wait"] is None
        else f"always-WAIT {100 * anchor['wait']:.1f}, heuristic {100 * anchor['heuristic']:.1f}"
    )
    lines += [
        "",
        (
            f"Suite `{suite.name}`: {env.env_id}, preset `{env.config}`, fidelity `{env.resolved_fidelity}`, "
            f"{env.max_epochs} epochs; evaluation seeds {suite.eval_seeds[0]}-{suite.eval_seeds[-1]} (greedy); "
            f"offline agents: {suite.offline_steps} gradient steps on one pack; online agents: "
            f"{suite.online_steps} env steps on {suite.n_envs} env(s). Score = final val acc - 3 points per "
            f"doubling of the network. Normalized = (score - WAIT) / (heuristic - WAIT), anchors from "
            f"{anchor['source']}: {ref}. Per-episode means for overhead, seeds and illegal actions; "
            "wall time = training + evaluation (the pack's generation not included)."
        ),
    ]
    where = suite.split_description()
    if where is not None:
        lines += ["", f"Instances: evaluation episode i pins instance i of the {where}."]
    return "\n".join(lines)


def _csv_row(s: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {k: s.get(k) for k in ("agent", "family", "episodes", "param_overhead",
                                                  "seeds_fossilized", "seeds_pruned", "illegal_actions",
                                                  "train_seconds", "eval_seconds", "wall_seconds")}  # fmt: skip
    for key in ("final_val_accuracy", "test_accuracy", "score", "normalized_score"):
        stat = s.get(key)
        row[key], row[f"{key}_lo"], row[f"{key}_hi"] = (
            (stat["mean"], *stat["ci95"]) if stat is not None else (None, None, None)
        )
    return row


def plot(suite: Suite, summaries: Sequence[Mapping[str, Any]], anchor: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"scripted": "tab:gray", "offline": "tab:blue", "online": "tab:orange"}
    names = [s["agent"] for s in summaries][::-1]
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(names) + 1.8), sharey=True)
    for ax, key, title in zip(
        axes, ("final_val_accuracy", "score"), ("final validation accuracy (%)", "benchmark score")
    ):
        for i, s in enumerate(summaries[::-1]):
            stat = s[key]
            lo, hi = stat["ci95"]
            ax.errorbar(100 * stat["mean"], i, xerr=[[100 * (stat["mean"] - lo)], [100 * (hi - stat["mean"])]],
                        fmt="o", color=colors[s["family"]], capsize=3)  # fmt: skip
        if key == "score" and anchor["wait"] is not None:
            ax.axvline(100 * anchor["wait"], color="k", ls=":", lw=1, label="always-WAIT reference")
            ax.axvline(
                100 * anchor["heuristic"], color="tab:green", ls="--", lw=1, label="heuristic reference"
            )
            ax.legend(fontsize=8, loc="lower right")
        ax.set(xlabel=title)
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(range(len(names)), names)
    for family, color in colors.items():
        axes[0].plot([], [], "o", color=color, label=family)
    axes[0].legend(fontsize=8, loc="lower right")
    where = "evaluation seeds" if suite.eval_split is None else "held-out instances"
    fig.suptitle(f"esper bench --suite {suite.name}: mean and 95% bootstrap CI over {suite.eval_episodes} "
                 f"{where} ({suite.settings.config}, {suite.settings.resolved_fidelity})", fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    suite: Suite,
    episodes: Mapping[str, Sequence[Mapping[str, Any]]],
    train_seconds: Mapping[str, float | None],
    out: Path,
) -> dict[str, Any]:
    """Write ``out/results.{md,csv,json,png}`` for the agents with episodes; return the JSON."""
    summaries = {a: summarize_agent(a, rows, train_seconds.get(a)) for a, rows in episodes.items() if rows}
    anchor = anchors(suite, summaries)
    ordered = [summaries[a] for a in suite.agents if a in summaries]
    for s in ordered:
        s["normalized_score"] = normalized(s["score"], anchor)
    split = eval_split_label(suite)
    if split is not None:  # the other suites' rows stay as they were
        for s in ordered:
            s["eval_split"] = split
            s["eval_instances"] = suite.eval_instances
    table = markdown(suite, ordered, anchor)
    (out / "results.md").write_text(table + "\n")
    columns = CSV_COLUMNS if split is None else (*CSV_COLUMNS[:3], "eval_split", *CSV_COLUMNS[3:])
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for s in ordered:
            row = _csv_row(s) | ({} if split is None else {"eval_split": split})
            writer.writerow({k: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else v)
                             for k, v in row.items()})  # fmt: skip
    report = {"suite": suite.to_json(), "anchors": anchor, "agents": ordered, "table": table,
              "episodes": {a: list(rows) for a, rows in episodes.items()}}  # fmt: skip
    (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    if ordered:
        plot(suite, ordered, anchor, out / "results.png")
    return report
