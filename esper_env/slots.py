"""A slot: one grafting point of the host, holding at most one seed and its lifecycle state.

Called "Kasmina's seed slot" in the original design. The slot knows how a seed's delta is
blended into the host's features (:class:`Seed`) and holds the lifecycle state
(:class:`esper_env.lifecycle.SlotState`, re-exported here); the engine decides when to call which
transition of :mod:`esper_env.lifecycle`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from esper_env.blueprints import SlotGeometry, Widen, build_blueprint
from esper_env.lifecycle import BLENDED_STAGES, BlendStyle, SlotState, Stage, clear_seed, move_to


class Seed(nn.Module):
    """A blueprint body plus the blend style that puts its delta into the host's features.

    ``forward(h, alpha)`` is exactly ``h`` when alpha is 0, for every style. ``alpha`` may be a
    float or a tensor broadcastable to ``[B, 1, 1, 1]`` (the fused counterfactual pass gives each
    replica of the batch its own alpha). The engine calls :meth:`graft`, which also serves
    widening blueprints: they leave ``h`` as it is and return what the slot's consumer adds to its
    output. Widening seeds ignore the blend style: their new channels always enter through the
    consumer's zero-initialised weights, scaled by alpha.
    """

    def __init__(
        self,
        blueprint: str,
        channels: int,
        style: BlendStyle,
        seed: int,
        geometry: SlotGeometry | None = None,
        norm_groups: int = 8,
    ) -> None:
        super().__init__()
        self.blueprint = blueprint
        self.style = BlendStyle(style)
        self.body = build_blueprint(
            blueprint, channels, seed=seed, geometry=geometry, norm_groups=norm_groups
        )
        self.gate: nn.Module | None = None
        gated_style = None if self.body.widens else self.style
        if gated_style == BlendStyle.CHANNEL_GATED:
            self.gate = nn.Linear(channels, channels)
        elif gated_style == BlendStyle.SPATIAL_GATED:
            self.gate = nn.Conv2d(channels, 1, kernel_size=1)
        if self.gate is not None:
            # Gates start half open with no preference, so the blend starts like ADDITIVE at alpha/2.
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)

    @property
    def widens(self) -> bool:
        return self.body.widens

    def graft(self, h: Tensor, x: Tensor, alpha: float | Tensor) -> tuple[Tensor, Tensor | None]:
        """``(features after the slot, what the consumer adds to its output or None)``.

        ``h`` is the slot's feature map and ``x`` the input of the block before the slot.
        """
        if isinstance(self.body, Widen):
            return h, self.body.injection(x, h, alpha)
        return self(h, alpha), None

    def forward(self, h: Tensor, alpha: float | Tensor) -> Tensor:
        delta = self.body(h)
        if self.style == BlendStyle.ADDITIVE:
            return h + alpha * delta
        if self.style == BlendStyle.MULTIPLICATIVE:
            return h * (1 + alpha * torch.tanh(delta))
        assert self.gate is not None
        if self.style == BlendStyle.CHANNEL_GATED:
            g = torch.sigmoid(self.gate(h.mean(dim=(2, 3))))[:, :, None, None]
        else:
            g = torch.sigmoid(self.gate(h))
        return h + alpha * g * delta


__all__ = ["Seed", "Slot", "SlotState"]


class Slot:
    """One grafting point: its name, width, current seed module and lifecycle state."""

    def __init__(self, index: int, name: str, channels: int) -> None:
        self.index = index
        self.name = name
        self.channels = channels
        self.seed: Seed | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.state = SlotState()

    @property
    def stage(self) -> Stage:
        return self.state.stage

    @property
    def in_forward(self) -> bool:
        """Whether the seed takes part in the host's forward pass."""
        return self.seed is not None and self.state.stage in BLENDED_STAGES

    def move_to(self, stage: Stage, *, accuracy: float | None) -> None:
        """:func:`esper_env.lifecycle.move_to` on this slot's state."""
        move_to(self.state, stage, accuracy=accuracy)

    def clear(self) -> None:
        """Delete the seed module and forget it (after a prune finished its ramp-down)."""
        self.seed = None
        self.optimizer = None
        clear_seed(self.state)
