"""Imitation: behavior cloning with effective-number class weights, and reward-weighted imitation.

The original roadmap's phase 1: a classifier from observation to the behavior policy's action, trained with
cross-entropy weighted per class by the *effective number of samples* (Cui et al., 2019):

    w_c = (1 - beta) / (1 - beta ** n_c),  beta = 0.999,

normalised so that the weights of the classes present sum to their number (absent classes get
weight 0: they are never a target). It is judged by balanced accuracy (the mean over classes
of per-class recall), not overall accuracy, because WAIT dominates the data.

Phase 2 (reward-weighted imitation, RWBC) is the same loss with each transition's term also
multiplied by a non-negative weight that the training data carries in its reward slot
(:func:`esper_agents.offline.datasets.rwbc_dataset` relabels a dataset: option C keeps the
episodes whose final accuracy clears a quantile, with weight 1; option A weights every step of
an episode by ``max(0, (final_acc - baseline) / scale)``).

Both are d3rlpy algorithms (config + implementation, registered), so saving
(:mod:`esper_agents.offline.saved`) and d3rlpy's ``fit`` logging work as for CQL and IQL. The policy is
a categorical MLP over the features; its softmax and argmax run over the legal actions only.

The loss, per mini-batch, with ``cw`` the class weight of the logged action and ``sw`` the
sample weight (1 for BC, the clipped reward for RWBC)::

    sum_i cw_i * sw_i * CE_i / sum_i cw_i

(PyTorch's weighted cross-entropy for BC; for RWBC the sample weights are normalised to mean 1
over the dataset, so the denominator does not depend on them.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from d3rlpy.algos.qlearning import QLearningAlgoBase
from d3rlpy.algos.qlearning.base import QLearningAlgoImplBase
from d3rlpy.base import DeviceArg, LearnableConfig, register_learnable
from d3rlpy.constants import ActionSpace
from d3rlpy.models.builders import create_categorical_policy
from d3rlpy.models.encoders import EncoderFactory
from d3rlpy.models.torch import CategoricalPolicy
from d3rlpy.optimizers.optimizers import OptimizerFactory, OptimizerWrapper, make_optimizer_field
from d3rlpy.torch_utility import Modules, TorchMiniBatch
from d3rlpy.types import Shape, TorchObservation

from esper_agents.offline.encoders import (
    check_masked_config,
    make_masked_encoder_field,
    resolve_encoder_factory,
)
from esper_agents.offline.masks import LOSS_FILL, legal_mask, masked_argmax, masked_fill

__all__ = [
    "DEFAULT_BETA",
    "MaskedDiscreteBC",
    "MaskedDiscreteBCConfig",
    "MaskedDiscreteBCImpl",
    "RewardWeightedBC",
    "RewardWeightedBCConfig",
    "classification_report",
    "effective_number_weights",
]

DEFAULT_BETA = 0.999


def effective_number_weights(counts: Sequence[int] | np.ndarray, beta: float = DEFAULT_BETA) -> np.ndarray:
    """``w_c = (1 - beta) / (1 - beta ** n_c)``, normalised to sum to the number of classes with
    ``n_c > 0``; classes with no sample get 0."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or (counts < 0).any():
        raise ValueError(f"counts must be a 1-D vector of non-negative numbers, got {counts!r}")
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    present = counts > 0
    if not present.any():
        raise ValueError("no class has any sample")
    weights = np.zeros_like(counts)
    weights[present] = (1.0 - beta) / (1.0 - np.power(beta, counts[present]))
    return weights / weights.sum() * present.sum()


