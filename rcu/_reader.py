"""The per-thread reader record.

Why a record per thread and per domain
--------------------------------------
A grace period must know, for every thread that might hold a reference
obtained from shared state, whether that thread is still inside a read section
that began before the grace period. Asking the threads would make readers pay
for writers. Instead every reader thread owns a small record that only it
writes, and a writer *looks* at the records: a reader never takes a lock,
never waits, and never writes memory that another thread writes.

The record is also the reader's fast-path handle (``Domain.reader()``): a
thread that keeps it avoids the thread-local lookup of ``Domain.read()``.

Fields and who writes them (one writer per field; written where relied on):

``ctr``
    Written by the owner thread only. ``0`` means "not reading" (epoch flavor:
    outside every read section; qsbr flavor: offline). Any other value is the
    domain's grace-period counter as the owner last saw it. A grace period
    that bumped the counter to ``G`` waits for every record whose ``ctr`` is
    neither ``0`` nor ``G``.
``depth``
    Read-section nesting depth, owner only. Counted in both flavors so that
    calls that would deadlock inside a section are caught at the call.
``waiting``
    Written by the thread that drives the current grace period only (there is
    at most one at a time, see :mod:`rcu._grace`): ``NOT_WAITING``, ``HOLDOUT`` (the
    grace period waits for this reader) or ``STEP_ASIDE`` (it does not, but
    should hand the interpreter over, see below). When it is not
    ``NOT_WAITING`` the owner takes the slow path as it leaves its section: a
    holdout signals the domain's wake-up signal, so the driver wakes without
    polling, and then steps aside. The owner never clears it: a stale value
    costs one spurious wake-up or step aside, never a lost wake-up.
``stepped``
    Owner only: the handoff gate this reader last stepped aside for, so that
    it steps aside at most once per gate.
``handoffs``, ``handoff_ns``
    Owner only: how often, and for how long in all, it stepped aside
    (``Domain.statistics()`` sums them).

Handing over the interpreter
----------------------------
Under a GIL a woken driver cannot run until the thread that holds the
interpreter gives it up: a reader busy crossing block boundaries keeps it for
a whole switch interval (5 ms by default), so every grace period would last
that long, and with N busy readers N times as long. So while a grace period
waits, and only where the interpreter has a GIL, the driver flags every
reader of its snapshot and arms a *gate* (a lock it holds, in
``GracePeriodState.gate``). A flagged reader that leaves its section (epoch
unlock, qsbr ``quiescent_state``) signals if it is a holdout, then waits on
the gate: it blocks, which hands the interpreter to the driver (or to a
holdout that has yet to leave) at once. The driver opens the gate as soon as
it has scanned the records again. The wait is bounded by the interpreter's
switch interval, the time the interpreter would take from the reader anyway,
and happens at most once per gate (``stepped``), and only outside a read
section: a reader never waits for a writer's work, and never holds a grace
period while it waits. Without a GIL no gate is armed and readers only signal.

The flavors (epoch, qsbr) live in :mod:`rcu._flavors`; they differ only in
what the read-side calls write into ``ctr``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Self

__all__ = [
    "HOLDOUT",
    "IMPLEMENTATION",
    "NOT_WAITING",
    "STEP_ASIDE",
    "UNREGISTERED",
    "GracePeriodState",
    "Reader",
    "native",
]


def _load_native() -> ModuleType | None:
    """The C read side (rcu/_native.c), unless it is missing or RCU_PURE_PYTHON is set."""
    if os.environ.get("RCU_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from rcu import _native
    except ImportError:  # built without a compiler, or an interpreter it does not support
        return None
    return _native


#: The C extension module when it serves the read side, else None.
native = _load_native()
#: ``"c"`` when the C extension serves the read side, ``"python"`` otherwise.
IMPLEMENTATION = "python" if native is None else "c"

# The values of Reader.waiting (written by the grace-period driver only).
NOT_WAITING = 0
#: Not a holdout, but hand the interpreter to the driver at the next boundary.
STEP_ASIDE = 1
#: The grace period waits for this reader: signal the driver when leaving.
HOLDOUT = 2


if TYPE_CHECKING or native is None:

    class _Counter:
        """The grace-period counter (the C extension has its own, with atomic access)."""

        __slots__ = ("ctr",)
        ctr: int

else:
    _Counter = native.Counter


class GracePeriodState(_Counter):
    """What a domain shares with its readers: the counter and the wake-up signal.

    ``ctr`` is written only by the thread driving a grace period; it starts at
    1 so that ``0`` can mean "not reading", and Python integers never wrap, so
    one counter phase suffices (liburcu needs two with 32-bit counters).

    The wake-up signal is a lock used as a binary semaphore, not a
    ``threading.Event``: a reader that leaves its section while flagged pays
    one C-level ``release`` (tens of nanoseconds) instead of ``Event.set``'s
    Python-level condition dance (over a microsecond). Released means
    "signalled"; only the driver acquires it.

    ``gate`` is the handoff gate of a waiting grace period (GIL builds only).
    """

    __slots__ = ("_wakeup", "gate")

    def __init__(self) -> None:
        self.ctr = 1
        # The handoff gate (see the module docstring): a lock the driver holds
        # while its grace period waits, None otherwise. Driver only. It guards
        # nothing: readers acquire it (with a timeout, holding no lock and
        # outside any read section) only to block until the driver opens it.
        self.gate: threading.Lock | None = None
        # The wake-up signal: a lock used as a binary semaphore (released means
        # signalled), not a mutex; it guards nothing. Outside the rcu lock
        # order (rcu._lifecycle): release() never blocks, and the driver
        # waits on it holding none of the order's locks.
        self._wakeup = threading.Lock()
        self._wakeup.acquire()

    def signal(self) -> None:
        """Wake the grace-period driver (idempotent, callable from any thread)."""
        try:  # noqa: SIM105 - contextlib.suppress costs a with-block on the read side
            self._wakeup.release()
        except RuntimeError:
            pass  # already signalled: two readers raced to release it

    def clear(self) -> None:
        """Driver only: forget any earlier signal."""
        self._wakeup.acquire(blocking=False)

    def wait(self, timeout: float | None) -> None:
        """Driver only: sleep until signalled or ``timeout`` seconds pass."""
        self._wakeup.acquire(timeout=-1 if timeout is None else max(0.0, timeout))

    def reinit(self) -> None:
        """After fork: a fresh, unsignalled wake-up lock and no handoff gate."""
        self._wakeup = threading.Lock()  # the same role as in __init__
        self._wakeup.acquire()
        self.gate = None


class _Unregistered(GracePeriodState):
    """What a reader record points to once its thread was unregistered.

    Using a kept handle then fails loudly at its next outermost lock (the
    only place the read side loads ``ctr``) instead of protecting nothing;
    the fast path pays nothing for the check.
    """

    __slots__ = ()
    gate = None  # no grace period of its own to hand over to

    def __init__(self) -> None:  # no counter, no wake-up lock
        pass

    @property
    def ctr(self) -> int:  # type: ignore[override]
        from rcu.errors import RcuError

        raise RcuError(
            "this reader handle belongs to an unregistered thread: "
            "get a new one with domain.reader()"
        )

    def signal(self) -> None:
        pass


UNREGISTERED = _Unregistered()


class Reader:
    """One thread's reader record in one :class:`rcu.Domain`, and its handle.

    ``with reader:`` and ``reader.lock(); reader.unlock()`` delimit a read
    section exactly as ``with domain.read():`` does, without looking up the
    current thread. A reader belongs to the thread that obtained it: use it
    only on that thread (the C read side checks this at every call and
    raises :class:`rcu.RcuError`; the pure-Python one checks it with
    ``debug=True``).

    This class holds what both implementations share; the record's fields
    (``ctr``, ``depth``, ``waiting``, ``stepped``, ``thread`` and the link to
    the domain's grace-period state) live in a pure-Python record class or in
    the C extension's types.
    """

    if TYPE_CHECKING:
        _gp: GracePeriodState
        ctr: int
        depth: int
        waiting: int
        stepped: threading.Lock | None
        handoffs: int
        handoff_ns: int
        thread: threading.Thread

        def __init__(self, gp: GracePeriodState, thread: threading.Thread) -> None: ...

    else:
        __slots__ = ()  # the fields live in the subclasses

    # The read-side calls below are implemented by each flavor.

    def __enter__(self) -> Self:
        raise NotImplementedError

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        raise NotImplementedError

    def lock(self) -> None:
        """Enter a read section (nestable)."""
        raise NotImplementedError

    def unlock(self) -> None:
        """Leave the innermost read section; ``ReadSectionError`` if none is open."""
        raise NotImplementedError

    def relock(self) -> None:
        """``unlock(); lock()`` in one call: a quiescent point inside a long section.

        For a thread that reads for a long time and can drop its references
        now and then (a vCPU between two translated blocks): grace periods
        that began before the call stop waiting for it. Inside a nested
        section it changes nothing, as ``unlock(); lock()`` would not.
        """
        raise NotImplementedError

    def quiescent_state(self) -> None:
        """qsbr: report that this thread holds no reference (no-op in epoch)."""

    def offline(self) -> None:
        """qsbr: enter an extended quiescent state (no-op in epoch)."""

    def online(self) -> None:
        """qsbr: leave an extended quiescent state (no-op in epoch)."""

    def _flagged(self) -> None:
        """Slow path of leaving a section while a grace period waits (see the module docstring).

        Called by the owner after its store to ``ctr``: outside any section
        (epoch unlock, qsbr offline) or at the start of a new one (relock, qsbr
        quiescent_state), which the grace period in progress does not wait for.
        """
        gp = self._gp
        if self.waiting == HOLDOUT:
            gp.signal()
        gate = gp.gate
        if gate is not None and gate is not self.stepped:
            ctr = self.ctr
            # ORDER: the gate, then the counter. A reader whose counter is
            # older than the domain's holds up the grace period in progress
            # (qsbr, or a relock, raced with a bump): blocking would make that
            # grace period wait for it. Every gate opens before the next bump,
            # so a gate loaded before a bump never keeps a holdout waiting.
            if ctr and ctr != gp.ctr:
                return
            self.stepped = gate
            # Block until the driver has scanned (it releases the gate) or for
            # one switch interval: either way the interpreter goes to the
            # driver now instead of at the next forced switch.
            start = time.perf_counter_ns()
            if gate.acquire(timeout=sys.getswitchinterval()):
                gate.release()  # let the next reader that stepped aside through
            self.handoffs += 1
            self.handoff_ns += time.perf_counter_ns() - start

    def _pause(self) -> bool:
        """Stop holding up grace periods while this thread blocks in a wait.

        Returns True if :meth:`online` must be called after the wait.
        """
        return False

    def is_ongoing(self, gp_ctr: int) -> bool:
        """True if this reader must still be waited for by the grace period ``gp_ctr``."""
        ctr = self.ctr
        return ctr != 0 and ctr != gp_ctr

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} thread={self.thread.name!r} depth={self.depth} ctr={self.ctr}>"
        )


class PyRecord(Reader):
    """The pure-Python reader record: the reference of the C extension's."""

    __slots__ = (
        "_gp",
        "ctr",
        "depth",
        "handoff_ns",
        "handoffs",
        "owner",
        "stepped",
        "thread",
        "waiting",
    )

    def __init__(self, gp: GracePeriodState, thread: threading.Thread) -> None:
        self._gp = gp
        self.thread = thread
        self.owner = threading.get_ident()  # the thread that may use the handle
        self.ctr = 0
        self.depth = 0
        self.waiting = NOT_WAITING
        self.stepped = None
        self.handoffs = 0
        self.handoff_ns = 0

    def _check_owner(self) -> None:
        """Debug mode: raise RcuError unless called on the thread that owns this handle."""
        if threading.get_ident() != self.owner:
            from rcu.errors import RcuError

            raise RcuError(
                f"a reader handle belongs to the thread that obtained it "
                f"({self.thread.name!r}): this is another thread; use domain.reader() "
                f"or domain.read() on each thread"
            )
