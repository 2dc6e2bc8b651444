"""A pack's rewards, as logged or relabeled: every step logs its reward components, so the rewards
of another mode (``esper_env.REWARD_MODES``) are recomputed with :func:`esper_env.rewards.relabel`,
using the pack's reward weights. The exports, the offline datasets and the health checks read
rewards through here."""

from __future__ import annotations

import dataclasses

import numpy as np

from esper_agents.generation.collector import EpisodeRecord
from esper_agents.generation.packs import Pack
from esper_env.rewards import REWARD_MODES, RewardConfig, relabel

__all__ = ["episode_rewards", "reward_config"]


def reward_config(pack: Pack, mode: str | None = None) -> RewardConfig:
    """The pack's reward config (its weights and costs), in ``mode`` if given."""
    d = pack.reward_config
    cfg = RewardConfig(**{**d, "intervention_costs": dict(d["intervention_costs"])})
    if mode is not None:
        if mode not in REWARD_MODES:
            raise ValueError(f"unknown reward mode {mode!r}; valid modes are: {', '.join(REWARD_MODES)}")
        cfg = dataclasses.replace(cfg, mode=mode)
    return cfg


def episode_rewards(record: EpisodeRecord, config: RewardConfig | None = None) -> np.ndarray:
    """``[T]`` rewards: as logged if ``config`` is None, else relabeled from the components."""
    if config is None:
        return np.asarray(record.arrays["rewards"], dtype=np.float64)
    return np.asarray(relabel(record.reward_components, config), dtype=np.float64).reshape(len(record))
