"""The one agent interface every episode loop of the package drives: :class:`Agent`.

An agent is told that an episode starts (``reset(seed)``, the env's reset seed, so that an agent
with its own randomness is reproducible per episode) and chooses each action from the
observation and info of the state it is in (``act(obs, info)``). The loop is
:func:`esper_agents.common.rollout.run_episode`.

Also here, the agents more than one caller needs:

* :class:`PredictorAgent` / :func:`as_agent`: a batched predictor (masked observations
  ``(batch, features + n_actions)`` -> actions ``(batch,)``, e.g. a d3rlpy algorithm's
  ``predict``) as an agent on one observation;
* :class:`RandomAgent`: WAIT with some probability, else a uniformly random legal action;
* :func:`behavior_agent`: a behavior policy of :mod:`esper_agents.policies` acting greedily on
  masked observations of the compact action set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Agent",
    "GreedyPolicyAgent",
    "Predictor",
    "PredictorAgent",
    "RandomAgent",
    "as_agent",
    "behavior_agent",
]

#: A batched predictor: masked observations ``(batch, features + n_actions)`` -> actions ``(batch,)``.
#: A d3rlpy algorithm's ``predict`` is one.
Predictor = Callable[[np.ndarray], np.ndarray]


@runtime_checkable
class Agent(Protocol):
    """Chooses the actions of an episode (see the module docstring)."""

    def reset(self, seed: int | None) -> None:
        """A new episode starts, from the env's reset with ``seed``."""

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        """The action to take in the state observed as ``obs`` (with its ``info``)."""


class PredictorAgent:
    """A :data:`Predictor` acting on one (masked) observation at a time."""

    def __init__(self, predict: Predictor) -> None:
        self.predict = predict

    def reset(self, seed: int | None) -> None:
        pass

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> int:
        return int(np.asarray(self.predict(np.asarray(obs)[None])).reshape(-1)[0])


def as_agent(agent: Agent | Predictor) -> Agent:
    """``agent`` itself if it is an :class:`Agent`, else the batched predictor wrapped as one."""
    if isinstance(agent, Agent):
        return agent
    if callable(agent):
        return PredictorAgent(agent)
    raise TypeError(
        f"an agent needs reset(seed) and act(obs, info), or is a batched predictor; got {agent!r}"
    )


class RandomAgent:
    """WAIT (action 0) with probability ``wait_prob``, else a uniformly random action legal under
    ``info["action_mask"]``; its generator is reseeded with each episode's reset seed."""

    def __init__(self, wait_prob: float = 0.0) -> None:
        if not 0.0 <= wait_prob <= 1.0:
            raise ValueError(f"wait_prob must be in [0, 1], got {wait_prob!r}")
        self.wait_prob = wait_prob
        self.rng = np.random.default_rng()

    def reset(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        # No draw for the WAIT coin when it cannot come up: the stream stays the legal choices'.
        if self.wait_prob > 0 and self.rng.random() < self.wait_prob:
            return 0
        return int(self.rng.choice(np.flatnonzero(info["action_mask"])))


class GreedyPolicyAgent:
    """A behavior policy's greedy action on masked observations of ``n_actions`` actions; also a
    :data:`Predictor` (call it on a batch)."""

    def __init__(self, policy: Any, n_actions: int) -> None:
        self.policy = policy
        self.n = n_actions

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.array([self._greedy(o) for o in np.atleast_2d(obs)])

    def _greedy(self, o: np.ndarray) -> int:
        return int(np.argmax(self.policy.greedy_probs(o[: -self.n], o[-self.n :] > 0.5)))

    def reset(self, seed: int | None) -> None:
        pass

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> int:
        return self._greedy(np.asarray(obs))


def behavior_agent(name: str, env: Any) -> GreedyPolicyAgent:
    """Behavior policy ``name`` (:mod:`esper_agents.policies`) acting greedily, as an agent on
    masked observations of the compact action set of ``env``."""
    from esper_agents.policies import get_policy

    return GreedyPolicyAgent(get_policy(name, env=env), env.n_actions)
