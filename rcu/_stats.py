"""Statistics records: frozen snapshots, cheap to take, safe to keep.

A domain counts events as they happen and keeps the most recent latency
samples in a bounded window; ``Domain.statistics()`` turns them into the
immutable records below, so a caller can compare two snapshots without
racing the threads that keep counting.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DomainStatistics", "LatencyWindow", "Percentiles"]


@dataclass(frozen=True, slots=True)
class Percentiles:
    """A latency distribution, in seconds, over the most recent samples."""

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

    ``add`` is a single ``deque.append``: safe from any thread without a lock.
    """

    __slots__ = ("_samples",)

    def __init__(self, size: int = 4096) -> None:
        self._samples: collections.deque[int] = collections.deque(maxlen=size)

    def add(self, ns: int) -> None:
        """Record one sample."""
        self._samples.append(ns)

    def percentiles(self) -> Percentiles:
        """The distribution of the samples held now."""
        return Percentiles.of(self._samples.copy())


@dataclass(frozen=True, slots=True)
class DomainStatistics:
    """A snapshot of one :class:`rcu.Domain`'s counters.

    ``pending`` counts callbacks queued and not yet run (or dropped);
    ``peak_pending`` is its maximum so far: at most ``max_pending``, or
    ``2 * max_pending`` if callbacks were queued inside read sections, plus
    what callbacks queue. ``callbacks_dropped`` counts callbacks that
    ``close(drain=False)`` dropped, or that a failed worker could not run.
    ``gp_latency`` is the time from a grace period's start to its end.
    ``stalls`` counts stall warnings issued. ``handoffs`` counts how often
    readers stepped aside for a waiting grace period (with a GIL only) and
    ``handoff_time`` is how long they did, in seconds, summed over readers.
    """

    name: str
    flavor: str
    grace_periods: int
    callbacks_queued: int
    callbacks_invoked: int
    callbacks_failed: int
    callbacks_dropped: int
    pending: int
    peak_pending: int
    gp_latency: Percentiles
    readers: int
    stalls: int
    handoffs: int = 0
    handoff_time: float = 0.0
