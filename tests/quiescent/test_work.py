"""Work queued on vCPUs: run_sync, run_async, run_safe, unregister and thread exit."""

from __future__ import annotations

import collections
import random
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiescent
from tests.quiescent.helpers import (
    WAIT,
    VcpuThread,
    join_all,
    start_vcpus,
    stop_all,
    wait_for,
)


@pytest.mark.timeout(30)
def test_run_sync_runs_on_the_target_thread_and_returns_its_result() -> None:
    world = quiescent.World(name="sync")
    vcpus = start_vcpus(world, 2) + start_vcpus(world, 1, idle=True)
    try:
        for thread in vcpus:
            assert thread.cpu.run_sync(threading.get_ident) == thread.ident
            assert thread.cpu.run_sync(divmod, 7, 2, timeout=WAIT) == (3, 1)
            with pytest.raises(KeyError, match="missing"):
                thread.cpu.run_sync({}.__getitem__, "missing")
        # From one vCPU's safe point to another vCPU: allowed, it is outside running().
        first, _, idle = vcpus
        assert first.cpu.run_sync(idle.cpu.run_sync, threading.get_ident) == idle.ident
    finally:
        stop_all(vcpus)


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("fast_switching")
def test_queued_work_runs_exactly_once_in_order_on_its_vcpu() -> None:
    world = quiescent.World(name="work")
    safe_active = [False]
    violations: list[str] = []

    def block(cpu: quiescent.Vcpu) -> None:
        if safe_active[0]:
            violations.append(f"{cpu.name} ran a block during safe work")

    vcpus = start_vcpus(world, 3, block)
    by_ident = {thread.ident: thread.name for thread in vcpus}
    # One list per vCPU, appended to only by that vCPU's thread.
    ran: dict[str, list[tuple[int, int, str, bool]]] = {t.name: [] for t in vcpus}

    def item(producer: int, seq: int, kind: str) -> None:
        me = by_ident[threading.get_ident()]
        exclusive = world.in_exclusive()
        if kind == "safe":
            safe_active[0] = True
            sum(range(200))
            safe_active[0] = False
        ran[me].append((producer, seq, kind, exclusive))

    producers, per_producer = 3, 150
    queued: dict[tuple[int, int], tuple[str, str]] = {}
    queued_lock = threading.Lock()

    def producer(index: int) -> None:
        rng = random.Random(1000 + index)
        for seq in range(per_producer):
            target = rng.choice(vcpus)
            kind = rng.choice(["async", "async", "safe", "sync"])
            with queued_lock:
                queued[(index, seq)] = (target.name, kind)
            if kind == "sync":
                target.cpu.run_sync(item, index, seq, kind, timeout=WAIT)
            elif kind == "safe":
                target.cpu.run_safe(item, index, seq, kind)
            else:
                target.cpu.run_async(item, index, seq, kind)

    threads = [threading.Thread(target=producer, args=(i,), name=f"p{i}") for i in range(producers)]
    for thread in threads:
        thread.start()
    try:
        join_all(threads, 45)
    finally:
        stop_all(vcpus)  # runs what is still queued before each vCPU unregisters

    assert violations == []
    seen: collections.Counter[tuple[int, int]] = collections.Counter()
    for name, records in ran.items():
        last: dict[int, int] = {}
        for producer_index, seq, kind, exclusive in records:
            seen[(producer_index, seq)] += 1
            assert queued[(producer_index, seq)] == (name, kind), "ran on the wrong vCPU"
            assert exclusive == (kind == "safe"), f"{kind} item with in_exclusive={exclusive}"
            assert seq > last.get(producer_index, -1), "items from one producer ran out of order"
            last[producer_index] = seq
    assert set(seen) == set(queued), "some work never ran"
    assert set(seen.values()) == {1}, "some work ran twice"
    stats = world.statistics()
    assert stats.work_items == producers * per_producer + len(vcpus)  # + the stop requests
    assert stats.vcpus == 0


@settings(max_examples=25)
@given(kinds=st.lists(st.sampled_from(["async", "safe", "sync"]), max_size=20))
def test_items_of_every_kind_run_in_queue_order(kinds: list[str]) -> None:
    world = quiescent.World(name="order")
    (vcpu,) = start_vcpus(world, 1, idle=True)
    order: list[int] = []
    try:
        for index, kind in enumerate(kinds):
            if kind == "sync":
                vcpu.cpu.run_sync(order.append, index, timeout=WAIT)
            elif kind == "safe":
                vcpu.cpu.run_safe(order.append, index)
            else:
                vcpu.cpu.run_async(order.append, index)
    finally:
        vcpu.stop()
    assert order == list(range(len(kinds)))


