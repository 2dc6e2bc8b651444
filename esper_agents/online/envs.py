"""The env stacks the online agents act in, one per algorithm, and their vectorized form.

* ``recurrent-ppo`` and ``maskable-ppo``: ``CompactActions`` (``Discrete(n)``, exact mask) inside
  :class:`~esper_agents.common.masks.MaskInObservation`, the stack offline agents are evaluated in
  (:func:`~esper_agents.common.evaluation.make_eval_env`). MaskablePPO reads ``action_masks()``;
  RecurrentPPO has no masks, so an illegal choice runs as WAIT (a soft no-op) and is counted.
* ``masked-recurrent-ppo``: the full factored ``MultiDiscrete`` space inside
  :class:`LegalityInObservation`, which appends the exact ``[6, num_slots]`` (op, slot) legality
  that the factored policy turns into dependent masks.

Every online agent therefore sees the legality in its observation, and its training rollouts
store it with the observation (no mask buffer is needed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

if TYPE_CHECKING:
    from esper_env.settings import EnvSettings

__all__ = ["LegalityInObservation", "make_online_env", "make_vec_env"]


class LegalityInObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Appends the env's exact (op, slot) legality, flattened, then its blueprint mask (the
    blueprints GERMINATE accepts on this host: an MLP host masks the spatial ones), as 0.0 / 1.0.

    The base env's action space stays ``MultiDiscrete``; :meth:`action_masks` is the same
    ``6 * num_slots + num_blueprints`` booleans (row-major: op, then slot; then the blueprints),
    what the factored policy of :class:`~esper_agents.online.factored_policy.FactoredLstmPolicy`
    masks its heads with.

    >>> import gymnasium, esper_env
    >>> env = LegalityInObservation(gymnasium.make("Esper-SynthCIFAR-v2", fidelity="test"))
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape[0] - env.n_features == env.legal_shape[0] * env.legal_shape[1] + len(env.unwrapped.blueprints)
    True
    """

    def __init__(self, env: gym.Env) -> None:
        from esper_env import EsperEnv

        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        if not isinstance(env.unwrapped, EsperEnv) or not isinstance(env.action_space, spaces.MultiDiscrete):
            raise TypeError(
                "LegalityInObservation needs an Esper env with its factored MultiDiscrete action space, got "
                f"{type(env.unwrapped).__name__} with {env.action_space}"
            )
        self.base = env.unwrapped
        inner = env.observation_space
        assert isinstance(inner, spaces.Box)
        self.n_features = int(inner.shape[0])
        self.legal_shape = tuple(self.base.legal_actions().shape)
        n = self.legal_shape[0] * self.legal_shape[1] + len(self.base.blueprints)
        self.observation_space = spaces.Box(
            low=np.concatenate([inner.low, np.zeros(n, dtype=np.float32)]),
            high=np.concatenate([inner.high, np.ones(n, dtype=np.float32)]),
            dtype=np.float32,
        )

    def observation(self, observation: Any) -> np.ndarray:
        return np.concatenate(
            [np.asarray(observation, dtype=np.float32), self.action_masks().astype(np.float32)]
        )

    def action_masks(self) -> np.ndarray:
        """The exact (op, slot) legality, flattened (``6 * num_slots`` booleans), then the blueprint mask."""
        return np.concatenate([self.base.legal_actions().reshape(-1), self.base.blueprint_mask()])


def make_online_env(algo: str, settings: EnvSettings | None = None) -> gym.Env:
    """The single env stack ``algo`` (a name of :data:`~esper_agents.online.algorithms.ONLINE_ALGORITHMS`)
    trains and is evaluated in, around the env ``settings`` builds (default: ``EnvSettings()``)."""
    from esper_agents.common.evaluation import make_eval_env
    from esper_agents.online.algorithms import get_online_algorithm
    from esper_env.settings import EnvSettings

    record = get_online_algorithm(algo)
    settings = settings if settings is not None else EnvSettings()
    if record.action_set == "factored":
        return LegalityInObservation(settings.make())
    return make_eval_env(settings, record.action_set)


def _env_factory(algo: str, settings: EnvSettings, seed: int) -> Callable[[], gym.Env]:
    def make() -> gym.Env:
        env = make_online_env(algo, settings)
        env.action_space.seed(seed)
        return env

    return make


def make_vec_env(
    algo: str,
    settings: EnvSettings | None = None,
    n_envs: int = 1,
    seed: int = 0,
    subprocess: bool | None = None,
) -> Any:
    """``n_envs`` copies of :func:`make_online_env` as an SB3 ``VecEnv``, env ``i`` seeded ``seed + i``
    (its action space now; its resets by the algorithm, whose ``seed`` seeds env ``i`` with ``seed + i``).

    ``subprocess`` (default: ``n_envs > 1``) runs each env in its own process
    (``SubprocVecEnv``); every env trains its host on ``settings.num_threads`` torch threads (default 1).
    """
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from esper_env.settings import EnvSettings

    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    settings = settings if settings is not None else EnvSettings()
    fns = [_env_factory(algo, settings, seed + i) for i in range(n_envs)]
    if subprocess if subprocess is not None else n_envs > 1:
        return SubprocVecEnv(fns)
    return DummyVecEnv(fns)
