"""The health checks as a table (:data:`CHECKS`: name, tier, measure, threshold), and their runner.

Each measure takes the :class:`CheckContext` (the data, its clustering and its cells, computed
once) and the tier's threshold and returns a :class:`Finding`: the figure, a detail line and the
cells (or ops) that more episodes should target. :func:`run_health_checks` runs the table in
order; see :mod:`esper_agents.generation.health` for the definitions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from esper_agents.generation.health.clusters import (
    StateClusters,
    cluster_states,
    mean_cluster_entropy,
    single_action_fraction,
    summarize_clusters,
)
from esper_agents.generation.health.config import DEFAULT_CONFIG, HealthConfig
from esper_agents.generation.health.inputs import Cell, HealthInput
from esper_agents.generation.health.results import CheckResult, HealthReport, format_percent


@dataclass(frozen=True)
class CheckContext:
    """What every check reads: the data, its state clusters and each transition's cell."""

    data: HealthInput
    config: HealthConfig
    labels: np.ndarray  #: [N] state cluster of each transition
    k: int  #: number of clusters
    clusters: StateClusters  #: summarised over ops
    ops: np.ndarray  #: [N] op index into op_names
    op_names: list[str]
    cells: list[Cell]  #: distinct (policy, config) cells, sorted
    episode_cell: np.ndarray  #: [E] cell index of each episode
    cell_of: np.ndarray  #: [N] cell index of each transition

    @classmethod
    def build(cls, data: HealthInput, n_clusters: int | None, config: HealthConfig) -> CheckContext:
        ops = data.ops
        op_names = data.op_names
        labels, k = cluster_states(data.observations, n_clusters, config)
        clusters = summarize_clusters(labels, ops, k, len(op_names), config)
        cells, episode_cell = data.cell_index()
        return cls(data, config, labels, k, clusters, ops, op_names, cells, episode_cell,
                   episode_cell[data.episode_index])  # fmt: skip

    @property
    def n_ops(self) -> int:
        return len(self.op_names)

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    def cell_mean(self, values: np.ndarray) -> np.ndarray:
        """[n_cells] mean of a per-transition value over each cell's transitions."""
        return np.bincount(self.cell_of, weights=values, minlength=self.n_cells) / np.maximum(
            np.bincount(self.cell_of, minlength=self.n_cells), 1
        )


class Finding(NamedTuple):
    """What a measure returns: the figure, a detail line, and what to generate more of (worst first)."""

    figure: float
    detail: str
    cells: Sequence[Any] = ()


