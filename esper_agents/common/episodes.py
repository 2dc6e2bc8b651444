"""The episode record every agent of this package logs and learns from: :class:`LoggedEpisode`.

One logged episode: features and exact masks for all ``T + 1`` states (the final state
included), ``T`` actions and rewards, whether it terminated, and its final validation accuracy.
Offline training reads it from packs (:func:`esper_agents.offline.load_pack`), rollouts in the env
write it (:func:`esper_agents.common.rollout.run_episode`); it holds NumPy arrays only, so that
no learning library is needed to make or read one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["LoggedEpisode"]


@dataclasses.dataclass
class LoggedEpisode:
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
