"""Offline datasets: logged episodes, d3rlpy ReplayBuffers with masks, RWBC relabeling, rollouts.

An :class:`OfflineEpisode` is one logged episode in the shape offline training needs: features
and exact masks for all ``T + 1`` states (the final state included), ``T`` actions and rewards,
whether it terminated, and its final validation accuracy. :func:`build_replay_buffer` turns
records into a d3rlpy ReplayBuffer whose observations are ``concat(features, mask)``:

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
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from d3rlpy.constants import ActionSpace
from d3rlpy.dataset import Episode, InfiniteBuffer, ReplayBuffer

from esper_agents.generation.exports import episode_from_arrays
from esper_agents.offline.masks import MaskInObservation, strip_mask, with_mask

__all__ = [
    "OfflineEpisode",
    "build_replay_buffer",
    "dataset_arrays",
    "rollout",
    "run_episode",
    "rwbc_dataset",
    "split_episodes",
]

#: An agent: masked observations ``(batch, features + n_actions)`` -> actions ``(batch,)``.
#: A d3rlpy algorithm's ``predict`` is one.
Agent = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass
class OfflineEpisode:
    """One logged episode.

    Attributes:
        features: ``(T + 1, F)`` float32 observations without the mask (the final state last).
        masks: ``(T + 1, n_actions)`` booleans: the exact legality in each state.
        actions: ``(T,)`` discrete actions taken.
        rewards: ``(T,)`` rewards.
        terminated: the episode ended by termination (not truncation).
        final_accuracy: final validation accuracy (a fraction), for reward-weighted imitation.
        info: the last step's info summary (JSON-able scalars), if any.
    """

    features: np.ndarray
    masks: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool
    final_accuracy: float
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float32)
        self.masks = np.asarray(self.masks, dtype=bool)
        self.actions = np.asarray(self.actions, dtype=np.int64).reshape(-1)
        self.rewards = np.asarray(self.rewards, dtype=np.float32).reshape(-1)
        T = len(self.actions)
        if T < 1 or self.rewards.shape != (T,):
            raise ValueError(
                f"an episode needs T >= 1 actions and T rewards, got {T} and {self.rewards.shape}"
            )
        if self.features.ndim != 2 or len(self.features) != T + 1 or self.masks.shape[0] != T + 1:
            raise ValueError(
                f"features {self.features.shape} and masks {self.masks.shape} must have T + 1 = {T + 1} rows"
            )
        if (self.actions < 0).any() or (self.actions >= self.n_actions).any():
            raise ValueError(
                f"actions must be in 0..{self.n_actions - 1}, got {sorted(set(self.actions.tolist()))}"
            )
        illegal = np.flatnonzero(~self.masks[np.arange(T), self.actions])
        if len(illegal):
            raise ValueError(
                f"logged actions are illegal under their masks at steps {illegal.tolist()}: a masked learner "
                "cannot imitate or evaluate them (log the executed action, or the legal one taken)"
            )

    @property
    def n_actions(self) -> int:
        return int(self.masks.shape[1])

    def __len__(self) -> int:
        return len(self.actions)

    def to_d3rlpy(self) -> Episode:
        obs = with_mask(self.features, self.masks)
        return episode_from_arrays(obs, self.actions, self.rewards, self.terminated, self.n_actions)


def build_replay_buffer(records: Sequence[OfflineEpisode]) -> ReplayBuffer:
    """A d3rlpy ReplayBuffer (masked observations) holding every transition of ``records``."""
    if not records:
        raise ValueError("no episodes to build a dataset from")
    n_actions = {r.n_actions for r in records}
    n_features = {r.features.shape[1] for r in records}
    if len(n_actions) != 1 or len(n_features) != 1:
        raise ValueError(f"episodes disagree on action count {n_actions} or feature count {n_features}")
    return ReplayBuffer(
        InfiniteBuffer(),
        episodes=[r.to_d3rlpy() for r in records],
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
    records: Sequence[OfflineEpisode], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[OfflineEpisode], list[OfflineEpisode]]:
    """Split by episode, not by decision (seed 002: decisions of one episode are correlated)."""
    if not 0.0 < val_fraction < 1.0 or len(records) < 2:
        raise ValueError(
            f"need >= 2 episodes and val_fraction in (0, 1), got {len(records)} and {val_fraction!r}"
        )
    order = np.random.default_rng(seed).permutation(len(records))
    n_val = min(max(1, int(round(val_fraction * len(records)))), len(records) - 1)
    return [records[i] for i in order[n_val:]], [records[i] for i in order[:n_val]]


def rwbc_dataset(
    records: Sequence[OfflineEpisode],
    mode: str = "filter",
    quantile: float = 0.5,
    baseline: float | None = None,
    scale: float | None = None,
) -> tuple[list[OfflineEpisode], dict[str, float]]:
    """Relabel episodes for reward-weighted imitation: every step's reward becomes its
    episode's weight (what :class:`~esper_agents.offline.bc.RewardWeightedBC` multiplies the
    loss by).

    * ``mode="filter"`` (seed 001, option C): keep the episodes whose final accuracy is at or
      above the ``quantile`` of final accuracies, each with weight 1.
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


# --------------------------------------------------------------------------------------------- rollouts


def run_episode(env: MaskInObservation, agent: Agent, seed: int | None = None) -> tuple[OfflineEpisode, int]:
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
        OfflineEpisode(
            features, masks, np.array(actions), np.array(rewards), bool(terminated), float(final), summary
        ),
        illegal,
    )


def rollout(
    env: MaskInObservation, agent: Agent, episodes: int, seed: int = 0
) -> tuple[list[OfflineEpisode], int]:
    """``episodes`` episodes seeded ``seed, seed + 1, ...``; the records and total illegal actions."""
    records, illegal = [], 0
    for i in range(episodes):
        record, bad = run_episode(env, agent, seed=seed + i)
        records.append(record)
        illegal += bad
    return records, illegal


# --------------------------------------------------------------------------------------------- packs


def load_pack(
    path: str | os.PathLike, reward_mode: str | None = None, *, partial: bool = False
) -> tuple[list[OfflineEpisode], dict[str, Any]]:
    """The episodes of a generation pack as :class:`OfflineEpisode` (exact masks included), and
    a description of the source for training summaries.

    Reads through the generation package's export API (:mod:`esper_agents.generation.exports`:
    ``iter_records``, ``episode_rewards``, ``reward_config``), never the pack's files.
    ``reward_mode`` relabels the rewards from the logged components ("shaped", "sparse",
    "contribution"); None keeps the logged ones. :func:`build_replay_buffer` of the result holds
    the same transitions as ``exports.to_d3rlpy(pack, reward_mode, append_mask=True)``.
    An incomplete pack (planned episodes missing) is an error unless ``partial``.
    """
    from esper_agents.generation import exports
    from esper_agents.generation.packs import open_pack

    pack = open_pack(path, partial=partial)
    if len(pack) == 0:
        raise ValueError(f"the pack {str(path)!r} has no episodes")
    cfg = None if reward_mode is None else exports.reward_config(pack, reward_mode)
    episodes = []
    for record in exports.iter_records(pack):
        meta = record.metadata
        episodes.append(
            OfflineEpisode(
                features=record.arrays["observations"],
                masks=record.arrays["masks"],
                actions=record.arrays["actions"],
                rewards=exports.episode_rewards(record, cfg),
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
        "reward_mode": reward_mode or pack.reward_config.get("mode"),
    }
    return episodes, source
