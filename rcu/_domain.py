"""Domain: readers, grace periods and the polled API.

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
The domain keeps a counter ``G`` and a registry of reader records (see
:mod:`rcu._reader`). To run a grace period, the driving thread bumps ``G``
and waits for every record whose ``ctr`` is neither ``0`` (not reading) nor
the new ``G`` (started after the bump). Each such *holdout* gets its
``waiting`` flag set; when it leaves its section it signals the driver,
so the driver sleeps instead of polling (QEMU util/rcu.c, liburcu).

Where the interpreter has a GIL, a woken driver would still wait for a busy
reader to be forced off the interpreter (a switch interval, 5 ms by default,
per busy reader). So the driver flags every reader of its snapshot, holds a
handoff gate while it waits, and readers that cross a boundary meanwhile
block on the gate for at most a switch interval, which hands the
interpreter to the driver at once (see :mod:`rcu._reader`).

Sharing grace periods
---------------------
Grace periods are numbered: ``_completed`` counts those that have ended and
at most one is in progress (``_gp_active``). A caller that arrives while none
is in progress needs grace period ``_completed + 1``; one that arrives while
one is in progress needs the next, ``_completed + 2``, because the current one
may have begun before the caller's update. That number is also the cookie of
the polled API. Whoever waits for a number either finds it done, drives the
next grace period itself, or sleeps until the driver finishes: N concurrent
``synchronize()`` calls cost two grace periods at most, not N.

Locks, and their order (a thread takes them only in this order, and no code
path holds two of them except the fork handler, which takes all three):

1. ``CallbackEngine._lock`` (see :mod:`rcu._callbacks`).
2. ``_gp_cond``: guards ``_completed``, ``_gp_active``, ``_closed``,
   ``_sleepers`` and ``_handoff`` (the handoff gate's owner changes under it).
3. ``_registry_lock``: guards ``_registry`` and ``_past_handoffs``; taken for
   registration and to snapshot the readers when a grace period starts.

Readers take none of them.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from rcu._callbacks import CallbackEngine
from rcu._debug import describe_holdouts, warn_stall
from rcu._flavors import reader_class
from rcu._reader import (
    HOLDOUT,
    NOT_WAITING,
    STEP_ASIDE,
    UNREGISTERED,
    GracePeriodState,
    Reader,
    native,
)
from rcu._stats import DomainStatistics, LatencyWindow
from rcu._timeouts import deadline_after, duration
from rcu.errors import (
    DomainClosedError,
    RcuError,
    RcuStallWarning,
    ReaderExitWarning,
    ReadSectionError,
)

__all__ = ["Domain", "default_domain"]

_T = TypeVar("_T")

#: Linux's default RCU CPU stall timeout, in seconds.
DEFAULT_STALL_TIMEOUT = 21.0
#: How long interpreter exit waits for each open domain's queued callbacks.
DEFAULT_EXIT_TIMEOUT = 5.0


def _gil_enabled() -> bool:
    """Does this interpreter run with a GIL now (a free-threaded build can re-enable it)?"""
    is_enabled: Callable[[], bool] | None = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else is_enabled()


class _ThreadSlot:
    """Lives in the domain's thread-local storage: it dies with its thread.

    Its death is how the domain learns that a registered thread exited.
    """

    __slots__ = ("__weakref__", "reader")

    def __init__(self, reader: Reader) -> None:
        self.reader = reader


class Domain:
    """An RCU domain: a set of reader threads and the grace periods that wait for them.

    ``flavor`` is ``"epoch"`` (read sections mark themselves; the default) or
    ``"qsbr"`` (threads report quiescent states). Options:

    name
        Shown in statistics, warnings and thread names.
    batch_size, batch_delay
        The callback worker waits up to ``batch_delay`` seconds for
        ``batch_size`` callbacks before it starts a grace period for them.
    max_pending
        Backlog bound: past it, ``call_rcu`` forces a grace period and blocks
        until the backlog drains (an online qsbr thread goes offline while it
        waits). Inside a read section, where blocking would deadlock, it only
        forces, and raises :class:`ReadSectionError` past ``2 * max_pending``.
    stall_timeout
        Seconds after which a grace period that still waits warns with
        :class:`RcuStallWarning`, naming the holdout threads. ``None`` (or
        ``inf``): never.
    exit_timeout
        At interpreter exit, how long to wait for this domain's queued
        callbacks (5 s by default; all open domains drain side by side). A
        reader that never leaves its section (a daemon thread parked in it)
        cannot hold the exit longer: the callbacks that could not run are
        reported with one :class:`RcuStallWarning`. ``None`` (or ``inf``):
        wait as long as it takes.
    debug
        Check that ``Pointer.load`` runs inside a read section and poison
        reclaimed :class:`rcu.Reclaimable` objects. Defaults to the
        ``RCU_DEBUG`` environment variable.
    on_error
        Called as ``on_error(exc, fn)`` on the worker thread when a callback
        raises. By default the error is printed like an uncaught thread
        exception.

    Durations are in seconds; ``inf``, and durations longer than
    ``threading.TIMEOUT_MAX``, mean no limit, as ``None`` does.
    """

    def __init__(
        self,
        flavor: str = "epoch",
        *,
        name: str | None = None,
        batch_size: int = 1024,
        batch_delay: float = 0.01,
        max_pending: int = 10_000,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        exit_timeout: float | None = DEFAULT_EXIT_TIMEOUT,
        debug: bool | None = None,
        on_error: Callable[[BaseException, Callable[..., object]], object] | None = None,
    ) -> None:
        if not isinstance(flavor, str):
            raise TypeError(f"flavor must be a str, not {type(flavor).__name__}")
        reader_class(flavor)  # an unknown flavor fails before the other options
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {type(name).__name__}")
        stall_timeout = duration("stall_timeout", stall_timeout)
        if stall_timeout == 0:
            raise ValueError("stall_timeout must be > 0 or None")
        exit_timeout = duration("exit_timeout", exit_timeout)
        if debug is None:
            debug = os.environ.get("RCU_DEBUG", "") not in ("", "0")
        elif not isinstance(debug, bool):
            raise TypeError(f"debug must be a bool or None, not {type(debug).__name__}")
        self._reader_class = reader_class(flavor, debug=debug)
        self.flavor = flavor
        self.name = name if name is not None else f"domain-{id(self):x}"
        self.debug = debug
        #: Seconds, or None for no stall warnings (``inf`` is stored as None).
        self.stall_timeout = stall_timeout
        #: Seconds, or None for no limit at exit (``inf`` is stored as None).
        self.exit_timeout = exit_timeout

        self._gp = GracePeriodState()
        self._local = threading.local()
        if native is not None:
            # read() and reader() in C: the thread state's dict instead of a
            # threading.local lookup (the instance attributes shadow the
            # methods below, which stay the reference and the documentation).
            self._key = object()
            lookup = native.ReaderLookup(self._key, self.register_thread)
            self.__dict__["read"] = self.__dict__["reader"] = lookup
        self._registry_lock = threading.Lock()
        # Step-aside counters (count, ns) of readers no longer registered.
        self._past_handoffs = (0, 0)
        # reader -> the weak reference that watches its thread's exit
        self._registry: dict[Reader, weakref.ref[_ThreadSlot]] = {}
        self._gp_cond = threading.Condition(threading.Lock())
        self._completed = 0
        self._gp_active = False
        self._sleepers = 0  # threads in _gp_cond.wait() for a grace period
        # The driver's handoff gate and the readers it flagged, while a grace
        # period waits or until the first thread it woke runs (see _wait_for).
        self._handoff: tuple[threading.Lock, list[Reader]] | None = None
        self._closed = False
        self._latency = LatencyWindow()
        self._stalls = 0
        self._pid = os.getpid()
        self._engine = CallbackEngine(
            self,
            batch_size=batch_size,
            batch_delay=batch_delay,
            max_pending=max_pending,
            on_error=on_error,
        )
        with _open_domains_lock:
            _open_domains.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<rcu.Domain {self.name!r} flavor={self.flavor} {state}>"

    # ------------------------------------------------------------------
    # Readers

    def reader(self) -> Reader:
        """This thread's reader handle (registers the thread on first use)."""
        try:
            reader: Reader = self._local.reader
        except AttributeError:
            return self.register_thread()
        return reader

    def read(self) -> Reader:
        """A read section: ``with domain.read(): ...`` (nestable)."""
        try:
            reader: Reader = self._local.reader
        except AttributeError:
            return self.register_thread()
        return reader

    def read_lock(self) -> None:
        """Enter a read section on this thread (nestable)."""
        self.reader().lock()

    def read_unlock(self) -> None:
        """Leave this thread's innermost read section."""
        reader = self._current_reader()
        if reader is None:
            raise ReadSectionError("read_unlock() on a thread that never entered a read section")
        reader.unlock()

    def quiescent_state(self) -> None:
        """qsbr: report that this thread holds no reference (a no-op in epoch)."""
        self.reader().quiescent_state()

    def offline(self) -> None:
        """qsbr: stop holding up grace periods until ``online()`` (no-op in epoch)."""
        reader = self._current_reader()
        if reader is not None:
            reader.offline()

    def online(self) -> None:
        """qsbr: hold up grace periods again (registers the thread; no-op in epoch)."""
        self.reader().online()

    def offline_section(self) -> _OfflineSection:
        """``with domain.offline_section():`` is ``offline()`` ... ``online()``."""
        return _OfflineSection(self)

    def in_read_section(self) -> bool:
        """True if this thread is inside a read section of this domain."""
        reader = self._current_reader()
        return reader is not None and reader.depth > 0

    def register_thread(self) -> Reader:
        """Register this thread as a reader (idempotent) and return its handle.

        A qsbr reader is online from registration on.
        """
        current = self._current_reader()
        if current is not None:
            return current
        reader = self._reader_class(self._gp, threading.current_thread())
        slot = _ThreadSlot(reader)
        watch = weakref.ref(slot, _exit_watcher(weakref.ref(self), reader))
        with self._registry_lock:
            if self.flavor == "qsbr":
                # Online at once, under the registry lock: a grace period that
                # starts now either snapshots this reader (and waits for its
                # next quiescent state) or comes after this store.
                reader.ctr = self._gp.ctr
            self._registry[reader] = watch
        self._local.reader = reader
        self._local.slot = slot
        if native is not None:
            native.set_current(self._key, reader)
        return reader

    def unregister_thread(self) -> None:
        """Unregister this thread (a no-op if it is not registered)."""
        reader = self._current_reader()
        if reader is None:
            return
        if reader.depth:
            raise ReadSectionError("unregister_thread() inside a read section")
        del self._local.reader, self._local.slot
        if native is not None:
            native.set_current(self._key, None)
        self._forget(reader, exited=False)

    def _current_reader(self) -> Reader | None:
        return getattr(self._local, "reader", None)

    def _forget(self, reader: Reader, *, exited: bool) -> None:
        """Remove ``reader`` from the registry; it stops holding up grace periods."""
        if self._pid != os.getpid():
            # A thread of the parent process, cleaned up in a forked child.
            return
        with self._registry_lock:
            if self._registry.pop(reader, None) is None:
                return
            # Its step-aside counters outlive it (the owner is gone or is us).
            handoffs, handoff_ns = self._past_handoffs
            self._past_handoffs = (handoffs + reader.handoffs, handoff_ns + reader.handoff_ns)
        depth = reader.depth
        reader.depth = 0
        # ORDER: clear ctr, then look at waiting, as an unlock does. Only the
        # owner writes ctr; here the owner is either this thread or dead.
        reader.ctr = 0
        if reader.waiting == HOLDOUT:
            self._gp.signal()
        reader._gp = UNREGISTERED  # a kept handle now fails instead of protecting nothing
        thread = reader.thread
        if thread.is_alive() and thread.ident != threading.get_ident():
            # Not an exit: the record is torn down with the interpreter around
            # a daemon thread that still runs (interpreter exit reported what
            # that cost, see _drain_at_exit). A thread that exits runs this
            # itself.
            return
        if exited and depth:
            warnings.warn(
                ReaderExitWarning(
                    f"thread {reader.thread.name!r} exited inside a read section of "
                    f"{self.name!r} (depth {depth}); the section is abandoned"
                ),
                stacklevel=1,
            )

    def _in_held_section(self) -> bool:
        """Is this thread in a read section that holds up grace periods?

        Such a thread cannot wait for a grace period (epoch: it is in a
        section; qsbr: it is online and in a section, so it may not go
        offline). Any other thread can, once it is paused (``_pause_current``).
        """
        reader = self._current_reader()
        return reader is not None and reader.depth > 0 and reader.ctr != 0

    def _pause_current(self) -> Reader | None:
        """Before blocking: take this thread offline if it holds up grace periods.

        Returns the reader to bring back online afterwards, or None.
        """
        reader = self._current_reader()
        if reader is not None and reader._pause():
            return reader
        return None

    # ------------------------------------------------------------------
    # Grace periods

    def synchronize(self, timeout: float | None = None) -> bool:
        """Wait for a full grace period.

        Returns True once every read section that began before the call has
        ended; False if ``timeout`` seconds passed first. From an online qsbr
        thread, the thread is offline while it waits.
        """
        deadline = deadline_after(timeout)
        self._check_can_wait("synchronize")
        with self._gp_cond:
            if self._closed:
                raise DomainClosedError(f"{self.name!r} is closed")
            target = self._target_locked()
        return self._wait_paused(target, deadline)

    def start_poll(self) -> int:
        """Return a cookie for a grace period and make sure one will start.

        The cookie completes once every read section that began before this
        call has ended. Cookies are ints and compare in the order of their
        grace periods.
        """
        with self._gp_cond:
            if self._closed:
                raise DomainClosedError(f"{self.name!r} is closed")
            target = self._target_locked()
        self._engine.request_grace_period(target)
        return target

    def poll(self, cookie: int) -> bool:
        """True if the grace period of ``cookie`` (from ``start_poll``) has completed."""
        self._check_cookie(cookie)
        return self._completed >= cookie

    def cond_synchronize(self, cookie: int, timeout: float | None = None) -> bool:
        """Wait for ``cookie``'s grace period only if it has not completed yet."""
        self._check_cookie(cookie)
        deadline = deadline_after(timeout)
        if self._completed >= cookie:
            return True
        self._check_can_wait("cond_synchronize")
        return self._wait_paused(cookie, deadline)

    def _check_cookie(self, cookie: int) -> None:
        if isinstance(cookie, bool) or not isinstance(cookie, int):
            raise TypeError(f"expected a cookie from start_poll(), not {type(cookie).__name__}")
        if cookie < 1 or cookie > self._completed + 2:
            raise ValueError(f"{cookie!r} is not a grace-period cookie of {self.name!r}")

    def _check_can_wait(self, what: str) -> None:
        if self.in_read_section():
            raise ReadSectionError(
                f"{what}() inside a read section of {self.name!r} would wait for itself"
            )

    def _wait_paused(
        self, target: int, deadline: float | None, abort: Callable[[], bool] | None = None
    ) -> bool:
        resume = self._pause_current()
        try:
            return self._wait_for(target, deadline, abort)
        finally:
            if resume is not None:
                resume.online()

    def _next_target(self) -> int:
        """The number of the first grace period that starts after this call."""
        with self._gp_cond:
            return self._target_locked()

    def _target_locked(self) -> int:
        # _gp_cond held. A grace period in progress may have begun before
        # the caller's update: the caller needs the one after it.
        return self._completed + (2 if self._gp_active else 1)

    def _wait_for(
        self, target: int, deadline: float | None, abort: Callable[[], bool] | None = None
    ) -> bool:
        """Wait until grace period ``target`` has completed, driving it if nobody does.

        Returns False if ``deadline`` passes, or if ``abort()`` is true when
        the wait is woken by :meth:`_wake_waiters`.
        """
        cond = self._gp_cond
        while True:
            with cond:
                while True:
                    if self._completed >= target:
                        return True
                    if abort is not None and abort():
                        return False
                    if not self._gp_active:
                        # Become the driver of grace period _completed + 1
                        # (and take over the flags a handoff left).
                        self._end_handoff_locked()
                        self._gp_active = True
                        break
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._sleepers += 1
                    try:
                        cond.wait(remaining)
                    finally:
                        self._sleepers -= 1
                    if not self._gp_active:
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
                    self._gp_active = False
                    if completed:
                        self._completed += 1
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
        """Open the handoff gate and clear the flags a grace period left (``_gp_cond`` held).

        The flags and the gate belong to whoever holds the driver's role: the
        driver while its grace period runs, then, if it ended with threads
        waiting for it, the first thread that takes ``_gp_cond`` after it
        (a woken waiter or the next driver). Taking them under ``_gp_cond``
        keeps one writer at a time.
        """
        handoff = self._handoff
        if handoff is None:
            return
        self._handoff = None
        gate, readers = handoff
        self._gp.gate = None
        for reader in readers:
            reader.waiting = NOT_WAITING
        gate.release()  # the readers blocked on it go on

    def _run_grace_period(self, deadline: float | None, abort: Callable[[], bool] | None) -> bool:
        """Run one grace period; only the thread that set ``_gp_active`` calls this."""
        start = time.perf_counter_ns()
        gp = self._gp
        with self._registry_lock:
            # Bump under the registry lock: a reader that registers meanwhile
            # is either in the snapshot or registered after the bump.
            new = gp.ctr + 1
            gp.ctr = new
            readers = list(self._registry)
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
        gp = self._gp
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
                    # once per gate. The old one opens after the scan.
                    gate = threading.Lock()
                    gate.acquire()
                    with self._gp_cond:
                        opened = self._handoff
                        self._handoff = (gate, readers)
                        gp.gate = gate
                gp.clear()
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
                gp.wait(min(wake_at) - now if wake_at else None)
        finally:
            if not handoff:
                for reader in holdouts:
                    reader.waiting = NOT_WAITING
            elif not completed:
                with self._gp_cond:
                    self._end_handoff_locked()

    def _wake_waiters(self) -> None:
        """Wake every thread waiting for a grace period so it checks its ``abort``."""
        self._gp.signal()
        with self._gp_cond:
            self._gp_cond.notify_all()

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
    # Deferred callbacks

    def call_rcu(self, fn: Callable[..., object], /, *args: Any, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` on the domain's worker after a grace period.

        Returns at once unless ``max_pending`` callbacks are pending (see the
        class docstring). Raises :class:`DomainClosedError` after ``close``,
        and :class:`RcuError` if the domain's callback worker failed.
        """
        self._engine.call_rcu(fn, args, kwargs)

    def barrier(self, timeout: float | None = None) -> bool:
        """Wait until every callback queued before this call has run.

        Returns False if ``timeout`` seconds passed first.
        """
        deadline = deadline_after(timeout)
        self._check_can_wait("barrier")
        return self._engine.barrier(deadline)

    def close(self, drain: bool = True) -> None:
        """Close the domain.

        New ``call_rcu``, ``synchronize`` and ``start_poll`` calls raise
        :class:`DomainClosedError`. With ``drain`` every queued callback runs
        (including callbacks that callbacks queue) before ``close`` returns;
        without, queued callbacks are dropped and counted. Idempotent; on a
        domain whose callback worker failed it raises :class:`RcuError` (the
        domain is closed all the same).
        """
        if not isinstance(drain, bool):
            raise TypeError(f"drain must be a bool, not {type(drain).__name__}")
        self._close(drain, None)

    def _close(self, drain: bool, deadline: float | None) -> bool:
        self._check_can_wait("close")
        if self._engine.on_worker_thread():
            raise RcuError("close() from an RCU callback would wait for itself")
        with self._gp_cond:
            self._closed = True
        with _open_domains_lock:
            _open_domains.discard(self)
        if native is not None:
            # This thread's fast-lookup entry would keep its reader alive after
            # the domain is gone (other threads drop theirs when they
            # unregister or exit); read() after close() takes the slow path.
            native.set_current(self._key, None)
        # An online qsbr caller goes offline: the worker's last grace
        # periods may be waiting for it while it waits for the worker.
        resume = self._pause_current()
        try:
            return self._engine.close(drain, deadline)
        finally:
            if resume is not None:
                resume.online()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    # ------------------------------------------------------------------
    # Statistics and process life cycle

    def statistics(self) -> DomainStatistics:
        """A frozen snapshot of this domain's counters."""
        with self._registry_lock:
            readers = len(self._registry)
            handoffs, handoff_ns = self._past_handoffs
            for reader in self._registry:
                handoffs += reader.handoffs
                handoff_ns += reader.handoff_ns
        return self._engine.statistics(
            name=self.name,
            flavor=self.flavor,
            grace_periods=self._completed,
            gp_latency=self._latency.percentiles(),
            readers=readers,
            stalls=self._stalls,
            handoffs=handoffs,
            handoff_time=handoff_ns / 1e9,
        )

    def _before_fork(self) -> None:
        # Lock order as documented above; released in reverse in the parent.
        self._engine.lock.acquire()
        self._gp_cond.acquire()
        self._registry_lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self._registry_lock.release()
        self._gp_cond.release()
        self._engine.lock.release()

    def _after_fork_in_child(self) -> None:
        # The child has one thread: this one. Every other thread's reader
        # record, and any grace period another thread was driving, is gone.
        self._pid = os.getpid()
        self._registry_lock = threading.Lock()
        self._gp_cond = threading.Condition(threading.Lock())
        self._gp_active = False
        self._sleepers = 0
        self._handoff = None  # its gate may be held by a thread the child does not have
        self._gp.reinit()
        me = self._current_reader()
        kept = {} if me is None else {me: self._registry[me]}
        if me is not None:
            me.waiting = NOT_WAITING
            me.stepped = None
        self._registry = kept
        self._engine.after_fork_in_child()


class _OfflineSection:
    """Context manager of ``Domain.offline_section()``."""

    __slots__ = ("_domain",)

    def __init__(self, domain: Domain) -> None:
        self._domain = domain

    def __enter__(self) -> None:
        self._domain.offline()

    def __exit__(self, *exc_info: object) -> None:
        self._domain.online()


def _exit_watcher(
    domain_ref: weakref.ref[Domain], reader: Reader
) -> Callable[[weakref.ref[_ThreadSlot]], None]:
    """The weakref callback that unregisters ``reader`` when its thread dies."""

    def on_exit(_slot: weakref.ref[_ThreadSlot]) -> None:
        domain = domain_ref()
        if domain is not None:
            domain._forget(reader, exited=True)

    return on_exit


# ----------------------------------------------------------------------
# Process-wide state: open domains (for exit and fork), the default domain.

_open_domains: weakref.WeakSet[Domain] = weakref.WeakSet()
_open_domains_lock = threading.Lock()  # guards _open_domains (a leaf: taken alone)
_forking: list[Domain] = []
_default: Domain | None = None
_default_lock = threading.Lock()


def default_domain() -> Domain:
    """The process-wide epoch domain, created on first use."""
    global _default
    domain = _default
    if domain is None:
        with _default_lock:
            domain = _default
            if domain is None:
                domain = _default = Domain(name="default")
    return domain


def _before_fork() -> None:
    with _open_domains_lock:
        _forking[:] = sorted(_open_domains, key=id)
    for domain in _forking:
        domain._before_fork()


def _after_fork_in_parent() -> None:
    for domain in reversed(_forking):
        domain._after_fork_in_parent()
    _forking.clear()


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    for domain in _forking:
        domain._after_fork_in_child()
    _forking.clear()


def _drain_at_exit() -> None:
    """Run every open domain's queued callbacks before the interpreter exits.

    A reader that never leaves its section (a daemon thread parked in one)
    would hang the exit: each domain waits at most its ``exit_timeout``, then
    reports once what it could not run and who holds it up. Every domain
    starts draining at once, so the exit takes at most the longest
    ``exit_timeout``, not their sum.
    """
    with _open_domains_lock:
        domains = list(_open_domains)
    me = threading.current_thread()
    # Deadlines first, then a close that waits for nothing (it only tells
    # each worker to drain), then the waits: the workers drain side by side.
    deadlines = [(domain, deadline_after(domain.exit_timeout)) for domain in domains]
    started = []
    for domain, deadline in deadlines:
        try:
            domain._close(True, time.monotonic())
        except Exception as exc:  # one broken domain must not keep the others from draining
            warnings.warn(f"could not drain {domain!r} at exit: {exc}", RuntimeWarning, 1)
            continue
        started.append((domain, deadline))
    for domain, deadline in started:
        timeout = domain.exit_timeout
        try:
            drained = domain._close(True, deadline)
        except Exception as exc:
            warnings.warn(f"could not drain {domain!r} at exit: {exc}", RuntimeWarning, 1)
            continue
        if drained:
            continue
        # This thread was offline while it waited: it is no holdout.
        with domain._registry_lock:
            holdouts = [r for r in domain._registry if r.ctr and r.thread is not me]
        if holdouts:
            cause = (
                f"{len(holdouts)} reader(s) still hold up its grace periods:\n"
                + describe_holdouts(holdouts)
            )
        else:
            cause = "its worker is still running a callback"
        warn_stall(
            RcuStallWarning(
                f"interpreter exit: {domain.statistics().pending} callback(s) of "
                f"{domain.name!r} could not run within its exit_timeout of {timeout} s; " + cause
            ),
            holdouts,
        )


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
atexit.register(_drain_at_exit)
