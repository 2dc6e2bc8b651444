"""Environment presets, fidelity presets and the constants of the seed lifecycle.

Everything here is plain frozen data. Looking a name up goes through :func:`get_config` and
:func:`get_fidelity`, which raise a ``ValueError`` naming the bad value and the valid ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from esper_env.runtime import lookup  # re-exported: callers import it from here too


@dataclass(frozen=True)
class EnvironmentConfig:
    """One training set-up of the host (the original design's ``EnvironmentConfig``)."""

    config_id: str
    architecture: str
    learning_rate: float
    batch_size: int
    optimizer: str  # "SGD" or "Adam"
    momentum: float = 0.9  # SGD only
    weight_decay: float = 5e-4
    max_epochs: int = 25
    notes: str = ""
    #: A seed's optimizer runs at ``learning_rate * seed_lr_multiplier`` (the host's at ``learning_rate``):
    #: a new seed starts behind the host it joins. 3x against 1x on ``impaired``, paired over 5 seeds
    #: (``benchmarks/growth_headroom.py --seed-lr-multiplier 1``): +1.8 points (0.1 to 3.4) when
    #: widening every block, +0.8 (-1.7 to 3.3) for the first block alone.
    seed_lr_multiplier: float = 3.0
    #: The host and its seeds train at ``learning_rate * lr_scale`` (the observation shows
    #: ``learning_rate``): a fast-tier instance's :attr:`esper_env.instances.Instance.mlp_lr_scale`.
    lr_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("seed_lr_multiplier", "lr_scale"):
            m = getattr(self, name)
            if isinstance(m, bool) or not isinstance(m, (int, float)) or not m > 0 or m == float("inf"):
                raise ValueError(f"{name} must be a positive finite number, got {m!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cfg(config_id: str, arch: str, lr: float, batch: int, opt: str, notes: str) -> EnvironmentConfig:
    return EnvironmentConfig(config_id, arch, lr, batch, opt, notes=notes)


#: The original design's 13 presets, plus ``impaired`` (a deliberately narrow host: growth matters most).
ENVIRONMENT_CONFIGS: dict[str, EnvironmentConfig] = {
    c.config_id: c
    for c in (
        _cfg("baseline", "HostCNN", 0.01, 128, "SGD", "Reference configuration"),
        _cfg("fast-lr", "HostCNN", 0.1, 128, "SGD", "Fast learning, early plateaus"),
        _cfg("slow-lr", "HostCNN", 0.001, 128, "SGD", "Slow learning, gradual improvement"),
        _cfg("wide", "HostCNN-Wide", 0.01, 128, "SGD", "2x channels, different capacity"),
        _cfg("deep", "HostCNN-Deep", 0.01, 128, "SGD", "5 blocks, gradient flow differs"),
        _cfg("adam", "HostCNN", 0.001, 128, "Adam", "Adaptive learning rates"),
        _cfg("small-batch", "HostCNN", 0.01, 64, "SGD", "High gradient variance"),
        _cfg("large-batch", "HostCNN", 0.02, 256, "SGD", "Low variance, needs LR scaling"),
        _cfg("resnet18", "ResNet-18", 0.01, 128, "SGD", "Skip connections"),
        _cfg("resnet34", "ResNet-34", 0.01, 128, "SGD", "Deep baseline"),
        _cfg("resnet34-adam", "ResNet-34", 0.001, 128, "Adam", "Deep + adaptive LR"),
        _cfg("resnet34-slow", "ResNet-34", 0.005, 128, "SGD", "Deep + gentle LR"),
        _cfg("resnet34-small-batch", "ResNet-34", 0.01, 64, "SGD", "Deep + high variance"),
        _cfg("impaired", "HostCNN-Narrow", 0.01, 128, "SGD", "Narrow host: rescue a weak host"),
    )
}


def get_config(name: str | EnvironmentConfig) -> EnvironmentConfig:
    if isinstance(name, EnvironmentConfig):
        return name
    return lookup("config", name, ENVIRONMENT_CONFIGS)


@dataclass(frozen=True)
class Fidelity:
    """How much data one epoch sees and at what resolution.

    An epoch is one pass over ``train_images`` training images. Validation uses ``val_images``
    held-out training images; ``test_images`` come from the test split and are only used for
    ``info["test_accuracy"]`` at the end of an episode. The amount never depends on how many
    environments run in parallel.
    """

    name: str
    train_images: int
    val_images: int
    test_images: int
    resolution: int


FIDELITIES: dict[str, Fidelity] = {
    f.name: f
    for f in (
        Fidelity("full", 45_000, 5_000, 10_000, 32),
        Fidelity("fast", 10_000, 2_000, 2_000, 32),
        Fidelity("tiny", 8_000, 1_000, 1_000, 16),
        Fidelity("test", 256, 128, 128, 16),
        # The fast tier's (clusters task, flat 48-feature inputs: "resolution" 1).
        Fidelity("micro", 1024, 256, 128, 1),
    )
}


def get_fidelity(name: str | Fidelity) -> Fidelity:
    if isinstance(name, Fidelity):
        return name
    return lookup("fidelity", name, FIDELITIES)
