"""The fast tier's task: ten classes, each a union of Gaussian blobs in a 48-dimensional space.

A network needs about one hidden unit per blob to separate the classes, so the number of blobs
per class sets whether, and where, width pays: growth moved the score by -10 to +23 points across
blob counts in the fast-tier study (docs/FAST_TIER.md, "clusters"). Inputs are stored flat, as
uint8 ``[N, 48, 1, 1]`` "images" (48 = 3 x 4 x 4, a 4x4 colour image's size), so the MLP hosts
(:mod:`esper_env.hosts`, ``kind="mlp"``) and the engine's batches, augmentation (a no-op at 1x1)
and normalisation work unchanged. SynthCIFAR at 8x8 and a random-teacher task were measured and
rejected (at chance at an affordable step count; width did not matter).

A task is a pure function of ``(seed, blobs, spread, label_noise)`` and the fidelity's split
sizes; each split is an independent stream. Centres are drawn once per seed; an input is a centre
plus ``spread`` Gaussian noise, quantised to uint8; ``label_noise`` of the labels in every split
are replaced by a uniformly drawn class. Classes are balanced in expectation.
"""

from __future__ import annotations

import functools

import torch

from esper_env.configs import Fidelity
from esper_env.data import ImageSplits, channel_stats

__all__ = ["CLUSTER_FEATURES", "NUM_CLASSES", "make_clusters"]

#: Inputs per example (the MLP hosts' ``in_channels``).
CLUSTER_FEATURES = 48
NUM_CLASSES = 10


@functools.lru_cache(maxsize=256)
def make_clusters(
    fid: Fidelity, seed: int, blobs: int = 8, spread: float = 0.7, label_noise: float = 0.0
) -> ImageSplits:
    """The clusters task ``seed`` at ``fid``'s split sizes (cached per process: do not modify it)."""
    if blobs < 1 or not spread > 0 or not 0 <= label_noise < 1:
        raise ValueError(
            f"bad clusters task: blobs={blobs!r}, spread={spread!r}, label_noise={label_noise!r}"
        )
    g = torch.Generator().manual_seed(104_729 * int(seed) + 3)
    centres = torch.randn(NUM_CLASSES * blobs, CLUSTER_FEATURES, generator=g)
    out = []
    for k, n in enumerate((fid.train_images, fid.val_images, fid.test_images)):
        gs = torch.Generator().manual_seed(1_000_003 * int(seed) + 101 + k)
        blob = torch.randint(0, NUM_CLASSES * blobs, (n,), generator=gs)
        z = centres[blob] + spread * torch.randn(n, CLUSTER_FEATURES, generator=gs)
        x = (128 + 40 * z).round().clamp(0, 255).to(torch.uint8).view(n, CLUSTER_FEATURES, 1, 1)
        y = blob % NUM_CLASSES
        flip = torch.rand(n, generator=gs) < label_noise
        y[flip] = torch.randint(0, NUM_CLASSES, (int(flip.sum()),), generator=gs)
        out += [x, y]
    mean, std = channel_stats(out[0])
    return ImageSplits(*out, NUM_CLASSES, mean, std, "clusters")
