"""The dataset as the health checks see it (:class:`HealthInput`), and a pack read as one.

:func:`load_health_input` is the one pack-to-arrays adapter: each episode's ``T`` decision states
``observations[:T]``, actions, rewards (as logged, or relabeled to ``reward_mode``), in the
pack's episode order. The checks themselves only see the arrays, so they do not depend on how a
pack is stored.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from esper_env.lifecycle import Op

if TYPE_CHECKING:
    from esper_agents.generation.packs import Pack

#: The ops, in the order of :class:`esper_env.lifecycle.Op`.
OPS: tuple[str, ...] = tuple(op.name for op in Op)

Cell = tuple[str, str]


def op_of(action_name: str) -> str:
    """The op of a compact action description: ``"PRUNE(slot=1, ...)"`` -> ``"PRUNE"``."""
    op = action_name.split("(", 1)[0].strip()
    if op not in OPS:
        raise ValueError(f"action {action_name!r} does not start with an op; valid ops are: {list(OPS)}")
    return op


@dataclass
class HealthInput:
    """A dataset as the health checks see it: one row per transition, one entry per episode.

    ``episode_index`` holds each transition's episode as a position in the per-episode arrays
    (0..E-1), and ``actions`` the compact action index into ``action_names``.
    """

    observations: np.ndarray  #: [N, D] float32
    actions: np.ndarray  #: [N] int, compact action index
    rewards: np.ndarray  #: [N] float, per-step reward as stored
    action_names: Sequence[str]  #: [n_actions] compact action descriptions
    episode_index: np.ndarray  #: [N] int in 0..E-1
    timestep: np.ndarray  #: [N] int, 0-based position in the episode
    episode_returns: np.ndarray  #: [E] float
    episode_lengths: np.ndarray  #: [E] int
    episode_policy: np.ndarray  #: [E] str, behavior policy id
    episode_config: np.ndarray  #: [E] str, environment config id
    max_epochs: int
    expected_cells: int | None = None  #: number of (policy, config) cells the generation spec asks for

    def __post_init__(self) -> None:
        self.observations = np.asarray(self.observations, dtype=np.float32)
        self.actions = np.asarray(self.actions, dtype=np.int64)
        self.rewards = np.asarray(self.rewards, dtype=np.float64)
        self.action_names = [str(a) for a in self.action_names]
        self.episode_index = np.asarray(self.episode_index, dtype=np.int64)
        self.timestep = np.asarray(self.timestep, dtype=np.int64)
        self.episode_returns = np.asarray(self.episode_returns, dtype=np.float64)
        self.episode_lengths = np.asarray(self.episode_lengths, dtype=np.int64)
        self.episode_policy = np.asarray(self.episode_policy, dtype=str)
        self.episode_config = np.asarray(self.episode_config, dtype=str)
        if self.observations.ndim != 2:
            raise ValueError(f"observations must be [N, D], got shape {self.observations.shape}")
        n = len(self.observations)
        if n == 0:
            raise ValueError("the dataset has no transitions")
        for name in ("actions", "rewards", "episode_index", "timestep"):
            shape = getattr(self, name).shape
            if shape != (n,):
                raise ValueError(f"{name} must have shape ({n},) like observations, got {shape}")
        e = len(self.episode_returns)
        for name in ("episode_lengths", "episode_policy", "episode_config"):
            shape = getattr(self, name).shape
            if shape != (e,):
                raise ValueError(f"{name} must have shape ({e},) like episode_returns, got {shape}")
        bad = self.actions[(self.actions < 0) | (self.actions >= len(self.action_names))]
        if bad.size:
            raise ValueError(f"action index {int(bad[0])} is outside 0..{len(self.action_names) - 1}")
        bad = self.episode_index[(self.episode_index < 0) | (self.episode_index >= e)]
        if bad.size:
            raise ValueError(f"episode_index {int(bad[0])} is outside 0..{e - 1}")
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs!r}")
        self._action_op = np.array([OPS.index(op_of(a)) for a in self.action_names], dtype=np.int64)

    @property
    def n_transitions(self) -> int:
        return len(self.observations)

    @property
    def n_episodes(self) -> int:
        return len(self.episode_returns)

    @property
    def op_names(self) -> list[str]:
        """The ops the action set contains, in Op order (the op axis of :attr:`ops`)."""
        return [op for op in OPS if OPS.index(op) in set(self._action_op.tolist())]

    @property
    def ops(self) -> np.ndarray:
        """[N] op of each transition, as an index into :attr:`op_names`."""
        present = sorted(set(self._action_op.tolist()))
        remap = np.full(len(OPS), -1, dtype=np.int64)
        remap[present] = np.arange(len(present))
        return remap[self._action_op[self.actions]]

    @property
    def episode_cells(self) -> list[Cell]:
        return list(zip(self.episode_policy.tolist(), self.episode_config.tolist()))

    def cell_index(self) -> tuple[list[Cell], np.ndarray]:
        """The distinct (policy, config) cells (sorted) and each episode's cell as an index."""
        cells = sorted(set(self.episode_cells))
        lookup = {c: i for i, c in enumerate(cells)}
        return cells, np.array([lookup[c] for c in self.episode_cells], dtype=np.int64)

    @classmethod
    def concatenate(cls, parts: Sequence[HealthInput]) -> HealthInput:
        """One input holding every part's transitions and episodes (episode indices shifted)."""
        if not parts:
            raise ValueError("nothing to concatenate")
        names = parts[0].action_names
        for p in parts[1:]:
            if p.action_names != names:
                raise ValueError("parts have different action sets; health checks need one action set")
            if p.observations.shape[1] != parts[0].observations.shape[1]:
                raise ValueError(
                    f"parts have different observation sizes: {p.observations.shape[1]} and "
                    f"{parts[0].observations.shape[1]}"
                )
        offsets = np.cumsum([0] + [p.n_episodes for p in parts[:-1]])
        expected = [p.expected_cells for p in parts]
        return cls(
            observations=np.concatenate([p.observations for p in parts]),
            actions=np.concatenate([p.actions for p in parts]),
            rewards=np.concatenate([p.rewards for p in parts]),
            action_names=names,
            episode_index=np.concatenate([p.episode_index + o for p, o in zip(parts, offsets)]),
            timestep=np.concatenate([p.timestep for p in parts]),
            episode_returns=np.concatenate([p.episode_returns for p in parts]),
            episode_lengths=np.concatenate([p.episode_lengths for p in parts]),
            episode_policy=np.concatenate([p.episode_policy for p in parts]),
            episode_config=np.concatenate([p.episode_config for p in parts]),
            max_epochs=max(p.max_epochs for p in parts),
            expected_cells=None if None in expected else max(expected),  # type: ignore[type-var]
        )


