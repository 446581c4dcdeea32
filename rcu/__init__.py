"""Read-copy-update for Python: grace periods, deferred reclamation, protected pointers.

Readers enter cheap, wait-free read sections; writers publish new versions
and reclaim old ones after a grace period, when no reader can still see them.
See the package documentation for the guide; this module only re-exports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rcu._debug import Reclaimable
from rcu._domain import Domain, default_domain
from rcu._pointer import Pointer
from rcu._reader import IMPLEMENTATION, Reader
from rcu._stats import DomainStatistics, Percentiles
from rcu.errors import (
    DomainClosedError,
    RcuError,
    RcuStallWarning,
    ReaderExitWarning,
    ReadSectionError,
    UseAfterReclaimError,
)

__all__ = [
    "Domain",
    "DomainClosedError",
    "DomainStatistics",
    "Percentiles",
    "Pointer",
    "RcuError",
    "RcuStallWarning",
    "ReadSectionError",
    "Reader",
    "ReaderExitWarning",
    "Reclaimable",
    "UseAfterReclaimError",
    "barrier",
    "call_rcu",
    "default_domain",
    "implementation",
    "poll",
    "read",
    "read_lock",
    "read_unlock",
    "start_poll",
    "synchronize",
]

#: ``"c"`` when the optional C extension serves the read side and the
#: grace-period scan, ``"python"`` when the pure-Python reference does (no
#: compiler at install time, or ``RCU_PURE_PYTHON=1`` in the environment).
implementation: str = IMPLEMENTATION


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
