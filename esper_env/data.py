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
A CIFAR-shaped (3x32x32 uint8, 10 classes) task that needs no download and behaves like a small
natural-image benchmark: learnable, far from trivial, and sensitive to network width (the
benchmark is about adding capacity to a host, so a task a narrow net already solves would measure
nothing).

* Parts. A *part* is a textured disc (radius 7-11 px) of one of 4 texture families (grating,
  concentric rings, checkerboard, dot lattice) drawn in one of 3 opponent-colour palettes
  (red/cyan, green/magenta, blue/yellow): 12 parts. Telling parts apart takes a colour-opponent
  texture detector per family x palette; in tuning, such parts made width pay more than parts in
  random colours did (64/128/256 over 32/64/128: about +4 points against +2.5). Orientation and
  phase are uniform and the period jitters by +-15%, so nothing depends on orientation (hosts
  train with horizontal flips).
* Classes are conjunctions: class k is two parts of different family and different palette
  (``_CLASS_PARTS``). 8 of the 12 parts belong to two classes, so for most classes one part alone
  is ambiguous; the net has to find both parts and combine them.
* Nuisances: position (one quadrant per part, jittered, so parts overlap but rarely hide each
  other), radius, palette jitter and colour order, painting order; the background is a random
  colour plus smooth low-frequency colour noise plus (half the time) a faint full-field grating
  that resembles a part, plus pixel noise. Palettes average to grey, so colour statistics carry
  almost no label information (a linear probe on per-channel mean/std and 2x2-pooled colour gets
  ~15%, chance is 10%).
* Irreducible confusion: with probability 0.35 a third, label-free part (any other part) is added.
  When it pairs up with one of the image's parts the image also shows another class's pair.
  And with probability 0.10 an image's label is replaced by a uniformly drawn class, in every
  split (annotation noise, as real datasets have), so even a perfect classifier scores about
  0.9 x 96.5% + 0.1 x 10% ~ 88%. The noise is what makes hosts *plateau* within an episode:
  without it the curves kept climbing through epoch 25 at every fidelity we could afford
  (HostCNN at "tiny": 86% -> 89% over epochs 16-20 -> 21-25), with it they flatten near 78%.

Calibration (conv3x3-BN-ReLU-MaxPool x3, GAP, linear; SGD lr 0.01 momentum 0.9 wd 5e-4, batch
128, crop+flip, 16 px; val accuracy averaged over epochs 16-20 -> 21-25; one seed each). The
number of optimizer steps decides how far a host gets, not the resolution: at 2,000 images per
epoch (16 steps) HostCNN was still climbing at epoch 25 (66% -> 70%), at 5,000 too (80% -> 85%),
and without annotation noise even 8,000 (86% -> 89%). With the 10% annotation noise and 8,000
images per epoch (the "tiny" fidelity) HostCNN flattens: 77.2% -> 78.1% and 78.3% -> 77.8% (seeds
0 and 1), HostCNN-Wide reads 76.9% -> 79.6%. Width pays little on this task once both hosts
reach the noise ceiling; the narrow host of the "impaired" preset (8/16/32 channels) is far
below it, which is where growth has room. These numbers are not asserted by the tests; the
table of ``benchmarks/synthcifar_difficulty.py`` (3 seeds) is in docs/ENV_CARD.md (SynthCIFAR).

The class table is fixed; ``synth_seed`` only drives sampling. Images come in chunks of
``_SYNTH_CHUNK``, each seeded by a hash of ``(synth_seed, split, chunk index)`` with its own
``torch.Generator`` (never the global RNG), so the first N images do not depend on how many are
requested, only the chunks a fidelity needs are generated, and train/val/test are independent
streams. Rendering is vectorised over a chunk (one loop step per part slot and texture family).

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .configs import FIDELITIES, Fidelity, lookup
from .datasets import dataset_record

