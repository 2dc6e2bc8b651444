"""Health check thresholds (the original design's values) and clustering settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HealthConfig:
    """Thresholds (the original design's values) and clustering settings."""

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


#: The default thresholds and clustering settings (a frozen, shared instance).
DEFAULT_CONFIG = HealthConfig()
