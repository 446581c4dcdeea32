"""Grace periods that hand over the interpreter (GIL builds).

While a grace period waits, the driver holds a handoff gate and flags every
reader of its snapshot; a reader that leaves a section meanwhile steps aside
on the gate, at most once per gate, outside its section, for at most a switch
interval. These tests check the protocol's invariants, not its speed (that is
``benchmarks/readside.py --busy``). Every test runs against both flavors.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import pytest

import rcu
from rcu import _grace
from rcu._reader import HOLDOUT, NOT_WAITING, STEP_ASIDE, Reader
from tests.rcu.helpers import PATIENCE, Background, ParkedReader, join, start, wait_until


def _boundary(domain: rcu.Domain, reader: Reader) -> Callable[[], None]:
    """What a vCPU does between two blocks, in the domain's flavor."""
    if domain.flavor == "qsbr":
        return reader.quiescent_state

    def boundary() -> None:
        reader.unlock()
        reader.lock()

    return boundary


class Bystander:
    """A registered reader that is not a holdout and crosses one boundary on request."""

    def __init__(self, domain: rcu.Domain) -> None:
        self.domain = domain
        self.ready = threading.Event()
        self.go = threading.Event()
        self.crossed = threading.Event()
        self.stop = threading.Event()
        self.reader: Reader | None = None
        self.ctr_while_stepping: list[int] = []
        self.thread = start(self._run, "bystander")
        assert self.ready.wait(PATIENCE)

    def _run(self) -> None:
        reader = self.reader = self.domain.reader()
        if self.domain.flavor == "epoch":
            self.ready.set()  # outside any section until asked: no holdout
            self.go.wait(PATIENCE)
            reader.lock()
        else:
            reader.offline()
            self.ready.set()
            self.go.wait(PATIENCE)
            reader.online()
        _boundary(self.domain, reader)()
        self.crossed.set()
        self.stop.wait(PATIENCE)
        if self.domain.flavor == "epoch":
            reader.unlock()
        else:
            reader.offline()
        self.domain.unregister_thread()

    def finish(self) -> None:
        self.go.set()
        self.stop.set()
        join(self.thread)


