"""Guarantee 1: synchronize() waits for exactly the read sections that began before it.

Also guarantee 7 (concurrent synchronize() callers share grace periods).
Every test runs against both flavors.
"""

from __future__ import annotations

import threading

import pytest

import rcu
from tests.rcu.helpers import (
    GLANCE,
    PATIENCE,
    Background,
    ParkedReader,
    join,
    start,
    wait_until,
)


def test_synchronize_without_readers_returns(domain: rcu.Domain) -> None:
    assert domain.synchronize() is True
    assert domain.synchronize(timeout=0) is True
    assert domain.statistics().grace_periods == 2


def test_parked_reader_blocks_synchronize(domain: rcu.Domain) -> None:
    reader = ParkedReader(domain)
    sync = Background(domain.synchronize)
    assert not sync.returned_within(GLANCE), "synchronize() returned under a reader"
    reader.finish()
    assert sync.outcome() is True


def test_timeout_reports_false_and_later_call_succeeds(domain: rcu.Domain) -> None:
    reader = ParkedReader(domain)
    assert domain.synchronize(timeout=GLANCE) is False
    reader.finish()
    assert domain.synchronize(timeout=PATIENCE) is True


def test_reader_that_starts_later_does_not_delay(domain: rcu.Domain) -> None:
    early = ParkedReader(domain, name="early")
    sync = Background(domain.synchronize)
    assert not sync.returned_within(GLANCE)
    # Wait until the grace period has started (the early reader is flagged),
    # so that the late reader's section begins after it.
    assert wait_until(lambda: domain._grace.state.ctr > 1)
    late = ParkedReader(domain, name="late")
    early.finish()
    assert sync.outcome() is True, "synchronize() waited for a later section"
    late.finish()


def test_nested_sections_hold_until_outermost_ends(domain: rcu.Domain) -> None:
    gate = threading.Event()
    entered = threading.Event()

    def nested() -> None:
        with domain.read(), domain.read():
            entered.set()
            assert gate.wait(PATIENCE)
        if domain.flavor == "qsbr":
            domain.offline()

    thread = start(nested, "nested-reader")
    assert entered.wait(PATIENCE)
    sync = Background(domain.synchronize)
    assert not sync.returned_within(GLANCE)
    gate.set()
    assert sync.outcome() is True
    join(thread)


def test_nesting_depth_is_counted(epoch_domain: rcu.Domain) -> None:
    r = epoch_domain.reader()
    r.lock()
    r.lock()
    r.unlock()
    assert epoch_domain.in_read_section()
    assert r.ctr != 0
    r.unlock()
    assert not epoch_domain.in_read_section()
    assert r.ctr == 0


def test_concurrent_synchronize_callers_share_grace_periods(domain: rcu.Domain) -> None:
    reader = ParkedReader(domain)
    before = domain.statistics().grace_periods
    callers = [Background(domain.synchronize, name=f"sync-{i}") for i in range(16)]
    assert not any(c.returned_within(0.01) for c in callers)
    reader.finish()
    assert all(c.outcome() is True for c in callers)
    # One grace period was running when the late callers arrived; they all
    # share the next one: at most two, never sixteen.
    assert domain.statistics().grace_periods - before <= 2


def test_many_readers_all_waited_for(domain: rcu.Domain) -> None:
    readers = [ParkedReader(domain, name=f"reader-{i}") for i in range(8)]
    sync = Background(domain.synchronize)
    for reader in readers[:-1]:
        reader.finish()
        assert not sync.returned_within(0.02)
    readers[-1].finish()
    assert sync.outcome() is True


@pytest.mark.parametrize("calls", [1, 5])
def test_grace_period_latency_recorded(domain: rcu.Domain, calls: int) -> None:
    for _ in range(calls):
        domain.synchronize()
    latency = domain.statistics().gp_latency
    assert latency.count == calls
    assert 0 <= latency.p50 <= latency.p99 <= latency.max


def test_a_section_that_nests_after_the_grace_period_began_still_holds_it(
    epoch_domain: rcu.Domain,
) -> None:
    gate, nested, entered = threading.Event(), threading.Event(), threading.Event()

    def reader() -> None:
        r = epoch_domain.reader()
        with r:
            entered.set()
            assert gate.wait(PATIENCE)
            with r:  # nesting must not refresh the section's counter
                pass
            nested.set()
            assert gate.wait(PATIENCE)
            threading.Event().wait(GLANCE)
        epoch_domain.unregister_thread()

    thread = start(reader, "nesting-reader")
    assert entered.wait(PATIENCE)
    sync = Background(epoch_domain.synchronize)
    assert wait_until(lambda: epoch_domain._grace.state.ctr > 1)
    gate.set()
    assert nested.wait(PATIENCE)
    assert not sync.returned_within(GLANCE / 4), "a nested lock looked like a new section"
    assert sync.outcome() is True
    join(thread)


def test_relock_is_a_quiescent_point_of_a_long_section(epoch_domain: rcu.Domain) -> None:
    domain = epoch_domain
    at_boundary, boundary_done, release = threading.Event(), threading.Event(), threading.Event()

    def long_reader() -> None:
        r = domain.reader()
        r.lock()
        at_boundary.wait(PATIENCE)
        r.relock()  # still inside a section, but a new one
        boundary_done.set()
        release.wait(PATIENCE)
        r.unlock()
        domain.unregister_thread()

    thread = start(long_reader, "long-reader")
    assert wait_until(lambda: domain.statistics().readers == 1)
    first = Background(domain.synchronize, name="first")
    assert not first.returned_within(GLANCE), "synchronize() returned under a reader"
    at_boundary.set()
    assert first.outcome() is True, "relock() did not end the section a grace period waited for"
    assert boundary_done.wait(PATIENCE)
    assert domain.in_read_section() is False
    second = Background(domain.synchronize, name="second")
    assert not second.returned_within(GLANCE), "a grace period missed the section relock() began"
    release.set()
    assert second.outcome() is True
    join(thread)


@pytest.mark.parametrize("depth", [0, 2])
def test_relock_outside_or_inside_a_nested_section(epoch_domain: rcu.Domain, depth: int) -> None:
    r = epoch_domain.reader()
    if depth == 0:
        with pytest.raises(rcu.ReadSectionError):
            r.relock()
        return
    r.lock()
    r.lock()
    sync = Background(epoch_domain.synchronize)
    assert wait_until(lambda: r.waiting), "the grace period never flagged the reader"
    r.relock()  # nested: changes nothing, the section goes on
    assert r.depth == 2
    assert not sync.returned_within(GLANCE), "relock() inside a nested section ended it"
    r.unlock()
    r.unlock()
    assert sync.outcome() is True
    epoch_domain.unregister_thread()
