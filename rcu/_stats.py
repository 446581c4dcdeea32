"""Statistics records: frozen snapshots, cheap to take, safe to keep.

A domain counts events as they happen and keeps the most recent latency
samples in a bounded window; ``Domain.statistics()`` turns them into the
immutable records below, so a caller can compare two snapshots without
racing the threads that keep counting. ``Percentiles`` and
``LatencyWindow`` come from the distribution's shared ``_latency`` package,
the one implementation ``quiescent`` uses too.
"""

from __future__ import annotations

from dataclasses import dataclass

from _latency import LatencyWindow, Percentiles

__all__ = ["DomainStatistics", "LatencyWindow", "Percentiles"]


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
