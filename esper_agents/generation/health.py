"""Tiered dataset health checks (seed 000, "Dataset Health Checks" and "State Coverage Check").

The dataset this fixes had 87% of its state clusters with a single action (13 of 103 clusters had
any counterfactual data): the deterministic heuristic (called Kasmina in the original design)
always does the same thing in the same state, so offline RL cannot learn when to act differently.
These checks measure that and the other failure modes seed 000 lists, on plain arrays
(:class:`HealthInput`), so they do not depend on how a pack is stored.

Checks, in seed 000's order. A check *fails* when its figure is on the wrong side of its
threshold; a failed ``error`` blocks generation, a failed ``warning`` is logged for review.

=======  ==========================  =====================================================  ======
tier     name                        figure                                                 passes
=======  ==========================  =====================================================  ======
error    single_action_clusters      fraction of occupied state clusters that are           <= 0.5
                                     single-action
error    min_op_share                smallest share of any op in all transitions            >= 0.02
error    cluster_op_entropy          mean normalised op entropy over state clusters         >= 0.3
error    state_cluster_coverage      1 - (clusters with < 5 states) / n_clusters            >= 0.3
warning  cluster_op_entropy          same figure as above                                   >= 0.5
warning  policy_diversity            number of distinct behavior policies                   >= 5
warning  return_spread               std / |mean| of episode returns                        >= 0.10
warning  min_op_share                same figure as above                                   >= 0.05
warning  late_state_coverage         clusters visited late / clusters visited early         >= 0.30
warning  state_cluster_coverage      same figure as above                                   >= 0.5
warning  reward_variance             variance of per-step rewards                           >= 1.0
warning  episode_length_variety      number of distinct episode lengths                     >= 2
=======  ==========================  =====================================================  ======

Definitions (the choices seed 000 leaves open):

* **Op.** The "action" of the action checks is the compact action's op (WAIT, GERMINATE, ADVANCE,
  SET_ALPHA_TARGET, PRUNE, FOSSILIZE: the prefix of its description), not its index. The compact
  set has ~55 indices (one per slot x blueprint x target...), so per-index shares would fail the
  2% rule on any dataset; the original analysis used the 4 classic actions, and the op is their
  analogue (CULL = PRUNE).
* **State clusters.** Observations are standardised per feature (zero mean, unit std over the
  data; constant features left at 0) and clustered by k-means (scikit-learn ``KMeans``, k-means++
  init, ``n_init=1``, ``random_state=0``) with ``n_clusters = min(100, N // 10)`` (at least 1)
  unless given. Above ``fit_sample`` (10,000) transitions the centroids are fit on a fixed random
  subsample (still ~100 states per centroid) and every transition is then assigned to its nearest
  centroid; this keeps a full check under ~1 s at 50k transitions and changes nothing below that
  size. Same input, same clusters.
* **Occupied cluster.** A cluster with at least 5 states; clusters with fewer count as empty
  (seed 000's coverage rule). Coverage = occupied / n_clusters.
* **Single-action cluster.** An occupied cluster in which one op accounts for >= 99% of its
  transitions. Below 100 transitions that means one op only; in larger clusters it tolerates
  under 1% of stray (typically exploratory) actions, too few to learn a counterfactual from.
  The figure is the fraction of occupied clusters that are single-action.
* **Op entropy per state cluster.** For each occupied cluster, the Shannon entropy of its op
  distribution divided by ``log(n_ops)``, where ``n_ops`` is the number of ops in the action set
  (6 for the compact actions), so 1 means all six ops equally often and 0 a single op; a 50/50
  WAIT/GERMINATE cluster scores 0.39. The figure is the mean over occupied clusters weighted by
  their sizes. It is the plug-in estimate, biased low in small clusters (at ~10 states per
  cluster, i.e. under 1,000 transitions, a uniform op mix scores ~0.85 rather than 1).
* **Late-episode coverage.** Early states have ``timestep < max_epochs / 3``, late ones
  ``timestep >= 2 * max_epochs / 3``. Figure: the number of distinct clusters that late states
  visit divided by the number that early states visit (0 when no episode gets late).
* **Return spread.** Population std of episode returns over the absolute mean (inf if the mean is 0
  and the std is not).
* **Reward variance.** Population variance of the per-step rewards as stored. Seed 000's
  threshold of 1.0 was set for rewards on the percent accuracy scale; Esper's accuracies are
  fractions, so shaped per-step rewards are ~100x smaller (variances ~0.1 on SynthCIFAR) and
  this warning fires on most data (``HealthConfig.reward_variance_min`` rescales it).

``CheckResult.cells`` names what to generate more of, for adaptive allocation: for the op-share
checks, the ops below the threshold; for the other data checks, the (policy, config) cells whose
own data fails the same figure (the share of their transitions in single-action clusters above
0.5, their clusters' mean entropy, their return spread, late coverage or reward variance); for the
coverage check, the cells whose states lie in the near-empty clusters (rare regions that more
of their episodes would fill). Worst first. Policy diversity and episode-length variety name none.

Checks run after each batch of episodes (the orchestrator calls :func:`run_health_checks` on the
data so far), after generation, and before training (``esper health --pack DIR``).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from esper_env.lifecycle import Op

#: The ops, in the order of :class:`esper_env.lifecycle.Op`.
OPS: tuple[str, ...] = tuple(op.name for op in Op)

Cell = tuple[str, str]


def op_of(action_name: str) -> str:
    """The op of a compact action description: ``"PRUNE(slot=1, ...)"`` -> ``"PRUNE"``."""
    op = action_name.split("(", 1)[0].strip()
    if op not in OPS:
        raise ValueError(f"action {action_name!r} does not start with an op; valid ops are: {list(OPS)}")
    return op


# ---------------------------------------------------------------------------------------------
# Input


@dataclass
class HealthInput:
    """A dataset as the health checks see it: one row per transition, one entry per episode.

    ``episode_index`` holds each transition's episode as a position in the per-episode arrays
    (0..E-1), and ``actions`` the compact action index into ``action_names``.
    """

    observations: np.ndarray  #: [N, D] float32
    actions: np.ndarray  #: [N] int, compact action index
    rewards: np.ndarray  #: [N] float, per-step reward as stored
    action_names: Sequence[str]  #: [n_actions] compact action descriptions
    episode_index: np.ndarray  #: [N] int in 0..E-1
    timestep: np.ndarray  #: [N] int, 0-based position in the episode
    episode_returns: np.ndarray  #: [E] float
    episode_lengths: np.ndarray  #: [E] int
    episode_policy: np.ndarray  #: [E] str, behavior policy id
    episode_config: np.ndarray  #: [E] str, environment config id
    max_epochs: int
    expected_cells: int | None = None  #: number of (policy, config) cells the generation spec asks for

    def __post_init__(self) -> None:
        self.observations = np.asarray(self.observations, dtype=np.float32)
        self.actions = np.asarray(self.actions, dtype=np.int64)
        self.rewards = np.asarray(self.rewards, dtype=np.float64)
        self.action_names = [str(a) for a in self.action_names]
        self.episode_index = np.asarray(self.episode_index, dtype=np.int64)
        self.timestep = np.asarray(self.timestep, dtype=np.int64)
        self.episode_returns = np.asarray(self.episode_returns, dtype=np.float64)
        self.episode_lengths = np.asarray(self.episode_lengths, dtype=np.int64)
        self.episode_policy = np.asarray(self.episode_policy, dtype=str)
        self.episode_config = np.asarray(self.episode_config, dtype=str)
        if self.observations.ndim != 2:
            raise ValueError(f"observations must be [N, D], got shape {self.observations.shape}")
        n = len(self.observations)
        if n == 0:
            raise ValueError("the dataset has no transitions")
        for name in ("actions", "rewards", "episode_index", "timestep"):
            shape = getattr(self, name).shape
            if shape != (n,):
                raise ValueError(f"{name} must have shape ({n},) like observations, got {shape}")
        e = len(self.episode_returns)
        for name in ("episode_lengths", "episode_policy", "episode_config"):
            shape = getattr(self, name).shape
            if shape != (e,):
                raise ValueError(f"{name} must have shape ({e},) like episode_returns, got {shape}")
        bad = self.actions[(self.actions < 0) | (self.actions >= len(self.action_names))]
        if bad.size:
            raise ValueError(f"action index {int(bad[0])} is outside 0..{len(self.action_names) - 1}")
        bad = self.episode_index[(self.episode_index < 0) | (self.episode_index >= e)]
        if bad.size:
            raise ValueError(f"episode_index {int(bad[0])} is outside 0..{e - 1}")
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs!r}")
        self._action_op = np.array([OPS.index(op_of(a)) for a in self.action_names], dtype=np.int64)

    @property
    def n_transitions(self) -> int:
        return len(self.observations)

    @property
    def n_episodes(self) -> int:
        return len(self.episode_returns)

    @property
    def op_names(self) -> list[str]:
        """The ops the action set contains, in Op order (the op axis of :attr:`ops`)."""
        return [op for op in OPS if OPS.index(op) in set(self._action_op.tolist())]

    @property
    def ops(self) -> np.ndarray:
        """[N] op of each transition, as an index into :attr:`op_names`."""
        present = sorted(set(self._action_op.tolist()))
        remap = np.full(len(OPS), -1, dtype=np.int64)
        remap[present] = np.arange(len(present))
        return remap[self._action_op[self.actions]]

    @property
    def episode_cells(self) -> list[Cell]:
        return list(zip(self.episode_policy.tolist(), self.episode_config.tolist()))

    def cell_index(self) -> tuple[list[Cell], np.ndarray]:
        """The distinct (policy, config) cells (sorted) and each episode's cell as an index."""
        cells = sorted(set(self.episode_cells))
        lookup = {c: i for i, c in enumerate(cells)}
        return cells, np.array([lookup[c] for c in self.episode_cells], dtype=np.int64)

    @classmethod
    def from_pack(
        cls, pack: Any, *, reward_mode: str | None = None, expected_cells: int | None = None
    ) -> HealthInput:
        """The transitions of a pack (a :class:`~esper_agents.generation.packs.Pack` or its path).

        Built by :func:`esper_agents.generation.exports.health_input` (the one pack-to-arrays
        adapter): each episode's ``T`` decision states ``observations[:T]``, actions, rewards (as
        logged, or relabeled to ``reward_mode``), in the pack's episode order; ``expected_cells``
        defaults to policies x configs of the pack's generation spec. Checksums are verified.
        """
        from esper_agents.generation.exports import health_input

        return health_input(pack, reward_mode=reward_mode, expected_cells=expected_cells)

    @classmethod
    def concatenate(cls, parts: Sequence[HealthInput]) -> HealthInput:
        """One input holding every part's transitions and episodes (episode indices shifted)."""
        if not parts:
            raise ValueError("nothing to concatenate")
        names = parts[0].action_names
        for p in parts[1:]:
            if p.action_names != names:
                raise ValueError("parts have different action sets; health checks need one action set")
            if p.observations.shape[1] != parts[0].observations.shape[1]:
                raise ValueError(
                    f"parts have different observation sizes: {p.observations.shape[1]} and "
                    f"{parts[0].observations.shape[1]}"
                )
        offsets = np.cumsum([0] + [p.n_episodes for p in parts[:-1]])
        expected = [p.expected_cells for p in parts]
        return cls(
            observations=np.concatenate([p.observations for p in parts]),
            actions=np.concatenate([p.actions for p in parts]),
            rewards=np.concatenate([p.rewards for p in parts]),
            action_names=names,
            episode_index=np.concatenate([p.episode_index + o for p, o in zip(parts, offsets)]),
            timestep=np.concatenate([p.timestep for p in parts]),
            episode_returns=np.concatenate([p.episode_returns for p in parts]),
            episode_lengths=np.concatenate([p.episode_lengths for p in parts]),
            episode_policy=np.concatenate([p.episode_policy for p in parts]),
            episode_config=np.concatenate([p.episode_config for p in parts]),
            max_epochs=max(p.max_epochs for p in parts),
            expected_cells=None if None in expected else max(expected),  # type: ignore[type-var]
        )


