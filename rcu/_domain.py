"""Domain: the public face of one RCU domain, made of three parts.

Why a facade
------------
A domain is what a user sees: a set of reader threads and the grace periods
that wait for them, with ``call_rcu`` on top. Inside, each concept has its
own module and its own lock (QEMU and liburcu split the same way):

* :mod:`rcu._registry`: the reader records and this thread's lookup of its
  own (registration, thread exit, the C fast path of ``read()``).
* :mod:`rcu._grace`: grace-period numbering, detection over the registry's
  records, sharing between waiters, the handoff gate, stall warnings.
* :mod:`rcu._callbacks`: the call_rcu queue and its worker, which sees the
  other two only through narrow protocols (as liburcu's call_rcu thread sees
  a flavor through urcu-flavor.h).

Fork and interpreter exit are handled for every part in one place,
:mod:`rcu._lifecycle`, which also states the rcu lock order. This module
checks the options, wires the parts together, forwards the public calls, and
assembles :class:`rcu.DomainStatistics` from each part's counters. It holds
no lock and no state of its own besides its options. At its end: the default
domain, and the module-level shortcuts (``rcu.read()``, ``rcu.synchronize()``,
...) that forward to it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

from rcu import _lifecycle
from rcu._callbacks import CallbackEngine
from rcu._debug import describe_holdouts, warn_stall
from rcu._flavors import reader_class
from rcu._grace import GracePeriods
from rcu._reader import GracePeriodState, Reader
from rcu._registry import Registry
from rcu._stats import DomainStatistics
from rcu._timeouts import deadline_after, duration
from rcu.errors import RcuError, RcuStallWarning, ReadSectionError

__all__ = [
    "Domain",
    "barrier",
    "call_rcu",
    "default_domain",
    "poll",
    "read",
    "read_lock",
    "read_unlock",
    "start_poll",
    "synchronize",
]

#: Linux's default RCU CPU stall timeout, in seconds.
DEFAULT_STALL_TIMEOUT = 21.0
#: How long interpreter exit waits for each open domain's queued callbacks.
DEFAULT_EXIT_TIMEOUT = 5.0


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
        stall_timeout = _stall_timeout(stall_timeout)
        exit_timeout = duration("exit_timeout", exit_timeout)
        if debug is None:
            debug = os.environ.get("RCU_DEBUG", "") not in ("", "0")
        elif not isinstance(debug, bool):
            raise TypeError(f"debug must be a bool or None, not {type(debug).__name__}")
        self.flavor = flavor
        self.name = name if name is not None else f"domain-{id(self):x}"
        self.debug = debug
        #: Seconds, or None for no limit at exit (``inf`` is stored as None).
        self.exit_timeout = exit_timeout

        state = GracePeriodState()
        self._registry = Registry(
            self.name, reader_class(flavor, debug=debug), state, qsbr=flavor == "qsbr"
        )
        self._grace = GracePeriods(self.name, state, self._registry, stall_timeout)
        self._engine = CallbackEngine(
            self._grace,
            self._registry,
            name=self.name,
            batch_size=batch_size,
            batch_delay=batch_delay,
            max_pending=max_pending,
            on_error=on_error,
        )
        # The read path: read() and reader() look up this thread's record in
        # the registry's thread-local storage, without a call into the
        # registry (a call costs more than the rest of the lookup). With the
        # C extension they are the registry's C lookup: the instance
        # attributes shadow the methods below, which stay the reference and
        # the documentation.
        self._local = self._registry.local
        fast_lookup = self._registry.fast_lookup
        if fast_lookup is not None:
            self.__dict__["read"] = self.__dict__["reader"] = fast_lookup
        _lifecycle.drain_at_exit(self)

    @property
    def stall_timeout(self) -> float | None:
        """Seconds, or None for no stall warnings (``inf`` is stored as None).

        Settable; the grace periods that start waiting afterwards use the new value.
        """
        return self._grace.stall_timeout

    @stall_timeout.setter
    def stall_timeout(self, value: float | None) -> None:
        self._grace.stall_timeout = _stall_timeout(value)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<rcu.Domain {self.name!r} flavor={self.flavor} {state}>"

    # ------------------------------------------------------------------
    # Readers

    def reader(self) -> Reader:
        """This thread's reader handle (registers the thread on first use)."""
        try:
            reader: Reader = self._local.reader
        except AttributeError:
            return self._registry.register()
        return reader

    def read(self) -> Reader:
        """A read section: ``with domain.read(): ...`` (nestable)."""
        try:
            reader: Reader = self._local.reader
        except AttributeError:
            return self._registry.register()
        return reader

    def read_lock(self) -> None:
        """Enter a read section on this thread (nestable)."""
        self.reader().lock()

    def read_unlock(self) -> None:
        """Leave this thread's innermost read section."""
        reader = self._registry.current()
        if reader is None:
            raise ReadSectionError("read_unlock() on a thread that never entered a read section")
        reader.unlock()

    def quiescent_state(self) -> None:
        """qsbr: report that this thread holds no reference (a no-op in epoch)."""
        self.reader().quiescent_state()

    def offline(self) -> None:
        """qsbr: stop holding up grace periods until ``online()`` (no-op in epoch)."""
        reader = self._registry.current()
        if reader is not None:
            reader.offline()

    def online(self) -> None:
        """qsbr: hold up grace periods again (registers the thread; no-op in epoch)."""
        self.reader().online()

    def offline_section(self) -> contextlib.AbstractContextManager[None]:
        """``with domain.offline_section():`` is ``offline()`` ... ``online()``."""
        return _OfflineSection(self)

    def in_read_section(self) -> bool:
        """True if this thread is inside a read section of this domain."""
        return self._registry.in_read_section()

    def register_thread(self) -> Reader:
        """Register this thread as a reader (idempotent) and return its handle.

        A qsbr reader is online from registration on.
        """
        return self._registry.register()

    def unregister_thread(self) -> None:
        """Unregister this thread (a no-op if it is not registered)."""
        self._registry.unregister()

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
        grace = self._grace
        return grace.wait_for(grace.open_target(), deadline)

    def start_poll(self) -> int:
        """Return a cookie for a grace period and make sure one will start.

        The cookie completes once every read section that began before this
        call has ended. Cookies are ints and compare in the order of their
        grace periods.
        """
        target = self._grace.open_target()
        self._engine.request_grace_period(target)
        return target

    def poll(self, cookie: int) -> bool:
        """True if the grace period of ``cookie`` (from ``start_poll``) has completed."""
        grace = self._grace
        grace.check_cookie(cookie)
        return grace.completed >= cookie

    def cond_synchronize(self, cookie: int, timeout: float | None = None) -> bool:
        """Wait for ``cookie``'s grace period only if it has not completed yet."""
        grace = self._grace
        grace.check_cookie(cookie)
        deadline = deadline_after(timeout)
        if grace.completed >= cookie:
            return True
        self._check_can_wait("cond_synchronize")
        return grace.wait_for(cookie, deadline)

    def _check_can_wait(self, what: str) -> None:
        if self._registry.in_read_section():
            raise ReadSectionError(
                f"{what}() inside a read section of {self.name!r} would wait for itself"
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
        (including callbacks that callbacks queue), and every grace period
        that ``start_poll`` requested completes, before ``close`` returns;
        without, ``close`` waits for no reader: queued callbacks are dropped
        and counted, and requested grace periods are no longer driven (their
        cookies stay valid: ``cond_synchronize`` drives one). Idempotent; on a
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
        self._grace.close()
        _lifecycle.forget_at_exit(self)
        # This thread's fast-lookup entry would keep its reader alive after
        # the domain is gone (other threads drop theirs when they unregister
        # or exit); read() after close() takes the slow path.
        self._registry.drop_fast_lookup()
        # An online qsbr caller goes offline: the worker's last grace
        # periods may be waiting for it while it waits for the worker.
        resume = self._registry.pause_current()
        try:
            return self._engine.close(drain, deadline)
        finally:
            if resume is not None:
                resume.online()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._grace.closed

    # ------------------------------------------------------------------
    # Statistics and interpreter exit

    def statistics(self) -> DomainStatistics:
        """A frozen snapshot of this domain's counters."""
        readers = self._registry.counts()
        grace = self._grace.counts()
        callbacks = self._engine.counts()
        return DomainStatistics(
            name=self.name,
            flavor=self.flavor,
            grace_periods=grace.completed,
            callbacks_queued=callbacks.queued,
            callbacks_invoked=callbacks.invoked,
            callbacks_failed=callbacks.failed,
            callbacks_dropped=callbacks.dropped,
            pending=callbacks.pending,
            peak_pending=callbacks.peak_pending,
            gp_latency=grace.latency,
            readers=readers.readers,
            stalls=grace.stalls,
            handoffs=readers.handoffs,
            handoff_time=readers.handoff_ns / 1e9,
        )

    def _drain_for_exit(self, deadline: float | None) -> bool:
        """Interpreter exit (see rcu._lifecycle): close, draining until ``deadline``."""
        return self._close(True, deadline)

    def _report_exit_stall(self) -> None:
        """Interpreter exit could not run every callback: say how many, and who holds them."""
        # This thread was offline while it waited: it is no holdout.
        holdouts = self._registry.holdouts(besides=threading.current_thread())
        if holdouts:
            cause = (
                f"{len(holdouts)} reader(s) still hold up its grace periods:\n"
                + describe_holdouts(holdouts)
            )
        else:
            cause = "its worker is still running a callback"
        warn_stall(
            RcuStallWarning(
                f"interpreter exit: {self._engine.counts().pending} callback(s) of "
                f"{self.name!r} could not run within its exit_timeout of "
                f"{self.exit_timeout} s; " + cause
            ),
            holdouts,
        )


def _stall_timeout(value: float | None) -> float | None:
    """``value`` checked as a ``stall_timeout``: a duration > 0, or None (never warn)."""
    checked = duration("stall_timeout", value)
    if checked == 0:
        raise ValueError("stall_timeout must be > 0 or None")
    return checked


class _OfflineSection(contextlib.AbstractContextManager[None]):
    """Context manager of ``Domain.offline_section()``."""

    __slots__ = ("_domain",)

    def __init__(self, domain: Domain) -> None:
        self._domain = domain

    def __enter__(self) -> None:
        self._domain.offline()

    def __exit__(self, *exc_info: object) -> None:
        self._domain.online()


# ----------------------------------------------------------------------
# The default domain. Its lock is outside the rcu lock order (it is held
# while a domain is built, which registers the domain's parts; see
# rcu._lifecycle) and is made anew in a forked child.

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


def _new_default_lock() -> None:
    global _default_lock
    _default_lock = threading.Lock()  # the same role; nobody holds it in the child


_lifecycle.on_fork_in_child(_new_default_lock)


def read() -> Reader:
    """``with rcu.read():`` is a read section of the default domain."""
    return default_domain().read()


def read_lock() -> None:
    """Enter a read section of the default domain."""
    default_domain().read_lock()


def read_unlock() -> None:
    """Leave a read section of the default domain."""
    default_domain().read_unlock()


def synchronize(timeout: float | None = None) -> bool:
    """Wait for a grace period of the default domain."""
    return default_domain().synchronize(timeout)


def call_rcu(fn: Callable[..., object], /, *args: Any, **kwargs: Any) -> None:
    """Run ``fn(*args, **kwargs)`` after a grace period of the default domain."""
    default_domain().call_rcu(fn, *args, **kwargs)


def barrier(timeout: float | None = None) -> bool:
    """Wait until every callback queued on the default domain has run."""
    return default_domain().barrier(timeout)


def start_poll() -> int:
    """A grace-period cookie of the default domain (see ``Domain.start_poll``)."""
    return default_domain().start_poll()


def poll(cookie: int) -> bool:
    """Has the default domain's grace period ``cookie`` completed?"""
    return default_domain().poll(cookie)
