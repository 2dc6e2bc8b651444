"""Summary statistics for results we publish: :func:`mean_ci`, a mean with its 95% t-interval, and
:func:`bootstrap_ci`, a mean with its 95% percentile-bootstrap interval."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["bootstrap_ci", "mean_ci", "t_quantile_975"]

# Two-sided 95% Student t quantiles (0.975) for 1..30 degrees of freedom.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (error < 1e-4).

    A table up to 30; beyond, the Cornish-Fisher expansion around the normal quantile.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df!r}")
    if df <= len(_T975):
        return _T975[df - 1]
    z, v = 1.959963984540054, float(df)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
    )


def mean_ci(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample std and 95% t-interval ``mean +- t(0.975, n-1) * std / sqrt(n)``.

    With one value the interval is that value (half-width 0) and ``std`` is 0.
    """
    x = np.asarray([float(v) for v in values], dtype=np.float64)
    if not len(x):
        raise ValueError("no values to summarise")
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    half = t_quantile_975(len(x) - 1) * std / math.sqrt(len(x)) if len(x) > 1 else 0.0
    return {
        "mean": mean,
        "ci95": [mean - half, mean + half],
        "half_width": half,
        "std": std,
        "n": len(x),
    }


def bootstrap_ci(
    values: Sequence[float], resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Mean and percentile-bootstrap interval of the mean (``resamples`` resamples, RNG ``seed``).

    Deterministic for a given input and seed. With one value the interval is that value. The
    interval of a handful of values is narrow for its true coverage (the bootstrap cannot see
    beyond the sample): read 5-episode intervals as a description of the sample.

    >>> bootstrap_ci([0.5, 0.5, 0.5])["ci95"]
    [0.5, 0.5]
    """
    x = np.asarray([float(v) for v in values], dtype=np.float64)
    if not len(x):
        raise ValueError("no values to summarise")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(means, [tail, 100.0 - tail])
    return {"mean": float(x.mean()), "ci95": [float(lo), float(hi)], "n": len(x), "method": "bootstrap"}
