"""Confidence intervals that hold what they say, for the two numbers every trial reports.

P95 latency: a distribution-free interval from order statistics. The number of samples below the
true P95 is binomial for independent samples, so the interval is the pair of order statistics at
ranks n*q -+ z*sqrt(n*q*(1-q)). Closed-loop latencies are not independent (a slow moment slows the
requests around it), so the variance is inflated by the integrated autocorrelation time of the
indicator "below the P95", estimated from the samples in arrival order. Memory is O(n), not the
bootstrap's rounds x n.

Throughput: batch means. The measured span is cut into up to ten equal slices and the slices' rates
get a Student t interval (2 slices have 1 degree of freedom: the quantile is 12.7, not 2), so the
interval exists, and narrows honestly, from the first second of a measurement on.

Two configs measured side by side in several runs (a final re-measurement): the ratio of their
numbers run by run, pooled, as wide as the ratios scatter (tuner.study.cheapest tells configs
apart by it).
"""
from __future__ import annotations

import math

import numpy as np

_Z = 1.959964  # the normal 97.5 % quantile
# Student t 97.5 % quantiles by degrees of freedom (beyond 30, linear in 1/df towards the normal's)
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
         29: 2.045, 30: 2.042}
_SLICES, _EVENTS_PER_SLICE = 10, 20  # batch means: slices of a throughput measurement
_MAX_LAG = 200  # autocorrelation summed up to here at most (and only while it stays positive)


def t975(df: int) -> float:
    """Student t's 97.5 % quantile for `df` degrees of freedom."""
    if df < 1:
        raise ValueError("a t interval needs at least two values")
    if df in _T975:
        return _T975[df]
    return _Z + (_T975[30] - _Z) * 30 / df


def mean_ci(values: list[float], step: float = 0.0) -> tuple[float, float]:
    """95 % interval of the mean of independent values (NaN for fewer than two). Values that are
    whole multiples of `step` carry its rounding variance, step^2 / 12 (Sheppard): identical counts
    must not claim an exact mean."""
    if len(values) < 2:
        return (math.nan, math.nan)
    spread = math.sqrt(float(np.var(values, ddof=1)) + step**2 / 12)
    half = t975(len(values) - 1) * spread / math.sqrt(len(values))
    mean = float(np.mean(values))
    return mean - half, mean + half


def rate_ci(times: np.ndarray, start: float, end: float) -> tuple[float, float]:
    """95 % interval of the rate of events (completed requests) at `times` within [start, end]:
    the span cut into up to 10 equal slices of 20 or more events each, a t interval of their rates
    (whole events per slice: a regular stream can put the same count in every slice)."""
    t = np.asarray(times, dtype=float)
    slices = max(2, min(_SLICES, len(t) // _EVENTS_PER_SLICE))
    width = (end - start) / slices
    counts = np.histogram(t, np.linspace(start, end, slices + 1))[0]
    return mean_ci(list(counts / width), step=1 / width)


def ratio_ci(a: list[float], a_intervals: list[tuple[float, float]], b: list[float],
             b_intervals: list[tuple[float, float]]) -> tuple[float, float]:
    """95 % interval of a / b from runs that measured the two side by side (run i of each one
    after the other): the runs' ratios pooled by their precision (a ratio's relative half-width
    from its two intervals), never narrower than the t interval of the ratios themselves. Drift of
    the machine between runs moves both alike and cancels in a ratio; what it does not cancel
    scatters the ratios, and the t interval holds that. Unknown where a run's interval is."""
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    halves = [r * math.hypot(relative_half_width(ia, x), relative_half_width(ib, y))
              for r, x, y, ia, ib in zip(ratios, a, b, a_intervals, b_intervals, strict=True)]
    if not all(0 < h < math.inf for h in halves):
        return (-math.inf, math.inf)
    centre = float(np.mean(ratios))
    pooled = 1 / math.sqrt(sum(1 / h**2 for h in halves))
    scatter = mean_ci(ratios) if len(ratios) > 1 else (centre, centre)
    half = max(pooled, (scatter[1] - scatter[0]) / 2)
    return centre - half, centre + half


def relative_half_width(interval: tuple[float, float], estimate: float) -> float:
    """Half the interval's width over the estimate (infinite for an interval not known yet)."""
    half = (interval[1] - interval[0]) / 2
    return half / estimate if estimate > 0 and math.isfinite(half) else math.inf


def autocorrelation_time(series: np.ndarray) -> float:
    """1 + 2 * the sum of the series' autocorrelations, summed while they stay positive (Geyer's
    initial positive sequence, simplified): how many samples count as one independent sample."""
    x = np.asarray(series, dtype=float) - float(np.mean(series))
    variance = float(np.dot(x, x))
    if variance == 0.0:
        return 1.0
    tau = 1.0
    for lag in range(1, min(_MAX_LAG, len(x) // 4) + 1):
        rho = float(np.dot(x[:-lag], x[lag:])) / variance
        if rho <= 0:
            break
        tau += 2 * rho
    return tau


def quantile_ci(samples: np.ndarray, q: float = 0.95) -> tuple[float, float]:
    """95 % interval of the `q` quantile of `samples` (in the order they were taken): the order
    statistics around rank n*q, as wide as the samples' correlation makes it."""
    x = np.asarray(samples, dtype=float)
    n = len(x)
    if n == 0:
        return (math.nan, math.nan)
    ordered = np.sort(x)
    estimate = float(np.quantile(ordered, q))
    tau = autocorrelation_time((x <= estimate).astype(float))
    half = _Z * math.sqrt(n * q * (1 - q) * tau)
    low, high = max(0, math.floor(n * q - half) - 1), min(n - 1, math.ceil(n * q + half))
    return float(ordered[low]), float(ordered[high])
