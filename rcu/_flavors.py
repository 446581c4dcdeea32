"""The two RCU flavors: what a read section writes into the reader record.

epoch (liburcu "memb", QEMU util/rcu.c)
    The outermost ``lock`` copies the domain's grace-period counter into the
    record; the outermost ``unlock`` stores ``0``. A grace period bumps the
    counter and waits for the records that still hold an older value. Readers
    pay two stores per section and never block; a thread that is not in a
    section never holds anything up.

qsbr (liburcu "qsbr")
    Read sections cost nothing but a nesting count. Instead, a registered
    thread is *online* and promises to call ``quiescent_state()`` now and then
    at a point where it holds no reference (a vCPU at a block boundary, a
    server between requests), which copies the counter into the record. A
    grace period waits for every online thread's next quiescent state or
    ``offline()``. Cheapest reads, but a thread that forgets to report stalls
    every grace period: use ``offline()`` around anything that blocks.

Orders that matter (on free-threaded builds these are the places that need
sequential consistency; with the GIL every bytecode is ordered):

* lock / quiescent_state / online: the store to ``ctr`` happens before the
  section's first load of shared data. Paired with the writer, which
  publishes, then bumps the counter, then reads ``ctr``: either the writer
  sees the reader's store (and waits), or the reader sees the new data.
* unlock / offline / quiescent_state: the store to ``ctr`` happens before the
  load of ``waiting``. Paired with the writer, which stores ``waiting``, then
  reads ``ctr``: either the writer sees the reader gone, or the reader sees
  ``waiting`` and signals the driver. No wake-up is lost.

A flagged reader (``waiting`` set) takes ``Reader._flagged`` as it leaves: it
signals if it is a holdout and, under a GIL, hands the interpreter to the
driver (see :mod:`rcu._reader`). When no grace period waits the read side
pays nothing for this: the load of ``waiting`` was already there.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from rcu._reader import HOLDOUT, PyRecord, Reader, native
from rcu.errors import ReadSectionError

if TYPE_CHECKING:
    from typing import Self

__all__ = ["EpochReader", "QsbrReader", "reader_class"]

_UNBALANCED = "unlock without a matching lock: no read section is open on this thread"


class EpochReader(PyRecord):
    """Reader record of the epoch flavor."""

    __slots__ = ()

    # The four read-side methods repeat the same few lines on purpose: they are
    # the hot path, and a shared helper would cost a call per section.

    def __enter__(self) -> Self:
        depth = self.depth
        if not depth:
            # ORDER: this store precedes every load of shared data in the section.
            self.ctr = self._gp.ctr
        self.depth = depth + 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        depth = self.depth - 1
        if depth:
            if depth < 0:
                raise ReadSectionError(_UNBALANCED)
            self.depth = depth
            return
        # ORDER: clear ctr, then look at waiting (pairs with the writer's
        # "set waiting, then read ctr"). ctr before depth: if an exception
        # (KeyboardInterrupt) lands in between, a stale depth is visible to
        # in_read_section(); a stale ctr would hold grace periods unseen.
        self.ctr = 0
        self.depth = 0
        if self.waiting:
            self._flagged()

    def lock(self) -> None:
        depth = self.depth
        if not depth:
            self.ctr = self._gp.ctr  # ORDER: as in __enter__
        self.depth = depth + 1

    def unlock(self) -> None:
        depth = self.depth - 1
        if depth:
            if depth < 0:
                raise ReadSectionError(_UNBALANCED)
            self.depth = depth
            return
        self.ctr = 0  # ORDER: as in __exit__
        self.depth = 0
        if self.waiting:
            self._flagged()

    def relock(self) -> None:
        depth = self.depth
        if depth != 1:
            if depth < 1:
                raise ReadSectionError(_UNBALANCED)
            return  # nested: unlock(); lock() changes nothing
        # Storing the current counter over the old one is leaving and
        # entering at once: a driver sees either the old value (and waits, as
        # for the old section) or the current one (which began after its bump).
        # ORDER: the old section's loads, this store, then the load of
        # waiting and the new section's loads.
        self.ctr = self._gp.ctr
        if self.waiting:
            self._flagged()


class QsbrReader(PyRecord):
    """Reader record of the qsbr flavor: online from registration."""

    __slots__ = ()

    def __enter__(self) -> Self:
        self.depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        depth = self.depth - 1
        if depth < 0:
            raise ReadSectionError(_UNBALANCED)
        self.depth = depth

    def lock(self) -> None:
        self.depth += 1

    def unlock(self) -> None:
        depth = self.depth - 1
        if depth < 0:
            raise ReadSectionError(_UNBALANCED)
        self.depth = depth

    def relock(self) -> None:
        if self.depth < 1:
            raise ReadSectionError(_UNBALANCED)

    def quiescent_state(self) -> None:
        """Report that this thread holds no reference obtained before this call."""
        if self.depth:
            raise ReadSectionError("quiescent_state() inside a read section")
        if self.ctr:  # offline threads stay offline
            # ORDER: publish the new counter value, then look at waiting.
            self.ctr = self._gp.ctr
            if self.waiting:
                self._flagged()

    def offline(self) -> None:
        """Stop holding up grace periods until :meth:`online` (an extended quiescent state)."""
        if self.depth:
            raise ReadSectionError("offline() inside a read section")
        self.ctr = 0  # ORDER: clear ctr, then look at waiting.
        if self.waiting == HOLDOUT:
            self._gp.signal()  # no handoff: the thread goes offline to do something else

    def online(self) -> None:
        """Hold up grace periods again; the thread may read shared data after this.

        A no-op on a thread that is online already: it is not a quiescent state.
        """
        if not self.ctr:
            # ORDER: this store precedes every later load of shared data.
            self.ctr = self._gp.ctr

    def _pause(self) -> bool:
        if not self.ctr:
            return False
        self.offline()
        return True


class _Checked(PyRecord):
    """Debug mode of the pure-Python records: every read-side call checks its thread.

    Mixed in before a flavor's record class, so ``super()`` is the flavor's call.
    """

    __slots__ = ()

    def __enter__(self) -> Self:
        self._check_owner()
        return super().__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._check_owner()
        super().__exit__(exc_type, exc, tb)

    def lock(self) -> None:
        self._check_owner()
        super().lock()

    def unlock(self) -> None:
        self._check_owner()
        super().unlock()

    def relock(self) -> None:
        self._check_owner()
        super().relock()

    def quiescent_state(self) -> None:
        self._check_owner()
        super().quiescent_state()

    def offline(self) -> None:
        self._check_owner()
        super().offline()

    def online(self) -> None:
        self._check_owner()
        super().online()


class _CheckedEpochReader(_Checked, EpochReader):
    """Debug mode of the pure-Python epoch reader."""

    __slots__ = ()


class _CheckedQsbrReader(_Checked, QsbrReader):
    """Debug mode of the pure-Python qsbr reader."""

    __slots__ = ()


_FLAVORS: dict[str, tuple[type[Reader], type[Reader]]] = {
    "epoch": (EpochReader, _CheckedEpochReader),
    "qsbr": (QsbrReader, _CheckedQsbrReader),
}

if native is not None:
    from rcu._native import EpochReader as _NativeEpoch
    from rcu._native import QsbrReader as _NativeQsbr

    class NativeEpochReader(_NativeEpoch, Reader):
        """Reader record of the epoch flavor, in C (rcu/_native.c)."""

        __slots__ = ()

    class NativeQsbrReader(_NativeQsbr, Reader):
        """Reader record of the qsbr flavor, in C (rcu/_native.c)."""

        __slots__ = ()

    # The C read side always checks the thread: it costs a few nanoseconds.
    _FLAVORS = {
        "epoch": (NativeEpochReader, NativeEpochReader),
        "qsbr": (NativeQsbrReader, NativeQsbrReader),
    }


def reader_class(flavor: str, *, debug: bool = False) -> type[Reader]:
    """The reader record class of ``flavor`` ("epoch" or "qsbr").

    With ``debug`` the pure-Python records check at every call that they run
    on their owner thread (the C ones always do).
    """
    try:
        plain, checked = _FLAVORS[flavor]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown RCU flavor {flavor!r}: expected one of {sorted(_FLAVORS)}"
        ) from None
    return checked if debug else plain
