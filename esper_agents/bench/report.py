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

A trained agent with several training runs (``Suite.train_seeds``) is summarised over all its
runs' episodes: each evaluation episode's score is first averaged over the runs (they share the
episodes' seeds and instances), and the interval is bootstrapped over the episodes; the row also
gives each run's mean score and their range (``train_seed_scores``, the table's ``across training
seeds`` column). ``vs heuristic`` is the paired difference of those per-episode scores with the
best heuristic's on the same episodes (the registry entry's heuristic where the run has it, else
the run's best-scoring ``heuristic:`` row), mean and 95% bootstrap interval.

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

from esper_agents.bench.suites import HEURISTIC_AGENT, WAIT_AGENT, Suite, agent_family, parse_run
from esper_agents.common.stats import bootstrap_ci

__all__ = ["CSV_COLUMNS", "anchors", "normalized", "summarize_agent", "write_report"]

CSV_COLUMNS: tuple[str, ...] = (
    "agent", "family", "episodes", "final_val_accuracy", "final_val_accuracy_lo", "final_val_accuracy_hi",
    "test_accuracy", "test_accuracy_lo", "test_accuracy_hi", "score", "score_lo", "score_hi",
    "normalized_score", "normalized_score_lo", "normalized_score_hi", "vs_heuristic", "vs_heuristic_lo",
    "vs_heuristic_hi", "train_runs", "train_seed_score_min", "train_seed_score_max", "param_overhead", "seeds_fossilized",
    "seeds_pruned", "illegal_actions", "train_seconds", "eval_seconds", "wall_seconds",
)  # fmt: skip


def per_episode(rows: Sequence[Mapping[str, Any]], key: str) -> dict[int, float]:
    """``key`` of each evaluation episode (by seed), averaged over the training runs that played it."""
    by_seed: dict[int, list[float]] = {}
    for r in rows:
        by_seed.setdefault(int(r["seed"]), []).append(float(r[key]))
    return {seed: float(np.mean(v)) for seed, v in sorted(by_seed.items())}


def summarize_agent(
    agent: str, rows: Sequence[Mapping[str, Any]], train_seconds: float | None
) -> dict[str, Any]:
    """One agent's summary over its evaluation episodes, of one or several training runs (see
    the module docstring)."""
    if not rows:
        raise ValueError(f"agent {agent!r} has no evaluation episodes")
    eval_seconds = float(sum(r["seconds"] for r in rows))
    by_run: dict[int, list[float]] = {}
    for r in rows:
        by_run.setdefault(int(r.get("train_index", 0)), []).append(float(r["score"]))
    run_scores = [float(np.mean(by_run[i])) for i in sorted(by_run)]
    return {
        "agent": agent,
        "family": agent_family(agent),
        "episodes": len(per_episode(rows, "score")),
        "seeds": list(per_episode(rows, "score")),
        "train_runs": len(run_scores),
        "train_seed_scores": run_scores,
        **{
            k: bootstrap_ci(list(per_episode(rows, k).values()))
            for k in ("final_val_accuracy", "test_accuracy", "score")
        },
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
    """The always-WAIT and heuristic scores the normalised score is anchored on, their source, and
    the heuristic agent the paired ``vs heuristic`` column compares with: the reference registry's
    entry for the suite's env; this run's own WAIT and best-heuristic rows where that entry was
    measured on other held-out instances than the run's (``--eval-episodes``, the ``optimizers``
    suites' 200) and the run has both; this run's WAIT and default-heuristic rows without an entry."""
    heuristics = [a for a in summaries if a.startswith("heuristic:")]
    best_row = max(heuristics, key=lambda a: summaries[a]["score"]["mean"], default=HEURISTIC_AGENT)
    env = suite.eval_settings
    try:
        ref = env.reference_scores()
        where = ref.measured_on()
        source = f"reference registry ({ref.key}" + ("" if where is None else f", measured on {where}") + ")"
        best = f"heuristic:{ref.heuristic_policy}"
        measured = None if ref.instance_indices is None else list(ref.instance_indices)
        if measured is not None and measured != suite.eval_instances and {WAIT_AGENT, best} <= set(summaries):
            # the entry's instances are not this run's: anchor on the run's own rows of its agents
            return {"wait": summaries[WAIT_AGENT]["score"]["mean"], "heuristic": summaries[best]["score"]["mean"],
                    "source": f"this run's {WAIT_AGENT} and {best} rows, on its {len(suite.eval_instances or ())} "
                    f"held-out instances (the registry entry {ref.key} was measured on {len(measured)})",
                    "heuristic_agent": best}  # fmt: skip
        return {"wait": ref.wait, "heuristic": ref.heuristic, "source": source,
                "heuristic_agent": best if best in summaries else best_row}  # fmt: skip
    except LookupError:
        pass
    if WAIT_AGENT in summaries and HEURISTIC_AGENT in summaries:
        return {
            "wait": summaries[WAIT_AGENT]["score"]["mean"],
            "heuristic": summaries[HEURISTIC_AGENT]["score"]["mean"],
            "source": f"this run's {WAIT_AGENT} and {HEURISTIC_AGENT} rows",
            "heuristic_agent": best_row,
        }
    return {"wait": None, "heuristic": None, "source": "none (no registry entry and no WAIT/heuristic rows)",
            "heuristic_agent": best_row}  # fmt: skip


def paired_difference(
    rows: Sequence[Mapping[str, Any]], reference: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """Mean and 95% bootstrap interval of the per-episode score difference ``rows`` minus
    ``reference`` over the episodes both played (``None``: none in common)."""
    mine, theirs = per_episode(rows, "score"), per_episode(reference, "score")
    common = sorted(mine.keys() & theirs.keys())
    if not common:
        return None
    return bootstrap_ci([mine[s] - theirs[s] for s in common])


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


def _spread(scores: Sequence[float]) -> str:
    """Each training run's mean score and their range (``-`` for a single run)."""
    if len(scores) < 2:
        return "-"
    each = ", ".join(f"{100 * v:.1f}" for v in scores)
    return f"{100 * (max(scores) - min(scores)):.1f} ({each})"


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
            f"| vs {anchor['heuristic_agent']} [95% CI] | across training seeds "
            "| param overhead | fossilized | pruned | illegal | wall time |"
        ),
        "|---|---|---:|"
        + ("" if split is None else "---|")
        + "---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['agent']} | {s['family']} | {s['episodes']} | "
            + ("" if split is None else f"{split} | ")
            + f"{_ci(s['final_val_accuracy'])} "
            f"| {_ci(s['test_accuracy'])} | {_ci(s['score'], digits=1, unit='')} "
            f"| {_ci(s['normalized_score'], scale=1.0, digits=2, unit='')} "
            f"| {_ci(s['vs_heuristic'], digits=1, unit='')} | {_spread(s['train_seed_scores'])} "
            f"| {100 * s['param_overhead']:+.0f}% "
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
            f"{suite.online_steps} env steps on {suite.n_envs} env(s); {suite.train_seeds} training run(s) per "
            f"trained agent (across training seeds: the range of the runs' mean scores, then each). Score = "
            f"final val acc - {_rent(suite)} per doubling of the network. Normalized = (score - WAIT) / (heuristic - WAIT), anchors from "
            f"{anchor['source']}: {ref}. Per-episode means for overhead, seeds and illegal actions; "
            "wall time = training + evaluation (the pack's and the option data's generation not included)."
        ),
    ]
    where = suite.split_description()
    if where is not None:
        lines += ["", f"Instances: evaluation episode i pins instance i of the {where}."]
    return "\n".join(lines)


