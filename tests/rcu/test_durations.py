"""Durations: inf and huge values mean no limit; the callback worker cannot die silently."""

from __future__ import annotations

import threading

import pytest

import rcu
from tests.rcu.helpers import GLANCE, PATIENCE, Background, ParkedReader, open_domain

#: inf, beyond threading.TIMEOUT_MAX, and an int that has no float.
FOREVER = [float("inf"), 1e10, 10**400]
FOREVER_IDS = ["inf", "1e10", "10**400"]


@pytest.mark.parametrize("stall_timeout", FOREVER, ids=FOREVER_IDS)
def test_endless_stall_timeout_means_no_stall_warnings(flavor: str, stall_timeout: float) -> None:
    with open_domain(flavor, stall_timeout=stall_timeout) as d:
        assert d.stall_timeout is None
        reader = ParkedReader(d)  # the worker's grace period has to wait for it
        ran = threading.Event()
        d.call_rcu(ran.set)
        assert d.barrier(timeout=GLANCE) is False
        reader.finish()
        assert d.barrier(timeout=PATIENCE) is True, "the callback worker died"
        assert ran.is_set()
        assert d.statistics().callbacks_invoked == 1


@pytest.mark.parametrize("batch_delay", [float("inf"), 1e12, 10**400], ids=FOREVER_IDS)
def test_endless_batch_delay_waits_for_a_reason_to_start(flavor: str, batch_delay: float) -> None:
    d = rcu.Domain(flavor, batch_delay=batch_delay, batch_size=3, stall_timeout=None)
    ran: list[int] = []
    d.call_rcu(ran.append, 1)
    assert d.barrier(timeout=PATIENCE) is True  # a barrier starts the grace period
    d.call_rcu(ran.append, 2)
    d.call_rcu(ran.append, 3)
    d.call_rcu(ran.append, 4)  # a full batch starts one too
    assert d.barrier(timeout=PATIENCE) is True
    d.call_rcu(ran.append, 5)
    d.close()  # and so does close
    assert ran == [1, 2, 3, 4, 5]
    assert d.statistics().callbacks_invoked == 5


@pytest.mark.parametrize("timeout", FOREVER, ids=FOREVER_IDS)
def test_endless_timeouts_wait_without_limit(domain: rcu.Domain, timeout: float) -> None:
    reader = ParkedReader(domain)
    domain.call_rcu(int)
    calls = [
        Background(lambda: domain.synchronize(timeout=timeout), "sync"),
        Background(lambda: domain.barrier(timeout=timeout), "barrier"),
        Background(lambda: domain.cond_synchronize(domain.start_poll(), timeout), "cond"),
    ]
    assert not calls[0].returned_within(GLANCE)  # waiting, not raising
    reader.finish()
    assert [call.outcome() for call in calls] == [True, True, True]


@pytest.mark.parametrize("timeout", FOREVER, ids=FOREVER_IDS)
def test_endless_timeouts_return_at_once_when_nothing_waits(
    domain: rcu.Domain, timeout: float
) -> None:
    assert domain.barrier(timeout=timeout) is True
    assert domain.synchronize(timeout=timeout) is True


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("exit_timeout", -1, ValueError),
        ("exit_timeout", float("nan"), ValueError),
        ("exit_timeout", "5", TypeError),
        ("stall_timeout", float("nan"), ValueError),
        ("stall_timeout", -(10**400), ValueError),
        ("batch_delay", float("nan"), ValueError),
        ("batch_delay", None, TypeError),
    ],
)
def test_bad_durations_raise_at_construction(option: str, value: object, error: type) -> None:
    with pytest.raises(error, match=option):
        rcu.Domain(**{option: value})  # type: ignore[arg-type]


def test_durations_are_stored_as_seconds_or_none() -> None:
    d = rcu.Domain(stall_timeout=2, exit_timeout=float("inf"))
    try:
        assert d.stall_timeout == 2.0
        assert d.exit_timeout is None
        assert rcu.Domain(exit_timeout=0).exit_timeout == 0.0
    finally:
        d.close()


def _break_the_worker(
    monkeypatch: pytest.MonkeyPatch, d: rcu.Domain, gate: threading.Event
) -> None:
    """Make the worker's grace-period wait raise once ``gate`` is set."""

    def broken(*args: object, **kwargs: object) -> bool:
        gate.wait(PATIENCE)
        raise RuntimeError("injected fault")

    monkeypatch.setattr(d._grace, "wait_for", broken)


def test_a_failing_worker_fails_the_domain_loudly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = rcu.Domain(stall_timeout=None, batch_delay=0)
    gate = threading.Event()
    _break_the_worker(monkeypatch, d, gate)
    d.call_rcu(int)
    d.call_rcu(int)
    waiting = Background(lambda: d.barrier(timeout=PATIENCE), "barrier")
    assert not waiting.returned_within(GLANCE)
    gate.set()
    with pytest.raises(rcu.RcuError, match=r"callback worker .* failed") as failed:
        waiting.outcome()  # woken, and told, instead of hanging
    assert isinstance(failed.value.__cause__, RuntimeError)
    assert "2 queued callback(s) could not run" in str(failed.value)
    err = capsys.readouterr().err
    assert "Exception in the callback worker" in err
    assert "injected fault" in err
    for call in (lambda: d.call_rcu(int), d.barrier, d.start_poll):
        with pytest.raises(rcu.RcuError, match="failed"):
            call()
    stats = d.statistics()
    assert (stats.callbacks_queued, stats.callbacks_dropped, stats.pending) == (2, 2, 0)
    with pytest.raises(rcu.RcuError, match="failed"):
        d.close()
    assert d.closed
    with pytest.raises(rcu.DomainClosedError):
        d.synchronize()


def test_a_failing_worker_wakes_producers_blocked_on_the_backlog(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = rcu.Domain(stall_timeout=None, max_pending=1)
    gate = threading.Event()
    _break_the_worker(monkeypatch, d, gate)
    d.call_rcu(int)
    producer = Background(lambda: d.call_rcu(int), "blocked-producer")
    assert not producer.returned_within(GLANCE)  # blocked on the backlog
    gate.set()
    with pytest.raises(rcu.RcuError, match="failed"):
        producer.outcome()
    with pytest.raises(rcu.RcuError):
        d.close()
    assert "injected fault" in capsys.readouterr().err


def test_a_worker_that_fails_while_closing_makes_close_raise(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = rcu.Domain(stall_timeout=None, batch_delay=60.0)
    gate = threading.Event()
    gate.set()
    d.call_rcu(int)  # the worker is waiting out the batch delay
    _break_the_worker(monkeypatch, d, gate)
    with pytest.raises(rcu.RcuError, match="1 queued callback"):
        d.close()
    assert d.statistics().callbacks_dropped == 1
    assert "injected fault" in capsys.readouterr().err
