"""The behavior policies by name: the original design's 11 (8 threshold variants and 3 contrastive ones), then
the growth variants (``capacity``), then ``rent-aware``, ``lr-aware`` and ``curve-aware``, the rules for the fast tier's
distributions of task instances."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

import gymnasium as gym

from esper_agents.policies.base import Policy
from esper_agents.policies.config import BehaviorPolicyConfig
from esper_agents.policies.contrastive import CONTRASTIVE_VARIANTS
from esper_agents.policies.heuristic import GROWTH_VARIANTS, THRESHOLD_VARIANTS, ThresholdPolicy
from esper_agents.policies.observation import PolicySpec
from esper_agents.policies.rent_aware import CurveAwarePolicy, LrAwarePolicy, RentAwarePolicy
from esper_env.env import EsperEnv

__all__ = [
    "CONTRASTIVE_POLICY_IDS",
    "ORIGINAL_POLICY_IDS",
    "POLICIES",
    "POLICY_IDS",
    "THRESHOLD_POLICY_IDS",
    "get_policy",
]

#: Policy id -> (policy class, default config).
POLICIES: Mapping[str, tuple[type[Policy], BehaviorPolicyConfig]] = MappingProxyType(
    {
        **{name: (ThresholdPolicy, config) for name, config in THRESHOLD_VARIANTS.items()},
        **CONTRASTIVE_VARIANTS,
        **{name: (ThresholdPolicy, config) for name, config in GROWTH_VARIANTS.items()},
        "rent-aware": (RentAwarePolicy, BehaviorPolicyConfig(policy_id="rent-aware")),
        "lr-aware": (LrAwarePolicy, BehaviorPolicyConfig(policy_id="lr-aware")),
        "curve-aware": (CurveAwarePolicy, BehaviorPolicyConfig(policy_id="curve-aware")),
    }
)
THRESHOLD_POLICY_IDS: tuple[str, ...] = tuple(THRESHOLD_VARIANTS)
#: The original design's 11 behavior policies: the generation matrix of ``datasets/full.toml``.
ORIGINAL_POLICY_IDS: tuple[str, ...] = (*THRESHOLD_VARIANTS, *CONTRASTIVE_VARIANTS)
CONTRASTIVE_POLICY_IDS: tuple[str, ...] = tuple(CONTRASTIVE_VARIANTS)
POLICY_IDS: tuple[str, ...] = tuple(POLICIES)


def get_policy(
    name: str,
    *,
    epsilon: float | None = None,
    temperature: float | None = None,
    env: PolicySpec | gym.Env | EsperEnv | None = None,
) -> Policy:
    """The policy ``name`` with its default config, optionally overriding epsilon and temperature.

    Pass ``env`` (an env or a :class:`PolicySpec`) to get it bound, or call ``.bind(env)`` later.
    ``random`` defaults to epsilon 1; its greedy distribution is uniform, so any epsilon gives
    the same behavior.
    """
    try:
        kind, config = POLICIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown policy {name!r}; valid policies are: {', '.join(POLICY_IDS)}") from None
    changes: dict[str, float] = {}
    if epsilon is not None:
        changes["epsilon"] = epsilon
    if temperature is not None:
        changes["temperature"] = temperature
    policy = kind(replace(config, **changes) if changes else config)
    return policy if env is None else policy.bind(env)
