"""Exceptions and warnings of the :mod:`quiescent` package.

Every misuse that would deadlock a world (waiting on itself) or run work on
the wrong thread raises at the call that commits it, on the caller's thread:
nothing is deferred to a vCPU thread.
"""

from __future__ import annotations

__all__ = ["QuiescentError", "QuiescentExitWarning", "QuiescentStallWarning"]


class QuiescentError(Exception):
    """A call that is illegal where it was made.

    Raised, among others, for ``exclusive()`` from a thread whose vCPU is
    inside ``running()`` (it would wait for itself), for ``running()`` inside
    an exclusive section the same thread holds, for calls that must come from
    the vCPU's own thread, and for work queued on an unregistered vCPU.
    """


class QuiescentStallWarning(RuntimeWarning):
    """An exclusive section has waited longer than the world's ``stall_timeout``.

    The message names every vCPU that has not yet left ``running()``.
    """


class QuiescentExitWarning(RuntimeWarning):
    """A thread exited inside an exclusive section it held.

    The world ends the section on the thread's behalf (so vCPUs run again
    instead of waiting forever) and warns: the thread never called
    ``end_exclusive()``, so whatever the section was for may be half done.
    """