class ParkedVcpu:
    """A vCPU thread that processes its work only when told to."""

    def __init__(self, world: quiescent.World, name: str) -> None:
        self.world = world
        self.registered = threading.Event()
        self.turn = threading.Event()
        self.kicked = threading.Event()
        self.results: list[int] = []
        self.cpu: quiescent.Vcpu | None = None
        self.unregister_at_end = True
        self._quit = False
        self.thread = threading.Thread(target=self._run, name=name)
        self.thread.start()
        wait_for(self.registered, f"{name} to register")

    def _run(self) -> None:
        cpu = self.cpu = self.world.register(name=self.thread.name, kick=self.kicked.set)
        self.registered.set()
        while True:
            wait_for(self.turn, f"the test to let {cpu.name} process its work")
            self.turn.clear()
            if self._quit:
                break
            self.results.append(cpu.process_work())
        if self.unregister_at_end:
            cpu.unregister()

    def process(self) -> None:
        self.turn.set()

    def finish(self) -> None:
        self._quit = True
        self.turn.set()
        join_all([self.thread])


@pytest.mark.timeout(30)
def test_run_sync_timeout_before_start_means_it_never_runs() -> None:
    world = quiescent.World(name="timeout")
    parked = ParkedVcpu(world, "parked")
    assert parked.cpu is not None
    calls: list[int] = []
    try:
        with pytest.raises(TimeoutError, match="it will not run"):
            parked.cpu.run_sync(calls.append, 1, timeout=0.05)
        assert parked.cpu.exit_requested  # it was kicked all the same
        parked.process()
        parked.cpu.run_sync(calls.append, 2, timeout=WAIT)
    finally:
        parked.finish()
    assert calls == [2]
    assert world.statistics().work_items == 1


@pytest.mark.timeout(30)
def test_run_sync_timeout_after_start_lets_it_finish_once() -> None:
    world = quiescent.World(name="slow")
    (vcpu,) = start_vcpus(world, 1, idle=True)
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow() -> str:
        started.set()
        wait_for(release, "the test to release the slow item")
        calls.append("done")
        return "ignored"

    try:
        with pytest.raises(TimeoutError) as info:
            vcpu.cpu.run_sync(slow, timeout=0.5)
        release.set()
        # Which of the two it was depends on the scheduler; each must keep its promise.
        if "did not finish" in str(info.value):
            wait_for(started, "the timed-out item, reported as started")
            assert vcpu.cpu.run_sync(len, calls) == 1  # FIFO: slow() finished first
        else:
            assert "it will not run" in str(info.value)
            assert vcpu.cpu.run_sync(len, calls) == 0
            assert not started.is_set()
    finally:
        release.set()
        vcpu.stop()


@pytest.mark.timeout(30)
def test_unregister_runs_queued_work_first_on_its_own_thread() -> None:
    world = quiescent.World(name="bye")
    parked = ParkedVcpu(world, "leaving")
    cpu = parked.cpu
    assert cpu is not None
    where: list[tuple[str, int]] = []

    def note(tag: str) -> None:
        where.append((tag, threading.get_ident()))
        if tag == "async-1":
            # Work queued by work during unregister() runs too.
            cpu.run_async(note, "queued-by-work")

    cpu.run_async(note, "async-1")
    cpu.run_safe(note, "safe")
    cpu.run_async(note, "async-2")
    parked.finish()  # unregister() without a process_work() first
    assert [tag for tag, _ in where] == ["async-1", "safe", "async-2", "queued-by-work"]
    assert {ident for _, ident in where} == {parked.thread.ident}
    assert not cpu.registered
    with pytest.raises(quiescent.QuiescentError, match="unregistered"):
        cpu.run_async(note, "late")
    stats = world.statistics()
    assert stats.vcpus == 0
    assert stats.work_items == 4
    assert stats.kicks == 4


@pytest.mark.timeout(30)
def test_thread_exit_without_unregister_fails_waiters_and_forgets_the_vcpu() -> None:
    world = quiescent.World(name="exit")
    parked = ParkedVcpu(world, "vanishing")
    parked.unregister_at_end = False
    cpu = parked.cpu
    assert cpu is not None
    outcome: list[BaseException | None] = []
    calls: list[int] = []

    def waiter() -> None:
        try:
            cpu.run_sync(calls.append, 1, timeout=WAIT)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=waiter, name="waiter")
    thread.start()
    try:
        # The kick comes after the item is queued.
        wait_for(parked.kicked, "run_sync to queue its item and kick")
    finally:
        parked.finish()  # the thread exits with the item still queued
        join_all([thread])
    assert calls == []
    assert len(outcome) == 1
    assert isinstance(outcome[0], quiescent.QuiescentError)
    assert "exited" in str(outcome[0])
    assert world.vcpus() == []
    assert not cpu.registered


