"""The call_rcu engine: deferred callbacks, batched behind grace periods.

Why defer
---------
``synchronize()`` makes the updater wait for a grace period, tens of
microseconds to seconds. Most updaters only need the old version freed
*eventually*: ``call_rcu(fn, old)`` queues the reclamation and returns at
once. One worker thread per domain takes everything queued so far as a batch,
waits for one grace period that covers the whole batch, then runs it in queue
order. A thousand callbacks then cost one grace period instead of a thousand.

Batching
--------
The worker waits up to ``batch_delay`` seconds for ``batch_size`` callbacks
before it starts a grace period (QEMU waits for 30 callbacks or 50 ms; the
defaults here are measured, see ``benchmarks/callbacks.py``). A barrier, a
close, or a backlog at ``max_pending`` starts one at once. A batch's grace
period is numbered when the batch is taken (``next_target()``), so
callbacks queued while a grace period is in progress wait for the next one
and callbacks already covered by a grace period that other threads drove do
not wait again (Linux segments its callback lists the same way).

Backlog bound
-------------
``pending`` counts callbacks from ``call_rcu`` until they have run. At
``max_pending`` a producer forces a grace period and sleeps until the worker
has run a batch. An online qsbr producer goes offline while it sleeps (as in
``synchronize``: the call is then a quiescent state), or the grace period
would wait for it. Two places cannot sleep without waiting for themselves:
inside a read section of the domain, where the section holds up every grace
period that could drain the backlog, and on the worker. Inside a read section
a producer only forces, up to a hard ceiling of ``2 * max_pending``; past it
``call_rcu`` raises :class:`ReadSectionError` (nothing is queued), so the
backlog never exceeds the ceiling whatever readers do. The worker only
forces: callbacks that queue callbacks are bounded by the batch they run in.
No callback is ever dropped to keep the bound.

What the engine sees of its domain
----------------------------------
As liburcu's call_rcu thread sees a flavor only through the table of
functions in urcu-flavor.h, the engine sees two narrow protocols: the grace
periods (``GracePeriodSource``: their numbering and a wait for one) and this
thread's reader (``ThreadReaders``: is it in a section, take it offline). It
never sees the domain, its registry's records, or the grace periods' state.

Lock
----
``lock`` guards every field below except the counters that only the worker
writes. ``_work`` (worker waits for callbacks) and ``_space`` (producers wait
for the backlog to drain) are two conditions over it. Readers never take it.
It is rank 1 (``ENGINE``) of the rcu lock order (see :mod:`rcu._lifecycle`):
nothing here takes another lock of the order while holding it.

Worker state machine (``_state``, under ``lock``):
``_OPEN`` -> ``_DRAINING`` (``close(drain=True)``: the worker runs what is
queued, including what callbacks queue meanwhile) or ``_DROPPING``
(``close(drain=False)``: what is queued, the batch waiting for its grace
period, and the polled request are dropped; the worker stops waiting for
readers) -> ``_CLOSED`` (the worker exited or never ran; nothing is queued
any more). A polled request is accepted exactly when ``call_rcu`` is
(``check_accepting``), so one is pending only while the worker drives it.

Any state -> ``_FAILED``: the worker's own loop raised (callbacks' errors are
caught and reported; this is a bug, or an error in a grace-period wait).
The worker reports it, counts what it can no longer run as dropped, wakes
every barrier and blocked producer, and exits. From then on ``call_rcu``,
``barrier``, ``start_poll`` and ``close`` raise :class:`RcuError` (caused by
the worker's exception) instead of queueing work nobody runs or waiting for
a worker that is gone.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from rcu import _lifecycle
from rcu._reader import Reader
from rcu._timeouts import duration, remaining
from rcu.errors import DomainClosedError, RcuError, ReadSectionError

__all__ = ["CallbackCounts", "CallbackEngine", "GracePeriodSource", "ThreadReaders"]


class GracePeriodSource(Protocol):
    """The grace periods, as the engine sees them (``rcu._grace.GracePeriods``)."""

    @property
    def completed(self) -> int:
        """Grace periods completed so far (read without a lock)."""

    def next_target(self) -> int:
        """The number of the first grace period that starts after this call."""

    def wait_for(
        self, target: int, deadline: float | None, abort: Callable[[], bool] | None = None
    ) -> bool:
        """Wait for grace period ``target``, this thread offline meanwhile.

        False if ``deadline`` passes or ``abort()`` is true first.
        """

    def wake_waiters(self) -> None:
        """Wake every waiter so that it checks its ``abort``."""


class ThreadReaders(Protocol):
    """The calling thread's reader, as the engine sees it (``rcu._registry.Registry``)."""

    def current(self) -> Reader | None:
        """This thread's reader record, if it is registered."""

    def in_held_section(self) -> bool:
        """Is this thread in a read section that holds up grace periods?"""

    def pause_current(self) -> Reader | None:
        """Take this thread offline if it holds up grace periods; the reader to resume."""


