"""Exceptions and warnings of the :mod:`rcu` package.

Every misuse that would deadlock or corrupt a grace period raises at the call
that commits it, on the caller's thread: nothing is deferred to a worker.
"""

from __future__ import annotations

__all__ = [
    "DomainClosedError",
    "RcuError",
    "RcuStallWarning",
    "ReadSectionError",
    "ReaderExitWarning",
    "UseAfterReclaimError",
]


class RcuError(Exception):
    """Base class of every error raised by :mod:`rcu`.

    Raised as such by ``call_rcu``, ``barrier``, ``start_poll`` and ``close``
    of a domain whose callback worker failed; ``__cause__`` is the worker's
    exception.
    """


class ReadSectionError(RcuError):
    """A call that is illegal where it was made.

    Raised for calls that would deadlock inside a read section of the same
    domain (``synchronize``, ``barrier``, ``close``, qsbr ``offline``), for a
    ``call_rcu`` inside one that finds the backlog at its ceiling of
    ``2 * max_pending``, for an unlock without a matching lock, and (in debug
    mode) for ``Pointer.load`` outside a read section.
    """


class DomainClosedError(RcuError):
    """The domain was closed: it accepts no new grace periods or callbacks."""


class UseAfterReclaimError(RcuError):
    """An object was used after the grace period that reclaimed it (debug mode)."""


class RcuStallWarning(RuntimeWarning):
    """A grace period has waited longer than the domain's ``stall_timeout``.

    The message names every holdout reader thread and shows its current stack.
    """


class ReaderExitWarning(RuntimeWarning):
    """A thread exited inside a read section.

    Its section is abandoned: the thread no longer holds up grace periods.
    """
