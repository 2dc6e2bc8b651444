"""Discrete CQL that respects the legal-action mask carried in the observation.

d3rlpy's :class:`~d3rlpy.algos.DiscreteCQL` (Double-DQN TD loss plus ``alpha`` times the
conservative term ``logsumexp_a Q(s, a) - Q(s, a_data)``) with three changes, each using the
mask in the last ``action_size`` entries of the observation (:mod:`esper_agents.offline.masks`):

1. the bootstrap target's argmax over next actions is over the actions legal in the NEXT state;
2. the log-sum-exp of the conservative term runs over the actions legal in the current state
   (pushing down Q of actions that could never be taken would only distort the legal ones);
3. greedy actions (``predict``, ``sample_action``, and so DiscreteFQE's target policy) are the
   argmax over legal actions.

The Q-network sees only the features (:class:`~esper_agents.offline.encoders.MaskedVectorEncoderFactory`).
"""

from __future__ import annotations

import dataclasses

import torch
from d3rlpy.algos import DiscreteCQL, DiscreteCQLConfig
from d3rlpy.algos.qlearning.torch.cql_impl import DiscreteCQLImpl
from d3rlpy.base import DeviceArg, register_learnable
from d3rlpy.models.encoders import EncoderFactory
from d3rlpy.torch_utility import TorchMiniBatch
from d3rlpy.types import Shape, TorchObservation

from esper_agents.offline.encoders import (
    check_masked_config,
    make_masked_encoder_field,
    resolve_encoder_factory,
)
from esper_agents.offline.masks import legal_mask, masked_argmax, masked_fill

__all__ = ["MaskedDiscreteCQL", "MaskedDiscreteCQLConfig", "MaskedDiscreteCQLImpl"]


class MaskedDiscreteCQLImpl(DiscreteCQLImpl):
    def legal(self, x: TorchObservation) -> torch.Tensor:
        assert isinstance(x, torch.Tensor)
        return legal_mask(x, self.action_size)

    def compute_target(self, batch: TorchMiniBatch) -> torch.Tensor:
        # Double DQN: the online network picks the next action among the legal ones, the target
        # network values it.
        with torch.no_grad():
            next_values = self._q_func_forwarder.compute_expected_q(batch.next_observations)
            action = masked_argmax(next_values, self.legal(batch.next_observations))
            return self._targ_q_func_forwarder.compute_target(
                batch.next_observations, action, reduction="min"
            )

    def _compute_conservative_loss(self, obs_t: TorchObservation, act_t: torch.Tensor) -> torch.Tensor:
        values = self._q_func_forwarder.compute_expected_q(obs_t)
        logsumexp = torch.logsumexp(masked_fill(values, self.legal(obs_t)), dim=1, keepdim=True)
        data_values = values.gather(1, act_t.view(-1, 1).long())
        return (logsumexp - data_values).mean()

    def inner_predict_best_action(self, x: TorchObservation) -> torch.Tensor:
        return masked_argmax(self._q_func_forwarder.compute_expected_q(x), self.legal(x))


@dataclasses.dataclass()
class MaskedDiscreteCQLConfig(DiscreteCQLConfig):
    """Config of :class:`MaskedDiscreteCQL`: d3rlpy's DiscreteCQLConfig (same fields and defaults,
    ``alpha`` the conservative weight) with the features-only encoder as the default.

    Observations must end with the legal-action mask (one 0/1 entry per action); an
    ``observation_scaler`` must be :class:`~esper_agents.offline.encoders.MaskedStandardObservationScaler`.
    """

    # make_masked_encoder_field returns dataclasses.field(default_factory=...): d3rlpy's idiom.
    encoder_factory: EncoderFactory = make_masked_encoder_field()

    def create(self, device: DeviceArg = False, enable_ddp: bool = False) -> MaskedDiscreteCQL:
        return MaskedDiscreteCQL(self, device, enable_ddp)

    @staticmethod
    def get_type() -> str:
        return "esper_masked_discrete_cql"


class MaskedDiscreteCQL(DiscreteCQL):
    def inner_create_impl(self, observation_shape: Shape, action_size: int) -> None:
        check_masked_config(self._config, action_size)
        # Build d3rlpy's DiscreteCQL with the resolved encoder, then move its modules into ours.
        config = dataclasses.replace(
            self._config, encoder_factory=resolve_encoder_factory(self._config.encoder_factory, action_size)
        )
        base = DiscreteCQL(config, self._device, self._enable_ddp)
        base.inner_create_impl(observation_shape, action_size)
        impl = base.impl
        assert isinstance(impl, DiscreteCQLImpl)
        self._impl = MaskedDiscreteCQLImpl(
            observation_shape=observation_shape,
            action_size=action_size,
            modules=impl.modules,  # type: ignore[arg-type]
            q_func_forwarder=impl._q_func_forwarder,
            targ_q_func_forwarder=impl._targ_q_func_forwarder,
            target_update_interval=self._config.target_update_interval,
            gamma=self._config.gamma,
            alpha=self._config.alpha,
            compiled=self.compiled,
            device=self._device,
        )


register_learnable(MaskedDiscreteCQLConfig)
