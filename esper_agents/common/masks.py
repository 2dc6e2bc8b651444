"""Legal-action masks inside the observation: ``observation = concat(features, mask)``.

Learners that store only observations (d3rlpy's ReplayBuffer stores observation, action,
reward and terminal) and agents that act on one array see the mask this way: 0.0 / 1.0 floats
in the last ``n_actions`` entries.

* Env side: :class:`MaskInObservation` wraps an env with a ``Discrete`` action space whose
  ``info["action_mask"]`` is the exact legality of each action (``CompactActions`` or
  ``ClassicActions``), and also answers ``action_masks()`` (what sb3-contrib's MaskablePPO reads).
* Dataset side: :func:`with_mask` appends logged masks to logged features; :func:`strip_mask`
  splits them apart again.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["MaskInObservation", "strip_mask", "with_mask"]


class MaskInObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Appends ``info["action_mask"]`` (as 0.0 / 1.0) to the observation.

    Needs a ``Discrete(n)`` action space and an exact boolean mask of length ``n`` in
    ``info["action_mask"]`` at reset and at every step, which :class:`esper_env.wrappers.CompactActions`
    and :class:`esper_env.wrappers.ClassicActions` provide (or a ``MultiDiscrete`` space and its
    per-head masks, ``sum(nvec)`` of them, as :class:`~esper_agents.common.options.GrowOptions` gives). The observation becomes
    ``concat(features, mask)`` of length ``features + n``; ``info["action_mask"]`` is kept.

    >>> import gymnasium, esper_env
    >>> from esper_env.wrappers import CompactActions
    >>> env = MaskInObservation(CompactActions(gymnasium.make("Esper-SynthCIFAR-v2", fidelity="test")))
    >>> obs, info = env.reset(seed=0)
    >>> bool((obs[-env.n_actions:] == info["action_mask"]).all())
    True
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        per_head = (
            isinstance(env.action_space, spaces.MultiDiscrete)
            and env.action_space != env.unwrapped.action_space
        )
        if not (isinstance(env.action_space, spaces.Discrete) or per_head):
            raise TypeError(
                f"MaskInObservation needs a Discrete action space (wrap the env in CompactActions or "
                f"ClassicActions first), or a wrapper's MultiDiscrete one with per-head masks (GrowOptions), got {env.action_space}"
            )
        inner = env.observation_space
        if not isinstance(inner, spaces.Box) or len(inner.shape) != 1:
            raise TypeError(f"MaskInObservation needs a flat Box observation space, got {inner}")
        space = env.action_space
        self.n_actions = int(space.n) if isinstance(space, spaces.Discrete) else int(np.sum(space.nvec))
        self.n_features = int(inner.shape[0])
        self.observation_space = spaces.Box(
            low=np.concatenate([inner.low, np.zeros(self.n_actions, dtype=inner.dtype)]),
            high=np.concatenate([inner.high, np.ones(self.n_actions, dtype=inner.dtype)]),
            dtype=np.float32,
        )
        self._mask = np.ones(self.n_actions, dtype=bool)

    def _take_mask(self, info: dict[str, Any]) -> None:
        mask = np.asarray(info.get("action_mask"))
        if mask.shape != (self.n_actions,) or mask.dtype != bool:
            raise ValueError(
                f'info["action_mask"] must be a boolean vector of length {self.n_actions} (one entry per '
                f"discrete action), got dtype {mask.dtype} and shape {mask.shape}"
            )
        self._mask = mask

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._take_mask(info)
        return self.observation(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._take_mask(info)
        return self.observation(obs), reward, terminated, truncated, info

    def observation(self, observation: Any) -> np.ndarray:
        return with_mask(observation, self._mask)

    def action_masks(self) -> np.ndarray:
        """The current mask (sb3-contrib's MaskablePPO reads this)."""
        return self._mask.copy()


def with_mask(features: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``concat(features, masks as 0.0/1.0)`` along the last axis, as float32.

    ``features`` is ``(..., F)`` and ``masks`` ``(..., n_actions)`` booleans (or 0/1 numbers) with
    the same leading shape: one observation, or a whole episode at once.
    """
    features = np.asarray(features, dtype=np.float32)
    masks = np.asarray(masks)
    if masks.dtype != bool:
        if not np.isin(masks, (0, 1)).all():
            raise ValueError("masks must be booleans or 0/1 values")
        masks = masks.astype(bool)
    if features.shape[:-1] != masks.shape[:-1]:
        raise ValueError(f"features {features.shape} and masks {masks.shape} must share their leading shape")
    return np.concatenate([features, masks.astype(np.float32)], axis=-1)


def strip_mask(observations: np.ndarray, n_actions: int) -> tuple[np.ndarray, np.ndarray]:
    """NumPy inverse of :func:`with_mask`: ``(features, boolean masks)``."""
    observations = np.asarray(observations)
    if observations.shape[-1] <= n_actions:
        raise ValueError(
            f"observations of size {observations.shape[-1]} cannot hold a mask of {n_actions} actions"
        )
    return observations[..., :-n_actions], observations[..., -n_actions:] > 0.5
