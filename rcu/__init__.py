"""Read-copy-update for Python: grace periods, deferred reclamation, protected pointers.

Readers enter cheap, wait-free read sections; writers publish new versions
and reclaim old ones after a grace period, when no reader can still see them.
See the package documentation for the guide; this module only re-exports.

Each name is imported when it is first used (PEP 562), so that ``import rcu``
costs little for a program that only needs some of it (``rcu.errors``, say,
for its exception classes); the errors themselves are imported at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Imported at once, not on first use: importing rcu registers the exit handler
# that drains every domain's callbacks, and atexit runs handlers last
# registered first, so a program's handlers registered after ``import rcu``
# run before the domains drain (and may still queue callbacks).
from rcu import _lifecycle  # noqa: F401
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

# name -> (module, name there), imported on first use by __getattr__ below.
_LAZY = {
    "Reclaimable": ("rcu._debug", "Reclaimable"),
    **{
        name: ("rcu._domain", name)
        for name in (
            "Domain",
            "barrier",
            "call_rcu",
            "default_domain",
            "poll",
            "read",
            "read_lock",
            "read_unlock",
            "start_poll",
            "synchronize",
        )
    },
    "Pointer": ("rcu._pointer", "Pointer"),
    "Reader": ("rcu._reader", "Reader"),
    "implementation": ("rcu._reader", "IMPLEMENTATION"),
    "DomainStatistics": ("rcu._stats", "DomainStatistics"),
    "Percentiles": ("rcu._stats", "Percentiles"),
}

if TYPE_CHECKING:
    from rcu._debug import Reclaimable
    from rcu._domain import (
        Domain,
        barrier,
        call_rcu,
        default_domain,
        poll,
        read,
        read_lock,
        read_unlock,
        start_poll,
        synchronize,
    )
    from rcu._pointer import Pointer
    from rcu._reader import Reader
    from rcu._stats import DomainStatistics, Percentiles

    #: ``"c"`` when the optional C extension serves the read side and the
    #: grace-period scan, ``"python"`` when the pure-Python reference does (no
    #: compiler at install time, or ``RCU_PURE_PYTHON=1`` in the environment).
    implementation: str
else:

    def __getattr__(name: str) -> object:
        """Import a public name on first use and keep it in the module."""
        try:
            module, attr = _LAZY[name]
        except KeyError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), attr)
        # Later lookups find the name without this function. Two threads that
        # race here store the same object (the import system imports a module
        # once).
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
