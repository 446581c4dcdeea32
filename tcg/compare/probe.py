"""The probe: when were vCPUs out of guest code, and why.

A :class:`Probe` is a policy that delegates every call to the real one and
records, per vCPU thread, the intervals outside guest code and the waits for
space; :meth:`Probe.pauses` decides which of them the policy caused.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Sequence

from tcg.block import TranslationBlock
from tcg.buffer import TranslationBuffer
from tcg.policies import PolicyStatistics, RegionBuffer, RetirePolicy, VcpuHooks


class Probe:
    """A policy that delegates to ``inner`` and records when vCPUs stopped.

    Per vCPU thread: intervals outside guest code (``leave`` to ``enter``),
    and the intervals of every ``wait_for_space`` call. Times are seconds
    since the probe was made (about when the machine's buffer was).
    """

    def __init__(self, inner: RetirePolicy) -> None:
        self.inner = inner
        self.name = inner.name
        self.t0 = time.perf_counter()
        self._lock = threading.Lock()
        self.gaps: dict[int, list[tuple[float, float]]] = {}
        self.waits: list[tuple[float, float, int]] = []  # (start, end, vcpu)
        #: (seconds, live bytes, retired bytes) whenever a translator found the
        #: buffer full: the buffer samples itself only when regions change
        #: state, which misses how full it was just before a flush.
        self.samples: list[tuple[float, int, int]] = []
        self._buffer: TranslationBuffer | None = None
        self._order: dict[int, int] = {}  # thread ident -> vCPU number

    def _vcpu(self) -> int:
        ident = threading.get_ident()
        with self._lock:
            if ident not in self._order:
                self._order[ident] = len(self._order)
                self.gaps[self._order[ident]] = []
            return self._order[ident]

    def bind(self, buffer: RegionBuffer) -> None:
        self.inner.bind(buffer)
        # Sampled only when it is the real buffer (it knows its occupancy).
        self._buffer = buffer if isinstance(buffer, TranslationBuffer) else None

    def on_full(self) -> object:
        return self.inner.on_full()

    def on_region_start(self, free_regions: int) -> None:
        self.inner.on_region_start(free_regions)

    def on_invalidate(self, tbs: list[TranslationBlock]) -> None:
        self.inner.on_invalidate(tbs)

    def wait_for_space(self, token: object) -> None:
        vcpu = self._vcpu()
        start = time.perf_counter() - self.t0
        if self._buffer is not None:
            live, retired = self._buffer.occupancy()
            self.samples.append((start, live, retired))
        try:
            self.inner.wait_for_space(token)
        finally:
            end = time.perf_counter() - self.t0
            with self._lock:
                self.waits.append((start, end, vcpu))

    def vcpu_hooks(self) -> VcpuHooks:
        hooks = self.inner.vcpu_hooks()
        gaps = self.gaps[self._vcpu()]
        inner_enter, inner_leave = hooks.enter, hooks.leave
        clock, t0 = time.perf_counter, self.t0
        left = [clock() - t0]  # before its first entry the vCPU was starting up

        def enter() -> None:
            gaps.append((left[0], clock() - t0))
            inner_enter()

        def leave() -> None:
            inner_leave()
            left[0] = clock() - t0

        return VcpuHooks(enter, leave, hooks.boundary)

    def statistics(self) -> PolicyStatistics:
        return self.inner.statistics()

    def close(self) -> None:
        self.inner.close()

    def pauses(self, stops_world: bool) -> dict[int, list[tuple[float, float]]]:
        """Per vCPU, the intervals outside guest code that the policy caused.

        A vCPU's own wait for space counts whole (from leaving guest code to
        entering it again). Under a policy that stops the world, a vCPU's
        time outside guest code while some translator waited counts once per
        merged wait (overlapping waits of several translators make one): the
        sum of that time clipped to the wait, drawn from where it began. A
        vCPU asleep in a host call when a flush began is charged the flush,
        not the rest of its sleep; one that left guest code many times during
        a flush (a spinning hart exits at every ``fence``) is stopped once.
        """
        with self._lock:
            waits = sorted(self.waits)
            gaps = {v: list(g) for v, g in self.gaps.items()}
        busy = _union([(start, end) for start, end, _ in waits])
        busy_starts = [a for a, _ in busy]
        own: dict[int, list[tuple[float, float]]] = {}
        for start, end, vcpu in waits:
            own.setdefault(vcpu, []).append((start, end))
        result: dict[int, list[tuple[float, float]]] = {}
        for vcpu, intervals in gaps.items():
            mine = own.get(vcpu, [])
            mine_starts = [w[0] for w in mine]
            counted: list[tuple[float, float]] = []
            stopped: dict[int, tuple[float, float]] = {}  # busy interval -> (start, time)
            for a, b in intervals:
                if _contains_one(mine, mine_starts, a, b):
                    counted.append((a, b))
                elif stops_world:
                    for i, lo, hi in _clip(busy, busy_starts, a, b):
                        first, total = stopped.get(i, (lo, 0.0))
                        stopped[i] = (first, total + hi - lo)
            counted += [(first, first + total) for first, total in stopped.values()]
            result[vcpu] = sorted(counted)
        return result


def _contains_one(
    waits: list[tuple[float, float]], starts: list[float], a: float, b: float
) -> bool:
    """Does a wait of this vCPU start inside ``[a, b]``?"""
    i = bisect.bisect_left(starts, a)
    return i < len(waits) and waits[i][0] <= b


def _union(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted, overlapping intervals merged into disjoint ones."""
    merged: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _clip(
    busy: list[tuple[float, float]], starts: list[float], a: float, b: float
) -> list[tuple[int, float, float]]:
    """The parts of ``[a, b]`` inside the disjoint, sorted ``busy`` intervals, by index."""
    i = max(0, bisect.bisect_right(starts, a) - 1)
    parts = []
    while i < len(busy) and busy[i][0] <= b:
        lo, hi = max(a, busy[i][0]), min(b, busy[i][1])
        if lo < hi:
            parts.append((i, lo, hi))
        i += 1
    return parts
