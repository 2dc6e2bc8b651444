"""Evaluate an online model in the env: :func:`evaluate_online`, the same summary offline agents get.

Recurrent models carry their LSTM state through the episode (reset at its start); masked ones
get the env's ``action_masks()`` at every step. Actions are greedy (``deterministic=True``).
The summary is :func:`~esper_agents.common.evaluation.summarize_episodes`' (final validation and
test accuracy with 95% intervals, return, action mix by executed op, illegal actions, seeds).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from esper_agents.common.evaluation import summarize_episodes
from esper_agents.common.rollout import Episode, run_episode
from esper_agents.online.algorithms import get_online_algorithm

__all__ = ["OnlineModelAgent", "evaluate_online", "run_online_episode"]


class OnlineModelAgent:
    """A stable-baselines3 model of algorithm ``algo`` acting greedily in its env stack ``env``:
    the env's ``action_masks()`` when the model is masked, the LSTM state carried through the
    episode (reset at its start) when it is recurrent."""

    def __init__(self, model: Any, algo: str, env: gym.Env) -> None:
        self.model, self.env = model, env
        self.record = get_online_algorithm(algo)
        self.state: Any = None
        self.start = np.ones(1, dtype=bool)

    def reset(self, seed: int | None) -> None:
        self.state, self.start = None, np.ones(1, dtype=bool)

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        kwargs: dict[str, Any] = {}
        if self.record.masked:
            kwargs["action_masks"] = self.env.get_wrapper_attr("action_masks")()
        if self.record.recurrent:
            kwargs.update(state=self.state, episode_start=self.start)
        action, self.state = self.model.predict(obs, deterministic=True, **kwargs)
        self.start = np.zeros(1, dtype=bool)
        return action


def run_online_episode(model: Any, algo: str, env: gym.Env, seed: int | None = None) -> Episode:
    """One greedy episode of ``model`` (an ``algo`` model) in its env stack ``env``; the ops it
    executed are ``episode.ops``."""
    return run_episode(env, OnlineModelAgent(model, algo, env), seed=seed)


def evaluate_online(model: Any, algo: str, env: gym.Env, episodes: int, seed: int = 0) -> dict[str, Any]:
    """``episodes`` greedy episodes (reset seeds ``seed ..``) and their JSON summary."""
    from esper_env.lifecycle import Op

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    records = [run_online_episode(model, algo, env, seed=seed + i) for i in range(episodes)]
    names = [op.name for op in Op]
    summary = summarize_episodes(records, sum(r.illegal for r in records), names, [r.ops for r in records])
    summary.update(seed=int(seed), algorithm=algo)
    return summary
