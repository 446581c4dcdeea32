"""Per-vCPU work queues: ``run_sync``, ``run_async`` and ``run_safe``.

Why queue work on a vCPU
------------------------
Some changes must happen on a particular vCPU's thread: its private state
(a TLB, a translation-block jump cache) has one writer, and that writer is
its own thread. Another thread that wants such a change does not touch the
state; it queues a function on the vCPU and kicks it. The vCPU leaves guest
code at its next block boundary, and at the safe point of its loop (outside
``running()``) runs what is queued, in order, each item exactly once (QEMU's
``run_on_cpu``, ``async_run_on_cpu`` and ``process_queued_cpu_work``).

Three kinds of item:

``run_sync``
    The caller waits for the result (or the exception) of the function.
``run_async``
    The caller returns at once; an exception goes to the world's
    ``on_error`` handler.
``run_safe``
    Asynchronous, and the function runs inside an exclusive section: while it
    runs no vCPU is inside ``running()`` (QEMU's ``async_safe_run_on_cpu``).
    The vCPU runs it outside ``running()``, so it can start that section
    without waiting for itself.

Not losing a kick
-----------------
The queuer appends the item, *then* kicks (sets the vCPU's
``exit_requested`` and calls its kick function). The vCPU clears
``exit_requested`` as it leaves ``running()``, *then* looks at the queue. If
the append came after the look, the kick came after the clear: the flag is
still set and the vCPU comes back at its next block boundary. Both sides
write the flag under the queue's lock, so there is one order to reason about.

Lock
----
``lock`` (one per vCPU) guards ``_items``, ``_closed``, every item's
``state``, and the owning vCPU's ``exit_requested`` and kick count. It is a
leaf: nothing else is ever taken while it is held, and no user code runs
under it. Items run with it released, so a function may queue more work,
even on its own vCPU.

Item states (``state``, under ``lock``): ``QUEUED`` -> ``RUNNING`` ->
``DONE``; or ``QUEUED`` -> ``CANCELLED`` (a ``run_sync`` that timed out
before its item started, or a vCPU whose thread exited): a cancelled item
never runs.
"""

from __future__ import annotations

import collections
import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from quiescent.errors import QuiescentError

__all__ = ["ErrorHandler", "WorkItem", "WorkQueue"]

ErrorHandler = Callable[[BaseException, Callable[..., object]], object]

SYNC, ASYNC, SAFE = "sync", "async", "safe"
QUEUED, RUNNING, DONE, CANCELLED = 0, 1, 2, 3


class WorkItem:
    """One queued function call and, for ``run_sync``, its outcome."""

    __slots__ = ("args", "done", "error", "fn", "kind", "result", "state")

    def __init__(self, kind: str, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.kind = kind
        self.fn = fn
        self.args = args
        self.state = QUEUED
        # Only synchronous callers wait; the event is set once the outcome is
        # stored. Its internal lock is a leaf: set() and wait() take no other.
        self.done = threading.Event() if kind == SYNC else None
        self.result: object = None
        self.error: BaseException | None = None

    def finished(self) -> bool:
        """Has the outcome been stored (run, or cancelled by an unregistering vCPU)?"""
        # _finish stores DONE and close_and_cancel stores the error before
        # either sets ``done``: a waiter woken by it sees them.
        return self.state == DONE or (self.state == CANCELLED and self.error is not None)


class WorkQueue:
    """The queue of one vCPU. ``process`` runs on that vCPU's thread only."""

    __slots__ = ("_closed", "_items", "executed", "failed", "lock", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        # Guards _items, _closed, every item's state, and the owning vCPU's
        # exit_requested and kick count. Lock order: 2 of 2 in quiescent (see
        # quiescent._world), a leaf: nothing is taken while it is held.
        self.lock = threading.Lock()
        self._items: collections.deque[WorkItem] = collections.deque()
        self._closed = False
        # Written by the owner thread only: items that have run, and those of
        # them (asynchronous or safe) whose exception went to the error handler.
        self.executed = 0
        self.failed = 0

    def put(self, item: WorkItem) -> None:
        """Append ``item`` (the caller holds ``lock``); raise if the vCPU is gone."""
        if self._closed:
            raise QuiescentError(f"vCPU {self.name!r} is unregistered: it accepts no work")
        self._items.append(item)

    def has_items(self) -> bool:
        """A hint without the lock: True if something may be queued."""
        return bool(self._items)

    def process(
        self,
        exclusive: Callable[[], AbstractContextManager[None]],
        report: ErrorHandler,
        *,
        close_when_empty: bool = False,
    ) -> int:
        """Run every queued item in order; return how many ran.

        Safe items run inside ``exclusive()``. Items queued while this runs
        are run too. With ``close_when_empty`` the queue is closed, under the
        lock, at the moment it is found empty: nothing can be queued after.
        """
        ran = 0
        while True:
            with self.lock:
                item = None
                while self._items:
                    candidate = self._items.popleft()
                    if candidate.state == QUEUED:
                        candidate.state = RUNNING
                        item = candidate
                        break
                if item is None:
                    if close_when_empty:
                        self._closed = True
                    return ran
            self._run(item, exclusive, report)
            ran += 1

    def _run(
        self,
        item: WorkItem,
        exclusive: Callable[[], AbstractContextManager[None]],
        report: ErrorHandler,
    ) -> None:
        try:
            if item.kind == SAFE:
                with exclusive():
                    item.result = item.fn(*item.args)
            else:
                item.result = item.fn(*item.args)
        except BaseException as exc:
            item.error = exc
            if item.done is None:
                self.failed += 1
                report(exc, item.fn)
            if not isinstance(exc, Exception):
                # KeyboardInterrupt, SystemExit: the waiter gets it too, and
                # the vCPU's thread stops processing.
                self._finish(item)
                raise
        self._finish(item)

    def _finish(self, item: WorkItem) -> None:
        with self.lock:
            item.state = DONE
        self.executed += 1
        if item.done is not None:
            item.done.set()

    def cancel(self, item: WorkItem) -> bool:
        """Cancel ``item`` if it has not started; True if it will never run."""
        with self.lock:
            if item.state == QUEUED:
                item.state = CANCELLED
                return True
            return False

    def close_and_cancel(self, why: str) -> int:
        """Close the queue and cancel what is queued; waiters get ``QuiescentError``."""
        with self.lock:
            self._closed = True
            items = list(self._items)
            self._items.clear()
            cancelled = [item for item in items if item.state == QUEUED]
            for item in cancelled:
                item.state = CANCELLED
        for item in cancelled:
            if item.done is not None:
                item.error = QuiescentError(why)
                item.done.set()
        return len(cancelled)


def print_error(exc: BaseException, fn: Callable[..., object], where: str) -> None:
    """Report an exception the way ``threading.excepthook`` reports one."""
    name = getattr(fn, "__qualname__", None) or repr(fn)
    print(f"Exception in {where} {name}:", file=sys.stderr)
    import traceback  # only to report an error: not worth importing with quiescent

    traceback.print_exception(exc, file=sys.stderr)
