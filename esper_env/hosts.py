"""Host networks, split into segments so an engine can apply seed slots between them.

A :class:`HostNetwork` is a plain ``nn.Module`` whose ``segments`` run one after another. Slot
point ``i`` (named ``slot_names[i]``) sits right after ``segments[i]``; the feature map there has
``slot_channels[i]`` channels. The last segment ends with global average pooling and the linear
classifier and returns logits, so ``len(segments) == len(slot_names) + 1``.

The CNN and ResNet hosts accept 3-channel images at resolution 16 or 32 (any resolution >= 8 for
the CNNs with three max-pools works). The MLP hosts (``kind="mlp"``, the fast tier's) take
``in_channels`` features as ``[B, in_channels, 1, 1]`` "images": every layer is a pointwise
(1x1) conv, computed as a matrix product (:class:`PointwiseConv`), so the slots, seeds and
counterfactuals of the CNN hosts work on them unchanged. They contain no dropout and nothing else that draws random numbers in
``forward``. ``build_host(..., seed=s)`` initialises the weights from ``s`` without touching the
caller's global RNG state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from esper_env.runtime import lookup

from .blueprints import Consumer, SlotGeometry

__all__ = [
    "HOSTS",
    "HOST_KINDS",
    "HOST_SPECS",
    "POINTWISE_BLUEPRINTS",
    "HostNetwork",
    "HostSpec",
    "PointwiseConv",
    "build_host",
    "count_parameters",
    "host_slots",
    "instance_host",
    "register_host",
    "supported_blueprints",
]


@dataclass(frozen=True)
class HostSpec:
    """How to build one host architecture.

    ``kind`` is ``"cnn"`` (blocks of conv3x3-BN-ReLU[-MaxPool2]; ``pooled[i]`` says whether
    block ``i`` ends with a max-pool), ``"resnet"`` (CIFAR-stem BasicBlock ResNet;
    ``blocks[i]`` is the number of BasicBlocks in stage ``i``) or ``"mlp"`` (layers of
    pointwise-conv-BN-ReLU on ``[B, in_channels, 1, 1]`` inputs).
    """

    kind: str
    channels: tuple[int, ...]
    pooled: tuple[bool, ...] = ()
    blocks: tuple[int, ...] = ()
    #: Input channels: 3 (RGB) for the image hosts, the flat feature count for an MLP.
    in_channels: int = 3

    @property
    def slot_names(self) -> tuple[str, ...]:
        prefix = "block" if self.kind == "cnn" else "layer"
        return tuple(f"{prefix}{i + 1}" for i in range(len(self.channels)))


#: Host kinds (:attr:`HostSpec.kind`).
HOST_KINDS: tuple[str, ...] = ("cnn", "resnet", "mlp")

#: The blueprints that apply to an MLP host: on 1x1 feature maps a kxk kernel uses only its centre
#: tap, so the blueprints with spatial kernels (``conv_light``, ``depthwise``, ``dilated``,
#: ``spatial_attention``...) would be duplicates or trivial and pay rent for weights that never act.
#: The env masks the others on MLP hosts (tests/env/test_hosts.py checks that these, and only
#: these, are pointwise there).
POINTWISE_BLUEPRINTS: tuple[str, ...] = (
    "norm", "channel_attention", "conv_small", "lora", "mlp", "widen_2x", "widen_4x",
)  # fmt: skip


def supported_blueprints(name: str) -> tuple[str, ...] | None:
    """The blueprints that apply to host ``name``; ``None``: all of them (the image hosts)."""
    return POINTWISE_BLUEPRINTS if lookup("host", name, HOST_SPECS).kind == "mlp" else None


HOST_SPECS: dict[str, HostSpec] = {
    "HostCNN": HostSpec("cnn", (32, 64, 128), pooled=(True, True, True)),
    "HostCNN-Wide": HostSpec("cnn", (64, 128, 256), pooled=(True, True, True)),
    "HostCNN-Narrow": HostSpec("cnn", (8, 16, 32), pooled=(True, True, True)),
    "HostCNN-Deep": HostSpec("cnn", (32, 64, 128, 128, 256), pooled=(True, True, True, False, False)),
    "ResNet-18": HostSpec("resnet", (64, 128, 256, 512), blocks=(2, 2, 2, 2)),
    "ResNet-34": HostSpec("resnet", (64, 128, 256, 512), blocks=(3, 4, 6, 3)),
}

#: Valid host architecture names (the built-in ones; :func:`register_host` adds more).
HOSTS: tuple[str, ...] = tuple(HOST_SPECS)


def register_host(name: str, spec: HostSpec) -> None:
    """Make ``name`` a valid ``EnvironmentConfig.architecture`` (for example a scaled CNN).

    Re-registering a name with the same spec is a no-op; a different spec under a taken name is
    an error, so a built-in host can never be redefined.
    """
    if not isinstance(spec, HostSpec):
        raise TypeError(f"spec must be a HostSpec, got {type(spec).__name__}")
    if spec.kind not in HOST_KINDS or not spec.channels:
        raise ValueError(f"bad host spec {spec!r}: kind must be one of {HOST_KINDS} with at least one stage")
    if spec.kind != "mlp" and spec.in_channels != 3:
        raise ValueError(f"bad host spec {spec!r}: only an mlp takes other than 3 input channels")
    if any(
        isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in (*spec.channels, spec.in_channels)
    ):
        raise ValueError(f"bad host spec {spec!r}: widths must be positive integers")
    if spec.kind == "cnn" and len(spec.pooled) != len(spec.channels):
        raise ValueError(f"bad host spec {spec!r}: a cnn needs one 'pooled' flag per block")
    if spec.kind == "resnet" and len(spec.blocks) != len(spec.channels):
        raise ValueError(f"bad host spec {spec!r}: a resnet needs one 'blocks' count per stage")
    known = HOST_SPECS.get(name)
    if known is not None and known != spec:
        raise ValueError(f"host {name!r} is already registered with a different spec: {known!r}")
    HOST_SPECS[name] = spec


def instance_host(widths: tuple[int, ...], kind: str) -> str:
    """Register (once) and name the host of a task instance: an MLP on the clusters task's flat
    inputs (``"MLP-48-16-4-16"``: input, then the widths) or a 3-block pooled CNN (``"CNN-16-4-16"``)."""
    widths = tuple(int(w) for w in widths)
    if kind == "mlp":
        from esper_env.clusters import CLUSTER_FEATURES

        name = "MLP-" + "-".join(map(str, (CLUSTER_FEATURES, *widths)))
        register_host(name, HostSpec("mlp", widths, in_channels=CLUSTER_FEATURES))
    elif kind == "cnn":
        name = "CNN-" + "-".join(map(str, widths))
        register_host(name, HostSpec("cnn", widths, pooled=(True,) * len(widths)))
    else:
        raise ValueError(f"unknown instance host kind {kind!r}; valid are: 'mlp', 'cnn'")
    return name


def host_slots(name: str) -> tuple[tuple[str, int], ...]:
    """``((slot_name, channels), ...)`` of host ``name`` without building it."""
    spec = lookup("host", name, HOST_SPECS)
    return tuple(zip(spec.slot_names, spec.channels))


class HostNetwork(nn.Module):
    """A classifier made of segments with named slot points between them."""

    def __init__(
        self,
        name: str,
        segments: list[nn.Module],
        slot_names: tuple[str, ...],
        slot_channels: tuple[int, ...],
        num_classes: int,
    ) -> None:
        super().__init__()
        if len(segments) != len(slot_names) + 1 or len(slot_names) != len(slot_channels):
            raise ValueError("a host needs len(segments) == len(slot_names) + 1 == len(slot_channels) + 1")
        self.name = name
        self.segments = nn.ModuleList(segments)
        self.slot_names = tuple(slot_names)
        self.slot_channels = tuple(slot_channels)
        self.num_classes = num_classes

    @property
    def num_slots(self) -> int:
        return len(self.slot_names)

    def slot_index(self, slot: str) -> int:
        """Index of slot point ``slot`` (it sits right after ``segments[index]``)."""
        return lookup("slot", slot, {s: i for i, s in enumerate(self.slot_names)})

    def run_segment(self, index: int, x: torch.Tensor, inject: torch.Tensor | None = None) -> torch.Tensor:
        """Run ``segments[index]``; ``inject`` is added to the output of its first linear layer.

        The first linear layer of a segment is the one that consumes the previous slot's features
        (see :meth:`slot_geometry`): a conv block's conv, a residual stage's first ``conv1``, the
        head's classifier. A widening seed feeds its new channels in there, so ``inject`` has
        that layer's output shape; ``None`` runs the segment as it is.
        """
        segment = self.segments[index]
        if inject is None:
            return segment(x)
        first = segment[0]
        if isinstance(first, nn.Conv2d):  # conv3x3-BN-ReLU[-pool]
            x = first(x) + inject
            for layer in list(segment)[1:]:
                x = layer(x)
            return x
        if isinstance(first, BasicBlock):
            x = first(x, inject)
            for block in list(segment)[1:]:
                x = block(x)
            return x
        return segment(x) + inject  # the head: avgpool, flatten, linear (inject is in logit space)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for segment in self.segments:
            x = segment(x)
        return x

    def slot_geometry(self, index: int) -> SlotGeometry:
        """Widths around slot ``index``: the block before it, and the layer that consumes it."""
        if not 0 <= index < self.num_slots:
            raise ValueError(f"unknown slot index {index!r}; valid are 0..{self.num_slots - 1}")
        before = self.segments[index]
        first_conv = next(m for m in before.modules() if isinstance(m, nn.Conv2d))
        nxt = self.segments[index + 1]
        if index + 1 == len(self.segments) - 1:
            linear = next(m for m in nxt.modules() if isinstance(m, nn.Linear))
            consumer = Consumer("linear", linear.out_features)
        else:
            conv = nxt[0].conv1 if isinstance(nxt[0], BasicBlock) else nxt[0]
            consumer = Consumer(
                "conv", conv.out_channels, conv.kernel_size[0], conv.stride[0], conv.padding[0]
            )
        return SlotGeometry(
            self.slot_channels[index], first_conv.in_channels, consumer, kernel_size=first_conv.kernel_size[0]
        )

    def extra_repr(self) -> str:
        return f"name={self.name!r}, slots={dict(zip(self.slot_names, self.slot_channels))}"


class PointwiseConv(nn.Conv2d):
    """A 1x1 conv that runs as ``F.linear`` on ``[B, C, 1, 1]`` inputs (1.6x faster per SGD step on
    CPU than the conv kernel, measured for the fast tier's hosts; docs/FAST_TIER.md)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (1, 1):
            return super().forward(x)
        return nn.functional.linear(x.flatten(1), self.weight.flatten(1))[:, :, None, None]


def _pointwise_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(PointwiseConv(c_in, c_out), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _conv_block(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """The standard two-conv3x3 residual block (He et al. 2016), projection shortcut when needed."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor, inject: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv1(x)
        if inject is not None:  # a widening seed's new channels, through zero-initialised weights
            out = out + inject
        out = self.relu(self.bn1(out))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def _resnet_stage(c_in: int, c_out: int, n_blocks: int, stride: int) -> nn.Sequential:
    blocks = [BasicBlock(c_in, c_out, stride)]
    blocks += [BasicBlock(c_out, c_out) for _ in range(n_blocks - 1)]
    return nn.Sequential(*blocks)


def _head(c_in: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(c_in, num_classes))


def _build_segments(spec: HostSpec, num_classes: int) -> list[nn.Module]:
    segments: list[nn.Module] = []
    if spec.kind == "cnn":
        c_in = 3
        for c_out, pool in zip(spec.channels, spec.pooled):
            segments.append(_conv_block(c_in, c_out, pool))
            c_in = c_out
    elif spec.kind == "mlp":
        c_in = spec.in_channels
        for c_out in spec.channels:
            segments.append(_pointwise_block(c_in, c_out))
            c_in = c_out
    else:  # resnet: CIFAR stem (conv3x3 stride 1, no max-pool) folded into the first segment
        stem = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        )
        c_in = 64
        for i, (c_out, n_blocks) in enumerate(zip(spec.channels, spec.blocks)):
            stage = _resnet_stage(c_in, c_out, n_blocks, stride=1 if i == 0 else 2)
            segments.append(nn.Sequential(stem, stage) if i == 0 else stage)
            c_in = c_out
    segments.append(_head(spec.channels[-1], num_classes))
    return segments


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        # nn.Linear keeps PyTorch's default initialisation.


def _build(name: str, num_classes: int) -> HostNetwork:
    spec = lookup("host", name, HOST_SPECS)
    host = HostNetwork(name, _build_segments(spec, num_classes), spec.slot_names, spec.channels, num_classes)
    _init_weights(host)
    return host


def build_host(name: str, num_classes: int, *, seed: int | None = None) -> HostNetwork:
    """Build host ``name`` with ``num_classes`` outputs.

    With ``seed`` the weights depend only on ``(name, num_classes, seed)`` and the caller's global
    RNG state is left untouched; without it the global RNG is used as usual.
    """
    lookup("host", name, HOST_SPECS)  # fail fast, before forking the RNG
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes!r}")
    if seed is None:
        return _build(name, int(num_classes))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return _build(name, int(num_classes))


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements of ``module`` (shared parameters counted once; buffers excluded)."""
    return sum(p.numel() for p in module.parameters())
