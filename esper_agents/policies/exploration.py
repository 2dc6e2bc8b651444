"""Epsilon-greedy over a policy's greedy distribution, with the probabilities off-policy RL needs.

With probability ``epsilon`` the action is drawn uniformly over the *legal* actions (the
exploratory branch); otherwise it is drawn from the policy's greedy distribution
``pi(a|s) = softmax(scores / temperature)`` over the legal actions. The behavior distribution is
therefore::

    mu(a|s) = (1 - epsilon) * pi(a|s) + epsilon / |legal(s)|    for legal a, 0 otherwise

The original design wrote ``epsilon / |A|``; uniform exploration over illegal actions would only produce
no-op WAITs logged under the wrong action, so the uniform part is over the legal set (DESIGN.md
section 4), and mu sums to 1 over it. ``behavior_prob`` is mu of the action taken: the
denominator of every importance weight.

All randomness comes from the ``numpy.random.Generator`` passed in; nothing global.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np

from esper_agents.policies.base import Policy
from esper_agents.policies.config import BehaviorPolicyConfig
from esper_agents.policies.observation import PolicySpec
from esper_env.env import EsperEnv

__all__ = [
    "MATRIX_EPSILONS",
    "ActionDecision",
    "EpsilonGreedy",
    "behavior_distribution",
    "sample_decision",
]

#: The epsilons of the generation matrix (the original design): pure, light and moderate exploration.
MATRIX_EPSILONS: tuple[float, ...] = (0.0, 0.1, 0.2)


@dataclass(frozen=True)
class ActionDecision:
    """One decision with everything needed to reweight it later (the original design's ActionProbabilities).

    Vectors are float64 over the compact action set, 0 on illegal actions.
    """

    greedy_probs: np.ndarray  # pi(a|s)
    behavior_probs: np.ndarray  # mu(a|s) = (1 - eps) pi(a|s) + eps / |legal|
    behavior_prob: float  # mu(sampled_action|s)
    greedy_action: int  # argmax of greedy_probs (lowest index on ties)
    sampled_action: int  # the action to take
    was_exploratory: bool  # the uniform branch was drawn (even if it drew the greedy action)
    epsilon: float

    @property
    def action(self) -> int:
        return self.sampled_action

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, floats, ints and bools (JSON and npz friendly)."""
        return {
            "greedy_probs": [float(p) for p in self.greedy_probs],
            "behavior_probs": [float(p) for p in self.behavior_probs],
            "behavior_prob": float(self.behavior_prob),
            "greedy_action": int(self.greedy_action),
            "sampled_action": int(self.sampled_action),
            "was_exploratory": bool(self.was_exploratory),
            "epsilon": float(self.epsilon),
        }


def _check_epsilon(epsilon: float) -> float:
    eps = float(epsilon)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
    return eps


def behavior_distribution(greedy_probs: np.ndarray, mask: np.ndarray, epsilon: float) -> np.ndarray:
    """``(1 - epsilon) * greedy + epsilon / |legal|`` on legal actions, 0 elsewhere."""
    eps = _check_epsilon(epsilon)
    greedy = np.asarray(greedy_probs, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    n_legal = int(mask.sum())
    if n_legal == 0:
        raise ValueError("the action mask has no legal action")
    if greedy.shape != mask.shape:
        raise ValueError(f"greedy_probs {greedy.shape} and mask {mask.shape} differ in shape")
    if np.any(greedy[~mask] != 0.0):
        raise ValueError("greedy_probs put mass on illegal actions")
    mu = np.where(mask, (1.0 - eps) * greedy + eps / n_legal, 0.0)
    return mu


def sample_decision(
    greedy_probs: np.ndarray, mask: np.ndarray, epsilon: float, rng: np.random.Generator
) -> ActionDecision:
    """Draw one epsilon-greedy action and log its probabilities.

    Every call draws exactly two uniforms from ``rng``, one for the branch and one for the action
    (by inverse CDF), so runs that share a generator stay aligned whatever epsilon is and
    whichever branch was taken (common random numbers when comparing epsilons).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    greedy = np.asarray(greedy_probs, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    mu = behavior_distribution(greedy, mask, epsilon)
    eps = float(epsilon)
    legal = np.flatnonzero(mask)
    u_branch, u_action = rng.random(2)
    explore = bool(u_branch < eps)
    if explore:
        action = int(legal[min(int(u_action * len(legal)), len(legal) - 1)])
    else:
        cdf = np.cumsum(greedy)
        action = int(np.searchsorted(cdf, u_action * cdf[-1], side="right"))
        if action >= len(greedy) or greedy[action] == 0.0:  # u_action * total rounded up to total
            action = int(np.flatnonzero(greedy)[-1])
    return ActionDecision(
        greedy_probs=greedy,
        behavior_probs=mu,
        behavior_prob=float(mu[action]),
        greedy_action=int(np.argmax(greedy)),
        sampled_action=action,
        was_exploratory=explore,
        epsilon=eps,
    )


class EpsilonGreedy:
    """A policy wrapped in epsilon-greedy (called "BehaviorPolicy" in the original design).

    ``epsilon`` defaults to the policy config's. ``decide(obs, mask, rng)`` returns an
    :class:`ActionDecision`; ``decide_batch`` does it row by row for a vector env.

    >>> import gymnasium, numpy as np, esper_env
    >>> from esper_env.wrappers import CompactActions
    >>> from esper_agents.policies import EpsilonGreedy, get_policy
    >>> env = CompactActions(gymnasium.make("Esper-SynthCIFAR-v2", fidelity="test", max_epochs=3))
    >>> behavior = EpsilonGreedy(get_policy("baseline"), epsilon=0.1).bind(env)
    >>> obs, info = env.reset(seed=0)
    >>> d = behavior.decide(obs, info["action_mask"], np.random.default_rng(0))
    >>> bool(info["action_mask"][d.sampled_action]), round(float(d.behavior_probs.sum()), 12)
    (True, 1.0)
    """

    def __init__(self, policy: Policy, epsilon: float | None = None) -> None:
        self.policy = policy
        self.epsilon = _check_epsilon(policy.config.epsilon if epsilon is None else epsilon)

    @property
    def policy_id(self) -> str:
        return self.policy.policy_id

    @property
    def config(self) -> BehaviorPolicyConfig:
        """The policy's config with the epsilon actually used (what episode metadata records)."""
        return replace(self.policy.config, epsilon=self.epsilon)

    def bind(self, source: PolicySpec | gym.Env | EsperEnv) -> EpsilonGreedy:
        return EpsilonGreedy(self.policy.bind(source), self.epsilon)

    def decide(self, obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> ActionDecision:
        greedy = self.policy.greedy_probs(obs, mask)
        return sample_decision(greedy, mask, self.epsilon, rng)

    def decide_batch(
        self, obs: np.ndarray, masks: np.ndarray, rng: np.random.Generator
    ) -> list[ActionDecision]:
        """One decision per row of a vector env's observations and masks."""
        obs, masks = np.asarray(obs), np.asarray(masks)
        if obs.ndim != 2 or masks.ndim != 2 or len(obs) != len(masks):
            raise ValueError(f"expected [N, obs] and [N, actions] arrays, got {obs.shape} and {masks.shape}")
        return [self.decide(o, m, rng) for o, m in zip(obs, masks)]

    def __repr__(self) -> str:
        return f"EpsilonGreedy({self.policy!r}, epsilon={self.epsilon})"