def _group_mean_var(
    values: np.ndarray, groups: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean and population variance of ``values`` per group (two passes, for precision)."""
    count = np.bincount(groups, minlength=n)
    mean = np.bincount(groups, weights=values, minlength=n) / np.maximum(count, 1)
    var = np.bincount(groups, weights=(values - mean[groups]) ** 2, minlength=n) / np.maximum(count, 1)
    return count, mean, var


def _sorted_cells(values: dict[Cell, float], fails: Any, reverse: bool) -> list[Cell]:
    bad = [c for c, v in values.items() if fails(v)]
    return sorted(bad, key=lambda c: (-values[c] if reverse else values[c], c))


def _spread(std: float, abs_mean: float) -> float:
    if abs_mean == 0.0:
        return math.inf if std > 0 else 0.0
    return std / abs_mean


# ---------------------------------------------------------------------------------------------
# Measures


def single_action_clusters(ctx: CheckContext, threshold: float) -> Finding:
    cl, cfg, data = ctx.clusters, ctx.config, ctx.data
    frac = single_action_fraction(cl)
    share_single = ctx.cell_mean(cl.single_action[ctx.labels])
    by_index = summarize_clusters(ctx.labels, data.actions, ctx.k, len(data.action_names), cfg)
    return Finding(
        frac,
        f"{int(cl.single_action.sum())} of {int(cl.occupied.sum())} occupied clusters (>= {cfg.min_cluster_states} "
        f"states, of {ctx.k}) have one op on >= {format_percent(cfg.single_action_share)} of their transitions "
        f"(by compact action index: {format_percent(single_action_fraction(by_index))})",
        _sorted_cells(dict(zip(ctx.cells, share_single.tolist())), lambda v: v > threshold, True),
    )  # fmt: skip


def min_op_share(ctx: CheckContext, threshold: float) -> Finding:
    shares = np.bincount(ctx.ops, minlength=ctx.n_ops) / len(ctx.ops)
    share_text = ", ".join(f"{op} {format_percent(s)}" for op, s in zip(ctx.op_names, shares))
    low = [ctx.op_names[i] for i in np.argsort(shares, kind="stable") if shares[i] < threshold]
    return Finding(float(shares.min()), f"op shares (compact actions grouped by op): {share_text}", low)


def cluster_op_entropy(ctx: CheckContext, threshold: float) -> Finding:
    cl = ctx.clusters
    cell_entropy = ctx.cell_mean(cl.entropy[ctx.labels])
    return Finding(
        mean_cluster_entropy(cl),
        f"size-weighted mean over {int(cl.occupied.sum())} occupied clusters of op entropy / log({ctx.n_ops})",
        _sorted_cells(dict(zip(ctx.cells, cell_entropy.tolist())), lambda v: v < threshold, False),
    )  # fmt: skip


def state_cluster_coverage(ctx: CheckContext, threshold: float) -> Finding:
    cl, k = ctx.clusters, ctx.k
    sparse = ~cl.occupied[ctx.labels]
    sparse_count = np.bincount(ctx.cell_of[sparse], minlength=ctx.n_cells)
    sparse_cells = [ctx.cells[i] for i in np.argsort(-sparse_count, kind="stable") if sparse_count[i] > 0]
    n_empty = int(k - cl.occupied.sum())
    detail = (
        f"{n_empty} of {k} clusters hold < {ctx.config.min_cluster_states} states "
        f"({int((cl.sizes == 0).sum())} hold none)"
    )
    return Finding(float(cl.occupied.sum() / k), detail, sparse_cells)


def policy_diversity(ctx: CheckContext, threshold: float) -> Finding:
    data = ctx.data
    policies = sorted(set(data.episode_policy.tolist()))
    cells_text = f"{ctx.n_cells} (policy, config) cells present"
    if data.expected_cells:
        cells_text += f" of {data.expected_cells} expected"
    return Finding(float(len(policies)), f"policies: {', '.join(policies)}; {cells_text}")


def return_spread(ctx: CheckContext, threshold: float) -> Finding:
    returns = ctx.data.episode_returns
    count, mean, var = _group_mean_var(returns, ctx.episode_cell, ctx.n_cells)
    cell_spread = {
        c: _spread(math.sqrt(var[i]), abs(mean[i])) for i, c in enumerate(ctx.cells) if count[i] >= 2
    }
    return Finding(
        _spread(float(returns.std()), abs(float(returns.mean()))),
        f"episode returns: mean {returns.mean():.4g}, std {returns.std():.4g} over {len(returns)} episodes",
        _sorted_cells(cell_spread, lambda v: v < threshold, False),
    )


def late_state_coverage(ctx: CheckContext, threshold: float) -> Finding:
    data, labels, k = ctx.data, ctx.labels, ctx.k
    early = data.timestep * 3 < data.max_epochs
    late = data.timestep * 3 >= 2 * data.max_epochs
    n_early, n_late = np.unique(labels[early]).size, np.unique(labels[late]).size

    def clusters_per_cell(mask: np.ndarray) -> np.ndarray:
        pairs = np.unique(ctx.cell_of[mask] * k + labels[mask])
        return np.bincount(pairs // k, minlength=ctx.n_cells)

    early_per_cell, late_per_cell = clusters_per_cell(early), clusters_per_cell(late)
    cell_ratio = {
        c: late_per_cell[i] / early_per_cell[i] for i, c in enumerate(ctx.cells) if early_per_cell[i]
    }
    return Finding(
        n_late / n_early if n_early else 0.0,
        f"late states (timestep >= 2/3 of {data.max_epochs}) visit {n_late} clusters, early states "
        f"(< 1/3) visit {n_early}; {int(late.sum())} late and {int(early.sum())} early transitions",
        _sorted_cells(cell_ratio, lambda v: v < threshold, False),
    )


def reward_variance(ctx: CheckContext, threshold: float) -> Finding:
    rewards = ctx.data.rewards
    var = float(rewards.var())
    count, _, reward_var = _group_mean_var(rewards, ctx.cell_of, ctx.n_cells)
    cell_var = {c: float(reward_var[i]) for i, c in enumerate(ctx.cells) if count[i] >= 2}
    return Finding(
        var,
        f"per-step rewards: mean {rewards.mean():.4g}, variance {var:.4g} over {len(rewards)} transitions",
        _sorted_cells(cell_var, lambda v: v < threshold, False),
    )


def episode_length_variety(ctx: CheckContext, threshold: float) -> Finding:
    data = ctx.data
    lengths = data.episode_lengths
    distinct = np.unique(lengths)
    short = int((lengths < data.max_epochs).sum())
    detail = (
        f"all {len(lengths)} episodes have length {int(distinct[0])}"
        if len(distinct) == 1
        else f"{len(distinct)} distinct lengths in {int(lengths.min())}..{int(lengths.max())}; "
        f"{short} of {len(lengths)} episodes end before max_epochs={data.max_epochs}"
    )
    return Finding(float(len(distinct)), detail)


# ---------------------------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Check:
    """One row of :data:`CHECKS`: a measure at a tier, against a :class:`HealthConfig` threshold."""

    name: str
    tier: str  #: "error" (blocks generation) or "warning"
    measure: Callable[[CheckContext, float], Finding]
    threshold: str  #: the HealthConfig field holding this tier's threshold
    comparison: str = ">="  #: the figure passes when ``figure <comparison> threshold``

    def run(self, ctx: CheckContext) -> CheckResult:
        threshold = float(getattr(ctx.config, self.threshold))
        found = self.measure(ctx, threshold)
        passed = found.figure <= threshold if self.comparison == "<=" else found.figure >= threshold
        return CheckResult(self.name, self.tier, found.figure, threshold, passed, found.detail, list(found.cells),
                           self.comparison)  # fmt: skip


#: Every check, in the original design's order (the order of the report).
CHECKS: tuple[Check, ...] = (
    Check("single_action_clusters", "error", single_action_clusters, "single_action_clusters_max", "<="),
    Check("min_op_share", "error", min_op_share, "min_op_share_error"),
    Check("cluster_op_entropy", "error", cluster_op_entropy, "entropy_error"),
    Check("state_cluster_coverage", "error", state_cluster_coverage, "coverage_error"),
    Check("cluster_op_entropy", "warning", cluster_op_entropy, "entropy_warning"),
    Check("policy_diversity", "warning", policy_diversity, "min_policies"),
    Check("return_spread", "warning", return_spread, "return_spread_min"),
    Check("min_op_share", "warning", min_op_share, "min_op_share_warning"),
    Check("late_state_coverage", "warning", late_state_coverage, "late_coverage_min"),
    Check("state_cluster_coverage", "warning", state_cluster_coverage, "coverage_warning"),
    Check("reward_variance", "warning", reward_variance, "reward_variance_min"),
    Check("episode_length_variety", "warning", episode_length_variety, "min_episode_lengths"),
)


def run_health_checks(
    data: HealthInput, *, n_clusters: int | None = None, config: HealthConfig = DEFAULT_CONFIG
) -> HealthReport:
    """Run every check of :data:`CHECKS` on ``data``; see :mod:`esper_agents.generation.health`."""
    start = time.perf_counter()
    ctx = CheckContext.build(data, n_clusters, config)
    return HealthReport(
        checks=[check.run(ctx) for check in CHECKS],
        n_transitions=data.n_transitions,
        n_episodes=data.n_episodes,
        clusters=ctx.clusters,
        seconds=time.perf_counter() - start,
    )
