"""Implicit Q-Learning for discrete, masked actions (d3rlpy has only the continuous IQL).

Three networks, as in Kostrikov et al. (2021) and d3rlpy's continuous :class:`~d3rlpy.algos.IQL`,
with a discrete Q-function (one output per action, ``n_critics`` of them), a state-value
function V and a categorical policy:

* value loss: ``expectile_loss(Q_targ(s, a) - V(s), expectile)`` with ``Q_targ`` the minimum
  over the target critics at the logged action (see :func:`expectile_loss` for the convention);
* Q loss: ``(Q(s, a) - (r + gamma * (1 - terminal) * V(s')))^2`` for each critic: the target
  never queries an action, so the mask plays no part in it;
* policy: advantage-weighted regression, ``-exp(weight_temp * (Q_targ(s, a) - V(s)))`` clipped
  at ``max_weight`` times ``log pi(a | s)``, with ``pi`` a softmax over the LEGAL actions only
  (illegal logits are masked before the softmax);
* target critics follow the critics by Polyak averaging with rate ``tau``.

Greedy action: argmax of the masked policy logits; ``sample_action`` samples the masked
softmax. ``predict_value`` is the mean critic's Q(s, a).

Names follow d3rlpy's IQLConfig: ``expectile`` is the paper's tau, ``weight_temp`` its beta
(inverse temperature), ``tau`` the target-network rate.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from d3rlpy.algos.qlearning import QLearningAlgoBase
from d3rlpy.algos.qlearning.base import QLearningAlgoImplBase
from d3rlpy.algos.qlearning.torch.utility import DiscreteQFunctionMixin
from d3rlpy.base import DeviceArg, LearnableConfig, register_learnable
from d3rlpy.constants import ActionSpace
from d3rlpy.models.builders import (
    create_categorical_policy,
    create_discrete_q_function,
    create_value_function,
)
from d3rlpy.models.encoders import EncoderFactory
from d3rlpy.models.q_functions import MeanQFunctionFactory
from d3rlpy.models.torch import CategoricalPolicy, DiscreteEnsembleQFunctionForwarder, ValueFunction
from d3rlpy.optimizers.optimizers import OptimizerFactory, OptimizerWrapper, make_optimizer_field
from d3rlpy.torch_utility import Modules, TorchMiniBatch, hard_sync, soft_sync
from d3rlpy.types import Shape, TorchObservation
from torch import nn

from esper_agents.offline.encoders import (
    check_masked_config,
    make_masked_encoder_field,
    resolve_encoder_factory,
)
from esper_agents.offline.masks import LOSS_FILL, legal_mask, masked_argmax, masked_fill

__all__ = ["DiscreteIQL", "DiscreteIQLConfig", "DiscreteIQLImpl", "DiscreteIQLModules", "expectile_loss"]


def expectile_loss(u: torch.Tensor, expectile: float) -> torch.Tensor:
    """Elementwise ``|expectile - 1(u < 0)| * u**2``, with ``u = target - prediction``.

    In IQL ``u = Q(s, a) - V(s)``. With ``expectile`` above 0.5 a prediction BELOW its target
    (``u > 0``, under-estimate) costs ``expectile * u**2`` and one above it costs
    ``(1 - expectile) * u**2``, so V settles at an upper expectile of Q over the data's actions.
    At 0.5 the loss is ``0.5 * u**2`` (half the squared error; V is the mean).
    """
    if not 0.0 < expectile < 1.0:
        raise ValueError(f"expectile must be in (0, 1), got {expectile!r}")
    weight = torch.abs(expectile - (u < 0.0).to(u.dtype))
    return weight * u.pow(2)


@dataclasses.dataclass(frozen=True)
class DiscreteIQLModules(Modules):
    policy: CategoricalPolicy
    q_funcs: nn.ModuleList
    targ_q_funcs: nn.ModuleList
    value_func: ValueFunction
    actor_optim: OptimizerWrapper
    critic_optim: OptimizerWrapper


class DiscreteIQLImpl(DiscreteQFunctionMixin, QLearningAlgoImplBase):
    _modules: DiscreteIQLModules

    def __init__(
        self,
        observation_shape: Shape,
        action_size: int,
        modules: DiscreteIQLModules,
        q_func_forwarder: DiscreteEnsembleQFunctionForwarder,
        targ_q_func_forwarder: DiscreteEnsembleQFunctionForwarder,
        gamma: float,
        tau: float,
        expectile: float,
        weight_temp: float,
        max_weight: float,
        device: str,
    ) -> None:
        super().__init__(
            observation_shape=observation_shape, action_size=action_size, modules=modules, device=device
        )
        self._q_func_forwarder = q_func_forwarder
        self._targ_q_func_forwarder = targ_q_func_forwarder
        self._gamma = gamma
        self._tau = tau
        self._expectile = expectile
        self._weight_temp = weight_temp
        self._max_weight = max_weight
        hard_sync(modules.targ_q_funcs, modules.q_funcs)

    def legal(self, x: TorchObservation) -> torch.Tensor:
        assert isinstance(x, torch.Tensor)
        return legal_mask(x, self.action_size)

    def _target_q(self, obs: TorchObservation, actions: torch.Tensor) -> torch.Tensor:
        """``min`` over the target critics of Q(s, a) at the logged actions, ``(batch, 1)``."""
        with torch.no_grad():
            values = self._targ_q_func_forwarder.compute_expected_q(obs, reduction="min")
            return values.gather(1, actions.view(-1, 1))

    def compute_critic_loss(self, batch: TorchMiniBatch) -> dict[str, torch.Tensor]:
        actions = batch.actions.long().view(-1, 1)
        with torch.no_grad():
            y = batch.rewards + (self._gamma**batch.intervals) * (
                1.0 - batch.terminals
            ) * self._modules.value_func(batch.next_observations)
        # (n_critics, batch, actions) -> (n_critics, batch, 1)
        q_all = self._q_func_forwarder.compute_expected_q(batch.observations, reduction="none")
        q = q_all.gather(2, actions.unsqueeze(0).expand(q_all.shape[0], -1, -1))
        q_loss = (q - y.unsqueeze(0)).pow(2).mean(dim=(1, 2)).sum()
        v = self._modules.value_func(batch.observations)
        v_loss = expectile_loss(self._target_q(batch.observations, actions) - v, self._expectile).mean()
        return {"critic_loss": q_loss + v_loss, "q_loss": q_loss, "v_loss": v_loss}

    def compute_actor_loss(self, batch: TorchMiniBatch) -> dict[str, torch.Tensor]:
        actions = batch.actions.long().view(-1, 1)
        with torch.no_grad():
            advantage = self._target_q(batch.observations, actions) - self._modules.value_func(
                batch.observations
            )
            weight = torch.exp(self._weight_temp * advantage).clamp(max=self._max_weight)
        logits = masked_fill(
            self._modules.policy(batch.observations).logits, self.legal(batch.observations), LOSS_FILL
        )
        log_prob = F.log_softmax(logits, dim=1).gather(1, actions)
        return {
            "actor_loss": -(weight * log_prob).mean(),
            "advantage": advantage.mean(),
            "weight": weight.mean(),
        }

    def inner_update(self, batch: TorchMiniBatch, grad_step: int) -> dict[str, float]:
        self._modules.critic_optim.zero_grad()
        critic = self.compute_critic_loss(batch)
        critic["critic_loss"].backward()
        self._modules.critic_optim.step()

        self._modules.actor_optim.zero_grad()
        actor = self.compute_actor_loss(batch)
        actor["actor_loss"].backward()
        self._modules.actor_optim.step()

        soft_sync(self._modules.targ_q_funcs, self._modules.q_funcs, self._tau)
        return {k: float(v.detach().cpu()) for k, v in {**critic, **actor}.items()}

    def policy_logits(self, x: TorchObservation) -> torch.Tensor:
        """Policy logits with illegal actions at -inf."""
        return masked_fill(self._modules.policy(x).logits, self.legal(x))

    def inner_predict_best_action(self, x: TorchObservation) -> torch.Tensor:
        return masked_argmax(self._modules.policy(x).logits, self.legal(x))

    def inner_sample_action(self, x: TorchObservation) -> torch.Tensor:
        return torch.distributions.Categorical(logits=self.policy_logits(x)).sample()

    @property
    def policy(self) -> CategoricalPolicy:  # type: ignore[override]
        return self._modules.policy

    @property
    def policy_optim(self) -> torch.optim.Optimizer:
        return self._modules.actor_optim.optim

    @property
    def q_function(self) -> nn.ModuleList:
        return self._modules.q_funcs

    @property
    def q_function_optim(self) -> torch.optim.Optimizer:
        return self._modules.critic_optim.optim


@dataclasses.dataclass()
class DiscreteIQLConfig(LearnableConfig):
    r"""Config of :class:`DiscreteIQL` (Implicit Q-Learning with discrete, masked actions).

    Observations must end with the legal-action mask (one 0/1 entry per action); see
    :mod:`esper_agents.offline.masks`.

    Args:
        actor_learning_rate: learning rate of the policy.
        critic_learning_rate: learning rate of the critics and the value function.
        actor_optim_factory, critic_optim_factory: optimizers (Adam by default).
        actor_encoder_factory, critic_encoder_factory, value_encoder_factory: encoders; default
            a features-only MLP (256, 256) that drops the mask.
        batch_size: mini-batch size.
        gamma: discount factor.
        tau: target critic Polyak rate.
        n_critics: number of critics (the targets take their minimum).
        expectile: expectile of the value loss (the paper's tau); 0.5 regresses V on the mean.
        weight_temp: inverse temperature of the advantage weights (the paper's beta).
        max_weight: the advantage weights are clipped at this value.
    """

    actor_learning_rate: float = 3e-4
    critic_learning_rate: float = 3e-4
    # The make_*_field helpers return dataclasses.field(default_factory=...): d3rlpy's idiom.
    actor_optim_factory: OptimizerFactory = make_optimizer_field()
    critic_optim_factory: OptimizerFactory = make_optimizer_field()
    actor_encoder_factory: EncoderFactory = make_masked_encoder_field()
    critic_encoder_factory: EncoderFactory = make_masked_encoder_field()
    value_encoder_factory: EncoderFactory = make_masked_encoder_field()
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005
    n_critics: int = 2
    expectile: float = 0.7
    weight_temp: float = 3.0
    max_weight: float = 100.0

    def create(self, device: DeviceArg = False, enable_ddp: bool = False) -> DiscreteIQL:
        return DiscreteIQL(self, device, enable_ddp)

    @staticmethod
    def get_type() -> str:
        return "esper_discrete_iql"


class DiscreteIQL(QLearningAlgoBase[DiscreteIQLImpl, DiscreteIQLConfig]):
    def inner_create_impl(self, observation_shape: Shape, action_size: int) -> None:
        cfg = self._config
        if not 0.0 < cfg.expectile < 1.0:
            raise ValueError(f"expectile must be in (0, 1), got {cfg.expectile!r}")
        check_masked_config(cfg, action_size)
        actor_enc = resolve_encoder_factory(cfg.actor_encoder_factory, action_size)
        critic_enc = resolve_encoder_factory(cfg.critic_encoder_factory, action_size)
        value_enc = resolve_encoder_factory(cfg.value_encoder_factory, action_size)
        policy = create_categorical_policy(
            observation_shape, action_size, actor_enc, device=self._device, enable_ddp=self._enable_ddp
        )
        q_funcs, q_func_forwarder = create_discrete_q_function(
            observation_shape, action_size, critic_enc, MeanQFunctionFactory(), n_ensembles=cfg.n_critics,
            device=self._device, enable_ddp=self._enable_ddp,
        )  # fmt: skip
        targ_q_funcs, targ_q_func_forwarder = create_discrete_q_function(
            observation_shape, action_size, critic_enc, MeanQFunctionFactory(), n_ensembles=cfg.n_critics,
            device=self._device, enable_ddp=self._enable_ddp,
        )  # fmt: skip
        value_func = create_value_function(
            observation_shape, value_enc, device=self._device, enable_ddp=self._enable_ddp
        )
        actor_optim = cfg.actor_optim_factory.create(
            policy.named_modules(), lr=cfg.actor_learning_rate, compiled=self.compiled
        )
        critic_optim = cfg.critic_optim_factory.create(
            list(q_funcs.named_modules()) + list(value_func.named_modules()),
            lr=cfg.critic_learning_rate,
            compiled=self.compiled,
        )
        modules = DiscreteIQLModules(
            policy=policy, q_funcs=q_funcs, targ_q_funcs=targ_q_funcs, value_func=value_func,
            actor_optim=actor_optim, critic_optim=critic_optim,
        )  # fmt: skip
        self._impl = DiscreteIQLImpl(
            observation_shape=observation_shape, action_size=action_size, modules=modules,
            q_func_forwarder=q_func_forwarder, targ_q_func_forwarder=targ_q_func_forwarder, gamma=cfg.gamma,
            tau=cfg.tau, expectile=cfg.expectile, weight_temp=cfg.weight_temp, max_weight=cfg.max_weight,
            device=self._device,
        )  # fmt: skip

    def get_action_type(self) -> ActionSpace:
        return ActionSpace.DISCRETE


register_learnable(DiscreteIQLConfig)
