"""Health report plots: the op mix, the state clusters and the episode returns (matplotlib, Agg)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from esper_agents.generation.health.clusters import StateClusters
from esper_agents.generation.health.config import HealthConfig
from esper_agents.generation.health.inputs import HealthInput


def _figure(width: float, height: float) -> Any:
    # Figure + Agg canvas directly: no pyplot state, no backend switching in the caller's process.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _op_colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i) for i in range(n)]


def plot_op_mix(data: HealthInput, path: Path) -> Path:
    ops, names = data.ops, data.op_names
    policy_of = data.episode_policy[data.episode_index]
    groups = ["all"] + sorted(set(data.episode_policy.tolist()))
    shares = []
    for g in groups:
        sel = ops if g == "all" else ops[policy_of == g]
        shares.append(np.bincount(sel, minlength=len(names)) / max(len(sel), 1))
    shares_arr = np.array(shares)
    fig = _figure(max(6.0, 0.6 * len(groups) + 3), 4.5)
    ax = fig.add_subplot()
    bottom = np.zeros(len(groups))
    for j, (name, color) in enumerate(zip(names, _op_colors(len(names)))):
        ax.bar(range(len(groups)), shares_arr[:, j], bottom=bottom, label=name, color=color)
        bottom += shares_arr[:, j]
    ax.set_xticks(range(len(groups)), groups, rotation=45, ha="right")
    ax.set_ylabel("share of transitions")
    ax.set_ylim(0, 1)
    ax.set_title("Op mix, overall and per behavior policy")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_clusters(cl: StateClusters, path: Path, config: HealthConfig) -> Path:
    order = np.argsort(-cl.sizes, kind="stable")
    sizes = cl.sizes[order]
    occupied_color = np.where(cl.occupied[order], "tab:blue", "lightgray")
    colors = np.where(cl.single_action[order], "tab:red", occupied_color)
    fig = _figure(8.0, 4.5)
    ax = fig.add_subplot()
    ax.bar(range(cl.n_clusters), np.maximum(sizes, 0.5), color=colors.tolist(), width=1.0)
    ax.axhline(config.min_cluster_states, color="black", linestyle="--", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("state cluster (largest first)")
    ax.set_ylabel("transitions")
    n_occ, n_single = int(cl.occupied.sum()), int(cl.single_action.sum())
    ax.set_title(f"State clusters: {n_occ}/{cl.n_clusters} occupied, {n_single} single-action (red)")
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(color="tab:blue", label="mixed ops"),
            Patch(color="tab:red", label="single-action"),
            Patch(color="lightgray", label=f"< {config.min_cluster_states} states (empty)"),
        ],
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_returns(data: HealthInput, path: Path) -> Path:
    """One histogram per behavior policy (small multiples on shared bins), so 11 policies stay legible."""
    returns = data.episode_returns
    lo, hi = float(returns.min()), float(returns.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 21)
    policies = sorted(set(data.episode_policy.tolist()))
    cols = min(4, len(policies))
    rows = math.ceil(len(policies) / cols)
    fig = _figure(3.0 * cols + 1, 2.2 * rows + 0.8)
    axes = fig.subplots(rows, cols, sharex=True, squeeze=False)
    for ax, policy in zip(axes.flat, policies):
        mine = returns[data.episode_policy == policy]
        ax.hist(mine, bins=bins, color="tab:blue")
        ax.axvline(float(mine.mean()), color="black", linewidth=0.8)
        ax.set_title(f"{policy} (n={len(mine)})", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(policies) :]:
        ax.set_visible(False)
    fig.suptitle("Episode return per behavior policy (line: mean)")
    fig.supxlabel("episode return", fontsize=9)
    fig.supylabel("episodes", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return path
