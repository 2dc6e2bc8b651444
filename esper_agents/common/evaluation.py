"""Evaluate an agent in the env: :func:`evaluate_in_env` on the stack :func:`make_eval_env` builds.

:func:`evaluate_in_env` runs ``N`` seeded episodes of an agent and returns a JSON-able summary:
mean and 95% confidence interval (Student t, :func:`~esper_agents.common.stats.mean_ci`) of final
validation accuracy, test accuracy and return, the action mix (share of each op), and the number
of illegal actions the agent chose (0 for an agent whose argmax runs over legal actions).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from esper_agents.common.agents import Agent, Predictor
from esper_agents.common.masks import MaskInObservation
from esper_agents.common.rollout import rollout
from esper_agents.common.stats import mean_ci

if TYPE_CHECKING:
    from esper_env.settings import EnvSettings

__all__ = [
    "PlayedEpisode",
    "action_mix",
    "action_names",
    "evaluate_in_env",
    "make_eval_env",
    "summarize_episodes",
]


def action_names(n_actions: int) -> list[str]:
    """The op name of each discrete action: the 4 classic actions, or a compact action set
    (WAIT, GERMINATE, ADVANCE, SET_ALPHA_TARGET, PRUNE, FOSSILIZE) for some number of slots;
    ``action_<i>`` for any other action count."""
    from esper_env.lifecycle import Op
    from esper_env.wrappers import ClassicActions, compact_action_table

    if n_actions == len(ClassicActions.NAMES):
        return list(ClassicActions.NAMES)
    for slots in range(1, 17):
        table = compact_action_table(slots)
        if len(table) == n_actions:
            return [Op(a.op).name for a in table]
    return [f"action_{i}" for i in range(n_actions)]


def action_mix(actions: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """The share of each op (by ``names[action]``) among ``actions``, every op listed."""
    counts = Counter(names[int(a)] for a in actions)
    total = max(len(actions), 1)
    order = list(dict.fromkeys(names))
    return {op: counts.get(op, 0) / total for op in order}


# --------------------------------------------------------------------------------------------- in the env


def make_eval_env(settings: EnvSettings | None = None, action_set: str = "compact") -> MaskInObservation:
    """The env stack a masked agent acts in: the env ``settings`` builds (default: ``EnvSettings()``)
    in ``CompactActions`` (or, for ``action_set="classic"``, ``ClassicActions`` + ``ClassicObservation``;
    for ``"options"``, :class:`~esper_agents.common.options.GrowOptions`) + ``MaskInObservation``."""
    from esper_agents.common.options import GrowOptions
    from esper_env.settings import EnvSettings
    from esper_env.wrappers import ClassicActions, ClassicObservation, CompactActions

    env = (settings if settings is not None else EnvSettings()).make()
    if action_set == "compact":
        return MaskInObservation(CompactActions(env))
    if action_set == "classic":
        return MaskInObservation(ClassicObservation(ClassicActions(env)))
    if action_set == "options":
        return MaskInObservation(GrowOptions(env))
    raise ValueError(f"unknown action_set {action_set!r}; valid are: 'compact', 'classic', 'options'")


class PlayedEpisode(Protocol):
    """What :func:`summarize_episodes` reads of an episode (a :class:`LoggedEpisode` is one)."""

    actions: np.ndarray
    rewards: np.ndarray
    final_accuracy: float
    info: dict[str, Any]

    def __len__(self) -> int: ...


def summarize_episodes(
    records: Sequence[PlayedEpisode],
    illegal: int,
    names: Sequence[str],
    actions: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """The JSON summary of evaluation episodes (see the module docstring); ``names[a]`` is the op
    name of action ``a``; ``actions`` (one array per record) are counted in the action mix instead
    of the records' own (an online agent's executed ops, say)."""

    def field(key: str) -> list[float]:
        return [float(r.info[key]) for r in records if r.info.get(key) is not None]

    actions = np.concatenate([r.actions for r in records] if actions is None else list(actions))
    overhead = [
        (r.info["host_params"] + r.info["seed_params"] - r.info["base_host_params"])
        / r.info["base_host_params"]
        for r in records
        if {"host_params", "seed_params", "base_host_params"} <= r.info.keys()
    ]
    summary: dict[str, Any] = {
        "episodes": len(records),
        "final_val_accuracy": mean_ci([r.final_accuracy for r in records]),
        "test_accuracy": mean_ci(field("test_accuracy")) if field("test_accuracy") else None,
        "return": mean_ci([float(np.sum(r.rewards)) for r in records]),
        "episode_length": float(np.mean([len(r) for r in records])),
        "illegal_actions": int(illegal),
        "action_mix": action_mix(actions, names),
        "param_overhead": mean_ci(overhead) if overhead else None,
        "termination_reasons": dict(Counter(str(r.info.get("termination_reason")) for r in records)),
    }
    for key in ("seeds_created", "seeds_fossilized", "seeds_pruned"):
        if field(key):
            summary[key] = float(np.mean(field(key)))
    return summary


def evaluate_in_env(
    agent: Agent | Predictor, env: MaskInObservation, episodes: int, seed: int = 0
) -> dict[str, Any]:
    """Run ``episodes`` episodes (reset seeds ``seed .. seed + episodes - 1``) and summarise them.

    ``agent`` is an :class:`~esper_agents.common.agents.Agent`, or a batched predictor from masked
    observations ``(batch, features + n_actions)`` to actions, e.g. a d3rlpy algorithm's ``predict``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes!r}")
    records, illegal = rollout(env, agent, episodes, seed)
    summary = summarize_episodes(records, illegal, action_names(env.n_actions))
    summary["seed"] = int(seed)
    return summary
