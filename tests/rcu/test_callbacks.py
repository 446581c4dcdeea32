"""The call_rcu engine: guarantees 2, 3, 4 and 7 (the callback parts)."""

from __future__ import annotations

import functools
import subprocess
import sys
import textwrap
import threading
from collections import Counter

import pytest

import rcu
from tests.rcu.helpers import GLANCE, PATIENCE, ParkedReader, join, open_domain, start


def test_callback_runs_after_grace_period_not_before(domain: rcu.Domain) -> None:
    reader = ParkedReader(domain)
    ran = threading.Event()
    domain.call_rcu(ran.set)
    assert not ran.wait(GLANCE), "callback ran while a pre-existing reader still read"
    reader.finish()
    assert ran.wait(PATIENCE)


def test_callback_never_runs_on_the_callers_stack(domain: rcu.Domain) -> None:
    where: list[int] = []
    domain.call_rcu(lambda: where.append(threading.get_ident()))
    assert where == []
    assert domain.barrier(PATIENCE)
    assert where
    assert where[0] != threading.get_ident()


def test_arguments_are_passed(domain: rcu.Domain) -> None:
    got: list[tuple[object, ...]] = []
    domain.call_rcu(lambda *a, **k: got.append((a, k)), 1, 2, key="v")
    assert domain.barrier(PATIENCE)
    assert got == [((1, 2), {"key": "v"})]


def test_each_thread_order_kept_and_each_runs_once(domain: rcu.Domain) -> None:
    seen: list[tuple[int, int]] = []
    per_thread = 2000

    def produce(tid: int) -> None:
        for seq in range(per_thread):
            domain.call_rcu(seen.append, (tid, seq))

    threads = [start(functools.partial(produce, t), f"producer-{t}") for t in range(4)]
    join(*threads)
    assert domain.barrier(PATIENCE)
    assert Counter(seen) == Counter((t, s) for t in range(4) for s in range(per_thread))
    for tid in range(4):
        assert [s for t, s in seen if t == tid] == list(range(per_thread))
    stats = domain.statistics()
    assert stats.callbacks_invoked == stats.callbacks_queued == 4 * per_thread
    assert stats.pending == 0


def test_errors_go_to_on_error_and_do_not_stop_the_rest(flavor: str) -> None:
    errors: list[tuple[BaseException, object]] = []
    ran: list[int] = []

    def boom() -> None:
        raise ValueError("boom")

    with open_domain(flavor, on_error=lambda exc, fn: errors.append((exc, fn))) as d:
        d.call_rcu(ran.append, 1)
        d.call_rcu(boom)
        d.call_rcu(ran.append, 2)
        assert d.barrier(PATIENCE)
        stats = d.statistics()
    assert ran == [1, 2]
    assert len(errors) == 1
    assert isinstance(errors[0][0], ValueError)
    assert errors[0][1] is boom
    assert stats.callbacks_failed == 1
    assert stats.callbacks_invoked == 3


