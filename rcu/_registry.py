"""The reader registry: which threads of a domain read, and each one's record.

Why a registry
--------------
A grace period waits for the readers that were inside a section when it
began, so it must be able to name them: every thread that reads has a record
(:mod:`rcu._reader`), and the registry is the set of them. It also answers
the read side's most frequent question, "which record is this thread's?",
without a lock: through a ``threading.local`` (``local``) in pure Python, or
through the thread state's dict in C (``fast_lookup``, an
``rcu._native.ReaderLookup`` over the entries that ``set_current`` writes).

Invariants
----------
* A thread has at most one record per registry; it is created on the
  thread's first read (or ``register_thread``) and leaves at
  ``unregister_thread`` or when the thread exits (a weak reference to a
  per-thread slot in the thread-local storage dies with the thread).
* ``_records`` changes only under ``_lock``, and a grace period takes its
  snapshot under it (``snapshot``): a reader that registers meanwhile is in
  the snapshot or registers after the counter's bump.
* A record that leaves stops holding up grace periods at once (its ``ctr``
  is cleared, a driver waiting for it is signalled) and its handle fails
  loudly from then on (``_gp`` becomes ``UNREGISTERED``).
* One writer per field: a record's ``ctr``, ``depth`` and ``stepped`` are
  written by its owner thread, or here once the owner is dead or is the
  caller; ``local``'s entries by their own thread; ``_records`` and
  ``_past_handoffs`` under ``_lock``; ``_pid`` only by the fork handler in
  the child (which also clears the forking thread's ``waiting``: the driver
  that set it is not in the child).

Lock: ``_lock``, rank 3 (``REGISTRY``) of the rcu lock order
(:mod:`rcu._lifecycle`).
"""

from __future__ import annotations

import os
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from rcu import _lifecycle
from rcu._reader import HOLDOUT, NOT_WAITING, UNREGISTERED, GracePeriodState, Reader, native
from rcu.errors import ReaderExitWarning, ReadSectionError

__all__ = ["ReaderCounts", "Registry"]

_T = TypeVar("_T")


class ReaderCounts(NamedTuple):
    """The registry's share of a domain's statistics."""

    readers: int
    handoffs: int
    handoff_ns: int


class _ThreadSlot:
    """Lives in the registry's thread-local storage: it dies with its thread.

    Its death is how the registry learns that a registered thread exited.
    """

    __slots__ = ("__weakref__", "reader")

    def __init__(self, reader: Reader) -> None:
        self.reader = reader


