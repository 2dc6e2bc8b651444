"""The seed module types ("blueprints"): the original design's, then 3 that add width.

A *residual* blueprint maps a feature map ``[B, C, H, W]`` to a *delta* of the same shape, which
the slot adds to (or blends into) the host's features: it adds depth at the slot's width. A
*widening* blueprint (``widen_2x``, ``widen_4x``; ``Blueprint.widens``) adds channels instead,
Net2Net-style: it computes ``(f - 1) * C`` new output channels of the block before the slot from
that block's input, and feeds them to the layer that consumes the slot (the next block's conv,
or the classifier) through zero-initialised weights, so the slot's width becomes ``f * C``.
``conv_wide`` is residual with a hidden width of ``4 * C``. The order of :data:`BLUEPRINTS` is
part of the action space: a blueprint's index is the value of the agent's blueprint action head.

Every blueprint's last layer (``module.output_layer``) is zero-initialised, weights and bias, so
a freshly grafted seed returns an exactly-zero delta while the gradient still reaches that last
layer; the earlier layers start receiving gradient after the first optimiser step. Blueprints
contain no dropout and no BatchNorm (``norm`` uses GroupNorm, which keeps no running
statistics), so ``forward`` draws no random numbers and behaves the same in train and eval mode.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from esper_env.runtime import lookup

__all__ = [
    "BLUEPRINTS",
    "BLUEPRINT_DESCRIPTIONS",
    "NOOP_BLUEPRINT",
    "ORIGINAL_BLUEPRINTS",
    "REGISTRY",
    "Blueprint",
    "BlueprintEntry",
    "Consumer",
    "SlotGeometry",
    "blueprint_index",
    "blueprint_param_count",
    "blueprint_table",
    "blueprint_table_markdown",
    "blueprints_for",
    "build_blueprint",
    "register",
]

NOOP_BLUEPRINT = "noop"

#: Rank of the ``lora`` blueprint's low-rank 1x1 update.
LORA_RANK = 8

B = TypeVar("B", bound="Blueprint")


@dataclass(frozen=True)
class Consumer:
    """The layer that consumes a slot's features: a conv (``kind="conv"``) or the classifier."""

    kind: str  # "conv" or "linear"
    out_channels: int
    kernel_size: int = 3
    stride: int = 1
    padding: int = 1


