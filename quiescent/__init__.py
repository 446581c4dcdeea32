"""Stop-the-world safe work, as QEMU's cpus-common does it.

vCPU threads mark the stretches between their safe points with
``with cpu.running():``; an exclusive section (``with world.exclusive():``)
waits until no vCPU is inside one and keeps them out until it ends. Work can
be queued on a vCPU to run on its own thread at its next safe point, plain or
inside an exclusive section. See the package documentation for the guide;
this module only re-exports.
"""

from __future__ import annotations

from quiescent._stats import Percentiles, WorldStatistics
from quiescent._world import Vcpu, World
from quiescent.errors import QuiescentError, QuiescentExitWarning, QuiescentStallWarning

__all__ = [
    "Percentiles",
    "QuiescentError",
    "QuiescentExitWarning",
    "QuiescentStallWarning",
    "Vcpu",
    "World",
    "WorldStatistics",
]
