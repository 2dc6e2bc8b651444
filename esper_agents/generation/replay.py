"""Replay a pack's logged episodes and check that the env reproduces them bit for bit.

CompilerGym's ``validate`` for packs (``esper validate --pack PACK``): each episode is rerun from its
reset seed with the actions it logged, in an env built from the pack header's generation spec
and under the torch thread count the pack recorded, and every observation, mask, reward and
end flag is compared for exact equality with the logged one. The promise this checks (docs/ENV_CARD.md,
"Determinism"): same env version, same torch version, same thread count, CPU, same seed and
actions give the same episode, bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from esper_agents.common.rollout import Step, run_episode
from esper_agents.generation.packs import Pack
from esper_env.settings import EnvSettings
from esper_env.wrappers import CompactActions

__all__ = ["ReplayResult", "replay_episode", "replay_pack", "replay_settings", "version_note"]


@dataclass(frozen=True)
class ReplayResult:
    """One replayed episode: ``mismatch`` is None when every step matched, else the first difference."""

    episode_id: str
    steps: int
    mismatch: str | None

    @property
    def identical(self) -> bool:
        return self.mismatch is None

    def describe(self) -> str:
        if self.identical:
            return f"identical  {self.episode_id}: {self.steps} steps, every observation, mask and reward"
        return f"DIFFERENT  {self.episode_id}: {self.mismatch}"


def replay_settings(pack: Pack, config: str | None = None) -> EnvSettings:
    """The settings the pack was generated with (its recorded torch thread count included), in
    preset ``config`` (default: the matrix's first)."""
    return pack.settings if config is None else pack.settings.replace(config=config)


def _first_difference(name: str, index: int, logged: Any, replayed: Any) -> str | None:
    logged, replayed = np.asarray(logged), np.asarray(replayed)
    if logged.shape != replayed.shape:
        return f"{name}[{index}]: shape {replayed.shape} replayed, {logged.shape} logged"
    if np.array_equal(logged, replayed, equal_nan=logged.dtype.kind == "f"):
        return None
    if logged.dtype.kind in "fc":
        gap = float(np.nanmax(np.abs(logged.astype(np.float64) - replayed.astype(np.float64))))
        return f"{name}[{index}]: max |difference| {gap:.3g}"
    return f"{name}[{index}]: {replayed.tolist()} replayed, {logged.tolist()} logged"


def replay_episode(pack: Pack, episode_id: str, env: CompactActions) -> ReplayResult:
    """Rerun one episode of ``pack`` in ``env`` (built with :func:`replay_settings` for the
    episode's config) and compare it with the log, step by step."""
    record = pack.load(episode_id)
    if env.base.config.config_id != record.metadata.config_id:
        raise ValueError(
            f"episode {episode_id!r} ran on config {record.metadata.config_id!r}, the env is another"
        )
    a = record.arrays
    found: list[tuple[int, str]] = []

    def check(t: int, replayed: dict[str, Any]) -> bool:
        """Compare state ``t`` (and the rewards and flags of step ``t - 1``) with the log; keep on
        while they match and logged actions remain."""
        for name, value in replayed.items():
            index = t if name in ("observations", "masks") else t - 1
            mismatch = _first_difference(name, index, a[name][index], value)
            if mismatch:
                found.append((t, mismatch))
                return False
        return t < len(record)

    def on_step(step: Step) -> bool:
        if step.t == 0 and not check(0, {"observations": step.obs, "masks": step.info["action_mask"]}):
            return False
        return check(step.t + 1, {"observations": step.next_obs, "masks": step.next_info["action_mask"],
                                  "rewards": step.reward, "terminated": step.terminated,
                                  "truncated": step.truncated})  # fmt: skip

    run_episode(env, _LoggedActions(a["actions"]), seed=int(record.metadata.random_seed), on_step=on_step)
    return ReplayResult(episode_id, *found[0]) if found else ReplayResult(episode_id, len(record), None)


class _LoggedActions:
    """The actions an episode logged, one per step, as an agent."""

    def __init__(self, actions: np.ndarray) -> None:
        self.actions = actions
        self.t = 0

    def reset(self, seed: int | None) -> None:
        self.t = 0

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        self.t += 1
        return int(self.actions[self.t - 1])


def replay_pack(pack: Pack, episodes: int | None = None) -> Iterator[ReplayResult]:
    """Replay the first ``episodes`` episodes of ``pack`` (by id; all if None), one env per config."""
    if episodes is not None and (isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1):
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    envs: dict[str, CompactActions] = {}
    try:
        for episode_id in pack.episode_ids[:episodes]:
            config_id = pack.metadata(episode_id).config_id
            if config_id not in envs:
                envs[config_id] = CompactActions(replay_settings(pack, config_id).make())
            yield replay_episode(pack, episode_id, envs[config_id])
    finally:
        for env in envs.values():
            env.close()


def version_note(pack: Pack) -> str | None:
    """A warning when this torch differs from the pack's (the promise covers one torch version)."""
    recorded = pack.environment.get("torch_version")
    if recorded is not None and recorded != torch.__version__:
        return f"the pack was generated with torch {recorded}, this is torch {torch.__version__}: differences may come from that"
    return None