@dataclass(frozen=True)
class SlotGeometry:
    """Widths around a slot: its own (``channels``), the input of the block before it, its consumer.

    Residual blueprints read only ``channels``; widening ones build their new channels from
    ``in_channels`` and feed them into ``consumer``. :meth:`plain` is the HostCNN pattern (the
    block before the slot doubles the width, the next 3x3 conv doubles it again), used when only
    a width is known, such as in the parameter tables.
    """

    channels: int
    in_channels: int
    consumer: Consumer
    #: The kernel of the block before the slot: 3 on the CNN hosts, 1 on the MLP host (whose
    #: "images" are 1x1 feature maps). A widening seed builds its new channels with it.
    kernel_size: int = 3

    @classmethod
    def plain(cls, channels: int) -> SlotGeometry:
        return cls(channels, max(3, channels // 2), Consumer("conv", 2 * channels))


def _reduced(channels: int, divisor: int = 4, minimum: int = 2) -> int:
    """Width of a reduced hidden layer: ``channels // divisor`` but at least ``minimum``."""
    return max(minimum, channels // divisor)


def _groups(channels: int, max_groups: int = 8) -> int:
    """Largest number of GroupNorm groups ``<= max_groups`` that divides ``channels``."""
    return next(g for g in range(min(max_groups, channels), 0, -1) if channels % g == 0)


def _conv(
    c_in: int, c_out: int, k: int = 1, *, groups: int = 1, dilation: int = 1, bias: bool = True
) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=dilation * (k // 2), dilation=dilation, groups=groups, bias=bias)


@dataclass(frozen=True)
class BlueprintEntry:
    """One registered blueprint: its class, its one-line description, the env version that added it."""

    name: str
    cls: type[Blueprint]
    description: str
    version: int = 0


#: Every blueprint, by name, in registration order (the order of the action head). A blueprint is
#: added by decorating its class with :func:`register`; names, descriptions and the per-version
#: sets derive from here.
REGISTRY: dict[str, BlueprintEntry] = {}


def register(description: str, *, version: int = 0) -> Callable[[type[B]], type[B]]:
    """Class decorator: register a :class:`Blueprint` subclass under its ``name``.

    ``version`` is the env version that added it (0: the original design's). A new blueprint is
    appended to the action head, so the ids of the version it joins change (bump the env version).
    """

    def add(cls: type[B]) -> type[B]:
        if not cls.name or cls.name in REGISTRY:
            raise ValueError(f"blueprint {cls.__name__} needs a new, non-empty name, got {cls.name!r}")
        if not description.strip() or "\n" in description:
            raise ValueError(f"blueprint {cls.name!r} needs a one-line description, got {description!r}")
        REGISTRY[cls.name] = BlueprintEntry(cls.name, cls, description, version)
        return cls

    return add


class Blueprint(nn.Module):
    """Base class: ``forward(x) -> delta`` with ``delta.shape == x.shape``.

    ``output_layer`` is the zero-initialised last layer (``None`` for ``noop``).
    """

    name: str = ""
    #: Whether the blueprint adds channels (see :class:`Widen`) instead of a same-width delta.
    widens: bool = False
    #: Whether it holds a GroupNorm, whose groups ``norm_groups`` caps (:func:`build_blueprint`).
    grouped: bool = False

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.output_layer: nn.Module | None = None

    def _zero_output(self) -> None:
        assert self.output_layer is not None
        for p in self.output_layer.parameters(recurse=False):
            nn.init.zeros_(p)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


@register("No module; zero delta, 0 params (in the action space, always masked)")
class Noop(Blueprint):
    name = "noop"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


@register("GroupNorm + per-channel scale/shift")
class Norm(Blueprint):
    """``delta = GroupNorm(x) * scale + shift`` with per-channel ``scale``/``shift`` (zero at init)."""

    name = "norm"

    grouped = True

    def __init__(self, channels: int, norm_groups: int = 8) -> None:
        super().__init__(channels)
        self.norm = nn.GroupNorm(_groups(channels, norm_groups), channels, affine=False)
        self.affine = _ChannelAffine(channels)
        self.output_layer = self.affine
        self._zero_output()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.affine(self.norm(x))


class _ChannelAffine(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


@register("Squeeze-excitation gate, x * tanh(MLP(avgpool x)), hidden max(4, C/4)")
class ChannelAttention(Blueprint):
    """Squeeze-excitation: ``delta = x * tanh(fc2(gelu(fc1(avgpool(x)))))``; ``tanh(0) = 0``."""

    name = "channel_attention"

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        hidden = _reduced(channels, 4, 4)
        self.fc1 = _conv(channels, hidden)
        self.fc2 = _conv(hidden, channels)
        self.output_layer = self.fc2
        self._zero_output()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.tanh(self.fc2(nn.functional.gelu(self.fc1(s))))


@register("CBAM spatial gate, x * tanh(conv7x7[mean_c, max_c])")
class SpatialAttention(Blueprint):
    """CBAM-style spatial gate: ``delta = x * tanh(conv7x7([mean_c(x), max_c(x)]))``."""

    name = "spatial_attention"

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.conv = _conv(2, 1, 7)
        self.output_layer = self.conv
        self._zero_output()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.tanh(self.conv(s))


class _Sequential(Blueprint):
    """A plain stack of layers; the last one is the zero-initialised output layer."""

    def __init__(self, channels: int, *layers: nn.Module) -> None:
        super().__init__(channels)
        self.body = nn.Sequential(*layers)
        self.output_layer = self.body[-1]
        self._zero_output()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@register("3x3 depthwise conv, GELU, 1x1 pointwise")
class Depthwise(_Sequential):
    """Depthwise-separable conv: 3x3 depthwise, GELU, 1x1 pointwise."""

    name = "depthwise"

    def __init__(self, channels: int) -> None:
        c = channels
        super().__init__(c, _conv(c, c, 3, groups=c), nn.GELU(), _conv(c, c))


@register("1x1 conv")
class ConvSmall(_Sequential):
    """A single 1x1 conv."""

    name = "conv_small"

    def __init__(self, channels: int) -> None:
        super().__init__(channels, _conv(channels, channels))


@register("3x3 conv to max(2, C/4), GELU, 1x1 conv up")
class ConvLight(_Sequential):
    """3x3 conv down to C/4, GELU, 1x1 conv back up to C."""

    name = "conv_light"

    def __init__(self, channels: int) -> None:
        c, r = channels, _reduced(channels)
        super().__init__(c, _conv(c, r, 3), nn.GELU(), _conv(r, c))


@register("Two 3x3 convs with GELU")
class ConvHeavy(_Sequential):
    """Two full 3x3 convs with a GELU between."""

    name = "conv_heavy"

    def __init__(self, channels: int) -> None:
        c = channels
        super().__init__(c, _conv(c, c, 3), nn.GELU(), _conv(c, c, 3))


@register("1x1 down to max(2, C/4), 3x3, 1x1 up (GELU between)")
class Bottleneck(_Sequential):
    """ResNet bottleneck: 1x1 down to C/4, 3x3, 1x1 up to C (GELU between)."""

    name = "bottleneck"

    def __init__(self, channels: int) -> None:
        c, r = channels, _reduced(channels)
        super().__init__(c, _conv(c, r), nn.GELU(), _conv(r, r, 3), nn.GELU(), _conv(r, c))


@register(f"Low-rank 1x1 update C -> {LORA_RANK} -> C, no bias")
class LoRA(_Sequential):
    """Low-rank pointwise update ``B @ A`` (C -> 8 -> C, no bias); ``B`` starts at zero."""

    name = "lora"

    def __init__(self, channels: int) -> None:
        c = channels
        super().__init__(c, _conv(c, LORA_RANK, bias=False), _conv(LORA_RANK, c, bias=False))


@register("Pointwise MLP C -> 2C -> C with GELU")
class MLP(_Sequential):
    """Pointwise MLP: 1x1 C -> 2C, GELU, 1x1 2C -> C."""

    name = "mlp"

    def __init__(self, channels: int) -> None:
        c = channels
        super().__init__(c, _conv(c, 2 * c), nn.GELU(), _conv(2 * c, c))


@register("3x3 conv, dilation 2")
class Dilated(_Sequential):
    """A single full 3x3 conv with dilation 2 (5x5 receptive field)."""

    name = "dilated"

    def __init__(self, channels: int) -> None:
        super().__init__(channels, _conv(channels, channels, 3, dilation=2))


@register("1x1 expand to 2C, 3x3 depthwise, 1x1 project (GELU between)")
class InvertedResidual(_Sequential):
    """MobileNetV2 block: 1x1 expand to 2C, GELU, 3x3 depthwise, GELU, 1x1 project to C."""

    name = "inverted_residual"

    def __init__(self, channels: int) -> None:
        c, e = channels, 2 * channels
        super().__init__(c, _conv(c, e), nn.GELU(), _conv(e, e, 3, groups=e), nn.GELU(), _conv(e, c))


@register("Two 3x3 convs through 4C hidden channels, GELU between", version=1)
class ConvWide(_Sequential):
    """Two 3x3 convs through a hidden layer 4x the slot's width: C -> 4C, GELU, 4C -> C."""

    name = "conv_wide"

    def __init__(self, channels: int) -> None:
        c = channels
        super().__init__(c, _conv(c, 4 * c, 3), nn.GELU(), _conv(4 * c, c, 3))


class Widen(Blueprint):
    """``(factor - 1) * C`` new output channels for the block before the slot (Net2Net widening).

    The new channels are ``pool(relu(GroupNorm(conv(x))))`` of that block's input ``x`` (a conv with
    the block's own kernel: 3x3 on the CNN hosts, 1x1 on the MLP host), pooled
    to the slot's resolution like the block's own output. :meth:`injection` maps them, times
    alpha, through ``output_layer`` (zero-initialised, shaped like the consumer: a conv with the
    consumer's kernel and stride, or a linear map of their spatial mean into the logits) to a
    tensor the host adds to its consumer's output. At alpha 0 or at graft time (zero weights)
    the network's function is exactly unchanged.
    """

    widens = True
    grouped = True
    factor = 2

    def __init__(self, channels: int, geometry: SlotGeometry | None = None, norm_groups: int = 8) -> None:
        super().__init__(channels)
        g = geometry or SlotGeometry.plain(channels)
        if g.channels != channels:
            raise ValueError(f"geometry is for {g.channels} channels, the slot has {channels}")
        k = (self.factor - 1) * channels
        self.new_channels = k
        self.branch = nn.Conv2d(g.in_channels, k, g.kernel_size, padding=g.kernel_size // 2, bias=False)
        self.norm = nn.GroupNorm(_groups(k, norm_groups), k)
        self.consumer = g.consumer
        if g.consumer.kind == "linear":
            self.output_layer = nn.Linear(k, g.consumer.out_channels, bias=False)
        else:
            c = g.consumer
            self.output_layer = nn.Conv2d(k, c.out_channels, c.kernel_size, c.stride, c.padding, bias=False)
        nn.init.kaiming_normal_(self.branch.weight, mode="fan_out", nonlinearity="relu")
        self._zero_output()

    def new_features(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The new channels, at the resolution of the slot's features ``h``."""
        e = torch.relu(self.norm(self.branch(x)))
        if e.shape[-2:] != h.shape[-2:]:
            e = nn.functional.adaptive_max_pool2d(e, h.shape[-2:])
        return e

    def injection(self, x: torch.Tensor, h: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
        """What the consumer adds to its output: ``output_layer(alpha * new channels)``."""
        e = alpha * self.new_features(x, h)
        assert self.output_layer is not None
        if self.consumer.kind == "linear":
            return self.output_layer(e.mean(dim=(2, 3)))
        return self.output_layer(e)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise TypeError(
            f"{self.name} adds channels, it has no same-width delta; the engine calls injection()"
        )


@register("Widening: C new channels of the block before the slot, into its consumer (2x width)", version=1)
class Widen2x(Widen):
    """Doubles the slot's width: C new channels."""

    name = "widen_2x"
    factor = 2


@register("Widening: 3C new channels of the block before the slot, into its consumer (4x width)", version=1)
class Widen4x(Widen):
    """Quadruples the slot's width: 3C new channels."""

    name = "widen_4x"
    factor = 4


#: The blueprint names, in registration order; the index of a name is its blueprint action value.
#: Index 0 is ``noop``.
BLUEPRINTS: tuple[str, ...] = tuple(REGISTRY)

_INDEX: dict[str, int] = {name: i for i, name in enumerate(BLUEPRINTS)}

#: One line per blueprint, for tables and docs (derived from :data:`REGISTRY`).
BLUEPRINT_DESCRIPTIONS: dict[str, str] = {name: e.description for name, e in REGISTRY.items()}
#: The blueprints of the original design (``-v0``), first in :data:`BLUEPRINTS` so they keep their
#: action indices; the ones after them add capacity.
ORIGINAL_BLUEPRINTS: tuple[str, ...] = tuple(name for name, e in REGISTRY.items() if e.version == 0)
assert BLUEPRINTS[0] == NOOP_BLUEPRINT and BLUEPRINTS[: len(ORIGINAL_BLUEPRINTS)] == ORIGINAL_BLUEPRINTS


def blueprints_for(version: int) -> tuple[str, ...]:
    """The blueprints of env version ``version`` (a prefix of :data:`BLUEPRINTS`: indices are stable)."""
    names = tuple(name for name, e in REGISTRY.items() if e.version <= version)
    if not names or names != BLUEPRINTS[: len(names)]:
        raise ValueError(f"no blueprint set for env version {version!r}")
    return names


def blueprint_index(name: str) -> int:
    """Action index of blueprint ``name``; ValueError naming it and the valid names otherwise."""
    return lookup("blueprint", name, _INDEX)


def _check_channels(channels: int) -> int:
    if isinstance(channels, bool) or int(channels) != channels or channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    return int(channels)


def _construct(
    cls: Callable[..., Blueprint], channels: int, geometry: SlotGeometry | None, norm_groups: int = 8
) -> Blueprint:
    if geometry is not None and geometry.channels != channels:
        raise ValueError(f"geometry is for {geometry.channels} channels, got channels={channels!r}")
    args: tuple[object, ...] = (channels, geometry) if cls.widens else (channels,)
    return cls(*args, norm_groups=norm_groups) if cls.grouped else cls(*args)


def build_blueprint(
    name: str,
    channels: int,
    *,
    seed: int | None = None,
    geometry: SlotGeometry | None = None,
    norm_groups: int = 8,
) -> Blueprint:
    """Build blueprint ``name`` for a ``channels``-channel feature map.

    ``geometry`` describes the slot's surroundings (see :meth:`HostNetwork.slot_geometry`); only
    widening blueprints read more than the width, and they default to :meth:`SlotGeometry.plain`.
    ``norm_groups`` caps the groups of the GroupNorm of ``norm`` and the widenings (the most that
    divide the channels, up to it; 1 is a LayerNorm over the channels, what the fast tier's 1x1 maps
    need from env v3 on); it changes no parameter count.
    With ``seed`` the weights depend only on ``(name, channels, geometry, norm_groups, seed)`` and
    the caller's global RNG state is left untouched; without it the global RNG is used as usual.
    """
    cls = lookup("blueprint", name, REGISTRY).cls
    channels = _check_channels(channels)
    if isinstance(norm_groups, bool) or not isinstance(norm_groups, int) or norm_groups < 1:
        raise ValueError(f"norm_groups must be a positive integer, got {norm_groups!r}")
    if seed is None:
        return _construct(cls, channels, geometry, norm_groups)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return _construct(cls, channels, geometry, norm_groups)


@functools.cache
def _param_count(name: str, channels: int, geometry: SlotGeometry | None) -> int:
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        module = _construct(REGISTRY[name].cls, channels, geometry)
    return sum(p.numel() for p in module.parameters())


def blueprint_param_count(name: str, channels: int, geometry: SlotGeometry | None = None) -> int:
    """Number of parameters of ``build_blueprint(name, channels, geometry=...)`` (built on the meta device)."""
    lookup("blueprint", name, REGISTRY)
    return _param_count(name, _check_channels(channels), geometry)


def blueprint_table(channels: Sequence[int]) -> list[dict]:
    """One row per blueprint: ``{"name", "index", "description", "params": {width: count}}``."""
    widths = [_check_channels(c) for c in channels]
    return [
        {
            "name": name,
            "index": i,
            "description": BLUEPRINT_DESCRIPTIONS[name],
            "params": {c: blueprint_param_count(name, c) for c in widths},
        }
        for i, name in enumerate(BLUEPRINTS)
    ]


def blueprint_table_markdown(channels: Sequence[int]) -> str:
    """:func:`blueprint_table` as a Markdown table (one parameter column per width).

    Widening blueprints are counted in :meth:`SlotGeometry.plain` (HostCNN's pattern).
    """
    widths = [_check_channels(c) for c in channels]
    head = "| # | blueprint | description | " + " | ".join(f"params @ C={c}" for c in widths) + " |"
    sep = "|---|---|---|" + "---:|" * len(widths)
    rows = [
        f"| {r['index']} | `{r['name']}` | {r['description']} | "
        + " | ".join(f"{r['params'][c]:,}" for c in widths)
        + " |"
        for r in blueprint_table(widths)
    ]
    return "\n".join([head, sep, *rows])
