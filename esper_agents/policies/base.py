"""What every behavior policy shares: binding to an env, and the masked softmax of its scores.

A policy scores every compact action (:class:`esper_env.wrappers.CompactActions`) from one
observation and the exact legality mask, and its greedy distribution is
``softmax(scores / temperature)`` over the legal actions, exactly 0 on the illegal ones.
Exploration (epsilon-greedy and probability logging) lives in
:mod:`esper_agents.policies.exploration`.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod

import gymnasium as gym
import numpy as np

from esper_agents.policies.config import BehaviorPolicyConfig
from esper_agents.policies.observation import PolicySpec, as_spec
from esper_env.env import EsperEnv
from esper_env.observation import ObservationView

__all__ = ["Policy", "masked_softmax"]


def masked_softmax(scores: np.ndarray, mask: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``softmax(scores / temperature)`` over ``mask``; exactly 0 where the mask is False.

    Float64 throughout; the result sums to 1 (to rounding). Needs at least one legal action.
    """
    scores = np.asarray(scores, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if scores.shape != mask.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and mask {mask.shape} must be 1-D of the same length")
    if not mask.any():
        raise ValueError("the action mask has no legal action")
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    legal_scores = scores[mask]
    if not np.all(np.isfinite(legal_scores)):
        raise ValueError("legal actions need finite scores")
    z = (legal_scores - legal_scores.max()) / temperature
    e = np.exp(z)
    probs = np.zeros_like(scores)
    probs[mask] = e / e.sum()
    return probs


class Policy(ABC):
    """A behavior policy over the compact action set.

    Subclasses implement :meth:`scores`. Use ``policy.bind(env)`` (or a :class:`PolicySpec`)
    before asking for scores: binding returns a copy that knows the observation layout,
    ``max_epochs`` and the compact action table. A policy keeps no state between calls, so one
    bound policy serves any number of envs and logged data.
    """

    def __init__(self, config: BehaviorPolicyConfig, spec: PolicySpec | None = None) -> None:
        self.config = config
        self._spec = spec

    @property
    def policy_id(self) -> str:
        return self.config.policy_id

    @property
    def spec(self) -> PolicySpec:
        if self._spec is None:
            raise RuntimeError(f"policy {self.policy_id!r} is not bound; call policy.bind(env) first")
        return self._spec

    def bind(self, source: PolicySpec | gym.Env | EsperEnv) -> Policy:
        """A copy of this policy bound to an env's observation layout and action table."""
        bound = copy.copy(self)
        bound._spec = as_spec(source)
        return bound

    def view(self, obs: np.ndarray) -> ObservationView:
        return ObservationView.decode(obs, self.spec)

    def check_mask(self, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.shape != (self.spec.num_actions,) or mask.dtype != bool:
            raise ValueError(
                f"action mask must be a boolean vector of length {self.spec.num_actions} (the compact "
                f"action set), got dtype {mask.dtype} and shape {mask.shape}"
            )
        if not mask.any():
            raise ValueError("the action mask has no legal action")
        return mask

    @abstractmethod
    def scores(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """One finite float64 score per compact action (illegal ones may be any value)."""

    def greedy_probs(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``softmax(scores / temperature)`` over the legal actions, 0 on illegal ones."""
        mask = self.check_mask(mask)
        return masked_softmax(self.scores(obs, mask), mask, self.config.temperature)

    def __repr__(self) -> str:
        bound = "unbound" if self._spec is None else f"max_epochs={self._spec.max_epochs}"
        return f"{type(self).__name__}({self.policy_id!r}, epsilon={self.config.epsilon}, {bound})"
