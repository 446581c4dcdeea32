"""The parts behind a Domain, driven through their own small interfaces.

The registry, the grace periods and the callback engine are wired together
here by hand, without a Domain: the engine sees the other two only through
its protocols, and the fork handler handles parts that no Domain owns.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from rcu import _lifecycle
from rcu._callbacks import CallbackEngine
from rcu._flavors import reader_class
from rcu._grace import GracePeriods
from rcu._reader import GracePeriodState
from rcu._registry import Registry
from rcu.errors import DomainClosedError
from tests.forking import in_child
from tests.rcu.helpers import GLANCE, PATIENCE, Background, join, start, wait_until

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@dataclass
class Parts:
    """One domain's parts, without the domain."""

    registry: Registry
    grace: GracePeriods
    engine: CallbackEngine
    threads: list[threading.Thread] = field(default_factory=list)


def _parts(flavor: str) -> Parts:
    state = GracePeriodState()
    registry = Registry("parts", reader_class(flavor), state, qsbr=flavor == "qsbr")
    grace = GracePeriods("parts", state, registry, stall_timeout=None)
    engine = CallbackEngine(
        grace, registry, name="parts", batch_size=1, batch_delay=0.0, max_pending=100, on_error=None
    )
    return Parts(registry, grace, engine)


@pytest.fixture
def parts(flavor: str) -> Iterator[Parts]:
    made = _parts(flavor)
    yield made
    made.grace.close()
    assert made.engine.close(True, None)
    made.registry.unregister()


class Parked:
    """A thread that holds up ``registry``'s grace periods until :meth:`finish`."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._entered = threading.Event()
        self._release = threading.Event()
        self._thread = start(self._run, "parked")
        assert self._entered.wait(PATIENCE)

    def _run(self) -> None:
        reader = self._registry.register()  # a qsbr record is online from here on
        reader.lock()
        self._entered.set()
        self._release.wait(PATIENCE)
        reader.unlock()
        reader.offline()  # a no-op in epoch
        self._registry.unregister()

    def finish(self) -> None:
        self._release.set()
        join(self._thread)


def test_engine_runs_a_callback_after_the_grace_period_of_its_parts(parts: Parts) -> None:
    parked = Parked(parts.registry)
    ran = threading.Event()
    parts.engine.call_rcu(ran.set, (), {})
    assert not ran.wait(GLANCE), "the callback ran under a reader"
    assert parts.engine.counts().pending == 1
    parked.finish()
    assert ran.wait(PATIENCE)
    assert wait_until(lambda: parts.engine.counts().pending == 0)
    counts = parts.engine.counts()
    assert (counts.queued, counts.invoked, counts.dropped) == (1, 1, 0)
    assert parts.grace.completed >= 1
    assert parts.registry.counts().readers == 0


def test_engine_polled_request_completes_a_grace_period_nobody_waits_for(parts: Parts) -> None:
    target = parts.grace.open_target()
    parts.engine.request_grace_period(target)
    assert wait_until(lambda: parts.grace.completed >= target)


def test_a_waiter_aborts_when_woken(parts: Parts) -> None:
    parked = Parked(parts.registry)
    abort = threading.Event()
    outcome: list[bool] = []
    waiter = start(
        lambda: outcome.append(
            parts.grace.wait_for(parts.grace.next_target(), None, abort=abort.is_set)
        ),
        "waiter",
    )
    assert not wait_until(lambda: outcome, GLANCE)
    abort.set()
    parts.grace.wake_waiters()
    join(waiter)
    assert outcome == [False]
    parked.finish()
    assert parts.grace.wait_for(parts.grace.next_target(), None)


class WorkerWaitsHeld:
    """Count the worker's grace-period waits and hold it after the first that aborts.

    Past ``limit`` waits the instrumented wait raises (a spinning worker then
    fails, and its close raises, instead of spinning on).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, parts: Parts, limit: int) -> None:
        self.calls = 0
        self.aborted = threading.Event()
        self.resume = threading.Event()
        self._limit = limit
        self._wait_for = parts.grace.wait_for
        monkeypatch.setattr(parts.grace, "wait_for", self._counted)

    def _counted(self, target: int, deadline: float | None, abort: object = None) -> bool:
        if threading.current_thread().name != "rcu-callbacks-parts":
            return self._wait_for(target, deadline, abort)  # type: ignore[arg-type]
        self.calls += 1  # the worker is the only thread that writes it
        if self.calls > self._limit:
            raise RuntimeError(f"the worker waited {self.calls} times: it spins")
        done = self._wait_for(target, deadline, abort)  # type: ignore[arg-type]
        if not done and not self.aborted.is_set():
            self.aborted.set()
            assert self.resume.wait(PATIENCE)
        return done


