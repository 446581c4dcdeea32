"""Pointer: the one place where readers meet writers.

Why a pointer
-------------
RCU protects *references*, not objects: a writer never changes an object a
reader may see, it builds a new one and swings a shared reference to it.
``Pointer`` is that shared reference. ``load()`` is a plain attribute read,
safe inside a read section; ``publish()`` is a plain attribute write, safe
because the new object is complete before it becomes reachable (Python has
no partial publication of an object, and on free-threaded builds the
reference store is atomic).

Writers that race each other need more than a store: ``exchange`` and
``compare_and_set`` run under a writers' lock that readers never touch.
``replace(new, reclaim)`` is the whole update in one call: publish ``new``,
then hand the old object to ``call_rcu(reclaim, old)``. It is all or
nothing: if the reclamation cannot be queued (the domain is closed, or the
backlog ceiling inside a read section is reached), ``new`` is not published.

After ``Domain.close()`` a pointer stays usable: reads, and the writes that
queue nothing (``publish``, ``exchange``, ``compare_and_set``), work as
before, since they never need a grace period; the caller owns whatever they
replace. Only ``replace`` with something to reclaim raises
:class:`rcu.DomainClosedError`, before it stores anything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from rcu._debug import poison
from rcu._domain import Domain, default_domain
from rcu.errors import ReadSectionError

__all__ = ["Pointer"]

T = TypeVar("T")


class Pointer(Generic[T]):
    """An RCU-protected reference to a value of type ``T``.

    ``domain`` is the domain whose grace periods reclaim replaced values (the
    default domain if None). In a debug domain, ``load()`` outside a read
    section raises :class:`rcu.ReadSectionError`.
    """

    __slots__ = ("_debug", "_domain", "_value", "_write_lock")

    def __init__(self, value: T = None, domain: Domain | None = None) -> None:  # type: ignore[assignment]
        if domain is None:
            domain = default_domain()
        elif not isinstance(domain, Domain):
            raise TypeError(f"domain must be an rcu.Domain or None, not {type(domain).__name__}")
        self._value = value
        self._domain = domain
        self._debug = domain.debug
        # Guards _value against other writers: every store of it (publish,
        # exchange, compare_and_set, and replace through them) is under it.
        # Readers never take it. A leaf outside the rcu lock order
        # (rcu._lifecycle): it is released before replace() calls call_rcu,
        # so no lock of the order is taken while it is held, and it is never
        # taken under one.
        self._write_lock = threading.Lock()

    @property
    def domain(self) -> Domain:
        """The domain this pointer's values are reclaimed through."""
        return self._domain

    def load(self) -> T:
        """The current value. Call inside a read section and use it only there."""
        if self._debug and not self._domain.in_read_section():
            raise ReadSectionError(
                f"Pointer.load() outside a read section of {self._domain.name!r}"
            )
        return self._value

    def publish(self, new: T) -> None:
        """Make ``new`` the current value. Readers see either the old or the new one."""
        # Under the writers' lock, so that a concurrent replace() never
        # reclaims a value other than the one it unpublished.
        with self._write_lock:
            self._value = new

    def exchange(self, new: T) -> T:
        """Publish ``new`` and return the value it replaced."""
        with self._write_lock:
            old = self._value
            self._value = new
        return old

    def compare_and_set(self, expected: T, new: T) -> bool:
        """Publish ``new`` if the current value *is* ``expected``; True if it did."""
        with self._write_lock:
            if self._value is not expected:
                return False
            self._value = new
            return True

    def replace(self, new: T, reclaim: Callable[[T], object] | None = None) -> T:
        """Publish ``new``; after a grace period, call ``reclaim(old)``. Returns old.

        In a debug domain, an old value that is an :class:`rcu.Reclaimable`
        is poisoned once ``reclaim`` has run (or at once after the grace
        period if ``reclaim`` is None).

        If the reclamation cannot be queued, ``replace`` raises what
        ``call_rcu`` raised (:class:`rcu.DomainClosedError` once the domain
        is closed) and the pointer keeps its old value: after close, the
        check comes before the store; if ``close`` races with the call, the
        publication is undone.
        """
        if reclaim is not None and not callable(reclaim):
            raise TypeError(f"reclaim must be callable or None, not {type(reclaim).__name__}")
        if reclaim is None and not self._debug:
            return self.exchange(new)  # nothing to queue
        self._domain._engine.check_accepting()
        old = self.exchange(new)
        try:
            if self._debug:
                self._domain.call_rcu(_reclaim_and_poison, reclaim, old)
            elif reclaim is not None:
                self._domain.call_rcu(reclaim, old)
        except BaseException:
            # ORDER: the reclamation was never queued, so nothing reclaims
            # old: publish it again unless another writer replaced new.
            self.compare_and_set(new, old)
            raise
        return old

    def __repr__(self) -> str:
        return f"<rcu.Pointer to {type(self._value).__name__} in {self._domain.name!r}>"


def _reclaim_and_poison(reclaim: Callable[[T], object] | None, old: T) -> None:
    try:
        if reclaim is not None:
            reclaim(old)
    finally:
        poison(old)