@pytest.fixture
def gil(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behave as a GIL build, whatever this interpreter is."""
    monkeypatch.setattr(_grace, "_gil_enabled", lambda: True)


@pytest.mark.usefixtures("gil")
def test_waiting_grace_period_arms_a_gate_and_flags_every_reader(domain: rcu.Domain) -> None:
    bystander = Bystander(domain)
    holdout = ParkedReader(domain, name="holdout")
    sync = Background(domain.synchronize)
    gp = domain._grace.state
    assert wait_until(lambda: gp.gate is not None), "no gate while a grace period waits"
    holdout_reader = next(r for r in domain._registry._records if r.thread is holdout.thread)
    assert bystander.reader is not None
    assert holdout_reader.waiting == HOLDOUT
    assert bystander.reader.waiting == STEP_ASIDE
    holdout.finish()
    assert sync.outcome() is True
    # The grace period is over: no gate, no flag left behind.
    assert domain._grace.state.gate is None
    assert all(r.waiting == NOT_WAITING for r in domain._registry._records)
    bystander.finish()


@pytest.mark.usefixtures("gil")
def test_bystander_steps_aside_once_per_gate_and_never_inside_a_section(
    domain: rcu.Domain,
) -> None:
    bystander = Bystander(domain)
    holdout = ParkedReader(domain, name="holdout")
    sync = Background(domain.synchronize)
    assert wait_until(lambda: domain._grace.state.gate is not None)
    gate = domain._grace.state.gate
    # The driver is parked on a holdout: the gate stays shut, so the
    # bystander's step aside ends by its bound (a switch interval), not by
    # the driver. It must not wait for the holdout's section.
    bystander.go.set()
    assert bystander.crossed.wait(PATIENCE), "a bystander waited for a holdout"
    assert bystander.reader is not None
    assert bystander.reader.stepped is gate
    assert not sync.done.is_set(), "the grace period ended under its holdout"
    holdout.finish()
    assert sync.outcome() is True
    bystander.finish()


@pytest.mark.usefixtures("gil")
def test_holdout_signals_then_steps_aside_and_the_grace_period_ends(domain: rcu.Domain) -> None:
    stop = threading.Event()
    entered = threading.Event()
    boundaries = [0]

    def busy() -> None:
        reader = domain.reader()
        if domain.flavor == "epoch":
            reader.lock()
        boundary = _boundary(domain, reader)
        entered.set()
        while not stop.is_set():
            boundary()
            boundaries[0] += 1
        if domain.flavor == "epoch":
            reader.unlock()
        else:
            reader.offline()
        domain.unregister_thread()

    thread = start(busy, "busy-reader")
    assert entered.wait(PATIENCE)
    try:
        for _ in range(50):
            assert domain.synchronize(timeout=PATIENCE) is True
        assert domain._grace.state.gate is None
    finally:
        stop.set()
        join(thread)
    assert boundaries[0] > 0


def test_without_a_gil_no_gate_is_armed(
    domain: rcu.Domain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_grace, "_gil_enabled", lambda: False)
    bystander = Bystander(domain)
    holdout = ParkedReader(domain, name="holdout")
    sync = Background(domain.synchronize)
    holdout_reader = next(r for r in domain._registry._records if r.thread is holdout.thread)
    assert wait_until(lambda: holdout_reader.waiting == HOLDOUT)
    assert domain._grace.state.gate is None
    assert bystander.reader is not None
    assert bystander.reader.waiting == NOT_WAITING
    bystander.go.set()
    assert bystander.crossed.wait(PATIENCE)
    assert bystander.reader.stepped is None
    holdout.finish()
    assert sync.outcome() is True
    bystander.finish()


@pytest.mark.usefixtures("gil")
def test_handoff_keeps_guarantee_one_under_a_tiny_switch_interval(domain: rcu.Domain) -> None:
    """Readers copy a published version, cross boundaries, and check it was never reclaimed."""
    ptr = rcu.Pointer([0, False], domain)  # [version, reclaimed]
    stop = threading.Event()
    errors: list[str] = []

    def reader_thread() -> None:
        reader = domain.reader()
        if domain.flavor == "epoch":
            reader.lock()
        boundary = _boundary(domain, reader)
        while not stop.is_set():
            seen = ptr.load()
            for _ in range(20):
                if seen[1]:
                    errors.append(f"version {seen[0]} reclaimed under a reader")
            boundary()
        if domain.flavor == "epoch":
            reader.unlock()
        else:
            reader.offline()
        domain.unregister_thread()

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    threads = [start(reader_thread, f"reader-{i}") for i in range(4)]
    try:
        for version in range(1, 300):
            old = ptr.exchange([version, False])
            assert domain.synchronize(timeout=PATIENCE) is True
            old[1] = True  # reclaim: no reader may still look at it
    finally:
        stop.set()
        sys.setswitchinterval(old_interval)
        join(*threads)
    assert errors == []


@pytest.mark.usefixtures("gil")
def test_a_grace_period_with_waiters_hands_over_to_them_and_the_first_ends_it(
    domain: rcu.Domain,
) -> None:
    bystander = Bystander(domain)
    holdout = ParkedReader(domain, name="holdout")
    driver = Background(domain.synchronize, name="driver")
    assert wait_until(lambda: domain._grace.state.gate is not None)
    joiners = [Background(domain.synchronize, name=f"joiner-{i}") for i in range(3)]
    grace = domain._grace
    assert wait_until(lambda: grace._sleepers == 3), "the joiners did not wait for the driver"
    holdout.finish()
    assert driver.outcome() is True
    for joiner in joiners:
        assert joiner.outcome() is True
    # Whoever ended the handoff opened the gate once and cleared every flag.
    assert domain._grace._handoff is None
    assert domain._grace.state.gate is None
    assert all(r.waiting == NOT_WAITING for r in domain._registry._records)
    bystander.finish()


@pytest.mark.usefixtures("gil")
def test_a_waiter_that_times_out_leaves_the_drivers_handoff_alone(domain: rcu.Domain) -> None:
    holdout = ParkedReader(domain, name="holdout")
    driver = Background(domain.synchronize, name="driver")
    assert wait_until(lambda: domain._grace.state.gate is not None)
    handoff = domain._grace._handoff
    assert domain.synchronize(timeout=0.05) is False  # joins, times out
    assert domain._grace._handoff is handoff, "a timed-out waiter took the running driver's gate"
    holdout.finish()
    assert driver.outcome() is True
    assert domain._grace._handoff is None


@pytest.mark.usefixtures("gil")
def test_statistics_count_the_time_readers_stepped_aside(domain: rcu.Domain) -> None:
    assert (domain.statistics().handoffs, domain.statistics().handoff_time) == (0, 0.0)
    bystander = Bystander(domain)
    holdout = ParkedReader(domain, name="holdout")
    sync = Background(domain.synchronize)
    assert wait_until(lambda: domain._grace.state.gate is not None)
    bystander.go.set()  # steps aside once, until its bound: the gate stays shut
    assert bystander.crossed.wait(PATIENCE)
    stats = domain.statistics()
    assert stats.handoffs == 1
    assert stats.handoff_time > 0
    holdout.finish()
    assert sync.outcome() is True
    bystander.finish()  # unregisters: its counts stay with the domain
    assert domain.statistics().handoffs >= 1
    assert domain.statistics().handoff_time >= stats.handoff_time


def test_a_holdout_of_a_later_grace_period_does_not_step_aside(
    qsbr_domain: rcu.Domain, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the model (tests/model, BUSTED=8): a qsbr reader in the slow
    # path of its quiescent state while a new grace period bumps the counter
    # must not block on that grace period's gate, which waits for it.
    monkeypatch.setattr(sys, "getswitchinterval", lambda: 5.0)  # a step aside would show
    reader = qsbr_domain.reader()
    gp = qsbr_domain._grace.state
    gate = threading.Lock()
    gate.acquire()
    gp.gate = gate
    try:
        gp.ctr += 1  # the bump: the reader's counter is now a holdout's
        reader._flagged()
        assert reader.stepped is None, "a holdout stepped aside for its own grace period"
        reader.quiescent_state()  # its counter is current again: it may step aside
        gate.release()
        reader._flagged()
        assert reader.stepped is gate
    finally:
        gp.gate = None
    qsbr_domain.unregister_thread()