class CallbackCounts(NamedTuple):
    """The engine's share of a domain's statistics (see ``rcu.DomainStatistics``)."""

    queued: int
    invoked: int
    failed: int
    dropped: int
    pending: int
    peak_pending: int


_OPEN, _DRAINING, _DROPPING, _CLOSED, _FAILED = 0, 1, 2, 3, 4

# A queued item: (fn, args, kwargs). Barrier markers use this kwargs object,
# compared by identity: they are not user callbacks and are never counted.
_BARRIER: dict[str, Any] = {}
_Item = tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]

ErrorHandler = Callable[[BaseException, Callable[..., object]], object]


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, not {value!r}")
    return value


class CallbackEngine:
    """The queue and worker thread behind ``Domain.call_rcu`` and ``Domain.barrier``."""

    def __init__(
        self,
        grace: GracePeriodSource,
        readers: ThreadReaders,
        *,
        name: str,
        batch_size: int,
        batch_delay: float,
        max_pending: int,
        on_error: ErrorHandler | None,
    ) -> None:
        self._batch_size = _check_positive_int("batch_size", batch_size)
        self._max_pending = _check_positive_int("max_pending", max_pending)
        # None (inf): a batch waits for batch_size callbacks, a barrier,
        # a close or a backlog, however long that takes.
        self._batch_delay = duration("batch_delay", batch_delay, allow_none=False)
        if on_error is not None and not callable(on_error):
            raise TypeError(f"on_error must be callable or None, not {type(on_error).__name__}")
        self._on_error = on_error
        self._grace = grace
        self._readers = readers
        self._name = name  # the domain's, for the worker's thread name and messages
        self._init_sync()
        self._queue: collections.deque[_Item] = collections.deque()
        # The batch the worker is running; kept here (not in a local) so that
        # a forked child can still run what its parent had not run yet.
        self._running: collections.deque[_Item] = collections.deque()
        self._first_at = 0.0  # when the oldest queued item arrived (monotonic)
        self._force = False  # start the next grace period without batching delay
        self._gp_request = 0  # highest polled grace period nobody else waits for
        self._state = _OPEN
        # Set with _FAILED: the worker's exception and what the calls raise.
        self._failure: BaseException | None = None
        self._failure_message = ""
        self._worker: threading.Thread | None = None
        self._worker_ident: int | None = None
        self._pending = 0
        self._peak_pending = 0
        self._queued = 0
        self._dropped = 0
        # Written by the worker only:
        self._invoked = 0
        self._failed = 0

        _lifecycle.on_fork(self, _lifecycle.ENGINE)

    def _init_sync(self) -> None:
        # Rank 1 of the rcu lock order (rcu._lifecycle): guards the fields
        # of __init__ but the worker's own counters.
        self.lock = threading.Lock()
        self._work = threading.Condition(self.lock)
        self._space = threading.Condition(self.lock)

    # ------------------------------------------------------------------
    # Producers

    def call_rcu(
        self, fn: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Queue ``fn(*args, **kwargs)``; see ``Domain.call_rcu``."""
        if not callable(fn):
            raise TypeError(f"call_rcu() needs a callable, not {type(fn).__name__}")
        with self.lock:
            if self._state != _OPEN:
                self.check_accepting()  # raises unless a callback queues during a drain
            if self._pending >= self._max_pending:
                self._force = True
                self._work.notify()
                on_worker = self.on_worker_thread()  # it only forces: it would wait for itself
                if not on_worker and not self._readers.in_held_section():
                    self._wait_for_space()
                elif not on_worker and self._pending >= 2 * self._max_pending:
                    # The section holds up every grace period that could
                    # drain the backlog: below the ceiling it only forces.
                    raise ReadSectionError(
                        f"call_rcu() inside a read section of {self._name!r} with "
                        f"{self._pending} callbacks pending (max_pending="
                        f"{self._max_pending}): no grace period can end before the "
                        "section does; leave it before queueing more"
                    )
            self._enqueue((fn, args, kwargs))  # may fail to start the worker: count after
            self._pending += 1
            if self._pending > self._peak_pending:
                self._peak_pending = self._pending
            self._queued += 1

    def check_accepting(self) -> None:
        """Raise what ``call_rcu`` would raise now instead of queueing (lock held or not)."""
        state = self._state
        if state == _OPEN or (state == _DRAINING and self.on_worker_thread()):
            return
        if self._failure is not None:
            raise self._failure_error()
        raise DomainClosedError(f"{self._name!r} is closed")

    def _wait_for_space(self) -> None:
        # Lock held, by a thread outside any read section of the domain. An
        # online qsbr thread goes offline meanwhile, or the grace period that
        # drains the backlog would wait for it.
        resume = self._readers.pause_current()
        try:
            while self._pending >= self._max_pending and self._state == _OPEN:
                # Force (again) at every wait: the batch that an earlier force
                # started may have been taken before the backlog refilled, and
                # the worker would then wait out batch_delay for a fuller batch.
                self._force = True
                self._work.notify()
                self._space.wait()
        finally:
            if resume is not None:
                resume.online()
        if self._state != _OPEN:
            if self._failure is not None:
                raise self._failure_error()
            raise DomainClosedError(f"{self._name!r} was closed meanwhile")

    def _enqueue(self, item: _Item) -> None:
        # Called with the lock held. Wake the worker only when it has
        # something new to do: a first item (start the batching delay), a
        # full batch, or a forced grace period.
        queue = self._queue
        if self._worker is None:
            self._start_worker()  # before queueing: if it fails, nothing is queued
        queue.append(item)
        size = len(queue)
        if size == 1:
            self._first_at = time.monotonic()
            self._work.notify()
        elif size == self._batch_size or self._force:
            self._work.notify()

    def _start_worker(self) -> None:
        # Lock held. ORDER: the worker is recorded only once it has started
        # (start() may fail: at interpreter shutdown, past a thread limit);
        # it cannot run a callback before the lock is released, so
        # _worker_ident is set before any callback can ask on_worker_thread().
        worker = threading.Thread(target=self._run, name=f"rcu-callbacks-{self._name}", daemon=True)
        worker.start()
        self._worker = worker
        self._worker_ident = worker.ident

    def on_worker_thread(self) -> bool:
        """True if the calling thread is this engine's worker (a callback is running)."""
        return threading.get_ident() == self._worker_ident

    def request_grace_period(self, target: int) -> None:
        """Make sure grace period ``target`` happens even if nobody waits for it.

        Raises what ``call_rcu`` would raise once the engine is closing.
        """
        with self.lock:
            # A start_poll() that numbered its grace period before close() may
            # get here after it: it fails as a later start_poll() would. Once
            # closing, a request would restart a worker nobody joins, or give
            # a dropping worker a wait that aborts at once. ORDER: checked
            # under the lock close() changes the state under: a request is
            # either recorded before close() (which drives or abandons it)
            # or refused.
            self.check_accepting()
            if target > self._gp_request:
                self._gp_request = target
                if self._worker is None:
                    self._start_worker()
                self._work.notify()

    def barrier(self, deadline: float | None) -> bool:
        """Wait until every callback queued before the call has run."""
        if self.on_worker_thread():
            raise RcuError("barrier() from an RCU callback would wait for itself")
        done = threading.Event()
        with self.lock:
            if self._failure is not None:
                raise self._failure_error()
            if self._state == _CLOSED:
                return True
            self._force = True
            self._enqueue((done.set, (), _BARRIER))
        resume = self._readers.pause_current()
        try:
            finished = done.wait(remaining(deadline))
        finally:
            if resume is not None:
                resume.online()
        if self._failure is not None:  # the marker was released by a failing worker
            raise self._failure_error()
        return finished

    # ------------------------------------------------------------------
    # The worker

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # nothing may end the worker unreported
            self._fail(exc)

    def _serve(self) -> None:
        grace = self._grace
        while True:
            with self.lock:
                batch = self._next_batch()
                if batch is None:
                    return
                request = self._gp_request
            # Waiting without the lock: producers keep queueing meanwhile, and
            # their callbacks get the next grace period's number.
            target = grace.next_target() if batch else request
            if grace.wait_for(target, None, abort=self._dropping):
                if batch:
                    self._invoke(batch)
                    self._release_reader()
            else:  # close(drain=False) abandoned the wait
                with self.lock:
                    self._drop(batch)

    def _dropping(self) -> bool:
        return self._state == _DROPPING

    def _failure_error(self) -> RcuError:
        """A new error for a call on a failed engine, caused by the worker's exception."""
        error = RcuError(self._failure_message)
        error.__cause__ = self._failure
        return error

    def _fail(self, exc: BaseException) -> None:
        """The worker's loop raised: enter ``_FAILED`` loudly (see the module docstring)."""
        with self.lock:
            items = (*self._running, *self._queue)
            lost = sum(1 for item in items if item[2] is not _BARRIER)
            # ORDER: the failure is recorded, and reported, before the drop
            # below wakes the barriers, which look at it when they wake.
            self._failure = exc
            self._failure_message = (
                f"the callback worker of RCU domain {self._name!r} failed "
                f"({type(exc).__name__}: {exc}); {lost} queued callback(s) could not run "
                "and were counted as dropped"
            )
            self._state = _FAILED
            self._worker = None
            self._worker_ident = None
            _print_error(
                exc,
                f"Exception in the callback worker of RCU domain {self._name!r} "
                f"({lost} callback(s) dropped; call_rcu, barrier and close now raise RcuError):",
            )
            self._drop(self._running)
            self._drop(self._queue)
            self._space.notify_all()

    def _next_batch(self) -> collections.deque[_Item] | None:
        """Wait for work (lock held); return a batch, ``[]`` for a polled request, or None."""
        while True:
            queue = self._queue
            if queue:
                if self._force or self._state != _OPEN or len(queue) >= self._batch_size:
                    break
                if self._batch_delay is None:
                    self._work.wait()
                    continue
                # At most batch_delay (<= LONGEST): a valid threading timeout.
                left = self._first_at + self._batch_delay - time.monotonic()
                if left <= 0:
                    break
                self._work.wait(left)
            elif self._gp_request > self._grace.completed:
                return collections.deque()
            elif self._state != _OPEN:
                self._state = _CLOSED
                self._worker = None
                self._worker_ident = None
                self._space.notify_all()
                return None
            else:
                self._work.wait()
        self._running = queue
        self._queue = collections.deque()
        self._force = False
        return queue

    def _invoke(self, batch: collections.deque[_Item]) -> None:
        counted = failed = 0
        try:
            # popleft, not iteration: a forked child sees exactly what is left.
            while batch:
                fn, args, kwargs = batch.popleft()
                if kwargs is _BARRIER:
                    fn()
                    continue
                counted += 1
                try:
                    fn(*args, **kwargs)
                except BaseException as exc:  # the worker must outlive any callback
                    failed += 1
                    self._report(exc, fn)
        finally:  # even if reporting failed: what ran is counted, the rest is in batch
            self._invoked += counted
            self._failed += failed
            with self.lock:
                self._pending -= counted
                self._space.notify_all()

    def _release_reader(self) -> None:
        """After a batch: the worker must not hold grace periods while it idles.

        A callback may have read (registering the worker as a reader): a
        qsbr worker goes offline; an epoch section a callback left open is
        reported and closed, or the worker would wait for itself.
        """
        reader = self._readers.current()
        if reader is None or not reader.ctr:
            return
        if reader.depth:
            self._report(
                ReadSectionError(f"an RCU callback left {reader.depth} read section(s) open"),
                self._release_reader,
            )
            for _ in range(reader.depth):
                reader.unlock()
        reader.offline()

    def _report(self, exc: BaseException, fn: Callable[..., object]) -> None:
        handler = self._on_error
        if handler is not None:
            try:
                handler(exc, fn)
            except BaseException as handler_exc:
                _print_error(handler_exc, self._about("on_error handler", handler))
            return
        _print_error(exc, self._about("RCU callback", fn))

    def _about(self, what: str, fn: object) -> str:
        return f"Exception in {what} {fn!r} of RCU domain {self._name!r}:"

    # ------------------------------------------------------------------
    # Shutdown, statistics, fork

    def close(self, drain: bool, deadline: float | None) -> bool:
        """Stop accepting callbacks; run (or drop) the queued ones; stop the worker.

        Returns False if ``deadline`` passed before the worker finished.
        Raises :class:`RcuError` if the worker failed (before or during the close).
        """
        with self.lock:
            if self._failure is not None:
                raise self._failure_error()
            if self._state == _OPEN:
                if not drain:
                    self._drop(self._queue)
                    # The polled request is abandoned too (its cookie stays
                    # valid: cond_synchronize() drives its grace period). Kept,
                    # it would send the worker back to a wait that aborts at
                    # once, again and again: a busy loop instead of an exit.
                    self._gp_request = 0
                if self._worker is None:
                    self._state = _CLOSED
                else:
                    self._state = _DRAINING if drain else _DROPPING
                self._force = True
                self._work.notify()
                self._space.notify_all()
            worker = self._worker
        if worker is None:
            return True
        if not drain:
            # ORDER: _DROPPING and the abandoned request are set under the
            # lock before the waiters are woken (outside it: the engine's
            # lock is never held with the grace periods' one): the woken
            # worker sees abort() true, then finds nothing left to wait for.
            self._grace.wake_waiters()
        worker.join(remaining(deadline))
        if self._failure is not None:
            raise self._failure_error()
        return not worker.is_alive()

    def _drop(self, items: collections.deque[_Item]) -> None:
        # Lock held. Barrier markers are run, not dropped: their waiters
        # must not hang on callbacks that will never run.
        dropped = 0
        for fn, _args, kwargs in items:
            if kwargs is _BARRIER:
                fn()
            else:
                dropped += 1
        items.clear()
        self._pending -= dropped
        self._dropped += dropped

    def counts(self) -> CallbackCounts:
        """A consistent snapshot of the engine's counters."""
        with self.lock:
            return CallbackCounts(
                queued=self._queued,
                invoked=self._invoked,
                failed=self._failed,
                dropped=self._dropped,
                pending=self._pending,
                peak_pending=self._peak_pending,
            )

    def before_fork(self) -> None:
        """Take the engine's lock (see rcu._lifecycle)."""
        self.lock.acquire()

    def after_fork_in_parent(self) -> None:
        """Release the engine's lock."""
        self.lock.release()

    def after_fork_in_child(self) -> None:
        """Forget the parent's worker; run what the parent had not run yet."""
        self._init_sync()
        if self._state == _FAILED:
            return  # nothing is left to run, and the child's calls raise as the parent's do
        if self.on_worker_thread():
            # Forked from a callback: this thread goes on as the child's
            # worker and runs the rest of its batch itself (not twice).
            # Barrier markers belong to waiters of the parent; drop them
            # (in place: the batch loop up the stack pops from _running).
            self._worker = threading.current_thread()
            for items in (self._queue, self._running):
                kept = [item for item in items if item[2] is not _BARRIER]
                items.clear()
                items.extend(kept)
            return
        # Barrier markers belong to waiters of the parent; drop them.
        leftover = [item for item in (*self._running, *self._queue) if item[2] is not _BARRIER]
        self._running = collections.deque()
        self._queue = collections.deque(leftover)
        self._pending = len(leftover)
        self._worker = None
        self._worker_ident = None
        if self._state in (_DRAINING, _DROPPING) and not leftover:
            self._state = _CLOSED
        if leftover or self._gp_request > self._grace.completed:
            self._force = True
            self._first_at = time.monotonic()
            self._start_worker()


def _print_error(exc: BaseException, header: str) -> None:
    """Report an exception the way ``threading.excepthook`` reports one."""
    stderr = sys.stderr
    if stderr is None:  # as threading.excepthook: no stream (pythonw, shutdown)
        return
    print(header, file=stderr)
    import traceback  # only to report an error: not worth importing with rcu

    traceback.print_exception(exc, file=stderr)
