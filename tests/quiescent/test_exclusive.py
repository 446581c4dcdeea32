"""Exclusive sections against real vCPU threads: mutual exclusion, waiting, kicks, stalls."""

from __future__ import annotations

import random
import threading
import warnings
from typing import TextIO

import pytest

import quiescent
from tests.quiescent.helpers import (
    WAIT,
    VcpuThread,
    join_all,
    start_vcpus,
    stop_all,
    wait_for,
)
from tests.scale import scaled

#: Samples a world's latency records keep (documented: the most recent 4096).
LATENCY_WINDOW = 4096


class Recorder:
    """Shared state of the mutual-exclusion tests.

    Each vCPU thread writes only its own slot of ``inside``; ``active`` is
    written only by the thread holding the exclusive section.
    """

    def __init__(self, vcpus: int) -> None:
        self.inside = [False] * vcpus
        self.counts = [0] * vcpus  # blocks run, counted only inside running()
        self.active = False
        self.violations: list[str] = []
        self.lock = threading.Lock()

    def violation(self, what: str) -> None:
        with self.lock:
            self.violations.append(what)


def vcpu_loop(
    world: quiescent.World,
    index: int,
    rec: Recorder,
    stop: threading.Event,
    ready: threading.Barrier,
    churn: int,
) -> None:
    """Run blocks until ``stop``; re-register every ``churn`` turns (0: never)."""
    cpu = world.register(name=f"vcpu{index}", kick=None)
    rng = random.Random(index)
    turns = 0
    ready.wait(WAIT)
    while not stop.is_set():
        turns += 1
        with cpu.running():
            rec.inside[index] = True
            blocks = 0
            while not cpu.exit_requested and blocks < 50:
                if rec.active:
                    rec.violation(f"vcpu{index} ran a block during an exclusive section")
                sum(range(rng.randrange(1, 50)))
                rec.counts[index] += 1
                blocks += 1
            rec.inside[index] = False
        cpu.process_work()
        if churn and turns % churn == 0:
            cpu.unregister()
            cpu = world.register(name=f"vcpu{index}", kick=None)
    cpu.unregister()


def section_body(world: quiescent.World, rec: Recorder, who: str) -> None:
    if rec.active:
        rec.violation(f"{who}: two exclusive sections at once")
    rec.active = True
    running = [i for i, inside in enumerate(rec.inside) if inside]
    if running:
        rec.violation(f"{who}: vCPUs {running} inside running() during the section")
    if not world.in_exclusive():
        rec.violation(f"{who}: in_exclusive() is False inside the section")
    before = sum(rec.counts)
    sum(range(100))
    if sum(rec.counts) != before:
        rec.violation(f"{who}: the block counter moved during the section")
    rec.active = False


@pytest.mark.timeout(60)
@pytest.mark.parametrize("churn", [0, 7])
@pytest.mark.usefixtures("fast_switching")
def test_no_vcpu_runs_during_an_exclusive_section(churn: int) -> None:
    _exclusive_under_load(churn, sections=1000)


@pytest.mark.torture
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("churn", [0, 7])
@pytest.mark.usefixtures("fast_switching")
def test_no_vcpu_runs_during_an_exclusive_section_long(churn: int) -> None:
    _exclusive_under_load(churn, sections=scaled(20_000, minimum=2000))


