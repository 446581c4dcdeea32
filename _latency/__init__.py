"""Latency statistics shared by ``rcu`` and ``quiescent``: one implementation.

A domain or a world records each latency, in nanoseconds, into a bounded
:class:`LatencyWindow` as it happens; taking statistics turns the window into
a frozen :class:`Percentiles` record, which a caller can keep and compare
without racing the threads that keep recording.

This package is a leaf of the distribution: it imports neither ``rcu`` nor
``quiescent`` nor ``tcg``, so both engines can share it without importing
each other. Its names reach users as ``rcu.Percentiles`` and
``quiescent.Percentiles``, which are this one class.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["LatencyWindow", "Percentiles"]


@dataclass(frozen=True, slots=True)
class Percentiles:
    """A latency distribution, in seconds, over the most recent samples.

    Percentiles are nearest-rank: each is one of the samples.

    Attributes:
        count: The number of samples it was computed from (the window keeps
            the most recent ones). Every other field is 0.0 when it is 0.
        p50: The median, in seconds.
        p90: The 90th percentile, in seconds.
        p99: The 99th percentile, in seconds.
        max: The largest sample, in seconds.
    """

    count: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples_ns: Iterable[int]) -> Percentiles:
        """Nearest-rank percentiles of ``samples_ns`` (nanoseconds), in seconds."""
        ordered = sorted(samples_ns)
        if not ordered:
            return cls(0, 0.0, 0.0, 0.0, 0.0)

        def rank(q: float) -> float:
            index = max(0, math.ceil(q * len(ordered)) - 1)
            return ordered[index] / 1e9

        return cls(len(ordered), rank(0.50), rank(0.90), rank(0.99), ordered[-1] / 1e9)


class LatencyWindow:
    """The last ``size`` latency samples, in nanoseconds.

    ``add`` is a single ``deque.append``, which the deque makes atomic: safe
    from any thread without a lock.
    """

    __slots__ = ("_samples",)

    def __init__(self, size: int = 4096) -> None:
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"size must be an int, not {type(size).__name__}")
        if size < 1:
            raise ValueError(f"size must be >= 1, not {size!r}")
        self._samples: collections.deque[int] = collections.deque(maxlen=size)

    def add(self, ns: int) -> None:
        """Record one sample."""
        self._samples.append(ns)

    def percentiles(self) -> Percentiles:
        """The distribution of the samples held now."""
        return Percentiles.of(self._samples.copy())
