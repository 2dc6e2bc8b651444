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
* ``synthcifar`` is generated procedurally and works offline (:mod:`esper_env.synthcifar`).

Batches
-------
:func:`iterate_batches` shuffles, augments (random crop with zero padding + horizontal flip, done on
the whole batch with one gather) and normalises batches of uint8 tensors that already live on the
training device. It is the hot path of every env step, so it avoids DataLoader, worker processes
and per-image Python loops.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from esper_env.configs import FIDELITIES, Fidelity
from esper_env.datasets import dataset_record
from esper_env.runtime import lookup
from esper_env.synthcifar import make_synthcifar

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
    mean: tuple[float, ...]
    std: tuple[float, ...]
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
    env_version: int | None = None,
) -> ImageSplits:
    """Load (and cache in-process) the splits of dataset ``name`` at ``fidelity``.

    ``data_dir`` (default :func:`default_data_dir`) and ``download`` only concern CIFAR;
    ``synth_seed`` only SynthCIFAR; ``env_version`` is the version whose ids the missing-data
    error names (default: the dataset's newest). Raises ``ValueError`` for an unknown name/fidelity or a fidelity
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
    except DatasetNotFoundError as err:
        if not download:
            raise DatasetNotFoundError(f"{err} {_how_to_get(name, env_version)}") from None
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
    if name == "clusters":
        raise ValueError(
            "the clusters task is drawn per instance (Esper-Micro): use esper_env.clusters.make_clusters"
        )
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
    mean, std = channel_stats(trx)
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


def _how_to_get(name: str, version: int | None) -> str:
    """How to get a missing dataset, naming the ids of the version asked for (default: the newest)."""
    record = dataset_record(name)
    version = record.newest_version if version is None else version
    env_id = record.versioned_id(version)
    offline = dataset_record("synthcifar").versioned_id(version)
    return (
        f"Get it with download=True, e.g. gymnasium.make({env_id!r}, download=True), "
        f"or run `esper download {name} --data-dir DIR`; pass data_dir= or set $ESPER_DATA_DIR "
        f"to use another directory. {offline!r} works offline with no download."
    )


def _read_cifar(name: str, root: str, *, train: bool) -> tuple[Tensor, Tensor]:
    """Images ``[N, 3, 32, 32]`` uint8 and labels int64 of one CIFAR split, via torchvision."""
    cls = _cifar_class(name)
    try:
        ds = cls(root=root, train=train, download=False)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted. ..."
        if "not found or corrupted" not in str(err):
            raise
        raise DatasetNotFoundError(
            f"{name} not found (or corrupted) in {root!r} (looked for {cls.base_folder!r} there)."
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


def channel_stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, in 0-1 units (float64 sums: exact enough)."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).double() / 255.0
    mean, std = flat.mean(1), flat.std(1, correction=0).clamp_min(1e-6)
    return tuple(mean.tolist()), tuple(std.tolist())  # type: ignore[return-value]


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
