"""Confidence intervals for rcu-compare: how sure a comparison of runs can be.

Throughput and the other costs rcu-compare measures are positive and vary
from run to run by a factor (a busy host slows a run by some percent, not by
some MIPS), so the statistics work on logarithms: a cell's typical value is
the geometric mean of its runs, and a comparison of two policies is a ratio,
the geometric mean of their paired run ratios.

The intervals are Student t intervals on those logarithms. With the three to
ten runs a comparison can afford, a bootstrap cannot reach the tails a
corrected interval needs (it never leaves the range of the runs), while the t
interval widens honestly as the runs get fewer or noisier. Nothing here is
random, so the same runs always give the same intervals.

* :func:`log_interval`: a cell's geometric mean with its interval;
* :func:`ratio_interval`: a ratio pooled over groups of paired log ratios
  (one group per cell, each cell weighing the same), with Welch's degrees of
  freedom, as every cell may be noisier than the next;
* :func:`family_confidence`: Bonferroni's correction, so that a report making
  ``m`` claims is wrong anywhere with probability at most ``1 - confidence``;
* :func:`t_quantile`: Student's t distribution, from the standard library.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Interval",
    "family_confidence",
    "log_interval",
    "ratio_interval",
    "t_cdf",
    "t_quantile",
]


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate and a confidence interval around it (``low <= estimate <= high``)."""

    estimate: float
    low: float
    high: float

    def excludes(self, value: float) -> bool:
        """Is ``value`` outside the interval?"""
        return not self.low <= value <= self.high


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), not {confidence!r}")


def family_confidence(confidence: float, comparisons: int) -> float:
    """The confidence each of ``comparisons`` intervals needs for ``confidence`` overall.

    Bonferroni: if each interval misses with probability at most
    ``(1 - confidence) / comparisons``, all of them hold together with
    probability at least ``confidence``, however they depend on each other.
    """
    _check_confidence(confidence)
    if comparisons < 1:
        raise ValueError(f"comparisons must be >= 1, not {comparisons!r}")
    return 1.0 - (1.0 - confidence) / comparisons


# ----------------------------------------------------------------------
# Student's t distribution


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                          -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):  # fmt: skip
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (``df > 0``, may be fractional)."""
    if not df > 0:
        raise ValueError(f"df must be > 0, not {df!r}")
    if math.isinf(df):
        return statistics.NormalDist().cdf(t)
    t2 = t * t
    if t2 < df:
        # Near the center df / (df + t^2) rounds to 1 and the tail formula
        # loses t: use the central probability P(|T| < |t|) instead.
        central = _incomplete_beta(0.5, df / 2.0, t2 / (df + t2))
        tail = 0.5 * (1.0 - central)
    else:
        tail = 0.5 * _incomplete_beta(df / 2.0, 0.5, df / (df + t2))
    return 1.0 - tail if t > 0 else tail


@functools.lru_cache(maxsize=1024)
def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), not {p!r}")
    if not df > 0:
        raise ValueError(f"df must be > 0, not {df!r}")
    if math.isinf(df):
        return statistics.NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    # The t quantile lies above the normal one; bracket it, then bisect the CDF.
    low = statistics.NormalDist().inv_cdf(p)
    high = max(2.0 * low, 1.0)
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low <= 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)


# ----------------------------------------------------------------------
# Intervals


def log_interval(values: Sequence[float], confidence: float = 0.95) -> Interval | None:
    """The geometric mean of positive ``values`` with its t interval (None for < 2 values).

    The interval is for the center of the distribution the values were
    drawn from, assuming their logarithms are roughly normal: a run's
    typical throughput, not the range single runs fall in.
    """
    _check_confidence(confidence)
    if any(not v > 0 or math.isinf(v) for v in values):
        raise ValueError("values must be positive and finite")
    if len(values) < 2:
        return None
    estimate = ratio_interval([[math.log(v) for v in values]], confidence)
    assert estimate is not None
    return estimate


def ratio_interval(groups: Sequence[Sequence[float]], confidence: float = 0.95) -> Interval | None:
    """exp of the mean of per-group mean log ratios, with its t interval.

    ``groups`` holds, per cell, the log ratios of paired runs (run *i* of
    one policy against run *i* of the other). Each group weighs the same:
    the estimate is the geometric mean over cells of each cell's ratio. Its
    variance adds the cells' variances of the mean; the degrees of freedom
    are Welch-Satterthwaite's. None when a group has fewer than 2 values.
    """
    _check_confidence(confidence)
    if not groups or any(len(g) < 2 for g in groups):
        return None
    k = len(groups)
    center = sum(statistics.fmean(g) for g in groups) / k
    # The variance of each group's mean, then of their average.
    parts = [statistics.variance(g) / len(g) / (k * k) for g in groups]
    variance = sum(parts)
    if variance <= 0.0:
        ratio = math.exp(center)
        return Interval(ratio, ratio, ratio)
    # Welch-Satterthwaite, on the parts scaled by the largest (tiny variances
    # would underflow when squared).
    top = max(parts)
    scaled = [v / top for v in parts]
    df = sum(scaled) ** 2 / sum(
        q * q / (len(g) - 1) for q, g in zip(scaled, groups, strict=True) if q
    )
    half = t_quantile(0.5 + confidence / 2.0, df) * math.sqrt(variance)
    return Interval(math.exp(center), math.exp(center - half), math.exp(center + half))
