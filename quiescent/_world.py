"""World and Vcpu: running sections, exclusive sections and kicks.

Why stop the world
------------------
RCU lets readers run while a writer waits for them to finish. Some changes
cannot wait that way: a translation cache that must be flushed while no vCPU
executes a translated block, or an update that touches every vCPU's private
state at once. For those, QEMU stops every vCPU at a *safe point* (a block
boundary, where it holds no reference into shared state), runs the change
alone, and lets the vCPUs go (``start_exclusive``/``end_exclusive`` in
``cpus-common.c``). This module is that protocol.

A vCPU marks the stretch between safe points with ``with cpu.running():``
(``cpu_exec_start``/``cpu_exec_end``). Entering and leaving must be nearly as
cheap as not marking at all: the uncontended path stores the vCPU's own
``_running`` flag and loads the world's ``_pending`` count, and takes no lock.

The protocol
------------
``_pending`` is 0 when no exclusive section is wanted. A thread that wants one
(under ``_lock``, after any earlier section has ended) stores ``_pending = 1``,
then reads every vCPU's ``_running``. Each vCPU it finds running gets
``_has_waiter = True`` and a kick, and ``_pending`` becomes one more than
their number. The thread then sleeps until ``_pending`` is back to 1.

A vCPU stores ``_running``, then loads ``_pending``; only if that is non-zero
does it take ``_lock`` (QEMU's three cases, restated):

* entering, and the starter saw ``_running`` (``_has_waiter`` is set): go on;
  the kick makes the vCPU leave soon, and leaving releases the starter;
* entering, and the starter did not see it: clear ``_running``, wait until
  ``_pending`` is 0, set ``_running`` again, all under the lock;
* leaving, with ``_has_waiter`` set: clear it, decrement ``_pending``, and
  wake the starter when it reaches 1. Leaving without it: nothing to do;
  if a section is pending, the next entry waits for it.

Both sides store before they load (``ORDER:`` comments below), so at least one
of them sees the other: either the starter sees ``_running`` and counts the
vCPU, or the vCPU sees ``_pending`` and takes the slow path. Neither can miss
both.

Nesting and ownership
---------------------
``_owner`` is the ident of the thread that holds (or is acquiring) the
exclusive section, ``_depth`` its nesting count; only that thread changes
them while it holds the section, so it can test ``_owner == me`` without the
lock. A thread inside its own section that enters ``running()`` would wait
for itself, as would ``exclusive()`` from a thread whose vCPU is running:
both raise :class:`QuiescentError` instead.

Locks, and their order
----------------------
1. ``World._lock`` (QEMU's ``qemu_cpu_list_lock``): guards ``_cpus``, every
   write of ``_pending``, ``_owner``, every vCPU's ``_has_waiter``, and the
   counters of unregistered vCPUs. ``_quiesced`` (the starter waits for
   ``_pending == 1``) and ``_resume`` (entering vCPUs and later starters wait
   for ``_pending == 0``) are conditions over it.
2. ``WorkQueue.lock`` (one per vCPU, see :mod:`quiescent._work`): a leaf.

No code path holds both: kicks are delivered after ``_lock`` is released.
No user code (kick functions, work, ``on_error``) runs under either lock.
``_worlds_lock`` guards the set of open worlds for the fork handler; it is
taken alone. The fork handler is the one path that holds several locks: every
open world's ``_lock``, in ``id`` order, across ``fork()``.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from _latency import LatencyWindow
from quiescent._stats import WorldStatistics
from quiescent._work import ASYNC, SAFE, SYNC, ErrorHandler, WorkItem, WorkQueue, print_error
from quiescent.errors import QuiescentError, QuiescentExitWarning, QuiescentStallWarning

__all__ = ["Vcpu", "World"]

#: Seconds an exclusive section waits for the vCPUs before it warns.
DEFAULT_STALL_TIMEOUT = 21.0

_get_ident = threading.get_ident
_perf_ns = time.perf_counter_ns


def _check_timeout(name: str, timeout: object, *, allow_zero: bool = True) -> float | None:
    """Seconds to wait, or None for no limit: ``None``, ``inf`` and anything too
    long for the platform's waits (``threading.TIMEOUT_MAX``, about 292 years)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"{name} must be a number or None, not {type(timeout).__name__}")
    # Compared, never converted first: an int too large for a float is fine.
    if timeout != timeout or timeout < 0 or (timeout == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>=' if allow_zero else '>'} 0, not {timeout!r}")
    if timeout >= threading.TIMEOUT_MAX:
        return None
    return float(timeout)


def _check_callable(name: str, fn: object) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be callable, not {type(fn).__name__}")


def _describe(fn: Callable[..., object]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class _ThreadSlot:
    """Lives in the world's thread-local storage: it dies with its thread.

    Its death is how the world learns that a vCPU thread exited without
    ``unregister()``.
    """

    __slots__ = ("__weakref__", "cpu")

    def __init__(self, cpu: Vcpu) -> None:
        self.cpu = cpu


class _SectionSlot:
    """Lives in the world's thread-local storage while its thread holds a section.

    If the thread exits without ``end_exclusive()``, the slot dies with it
    and its weakref callback ends the section (see ``World._watch_owner``).
    """

    __slots__ = ("__weakref__",)


class _Running:
    """The context manager of ``Vcpu.running()`` (one per vCPU, reused)."""

    __slots__ = ("_cpu",)

    def __init__(self, cpu: Vcpu) -> None:
        self._cpu = cpu

    def __enter__(self) -> None:
        cpu = self._cpu
        if cpu._running or cpu._ident != _get_ident():
            raise cpu._running_misuse()
        cpu._running = True
        # ORDER: store _running, then load _pending (cpu_exec_start). A starter
        # stores _pending, then loads _running: one of us sees the other.
        if cpu._world._pending:
            cpu._world._enter_slow(cpu)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cpu = self._cpu
        cpu._running = False
        # ORDER: store _running, then load _pending (cpu_exec_end).
        if cpu._world._pending:
            cpu._world._leave_slow(cpu)
        # ORDER: clear exit_requested, then (in process_work) read the queue.
        if cpu.exit_requested:
            cpu._clear_exit()


class _Exclusive:
    """The context manager of ``World.exclusive()``."""

    __slots__ = ("_timeout", "_world")

    def __init__(self, world: World, timeout: float | None) -> None:
        self._world = world
        self._timeout = timeout

    def __enter__(self) -> None:
        self._world.start_exclusive(self._timeout)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._world.end_exclusive()


class Vcpu:
    """One virtual CPU of a :class:`World`: a thread that runs guest code.

    Obtained from :meth:`World.register` on the thread it represents. Only
    that thread may call :meth:`running`, :meth:`process_work` and
    :meth:`unregister`; any thread may queue work on it.

    ``exit_requested`` is True once the vCPU has been kicked: a vCPU checks it
    at every block boundary inside :meth:`running` and leaves when it is set.
    It is cleared as the vCPU leaves :meth:`running`. Treat it as read-only.
    """

    __slots__ = (
        "__weakref__",
        "_has_waiter",
        "_ident",
        "_kick_fn",
        "_kicks",
        "_queue",
        "_running",
        "_section",
        "_waited_ns",
        "_wake",
        "_watch",
        "_world",
        "exit_requested",
        "name",
        "thread",
    )

    def __init__(
        self,
        world: World,
        name: str,
        kick: Callable[[], object] | None,
        thread: threading.Thread,
    ) -> None:
        self._world = world
        self.name = name
        self.thread = thread
        self._kick_fn = kick
        # The owner thread's ident; None once unregistered.
        self._ident: int | None = thread.ident
        # Written by the owner thread only.
        self._running = False
        # Under World._lock.
        self._has_waiter = False
        # Written by the owner thread only: time spent waiting to enter running().
        self._waited_ns = 0
        self._queue = WorkQueue(name)
        # Under self._queue.lock.
        self.exit_requested = False
        self._kicks = 0
        # Set when work is queued on this vCPU and when a run_sync() it made
        # finishes: what its thread waits on inside its own run_sync(). Its
        # internal lock is a leaf: set() and wait() take no other.
        self._wake = threading.Event()
        self._section = _Running(self)
        # Watches the thread-local slot that dies with the thread. Kept here,
        # not in the thread-local storage: a weak reference that dies together
        # with its referent never calls back.
        self._watch: weakref.ref[_ThreadSlot] | None = None

    def __repr__(self) -> str:
        state = "running" if self._running else "registered" if self._ident else "unregistered"
        return f"<quiescent.Vcpu {self.name!r} {state}>"

    @property
    def registered(self) -> bool:
        """True until :meth:`unregister` (or the thread's exit)."""
        return self._ident is not None

    def running(self) -> AbstractContextManager[None]:
        """``with cpu.running():`` marks the stretch between two safe points.

        On entry the vCPU waits while an exclusive section is pending or in
        progress; while it is inside, no exclusive section starts. Not
        nestable; only on the vCPU's own thread.
        """
        return self._section

    def _running_misuse(self, what: str = "running()") -> QuiescentError:
        """The error of calling ``what`` (an owner-thread-only method) where it cannot run."""
        if self._ident is None:
            return QuiescentError(f"{what} of vCPU {self.name!r}: the vCPU is unregistered")
        if self._ident != _get_ident():
            return QuiescentError(
                f"{what} of vCPU {self.name!r} from thread "
                f"{threading.current_thread().name!r}, not its own thread"
            )
        return QuiescentError(f"vCPU {self.name!r} is already inside running()")

    # ------------------------------------------------------------------
    # Kicks and work

    def _kick(self) -> None:
        with self._queue.lock:
            self.exit_requested = True
            self._kicks += 1
        # ORDER: set exit_requested, then call the kick function: a vCPU that
        # the kick function wakes finds the flag (and any work queued before).
        if self._kick_fn is not None:
            self._kick_fn()

    def _clear_exit(self) -> None:
        with self._queue.lock:
            self.exit_requested = False

    def _queue_item(self, item: WorkItem) -> None:
        with self._queue.lock:
            self._queue.put(item)
            self.exit_requested = True
            self._kicks += 1
        # ORDER: append and set exit_requested (under the queue lock), then call
        # the kick function; the vCPU clears the flag before it reads the queue.
        if self._kick_fn is not None:
            self._kick_fn()
        self._wake.set()  # a thread waiting in its own run_sync() serves the queue

    def process_work(self) -> int:
        """Run the work queued on this vCPU, in order; return how many items ran.

        Call it at the safe point of the vCPU's loop, outside :meth:`running`,
        on the vCPU's own thread. Items queued meanwhile run too.
        """
        if self._ident != _get_ident():
            raise self._running_misuse("process_work()")
        if self._running:
            raise QuiescentError(f"process_work() inside running() of vCPU {self.name!r}")
        if not self._queue.has_items():
            return 0
        return self._queue.process(self._world.exclusive, self._world._report)

    def _check_caller_can_wait(self, what: str) -> None:
        world = self._world
        me: Vcpu | None = getattr(world._local, "cpu", None)
        if me is not None and me._running:
            raise QuiescentError(
                f"{what} on vCPU {self.name!r} from inside running() of vCPU {me.name!r} "
                "could wait for an exclusive section that waits for the caller"
            )
        if world._owner == _get_ident():
            raise QuiescentError(
                f"{what} on vCPU {self.name!r} inside an exclusive section: "
                "the vCPU cannot run work until the section ends"
            )

    def run_sync(self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None) -> Any:
        """Run ``fn(*args)`` on this vCPU's thread and return its result.

        The vCPU is kicked and runs ``fn`` at its next safe point; the caller
        waits and gets the result, or the exception ``fn`` raised. Called on
        the vCPU's own thread, ``fn`` runs at once. Raises ``TimeoutError``
        after ``timeout`` seconds (``None`` or ``math.inf``: no limit): if
        ``fn`` had not started it never will; if it had, it runs to
        completion and its result is discarded. The same holds if anything
        else ends the wait (``KeyboardInterrupt``): work whose outcome the
        caller cannot see never starts afterwards.
        Raises :class:`QuiescentError` from inside ``running()`` of another
        vCPU or inside an exclusive section, where waiting could deadlock.
        """
        _check_callable("fn", fn)
        wait = _check_timeout("timeout", timeout)
        if self._ident == _get_ident():
            return fn(*args)
        self._check_caller_can_wait("run_sync()")
        item = WorkItem(SYNC, fn, args)
        me: Vcpu | None = getattr(self._world._local, "cpu", None)
        if me is not None:
            # The caller is a vCPU too: it serves its own queue while it
            # waits, or two vCPUs that run_sync() each other wait forever.
            item.done = me._wake
            self._queue_item(item)
            return me._serve_until(item, fn, self, wait, timeout)
        self._queue_item(item)
        done = item.done
        assert done is not None
        try:
            finished = done.wait(wait)
        except BaseException:
            # KeyboardInterrupt or the like while waiting: the caller will
            # never see the outcome, so the work must not run later.
            self._queue.cancel(item)
            raise
        if not finished:
            if self._queue.cancel(item):
                raise TimeoutError(
                    f"{_describe(fn)} did not start on vCPU {self.name!r} within "
                    f"{timeout} s; it will not run"
                )
            if not done.wait(0):
                raise TimeoutError(
                    f"{_describe(fn)} did not finish on vCPU {self.name!r} within {timeout} s"
                )
        if item.error is not None:
            raise item.error
        return item.result

    def _serve_until(
        self,
        item: WorkItem,
        fn: Callable[..., Any],
        target: Vcpu,
        wait: float | None,
        timeout: float | None,
    ) -> Any:
        """On this vCPU's thread: run its own work until ``item`` (queued elsewhere) ends."""
        try:
            return self._serve_loop(item, fn, target, wait, timeout)
        except BaseException:
            # Whatever ends the wait early (an interrupt, an error of the
            # caller's own work): the work must not run later unseen.
            target._queue.cancel(item)
            raise

    def _serve_loop(
        self,
        item: WorkItem,
        fn: Callable[..., Any],
        target: Vcpu,
        wait: float | None,
        timeout: float | None,
    ) -> Any:
        deadline = None if wait is None else time.monotonic() + wait
        wake = self._wake
        while True:
            # ORDER: clear, then check: a set() after the check wakes the wait.
            wake.clear()
            if item.finished():
                break
            if self._queue.has_items():
                self.process_work()
                continue
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                if target._queue.cancel(item):
                    raise TimeoutError(
                        f"{_describe(fn)} did not start on vCPU {target.name!r} within "
                        f"{timeout} s; it will not run"
                    )
                if not item.finished():
                    raise TimeoutError(
                        f"{_describe(fn)} did not finish on vCPU {target.name!r} within {timeout} s"
                    )
                break
            wake.wait(remaining)
        if item.error is not None:
            raise item.error
        return item.result

    def run_async(self, fn: Callable[..., object], /, *args: Any) -> None:
        """Queue ``fn(*args)`` to run on this vCPU's thread at its next safe point.

        Returns at once. An exception from ``fn`` goes to the world's
        ``on_error`` handler.
        """
        _check_callable("fn", fn)
        self._queue_item(WorkItem(ASYNC, fn, args))

    def run_safe(self, fn: Callable[..., object], /, *args: Any) -> None:
        """Queue ``fn(*args)`` to run on this vCPU's thread inside an exclusive section.

        Returns at once. While ``fn`` runs no vCPU of the world is inside
        ``running()``. An exception from ``fn`` goes to ``on_error``.
        """
        _check_callable("fn", fn)
        self._queue_item(WorkItem(SAFE, fn, args))

    def unregister(self) -> None:
        """Run this vCPU's queued work, then remove it from its world.

        Only on the vCPU's own thread, outside ``running()``. Work queued
        after this returns raises :class:`QuiescentError` at the call.
        """
        if self._ident != _get_ident():
            raise self._running_misuse("unregister()")
        if self._running:
            raise QuiescentError(f"unregister() inside running() of vCPU {self.name!r}")
        world = self._world
        self._queue.process(world.exclusive, world._report, close_when_empty=True)
        world._remove(self)


class World:
    """A set of vCPUs and the exclusive sections that stop them.

    name
        Shown in messages and warnings.
    stall_timeout
        Seconds after which an exclusive section that still waits for vCPUs
        to leave ``running()`` warns with :class:`QuiescentStallWarning`,
        naming them (and again every ``stall_timeout``). ``None`` or
        ``math.inf`` (or anything beyond ``threading.TIMEOUT_MAX``): never.
    on_error
        Called as ``on_error(exc, fn)`` on the vCPU's thread when work queued
        with ``run_async`` or ``run_safe`` raises. By default the error is
        printed like an uncaught thread exception.
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        on_error: ErrorHandler | None = None,
    ) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {type(name).__name__}")
        self._stall_timeout = _check_timeout("stall_timeout", stall_timeout, allow_zero=False)
        if on_error is not None:
            _check_callable("on_error", on_error)
        self.name = name if name is not None else f"world-{id(self):x}"
        self._on_error = on_error
        # Lock 1 of the order in the module docstring (QEMU's
        # qemu_cpu_list_lock): guards _cpus, every write of _pending, _owner,
        # _owner_watch, every vCPU's _has_waiter and the counters below. Never
        # held while a WorkQueue.lock is taken or a kick is delivered.
        self._lock = threading.Lock()
        # Conditions over _lock: the starter waits for _pending == 1, entering
        # vCPUs and later starters for _pending == 0.
        self._quiesced = threading.Condition(self._lock)
        self._resume = threading.Condition(self._lock)
        self._pending = 0
        self._cpus: dict[Vcpu, None] = {}  # insertion-ordered set
        self._next_index = 0
        self._owner: int | None = None
        self._depth = 0  # the owner's nesting count
        self._started_ns = 0  # written by the owner only
        # The owner's section slot, to end a section whose thread died in it
        # (written under _lock; see _watch_owner).
        self._owner_watch: weakref.ref[_SectionSlot] | None = None
        self._local = threading.local()
        self._exclusive = _Exclusive(self, None)
        # Under _lock:
        self._sections = 0
        self._retired_kicks = 0
        self._retired_work = 0
        self._retired_errors = 0
        self._quiesce_window = LatencyWindow()
        self._pause_window = LatencyWindow()
        self._pid = os.getpid()
        with _worlds_lock:
            _worlds.add(self)

    def __repr__(self) -> str:
        return f"<quiescent.World {self.name!r} vcpus={len(self._cpus)}>"

    # ------------------------------------------------------------------
    # vCPUs

    def register(self, name: str | None = None, kick: Callable[[], object] | None = None) -> Vcpu:
        """Register the calling thread as a vCPU of this world and return it.

        ``kick`` is called (from any thread, with no lock held) to make the
        vCPU leave guest code or wake it from an idle wait; it must not block.
        ``exit_requested`` is set before it is called. A thread registers at
        most once per world.
        """
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {type(name).__name__}")
        if kick is not None:
            _check_callable("kick", kick)
        current: Vcpu | None = getattr(self._local, "cpu", None)
        if current is not None:
            raise QuiescentError(
                f"thread {threading.current_thread().name!r} is already vCPU "
                f"{current.name!r} of {self.name!r}"
            )
        with self._lock:
            index = self._next_index
            self._next_index += 1
        cpu = Vcpu(
            self, name if name is not None else f"vcpu{index}", kick, threading.current_thread()
        )
        slot = _ThreadSlot(cpu)
        cpu._watch = weakref.ref(slot, _exit_watcher(weakref.ref(self), cpu))
        self._local.slot = slot
        self._local.cpu = cpu
        with self._lock:
            # A vCPU starts outside running(): a pending section need not wait for it.
            self._cpus[cpu] = None
        return cpu

    def current(self) -> Vcpu | None:
        """The calling thread's vCPU in this world, or None."""
        cpu: Vcpu | None = getattr(self._local, "cpu", None)
        return cpu

    def vcpus(self) -> list[Vcpu]:
        """The registered vCPUs, in registration order."""
        with self._lock:
            return list(self._cpus)

    def _remove(self, cpu: Vcpu) -> None:
        """Forget ``cpu`` (on its own thread, after its queue is closed)."""
        with self._lock:
            if cpu in self._cpus:
                del self._cpus[cpu]
                self._retired_kicks += cpu._kicks
                self._retired_work += cpu._queue.executed
                self._retired_errors += cpu._queue.failed
        cpu._ident = None
        # The watch first: dropping the slot must not look like an exit.
        cpu._watch = None
        if getattr(self._local, "cpu", None) is cpu:
            del self._local.slot, self._local.cpu

    def _forget_exited(self, cpu: Vcpu) -> None:
        """``cpu``'s thread exited without ``unregister()``: clean up after it."""
        if self._pid != os.getpid():
            return  # a thread of the parent, cleaned up in a forked child
        cpu._queue.close_and_cancel(f"vCPU {cpu.name!r} exited before running this work")
        if cpu._running:
            # Abandoned inside running() (an __enter__ without its __exit__):
            # leave on its behalf, as its own thread would have.
            cpu._running = False
            if self._pending:
                self._leave_slow(cpu)
        self._remove(cpu)

    def _report(self, exc: BaseException, fn: Callable[..., object]) -> None:
        handler = self._on_error
        if handler is not None:
            try:
                handler(exc, fn)
            except BaseException as handler_exc:
                print_error(handler_exc, handler, f"on_error handler of {self.name!r}")
            return
        print_error(exc, fn, f"work of {self.name!r}")

    # ------------------------------------------------------------------
    # The slow paths of running()

    def _enter_slow(self, cpu: Vcpu) -> None:
        with self._lock:
            if cpu._has_waiter:
                # Counted by the starter, which kicked us: run until the kick
                # is noticed; leaving releases the starter.
                return
            if self._owner == _get_ident():
                cpu._running = False
                raise QuiescentError(
                    f"running() of vCPU {cpu.name!r} inside an exclusive section held "
                    "by the same thread would wait for itself"
                )
            # Not counted: let the section run first. _running is set again
            # under the lock with _pending == 0, so the next starter sees it.
            cpu._running = False
            start = _perf_ns()
            while self._pending:
                self._resume.wait()
            cpu._running = True
            cpu._waited_ns += _perf_ns() - start

    def _leave_slow(self, cpu: Vcpu) -> None:
        with self._lock:
            if cpu._has_waiter:
                cpu._has_waiter = False
                self._pending -= 1
                if self._pending == 1:
                    self._quiesced.notify()

    # ------------------------------------------------------------------
    # Exclusive sections

    def exclusive(self, timeout: float | None = None) -> AbstractContextManager[None]:
        """``with world.exclusive():`` is ``start_exclusive()`` ... ``end_exclusive()``."""
        if timeout is None:
            return self._exclusive
        _check_timeout("timeout", timeout)
        return _Exclusive(self, timeout)

    def start_exclusive(self, timeout: float | None = None) -> None:
        """Wait until no vCPU is inside ``running()``, and keep them out.

        Sections are exclusive: a second thread waits until the first ends.
        Nestable on one thread (each call needs its ``end_exclusive()``).
        Raises :class:`QuiescentError` on a thread whose vCPU is inside
        ``running()``: it would wait for itself. With a ``timeout`` (seconds)
        it gives up after that long, lets every vCPU go on, and raises
        ``TimeoutError`` naming the vCPUs that did not stop, with their stacks
        (``None`` or ``math.inf``: no limit).

        After ``os.fork()`` in a thread that holds a section, the child's
        thread still holds it (with its nesting) and ends it as usual; other
        sections do not exist in the child.
        """
        wait = _check_timeout("timeout", timeout)
        deadline = None if wait is None else time.monotonic() + wait
        me = _get_ident()
        if self._owner == me:
            self._depth += 1
            return
        cpu: Vcpu | None = getattr(self._local, "cpu", None)
        if cpu is not None and cpu._running:
            raise QuiescentError(
                f"exclusive section from inside running() of vCPU {cpu.name!r} "
                "would wait for itself"
            )
        waited: list[Vcpu] = []
        with self._lock:
            while self._pending:
                if deadline is None:
                    self._resume.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(
                            f"another exclusive section of {self.name!r} did not end "
                            f"within {timeout} s"
                        )
                    self._resume.wait(remaining)
            start = _perf_ns()
            self._pending = 1
            # ORDER: store _pending, then load every _running (start_exclusive).
            # A vCPU stores _running, then loads _pending: one of us sees the other.
            for other in self._cpus:
                if other._running:
                    other._has_waiter = True
                    waited.append(other)
            self._pending = len(waited) + 1
            self._owner = me
            self._depth = 1
        try:
            for other in waited:
                other._kick()
            self._wait_quiesced(deadline, timeout)
        except BaseException:
            self._abort(waited)
            raise
        self._started_ns = start
        self._quiesce_window.add(_perf_ns() - start)
        self._watch_owner()

    def _watch_owner(self) -> None:
        """End this section on its owner's behalf if the owner's thread exits in it.

        The slot lives in this thread's local storage; when the thread dies
        the slot is collected and the callback runs. ``_owner_watch`` tells a
        live watch from one that ``end_exclusive`` dropped (dropping the slot
        runs the callback too).
        """
        slot = _SectionSlot()
        world = weakref.ref(self)
        owner = _get_ident()

        def on_exit(ref: weakref.ref[_SectionSlot]) -> None:
            w = world()
            # A forked child drops the parent's other threads before its
            # at-fork hook replaces the lock the parent held across fork():
            # such a callback must not touch the lock (the pid tells).
            if w is not None and w._pid == os.getpid() and w._owner_watch is ref:
                w._end_abandoned(owner)

        with self._lock:
            self._owner_watch = weakref.ref(slot, on_exit)
        self._local.section = slot

    def _end_abandoned(self, owner: int) -> None:
        """The owner's thread exited inside its section: end it and warn."""
        with self._lock:
            if self._owner != owner or self._owner_watch is None:
                return
            self._end_locked()
        warnings.warn(
            QuiescentExitWarning(
                f"a thread exited inside an exclusive section of {self.name!r}; "
                "the section was ended on its behalf"
            ),
            stacklevel=2,
        )

    def _wait_quiesced(self, deadline: float | None, timeout: float | None) -> None:
        stall = self._stall_timeout
        started = time.monotonic()
        stall_at = None if stall is None else started + stall
        with self._lock:
            while self._pending > 1:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    raise TimeoutError(
                        f"exclusive section of {self.name!r}: vCPUs did not leave running() "
                        f"within {timeout} s:\n{self._describe_holdouts()}"
                    )
                if stall_at is not None and now >= stall_at:
                    warnings.warn(
                        QuiescentStallWarning(
                            f"exclusive section of {self.name!r} has waited "
                            f"{now - started:.1f} s for vCPUs to leave running():\n"
                            f"{self._describe_holdouts()}"
                        ),
                        stacklevel=4,
                    )
                    assert stall is not None
                    stall_at = now + stall
                wake_at = [t for t in (deadline, stall_at) if t is not None]
                self._quiesced.wait(min(wake_at) - now if wake_at else None)

    def _describe_holdouts(self) -> str:
        """Name and current stack of every vCPU a section waits for (under ``_lock``)."""
        # The collector held off: on CPython 3.11 a collection triggered inside
        # sys._current_frames() can hang the interpreter (gh-106883).
        enabled = gc.isenabled()
        gc.disable()
        try:
            frames = sys._current_frames()
        finally:
            if enabled:
                gc.enable()
        import traceback  # only for a stall report: not worth importing with quiescent

        parts = []
        for cpu in self._cpus:
            if not cpu._has_waiter:
                continue
            frame = frames.get(cpu.thread.ident or -1)
            stack = (
                "".join(traceback.format_stack(frame)) if frame is not None else "  (no stack)\n"
            )
            parts.append(f"vCPU {cpu.name!r} (thread {cpu.thread.name!r}):\n{stack}")
        return "".join(parts)

    def _abort(self, waited: list[Vcpu]) -> None:
        """Give up a section that has not started (a kick or a wait raised)."""
        with self._lock:
            for cpu in waited:
                cpu._has_waiter = False
            self._owner = None
            self._depth = 0
            self._pending = 0
            self._resume.notify_all()

    def end_exclusive(self) -> None:
        """End the exclusive section this thread holds; vCPUs may run again."""
        if self._owner != _get_ident():
            raise QuiescentError(
                f"end_exclusive() on thread {threading.current_thread().name!r}, "
                f"which holds no exclusive section of {self.name!r}"
            )
        if self._depth > 1:
            self._depth -= 1
            return
        started = self._started_ns
        with self._lock:
            # ORDER: drop the watch (here) before the slot, whose death runs
            # its callback: the callback must see a stale watch and do nothing.
            self._end_locked()
        self._local.section = None
        self._pause_window.add(_perf_ns() - started)

    def _end_locked(self) -> None:
        """End the current section (``_lock`` held): vCPUs and starters may go on."""
        self._owner_watch = None
        self._owner = None
        self._depth = 0
        self._sections += 1
        self._pending = 0
        self._resume.notify_all()

    def in_exclusive(self) -> bool:
        """True if the calling thread holds an exclusive section of this world."""
        return self._owner == _get_ident()

    # ------------------------------------------------------------------
    # Statistics

    def statistics(self) -> WorldStatistics:
        """A frozen snapshot of this world's counters and latencies."""
        with self._lock:
            cpus = list(self._cpus)
            sections = self._sections
            kicks = self._retired_kicks
            work = self._retired_work
            errors = self._retired_errors
        return WorldStatistics(
            vcpus=len(cpus),
            exclusive_sections=sections,
            kicks=kicks + sum(cpu._kicks for cpu in cpus),
            work_items=work + sum(cpu._queue.executed for cpu in cpus),
            work_errors=errors + sum(cpu._queue.failed for cpu in cpus),
            time_to_quiesce=self._quiesce_window.percentiles(),
            pause=self._pause_window.percentiles(),
            waiting=tuple((cpu.name, cpu._waited_ns / 1e9) for cpu in cpus),
        )


def _exit_watcher(
    world_ref: weakref.ref[World], cpu: Vcpu
) -> Callable[[weakref.ref[_ThreadSlot]], None]:
    """The weakref callback that cleans up after ``cpu`` when its thread dies."""

    def on_exit(_slot: weakref.ref[_ThreadSlot]) -> None:
        world = world_ref()
        if world is not None and cpu._ident is not None:
            world._forget_exited(cpu)

    return on_exit


# ----------------------------------------------------------------------
# Fork: the child has one thread. Every world's lock is taken across the
# fork (so no state is half-changed), then the child starts over with fresh
# locks and only the forking thread's vCPU. A section the forking thread
# holds stays held (it ends with the child's end_exclusive()); any other
# section, pending or held by a thread the child does not have, is gone.

_worlds: weakref.WeakSet[World] = weakref.WeakSet()
# Guards _worlds. A leaf: taken alone, and released before the fork handler
# takes the worlds' locks.
_worlds_lock = threading.Lock()
_forking: list[World] = []


def _before_fork() -> None:
    with _worlds_lock:
        _forking[:] = sorted(_worlds, key=id)
    for world in _forking:
        world._lock.acquire()


def _after_fork_in_parent() -> None:
    for world in reversed(_forking):
        world._lock.release()
    _forking.clear()


def _after_fork_in_child() -> None:
    me = threading.current_thread()
    ident = _get_ident()
    for world in _forking:
        world._pid = os.getpid()
        # Fresh locks with the roles and order of those in World.__init__ and
        # WorkQueue.__init__: the parent's are held by the forking thread.
        world._lock = threading.Lock()
        world._quiesced = threading.Condition(world._lock)
        world._resume = threading.Condition(world._lock)
        if world._owner == ident:
            # The forking thread holds a section: the child keeps it, with
            # its nesting and its watch (as rcu keeps a forking thread's read
            # section). No other vCPU is left to wait for.
            world._pending = 1
        else:
            world._pending = 0
            world._owner = None
            world._owner_watch = None
            world._depth = 0
        kept = {cpu: None for cpu in world._cpus if cpu.thread is me}
        for cpu in kept:
            cpu._queue.lock = threading.Lock()
            cpu._has_waiter = False
        world._cpus = kept
    _forking.clear()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