def load_health_input(
    pack: Pack | str | os.PathLike,
    *,
    reward_mode: str | None = None,
    expected_cells: int | None = None,
    partial: bool = False,
) -> HealthInput:
    """The transitions of a pack (a :class:`~esper_agents.generation.packs.Pack` or its path).

    Checksums are verified; an incomplete pack is an error unless ``partial``. Rewards are as
    logged, or relabeled to ``reward_mode``; ``expected_cells`` defaults to policies x configs of
    the pack's generation spec.
    """
    from esper_agents.generation.packs import PackError, open_pack
    from esper_agents.generation.relabel import episode_rewards, reward_config

    pack = open_pack(pack, partial=partial)
    if len(pack) == 0:
        raise PackError(f"{pack.path}: the pack has no episodes to check")
    cfg = None if reward_mode is None else reward_config(pack, reward_mode)
    obs, actions, rewards, ep_index, timestep = [], [], [], [], []
    returns, lengths, policies, configs = [], [], [], []
    for i, r in enumerate(pack):
        T = len(r)
        rw = episode_rewards(r, cfg)
        obs.append(r.arrays["observations"][:T])
        actions.append(r.arrays["actions"])
        rewards.append(rw)
        ep_index.append(np.full(T, i, dtype=np.int64))
        timestep.append(np.arange(T, dtype=np.int64))
        returns.append(float(rw.sum()))
        lengths.append(T)
        policies.append(r.metadata.policy_id)
        configs.append(r.metadata.config_id)
    if expected_cells is None:
        m = pack.header.get("generation_spec", {}).get("matrix", {})
        expected_cells = len(m.get("policies", [])) * len(m.get("configs", [])) or None
    return HealthInput(
        observations=np.concatenate(obs),
        actions=np.concatenate(actions),
        rewards=np.concatenate(rewards),
        action_names=pack.action_names,
        episode_index=np.concatenate(ep_index),
        timestep=np.concatenate(timestep),
        episode_returns=np.asarray(returns),
        episode_lengths=np.asarray(lengths),
        episode_policy=np.asarray(policies),
        episode_config=np.asarray(configs),
        max_epochs=pack.max_epochs,
        expected_cells=expected_cells,
    )
