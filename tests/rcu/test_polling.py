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