def classification_report(predicted: np.ndarray, actual: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Balanced accuracy, accuracy, per-class accuracy (recall) and the confusion matrix.

    ``confusion[i][j]`` counts samples of true class ``i`` predicted as ``j``. Per-class accuracy
    and the balanced accuracy (their mean) cover the classes that occur in ``actual``.
    """
    predicted, actual = np.asarray(predicted, dtype=np.int64), np.asarray(actual, dtype=np.int64)
    if predicted.shape != actual.shape or predicted.ndim != 1 or not len(actual):
        raise ValueError(
            f"predicted {predicted.shape} and actual {actual.shape} must be equal non-empty 1-D shapes"
        )
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (actual, predicted), 1)
    support = confusion.sum(axis=1)
    per_class = {int(c): float(confusion[c, c] / support[c]) for c in range(n_classes) if support[c] > 0}
    return {
        "balanced_accuracy": float(np.mean(list(per_class.values()))),
        "accuracy": float(np.trace(confusion) / len(actual)),
        "per_class_accuracy": per_class,
        "support": {int(c): int(support[c]) for c in range(n_classes) if support[c] > 0},
        "confusion": confusion.tolist(),
    }


@dataclasses.dataclass(frozen=True)
class MaskedDiscreteBCModules(Modules):
    imitator: CategoricalPolicy
    optim: OptimizerWrapper


class MaskedDiscreteBCImpl(QLearningAlgoImplBase):
    _modules: MaskedDiscreteBCModules

    def __init__(
        self,
        observation_shape: Shape,
        action_size: int,
        modules: MaskedDiscreteBCModules,
        class_weights: Sequence[float],
        reward_weighted: bool,
        device: str,
    ) -> None:
        super().__init__(
            observation_shape=observation_shape, action_size=action_size, modules=modules, device=device
        )
        weights = (
            np.ones(action_size) if not len(class_weights) else np.asarray(class_weights, dtype=np.float64)
        )
        if weights.shape != (action_size,) or (weights < 0).any():
            raise ValueError(
                f"class_weights must be {action_size} non-negative numbers, got {list(class_weights)!r}"
            )
        self._class_weights = torch.tensor(weights, dtype=torch.float32, device=device)
        self._reward_weighted = reward_weighted

    def legal(self, x: TorchObservation) -> torch.Tensor:
        assert isinstance(x, torch.Tensor)
        return legal_mask(x, self.action_size)

    def compute_loss(self, batch: TorchMiniBatch) -> dict[str, torch.Tensor]:
        actions = batch.actions.long().view(-1)
        logits = masked_fill(
            self._modules.imitator(batch.observations).logits, self.legal(batch.observations), LOSS_FILL
        )
        ce = F.cross_entropy(logits, actions, reduction="none")
        cw = self._class_weights[actions]
        sw = batch.rewards.view(-1).clamp(min=0.0) if self._reward_weighted else torch.ones_like(cw)
        loss = (cw * sw * ce).sum() / cw.sum().clamp(min=1e-12)
        return {"loss": loss, "unweighted_ce": ce.mean()}

    def inner_update(self, batch: TorchMiniBatch, grad_step: int) -> dict[str, float]:
        self._modules.optim.zero_grad()
        losses = self.compute_loss(batch)
        losses["loss"].backward()
        self._modules.optim.step()
        return {k: float(v.detach().cpu()) for k, v in losses.items()}

    def inner_predict_best_action(self, x: TorchObservation) -> torch.Tensor:
        return masked_argmax(self._modules.imitator(x).logits, self.legal(x))

    def inner_sample_action(self, x: TorchObservation) -> torch.Tensor:
        logits = masked_fill(self._modules.imitator(x).logits, self.legal(x))
        return torch.distributions.Categorical(logits=logits).sample()

    def inner_predict_value(self, x: TorchObservation, action: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("behavior cloning has no value function")

    @property
    def policy(self) -> CategoricalPolicy:  # type: ignore[override]
        return self._modules.imitator

    @property
    def policy_optim(self) -> torch.optim.Optimizer:
        return self._modules.optim.optim


@dataclasses.dataclass()
class MaskedDiscreteBCConfig(LearnableConfig):
    """Config of :class:`MaskedDiscreteBC`.

    Args:
        learning_rate: Adam learning rate (the original imitation design's 1e-3).
        optim_factory: optimizer.
        encoder_factory: default a features-only MLP; the original imitation design used (64, 32).
        batch_size: mini-batch size.
        class_weights: one weight per action (empty: all 1). :meth:`with_class_weights` fills
            them from a dataset with :func:`effective_number_weights`.
        class_weight_beta: the beta those weights were computed with (a record; 0 if none).
    """

    batch_size: int = 100
    learning_rate: float = 1e-3
    # The make_*_field helpers return dataclasses.field(default_factory=...): d3rlpy's idiom.
    optim_factory: OptimizerFactory = make_optimizer_field()
    encoder_factory: EncoderFactory = make_masked_encoder_field()
    class_weights: list[float] = dataclasses.field(default_factory=list)
    class_weight_beta: float = 0.0

    def with_class_weights(self, actions: np.ndarray, n_actions: int, beta: float = DEFAULT_BETA) -> Any:
        """A copy with effective-number weights from the logged ``actions``."""
        counts = np.bincount(np.asarray(actions, dtype=np.int64).reshape(-1), minlength=n_actions)
        if len(counts) != n_actions:
            raise ValueError(f"actions go up to {len(counts) - 1}, beyond the {n_actions} actions")
        weights = effective_number_weights(counts, beta)
        return dataclasses.replace(
            self, class_weights=[float(w) for w in weights], class_weight_beta=float(beta)
        )

    def create(self, device: DeviceArg = False, enable_ddp: bool = False) -> MaskedDiscreteBC:
        return MaskedDiscreteBC(self, device, enable_ddp)

    @staticmethod
    def get_type() -> str:
        return "esper_masked_discrete_bc"


class MaskedDiscreteBC(QLearningAlgoBase[MaskedDiscreteBCImpl, MaskedDiscreteBCConfig]):
    reward_weighted = False

    def inner_create_impl(self, observation_shape: Shape, action_size: int) -> None:
        check_masked_config(self._config, action_size)
        encoder = resolve_encoder_factory(self._config.encoder_factory, action_size)
        imitator = create_categorical_policy(
            observation_shape, action_size, encoder, device=self._device, enable_ddp=self._enable_ddp
        )
        optim = self._config.optim_factory.create(
            imitator.named_modules(), lr=self._config.learning_rate, compiled=self.compiled
        )
        self._impl = MaskedDiscreteBCImpl(
            observation_shape=observation_shape,
            action_size=action_size,
            modules=MaskedDiscreteBCModules(imitator=imitator, optim=optim),
            class_weights=self._config.class_weights,
            reward_weighted=self.reward_weighted,
            device=self._device,
        )

    def get_action_type(self) -> ActionSpace:
        return ActionSpace.DISCRETE


@dataclasses.dataclass()
class RewardWeightedBCConfig(MaskedDiscreteBCConfig):
    """Config of :class:`RewardWeightedBC`: :class:`MaskedDiscreteBCConfig` whose loss also
    weights each transition by its reward clipped at 0 (the dataset's rewards are the episode
    weights; build it with :func:`esper_agents.offline.datasets.rwbc_dataset`).

    The remaining fields record how that dataset was built (they do not change the loss):

    Args:
        episode_mode: "filter" (option C) or "weight" (option A).
        episode_quantile: option C keeps episodes whose final accuracy is at or above this quantile.
        episode_baseline, episode_scale: option A's ``(final_acc - baseline) / scale``.
    """

    episode_mode: str = "filter"
    episode_quantile: float = 0.5
    episode_baseline: float = 0.0
    episode_scale: float = 1.0

    def create(self, device: DeviceArg = False, enable_ddp: bool = False) -> RewardWeightedBC:
        return RewardWeightedBC(self, device, enable_ddp)

    @staticmethod
    def get_type() -> str:
        return "esper_reward_weighted_bc"


class RewardWeightedBC(MaskedDiscreteBC):
    reward_weighted = True


register_learnable(MaskedDiscreteBCConfig)
register_learnable(RewardWeightedBCConfig)