def _worker_alive() -> bool:
    return any(thread.name == "rcu-callbacks-parts" for thread in threading.enumerate())


def test_a_polled_request_that_arrives_after_close_is_refused(
    parts: Parts, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A start_poll() numbers its grace period, then asks the engine for it:
    # a close(drain=False) can come in between.
    waits = WorkerWaitsHeld(monkeypatch, parts, limit=100)
    parked = Parked(parts.registry)
    try:
        parts.engine.request_grace_period(parts.grace.open_target())
        assert wait_until(lambda: waits.calls == 1)  # the worker waits for the reader
        late = parts.grace.open_target()
        parts.grace.close()
        closing = Background(lambda: parts.engine.close(False, None), "close")
        assert waits.aborted.wait(PATIENCE)  # the dropping worker, held before it exits
        with pytest.raises(DomainClosedError):
            parts.engine.request_grace_period(late)
        waits.resume.set()
        assert closing.outcome() is True
        assert waits.calls == 1, "the dropping worker took a request it cannot wait for"
        assert not _worker_alive()
        # Once closed, a request starts no worker that nobody would join.
        with pytest.raises(DomainClosedError):
            parts.engine.request_grace_period(late)
        assert not _worker_alive()
        assert parts.grace.completed == 0
    finally:
        waits.resume.set()
        parked.finish()


def test_numbering_cookies_and_close(parts: Parts) -> None:
    first = parts.grace.open_target()
    assert first == parts.grace.completed + 1
    assert parts.grace.wait_for(first, None)
    assert parts.grace.completed >= first
    parts.grace.check_cookie(first)
    with pytest.raises(TypeError):
        parts.grace.check_cookie(True)
    with pytest.raises(ValueError, match="not a grace-period cookie"):
        parts.grace.check_cookie(parts.grace.completed + 3)
    parts.grace.close()
    assert parts.grace.closed
    with pytest.raises(DomainClosedError):
        parts.grace.open_target()
    assert parts.grace.next_target() == parts.grace.completed + 1  # the engine's drain


def test_the_snapshot_bumps_under_the_registry_lock(flavor: str) -> None:
    made = _parts(flavor)
    me = made.registry.register()
    held: list[bool] = []

    def bump() -> int:
        held.append(made.registry._lock.locked())
        return 7

    assert made.registry.snapshot(bump) == (7, [me])
    assert held == [True]
    made.registry.unregister()
    assert made.registry.snapshot(lambda: 0) == (0, [])
    assert made.registry.current() is None


def test_a_qsbr_record_is_online_from_registration() -> None:
    made = _parts("qsbr")
    reader = made.registry.register()
    assert made.registry.register() is reader
    assert reader.ctr == made.grace.state.ctr
    assert made.registry.holdouts(besides=threading.current_thread()) == []
    reader.offline()
    made.registry.unregister()


@needs_fork
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_rebuilds_parts_that_no_domain_owns(parts: Parts, flavor: str) -> None:
    me = parts.registry.register()
    parked = Parked(parts.registry)
    assert parts.registry.counts().readers == 2

    def child() -> bool:
        ok = parts.registry.counts().readers == 1 and parts.registry.current() is me
        # An online qsbr forking thread goes offline while it waits (wait_for).
        return ok and parts.grace.wait_for(parts.grace.next_target(), time.monotonic() + PATIENCE)

    assert in_child(child) == 0
    parked.finish()
    if flavor == "qsbr":
        me.offline()


class _Recorder:
    """A fork participant that records the calls it gets."""

    def __init__(self, rank: int, log: list[tuple[str, int]]) -> None:
        self.rank = rank
        self.log = log

    def before_fork(self) -> None:
        self.log.append(("before", self.rank))

    def after_fork_in_parent(self) -> None:
        self.log.append(("parent", self.rank))

    def after_fork_in_child(self) -> None:
        self.log.append(("child", self.rank))


@needs_fork
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_handler_takes_the_ranks_in_lock_order() -> None:
    with pytest.raises(ValueError, match="rank"):
        _lifecycle.on_fork(_Recorder(0, []), 0)
    log: list[tuple[str, int]] = []
    recorders = [_Recorder(rank, log) for rank in (3, 1, 2)]
    for recorder in recorders:
        _lifecycle.on_fork(recorder, recorder.rank)
    before = [("before", 1), ("before", 2), ("before", 3)]

    def child() -> bool:
        return log == [*before, ("child", 3), ("child", 2), ("child", 1)]

    assert in_child(child) == 0
    assert log == [*before, ("parent", 3), ("parent", 2), ("parent", 1)]
    del recorders, recorder  # the handler holds its parts weakly: they go now
