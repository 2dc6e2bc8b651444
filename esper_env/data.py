"""Image datasets for the host network, and the fast on-device batch iterator.

Datasets
--------
:func:`load_dataset` returns an :class:`ImageSplits` of uint8 tensors at the fidelity's
resolution. The split sizes come from the :class:`~esper_env.configs.Fidelity` so that the cost of
an env step never depends on anything else.

* ``cifar10`` / ``cifar100`` are read through ``torchvision.datasets`` (the on-disk format is
  torchvision's). The validation set is carved out of the 50,000 training images by a fixed,
  library-independent permutation (a splitmix64 hash, not an RNG whose stream could change between
  numpy/torch versions): the last 10% of the permuted images (5,000) are the validation pool and
  the rest the training pool, so validation never overlaps training.
* ``synthcifar`` is generated procedurally and works offline; see below.

SynthCIFAR
----------
A CIFAR-shaped (3x32x32 uint8, 10 classes) task meant to behave like a small natural-image
benchmark: learnable, far from trivial, with accuracy that keeps rising with network width.

* Vocabulary. There are 8 *parts*, each a small textured disc (radius 5.5-9.5 px): gratings at
  0 deg, 90 deg and +-45 deg, concentric rings, a checkerboard, spokes, a plus-shaped cross and a
  radial spot. Orientations are only class-relevant where a horizontal flip preserves them
  (0/90 deg; the oblique grating is either diagonal), because hosts train with flip augmentation.
* Classes are conjunctions: class ``k`` is a pair of parts (``_CLASS_PARTS``), every part belongs to
  2-3 classes, so no single part identifies a class; the net must find both parts and combine them.
* Nuisances: each part has a random position (one quadrant each, so they rarely hide each other),
  radius, phase, orientation jitter (+-15 deg), period jitter (+-15%) and a random colour pair with
  random contrast, so mean colour carries no label information. The background is a random colour
  with smooth low-frequency colour noise and, half of the time, a faint full-field grating (a
  texture that resembles a part), plus pixel noise.
* Irreducible confusion: with probability ``_DISTRACTOR_P`` an image also contains a third,
  label-free part drawn from the same vocabulary. Such an image contains two class pairs when the
  distractor pairs up with one of its parts, so accuracy plateaus below 100%.

The class table is fixed; ``synth_seed`` only drives sampling. Images come in chunks of
``_SYNTH_CHUNK``, each chunk seeded by a hash of ``(synth_seed, split, chunk index)`` with its own
``torch.Generator``, so the first N images do not depend on how many are requested, only the
chunks a fidelity needs are generated, and train/val/test are three independent streams.

Batches
-------
:func:`iterate_batches` shuffles, augments (random crop with zero padding + horizontal flip, done on
the whole batch with one gather) and normalises batches of uint8 tensors that already live on the
training device. It is the hot path of every env step, so it avoids DataLoader, worker processes
and per-image Python loops.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .configs import FIDELITIES, Fidelity, lookup

__all__ = [
    "DATASETS",
    "DatasetNotFoundError",
    "ImageSplits",
    "clear_cache",
    "default_data_dir",
    "iterate_batches",
    "load_dataset",
    "make_synthcifar",
]

#: Valid dataset names.
DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "synthcifar")

_NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "synthcifar": 10}
_ENV_IDS = {"cifar10": "Esper-CIFAR10-v0", "cifar100": "Esper-CIFAR100-v0"}
#: Pool sizes shared by all datasets so a fidelity valid for one is valid for all.
_TRAIN_POOL, _VAL_POOL, _TEST_POOL = 45_000, 5_000, 10_000
_VAL_SPLIT_SEED = 0xE5BE2  # fixed: changing it would change every published validation number


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing or corrupted and ``download`` was False."""


