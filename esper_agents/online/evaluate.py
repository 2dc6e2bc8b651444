"""Evaluate an online model in the env: :func:`evaluate_online`, the same summary offline agents get.

Recurrent models carry their LSTM state through the episode (reset at its start); masked ones
get the env's ``action_masks()`` at every step. Actions are greedy (``deterministic=True``).
The summary is :func:`~esper_agents.common.evaluation.summarize_episodes`' (final validation and
test accuracy with 95% intervals, return, action mix by executed op, illegal actions, seeds).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np

from esper_agents.common.evaluation import summarize_episodes
from esper_agents.online.algorithms import get_online_algorithm

__all__ = ["EvaluatedEpisode", "evaluate_online", "run_online_episode"]


@dataclasses.dataclass
class EvaluatedEpisode:
    """One evaluation episode: executed ops, rewards, final info, and illegal choices."""

    actions: np.ndarray  # executed op per step
    rewards: np.ndarray
    final_accuracy: float
    info: dict[str, Any]
    illegal: int

    def __len__(self) -> int:
        return len(self.actions)


def run_online_episode(model: Any, algo: str, env: gym.Env, seed: int | None = None) -> EvaluatedEpisode:
    """One greedy episode of ``model`` (an ``algo`` model) in its env stack ``env``."""
    record = get_online_algorithm(algo)
    obs, info = env.reset(seed=seed)
    state, start = None, np.ones(1, dtype=bool)
    ops, rewards, illegal, done = [], [], 0, False
    while not done:
        kwargs = {"action_masks": env.get_wrapper_attr("action_masks")()} if record.masked else {}
        if record.recurrent:
            kwargs.update(state=state, episode_start=start)
        action, state = model.predict(obs, deterministic=True, **kwargs)
        obs, reward, terminated, truncated, info = env.step(action)
        start = np.zeros(1, dtype=bool)
        illegal += int(info.get("action_valid") is False)
        ops.append(int(np.asarray(info["executed_action"])[0]))
        rewards.append(float(reward))
        done = terminated or truncated
    summary = {
        k: v
        for k, v in info.items()
        if isinstance(v, (int, float, str, bool, np.integer, np.floating)) or v is None
    }
    final = float(summary.get("final_val_accuracy", float("nan")))
    return EvaluatedEpisode(np.array(ops), np.array(rewards), final, summary, illegal)


def evaluate_online(model: Any, algo: str, env: gym.Env, episodes: int, seed: int = 0) -> dict[str, Any]:
    """``episodes`` greedy episodes (reset seeds ``seed ..``) and their JSON summary."""
    from esper_env.lifecycle import Op

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    records = [run_online_episode(model, algo, env, seed=seed + i) for i in range(episodes)]
    summary = summarize_episodes(records, sum(r.illegal for r in records), [op.name for op in Op])
    summary.update(seed=int(seed), algorithm=algo)
    return summary
