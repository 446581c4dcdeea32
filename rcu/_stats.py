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

    Attributes:
        name: The domain's name.
        flavor: ``"epoch"`` or ``"qsbr"``.
        grace_periods: Grace periods completed.
        callbacks_queued: Callbacks accepted by ``call_rcu``.
        callbacks_invoked: Callbacks that have run (including those that
            raised).
        callbacks_failed: Callbacks that raised.
        callbacks_dropped: Callbacks that ``close(drain=False)`` dropped, or
            that a failed worker could not run.
        pending: Callbacks queued and not yet run (or dropped).
        peak_pending: The maximum of ``pending`` so far: at most
            ``max_pending``, or ``2 * max_pending`` if callbacks were queued
            inside read sections, plus what callbacks queue.
        gp_latency (rcu.Percentiles): The time from a grace period's start to its end.
        readers: Reader threads registered now.
        stalls: Stall warnings issued.
        handoffs: How often readers stepped aside for a waiting grace period
            (with a GIL only).
        handoff_time: How long they did, in seconds, summed over readers.
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
