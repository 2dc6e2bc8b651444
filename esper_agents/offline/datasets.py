"""Offline datasets: packs as logged episodes, d3rlpy ReplayBuffers with masks, RWBC relabeling.

:func:`load_pack` reads a generation pack as :class:`~esper_agents.common.episodes.LoggedEpisode`
records (features and exact masks for all ``T + 1`` states, ``T`` actions and rewards).
:func:`build_replay_buffer` turns records into a d3rlpy ReplayBuffer whose observations are
``concat(features, mask)``:

* a TRUNCATED episode (the usual ``max_epochs`` end) keeps all ``T`` transitions: its final
  state is stored as a ``T + 1``-th observation with a dummy WAIT action and reward 0, which
  d3rlpy never samples as a transition (``transition_count = size - 1`` when not terminated),
  so the last real transition bootstraps from the true final state and its mask;
* a TERMINATED episode stores its ``T`` states; d3rlpy gives the last transition a zero next
  observation and ``terminal = 1``.

The action size is set explicitly (the compact action count), not guessed from the largest
logged action.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from d3rlpy.constants import ActionSpace
from d3rlpy.dataset import Episode, InfiniteBuffer, ReplayBuffer

from esper_agents.common.episodes import LoggedEpisode
from esper_agents.common.masks import with_mask
from esper_agents.generation.exports import episode_from_arrays

__all__ = [
    "build_replay_buffer",
    "dataset_arrays",
    "episode_to_d3rlpy",
    "load_pack",
    "rwbc_dataset",
    "split_episodes",
]


def episode_to_d3rlpy(record: LoggedEpisode) -> Episode:
    """``record`` as a d3rlpy ``Episode`` of masked observations (see the module docstring)."""
    obs = with_mask(record.features, record.masks)
    return episode_from_arrays(obs, record.actions, record.rewards, record.terminated, record.n_actions)


def build_replay_buffer(records: Sequence[LoggedEpisode]) -> ReplayBuffer:
    """A d3rlpy ReplayBuffer (masked observations) holding every transition of ``records``."""
    if not records:
        raise ValueError("no episodes to build a dataset from")
    n_actions = {r.n_actions for r in records}
    n_features = {r.features.shape[1] for r in records}
    if len(n_actions) != 1 or len(n_features) != 1:
        raise ValueError(f"episodes disagree on action count {n_actions} or feature count {n_features}")
    return ReplayBuffer(
        InfiniteBuffer(),
        episodes=[episode_to_d3rlpy(r) for r in records],
        action_space=ActionSpace.DISCRETE,
        action_size=n_actions.pop(),
    )


def dataset_arrays(buffer: ReplayBuffer) -> dict[str, np.ndarray]:
    """Every transition of ``buffer`` as arrays: ``observations`` (masked), ``actions``,
    ``rewards``, ``episode`` (index of its episode) and ``timestep``."""
    obs, actions, rewards, episode, timestep = [], [], [], [], []
    for i, ep in enumerate(buffer.episodes):
        n = ep.transition_count
        obs.append(np.asarray(ep.observations)[:n])
        actions.append(np.asarray(ep.actions).reshape(-1)[:n])
        rewards.append(np.asarray(ep.rewards).reshape(-1)[:n])
        episode.append(np.full(n, i))
        timestep.append(np.arange(n))
    return {
        "observations": np.concatenate(obs).astype(np.float32),
        "actions": np.concatenate(actions).astype(np.int64),
        "rewards": np.concatenate(rewards).astype(np.float32),
        "episode": np.concatenate(episode),
        "timestep": np.concatenate(timestep),
    }


def split_episodes(
    records: Sequence[LoggedEpisode], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[LoggedEpisode], list[LoggedEpisode]]:
    """Split by episode, not by decision (as the original imitation design notes, the decisions of
    one episode are correlated)."""
    if not 0.0 < val_fraction < 1.0 or len(records) < 2:
        raise ValueError(
            f"need >= 2 episodes and val_fraction in (0, 1), got {len(records)} and {val_fraction!r}"
        )
    order = np.random.default_rng(seed).permutation(len(records))
    n_val = min(max(1, round(val_fraction * len(records))), len(records) - 1)
    return [records[i] for i in order[n_val:]], [records[i] for i in order[:n_val]]


def rwbc_dataset(
    records: Sequence[LoggedEpisode],
    mode: str = "filter",
    quantile: float = 0.5,
    baseline: float | None = None,
    scale: float | None = None,
) -> tuple[list[LoggedEpisode], dict[str, float]]:
    """Relabel episodes for reward-weighted imitation: every step's reward becomes its
    episode's weight (what :class:`~esper_agents.offline.bc.RewardWeightedBC` multiplies the
    loss by).

    * ``mode="filter"`` (the original improvement roadmap, option C): keep the episodes whose
      final accuracy is at or above the ``quantile`` of final accuracies, each with weight 1.
    * ``mode="weight"`` (option A): weight ``max(0, (final_acc - baseline) / scale)``; ``baseline``
      defaults to the lowest final accuracy, ``scale`` to their standard deviation (1 if 0).
      Episodes of weight 0 are dropped and the weights are normalised to mean 1 per transition.

    Returns the relabeled records and the parameters used (``baseline``, ``scale``,
    ``threshold``, ``kept_episodes``).
    """
    if not records:
        raise ValueError("no episodes to weight")
    acc = np.array([r.final_accuracy for r in records], dtype=np.float64)
    if not np.isfinite(acc).all():
        raise ValueError("every episode needs a finite final accuracy for reward-weighted imitation")
    if mode == "filter":
        if not 0.0 <= quantile <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {quantile!r}")
        threshold = float(np.quantile(acc, quantile))
        weights = (acc >= threshold).astype(np.float64)
        used = {"threshold": threshold, "quantile": float(quantile)}
    elif mode == "weight":
        base = float(acc.min()) if baseline is None else float(baseline)
        spread = float(acc.std()) if scale is None else float(scale)
        if scale is None and spread == 0.0:
            spread = 1.0
        if not spread > 0.0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        weights = np.clip((acc - base) / spread, 0.0, None)
        used = {"baseline": base, "scale": spread}
    else:
        raise ValueError(
            f"unknown RWBC mode {mode!r}; valid modes are: 'filter' (option C), 'weight' (option A)"
        )
    keep = weights > 0.0
    if not keep.any():
        # Every episode at the baseline: nothing is better than anything else, imitate them all.
        keep, weights = np.ones_like(keep), np.ones_like(weights)
    steps = np.array([len(r) for r in records], dtype=np.float64)
    weights = weights / (np.sum(weights[keep] * steps[keep]) / np.sum(steps[keep]))
    out = [
        dataclasses.replace(r, rewards=np.full(len(r), w, dtype=np.float32))
        for r, w, k in zip(records, weights, keep)
        if k
    ]
    return out, {**used, "kept_episodes": int(keep.sum()), "episodes": len(records)}


# --------------------------------------------------------------------------------------------- packs


def load_pack(
    path: str | os.PathLike, reward_mode: str | None = None, *, partial: bool = False
) -> tuple[list[LoggedEpisode], dict[str, Any]]:
    """The episodes of a generation pack as :class:`LoggedEpisode` (exact masks included), and
    a description of the source for training summaries.

    Reads through the generation package's pack API (:func:`~esper_agents.generation.packs.iter_records`,
    :mod:`esper_agents.generation.relabel`), never the pack's files.
    ``reward_mode`` relabels the rewards from the logged components ("shaped", "sparse",
    "contribution"); None keeps the logged ones. :func:`build_replay_buffer` of the result holds
    the same transitions as ``exports.to_d3rlpy(pack, reward_mode, append_mask=True)``.
    An incomplete pack (planned episodes missing) is an error unless ``partial``.
    """
    from esper_agents.generation.packs import iter_records, open_pack
    from esper_agents.generation.relabel import episode_rewards, reward_config

    pack = open_pack(path, partial=partial)
    if len(pack) == 0:
        raise ValueError(f"the pack {str(path)!r} has no episodes")
    cfg = None if reward_mode is None else reward_config(pack, reward_mode)
    episodes = []
    for record in iter_records(pack):
        meta = record.metadata
        episodes.append(
            LoggedEpisode(
                features=record.arrays["observations"],
                masks=record.arrays["masks"],
                actions=record.arrays["actions"],
                rewards=episode_rewards(record, cfg),
                terminated=bool(meta.done),
                final_accuracy=float(meta.final_accuracy),
                info={
                    "episode_id": meta.episode_id,
                    "policy_id": meta.policy_id,
                    "config_id": meta.config_id,
                },
            )
        )
    source = {
        "pack": os.fspath(path),
        "name": pack.name,
        "episodes": len(pack),
        "transitions": int(pack.n_transitions),
        "n_actions": int(pack.n_actions),
        "environment": pack.environment,
        "reward_mode": reward_mode or pack.settings.reward,
    }
    return episodes, source