def _exclusive_under_load(churn: int, sections: int) -> None:
    vcpus, starters = 4, 3
    world = quiescent.World(name="mutex")
    rec = Recorder(vcpus)
    stop = threading.Event()
    ready = threading.Barrier(vcpus + starters)

    def starter(index: int) -> None:
        ready.wait(WAIT)
        for k in range(sections):
            if k % 3 == 0:
                world.start_exclusive()
                try:
                    with world.exclusive():  # nested: still one section
                        section_body(world, rec, f"starter{index}")
                finally:
                    world.end_exclusive()
            else:
                with world.exclusive():
                    section_body(world, rec, f"starter{index}")

    cpu_threads = [
        threading.Thread(
            target=vcpu_loop, args=(world, i, rec, stop, ready, churn), name=f"vcpu{i}"
        )
        for i in range(vcpus)
    ]
    starter_threads = [
        threading.Thread(target=starter, args=(i,), name=f"starter{i}") for i in range(starters)
    ]
    for thread in cpu_threads + starter_threads:
        thread.start()
    try:
        join_all(starter_threads, 45 if sections < 1000 else 1500)
    finally:
        stop.set()
        join_all(cpu_threads)
    assert rec.violations == []
    assert all(rec.counts), f"some vCPU never ran a block: {rec.counts}"
    stats = world.statistics()
    assert stats.exclusive_sections == starters * sections
    # The latency records keep the most recent LATENCY_WINDOW sections.
    kept = min(starters * sections, LATENCY_WINDOW)
    assert stats.time_to_quiesce.count == stats.pause.count == kept
    assert stats.vcpus == 0


@pytest.mark.timeout(30)
def test_every_running_vcpu_is_kicked_exactly_once_per_section() -> None:
    world = quiescent.World(name="kicks")
    in_block = threading.Event()
    user_kicks: list[int] = []
    thread = VcpuThread(
        world, "counted", lambda cpu: in_block.set(), kick=lambda: user_kicks.append(1)
    )
    thread.start()
    sections = 20
    try:
        for k in range(sections):
            # Inside running() and staying there until kicked: the section
            # must count it and kick it, exactly once.
            wait_for(in_block, f"vCPU 'counted' to run a block before section {k}")
            with world.exclusive():
                # No block runs now: the next set comes from after the section.
                in_block.clear()
    finally:
        thread.stop()
    stats = world.statistics()
    assert stats.exclusive_sections == sections
    assert stats.kicks == sections + 1  # + the stop request, queued work
    assert len(user_kicks) == sections + 1


@pytest.mark.timeout(30)
def test_a_vcpu_entering_during_a_section_waits_for_the_outermost_end() -> None:
    world = quiescent.World(name="late")
    go, about_to_enter, entered = threading.Event(), threading.Event(), threading.Event()
    active = [False]
    seen_active: list[bool] = []
    waited: list[float] = []

    def body() -> None:
        cpu = world.register(name="late")
        try:
            wait_for(go, "the test to start its section")
            about_to_enter.set()
            with cpu.running():
                seen_active.append(active[0])
                waited.append(dict(world.statistics().waiting)["late"])
                entered.set()
        finally:
            cpu.unregister()

    thread = threading.Thread(target=body, name="late")
    thread.start()
    try:
        world.start_exclusive()
        world.start_exclusive()
        active[0] = True
        go.set()
        wait_for(about_to_enter, "vCPU 'late' to try to enter")
        # Waiting gives a broken world the chance to let it in; a correct one never does.
        assert not entered.wait(0.2), "vCPU entered running() during an exclusive section"
        world.end_exclusive()  # the inner section only
        assert not entered.wait(0.1), "vCPU entered running() inside the outer section"
        active[0] = False
        world.end_exclusive()
        wait_for(entered, "vCPU 'late' to enter after the section")
    finally:
        while world.in_exclusive():
            world.end_exclusive()
        go.set()
        join_all([thread])
    assert seen_active == [False]
    assert len(waited) == 1
    assert waited[0] > 0  # the safepoint log counted its wait


@pytest.mark.timeout(30)
def test_a_failing_kick_function_aborts_the_section_cleanly() -> None:
    world = quiescent.World(name="flaky")
    in_block = threading.Event()
    fail = [True]

    def kick() -> None:
        if fail[0]:
            fail[0] = False
            raise RuntimeError("kick failed")

    thread = VcpuThread(world, "flaky", lambda cpu: in_block.set(), kick=kick)
    thread.start()
    try:
        wait_for(in_block, "vCPU 'flaky' to run")
        with pytest.raises(RuntimeError, match="kick failed"):
            world.start_exclusive()
        assert not world.in_exclusive()
        # exit_requested was set before the kick function failed: the vCPU
        # left, and it runs again because the section was given up.
        in_block.clear()
        wait_for(in_block, "vCPU 'flaky' to run again after the failed section")
        with world.exclusive():
            pass
    finally:
        thread.stop()
    assert world.statistics().exclusive_sections == 1