class Registry:
    """The reader records of one domain, and this thread's lookup of its own."""

    def __init__(
        self, name: str, reader_class: type[Reader], state: GracePeriodState, *, qsbr: bool
    ) -> None:
        self._name = name
        self._reader_class = reader_class
        self._state = state
        self._qsbr = qsbr  # a new record is online at once
        #: This thread's record is ``local.reader`` (absent: not registered).
        #: Written by :meth:`register` and :meth:`unregister` on the thread
        #: itself; the pure-Python read path reads it directly.
        self.local = threading.local()
        #: With the C extension: this thread's record, registering the thread
        #: on first use, looked up in the thread state's dict; else None.
        self.fast_lookup: Callable[[], Reader] | None = None
        if native is not None:
            self._key = object()  # this registry's key in every thread state's dict
            self.fast_lookup = native.ReaderLookup(self._key, self.register)
        # Rank 3 of the rcu lock order (rcu._lifecycle): guards _records and
        # _past_handoffs.
        self._lock = threading.Lock()
        # reader -> the weak reference that watches its thread's exit
        self._records: dict[Reader, weakref.ref[_ThreadSlot]] = {}
        # Step-aside counters (count, ns) of readers no longer registered.
        self._past_handoffs = (0, 0)
        self._pid = os.getpid()
        _lifecycle.on_fork(self, _lifecycle.REGISTRY)

    # ------------------------------------------------------------------
    # This thread

    def current(self) -> Reader | None:
        """This thread's record, or None if it is not registered."""
        return getattr(self.local, "reader", None)

    def register(self) -> Reader:
        """Register this thread (idempotent) and return its record."""
        current = self.current()
        if current is not None:
            return current
        reader = self._reader_class(self._state, threading.current_thread())
        slot = _ThreadSlot(reader)
        watch = weakref.ref(slot, _exit_watcher(weakref.ref(self), reader))
        with self._lock:
            if self._qsbr:
                # Online at once, under the registry lock: a grace period that
                # starts now either snapshots this reader (and waits for its
                # next quiescent state) or comes after this store.
                reader.ctr = self._state.ctr
            self._records[reader] = watch
        self.local.reader = reader
        self.local.slot = slot
        if native is not None:
            native.set_current(self._key, reader)
        return reader

    def unregister(self) -> None:
        """Unregister this thread (a no-op if it is not registered)."""
        reader = self.current()
        if reader is None:
            return
        if reader.depth:
            raise ReadSectionError("unregister_thread() inside a read section")
        del self.local.reader, self.local.slot
        if native is not None:
            native.set_current(self._key, None)
        self._forget(reader, exited=False)

    def drop_fast_lookup(self) -> None:
        """Forget this thread's C lookup entry (it would keep its record alive)."""
        if native is not None:
            native.set_current(self._key, None)

    def in_read_section(self) -> bool:
        """True if this thread is inside a read section."""
        reader = self.current()
        return reader is not None and reader.depth > 0

    def in_held_section(self) -> bool:
        """Is this thread in a read section that holds up grace periods?

        Such a thread cannot wait for a grace period (epoch: it is in a
        section; qsbr: it is online and in a section, so it may not go
        offline). Any other thread can, once it is paused (``pause_current``).
        """
        reader = self.current()
        return reader is not None and reader.depth > 0 and reader.ctr != 0

    def pause_current(self) -> Reader | None:
        """Before blocking: take this thread offline if it holds up grace periods.

        Returns the reader to bring back online afterwards, or None.
        """
        reader = self.current()
        if reader is not None and reader._pause():
            return reader
        return None

    # ------------------------------------------------------------------
    # The grace periods' side

    def snapshot(self, bump: Callable[[], _T]) -> tuple[_T, list[Reader]]:
        """Call ``bump()`` and list the records, both under the registry lock."""
        with self._lock:
            return bump(), list(self._records)

    def holdouts(self, *, besides: threading.Thread) -> list[Reader]:
        """The records that hold up grace periods now, except ``besides``'s."""
        with self._lock:
            return [r for r in self._records if r.ctr and r.thread is not besides]

    def counts(self) -> ReaderCounts:
        """How many readers are registered, and how often (and long) readers stepped aside."""
        with self._lock:
            handoffs, handoff_ns = self._past_handoffs
            for reader in self._records:
                handoffs += reader.handoffs
                handoff_ns += reader.handoff_ns
            return ReaderCounts(len(self._records), handoffs, handoff_ns)

    def _forget(self, reader: Reader, *, exited: bool) -> None:
        """Remove ``reader`` from the registry; it stops holding up grace periods."""
        if self._pid != os.getpid():
            # A thread of the parent process, cleaned up in a forked child.
            return
        with self._lock:
            if self._records.pop(reader, None) is None:
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
            self._state.signal()
        reader._gp = UNREGISTERED  # a kept handle now fails instead of protecting nothing
        thread = reader.thread
        if thread.is_alive() and thread.ident != threading.get_ident():
            # Not an exit: the record is torn down with the interpreter around
            # a daemon thread that still runs (interpreter exit reported what
            # that cost, see rcu._lifecycle). A thread that exits runs this
            # itself.
            return
        if exited and depth:
            warnings.warn(
                ReaderExitWarning(
                    f"thread {reader.thread.name!r} exited inside a read section of "
                    f"{self._name!r} (depth {depth}); the section is abandoned"
                ),
                stacklevel=1,
            )

    # ------------------------------------------------------------------
    # Fork (see rcu._lifecycle)

    def before_fork(self) -> None:
        """Take the registry lock."""
        self._lock.acquire()

    def after_fork_in_parent(self) -> None:
        """Release the registry lock."""
        self._lock.release()

    def after_fork_in_child(self) -> None:
        """Keep only the forking thread's record: the child has no other thread."""
        self._pid = os.getpid()
        self._lock = threading.Lock()  # the same role and rank as in __init__
        me = self.current()
        kept = {} if me is None else {me: self._records[me]}
        if me is not None:
            # The driver that flagged it, if any, is not in the child.
            me.waiting = NOT_WAITING
            me.stepped = None
        self._records = kept


def _exit_watcher(
    registry_ref: weakref.ref[Registry], reader: Reader
) -> Callable[[weakref.ref[_ThreadSlot]], None]:
    """The weakref callback that unregisters ``reader`` when its thread dies."""

    def on_exit(_slot: weakref.ref[_ThreadSlot]) -> None:
        registry = registry_ref()
        if registry is not None:
            registry._forget(reader, exited=True)

    return on_exit
