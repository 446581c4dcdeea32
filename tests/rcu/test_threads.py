"""Guarantee 5: registration, and threads that exit."""

from __future__ import annotations

import gc
import threading

import pytest

import rcu
from tests.rcu.helpers import PATIENCE, join, start


def _registered(domain: rcu.Domain) -> int:
    return domain.statistics().readers


def test_first_read_registers_and_exit_unregisters(domain: rcu.Domain) -> None:
    assert _registered(domain) == 0

    def read_once() -> None:
        with domain.read():
            pass
        assert _registered(domain) == 1
        if domain.flavor == "qsbr":
            domain.offline()

    join(start(read_once, "reader"))
    gc.collect()
    assert _registered(domain) == 0


def test_update_side_calls_do_not_register(domain: rcu.Domain) -> None:
    domain.synchronize()
    domain.call_rcu(lambda: None)
    assert domain.barrier(PATIENCE)
    cookie = domain.start_poll()
    domain.poll(cookie)
    assert _registered(domain) == 0
    assert not domain.in_read_section()


def test_explicit_register_is_idempotent(domain: rcu.Domain) -> None:
    first = domain.register_thread()
    assert domain.register_thread() is first
    assert domain.reader() is first
    assert _registered(domain) == 1
    domain.unregister_thread()
    assert _registered(domain) == 0
    domain.unregister_thread()  # not registered: nothing to do
    assert domain.reader() is not first


def test_thread_exiting_inside_section_is_reported_and_released(domain: rcu.Domain) -> None:
    entered = threading.Event()

    def leave_section_open() -> None:
        domain.reader().lock()
        entered.set()

    with pytest.warns(rcu.ReaderExitWarning, match="exited inside a read section"):
        thread = start(leave_section_open, "careless-reader")
        assert entered.wait(PATIENCE)
        join(thread)
        gc.collect()
    assert domain.synchronize(timeout=PATIENCE) is True
    assert _registered(domain) == 0


def test_exit_while_grace_period_waits_releases_it(domain: rcu.Domain) -> None:
    entered = threading.Event()
    go = threading.Event()

    def reader() -> None:
        domain.reader().lock()
        entered.set()
        assert go.wait(PATIENCE)

    thread = start(reader, "exiting-reader")
    assert entered.wait(PATIENCE)
    result: list[bool] = []
    sync = start(lambda: result.append(domain.synchronize(timeout=PATIENCE)), "sync")
    with pytest.warns(rcu.ReaderExitWarning):
        go.set()
        join(thread)
        gc.collect()
        join(sync)
    assert result == [True]


def test_reader_handle_keeps_working_across_many_threads(domain: rcu.Domain) -> None:
    barrier = threading.Barrier(8)

    def churn() -> None:
        barrier.wait(PATIENCE)
        for _ in range(200):
            with domain.read():
                pass
            domain.quiescent_state()
        domain.unregister_thread()

    threads = [start(churn, f"churn-{i}") for i in range(8)]
    for _ in range(20):
        assert domain.synchronize(timeout=PATIENCE)
    join(*threads)
    assert _registered(domain) == 0


def test_a_handle_kept_after_unregister_fails_loudly(epoch_domain: rcu.Domain) -> None:
    old = epoch_domain.reader()
    epoch_domain.unregister_thread()
    with pytest.raises(rcu.RcuError, match="unregistered thread"):
        old.lock()
    fresh = epoch_domain.reader()
    assert fresh is not old
    with fresh:
        assert epoch_domain.in_read_section()
    epoch_domain.unregister_thread()
