"""Statistics records: frozen snapshots, cheap to take, safe to keep.

A world counts exclusive sections and kicks as they happen and keeps the most
recent latency samples in a bounded window; ``World.statistics()`` turns them
into the immutable records below, so a caller can compare two snapshots
without racing the threads that keep counting.

``Percentiles`` and ``LatencyWindow`` come from the distribution's shared
``_latency`` package, the one implementation ``rcu`` uses too.
"""

from __future__ import annotations

from dataclasses import dataclass

from _latency import Percentiles

__all__ = ["Percentiles", "WorldStatistics"]


@dataclass(frozen=True, slots=True)
class WorldStatistics:
    """A snapshot of one :class:`quiescent.World`'s counters.

    Two latencies describe a stop-the-world pause, both measured from the
    moment an exclusive section asks the vCPUs to stop (after any earlier
    section has ended).

    Attributes:
        vcpus: The number of registered vCPUs.
        exclusive_sections: Outermost exclusive sections that have ended
            (nested ones are part of their outer section).
        kicks: Kicks delivered to vCPUs, by exclusive sections and by queued
            work.
        work_items: Work items that have run (synchronous, asynchronous and
            safe).
        work_errors: Those of them (asynchronous or safe) whose exception
            went to ``on_error``.
        time_to_quiesce (quiescent.Percentiles): Until the last vCPU has
            left ``running()``; it grows with the time a vCPU needs to reach
            its next block boundary.
        pause (quiescent.Percentiles): Until the section ends and the vCPUs
            may run again: the time to quiesce plus the section's own work.
        waiting: For each registered vCPU in registration order,
            ``(name, seconds)``: the total time it has waited to enter
            ``running()`` because of exclusive sections (the safepoint log).
    """

    vcpus: int
    exclusive_sections: int
    kicks: int
    work_items: int
    work_errors: int
    time_to_quiesce: Percentiles
    pause: Percentiles
    waiting: tuple[tuple[str, float], ...]
