"""Prototype of a fast tier (issue 22): small hosts, per-instance set-ups, one env class.

A feasibility prototype, built only from the public pieces (it changes no other module):

* :func:`build_mlp_host`: an MLP expressed as a CNN on 1x1 feature maps. The engine flattens the
  ``[B, 3, R, R]`` image to ``[B, 3*R*R, 1, 1]`` before segment 0 (:class:`FastEngine`); every
  "conv" of the host is a 1x1 conv (a linear layer) followed by BatchNorm and ReLU, with no
  pooling, and the head's global average pool is the identity. Slot points, ``slot_geometry``,
  widening seeds and the fused counterfactual pass then work unchanged.
* :class:`Instance`: one task instance (host family and widths, learning rate, optimizer,
  training-set size, extra label noise, rent, horizon); :func:`draw_instance` draws one from an
  integer, reproducibly.
* :class:`FastEsperEnv`: :class:`~esper_env.env.EsperEnv` whose engine is a :class:`FastEngine`
  built for one :class:`Instance`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from esper_env.configs import EnvironmentConfig, Fidelity
from esper_env.data import ImageSplits
from esper_env.engine import TrainingEngine, build_optimizer
from esper_env.env import EsperEnv
from esper_env.hosts import HostNetwork, HostSpec, count_parameters, register_host
from esper_env.slots import Slot

__all__ = ["FastEngine", "FastEsperEnv", "Instance", "build_mlp_host", "draw_instance"]


def _linear_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def build_mlp_host(widths: tuple[int, ...], in_features: int, num_classes: int) -> HostNetwork:
    """An MLP ``in_features -> widths... -> num_classes`` as 1x1 convs on 1x1 maps, one slot per hidden layer."""
    segments: list[nn.Module] = []
    c_in = in_features
    for w in widths:
        segments.append(_linear_block(c_in, w))
        c_in = w
    segments.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(c_in, num_classes)))
    names = tuple(f"layer{i + 1}" for i in range(len(widths)))
    host = HostNetwork("MLP-" + "-".join(map(str, widths)), segments, names, tuple(widths), num_classes)
    for m in host.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return host


def cnn_host_name(widths: tuple[int, ...]) -> str:
    """Register (once) and return the name of a 3-block conv-BN-ReLU-pool CNN of ``widths``."""
    name = "FastCNN-" + "-".join(map(str, widths))
    register_host(name, HostSpec("cnn", tuple(widths), pooled=(True,) * len(widths)))
    return name


@dataclass(frozen=True)
class Instance:
    """One task instance. ``family`` is ``"mlp"`` (1x1 maps) or ``"cnn"`` (conv-pool blocks)."""

    family: str = "mlp"
    widths: tuple[int, ...] = (32, 32, 32)
    learning_rate: float = 0.05
    optimizer: str = "SGD"
    batch_size: int = 128
    train_images: int = 512
    label_noise: float = 0.0  #: extra fraction of training labels replaced by a random class
    rent: float = 0.03  #: score price per doubling of parameters (post hoc)
    horizon: int = 20  #: epochs that count (post hoc: the score at this epoch)
    dataset: str = "synthcifar"  #: or "teacher" (:func:`make_teacher_splits`)
    teacher_seed: int = 0
    teacher_width: int = 64
    clusters: int = 8  #: "clusters" dataset: clusters per class
    spread: float = 0.6  #: "clusters" dataset: cluster standard deviation (centres have unit scale)
    index: int = -1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The first prototype distribution (teacher task; rejected, see docs/FAST_TIER.md).
TEACHER_DISTRIBUTION: dict[str, tuple[Any, ...]] = {
    "base_width": (16, 32, 64),
    "bottleneck": (-1, 0, 1, 2),  # -1: no narrow layer
    "narrow": (4, 8),  # the bottleneck layer's width is base_width // narrow (at least 2)
    "learning_rate": (0.01, 0.05, 0.2),
    "train_images": (256, 1024),
    "label_noise": (0.0, 0.3),
    "teacher_width": (16, 128),
    "rent": (0.0, 0.03, 0.12),
    "horizon": (10, 20),
}


#: The second prototype distribution (cluster task; too many hopeless or rent-crushed instances).
CLUSTER_DISTRIBUTION_V1: dict[str, tuple[Any, ...]] = {
    "base_width": (16, 32, 64),
    "bottleneck": (-1, 0, 1, 2),
    "narrow": (4, 8),
    "learning_rate": (0.03, 0.1, 0.3),
    "train_images": (256, 1024),
    "label_noise": (0.0, 0.2),
    "clusters": (2, 8, 32),
    "spread": (0.4, 0.8),
    "rent": (0.0, 0.03, 0.12),
    "horizon": (10, 20),
}


#: The proposed distribution (cluster task, v2). Every field is drawn independently.
CLUSTER_DISTRIBUTION: dict[str, tuple[Any, ...]] = {
    "base_width": (16, 32, 64),
    "bottleneck": (-1, 0, 1, 2),
    "narrow": (4,),
    "learning_rate": (0.03, 0.1, 0.3),
    "train_images": (1024,),
    "label_noise": (0.0, 0.2),
    "clusters": (2, 8, 24),
    "spread": (0.4, 0.7),
    "rent": (0.0, 0.03, 0.06),
    "horizon": (12, 20),
}

DISTRIBUTIONS: dict[str, dict[str, tuple[Any, ...]]] = {
    "teacher": TEACHER_DISTRIBUTION,
    "clusters-v1": CLUSTER_DISTRIBUTION_V1,
    "clusters": CLUSTER_DISTRIBUTION,
}


def draw_instance(k: int, family: str = "mlp", dataset: str = "clusters", batch_size: int = 256) -> Instance:
    """Instance ``k`` of the distribution: a pure function of ``k`` (numpy's PCG64 seeded by ``k``)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"instance index must be an integer >= 0, got {k!r}")
    distribution = DISTRIBUTIONS[dataset]
    dataset = dataset.split("-")[0]
    rng = np.random.default_rng([0xE5E2, int(k)])
    pick = {key: values[int(rng.integers(len(values)))] for key, values in distribution.items()}
    widths = [pick["base_width"]] * 3
    if pick["bottleneck"] >= 0:
        widths[pick["bottleneck"]] = max(2, pick["base_width"] // pick["narrow"])
    return Instance(
        family=family,
        widths=tuple(widths),
        learning_rate=pick["learning_rate"],
        train_images=pick["train_images"],
        label_noise=pick["label_noise"],
        rent=pick["rent"],
        horizon=pick["horizon"],
        dataset=dataset,
        teacher_seed=int(k),
        teacher_width=pick.get("teacher_width", 64),
        clusters=pick.get("clusters", 8),
        spread=pick.get("spread", 0.6),
        batch_size=batch_size if dataset == "clusters" else 128,
        index=int(k),
    )


def make_teacher_splits(fid: Fidelity, teacher_seed: int, width: int = 64, noise: float = 0.1) -> ImageSplits:
    """A teacher-student task shaped like images: ``[N, 3, R, R]`` uint8 inputs, 10 classes.

    Inputs are quantised Gaussians; the label is the argmax of a random 2-hidden-layer ReLU
    teacher ``3*R*R -> width -> width -> 10`` applied to the image and to its horizontal flip
    (summed, so the env's flip augmentation keeps labels right), then ``noise`` of the labels are
    replaced by a random class in every split. Pure function of its arguments.
    """
    g = torch.Generator().manual_seed(7919 * int(teacher_seed) + 17)
    d, r = 3 * fid.resolution**2, fid.resolution
    w1 = torch.randn(d, width, generator=g) / d**0.5
    w2 = torch.randn(width, width, generator=g) * (2 / width) ** 0.5
    w3 = torch.randn(width, 10, generator=g) * (2 / width) ** 0.5
    b1 = torch.randn(width, generator=g) * 0.5

    def teacher(x: Tensor) -> Tensor:
        z = (x.float() - 128) / 42
        return torch.relu(torch.relu(z.reshape(len(z), -1) @ w1 + b1) @ w2) @ w3

    out = []
    for k, n in enumerate((fid.train_images, fid.val_images, fid.test_images)):
        gs = torch.Generator().manual_seed(1_000_003 * int(teacher_seed) + k)
        x = (128 + 42 * torch.randn(n, 3, r, r, generator=gs)).round().clamp(0, 255).to(torch.uint8)
        y = (teacher(x) + teacher(x.flip(-1))).argmax(1)
        flip = torch.rand(n, generator=gs) < noise
        y[flip] = torch.randint(0, 10, (int(flip.sum()),), generator=gs)
        out += [x, y]
    xs = out[0].float() / 255
    mean = tuple(float(v) for v in xs.mean(dim=(0, 2, 3)))
    std = tuple(float(v) for v in xs.std(dim=(0, 2, 3)))
    return ImageSplits(*out, 10, mean, std, "teacher")  # type: ignore[arg-type]


def make_cluster_splits(
    fid: Fidelity, seed: int, clusters: int = 8, spread: float = 0.6, noise: float = 0.0
) -> ImageSplits:
    """Ten classes, each a union of ``clusters`` Gaussian blobs in image space (``[N, 3, R, R]`` uint8).

    Centres are mirror-symmetric images (so the env's horizontal flip keeps every label), drawn
    once from ``seed``; an image is a centre plus ``spread`` Gaussian noise, quantised. A network
    needs about one hidden unit per blob to separate them, so the number of blobs sets how much
    width pays. ``noise`` of the labels in every split are replaced by a random class.
    """
    g = torch.Generator().manual_seed(104_729 * int(seed) + 3)
    r = fid.resolution
    half = torch.randn(10 * clusters, 3, r, (r + 1) // 2, generator=g)
    centres = torch.cat([half, half.flip(-1)[..., r % 2 :]], dim=-1)  # mirror-symmetric
    out = []
    for k, n in enumerate((fid.train_images, fid.val_images, fid.test_images)):
        gs = torch.Generator().manual_seed(1_000_003 * int(seed) + 101 + k)
        blob = torch.randint(0, 10 * clusters, (n,), generator=gs)
        z = centres[blob] + spread * torch.randn(n, 3, r, r, generator=gs)
        x = (128 + 40 * z).round().clamp(0, 255).to(torch.uint8)
        y = blob % 10
        flip = torch.rand(n, generator=gs) < noise
        y[flip] = torch.randint(0, 10, (int(flip.sum()),), generator=gs)
        out += [x, y]
    xs = out[0].float() / 255
    mean = tuple(float(v) for v in xs.mean(dim=(0, 2, 3)))
    std = tuple(float(v) for v in xs.std(dim=(0, 2, 3)))
    return ImageSplits(*out, 10, mean, std, "clusters")  # type: ignore[arg-type]


class FastEngine(TrainingEngine):
    """A :class:`TrainingEngine` whose host is built from an :class:`Instance`."""

    def __init__(self, config: EnvironmentConfig, data: Any, *, instance: Instance, **kwargs: Any) -> None:
        self.instance = instance
        self.flatten = instance.family == "mlp"
        super().__init__(config, data, **kwargs)
        if self.flatten:
            in_features = int(data.train_x[0].numel())
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                host = build_mlp_host(instance.widths, in_features, data.num_classes)
            self.host = host.to(self.device, memory_format=self.memory_format)
            self.slots = [Slot(i, host.slot_names[i], host.slot_channels[i]) for i in range(len(self.slots))]
            self.host_optimizer = build_optimizer(self.config, list(self.host.parameters()))
            self._bn_buffers = [
                b
                for m in self.host.modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm)
                for b in m.buffers()
            ]

    def _flat(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1, 1, 1) if self.flatten and x.shape[-1] != 1 else x

    def _run(self, h: Tensor, start: int, *args: Any, **kwargs: Any) -> Any:
        return super()._run(self._flat(h) if start == 0 else h, start, *args, **kwargs)

    def _run_counterfactual(self, xb: Tensor, measured: list[int], first: int) -> Tensor:
        return super()._run_counterfactual(self._flat(xb), measured, first)


def instance_config(inst: Instance) -> EnvironmentConfig:
    arch = "HostCNN-Narrow" if inst.family == "mlp" else cnn_host_name(inst.widths)
    return EnvironmentConfig(
        f"fast-{inst.index}",
        arch,
        inst.learning_rate,
        inst.batch_size,
        inst.optimizer,
        max_epochs=inst.horizon,
    )


class FastEsperEnv(EsperEnv):
    """:class:`EsperEnv` on one :class:`Instance` (its data cut to ``train_images``, noise added)."""

    def __init__(self, instance: Instance, fidelity: Fidelity, **kwargs: Any) -> None:
        self.instance = instance
        super().__init__(config=instance_config(instance), fidelity=fidelity, **kwargs)
        d = self.data
        if instance.dataset == "teacher":
            d = make_teacher_splits(fidelity, instance.teacher_seed, instance.teacher_width)
        elif instance.dataset == "clusters":
            d = make_cluster_splits(fidelity, instance.teacher_seed, instance.clusters, instance.spread)
        n = instance.train_images
        if n > len(d.train_y):
            raise ValueError(f"instance asks for {n} training images, the fidelity has {len(d.train_y)}")
        y = d.train_y[:n].clone()
        if instance.label_noise > 0:
            g = torch.Generator().manual_seed(1000 + max(instance.index, 0))
            flip = torch.rand(n, generator=g) < instance.label_noise
            y[flip] = torch.randint(0, d.num_classes, (int(flip.sum()),), generator=g)
        self.data = replace(d, train_x=d.train_x[:n], train_y=y)
        self.engine = self._new_engine(0)
        self._base_host_params = count_parameters(self.engine.host)

    def _new_engine(self, seed: int) -> TrainingEngine:
        if not hasattr(self, "instance"):
            return super()._new_engine(seed)
        return FastEngine(
            self.config,
            self.data,
            instance=self.instance,
            num_slots=self.num_slots,
            device=self.device,
            seed=seed,
        )
