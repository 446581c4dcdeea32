"""The polled grace-period API: start_poll, poll, cond_synchronize."""

from __future__ import annotations

import functools
import threading

import pytest

import rcu
from tests.rcu.helpers import GLANCE, PATIENCE, Background, ParkedReader, wait_until


def test_cookie_taken_inside_a_reader_is_not_complete_while_it_reads(
    domain: rcu.Domain,
) -> None:
    reader = ParkedReader(domain)
    cookie = domain.start_poll()
    assert not threading.Event().wait(GLANCE)
    assert domain.poll(cookie) is False, "cookie completed under a reader"
    assert domain.cond_synchronize(cookie, timeout=GLANCE) is False
    reader.finish()
    assert domain.cond_synchronize(cookie, timeout=PATIENCE) is True
    assert domain.poll(cookie) is True


def test_cookie_taken_before_synchronize_is_complete_after_it(domain: rcu.Domain) -> None:
    cookie = domain.start_poll()
    assert domain.synchronize()
    assert domain.poll(cookie) is True


def test_cookie_from_start_poll_completes_without_anyone_waiting(domain: rcu.Domain) -> None:
    reader = ParkedReader(domain)
    cookie = domain.start_poll()
    reader.finish()
    # Nobody calls synchronize: the domain's worker drives the grace period.
    assert wait_until(lambda: domain.poll(cookie)), "a polled grace period never completed"


def test_cookies_are_ordered(domain: rcu.Domain) -> None:
    first = domain.start_poll()
    domain.synchronize()
    second = domain.start_poll()
    assert first < second
    assert domain.cond_synchronize(second, timeout=PATIENCE)
    assert domain.poll(first)
    assert domain.poll(second)


def test_cond_synchronize_on_completed_cookie_returns_at_once_even_in_section(
    domain: rcu.Domain,
) -> None:
    cookie = domain.start_poll()
    assert domain.synchronize()
    with domain.read():
        assert domain.cond_synchronize(cookie) is True
    domain.unregister_thread()


def test_concurrent_pollers_share_grace_periods(domain: rcu.Domain) -> None:
    reader = ParkedReader(domain)
    before = domain.statistics().grace_periods
    cookies = [domain.start_poll() for _ in range(50)]
    assert len(set(cookies)) <= 2
    waiters = [Background(functools.partial(domain.cond_synchronize, c)) for c in cookies[:4]]
    reader.finish()
    assert all(w.outcome() is True for w in waiters)
    assert domain.statistics().grace_periods - before <= 2


@pytest.mark.parametrize("bad", ["1", 1.5, None, True])
def test_poll_rejects_non_cookies(domain: rcu.Domain, bad: object) -> None:
    with pytest.raises(TypeError):
        domain.poll(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        domain.cond_synchronize(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -3, 10**9])
def test_poll_rejects_foreign_cookies(domain: rcu.Domain, bad: int) -> None:
    with pytest.raises(ValueError, match="not a grace-period cookie"):
        domain.poll(bad)


class WorkerWaits:
    """Count the callback worker's grace-period waits (each pass of its loop makes one).

    A worker that retried an abandoned wait without sleeping would make
    thousands; past ``limit`` the instrumented wait raises instead, which
    fails the worker (and the close that waits for it) rather than letting it
    spin for the rest of the run.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, domain: rcu.Domain, limit: int) -> None:
        self.calls = 0
        self._limit = limit
        self._worker_name = f"rcu-callbacks-{domain.name}"
        self._wait_for = domain._grace.wait_for
        monkeypatch.setattr(domain._grace, "wait_for", self._counted)

    def _counted(self, target: int, deadline: float | None, abort: object = None) -> bool:
        if threading.current_thread().name == self._worker_name:
            self.calls += 1  # the worker is the only thread that writes it
            if self.calls > self._limit:
                raise RuntimeError(f"the worker waited {self.calls} times: it spins")
        return self._wait_for(target, deadline, abort)  # type: ignore[arg-type]

    def worker_alive(self) -> bool:
        return any(t.name == self._worker_name for t in threading.enumerate())


def test_close_without_drain_abandons_a_polled_request_without_spinning(
    flavor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = rcu.Domain(flavor, stall_timeout=None)
    waits = WorkerWaits(monkeypatch, d, limit=100)
    reader = ParkedReader(d)
    try:
        cookie = d.start_poll()
        # The worker drives the polled grace period, which waits for the reader.
        assert wait_until(lambda: waits.calls == 1)
        closing = Background(lambda: d.close(drain=False), "close")
        # close(drain=False) does not wait for readers, and neither does the worker.
        assert closing.outcome() is None
        assert wait_until(lambda: not waits.worker_alive()), "the worker outlived close()"
        assert not threading.Event().wait(GLANCE)  # the reader still reads meanwhile
        assert waits.calls == 1, "the worker retried an abandoned wait"
        assert not d.poll(cookie)
    finally:
        reader.finish()
    stats = d.statistics()
    assert (stats.callbacks_queued, stats.callbacks_dropped, stats.pending) == (0, 0, 0)
    assert stats.grace_periods == 0  # the request was abandoned, not driven
    # The cookie stays valid: a caller that waits for it drives its grace period.
    assert d.cond_synchronize(cookie, timeout=PATIENCE)
    assert d.poll(cookie)
    assert waits.calls == 1


def test_close_with_drain_completes_a_polled_request_once_the_reader_leaves(
    flavor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = rcu.Domain(flavor, stall_timeout=None)
    waits = WorkerWaits(monkeypatch, d, limit=100)
    reader = ParkedReader(d)
    try:
        cookie = d.start_poll()
        assert wait_until(lambda: waits.calls == 1)
        closing = Background(d.close, "close")
        assert not closing.returned_within(GLANCE), "close() drained past a reader"
        assert waits.calls == 1, "the worker retried its wait instead of sleeping"
    finally:
        reader.finish()
    assert closing.outcome() is None
    assert d.poll(cookie)
    assert not waits.worker_alive()
    assert waits.calls == 1
    assert d.statistics().grace_periods == 1
