"""Run an agent in the env and log what it did: :func:`run_episode`, :func:`rollout`.

An :data:`Agent` is any callable from masked observations ``(batch, features + n_actions)`` to
actions ``(batch,)``: a d3rlpy algorithm's ``predict``, a behavior policy acting greedily, or an
online learner's policy. The env must be wrapped in
:class:`~esper_agents.common.masks.MaskInObservation` (outermost), so that the agent sees the mask.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from esper_agents.common.episodes import LoggedEpisode
from esper_agents.common.masks import MaskInObservation, strip_mask

__all__ = ["Agent", "rollout", "run_episode"]

#: An agent: masked observations ``(batch, features + n_actions)`` -> actions ``(batch,)``.
#: A d3rlpy algorithm's ``predict`` is one.
Agent = Callable[[np.ndarray], np.ndarray]


def run_episode(env: MaskInObservation, agent: Agent, seed: int | None = None) -> tuple[LoggedEpisode, int]:
    """Run one episode of ``agent`` (masked observations in, actions out) in ``env``.

    Returns the record and the number of illegal actions the agent chose (the env runs those
    as WAIT; the record logs WAIT, the action executed, so that it stays a legal dataset).
    """
    if not isinstance(env, MaskInObservation):
        raise TypeError(
            f"run_episode needs the env wrapped in MaskInObservation (outermost), got {type(env).__name__}"
        )
    n = env.n_actions
    obs, info = env.reset(seed=seed)
    observations, actions, rewards = [obs], [], []
    illegal, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        action = int(np.asarray(agent(obs[None])).reshape(-1)[0])
        legal = bool(obs[-n + action] > 0.5) if 0 <= action < n else False
        if not legal:
            illegal += 1
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(action if legal else 0)
        rewards.append(float(reward))
    features, masks = strip_mask(np.stack(observations), n)
    summary = {
        k: v
        for k, v in info.items()
        if isinstance(v, (int, float, str, bool, np.integer, np.floating)) or v is None
    }
    final = summary.get("final_val_accuracy", summary.get("val_accuracy", float("nan")))
    return (
        LoggedEpisode(
            features, masks, np.array(actions), np.array(rewards), bool(terminated), float(final), summary
        ),
        illegal,
    )


def rollout(
    env: MaskInObservation, agent: Agent, episodes: int, seed: int = 0
) -> tuple[list[LoggedEpisode], int]:
    """``episodes`` episodes seeded ``seed, seed + 1, ...``; the records and total illegal actions."""
    records, illegal = [], 0
    for i in range(episodes):
        record, bad = run_episode(env, agent, seed=seed + i)
        records.append(record)
        illegal += bad
    return records, illegal