def test_default_error_report_goes_to_stderr(
    domain: rcu.Domain, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> None:
        raise RuntimeError("reclaim failed")

    domain.call_rcu(broken)
    assert domain.barrier(PATIENCE)
    err = capsys.readouterr().err
    assert "Exception in RCU callback" in err
    assert "RuntimeError: reclaim failed" in err


def test_failing_error_handler_is_reported_too(capsys: pytest.CaptureFixture[str]) -> None:
    def bad_handler(exc: BaseException, fn: object) -> None:
        raise KeyError("handler")

    with open_domain(on_error=bad_handler) as d:
        d.call_rcu(lambda: 1 / 0)
        ran = threading.Event()
        d.call_rcu(ran.set)
        assert d.barrier(PATIENCE)
        assert ran.is_set()
    assert "on_error handler" in capsys.readouterr().err


def test_barrier_waits_for_earlier_callbacks_of_all_threads(domain: rcu.Domain) -> None:
    reader = ParkedReader(domain)
    done: list[int] = []
    producers = [
        start(functools.partial(domain.call_rcu, done.append, i), f"p{i}") for i in range(5)
    ]
    join(*producers)
    assert domain.barrier(timeout=GLANCE) is False
    reader.finish()
    assert domain.barrier(timeout=PATIENCE) is True
    assert sorted(done) == list(range(5))


def test_barrier_from_a_callback_raises(domain: rcu.Domain) -> None:
    errors: list[BaseException] = []

    def nested_barrier() -> None:
        try:
            domain.barrier()
        except rcu.RcuError as exc:
            errors.append(exc)

    domain.call_rcu(nested_barrier)
    assert domain.barrier(PATIENCE)
    assert len(errors) == 1
    assert "would wait for itself" in str(errors[0])


def test_callbacks_may_queue_callbacks(domain: rcu.Domain) -> None:
    order: list[str] = []

    def first() -> None:
        order.append("first")
        domain.call_rcu(order.append, "second")

    domain.call_rcu(first)
    assert domain.barrier(PATIENCE)
    assert domain.barrier(PATIENCE)
    assert order == ["first", "second"]


def test_close_drains_including_callbacks_queued_by_callbacks(flavor: str) -> None:
    order: list[int] = []
    d = rcu.Domain(flavor, batch_delay=10.0)  # only close() starts the grace period

    def chain(n: int) -> None:
        order.append(n)
        if n < 5:
            d.call_rcu(chain, n + 1)

    d.call_rcu(chain, 0)
    d.close()
    assert order == [0, 1, 2, 3, 4, 5]
    stats = d.statistics()
    assert stats.pending == 0
    assert stats.callbacks_invoked == 6
    with pytest.raises(rcu.DomainClosedError):
        d.call_rcu(print)


def test_close_without_drain_drops_and_counts(flavor: str) -> None:
    d = rcu.Domain(flavor, stall_timeout=None)
    reader = ParkedReader(d)  # keeps everything queued
    ran: list[int] = []
    for i in range(10):
        d.call_rcu(ran.append, i)
    waiter = start(lambda: d.barrier(PATIENCE), "barrier-waiter")
    assert not ran
    d.close(drain=False)
    join(waiter)  # a barrier whose callbacks were dropped returns, not hangs
    reader.finish()
    stats = d.statistics()
    assert stats.callbacks_dropped + stats.callbacks_invoked == 10
    assert stats.pending == 0
    assert len(ran) == stats.callbacks_invoked


def test_close_from_a_callback_raises(domain: rcu.Domain) -> None:
    errors: list[BaseException] = []

    def close_me() -> None:
        try:
            domain.close()
        except rcu.RcuError as exc:
            errors.append(exc)

    domain.call_rcu(close_me)
    assert domain.barrier(PATIENCE)
    assert errors
    assert not domain.closed


@pytest.mark.timeout(60)
def test_backlog_never_exceeds_max_pending(flavor: str) -> None:
    counts = Counter[int]()
    lock = threading.Lock()

    def note(i: int) -> None:
        with lock:
            counts[i] += 1

    with open_domain(flavor, max_pending=100, batch_size=1000, batch_delay=1.0) as d:

        def produce(p: int) -> None:
            for i in range(3000):
                d.call_rcu(note, p * 10_000 + i)

        producers = [start(functools.partial(produce, p), f"p{p}") for p in range(3)]
        join(*producers)
        assert d.barrier(PATIENCE)
        stats = d.statistics()
    assert stats.peak_pending <= 100
    assert len(counts) == 9000
    assert set(counts.values()) == {1}
    # The producers forced grace periods instead of waiting the batch delay.
    assert stats.grace_periods < 9000 // 10


def test_backlog_inside_read_section_forces_up_to_a_ceiling(flavor: str) -> None:
    ran: list[int] = []
    with open_domain(flavor, max_pending=3, batch_delay=5.0) as d:
        p = rcu.Pointer(0, d)
        with d.read():
            for i in range(6):
                d.call_rcu(ran.append, i)  # past the bound: must not block here
            assert d.statistics().pending == 6  # 2 * max_pending
            with pytest.raises(rcu.ReadSectionError, match="leave it"):
                d.call_rcu(ran.append, 6)
            with pytest.raises(rcu.ReadSectionError):
                p.replace(1, reclaim=ran.append)
            assert p.load() == 0  # replace is all or nothing
            assert d.statistics().pending == 6  # nothing was queued
        d.call_rcu(ran.append, 6)  # outside the section it waits for space instead
        d.unregister_thread()
        assert d.barrier(PATIENCE)
        stats = d.statistics()
    assert ran == list(range(7))
    assert stats.peak_pending == 6
    assert stats.callbacks_queued == stats.callbacks_invoked == 7


@pytest.mark.timeout(60)
@pytest.mark.parametrize("attempt", range(8))  # a lost force showed in about 1 run of 4
def test_online_qsbr_producers_keep_the_backlog_bound(attempt: int) -> None:
    per_producer = 300
    with open_domain("qsbr", max_pending=10, batch_size=1000, batch_delay=5.0) as d:
        held_up: list[str] = []

        def produce(p: int) -> None:
            me = d.register_thread()  # online: would hold every grace period up
            for i in range(per_producer):
                d.call_rcu(int, i)  # waits for space offline, as synchronize() does
                if me.ctr == 0:
                    held_up.append(f"producer {p} left offline")
            d.unregister_thread()

        producers = [start(functools.partial(produce, p), f"online-{p}") for p in range(3)]
        join(*producers)
        assert d.barrier(PATIENCE)
        stats = d.statistics()
    assert held_up == []
    assert stats.peak_pending <= 10
    assert stats.callbacks_invoked == 3 * per_producer


def test_online_qsbr_producer_in_a_read_section_only_forces() -> None:
    with open_domain("qsbr", max_pending=2, batch_delay=5.0) as d:
        me = d.register_thread()
        with d.read():  # may hold references: must not go offline
            for i in range(4):
                d.call_rcu(int, i)
                assert me.ctr != 0
        d.unregister_thread()
        assert d.barrier(PATIENCE)
        assert d.statistics().callbacks_invoked == 4


def test_close_from_an_online_qsbr_thread_drains(qsbr_domain: rcu.Domain) -> None:
    d = rcu.Domain("qsbr", batch_delay=5.0, stall_timeout=None)
    ran = threading.Event()
    d.register_thread()
    d.call_rcu(ran.set)
    d.close()  # the worker's grace period must not wait for this thread
    assert ran.is_set()
    d.unregister_thread()


def test_a_callback_that_reads_does_not_hold_later_grace_periods(flavor: str) -> None:
    errors: list[BaseException] = []
    with open_domain(flavor, on_error=lambda exc, fn: errors.append(exc)) as d:
        p = rcu.Pointer(1, d)

        def reads() -> None:
            with d.read():
                p.load()

        def leaves_a_section_open() -> None:
            d.read_lock()

        d.call_rcu(reads)
        assert d.barrier(PATIENCE)
        assert d.synchronize(timeout=PATIENCE), "the worker holds grace periods"
        if flavor == "epoch":
            d.call_rcu(leaves_a_section_open)
            assert d.barrier(PATIENCE)
            assert d.synchronize(timeout=PATIENCE)
            assert any(isinstance(e, rcu.ReadSectionError) for e in errors)


def test_call_rcu_blocked_on_the_backlog_raises_if_closed_meanwhile() -> None:
    d = rcu.Domain(max_pending=1, stall_timeout=None)
    reader = ParkedReader(d)  # keeps the backlog full
    d.call_rcu(int)
    outcome: list[BaseException | None] = []

    def producer() -> None:
        try:
            d.call_rcu(int)
            outcome.append(None)
        except rcu.DomainClosedError as exc:
            outcome.append(exc)

    thread = start(producer, "blocked-producer")
    assert not threading.Event().wait(GLANCE)
    assert outcome == []  # blocked on the backlog
    d.close(drain=False)
    join(thread)
    reader.finish()
    assert len(outcome) == 1
    assert isinstance(outcome[0], rcu.DomainClosedError)


EXIT_SCRIPT = textwrap.dedent(
    """
    import rcu, sys
    d = rcu.Domain(batch_delay=60.0)   # nothing would run before exit on its own
    q = rcu.Domain("qsbr", batch_delay=60.0)
    q.register_thread()                # the exiting thread is online in qsbr
    q.call_rcu(sys.stdout.write, "qsbr ")
    for i in range(100):
        d.call_rcu(sys.stdout.write, f"{i} ")
    rcu.call_rcu(sys.stdout.write, "default-domain ")
    """
)


def test_queued_callbacks_run_at_interpreter_exit() -> None:
    out = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    words = out.stdout.split()
    assert [w for w in words if w not in ("default-domain", "qsbr")] == [str(i) for i in range(100)]
    assert words.count("default-domain") == 1
    assert words.count("qsbr") == 1


STUCK_SCRIPT = textwrap.dedent(
    """
    import threading, rcu, sys
    d = rcu.Domain(stall_timeout=0.5, exit_timeout=0.5)
    inside = threading.Event()
    def stuck():
        with d.read():
            inside.set()
            threading.Event().wait()
    threading.Thread(target=stuck, daemon=True).start()
    inside.wait()
    d.call_rcu(print, "never")
    """
)


def test_exit_with_a_stuck_reader_reports_instead_of_hanging() -> None:
    out = subprocess.run(
        [sys.executable, "-c", STUCK_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    assert "never" not in out.stdout
    assert "RcuStallWarning" in out.stderr