@pytest.mark.timeout(30)
def test_a_stalled_section_warns_naming_the_holdout() -> None:
    world = quiescent.World(name="stall", stall_timeout=0.05)
    in_block, release = threading.Event(), threading.Event()
    shown: list[str] = []

    def stuck(cpu: quiescent.Vcpu) -> None:
        in_block.set()
        release.wait(WAIT)  # ignores its kick until released

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        shown.append(f"{category.__name__}: {message}")
        release.set()

    thread = VcpuThread(world, "stuck-vcpu", stuck)
    thread.start()
    try:
        wait_for(in_block, "vCPU 'stuck-vcpu' to run")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = show
            with world.exclusive():
                pass
    finally:
        release.set()
        thread.stop()
    assert shown, "no stall warning"
    assert shown[0].startswith("QuiescentStallWarning:")
    assert "vCPU 'stuck-vcpu'" in shown[0]
    assert "in stuck" in shown[0]  # its stack


@pytest.mark.timeout(30)
def test_exclusive_timeout_names_the_holdouts_with_their_stacks() -> None:
    world = quiescent.World(name="timeout")
    in_block, release = threading.Event(), threading.Event()

    def stuck(cpu: quiescent.Vcpu) -> None:
        in_block.set()
        release.wait(WAIT)

    thread = VcpuThread(world, "stuck-vcpu", stuck)
    thread.start()
    try:
        wait_for(in_block, "vCPU 'stuck-vcpu' to run")
        with pytest.raises(TimeoutError) as info, world.exclusive(timeout=0.1):
            pass
        assert "vCPU 'stuck-vcpu'" in str(info.value)
        assert "in stuck" in str(info.value)
        assert not world.in_exclusive()
        release.set()
        with world.exclusive(timeout=WAIT):
            pass
    finally:
        release.set()
        thread.stop()
    assert world.statistics().exclusive_sections == 1


@pytest.mark.timeout(30)
def test_idle_vcpus_do_not_delay_a_section_and_are_not_kicked() -> None:
    world = quiescent.World(name="idle")
    vcpus = start_vcpus(world, 3, idle=True)  # blocked outside running()
    try:
        for _ in range(5):
            with world.exclusive(timeout=WAIT):
                pass
        stats = world.statistics()
        assert stats.kicks == 0
        assert stats.exclusive_sections == 5
    finally:
        stop_all(vcpus)


@pytest.mark.timeout(30)
def test_a_thread_that_exits_inside_its_section_does_not_wedge_the_world() -> None:
    world = quiescent.World(name="abandoned")

    def abandon() -> None:
        world.start_exclusive()  # and never end_exclusive()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        thread = threading.Thread(target=abandon, name="abandoner")
        thread.start()
        thread.join(WAIT)
        assert not thread.is_alive()
    assert [type(w.message) for w in caught] == [quiescent.QuiescentExitWarning]
    assert "abandoned" in str(caught[0].message)
    assert not world.in_exclusive()
    # The world works again: a vCPU runs, and another section starts and ends.
    cpu = world.register(name="after")
    with cpu.running():
        pass
    cpu.unregister()
    with world.exclusive(timeout=WAIT):
        pass
    assert world.statistics().exclusive_sections == 2


def test_ending_a_section_normally_does_not_warn() -> None:
    world = quiescent.World(name="normal")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            with world.exclusive(), world.exclusive():  # nested on one thread
                pass

        def section() -> None:
            with world.exclusive():
                pass

        thread = threading.Thread(target=section, name="ends-its-section")
        thread.start()
        thread.join(WAIT)
        assert not thread.is_alive()
    assert world.statistics().exclusive_sections == 4


def test_describing_holdouts_never_hangs_in_a_collection() -> None:
    # See tests/rcu/test_stall.py: the same CPython 3.11 hang, via a world.
    from tests.rcu.test_stall import run_frames_under_gc

    run_frames_under_gc("quiescent", "quiescent.World()._describe_holdouts()")