def test_exit_requested_is_set_by_work_and_cleared_on_leaving_running() -> None:
    world = quiescent.World(name="flag")
    cpu = world.register()
    try:
        assert not cpu.exit_requested
        cpu.run_async(int)
        assert cpu.exit_requested
        with cpu.running():
            assert cpu.exit_requested  # the guest loop would leave at once
        assert not cpu.exit_requested
        assert cpu.process_work() == 1
        assert cpu.process_work() == 0
    finally:
        cpu.unregister()


def test_errors_of_asynchronous_work_go_to_on_error() -> None:
    errors: list[tuple[BaseException, Callable[..., object], int]] = []
    world = quiescent.World(
        name="errors", on_error=lambda exc, fn: errors.append((exc, fn, threading.get_ident()))
    )
    cpu = world.register()
    done: list[str] = []

    def boom() -> None:
        raise ValueError("boom")

    try:
        cpu.run_async(boom)
        cpu.run_safe(boom)
        cpu.run_async(done.append, "after")
        assert cpu.process_work() == 3
    finally:
        cpu.unregister()
    assert [(type(e), fn, ident) for e, fn, ident in errors] == [
        (ValueError, boom, threading.get_ident()),
        (ValueError, boom, threading.get_ident()),
    ]
    assert done == ["after"]
    assert world.statistics().work_errors == 2  # reported and counted
    assert not world.in_exclusive()  # the failing safe item ended its section


def test_errors_are_printed_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    world = quiescent.World(name="printed")
    cpu = world.register()
    try:
        cpu.run_async(divmod, 1, 0)
        cpu.process_work()
    finally:
        cpu.unregister()
    err = capsys.readouterr().err
    assert "Exception in work of 'printed' divmod" in err
    assert "ZeroDivisionError" in err


def test_a_failing_kick_function_propagates_but_the_work_stays_queued() -> None:
    world = quiescent.World(name="kickfail")

    def bad_kick() -> None:
        raise OSError("kick failed")

    cpu = world.register(kick=bad_kick)
    calls: list[int] = []
    try:
        with pytest.raises(OSError, match="kick failed"):
            cpu.run_async(calls.append, 1)
        assert cpu.process_work() == 1
    finally:
        cpu.unregister()
    assert calls == [1]


@pytest.mark.timeout(30)
def test_two_vcpus_that_run_sync_each_other_both_finish() -> None:
    world = quiescent.World(name="mutual")
    vcpus = start_vcpus(world, 2, idle=True)
    results: dict[str, object] = {}
    go = threading.Barrier(2)

    def ask(me: VcpuThread, other: VcpuThread) -> None:
        go.wait(WAIT)  # both are inside run_sync() of the other at once
        results[me.name] = other.cpu.run_sync(threading.get_ident, timeout=WAIT)

    try:
        first, second = vcpus
        calls = [
            threading.Thread(
                target=first.cpu.run_sync, args=(ask, first, second), name="ask-first"
            ),
            threading.Thread(
                target=second.cpu.run_sync, args=(ask, second, first), name="ask-second"
            ),
        ]
        for t in calls:
            t.start()
        join_all(calls)
        assert results == {first.name: second.ident, second.name: first.ident}
    finally:
        stop_all(vcpus)


@pytest.mark.timeout(30)
def test_run_sync_from_a_vcpu_times_out_on_a_vcpu_that_never_serves() -> None:
    world = quiescent.World(name="deaf")
    registered, release = threading.Event(), threading.Event()
    deaf: list[quiescent.Vcpu] = []

    def never_serves() -> None:
        deaf.append(world.register(name="deaf"))
        registered.set()
        release.wait(WAIT)  # never reaches a safe point until released
        deaf[0].unregister()  # runs what is still queued: nothing, it was cancelled

    thread = threading.Thread(target=never_serves, name="deaf")
    thread.start()
    wait_for(registered, "the deaf vCPU")
    (caller,) = start_vcpus(world, 1, idle=True)
    try:
        with pytest.raises(TimeoutError, match="did not start on vCPU 'deaf'"):
            caller.cpu.run_sync(lambda: deaf[0].run_sync(print, timeout=0.2), timeout=WAIT)
    finally:
        release.set()
        stop_all([caller])
        join_all([thread])
