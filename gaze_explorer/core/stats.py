"""Small statistics for the evaluation protocols: percentile-bootstrap confidence intervals and
Spearman's rank correlation with tied ranks averaged.

numpy only (no scipy), seeded, so the same results give the same intervals on every machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

DEFAULT_RESAMPLES = 10_000  # the paper: 95% bootstrap CIs with 10,000 resamples


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic`` (default: the mean) over ``values``.

    Resamples ``values`` with replacement ``n_resamples`` times (seeded), and returns the
    ``(1-confidence)/2`` and ``(1+confidence)/2`` quantiles of the resampled statistic. With no
    values the interval is ``(nan, nan)``; NaN values are dropped first.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    data = np.asarray(values, dtype=np.float64).reshape(-1)
    data = data[~np.isnan(data)]
    if data.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, data.size, size=(n_resamples, data.size))  # [resample, item]
    samples = data[idx]
    stats = samples.mean(axis=1) if statistic is None else np.asarray(statistic(samples), dtype=np.float64)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    # clamp into the data's range: float error must not put a CI of all-ones above 1
    lo = float(min(max(lo, data.min()), data.max()))
    hi = float(min(max(hi, data.min()), data.max()))
    return (lo, hi)


def average_ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """1-based ranks, with tied values given the mean of the ranks they span."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(x.size, dtype=np.float64)
    sorted_x = x[order]
    i = 0
    while i < x.size:
        j = i
        while j + 1 < x.size and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho of two equal-length sequences (ties get average ranks).

    Returns NaN when it is undefined: fewer than two pairs, or either side constant.
    """
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.size != y.size:
        raise ValueError(f"spearman needs equal lengths, got {x.size} and {y.size}")
    if x.size < 2:
        return math.nan
    rx, ry = average_ranks(x), average_ranks(y)
    dx, dy = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float(dx @ dx) * float(dy @ dy))
    if denom == 0.0:
        return math.nan
    return float(np.clip((dx @ dy) / denom, -1.0, 1.0))


def proportion(values: Sequence[float]) -> float:
    """The mean of 0/1 (or fractional credit) values; NaN for none."""
    data = np.asarray(values, dtype=np.float64).reshape(-1)
    return float(data.mean()) if data.size else math.nan
