"""State clusters: deterministic k-means over standardised observations, and per-cluster op mixes.

See :mod:`esper_agents.generation.health` for the definitions (occupied, single-action, entropy).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from esper_agents.generation.health.config import DEFAULT_CONFIG, HealthConfig


@dataclass
class StateClusters:
    """The k-means clustering behind the state checks."""

    labels: np.ndarray  #: [N] cluster of each transition
    n_clusters: int
    sizes: np.ndarray  #: [k]
    op_counts: np.ndarray  #: [k, n_ops]
    occupied: np.ndarray  #: [k] bool, size >= min_cluster_states
    single_action: np.ndarray  #: [k] bool, occupied and one op >= single_action_share
    entropy: np.ndarray  #: [k] normalised op entropy


def standardize(observations: np.ndarray) -> np.ndarray:
    """Zero mean, unit std per feature; constant features become 0."""
    x = np.asarray(observations, dtype=np.float32)
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    mean = x.mean(axis=0, dtype=np.float64)
    std = x.std(axis=0, dtype=np.float64)
    std[std == 0] = 1.0
    return ((x - mean.astype(np.float32)) / std.astype(np.float32)).astype(np.float32, copy=False)


def cluster_states(
    observations: np.ndarray, n_clusters: int | None = None, config: HealthConfig = DEFAULT_CONFIG
) -> tuple[np.ndarray, int]:
    """Deterministic k-means labels of the standardised observations, and the cluster count."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    n = len(observations)
    k = config.n_clusters_for(n) if n_clusters is None else int(n_clusters)
    if not 1 <= k <= n:
        raise ValueError(f"n_clusters must be in 1..{n} (the number of transitions), got {n_clusters!r}")
    z = standardize(observations)
    fit = z
    if n > config.fit_sample:
        rng = np.random.default_rng(config.random_state)
        fit = z[np.sort(rng.choice(n, size=config.fit_sample, replace=False))]
    model = KMeans(n_clusters=k, n_init=1, max_iter=config.max_iter, random_state=config.random_state)
    # One thread: k-means' parallel reductions round differently with the thread count, and a
    # health figure must not depend on the machine (or on what set torch's threads before).
    with warnings.catch_warnings(), threadpool_limits(1):
        # Fewer distinct states than clusters is what the coverage check measures, not an error.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(fit)
        labels = model.labels_ if fit is z else model.predict(z)
    return labels.astype(np.int64), k


def normalized_entropy(counts: np.ndarray, n_ops: int) -> np.ndarray:
    """Row-wise Shannon entropy of ``counts`` divided by ``log(n_ops)`` (0 for empty rows)."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=-1, keepdims=True)
    p = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)
    return h / math.log(n_ops) if n_ops > 1 else np.zeros_like(h)


def summarize_clusters(
    labels: np.ndarray, ops: np.ndarray, n_clusters: int, n_ops: int, config: HealthConfig = DEFAULT_CONFIG
) -> StateClusters:
    """Per-cluster sizes, op counts, occupancy, single-action flags and entropies.

    Takes labels and ops separately so a subset of a larger clustering (one pack of a union) can
    be summarised on the same clusters.
    """
    op_counts = np.bincount(labels * n_ops + ops, minlength=n_clusters * n_ops).reshape(n_clusters, n_ops)
    sizes = op_counts.sum(axis=1)
    occupied = sizes >= config.min_cluster_states
    top = np.divide(op_counts.max(axis=1), sizes, out=np.zeros(n_clusters), where=sizes > 0)
    single = occupied & (top >= config.single_action_share)
    return StateClusters(
        labels=labels,
        n_clusters=n_clusters,
        sizes=sizes,
        op_counts=op_counts,
        occupied=occupied,
        single_action=single,
        entropy=normalized_entropy(op_counts, n_ops),
    )


def single_action_fraction(clusters: StateClusters) -> float:
    """Fraction of occupied clusters that are single-action (1.0 if none is occupied)."""
    n_occ = int(clusters.occupied.sum())
    return float(clusters.single_action.sum() / n_occ) if n_occ else 1.0


def mean_cluster_entropy(clusters: StateClusters) -> float:
    """Size-weighted mean normalised op entropy over occupied clusters (all clusters if none)."""
    mask = clusters.occupied if clusters.occupied.any() else clusters.sizes > 0
    return float(np.average(clusters.entropy[mask], weights=clusters.sizes[mask]))
