"""Statistics records: frozen snapshots, cheap to take, safe to keep.

A world counts exclusive sections and kicks as they happen and keeps the most
recent latency samples in a bounded window; ``World.statistics()`` turns them
into the immutable records below, so a caller can compare two snapshots
without racing the threads that keep counting.

Two latencies describe a stop-the-world pause:

``time_to_quiesce``
    From the moment an exclusive section asks the vCPUs to stop (after any
    earlier section has ended) until the last of them has left ``running()``.
    It grows with the time a vCPU needs to reach its next block boundary.
``pause``
    From that same moment until the section ends and the vCPUs may run again:
    the time to quiesce plus the section's own work.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["LatencyWindow", "Percentiles", "WorldStatistics"]


@dataclass(frozen=True, slots=True)
class Percentiles:
    """A latency distribution, in seconds, over the most recent samples.

    ``count`` is the number of samples it was computed from (the window keeps
    the most recent ones); every other field is 0.0 when ``count`` is 0.
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


@dataclass(frozen=True, slots=True)
class WorldStatistics:
    """A snapshot of one :class:`quiescent.World`'s counters.

    ``vcpus`` is the number of registered vCPUs. ``exclusive_sections``
    counts outermost exclusive sections that have ended (nested ones are part
    of their outer section). ``kicks`` counts kicks delivered to vCPUs, by
    exclusive sections and by queued work. ``work_items`` counts work items
    that have run (synchronous, asynchronous and safe), ``work_errors`` those
    of them (asynchronous or safe) whose exception went to ``on_error``.
    ``time_to_quiesce`` and ``pause`` are described in
    :mod:`quiescent._stats`. ``waiting`` is, for each registered vCPU in
    registration order, ``(name, seconds)``: the total time it has waited
    to enter ``running()`` because of exclusive sections (the safepoint log).
    """

    vcpus: int
    exclusive_sections: int
    kicks: int
    work_items: int
    work_errors: int
    time_to_quiesce: Percentiles
    pause: Percentiles
    waiting: tuple[tuple[str, float], ...]
