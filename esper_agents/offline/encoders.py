"""The encoder and observation scaler that keep networks off the mask and the mask off the scaler.

Both are registered with d3rlpy's config registries, so a saved model's config names them
(``"esper_masked_vector"``, ``"esper_masked_standard"``) and a saved agent's ``agent.json``
rebuilds them (:func:`esper_agents.offline.load_agent`) once this package is imported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from d3rlpy.base import LearnableConfig
from d3rlpy.dataset import EpisodeBase, TransitionPickerProtocol
from d3rlpy.models.encoders import (
    EncoderFactory,
    VectorEncoderFactory,
    make_encoder_field,
    register_encoder_factory,
)
from d3rlpy.models.torch import Encoder, EncoderWithAction
from d3rlpy.preprocessing import StandardObservationScaler, register_observation_scaler
from d3rlpy.types import Shape, TorchObservation

__all__ = [
    "FeatureSliceEncoder",
    "FeatureSliceEncoderWithAction",
    "MaskedStandardObservationScaler",
    "MaskedVectorEncoderFactory",
    "check_masked_config",
    "make_masked_encoder_field",
    "resolve_encoder_factory",
]


class FeatureSliceEncoder(Encoder):
    """Runs ``inner`` on the first ``n_features`` entries of the observation (drops the mask)."""

    def __init__(self, inner: Encoder, n_features: int) -> None:
        super().__init__()
        self.inner = inner
        self.n_features = n_features

    def forward(self, x: TorchObservation) -> torch.Tensor:
        assert isinstance(x, torch.Tensor)
        return self.inner(x[..., : self.n_features])


class FeatureSliceEncoderWithAction(EncoderWithAction):
    def __init__(self, inner: EncoderWithAction, n_features: int) -> None:
        super().__init__()
        self.inner = inner
        self.n_features = n_features

    def forward(self, x: TorchObservation, action: torch.Tensor) -> torch.Tensor:
        assert isinstance(x, torch.Tensor)
        return self.inner(x[..., : self.n_features], action)


@dataclasses.dataclass()
class MaskedVectorEncoderFactory(VectorEncoderFactory):
    """d3rlpy's vector encoder (an MLP) over the features only: the last ``mask_size`` entries
    of the observation (the mask) are sliced off first.

    Args (besides :class:`d3rlpy.models.VectorEncoderFactory`'s):
        mask_size: entries to drop from the end. ``None``: the algorithm's action size, filled in
            when the algorithm builds its networks (:func:`resolve_encoder_factory`).
    """

    mask_size: int | None = None

    def _features(self, observation_shape: Shape) -> int:
        if self.mask_size is None:
            raise ValueError("mask_size is unset; an Esper offline algorithm sets it to its action size")
        shape = tuple(observation_shape)  # type: ignore[arg-type]
        if len(shape) != 1 or not 0 < self.mask_size < int(shape[0]):  # type: ignore[arg-type]
            raise ValueError(
                f"a masked observation of shape {shape} cannot hold features plus a mask of {self.mask_size}"
            )
        return int(shape[0]) - self.mask_size  # type: ignore[arg-type]

    def create(self, observation_shape: Shape) -> FeatureSliceEncoder:
        n = self._features(observation_shape)
        return FeatureSliceEncoder(super().create((n,)), n)

    def create_with_action(
        self, observation_shape: Shape, action_size: int, discrete_action: bool = False
    ) -> FeatureSliceEncoderWithAction:
        n = self._features(observation_shape)
        return FeatureSliceEncoderWithAction(
            super().create_with_action((n,), action_size, discrete_action), n
        )

    @staticmethod
    def get_type() -> str:
        return "esper_masked_vector"


@dataclasses.dataclass()
class MaskedStandardObservationScaler(StandardObservationScaler):
    """Standardizes the features and passes the mask (the last ``mask_size`` entries) through
    unchanged. Features constant over the data are centred but not scaled (std 1), so a value
    never seen in the data is not blown up by ``1 / eps``.
    """

    mask_size: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mask_size < 1:
            raise ValueError(f"mask_size must be the number of actions (>= 1), got {self.mask_size!r}")

    def fit_with_transition_picker(
        self, episodes: Sequence[EpisodeBase], transition_picker: TransitionPickerProtocol
    ) -> None:
        super().fit_with_transition_picker(episodes, transition_picker)
        self._finish_fit()

    def fit_with_trajectory_slicer(self, episodes: Sequence[EpisodeBase], trajectory_slicer: Any) -> None:
        super().fit_with_trajectory_slicer(episodes, trajectory_slicer)
        self._finish_fit()

    def _finish_fit(self) -> None:
        assert self.mean is not None and self.std is not None
        mean, std = np.asarray(self.mean, dtype=np.float64), np.asarray(self.std, dtype=np.float64)
        if mean.shape[0] <= self.mask_size:
            raise ValueError(f"observations of size {mean.shape[0]} cannot hold a mask of {self.mask_size}")
        std = np.where(std < 1e-6, 1.0, std)
        mean[-self.mask_size :], std[-self.mask_size :] = 0.0, 1.0
        self.mean, self.std = mean, std

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([super().transform(x)[..., : -self.mask_size], x[..., -self.mask_size :]], dim=-1)

    def reverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [super().reverse_transform(x)[..., : -self.mask_size], x[..., -self.mask_size :]], dim=-1
        )

    def transform_numpy(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [super().transform_numpy(x)[..., : -self.mask_size], x[..., -self.mask_size :]], axis=-1
        )

    def reverse_transform_numpy(self, x: np.ndarray) -> np.ndarray:
        out = super().reverse_transform_numpy(x)[..., : -self.mask_size]
        return np.concatenate([out, x[..., -self.mask_size :]], axis=-1)

    @staticmethod
    def get_type() -> str:
        return "esper_masked_standard"


def resolve_encoder_factory(factory: EncoderFactory, action_size: int) -> EncoderFactory:
    """``factory`` with an unset ``mask_size`` filled in with ``action_size``; checks a set one."""
    if isinstance(factory, MaskedVectorEncoderFactory):
        if factory.mask_size is None:
            return dataclasses.replace(factory, mask_size=action_size)
        if factory.mask_size != action_size:
            raise ValueError(
                f"encoder mask_size {factory.mask_size} does not match the action size {action_size}: the "
                "mask has one entry per action"
            )
    return factory


def check_masked_config(config: LearnableConfig, action_size: int) -> None:
    """A masked algorithm's scaler must leave the mask alone (it is read after scaling)."""
    scaler = config.observation_scaler
    if scaler is None:
        return
    if not isinstance(scaler, MaskedStandardObservationScaler):
        raise ValueError(
            f"observation_scaler {scaler.get_type()!r} would rescale the action mask carried in the "
            "observation; "
            "use MaskedStandardObservationScaler(mask_size=n_actions) or None"
        )
    if scaler.mask_size != action_size:
        raise ValueError(
            f"observation_scaler mask_size {scaler.mask_size} does not match the action size {action_size}"
        )


def make_masked_encoder_field() -> Any:
    """Default encoder field of the masked algorithms: a features-only MLP (256, 256)."""
    field = make_encoder_field()
    return dataclasses.field(metadata=field.metadata, default_factory=MaskedVectorEncoderFactory)


register_encoder_factory(MaskedVectorEncoderFactory)
register_observation_scaler(MaskedStandardObservationScaler)
