"""Esper's masked recurrent PPO: sb3-contrib's ``RecurrentPPO`` with the factored, masked policy.

sb3-contrib has recurrence without masks (RecurrentPPO) and masks without recurrence
(MaskablePPO). :class:`MaskedRecurrentPPO` is a ``RecurrentPPO``: its rollout collection,
recurrent rollout buffer, GAE, PPO update, callbacks, logger and ``save``/``load`` are
sb3-contrib's. What it adds is the policy
(:class:`~esper_agents.online.factored_policy.FactoredLstmPolicy`: dependent exact masks,
op-conditioned critic, per-head entropy coefficients), a ``train/entropy_<head>`` log per head,
and ``predict(..., action_masks=...)`` in MaskablePPO's form.

The env must be an Esper env in :class:`~esper_agents.online.envs.LegalityInObservation` (the
legality rides in the observation, so the recurrent buffer stores it):

>>> import gymnasium, esper_env
>>> from esper_agents.online import LegalityInObservation
>>> env = LegalityInObservation(gymnasium.make("Esper-SynthCIFAR-v2", fidelity="test", max_epochs=2))
>>> model = MaskedRecurrentPPO("FactoredLstmPolicy", env, n_steps=4, batch_size=4, n_epochs=1, seed=0)
>>> _ = model.learn(4)
>>> obs, _ = env.reset(seed=0)
>>> action, state = model.predict(obs, episode_start=np.ones(1, dtype=bool), action_masks=env.action_masks())
>>> bool(env.unwrapped.is_legal_action(action))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from sb3_contrib import RecurrentPPO

from esper_agents.online.factored_policy import FactoredLstmPolicy

__all__ = ["FactoredLstmPolicy", "MaskedRecurrentPPO"]


class MaskedRecurrentPPO(RecurrentPPO):
    """PPO with an LSTM and exact, dependent action masks over Esper's factored action space.

    Takes RecurrentPPO's arguments; the policy is ``"FactoredLstmPolicy"`` (its
    ``policy_kwargs``: ``lstm_hidden_size``, ``head_hidden``, ``entropy_coef_per_head``).
    ``ent_coef`` scales the per-head weighted entropy.
    """

    policy_aliases: ClassVar[dict[str, type]] = {"FactoredLstmPolicy": FactoredLstmPolicy}
    policy: FactoredLstmPolicy

    def __init__(
        self, policy: str | type[FactoredLstmPolicy] = "FactoredLstmPolicy", env: Any = None, **kwargs: Any
    ):
        super().__init__(policy, env, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        if not isinstance(self.policy, FactoredLstmPolicy):
            raise ValueError(
                f"MaskedRecurrentPPO needs a FactoredLstmPolicy, got {type(self.policy).__name__}"
            )

    def train(self) -> None:
        self.policy.entropy_log.clear()
        super().train()
        log = self.policy.entropy_log
        if log:
            for head in log[0]:
                self.logger.record(f"train/entropy_{head}", float(np.mean([e[head] for e in log])))
        log.clear()

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | Sequence[Any] | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The policy's action (and next LSTM state) for ``observation``.

        ``action_masks`` (optional): the ``6 * num_slots`` (op, slot) legality and the blueprint
        mask per observation (``LegalityInObservation.action_masks()``); it replaces the legality
        the observation carries. Without it the observation's own legality is used.
        """
        if action_masks is not None:
            obs = np.array(observation, dtype=np.float32, copy=True)
            masks = np.asarray(action_masks, dtype=bool)
            n = self.policy.n_legal
            if (
                masks.shape[-1] != n
                or masks.reshape(-1, n).shape[0] != obs.reshape(-1, obs.shape[-1]).shape[0]
            ):
                raise ValueError(
                    f"action_masks must hold {n} (op, slot) and blueprint legality entries per observation, got shape "
                    f"{masks.shape} for observations {obs.shape}"
                )
            obs[..., -n:] = masks.reshape(obs.shape[:-1] + (n,))
            observation = obs
        return self.policy.predict(observation, state, episode_start, deterministic)
