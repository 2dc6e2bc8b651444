"""The one episode loop of the package: :func:`run_episode` drives an :class:`~esper_agents.common.agents.Agent`.

Every caller (the ``esper episode`` command, the generation collector, pack replay, in-env
evaluation of offline and online agents, the classic imitation data, the bench) runs its
episodes here and reads what it needs from the :class:`Episode` it returns; what must be seen
while the env is in a state (a rendering, a replay check) goes in the ``on_step`` hook, which
stops the episode early by returning ``False`` (as a stable-baselines3 callback does).

:func:`logged_episode` turns an episode played on a masked env
(:class:`~esper_agents.common.masks.MaskInObservation`) into the
:class:`~esper_agents.common.episodes.LoggedEpisode` offline learners read, and :func:`rollout`
plays several.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from esper_agents.common.agents import Agent, Predictor, as_agent
from esper_agents.common.episodes import LoggedEpisode
from esper_agents.common.masks import MaskInObservation, strip_mask

__all__ = ["Episode", "Step", "info_summary", "logged_episode", "rollout", "run_episode"]


def info_summary(info: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able scalars of an info dict."""
    return {
        k: v
        for k, v in info.items()
        if isinstance(v, (int, float, str, bool, np.integer, np.floating)) or v is None
    }


@dataclasses.dataclass(frozen=True)
class Step:
    """One transition, as ``on_step`` sees it: the state the action was chosen in, and what came of it."""

    t: int
    obs: Any
    info: dict[str, Any]
    action: Any
    next_obs: Any
    reward: float
    terminated: bool
    truncated: bool
    next_info: dict[str, Any]


@dataclasses.dataclass
class Episode:
    """One played episode: the ``T + 1`` observations and infos (the reset's first), the ``T``
    actions the agent chose and the rewards, how it ended, and the task instance it was played on
    (the reset info's ``"instance"``; ``None`` on an id without an instance distribution)."""

    seed: int | None
    observations: list[Any]
    infos: list[dict[str, Any]]
    actions: list[Any]
    rewards: np.ndarray
    terminated: bool
    truncated: bool
    instance: int | None = None

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def info(self) -> dict[str, Any]:
        """The last info's JSON-able scalars."""
        return info_summary(self.infos[-1])

    @property
    def final_accuracy(self) -> float:
        info = self.info
        return float(info.get("final_val_accuracy", info.get("val_accuracy", float("nan"))))

    @property
    def illegal(self) -> int:
        """Steps whose action the env refused and ran as WAIT (``info["action_valid"] is False``)."""
        return sum(info.get("action_valid") is False for info in self.infos[1:])

    @property
    def ops(self) -> np.ndarray:
        """The op (:class:`esper_env.lifecycle.Op` value) each step executed."""
        return np.array([int(np.asarray(info["executed_action"]).reshape(-1)[0]) for info in self.infos[1:]])


def run_episode(
    env: gym.Env,
    agent: Agent | Predictor,
    seed: int | None = None,
    on_step: Callable[[Step], bool | None] | None = None,
    options: dict[str, Any] | None = None,
) -> Episode:
    """Reset ``env`` with ``seed`` (and ``options``: ``{"instance": k}`` pins an instance), let
    ``agent`` act until the episode ends (or ``on_step`` returns ``False``), and return what happened."""
    agent = as_agent(agent)
    obs, info = env.reset(seed=seed, options=options)
    agent.reset(seed)
    observations, infos, actions, rewards = [obs], [info], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        action = agent.act(obs, info)
        next_obs, reward, terminated, truncated, next_info = env.step(action)
        terminated, truncated = bool(terminated), bool(truncated)
        actions.append(action)
        rewards.append(float(reward))
        observations.append(next_obs)
        infos.append(next_info)
        step = Step(
            len(actions) - 1, obs, info, action, next_obs, float(reward), terminated, truncated, next_info
        )
        obs, info = next_obs, next_info
        if on_step is not None and on_step(step) is False:
            break
    instance = infos[0].get("instance")
    return Episode(
        seed, observations, infos, actions, np.array(rewards), terminated, truncated,
        None if instance is None else int(instance),
    )  # fmt: skip


def logged_episode(episode: Episode, n_actions: int) -> tuple[LoggedEpisode, int]:
    """The :class:`LoggedEpisode` of an episode played on a masked env of ``n_actions`` actions,
    and the number of illegal actions the agent chose (the env runs those as WAIT; the record
    logs WAIT, the action executed, so that it stays a legal dataset)."""
    observations = np.stack(episode.observations)
    actions, illegal = [], 0
    for obs, action in zip(observations, episode.actions):
        action = int(action)
        legal = bool(obs[-n_actions + action] > 0.5) if 0 <= action < n_actions else False
        illegal += not legal
        actions.append(action if legal else 0)
    features, masks = strip_mask(observations, n_actions)
    record = LoggedEpisode(
        features, masks, np.array(actions), episode.rewards, episode.terminated, episode.final_accuracy,
        episode.info,
    )  # fmt: skip
    return record, illegal


def rollout(
    env: MaskInObservation, agent: Agent | Predictor, episodes: int, seed: int = 0
) -> tuple[list[LoggedEpisode], int]:
    """``episodes`` episodes seeded ``seed, seed + 1, ...`` on a masked env; the records and total
    illegal actions."""
    if not isinstance(env, MaskInObservation):
        raise TypeError(
            f"rollout needs the env wrapped in MaskInObservation (outermost), got {type(env).__name__}"
        )
    records, illegal = [], 0
    for i in range(episodes):
        record, bad = logged_episode(run_episode(env, agent, seed=seed + i), env.n_actions)
        records.append(record)
        illegal += bad
    return records, illegal
