"""Grace periods: their numbering, their detection, and their sharing.

Why grace periods
-----------------
Read-copy-update lets readers follow shared references without locks. A
writer never changes what a reader may be looking at: it publishes a new
version and keeps the old one intact until every reader that could have seen
it is done. "Every reader that could have seen it" is every read section that
began before the publication; the time until they have all ended is a *grace
period*. Once it has elapsed, the old version can be reclaimed.

How a grace period is detected
------------------------------
The counter ``G`` lives in the ``GracePeriodState`` shared with the readers
(:mod:`rcu._reader`); the records come from the domain's registry
(:mod:`rcu._registry`). To run a grace period, the driving thread bumps ``G``
and waits for every record whose ``ctr`` is neither ``0`` (not reading) nor
the new ``G`` (started after the bump). Each such *holdout* gets its
``waiting`` flag set; when it leaves its section it signals the driver, so
the driver sleeps instead of polling (QEMU util/rcu.c, liburcu).

Where the interpreter has a GIL, a woken driver would still wait for a busy
reader to be forced off the interpreter (a switch interval, 5 ms by default,
per busy reader). So the driver flags every reader of its snapshot, holds a
handoff gate while it waits, and readers that cross a boundary meanwhile
block on the gate for at most a switch interval, which hands the
interpreter to the driver at once (see :mod:`rcu._reader`).

Sharing grace periods
---------------------
Grace periods are numbered: ``completed`` counts those that have ended and
at most one is in progress (``_active``). A caller that arrives while none
is in progress needs grace period ``completed + 1``; one that arrives while
one is in progress needs the next, ``completed + 2``, because the current one
may have begun before the caller's update. That number is also the cookie of
the polled API. Whoever waits for a number either finds it done, drives the
next grace period itself, or sleeps until the driver finishes: N concurrent
``synchronize()`` calls cost two grace periods at most, not N. A waiting
thread never holds up what it waits for: an online qsbr thread goes offline
while it waits (``wait_for``).

One writer per field
--------------------
``completed``, ``_active``, ``_closed``, ``_sleepers`` and ``_handoff`` are
written under ``_cond`` (``completed`` is read without it: an int, and a
stale value only sends the reader to the lock). ``state.ctr``, the readers'
``waiting`` flags, ``state.gate``, ``_latency`` and ``_stalls`` are written by
the thread that holds the driver's role (see ``_end_handoff_locked``): at
most one at a time.

Lock: ``_cond``, rank 2 (``GRACE``) of the rcu lock order
(:mod:`rcu._lifecycle`). The driver takes the registry's lock (rank 3) only
for its snapshot, without ``_cond``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from rcu import _lifecycle
from rcu._debug import describe_holdouts, warn_stall
from rcu._reader import HOLDOUT, NOT_WAITING, STEP_ASIDE, GracePeriodState, Reader
from rcu._registry import Registry
from rcu._stats import LatencyWindow, Percentiles
from rcu.errors import DomainClosedError, RcuStallWarning

__all__ = ["GraceCounts", "GracePeriods"]


def _gil_enabled() -> bool:
    """Does this interpreter run with a GIL now (a free-threaded build can re-enable it)?"""
    is_enabled: Callable[[], bool] | None = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else is_enabled()


class GraceCounts(NamedTuple):
    """The grace periods' share of a domain's statistics."""

    completed: int
    latency: Percentiles
    stalls: int


class GracePeriods:
    """The grace periods of one domain over the records of ``registry``.

    ``state`` is what the readers see of them (the counter, the wake-up
    signal, the handoff gate; the registry gives it to every record it
    makes). ``stall_timeout`` is in seconds (None: never warn); ``name``
    appears in warnings and errors.
    """

    def __init__(
        self,
        name: str,
        state: GracePeriodState,
        registry: Registry,
        stall_timeout: float | None,
    ) -> None:
        self.name = name
        self.state = state
        #: Seconds, or None; read by the driver when its grace period starts
        #: to wait (``Domain.stall_timeout`` sets it).
        self.stall_timeout = stall_timeout
        self._registry = registry
        # Rank 2 of the rcu lock order (rcu._lifecycle): guards completed,
        # _active, _closed, _sleepers and _handoff (the handoff gate's owner
        # changes under it).
        self._cond = threading.Condition(threading.Lock())
        #: How many grace periods have completed. Written under _cond only;
        #: read without it (an int: a stale value only sends the reader to
        #: the lock).
        self.completed = 0
        self._active = False
        self._closed = False
        self._sleepers = 0  # threads in _cond.wait() for a grace period
        # The driver's handoff gate and the readers it flagged, while a grace
        # period waits or until the first thread it woke runs (see wait_for).
        self._handoff: tuple[threading.Lock, list[Reader]] | None = None
        self._latency = LatencyWindow()
        self._stalls = 0
        _lifecycle.on_fork(self, _lifecycle.GRACE)

    # ------------------------------------------------------------------
    # Numbering

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    def close(self) -> None:
        """From now on :meth:`open_target` raises :class:`DomainClosedError`."""
        with self._cond:
            self._closed = True

    def open_target(self) -> int:
        """The first grace period that starts after this call, for a new wait or cookie.

        Raises :class:`DomainClosedError` once :meth:`close` was called.
        """
        with self._cond:
            if self._closed:
                raise DomainClosedError(f"{self.name!r} is closed")
            return self._target_locked()

    def next_target(self) -> int:
        """The number of the first grace period that starts after this call."""
        with self._cond:
            return self._target_locked()

    def _target_locked(self) -> int:
        # _cond held. A grace period in progress may have begun before
        # the caller's update: the caller needs the one after it.
        return self.completed + (2 if self._active else 1)

    def check_cookie(self, cookie: int) -> None:
        """Raise TypeError or ValueError unless ``cookie`` could come from :meth:`open_target`."""
        if isinstance(cookie, bool) or not isinstance(cookie, int):
            raise TypeError(f"expected a cookie from start_poll(), not {type(cookie).__name__}")
        if cookie < 1 or cookie > self.completed + 2:
            raise ValueError(f"{cookie!r} is not a grace-period cookie of {self.name!r}")

    def counts(self) -> GraceCounts:
        """Grace periods completed, their latency, and the stall warnings issued."""
        return GraceCounts(self.completed, self._latency.percentiles(), self._stalls)

    # ------------------------------------------------------------------
    # Waiting

    def wait_for(
        self, target: int, deadline: float | None, abort: Callable[[], bool] | None = None
    ) -> bool:
        """Wait until grace period ``target`` has completed, driving it if nobody does.

        The calling thread is offline meanwhile if it is an online qsbr
        reader (it must not hold up what it waits for). Returns False if
        ``deadline`` passes, or if ``abort()`` is true when the wait is woken
        by :meth:`wake_waiters`.
        """
        resume = self._registry.pause_current()
        try:
            return self._wait_for(target, deadline, abort)
        finally:
            if resume is not None:
                resume.online()

    def wake_waiters(self) -> None:
        """Wake every thread waiting for a grace period so it checks its ``abort``."""
        self.state.signal()
        with self._cond:
            self._cond.notify_all()

    def _wait_for(
        self, target: int, deadline: float | None, abort: Callable[[], bool] | None
    ) -> bool:
        cond = self._cond
        while True:
            with cond:
                while True:
                    if self.completed >= target:
                        return True
                    if abort is not None and abort():
                        return False
                    if not self._active:
                        # Become the driver of grace period completed + 1
                        # (and take over the flags a handoff left).
                        self._end_handoff_locked()
                        self._active = True
                        break
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._sleepers += 1
                    try:
                        cond.wait(remaining)
                    finally:
                        self._sleepers -= 1
                    if not self._active:
                        # Running again after a grace period ended: the
                        # interpreter reached this thread, so the bystanders
                        # may stop stepping aside for it. (While a grace
                        # period runs, its driver owns the handoff.)
                        self._end_handoff_locked()
            completed = False
            try:
                completed = self._run_grace_period(deadline, abort)
            finally:
                with cond:
                    self._active = False
                    if completed:
                        self.completed += 1
                    if not (completed and self._sleepers):
                        self._end_handoff_locked()
                    # else: the flags and the closed gate stay, so that the
                    # threads this wakes get the interpreter from busy
                    # readers at their next boundary (the first of them to
                    # run ends the handoff), not a switch interval later.
                    cond.notify_all()
            if not completed:
                return False

    def _end_handoff_locked(self) -> None:
        """Open the handoff gate and clear the flags a grace period left (``_cond`` held).

        The flags and the gate belong to whoever holds the driver's role: the
        driver while its grace period runs, then, if it ended with threads
        waiting for it, the first thread that takes ``_cond`` after it
        (a woken waiter or the next driver). Taking them under ``_cond``
        keeps one writer at a time.
        """
        handoff = self._handoff
        if handoff is None:
            return
        self._handoff = None
        gate, readers = handoff
        self.state.gate = None
        for reader in readers:
            reader.waiting = NOT_WAITING
        gate.release()  # the readers blocked on it go on

    # ------------------------------------------------------------------
    # Detection (the driver only)

    def _bump(self) -> int:
        state = self.state
        new = state.ctr + 1
        state.ctr = new
        return new

    def _run_grace_period(self, deadline: float | None, abort: Callable[[], bool] | None) -> bool:
        """Run one grace period; only the thread that set ``_active`` calls this."""
        start = time.perf_counter_ns()
        # Bump under the registry lock: a reader that registers meanwhile
        # is either in the snapshot or registered after the bump.
        new, readers = self._registry.snapshot(self._bump)
        # ORDER: the caller's publication, then the bump, then the reads of
        # ctr in is_ongoing(): a reader that stored an older counter before
        # the bump is seen; one that stores after it sees the new data.
        holdouts = [reader for reader in readers if reader.is_ongoing(new)]
        if holdouts and not self._wait_for_readers(readers, holdouts, new, deadline, abort):
            return False
        self._latency.add(time.perf_counter_ns() - start)
        return True

    def _wait_for_readers(
        self,
        readers: list[Reader],
        holdouts: list[Reader],
        gp_ctr: int,
        deadline: float | None,
        abort: Callable[[], bool] | None,
    ) -> bool:
        """Sleep until no holdout remains; False if ``deadline`` passes or ``abort()``.

        Under a GIL the driver keeps the interpreter until its holdouts are
        flagged, flags the rest of ``readers`` to step aside, and holds a
        handoff gate while it waits (see :mod:`rcu._reader`); it leaves both
        in ``_handoff`` for :meth:`_wait_for` to end. Without a GIL it gives
        the interpreter away once before flagging, as liburcu spins a bounded
        number of times before it sleeps: read sections are short, so most
        holdouts are gone by then and never pay for a wake-up.
        """
        handoff = _gil_enabled()
        if not handoff:
            time.sleep(0)
            holdouts = [reader for reader in holdouts if reader.is_ongoing(gp_ctr)]
            if not holdouts:
                return True
        state = self.state
        started = time.monotonic()
        stall_timeout = self.stall_timeout
        stall_at = None if stall_timeout is None else started + stall_timeout
        for reader in holdouts:
            reader.waiting = HOLDOUT
        left = STEP_ASIDE if handoff else NOT_WAITING  # what a holdout that left becomes
        if handoff:
            for reader in readers:
                if reader.waiting == NOT_WAITING:
                    reader.waiting = STEP_ASIDE
        completed = False
        try:
            while True:
                opened = None
                if handoff:
                    # A fresh gate per scan: a reader steps aside at most
                    # once per gate. The old one opens after the scan. It
                    # guards nothing and is outside the rcu lock order (see
                    # rcu._reader: readers wait on it with a timeout).
                    gate = threading.Lock()
                    gate.acquire()
                    with self._cond:
                        opened = self._handoff
                        self._handoff = (gate, readers)
                        state.gate = gate
                state.clear()
                # ORDER: set waiting, arm the gate, clear the signal, then read
                # ctr. A reader that leaves after this read sees waiting and
                # signals; one that stepped aside before it has been scanned.
                still = []
                for reader in holdouts:
                    if reader.is_ongoing(gp_ctr):
                        still.append(reader)
                    else:
                        reader.waiting = left
                holdouts = still
                if opened is not None:
                    opened[0].release()  # the readers that stepped aside have been seen
                if not holdouts:
                    completed = True
                    return True
                now = time.monotonic()
                if (deadline is not None and now >= deadline) or (abort is not None and abort()):
                    return False
                if stall_timeout is not None and stall_at is not None and now >= stall_at:
                    self._warn_stall(holdouts, now - started)
                    stall_at = now + stall_timeout
                wake_at = [t for t in (deadline, stall_at) if t is not None]
                state.wait(min(wake_at) - now if wake_at else None)
        finally:
            if not handoff:
                for reader in holdouts:
                    reader.waiting = NOT_WAITING
            elif not completed:
                with self._cond:
                    self._end_handoff_locked()

    def _warn_stall(self, holdouts: list[Reader], waited: float) -> None:
        self._stalls += 1  # only the grace-period driver writes this
        warn_stall(
            RcuStallWarning(
                f"grace period of {self.name!r} has waited {waited:.1f} s for "
                f"{len(holdouts)} reader(s):\n{describe_holdouts(holdouts)}"
            ),
            holdouts,
        )

    # ------------------------------------------------------------------
    # Fork (see rcu._lifecycle)

    def before_fork(self) -> None:
        """Take ``_cond``'s lock."""
        self._cond.acquire()

    def after_fork_in_parent(self) -> None:
        """Release ``_cond``'s lock."""
        self._cond.release()

    def after_fork_in_child(self) -> None:
        """No grace period runs in the child: another thread was driving it, if any."""
        self._cond = threading.Condition(threading.Lock())  # the same role and rank
        self._active = False
        self._sleepers = 0
        self._handoff = None  # its gate may be held by a thread the child does not have
        self.state.reinit()