__all__ = [
    "DatasetNotFoundError",
    "ImageSplits",
    "clear_cache",
    "default_data_dir",
    "iterate_batches",
    "load_dataset",
    "make_synthcifar",
]

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

    ``data_dir`` (default :func:`default_data_dir`) and ``download`` only concern CIFAR;
    ``synth_seed`` only SynthCIFAR. Raises ``ValueError`` for an unknown name/fidelity or a fidelity
    larger than the dataset, and :class:`DatasetNotFoundError` when CIFAR files are missing and
    ``download`` is False. Results are cached per process and shared: do not modify the tensors.
    """
    record = dataset_record(name)
    fid = fidelity if isinstance(fidelity, Fidelity) else lookup("fidelity", fidelity, FIDELITIES)
    if record.torchvision_class is None:
        return _load_cached(name, fid, None, int(synth_seed))
    root = str((Path(data_dir).expanduser() if data_dir is not None else default_data_dir()).resolve())
    try:
        return _load_cached(name, fid, root, 0)
    except DatasetNotFoundError:
        if not download:
            raise
    _cifar_class(name)(root=root, train=True, download=True)  # the archive holds both splits
    return _load_cached(name, fid, root, 0)


def clear_cache() -> None:
    """Drop the in-process dataset cache (e.g. to free memory)."""
    _load_cached.cache_clear()


# The key holds the whole (frozen, hashable) Fidelity rather than its name, so two custom
# fidelities sharing a name cannot alias each other. Errors are not cached.
@functools.lru_cache(maxsize=8)
def _load_cached(name: str, fid: Fidelity, root: str | None, synth_seed: int) -> ImageSplits:
    wanted = {"train": fid.train_images, "val": fid.val_images, "test": fid.test_images}
    record = dataset_record(name)
    if record.torchvision_class is None:
        pools = {"train": _TRAIN_POOL, "val": _VAL_POOL, "test": _TEST_POOL}
        for split, n in wanted.items():
            _check_size(name, split, n, pools[split])
        splits = [make_synthcifar(n, split, synth_seed) for split, n in wanted.items()]
    else:
        assert root is not None
        pool_x, pool_y = _read_cifar(name, root, train=True)
        test_x, test_y = _read_cifar(name, root, train=False)
        order = torch.from_numpy(_fixed_permutation(len(pool_y), _VAL_SPLIT_SEED))
        n_val = len(order) // 10  # 5,000 of CIFAR's 50,000
        train_idx, val_idx = order[: len(order) - n_val], order[len(order) - n_val :]
        for split, available in (("train", len(train_idx)), ("val", n_val), ("test", len(test_y))):
            _check_size(name, split, wanted[split], available)
        tr, va, te = train_idx[: fid.train_images], val_idx[: fid.val_images], slice(fid.test_images)
        splits = [(pool_x[tr], pool_y[tr]), (pool_x[va], pool_y[va]), (test_x[te], test_y[te])]
    (trx, tr_y), (vax, va_y), (tex, te_y) = [(_resize(x, fid.resolution), y) for x, y in splits]
    mean, std = _channel_stats(trx)
    return ImageSplits(trx, tr_y, vax, va_y, tex, te_y, record.num_classes, mean, std, name)


def _check_size(name: str, split: str, wanted: int, available: int) -> None:
    if wanted > available:
        raise ValueError(
            f"fidelity asks for {wanted} {split} images but {name!r} has only {available} "
            f"{split} images available"
        )


def _cifar_class(name: str) -> type:
    from torchvision import datasets  # imported lazily: SynthCIFAR-only users never pay for it

    return getattr(datasets, str(dataset_record(name).torchvision_class))


def _read_cifar(name: str, root: str, *, train: bool) -> tuple[Tensor, Tensor]:
    """Images ``[N, 3, 32, 32]`` uint8 and labels int64 of one CIFAR split, via torchvision."""
    cls = _cifar_class(name)
    try:
        ds = cls(root=root, train=train, download=False)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted. ..."
        if "not found or corrupted" not in str(err):
            raise
        raise DatasetNotFoundError(
            f"{name} not found (or corrupted) in {root!r} (looked for {cls.base_folder!r} there). "
            f"Get it with download=True, e.g. gymnasium.make({dataset_record(name).env_id!r}, download=True), "
            f"or run `esper download {name} --data-dir DIR`; pass data_dir= or set $ESPER_DATA_DIR "
            f"to use another directory. 'Esper-SynthCIFAR-v1' works offline with no download."
        ) from err
    # torchvision keeps the raw numpy array (N, 32, 32, 3): convert it whole, never per PIL image.
    x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    return x, torch.as_tensor(ds.targets, dtype=torch.int64)


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
        F.interpolate(c.float(), size=(resolution, resolution), mode="area")
        .round_()
        .clamp_(0, 255)
        .to(torch.uint8)
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

# Texture families; a part is a family drawn in one palette.
_GRATING, _RINGS, _CHECKER, _DOTS = range(4)
_PERIODS = {_GRATING: 8.0, _RINGS: 8.0, _CHECKER: 10.0, _DOTS: 7.0}  # pixels at 32 px
#: Opponent colour pairs (red/cyan, green/magenta, blue/yellow): each averages to grey, so a
#: part's palette barely moves the image's mean colour.
_PALETTES = (
    ((0.85, 0.2, 0.2), (0.15, 0.8, 0.8)),
    ((0.2, 0.8, 0.2), (0.8, 0.2, 0.8)),
    ((0.2, 0.2, 0.85), (0.8, 0.8, 0.15)),
)
#: Part ``3 * family + palette``; 12 parts.
_PARTS: tuple[tuple[int, int], ...] = tuple((f, p) for f in _PERIODS for p in range(len(_PALETTES)))
#: Class k is the conjunction of these two parts (different family, different palette). Eight of
#: the twelve parts belong to two classes, so for most classes one part alone is ambiguous.
_CLASS_PARTS = torch.tensor(
    [[0, 4], [1, 8], [2, 9], [3, 7], [5, 10], [6, 11], [0, 7], [4, 11], [2, 6], [3, 10]]
)
_DISTRACTOR_P = 0.35  # probability of a third, label-free part
_LABEL_NOISE = 0.10  # probability that a label is replaced by a uniformly drawn class (all splits)
_PERIOD_JITTER = 0.15
_PALETTE_JITTER = 0.06  # std of per-colour Gaussian jitter
_RADIUS = (7.0, 11.0)  # part radius, pixels at 32 px
_JITTER = 4.0  # part centre jitter within its quadrant, pixels
_BG_COLOUR = (0.1, 0.9)
_BG_NOISE = 0.12  # std of the smooth (4x4, bilinear) background colour noise
_BG_TEXTURE = (0.02, 0.08)  # amplitude of the faint full-field grating (half of the images)
_NOISE = (0.01, 0.04)  # std of the per-pixel noise, drawn per image


def make_synthcifar(n: int, split: str = "train", synth_seed: int = 0) -> tuple[Tensor, Tensor]:
    """The first ``n`` SynthCIFAR images (uint8 ``[n, 3, 32, 32]``) and labels of ``split``.

    ``split`` is "train", "val" or "test" (three independent streams).
    """
    split_id = lookup("split", split, _SPLIT_IDS)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    with _one_thread():
        chunks = [_synth_chunk(_chunk_seed(synth_seed, split_id, c)) for c in range(-(-n // _SYNTH_CHUNK))]
    if not chunks:
        return torch.empty(0, 3, _SYNTH_SIZE, _SYNTH_SIZE, dtype=torch.uint8), torch.empty(
            0, dtype=torch.int64
        )
    return torch.cat([c[0] for c in chunks])[:n], torch.cat([c[1] for c in chunks])[:n]


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch single-threaded for a while (the previous count is restored afterwards).

    Rendering is many small memory-bound ops, so a second thread gains little, while OpenMP
    spin-waiting made it 10-50x slower when other processes (parallel envs, tests) shared the
    cores. The setting is process-wide: other Python threads using torch meanwhile also get one.
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


@functools.cache
def _upsampler(n: int, size: int) -> Tensor:
    """``[n, size]`` matrix ``U`` with ``U.T @ X @ U`` = bilinear upsampling of ``X`` (half-pixel centres)."""
    return F.interpolate(torch.eye(n)[:, None], size=size, mode="linear", align_corners=False)[:, 0]


def _uniform(g: torch.Generator, shape: Sequence[int], lo: float, hi: float) -> Tensor:
    return torch.rand(*shape, generator=g) * (hi - lo) + lo


def _synth_chunk(seed: int) -> tuple[Tensor, Tensor]:
    """Render one chunk of ``_SYNTH_CHUNK`` images, all draws from one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    b, size = _SYNTH_CHUNK, _SYNTH_SIZE
    s = _CLASS_PARTS.shape[1] + 1  # slots: the class parts + one optional distractor
    labels = (torch.arange(b) % len(_CLASS_PARTS))[torch.randperm(b, generator=g)]  # balanced chunk
    cls_parts = _CLASS_PARTS[labels].sort(dim=1).values
    # Distractor: any part other than the image's own (skip over them in sorted order).
    d = torch.randint(0, len(_PARTS) - (s - 1), (b,), generator=g)
    for j in range(s - 1):
        d = d + (d >= cls_parts[:, j])
    part = torch.cat([cls_parts, d[:, None]], dim=1)  # [b, s]
    present = torch.ones(b, s)
    present[:, -1] = (torch.rand(b, generator=g) < _DISTRACTOR_P).float()
    # Slots are painted in index order: shuffle them so the distractor is not always on top.
    order = torch.rand(b, s, generator=g).argsort(dim=1)
    part, present = part.gather(1, order).flatten(), present.gather(1, order).flatten()

    m = b * s  # one row per (image, slot) from here on
    family, palette = torch.tensor(_PARTS).T[:, part]
    angle = _uniform(g, (m,), 0, 2 * math.pi)
    periods = torch.tensor([_PERIODS[f] for f in range(len(_PERIODS))])
    period = periods[family] * _uniform(g, (m,), 1 - _PERIOD_JITTER, 1 + _PERIOD_JITTER)
    phase = _uniform(g, (m,), 0, 2 * math.pi)
    radius = _uniform(g, (m,), *_RADIUS)
    # One quadrant per slot (a random permutation of the four), jittered: little full occlusion.
    quad = torch.rand(b, 4, generator=g).argsort(dim=1)[:, :s].flatten()
    cx = (quad % 2) * (size / 2) + size / 4 + _uniform(g, (m,), -_JITTER, _JITTER)
    cy = (quad // 2) * (size / 2) + size / 4 + _uniform(g, (m,), -_JITTER, _JITTER)
    # The palette's two colours, jittered, in random order.
    colours = torch.tensor(_PALETTES)[palette]  # [m, 2, 3]
    colours = torch.where((torch.rand(m, generator=g) < 0.5)[:, None, None], colours.flip(1), colours)
    colours = (colours + torch.randn(m, 2, 3, generator=g) * _PALETTE_JITTER).clamp(0, 1)

    # Local pixel coordinates of every slot, [m, H, W].
    pix = torch.arange(size, dtype=torch.float32) + 0.5
    dx = pix.view(1, 1, size) - cx.view(m, 1, 1)
    dy = pix.view(1, size, 1) - cy.view(m, 1, 1)
    rho = torch.sqrt(dx * dx + dy * dy)
    alpha = (radius.view(m, 1, 1) + 0.5 - rho).clamp_(0, 1).mul_(present.view(m, 1, 1))
    pat = torch.empty(m, size, size)
    for fam in _PERIODS:  # each family is computed only on its own slots
        i = (family == fam).nonzero().squeeze(1)
        if len(i) == 0:
            continue
        tau = (2 * math.pi / period[i]).view(-1, 1, 1)
        if fam == _RINGS:
            pat[i] = torch.cos(rho[i] * tau + phase[i].view(-1, 1, 1))
            continue
        cos, sin = angle[i].cos().view(-1, 1, 1), angle[i].sin().view(-1, 1, 1)
        u = (dx[i] * cos + dy[i] * sin) * tau
        if fam == _GRATING:
            pat[i] = torch.cos(u + phase[i].view(-1, 1, 1))
            continue
        v = (dy[i] * cos - dx[i] * sin) * tau
        if fam == _CHECKER:
            pat[i] = torch.tanh(4 * torch.cos(u) * torch.cos(v))
        else:  # _DOTS: a lattice of round dots
            pat[i] = torch.tanh(3 * (torch.cos(u) + torch.cos(v) - 0.5))
    pat = pat.mul_(0.5).add_(0.5).view(b, s, 1, size, size)
    alpha = alpha.view(b, s, 1, size, size)
    c1, c2 = colours[:, 0].reshape(b, s, 3, 1, 1), colours[:, 1].reshape(b, s, 3, 1, 1)

    # Background: colour + smooth colour noise + (half the time) a faint full-field grating.
    up = _upsampler(4, size)  # bilinear 4x4 -> 32x32 as two small matmuls
    img = (
        _uniform(g, (b, 3, 1, 1), *_BG_COLOUR)
        + up.T @ (torch.randn(b, 3, 4, 4, generator=g) * _BG_NOISE) @ up
    )
    t_angle = _uniform(g, (b, 1, 1), 0, 2 * math.pi)
    t_tau = 2 * math.pi / _uniform(g, (b, 1, 1), 4.0, 12.0)
    t_amp = _uniform(g, (b, 1, 1), *_BG_TEXTURE) * (torch.rand(b, 1, 1, generator=g) < 0.5)
    t_phase = _uniform(g, (b, 1, 1), 0, 2 * math.pi)
    texture = torch.cos(
        (pix.view(1, 1, size) * t_angle.cos() + pix.view(1, size, 1) * t_angle.sin()) * t_tau + t_phase
    )
    img = img + (t_amp * texture)[:, None]
    for k in range(s):
        img.lerp_(torch.addcmul(c2[:, k], c1[:, k] - c2[:, k], pat[:, k]), alpha[:, k])
    noise = torch.randn(b, 3, size, size, generator=g) * _uniform(g, (b, 1, 1, 1), *_NOISE)
    img = img.add_(noise).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    # Annotation noise, drawn last so that it changes labels only, never the images.
    relabel = torch.rand(b, generator=g) < _LABEL_NOISE
    labels = torch.where(relabel, torch.randint(0, len(_CLASS_PARTS), (b,), generator=g), labels)
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
        chan = torch.arange(channels, device=dev).view(1, channels, 1, 1) * (res * res)
        flat = x.contiguous().view(-1)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        if not augment:
            xb = x[idx]
        else:
            # Output pixel (r, c) reads source (r + dy, c' + dx) with c' = c or R-1-c (flip); reads
            # outside the image are the zero padding. One flat gather (`take`) is ~2.5x faster
            # than 4-D advanced indexing.
            off = offsets[start : start + batch_size]
            cols = torch.where(flips[start : start + batch_size, None], res - 1 - ramp, ramp) + off[:, 1:]
            rows = ramp.view(1, res) + off[:, :1]
            inside = ((rows >= 0) & (rows < res))[:, :, None] & ((cols >= 0) & (cols < res))[:, None, :]
            pix = rows.clamp(0, res - 1)[:, :, None] * res + cols.clamp(0, res - 1)[:, None, :]
            xb = flat.take((idx * (channels * res * res)).view(-1, 1, 1, 1) + chan + pix[:, None])
            xb = xb * inside[:, None]
        yield torch.addcmul(shift, xb.float(), scale), y[idx]