# ---------------------------------------------------------------------------------------------
# Configuration and results


@dataclass(frozen=True)
class HealthConfig:
    """Thresholds (seed 000's values) and clustering settings."""

    single_action_clusters_max: float = 0.5
    min_op_share_error: float = 0.02
    min_op_share_warning: float = 0.05
    entropy_error: float = 0.3
    entropy_warning: float = 0.5
    coverage_error: float = 0.3
    coverage_warning: float = 0.5
    min_policies: int = 5
    return_spread_min: float = 0.10
    late_coverage_min: float = 0.30
    reward_variance_min: float = 1.0
    min_episode_lengths: int = 2
    #: A cluster with fewer states counts as empty.
    min_cluster_states: int = 5
    #: A cluster is single-action when one op has at least this share of its transitions.
    single_action_share: float = 0.99
    max_clusters: int = 100
    states_per_cluster: int = 10
    #: Above this many transitions, centroids are fit on a fixed subsample of this size.
    fit_sample: int = 10_000
    max_iter: int = 100
    random_state: int = 0

    def n_clusters_for(self, n: int) -> int:
        return max(1, min(self.max_clusters, n // self.states_per_cluster))


@dataclass
class CheckResult:
    """One check at one tier. ``passed`` is ``figure <comparison> threshold``."""

    name: str
    tier: str  #: "error" or "warning"
    figure: float
    threshold: float
    passed: bool
    detail: str
    cells: list[Any] = field(default_factory=list)  #: (policy, config) cells or op names implicated
    comparison: str = ">="  #: how the figure must compare to the threshold to pass

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["figure"] = _json_number(self.figure)
        d["cells"] = [list(c) if isinstance(c, tuple) else c for c in self.cells]
        return d


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


@dataclass
class HealthReport:
    checks: list[CheckResult]
    n_transitions: int
    n_episodes: int
    clusters: StateClusters
    seconds: float

    @property
    def errors(self) -> list[CheckResult]:
        """Failed blocking checks."""
        return [c for c in self.checks if c.tier == "error" and not c.passed]

    @property
    def warnings(self) -> list[CheckResult]:
        """Failed warning checks."""
        return [c for c in self.checks if c.tier == "warning" and not c.passed]

    @property
    def passed(self) -> bool:
        """True when no blocking check failed (warnings allowed)."""
        return not self.errors

    def get(self, name: str, tier: str) -> CheckResult:
        for c in self.checks:
            if c.name == name and c.tier == tier:
                return c
        valid = [(c.name, c.tier) for c in self.checks]
        raise KeyError(f"no check {name!r} at tier {tier!r}; checks are {valid}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "n_transitions": self.n_transitions,
            "n_episodes": self.n_episodes,
            "n_clusters": self.clusters.n_clusters,
            "seconds": round(self.seconds, 3),
            "errors": [c.name for c in self.errors],
            "warnings": [c.name for c in self.warnings],
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_markdown(self) -> str:
        lines = [
            "| check | tier | figure | threshold | verdict |",
            "|---|---|---|---|---|",
        ]
        for c in self.checks:
            figure, threshold = format_number(c.figure), format_number(c.threshold)
            lines.append(f"| {c.name} | {c.tier} | {figure} | {c.comparison} {threshold} | {verdict(c)} |")
        return "\n".join(lines) + "\n"


def verdict(check: CheckResult) -> str:
    if check.passed:
        return "pass"
    return "FAIL" if check.tier == "error" else "warn"


def format_number(x: float) -> str:
    if isinstance(x, (int, np.integer)) or (math.isfinite(x) and float(x).is_integer() and abs(x) >= 1):
        return str(int(x))
    return f"{x:.4g}"


def _json_number(x: float) -> float | str | None:
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


# ---------------------------------------------------------------------------------------------
# Clustering


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
    observations: np.ndarray, n_clusters: int | None = None, config: HealthConfig = HealthConfig()
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
    labels: np.ndarray, ops: np.ndarray, n_clusters: int, n_ops: int, config: HealthConfig = HealthConfig()
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


# ---------------------------------------------------------------------------------------------
# Checks


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


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


def run_health_checks(
    data: HealthInput, *, n_clusters: int | None = None, config: HealthConfig = HealthConfig()
) -> HealthReport:
    """Run every seed 000 check on ``data``; see the module docstring for the definitions."""
    start = time.perf_counter()
    cfg = config
    ops = data.ops
    op_names = data.op_names
    n_ops = len(op_names)
    labels, k = cluster_states(data.observations, n_clusters, cfg)
    cl = summarize_clusters(labels, ops, k, n_ops, cfg)
    cells, episode_cell = data.cell_index()
    cell_of = episode_cell[data.episode_index]
    n_cells = len(cells)
    checks: list[CheckResult] = []

    # --- single-action clusters
    frac = single_action_fraction(cl)
    in_single = cl.single_action[labels]
    share_single = np.bincount(cell_of, weights=in_single, minlength=n_cells) / np.maximum(
        np.bincount(cell_of, minlength=n_cells), 1
    )
    by_index = summarize_clusters(labels, data.actions, k, len(data.action_names), cfg)
    single = CheckResult(
        "single_action_clusters", "error", frac, cfg.single_action_clusters_max, frac <= cfg.single_action_clusters_max,
        f"{int(cl.single_action.sum())} of {int(cl.occupied.sum())} occupied clusters (>= {cfg.min_cluster_states} "
        f"states, of {k}) have one op on >= {_pct(cfg.single_action_share)} of their transitions "
        f"(by compact action index: {_pct(single_action_fraction(by_index))})",
        _sorted_cells(dict(zip(cells, share_single.tolist())), lambda v: v > cfg.single_action_clusters_max, True),
        "<=",
    )  # fmt: skip
    checks.append(single)

    # --- op shares
    shares = np.bincount(ops, minlength=n_ops) / len(ops)
    min_share = float(shares.min())
    share_text = ", ".join(f"{op} {_pct(s)}" for op, s in zip(op_names, shares))

    def op_share_check(tier: str, threshold: float) -> CheckResult:
        low = [op_names[i] for i in np.argsort(shares, kind="stable") if shares[i] < threshold]
        return CheckResult(
            "min_op_share", tier, min_share, threshold, min_share >= threshold,
            f"op shares (compact actions grouped by op): {share_text}", low,
        )  # fmt: skip

    # --- entropy per state cluster
    ent = mean_cluster_entropy(cl)
    trans_entropy = cl.entropy[labels]
    cell_entropy = np.bincount(cell_of, weights=trans_entropy, minlength=n_cells) / np.maximum(
        np.bincount(cell_of, minlength=n_cells), 1
    )

    def entropy_check(tier: str, threshold: float) -> CheckResult:
        return CheckResult(
            "cluster_op_entropy", tier, ent, threshold, ent >= threshold,
            f"size-weighted mean over {int(cl.occupied.sum())} occupied clusters of op entropy / log({n_ops})",
            _sorted_cells(dict(zip(cells, cell_entropy.tolist())), lambda v: v < threshold, False),
        )  # fmt: skip

    # --- state cluster coverage
    coverage = float(cl.occupied.sum() / k)
    sparse = ~cl.occupied[labels]
    sparse_count = np.bincount(cell_of[sparse], minlength=n_cells)
    sparse_cells = [cells[i] for i in np.argsort(-sparse_count, kind="stable") if sparse_count[i] > 0]
    n_empty = int(k - cl.occupied.sum())
    coverage_detail = (
        f"{n_empty} of {k} clusters hold < {cfg.min_cluster_states} states "
        f"({int((cl.sizes == 0).sum())} hold none)"
    )

    def coverage_check(tier: str, threshold: float) -> CheckResult:
        return CheckResult(
            "state_cluster_coverage", tier, coverage, threshold, coverage >= threshold, coverage_detail,
            sparse_cells,
        )  # fmt: skip

    checks += [
        op_share_check("error", cfg.min_op_share_error),
        entropy_check("error", cfg.entropy_error),
        coverage_check("error", cfg.coverage_error),
        entropy_check("warning", cfg.entropy_warning),
    ]

    # --- behavior policy diversity
    policies = sorted(set(data.episode_policy.tolist()))
    cells_text = f"{n_cells} (policy, config) cells present"
    if data.expected_cells:
        cells_text += f" of {data.expected_cells} expected"
    checks.append(
        CheckResult(
            "policy_diversity",
            "warning",
            float(len(policies)),
            float(cfg.min_policies),
            len(policies) >= cfg.min_policies,
            f"policies: {', '.join(policies)}; {cells_text}",
        )  # fmt: skip
    )

    # --- return spread
    def spread_of(std: float, abs_mean: float) -> float:
        if abs_mean == 0.0:
            return math.inf if std > 0 else 0.0
        return std / abs_mean

    def spread(returns: np.ndarray) -> float:
        return spread_of(float(returns.std()), abs(float(returns.mean())))

    returns = data.episode_returns
    ret_spread = spread(returns)
    count, mean, var = _group_mean_var(returns, episode_cell, n_cells)
    cell_spread = {
        c: spread_of(math.sqrt(var[i]), abs(mean[i])) for i, c in enumerate(cells) if count[i] >= 2
    }
    checks.append(
        CheckResult(
            "return_spread",
            "warning",
            ret_spread,
            cfg.return_spread_min,
            ret_spread >= cfg.return_spread_min,
            f"episode returns: mean {returns.mean():.4g}, std {returns.std():.4g} over {len(returns)} episodes",
            _sorted_cells(cell_spread, lambda v: v < cfg.return_spread_min, False),
        )  # fmt: skip
    )
    checks.append(op_share_check("warning", cfg.min_op_share_warning))

    # --- late-episode state coverage
    early = data.timestep * 3 < data.max_epochs
    late = data.timestep * 3 >= 2 * data.max_epochs

    n_early, n_late = np.unique(labels[early]).size, np.unique(labels[late]).size
    ratio = n_late / n_early if n_early else 0.0

    def clusters_per_cell(mask: np.ndarray) -> np.ndarray:
        pairs = np.unique(cell_of[mask] * k + labels[mask])
        return np.bincount(pairs // k, minlength=n_cells)

    early_per_cell, late_per_cell = clusters_per_cell(early), clusters_per_cell(late)
    cell_ratio = {c: late_per_cell[i] / early_per_cell[i] for i, c in enumerate(cells) if early_per_cell[i]}
    checks.append(
        CheckResult(
            "late_state_coverage",
            "warning",
            ratio,
            cfg.late_coverage_min,
            ratio >= cfg.late_coverage_min,
            f"late states (timestep >= 2/3 of {data.max_epochs}) visit {n_late} clusters, early states "
            f"(< 1/3) visit {n_early}; {int(late.sum())} late and {int(early.sum())} early transitions",
            _sorted_cells(cell_ratio, lambda v: v < cfg.late_coverage_min, False),
        )  # fmt: skip
    )
    checks.append(coverage_check("warning", cfg.coverage_warning))

    # --- reward variance
    rewards = data.rewards
    var = float(rewards.var())
    count, _, reward_var = _group_mean_var(rewards, cell_of, n_cells)
    cell_var = {c: float(reward_var[i]) for i, c in enumerate(cells) if count[i] >= 2}
    checks.append(
        CheckResult(
            "reward_variance",
            "warning",
            var,
            cfg.reward_variance_min,
            var >= cfg.reward_variance_min,
            f"per-step rewards: mean {rewards.mean():.4g}, variance {var:.4g} over {len(rewards)} transitions",
            _sorted_cells(cell_var, lambda v: v < cfg.reward_variance_min, False),
        )  # fmt: skip
    )

    # --- episode length variety
    lengths = data.episode_lengths
    distinct = np.unique(lengths)
    short = int((lengths < data.max_epochs).sum())
    length_detail = (
        f"all {len(lengths)} episodes have length {int(distinct[0])}"
        if len(distinct) == 1
        else f"{len(distinct)} distinct lengths in {int(lengths.min())}..{int(lengths.max())}; "
        f"{short} of {len(lengths)} episodes end before max_epochs={data.max_epochs}"
    )
    checks.append(
        CheckResult(
            "episode_length_variety",
            "warning",
            float(len(distinct)),
            float(cfg.min_episode_lengths),
            len(distinct) >= cfg.min_episode_lengths,
            length_detail,
        )  # fmt: skip
    )

    return HealthReport(
        checks=checks,
        n_transitions=data.n_transitions,
        n_episodes=data.n_episodes,
        clusters=cl,
        seconds=time.perf_counter() - start,
    )


def format_table(report: HealthReport) -> str:
    """A plain-text table of every check (figure, threshold, verdict) and the failed checks' details."""
    rows = [("check", "tier", "figure", "threshold", "verdict")]
    rows += [
        (c.name, c.tier, format_number(c.figure), f"{c.comparison} {format_number(c.threshold)}", verdict(c))
        for c in report.checks
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for c in report.errors + report.warnings:
        lines.append(f"{verdict(c)} {c.name}: {c.detail}")
    status = "PASSED" if report.passed else "FAILED"
    lines.append(
        f"{status}: {len(report.errors)} blocking error(s), {len(report.warnings)} warning(s) on "
        f"{report.n_transitions} transitions, {report.n_episodes} episodes, "
        f"{report.clusters.n_clusters} clusters ({report.seconds:.2f} s)"
    )
    return "\n".join(lines)


def load_health_input(path: str | Path, *, partial: bool = False) -> HealthInput:
    """Load a pack directory as a :class:`HealthInput` (checksums verified; an incomplete pack
    is an error unless ``partial``)."""
    from esper_agents.generation.packs import open_pack

    return HealthInput.from_pack(open_pack(path, partial=partial))


def check_pack(
    path: str | Path, out_dir: str | Path, *, n_clusters: int | None = None, partial: bool = False
) -> int:
    """``esper health --pack DIR``: check a pack, print the table, write the report; 1 if a blocking check fails.

    A pack that cannot be read raises :class:`~esper_agents.generation.packs.PackError`; an
    incomplete one too, unless ``partial``.
    """
    if Path(out_dir).is_file():
        raise ValueError(f"--out {out_dir} is a file; the health report is a directory")
    data = load_health_input(path, partial=partial)
    report = run_health_checks(data, n_clusters=n_clusters)
    print(format_table(report))
    paths = write_report(report, data, out_dir)
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0 if report.passed else 1


# ---------------------------------------------------------------------------------------------
# Report files

_EXPLANATION = """\
Seed 000's tiered checks: a failed **error** blocks generation, a failed **warning** is logged for
review. "Op" groups the compact actions by operation (WAIT, GERMINATE, ADVANCE, SET_ALPHA_TARGET,
PRUNE, FOSSILIZE). States are clustered by k-means on standardised observations ({k} clusters);
a cluster with fewer than {min_states} states counts as empty, and a single-action cluster is an
occupied cluster where one op has >= {single_pct} of the transitions. Entropy is per cluster, divided
by log(number of ops), averaged with cluster sizes as weights. Definitions in
`esper_agents/generation/health.py`.
"""


def write_report(
    report: HealthReport, data: HealthInput, out_dir: str | Path, config: HealthConfig = HealthConfig()
) -> list[Path]:
    """Write ``health.md``, ``health.json`` and the PNG plots into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = [
        _plot_op_mix(data, out / "op_mix.png"),
        _plot_clusters(report.clusters, out / "state_clusters.png", config),
        _plot_returns(data, out / "returns.png"),
    ]
    status = "PASSED" if report.passed else "FAILED"
    md = [
        "# Dataset health",
        "",
        f"**{status}**: {len(report.errors)} blocking error(s), {len(report.warnings)} warning(s); "
        f"{report.n_transitions} transitions, {report.n_episodes} episodes.",
        "",
        report.to_markdown(),
        _EXPLANATION.format(
            k=report.clusters.n_clusters,
            min_states=config.min_cluster_states,
            single_pct=_pct(config.single_action_share),
        ),
        "## Details",
        "",
    ]
    for c in report.checks:
        line = f"- **{c.name}** ({c.tier}, {verdict(c)}): {c.detail}"
        if c.cells and not c.passed:
            shown = ", ".join("/".join(x) if isinstance(x, tuple) else str(x) for x in c.cells[:10])
            more = f" and {len(c.cells) - 10} more" if len(c.cells) > 10 else ""
            line += f". Implicated: {shown}{more}"
        md.append(line)
    md += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    md_path = out / "health.md"
    md_path.write_text("\n".join(md))
    json_path = out / "health.json"
    json_path.write_text(json.dumps(report.to_dict(), indent=2))
    return [md_path, json_path, *plots]


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


def _plot_op_mix(data: HealthInput, path: Path) -> Path:
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


def _plot_clusters(cl: StateClusters, path: Path, config: HealthConfig) -> Path:
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


def _plot_returns(data: HealthInput, path: Path) -> Path:
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
