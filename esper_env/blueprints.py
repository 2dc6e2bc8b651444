"""The 13 seed module types ("blueprints").

A blueprint maps a feature map ``[B, C, H, W]`` to a *delta* of the same shape, which the slot
adds to (or blends into) the host's features. The order of :data:`BLUEPRINTS` is part of the
action space: a blueprint's index is the value of the agent's blueprint action head.

Every blueprint's last layer (``module.output_layer``) is zero-initialised, weights and bias, so
a freshly grafted seed returns an exactly-zero delta while the gradient still reaches that last
layer; the earlier layers start receiving gradient after the first optimiser step. Blueprints
contain no dropout and no BatchNorm (``norm`` uses GroupNorm, which keeps no running
statistics), so ``forward`` draws no random numbers and behaves the same in train and eval mode.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import torch
from torch import nn

from .configs import lookup

__all__ = [
    "BLUEPRINTS",
    "BLUEPRINT_DESCRIPTIONS",
    "NOOP_BLUEPRINT",
    "Blueprint",
    "blueprint_index",
    "blueprint_param_count",
    "blueprint_table",
    "blueprint_table_markdown",
    "build_blueprint",
]

NOOP_BLUEPRINT = "noop"

#: Rank of the ``lora`` blueprint's low-rank 1x1 update.
LORA_RANK = 8


def _reduced(channels: int, divisor: int = 4, minimum: int = 2) -> int:
    """Width of a reduced hidden layer: ``channels // divisor`` but at least ``minimum``."""
    return max(minimum, channels // divisor)


def _groups(channels: int, max_groups: int = 8) -> int:
    """Largest number of GroupNorm groups ``<= max_groups`` that divides ``channels``."""
    return next(g for g in range(min(max_groups, channels), 0, -1) if channels % g == 0)


def _conv(c_in: int, c_out: int, k: int = 1, *, groups: int = 1, dilation: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=dilation * (k // 2), dilation=dilation, groups=groups, bias=bias)


class Blueprint(nn.Module):
    """Base class: ``forward(x) -> delta`` with ``delta.shape == x.shape``.

    ``output_layer`` is the zero-initialised last layer (``None`` for ``noop``).
    """

    name: str = ""

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


class Noop(Blueprint):
    name = "noop"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class Norm(Blueprint):
    """``delta = GroupNorm(x) * scale + shift`` with per-channel ``scale``/``shift`` (zero at init)."""

    name = "norm"

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.norm = nn.GroupNorm(_groups(channels), channels, affine=False)
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


class Depthwise(_Sequential):
    """Depthwise-separable conv: 3x3 depthwise, GELU, 1x1 pointwise."""

    name = "depthwise"

    def __init__(self, channels: int) -> None:
        c = channels
        super().__init__(c, _conv(c, c, 3, groups=c), nn.GELU(), _conv(c, c))


class ConvSmall(_Sequential):
    """A single 1x1 conv."""

    name = "conv_small"

    def __init__(self, channels: int) -> None:
        super().__init__(channels, _conv(channels, channels))


class ConvLight(_Sequential):
    """3x3 conv down to C/4, GELU, 1x1 conv back up to C."""

    name = "conv_light"

    def __init__(self, channels: int) -> None:
        c, r = channels, _reduced(channels)
        super().__init__(c, _conv(c, r, 3), nn.GELU(), _conv(r, c))


class ConvHeavy(_Sequential):
    """Two full 3x3 convs with a GELU between."""

    name = "conv_heavy"

    def __init__(self, channels: int) -> None:
        c = channels
        super().__init__(c, _conv(c, c, 3), nn.GELU(), _conv(c, c, 3))


class Bottleneck(_Sequential):
    """ResNet bottleneck: 1x1 down to C/4, 3x3, 1x1 up to C (GELU between)."""

    name = "bottleneck"

    def __init__(self, channels: int) -> None:
        c, r = channels, _reduced(channels)
        super().__init__(c, _conv(c, r), nn.GELU(), _conv(r, r, 3), nn.GELU(), _conv(r, c))


class LoRA(_Sequential):
    """Low-rank pointwise update ``B @ A`` (C -> 8 -> C, no bias); ``B`` starts at zero."""

    name = "lora"

    def __init__(self, channels: int) -> None:
        c = channels
        super().__init__(c, _conv(c, LORA_RANK, bias=False), _conv(LORA_RANK, c, bias=False))


class MLP(_Sequential):
    """Pointwise MLP: 1x1 C -> 2C, GELU, 1x1 2C -> C."""

    name = "mlp"

    def __init__(self, channels: int) -> None:
        c = channels
        super().__init__(c, _conv(c, 2 * c), nn.GELU(), _conv(2 * c, c))


class Dilated(_Sequential):
    """A single full 3x3 conv with dilation 2 (5x5 receptive field)."""

    name = "dilated"

    def __init__(self, channels: int) -> None:
        super().__init__(channels, _conv(channels, channels, 3, dilation=2))


class InvertedResidual(_Sequential):
    """MobileNetV2 block: 1x1 expand to 2C, GELU, 3x3 depthwise, GELU, 1x1 project to C."""

    name = "inverted_residual"

    def __init__(self, channels: int) -> None:
        c, e = channels, 2 * channels
        super().__init__(c, _conv(c, e), nn.GELU(), _conv(e, e, 3, groups=e), nn.GELU(), _conv(e, c))


_CLASSES: tuple[type[Blueprint], ...] = (
    Noop,
    Norm,
    ChannelAttention,
    SpatialAttention,
    Depthwise,
    ConvSmall,
    ConvLight,
    ConvHeavy,
    Bottleneck,
    LoRA,
    MLP,
    Dilated,
    InvertedResidual,
)

_REGISTRY: dict[str, Callable[[int], Blueprint]] = {cls.name: cls for cls in _CLASSES}

#: The 13 blueprint names; the index of a name is its blueprint action value. Index 0 is ``noop``.
BLUEPRINTS: tuple[str, ...] = tuple(_REGISTRY)

_INDEX: dict[str, int] = {name: i for i, name in enumerate(BLUEPRINTS)}

#: One line per blueprint, for tables and docs.
BLUEPRINT_DESCRIPTIONS: dict[str, str] = {
    "noop": "No module; zero delta, 0 params (in the action space, always masked)",
    "norm": "GroupNorm + per-channel scale/shift",
    "channel_attention": "Squeeze-excitation gate, x * tanh(MLP(avgpool x)), hidden max(4, C/4)",
    "spatial_attention": "CBAM spatial gate, x * tanh(conv7x7[mean_c, max_c])",
    "depthwise": "3x3 depthwise conv, GELU, 1x1 pointwise",
    "conv_small": "1x1 conv",
    "conv_light": "3x3 conv to max(2, C/4), GELU, 1x1 conv up",
    "conv_heavy": "Two 3x3 convs with GELU",
    "bottleneck": "1x1 down to max(2, C/4), 3x3, 1x1 up (GELU between)",
    "lora": f"Low-rank 1x1 update C -> {LORA_RANK} -> C, no bias",
    "mlp": "Pointwise MLP C -> 2C -> C with GELU",
    "dilated": "3x3 conv, dilation 2",
    "inverted_residual": "1x1 expand to 2C, 3x3 depthwise, 1x1 project (GELU between)",
}
assert len(BLUEPRINTS) == 13 and BLUEPRINTS[0] == NOOP_BLUEPRINT
assert set(BLUEPRINT_DESCRIPTIONS) == set(BLUEPRINTS)


def blueprint_index(name: str) -> int:
    """Action index of blueprint ``name``; ValueError naming it and the valid names otherwise."""
    return lookup("blueprint", name, _INDEX)


def _check_channels(channels: int) -> int:
    if isinstance(channels, bool) or int(channels) != channels or channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    return int(channels)


def build_blueprint(name: str, channels: int, *, seed: int | None = None) -> Blueprint:
    """Build blueprint ``name`` for a ``channels``-channel feature map.

    With ``seed`` the weights depend only on ``(name, channels, seed)`` and the caller's global RNG
    state is left untouched; without it the global RNG is used as usual.
    """
    cls = lookup("blueprint", name, _REGISTRY)
    channels = _check_channels(channels)
    if seed is None:
        return cls(channels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return cls(channels)


@functools.lru_cache(maxsize=None)
def _param_count(name: str, channels: int) -> int:
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        module = _REGISTRY[name](channels)
    return sum(p.numel() for p in module.parameters())


def blueprint_param_count(name: str, channels: int) -> int:
    """Number of parameters of ``build_blueprint(name, channels)`` (built on the meta device)."""
    lookup("blueprint", name, _REGISTRY)
    return _param_count(name, _check_channels(channels))


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
    """:func:`blueprint_table` as a Markdown table (one parameter column per width)."""
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