@dataclass(frozen=True)
class ImageSplits:
    """Train/val/test images (uint8 ``[N, 3, R, R]``) and labels (int64 ``[N]``) of one dataset.

    ``mean``/``std`` are per-channel statistics of ``train_x`` in 0-1 units, for normalisation.
    The tensors may be shared with other environments through the loader's cache: treat them as
    read-only (index or copy them, never modify in place).
    """

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str

    @property
    def resolution(self) -> int:
        return int(self.train_x.shape[-1])

    def to(self, device: torch.device | str) -> ImageSplits:
        """A copy with every tensor on ``device`` (tensors already there are shared, not copied)."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **moved)


def default_data_dir() -> Path:
    """``$ESPER_DATA_DIR`` if set, else ``~/.cache/esper``."""
    env = os.environ.get("ESPER_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "esper"


def load_dataset(
    name: str,
    fidelity: Fidelity | str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    synth_seed: int = 0,
) -> ImageSplits:
    """Load (and cache in-process) the splits of dataset ``name`` at ``fidelity``.

    Raises ``ValueError`` for an unknown name/fidelity or a fidelity larger than the dataset, and
    :class:`DatasetNotFoundError` when CIFAR files are missing and ``download`` is False.
    """
    lookup("dataset", name, dict.fromkeys(DATASETS))
    fid = fidelity if isinstance(fidelity, Fidelity) else lookup("fidelity", fidelity, FIDELITIES)
    if name == "synthcifar":
        return _load_cached(name, fid, None, int(synth_seed))
    root = str(Path(data_dir).expanduser().resolve() if data_dir is not None else default_data_dir())
    try:
        return _load_cached(name, fid, root, 0)
    except DatasetNotFoundError:
        if not download:
            raise
    _torchvision_cifar(name, root, train=True, download=True)
    _torchvision_cifar(name, root, train=False, download=True)
    return _load_cached(name, fid, root, 0)


def clear_cache() -> None:
    """Drop the in-process dataset cache (e.g. to free memory)."""
    _load_cached.cache_clear()


# The key includes the whole (frozen, hashable) Fidelity, not just its name, so two custom
# fidelities that share a name cannot alias each other.
@functools.lru_cache(maxsize=8)
def _load_cached(name: str, fid: Fidelity, root: str | None, synth_seed: int) -> ImageSplits:
    if name == "synthcifar":
        for split, n, pool in (("train", fid.train_images, _TRAIN_POOL), ("val", fid.val_images, _VAL_POOL),
                               ("test", fid.test_images, _TEST_POOL)):
            _check_size(name, split, n, pool)
        parts = [make_synthcifar(n, split, synth_seed) for split, n in
                 (("train", fid.train_images), ("val", fid.val_images), ("test", fid.test_images))]
    else:
        assert root is not None
        pool_x, pool_y = _torchvision_cifar(name, root, train=True, download=False)
        test_x, test_y = _torchvision_cifar(name, root, train=False, download=False)
        order = _fixed_permutation(len(pool_y), _VAL_SPLIT_SEED)
        n_val_pool = len(order) // 10
        train_idx, val_idx = order[: len(order) - n_val_pool], order[len(order) - n_val_pool :]
        _check_size(name, "train", fid.train_images, len(train_idx))
        _check_size(name, "val", fid.val_images, len(val_idx))
        _check_size(name, "test", fid.test_images, len(test_y))
        tr, va = train_idx[: fid.train_images], val_idx[: fid.val_images]
        parts = [(pool_x[tr], pool_y[tr]), (pool_x[va], pool_y[va]),
                 (test_x[: fid.test_images], test_y[: fid.test_images])]
    (trx, try_), (vax, vay), (tex, tey) = [(_resize(x, fid.resolution), y) for x, y in parts]
    mean, std = _channel_stats(trx)
    return ImageSplits(trx, try_, vax, vay, tex, tey, _NUM_CLASSES[name], mean, std, name)


def _check_size(name: str, split: str, wanted: int, available: int) -> None:
    if wanted > available:
        raise ValueError(
            f"fidelity asks for {wanted} {split} images but {name!r} has only {available} "
            f"{split} images available"
        )


def _torchvision_cifar(name: str, root: str, *, train: bool, download: bool) -> tuple[Tensor, Tensor]:
    """Images ``[N, 3, 32, 32]`` uint8 and labels int64 of one CIFAR split, via torchvision."""
    from torchvision import datasets  # imported lazily: SynthCIFAR-only users never pay for it

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        ds = cls(root=root, train=train, download=download)
    except RuntimeError as err:
        if "not found or corrupted" not in str(err):
            raise
        raise DatasetNotFoundError(
            f"{name} not found (or corrupted) in {root!r} (looked for {cls.base_folder!r} there). "
            f"Get it with download=True, e.g. gymnasium.make({_ENV_IDS[name]!r}, download=True), "
            f"or run `esper download {name} --data-dir DIR`; set data_dir= or $ESPER_DATA_DIR to "
            f"use another directory. 'Esper-SynthCIFAR-v0' works offline with no download."
        ) from err
    if not download:
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        return x, torch.as_tensor(ds.targets, dtype=torch.int64)
    return torch.empty(0), torch.empty(0)  # download-only call


def _fixed_permutation(n: int, seed: int) -> np.ndarray:
    """A permutation of ``range(n)`` that depends only on ``(n, seed)``, forever (splitmix64)."""
    z = np.arange(n, dtype=np.uint64) + np.uint64(seed)
    z = z * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.argsort(z, kind="stable")


def _resize(x: Tensor, resolution: int, chunk: int = 4096) -> Tensor:
    """Area-downsample uint8 images once at load time (chunked to bound float memory)."""
    if x.shape[-1] == resolution:
        return x.contiguous()
    out = [
        F.interpolate(c.float(), size=(resolution, resolution), mode="area").round_().clamp_(0, 255).to(torch.uint8)
        for c in x.split(chunk)
    ]
    return torch.cat(out)


def _channel_stats(x: Tensor) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std of uint8 images, in 0-1 units (float64 sums: exact enough)."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).double() / 255.0
    mean, std = flat.mean(1), flat.std(1, correction=0).clamp_min(1e-6)
    return tuple(mean.tolist()), tuple(std.tolist())  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# SynthCIFAR
# ---------------------------------------------------------------------------------------------

_SYNTH_CHUNK = 250
_SYNTH_SIZE = 32
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}

# Pattern families of a part.
_GRATING, _RINGS, _CHECKER, _SPOKES, _CROSS, _SPOT, _DOTS = range(7)
_N_FAMILIES = 7
_FREE = -1.0  # orientation drawn uniformly: not class information
_DIAG = -2.0  # +-45 deg, sign drawn at random (invariant under horizontal flip)
#: Parts: (family, orientation in degrees or _FREE/_DIAG, family parameter: period px / spokes / half-width px)
_PARTS: tuple[tuple[int, float, float], ...] = (
    (_GRATING, 0.0, 6.0),
    (_GRATING, 90.0, 6.0),
    (_GRATING, _DIAG, 6.0),
    (_GRATING, 0.0, 10.0),
    (_GRATING, 90.0, 10.0),
    (_GRATING, _DIAG, 10.0),
    (_RINGS, _FREE, 8.0),
    (_CHECKER, _FREE, 10.0),
    (_SPOKES, _FREE, 4.0),
    (_CROSS, _FREE, 2.0),
    (_SPOT, _FREE, 0.0),
    (_DOTS, _FREE, 7.0),
)
#: Class k is one of _CLASS_PARTS[k] (chosen at random), each a conjunction of two parts.
_CLASS_PARTS = torch.tensor([
    [[0, 6], [4, 10]], [[1, 7], [5, 11]], [[2, 8], [3, 9]], [[0, 9], [5, 7]], [[1, 10], [3, 8]],
    [[2, 11], [4, 6]], [[0, 4], [8, 11]], [[1, 3], [9, 10]], [[2, 6], [5, 9]], [[7, 10], [3, 11]],
])
#: Opponent colour pairs (their mean is grey, so a part's palette barely moves the mean colour).
_PALETTES = (
    ((0.85, 0.2, 0.2), (0.15, 0.8, 0.8)),
    ((0.2, 0.8, 0.2), (0.8, 0.2, 0.8)),
    ((0.2, 0.2, 0.85), (0.8, 0.8, 0.15)),
)
_DISTRACTOR_P = 0.2
_ANGLE_JITTER = math.radians(15.0)
_PERIOD_JITTER = 0.15
_RADIUS = (7.0, 11.0)
_CONTRAST = (0.35, 0.8)
_NOISE = (0.01, 0.04)
_JITTER = 4.0
_BG_NOISE = 0.12
_BG_TEXTURE = (0.02, 0.08)


def make_synthcifar(n: int, split: str = "train", synth_seed: int = 0) -> tuple[Tensor, Tensor]:
    """The first ``n`` SynthCIFAR images (uint8 ``[n, 3, 32, 32]``) and labels of ``split``."""
    split_id = lookup("split", split, _SPLIT_IDS)
    with _one_thread():
        chunks = [_synth_chunk(_chunk_seed(synth_seed, split_id, c)) for c in range(-(-n // _SYNTH_CHUNK))]
    if not chunks:
        return torch.empty(0, 3, _SYNTH_SIZE, _SYNTH_SIZE, dtype=torch.uint8), torch.empty(0, dtype=torch.int64)
    return torch.cat([c[0] for c in chunks])[:n], torch.cat([c[1] for c in chunks])[:n]


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch single-threaded for a while (restored afterwards).

    Rendering is many small memory-bound ops, so a second thread gains little, while OpenMP
    spin-waiting makes it 10-50x slower when other processes (parallel envs, tests) share the cores.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _chunk_seed(synth_seed: int, split_id: int, chunk: int) -> int:
    digest = hashlib.sha256(f"esper-synthcifar/{synth_seed}/{split_id}/{chunk}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@functools.lru_cache(maxsize=None)
def _upsampler(n: int, size: int) -> Tensor:
    """``[n, size]`` matrix ``U`` with ``U.T @ X @ U`` = bilinear upsampling of ``X`` (half-pixel centres)."""
    return F.interpolate(torch.eye(n)[:, None], size=size, mode="linear", align_corners=False)[:, 0]


def _uniform(g: torch.Generator, shape: Sequence[int], lo: float, hi: float) -> Tensor:
    return torch.rand(*shape, generator=g) * (hi - lo) + lo


def _synth_chunk(seed: int) -> tuple[Tensor, Tensor]:
    """Render one chunk of ``_SYNTH_CHUNK`` images, all draws from one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    b, size, s = _SYNTH_CHUNK, _SYNTH_SIZE, 3  # s slots: two class parts + one optional distractor
    labels = (torch.arange(b) % len(_CLASS_PARTS))[torch.randperm(b, generator=g)]
    combo = torch.randint(0, _CLASS_PARTS.shape[1], (b,), generator=g)
    cls_parts = _CLASS_PARTS[labels, combo].sort(dim=1).values
    # Distractor: any part other than the image's own two (skip over them in sorted order).
    d = torch.randint(0, len(_PARTS) - 2, (b,), generator=g)
    d = d + (d >= cls_parts[:, 0])
    d = d + (d >= cls_parts[:, 1])
    part = torch.cat([cls_parts, d[:, None]], dim=1)  # [b, s]
    present = torch.ones(b, s)
    present[:, 2] = (torch.rand(b, generator=g) < _DISTRACTOR_P).float()
    # Slots are painted in index order: shuffle them so the distractor is not always on top.
    order = torch.rand(b, s, generator=g).argsort(dim=1)
    part, present = part.gather(1, order).flatten(), present.gather(1, order).flatten()

    m = b * s  # one row per (image, slot) from here on
    table = torch.tensor([p + (-1,) * (4 - len(p)) for p in _PARTS], dtype=torch.float32)
    family, base_angle, param, palette = table[part, 0].long(), table[part, 1], table[part, 2], table[part, 3].long()
    angle = torch.where(base_angle == _FREE, _uniform(g, (m,), 0, 2 * math.pi), torch.deg2rad(base_angle))
    diag = (torch.randint(0, 2, (m,), generator=g) * 2 - 1) * (math.pi / 4)
    angle = torch.where(base_angle == _DIAG, diag, angle) + _uniform(g, (m,), -_ANGLE_JITTER, _ANGLE_JITTER)
    period = param * _uniform(g, (m,), 1 - _PERIOD_JITTER, 1 + _PERIOD_JITTER)
    phase = _uniform(g, (m,), 0, 2 * math.pi)
    radius = _uniform(g, (m,), *_RADIUS)
    # One quadrant per slot (a random permutation of the four), jittered: little full occlusion.
    quad = torch.rand(b, 4, generator=g).argsort(dim=1)[:, :s].flatten()
    cx = (quad % 2) * (size / 2) + size / 4 + _uniform(g, (m,), -_JITTER, _JITTER)
    cy = (quad // 2) * (size / 2) + size / 4 + _uniform(g, (m,), -_JITTER, _JITTER)
    # Colour pair around a random mean, along a random colour direction, with random contrast.
    mid = _uniform(g, (m, 3), 0.2, 0.8)
    direction = F.normalize(torch.randn(m, 3, generator=g), dim=-1) * (math.sqrt(3) / 2)
    delta = direction * _uniform(g, (m, 1), *_CONTRAST)
    c1, c2 = (mid + delta).clamp(0, 1), (mid - delta).clamp(0, 1)
    # Parts with a palette use its two colours (jittered, in random order) instead.
    pal = torch.tensor(_PALETTES, dtype=torch.float32)[palette.clamp(min=0)]  # [m, 2, 3]
    swap = torch.rand(m, generator=g) < 0.5
    pal = torch.where(swap[:, None, None], pal.flip(1), pal) + torch.randn(m, 2, 3, generator=g) * 0.06
    has_pal = (palette >= 0)[:, None]
    c1, c2 = torch.where(has_pal, pal[:, 0], c1).clamp(0, 1), torch.where(has_pal, pal[:, 1], c2).clamp(0, 1)

    # Local pixel coordinates of every slot, [m, H, W].
    pix = torch.arange(size, dtype=torch.float32) + 0.5
    dx = pix.view(1, 1, size) - cx.view(m, 1, 1)
    dy = pix.view(1, size, 1) - cy.view(m, 1, 1)
    rho = torch.sqrt(dx * dx + dy * dy)
    alpha = (radius.view(m, 1, 1) + 0.5 - rho).clamp_(0, 1).mul_(present.view(m, 1, 1))
    pat = torch.empty(m, size, size)
    for fam in range(_N_FAMILIES):  # each family is computed only on its own slots
        i = (family == fam).nonzero().squeeze(1)
        if len(i) == 0:
            continue
        ddx, ddy, r, ph = dx[i], dy[i], rho[i], phase[i].view(-1, 1, 1)
        cos, sin = angle[i].cos().view(-1, 1, 1), angle[i].sin().view(-1, 1, 1)
        u, v = ddx * cos + ddy * sin, ddy * cos - ddx * sin
        tau = (2 * math.pi / period[i]).view(-1, 1, 1)
        if fam == _GRATING:
            p = torch.cos(u * tau + ph)
        elif fam == _RINGS:
            p = torch.cos(r * tau + ph)
        elif fam == _CHECKER:
            p = torch.tanh(4 * torch.cos(u * tau) * torch.cos(v * tau))
        elif fam == _SPOKES:
            p = torch.cos(period[i].round().view(-1, 1, 1) * torch.atan2(v, u) + ph)
        elif fam == _CROSS:
            p = (period[i].view(-1, 1, 1) + 0.5 - torch.minimum(u.abs(), v.abs())).clamp(-1, 1)
        elif fam == _SPOT:
            p = 1 - 2 * (r / radius[i].view(-1, 1, 1)).square()
        else:  # _DOTS
            p = torch.tanh(3 * (torch.cos(u * tau) + torch.cos(v * tau) - 0.5))
        pat[i] = p
    pat = pat.mul_(0.5).add_(0.5).view(b, s, 1, size, size)
    alpha = alpha.view(b, s, 1, size, size)
    c1, c2 = c1.view(b, s, 3, 1, 1), c2.view(b, s, 3, 1, 1)

    # Background: colour + smooth colour noise + (half the time) a faint full-field grating.
    up = _upsampler(4, size)  # bilinear 4x4 -> 32x32 as two small matmuls
    img = _uniform(g, (b, 3, 1, 1), 0.1, 0.9) + up.T @ (torch.randn(b, 3, 4, 4, generator=g) * _BG_NOISE) @ up
    t_angle = _uniform(g, (b, 1, 1), 0, 2 * math.pi)
    t_tau = 2 * math.pi / _uniform(g, (b, 1, 1), 4.0, 12.0)
    t_amp = _uniform(g, (b, 1, 1), *_BG_TEXTURE) * (torch.rand(b, 1, 1, generator=g) < 0.5)
    t_phase = _uniform(g, (b, 1, 1), 0, 2 * math.pi)
    texture = torch.cos((pix.view(1, 1, size) * t_angle.cos() + pix.view(1, size, 1) * t_angle.sin()) * t_tau + t_phase)
    img = img + (t_amp * texture)[:, None]
    for k in range(s):
        img.lerp_(torch.addcmul(c2[:, k], c1[:, k] - c2[:, k], pat[:, k]), alpha[:, k])
    noise = torch.randn(b, 3, size, size, generator=g) * _uniform(g, (b, 1, 1, 1), *_NOISE)
    img = img.add_(noise).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return img, labels


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------


def iterate_batches(
    x: Tensor,
    y: Tensor,
    batch_size: int,
    *,
    generator: torch.Generator,
    mean: Sequence[float],
    std: Sequence[float],
    augment: bool,
    shuffle: bool,
    drop_last: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield one epoch of ``(images, labels)``: float32 normalised ``[B, 3, R, R]`` on ``x.device``.

    ``x`` is uint8 ``[N, 3, R, R]`` already on the training device. All randomness (order, crop
    offsets, flips) is drawn once per epoch from ``generator`` on the generator's own device (a CPU
    generator is the norm, also for CUDA data) and the indices are moved to ``x.device``; so the same
    generator state gives the same batches. Augmentation is a random crop with ``R // 8`` pixels of
    zero padding (4 at 32 px) plus a horizontal flip with p=0.5, applied to the whole batch by one
    gather. Normalisation is ``(x / 255 - mean) / std`` fused into one multiply-add.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n, channels, res = x.shape[0], x.shape[1], x.shape[-1]
    dev, gdev = x.device, generator.device
    if shuffle:
        order = torch.randperm(n, generator=generator, device=gdev).to(dev)
    else:
        order = torch.arange(n, device=dev)
    scale = (1.0 / (255.0 * torch.tensor(std, dtype=torch.float32, device=dev))).view(1, channels, 1, 1)
    shift = (-torch.tensor(mean, dtype=torch.float32, device=dev)).view(1, channels, 1, 1) * scale * 255.0
    if augment:
        pad = res // 8
        offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator, device=gdev).to(dev) - pad
        flips = (torch.rand(n, generator=generator, device=gdev) < 0.5).to(dev)
        ramp = torch.arange(res, device=dev)
        chan = torch.arange(channels, device=dev).view(1, channels, 1, 1)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        if not augment:
            xb = x[idx]
        else:
            # Output pixel (r, c) reads source (r + dy, c' + dx) with c' = c or R-1-c (flip);
            # reads that fall outside the image are the zero padding.
            off = offsets[start : start + batch_size]
            cols = torch.where(flips[start : start + batch_size, None], res - 1 - ramp, ramp)
            rows = ramp.view(1, res) + off[:, :1]
            cols = cols + off[:, 1:]
            inside = ((rows >= 0) & (rows < res))[:, :, None] & ((cols >= 0) & (cols < res))[:, None, :]
            xb = x[idx.view(-1, 1, 1, 1), chan, rows.clamp(0, res - 1)[:, None, :, None],
                   cols.clamp(0, res - 1)[:, None, None, :]]
            xb = xb * inside[:, None]
        yield torch.addcmul(shift, xb.float(), scale), y[idx]
