"""Process life cycle: fork and interpreter exit, and the rcu lock order.

Why one place
-------------
A domain is made of parts (the reader registry, the grace periods, the
callback engine), and each has locks that another thread may hold at the
moment this process forks, and state that only makes sense in the process
that created it. ``os.fork()`` copies the memory but only the forking thread:
a lock held by any other thread would stay locked in the child forever. The
fork handler below therefore takes every part's lock before the fork, in one
global order, so that the child starts with no lock held by a thread it does
not have, and then lets each part rebuild what the child needs. Interpreter
exit is the other end of a process's life: every open domain drains its
queued callbacks within its ``exit_timeout``. Both live here so that no part
carries process-wide state of its own.

The rcu lock order
------------------
This is the one statement of it; every lock of the package says where it
stands by referring here. A thread takes these only in this order, no code
path holds two of them except the fork handler (which takes every one), and
readers take none of them:

0. ``_parts_lock`` (below): guards the sets of fork and exit participants.
   Registration takes it alone; the fork handler holds it from the snapshot
   of the participants until after the fork, so that no part registers
   between the snapshot and the fork.
1. ``ENGINE``: ``CallbackEngine.lock`` (see :mod:`rcu._callbacks`).
2. ``GRACE``: ``GracePeriods._cond`` (see :mod:`rcu._grace`).
3. ``REGISTRY``: ``Registry._lock`` (see :mod:`rcu._registry`).

Outside the order: the wake-up lock and the handoff gate of
``GracePeriodState`` (:mod:`rcu._reader`: ``release()`` never blocks, and a
gate is waited on with a timeout, holding nothing), each ``Pointer``'s writers'
lock (a leaf), and the default domain's lock (:mod:`rcu._domain`: held while a
domain is built, so it would come before 0; the fork handler never takes it,
the child gets a fresh one).

ORDER: across domains, the fork handler takes all locks of rank 1 (in the
order of the parts' ids), then all of rank 2, then all of rank 3. Every other
thread takes at most the locks of one domain, in rank order, so the handler's
order is consistent with every thread's: no deadlock. In the child the parts
are rebuilt from rank 3 down: a callback engine may start its worker, which
needs its domain's grace periods and registry in working order.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from typing import Protocol

from rcu._timeouts import deadline_after

__all__ = [
    "ENGINE",
    "GRACE",
    "REGISTRY",
    "ExitDrain",
    "ForkParticipant",
    "drain_at_exit",
    "forget_at_exit",
    "on_fork",
    "on_fork_in_child",
]

#: Ranks in the rcu lock order (see the module docstring).
ENGINE = 1
GRACE = 2
REGISTRY = 3
_RANKS = (ENGINE, GRACE, REGISTRY)


class ForkParticipant(Protocol):
    """A part whose lock the fork handler takes, and that rebuilds itself in the child."""

    def before_fork(self) -> None:
        """Take this part's lock (rank order, see the module docstring)."""

    def after_fork_in_parent(self) -> None:
        """Release what :meth:`before_fork` took."""

    def after_fork_in_child(self) -> None:
        """Rebuild what the child needs: fresh locks, no other thread's state."""


class ExitDrain(Protocol):
    """An open domain, as interpreter exit sees it."""

    exit_timeout: float | None

    def _drain_for_exit(self, deadline: float | None) -> bool:
        """Close, draining queued callbacks until ``deadline``; True if all ran."""

    def _report_exit_stall(self) -> None:
        """Warn once about the callbacks that could not run, and who holds them up."""


# Rank 0 of the lock order: guards _participants and _drains.
_parts_lock = threading.Lock()
# Parts by rank, held weakly: a part that dies needs no fork handling.
_participants: dict[int, weakref.WeakSet[ForkParticipant]] = {
    rank: weakref.WeakSet() for rank in _RANKS
}
# Process-wide state of the package's modules, rebuilt in a child.
_child_hooks: list[Callable[[], None]] = []
# The open domains, which interpreter exit drains (a domain leaves at close).
_drains: weakref.WeakSet[ExitDrain] = weakref.WeakSet()
# The parts the fork in progress handles (the forking thread's only).
_forking: list[tuple[ForkParticipant, ...]] = []


def on_fork(part: ForkParticipant, rank: int) -> None:
    """Handle ``part`` at every fork from now on, as long as it lives."""
    if rank not in _participants:
        raise ValueError(f"rank must be one of {_RANKS}, not {rank!r}")
    with _parts_lock:
        _participants[rank].add(part)


def on_fork_in_child(hook: Callable[[], None]) -> None:
    """Call ``hook()`` in every forked child, after the parts are rebuilt."""
    with _parts_lock:
        _child_hooks.append(hook)


def drain_at_exit(domain: ExitDrain) -> None:
    """Drain ``domain`` at interpreter exit unless it is closed first."""
    with _parts_lock:
        _drains.add(domain)


def forget_at_exit(domain: ExitDrain) -> None:
    """``domain`` was closed: interpreter exit has nothing to drain of it."""
    with _parts_lock:
        _drains.discard(domain)


def _before_fork() -> None:
    _parts_lock.acquire()  # released after the fork, in the parent and the child
    _forking[:] = [tuple(sorted(_participants[rank], key=id)) for rank in _RANKS]
    for parts in _forking:
        for part in parts:
            part.before_fork()


def _after_fork_in_parent() -> None:
    for parts in reversed(_forking):
        for part in reversed(parts):
            part.after_fork_in_parent()
    _forking.clear()
    _parts_lock.release()


def _after_fork_in_child() -> None:
    global _parts_lock
    _parts_lock = threading.Lock()  # the same role; nobody else holds it in the child
    for parts in reversed(_forking):
        for part in parts:
            part.after_fork_in_child()
    _forking.clear()
    for hook in _child_hooks:
        hook()


def _drain_all_at_exit() -> None:
    """Run every open domain's queued callbacks before the interpreter exits.

    A reader that never leaves its section (a daemon thread parked in one)
    would hang the exit: each domain waits at most its ``exit_timeout``, then
    reports once what it could not run and who holds it up. Every domain
    starts draining at once, so the exit takes at most the longest
    ``exit_timeout``, not their sum.
    """
    with _parts_lock:
        domains = list(_drains)
    # Deadlines first, then a close that waits for nothing (it only tells
    # each worker to drain), then the waits: the workers drain side by side.
    deadlines = [(domain, deadline_after(domain.exit_timeout)) for domain in domains]
    started = []
    for domain, deadline in deadlines:
        try:
            domain._drain_for_exit(time.monotonic())
        except Exception as exc:  # one broken domain must not keep the others from draining
            warnings.warn(f"could not drain {domain!r} at exit: {exc}", RuntimeWarning, 1)
            continue
        started.append((domain, deadline))
    for domain, deadline in started:
        try:
            drained = domain._drain_for_exit(deadline)
        except Exception as exc:
            warnings.warn(f"could not drain {domain!r} at exit: {exc}", RuntimeWarning, 1)
            continue
        if not drained:
            domain._report_exit_stall()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
atexit.register(_drain_all_at_exit)
