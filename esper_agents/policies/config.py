"""The configuration of a behavior policy (the original design's ``BehaviorPolicyConfig``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from esper_env.blueprints import BLUEPRINTS, NOOP_BLUEPRINT

__all__ = [
    "DEFAULT_BLUEPRINT_ORDER",
    "GERMINATE_TRIGGERS",
    "REAL_BLUEPRINTS",
    "ROTATE",
    "BehaviorPolicyConfig",
]

#: The blueprints a policy may germinate (``noop`` is always masked).
REAL_BLUEPRINTS: tuple[str, ...] = tuple(b for b in BLUEPRINTS if b != NOOP_BLUEPRINT)
ROTATE = "rotate"
#: Valid ``BehaviorPolicyConfig.germinate_trigger`` values.
GERMINATE_TRIGGERS: tuple[str, ...] = ("plateau", "underfit")

#: Blueprint preference, most preferred first: cheap convolutional capacity, then heavier
#: convolutions, then the pointwise, low-rank, attention and normalisation modules, then growth.
BLUEPRINT_PREFERENCE: tuple[str, ...] = (
    "conv_light", "conv_heavy", "inverted_residual", "bottleneck", "depthwise", "dilated", "mlp",
    "conv_small", "lora", "channel_attention", "spatial_attention", "norm", "conv_wide", "widen_2x",
    "widen_4x",
)  # fmt: skip


def preference_order(preference: tuple[str, ...], real: tuple[str, ...]) -> tuple[str, ...]:
    """Every blueprint of ``real``: those in ``preference`` first, in its order, then the rest in
    registry order (a newly registered blueprint is least preferred until it is ranked);
    ``ValueError`` naming any preferred name that is not a registered blueprint."""
    unknown = [b for b in preference if b not in real]
    if unknown:
        raise ValueError(
            f"unknown blueprints {unknown} in the preference; valid blueprints are: {', '.join(real)}"
        )
    return tuple(preference) + tuple(b for b in real if b not in preference)


#: Default blueprint preference over every registered real blueprint, most preferred first.
DEFAULT_BLUEPRINT_ORDER: tuple[str, ...] = preference_order(BLUEPRINT_PREFERENCE, REAL_BLUEPRINTS)


@dataclass(frozen=True)
class BehaviorPolicyConfig:
    """One behavior policy variant (the original design's ``BehaviorPolicyConfig``; "Kasmina" variants).

    The first seven fields are the original design's. The rest have defaults that every one of the
    original design's variants share; they are here so that an episode's metadata records everything that
    shaped its actions.
    """

    policy_id: str
    #: No GERMINATE before this many epochs have been trained.
    min_epochs_before_germinate: int = 5
    #: GERMINATE once validation accuracy has not improved for this many epochs.
    plateau_epochs_to_germinate: int = 3
    #: PRUNE a blended seed whose host has not improved for this many epochs since the seed was
    #: germinated (and whose last measured contribution is not positive).
    cull_after_epochs_without_improvement: int = 5
    #: Blueprint order for GERMINATE: None (the default order), "rotate" (cycle through all of them),
    #: or an explicit sequence of blueprint names, most preferred first.
    blueprint_preference: tuple[str, ...] | str | None = None
    #: Probability of the uniform-over-legal branch of epsilon-greedy.
    epsilon: float = 0.0
    #: Softmax temperature of the greedy distribution (smaller: closer to argmax).
    temperature: float = 1.0
    #: At most this many seeds alive at once (GERMINATED..HOLDING); 1 attributes each change of
    #: the host's accuracy to one seed, as the original controller did.
    max_live_seeds: int = 1
    #: A BLENDING seed whose measured contribution is below ``-blend_prune_margin`` is pruned.
    blend_prune_margin: float = 0.02
    #: The periodic policy germinates every this many epochs (other policies ignore it).
    germinate_every: int = 5
    #: What makes a threshold policy germinate: ``"plateau"`` (the original design: no new best for
    #: ``plateau_epochs_to_germinate`` epochs) or ``"underfit"`` (the host underfits: its training
    #: accuracy is at most ``underfit_gap`` above its validation accuracy, so it lacks capacity
    #: rather than data, and growth pays most early).
    germinate_trigger: str = "plateau"
    underfit_gap: float = 0.02
    #: Germinate only while the network (host, fossils and live seeds) is below this many times
    #: the base host's parameters; None: no budget.
    max_size_ratio: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.policy_id, str) or not self.policy_id:
            raise ValueError(f"policy_id must be a non-empty string, got {self.policy_id!r}")
        for name in (
            "min_epochs_before_germinate",
            "plateau_epochs_to_germinate",
            "cull_after_epochs_without_improvement",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("max_live_seeds", "germinate_every"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= float(self.epsilon) <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon!r}")
        if not float(self.temperature) > 0.0 or not np.isfinite(self.temperature):
            raise ValueError(f"temperature must be a positive finite number, got {self.temperature!r}")
        if self.germinate_trigger not in GERMINATE_TRIGGERS:
            raise ValueError(
                f"germinate_trigger {self.germinate_trigger!r} is not valid; use one of {', '.join(GERMINATE_TRIGGERS)}"
            )
        if not np.isfinite(self.underfit_gap):
            raise ValueError(f"underfit_gap must be a finite number, got {self.underfit_gap!r}")
        if self.max_size_ratio is not None and not float(self.max_size_ratio) > 1.0:
            raise ValueError(f"max_size_ratio must be > 1 or None, got {self.max_size_ratio!r}")
        if not float(self.blend_prune_margin) >= 0.0:
            raise ValueError(f"blend_prune_margin must be >= 0, got {self.blend_prune_margin!r}")
        pref = self.blueprint_preference
        if pref is not None and pref != ROTATE:
            if isinstance(pref, str):
                raise ValueError(
                    f"blueprint_preference {pref!r} is not valid; use None, {ROTATE!r} or a list of "
                    "blueprint names"
                )
            names = tuple(pref)
            bad = [b for b in names if b not in REAL_BLUEPRINTS]
            if bad or not names or len(set(names)) != len(names):
                raise ValueError(
                    f"blueprint_preference {list(names)!r} has unknown, repeated or no blueprints {bad}; "
                    f"valid blueprints are: {', '.join(REAL_BLUEPRINTS)}"
                )
            object.__setattr__(self, "blueprint_preference", names)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if isinstance(self.blueprint_preference, tuple):
            d["blueprint_preference"] = list(self.blueprint_preference)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BehaviorPolicyConfig:
        return cls(**d)
