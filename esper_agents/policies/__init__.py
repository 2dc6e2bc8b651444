"""Behavior policies over the compact action set, and epsilon-greedy with logged probabilities.

The original design's 11 policies: the threshold heuristic (called "Kasmina" in the original design) in 8
variants, and the contrastive ``random``, ``anti-heuristic`` and ``periodic``; then ``capacity``, the
threshold heuristic with an underfitting trigger (:data:`DEFAULT_HEURISTIC`, what the benchmarks
compare against). Every policy scores
the compact actions of :class:`esper_env.wrappers.CompactActions` from ``(observation, mask)``
alone; its greedy distribution is ``softmax(scores / temperature)`` over the legal actions, and
:class:`EpsilonGreedy` mixes in uniform exploration over the legal actions and logs
``mu(a|s)``::

    policy = EpsilonGreedy(get_policy("baseline"), epsilon=0.1).bind(env)
    decision = policy.decide(obs, info["action_mask"], rng)
    obs, reward, terminated, truncated, info = env.step(decision.sampled_action)

Beside them, :mod:`esper_agents.policies.schedules` holds the scripted growth schedules
(:func:`get_schedule`): fixed rules over the full factored action that the growth-headroom
benchmark and the reference scores run.
"""

from esper_agents.policies.base import Policy, masked_softmax
from esper_agents.policies.config import DEFAULT_BLUEPRINT_ORDER, BehaviorPolicyConfig
from esper_agents.policies.contrastive import AntiHeuristicPolicy, PeriodicPolicy, RandomPolicy
from esper_agents.policies.exploration import (
    MATRIX_EPSILONS,
    ActionDecision,
    EpsilonGreedy,
    behavior_distribution,
    sample_decision,
)
from esper_agents.policies.heuristic import DEFAULT_HEURISTIC, ThresholdPolicy
from esper_agents.policies.observation import PolicySpec
from esper_agents.policies.registry import (
    CONTRASTIVE_POLICY_IDS,
    ORIGINAL_POLICY_IDS,
    POLICIES,
    POLICY_IDS,
    THRESHOLD_POLICY_IDS,
    get_policy,
)
from esper_agents.policies.schedules import SCHEDULES, Schedule, get_schedule

__all__ = [
    "CONTRASTIVE_POLICY_IDS",
    "DEFAULT_BLUEPRINT_ORDER",
    "DEFAULT_HEURISTIC",
    "MATRIX_EPSILONS",
    "ORIGINAL_POLICY_IDS",
    "POLICIES",
    "POLICY_IDS",
    "SCHEDULES",
    "THRESHOLD_POLICY_IDS",
    "ActionDecision",
    "AntiHeuristicPolicy",
    "BehaviorPolicyConfig",
    "EpsilonGreedy",
    "PeriodicPolicy",
    "Policy",
    "PolicySpec",
    "RandomPolicy",
    "Schedule",
    "ThresholdPolicy",
    "behavior_distribution",
    "get_policy",
    "get_schedule",
    "masked_softmax",
    "sample_decision",
]