def _rent(suite: Suite) -> str:
    return "the instance's rent" if suite.settings.resolved_instances is not None else "3 points"


def _csv_row(s: Mapping[str, Any]) -> dict[str, Any]:
    scores = s["train_seed_scores"]
    row: dict[str, Any] = {
        "train_runs": s["train_runs"], "train_seed_score_min": min(scores), "train_seed_score_max": max(scores),
    } | {k: s.get(k) for k in ("agent", "family", "episodes", "param_overhead",
                                                  "seeds_fossilized", "seeds_pruned", "illegal_actions",
                                                  "train_seconds", "eval_seconds", "wall_seconds")}  # fmt: skip
    for key in ("final_val_accuracy", "test_accuracy", "score", "normalized_score", "vs_heuristic"):
        stat = s.get(key)
        row[key], row[f"{key}_lo"], row[f"{key}_hi"] = (
            (stat["mean"], *stat["ci95"]) if stat is not None else (None, None, None)
        )
    return row


def plot(suite: Suite, summaries: Sequence[Mapping[str, Any]], anchor: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"scripted": "tab:gray", "offline": "tab:blue", "fitted-q": "tab:purple", "online": "tab:orange"}
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
    command: str | None = None,
) -> dict[str, Any]:
    """Write ``out/results.{md,csv,json,png}`` for the agents with episodes (``episodes`` and
    ``train_seconds`` by training run: an agent's name, or :func:`~esper_agents.bench.suites.run_name`'s);
    return the JSON."""
    rows: dict[str, list[Mapping[str, Any]]] = {}
    seconds: dict[str, list[float | None]] = {}
    for run, run_rows in episodes.items():
        if run_rows:
            agent = parse_run(run)[0]
            rows.setdefault(agent, []).extend(run_rows)
            seconds.setdefault(agent, []).append(train_seconds.get(run))
    summaries = {
        a: summarize_agent(a, r, None if None in seconds[a] else float(sum(seconds[a])))  # type: ignore[arg-type]
        for a, r in rows.items()
    }
    anchor = anchors(suite, summaries)
    ordered = [summaries[a] for a in suite.agents if a in summaries]
    reference = rows.get(anchor["heuristic_agent"])
    for s in ordered:
        s["normalized_score"] = normalized(s["score"], anchor)
        s["vs_heuristic"] = None if reference is None else paired_difference(rows[s["agent"]], reference)
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
    from esper_agents.generation.provenance import result_header

    where = command or f"esper_agents.bench.run_bench(get_suite({suite.name!r}), ...)"
    header = result_header(where, suite.settings.env_id, 1)
    report = {"provenance": header, "suite": suite.to_json(), "anchors": anchor, "agents": ordered, "table": table,
              "episodes": {run: list(run_rows) for run, run_rows in episodes.items()}}  # fmt: skip
    (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    if ordered:
        plot(suite, ordered, anchor, out / "results.png")
    return report
