"""The public surface: argument checking, misuse errors, statistics records, imports."""

from __future__ import annotations

import dataclasses
import math
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

import quiescent
from tests.quiescent.helpers import join_all, start_vcpus, stop_all


@pytest.fixture
def world() -> quiescent.World:
    return quiescent.World(name="api")


def on_thread(fn: object) -> BaseException | None:
    """Run ``fn()`` on a new thread; return what it raised (None if nothing)."""
    result: list[BaseException | None] = [None]

    def body() -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as exc:
            result[0] = exc

    thread = threading.Thread(target=body, name="other")
    thread.start()
    join_all([thread])
    return result[0]


def test_public_names_are_exported() -> None:
    assert set(quiescent.__all__) == {
        "Percentiles",
        "QuiescentError",
        "QuiescentExitWarning",
        "QuiescentStallWarning",
        "Vcpu",
        "World",
        "WorldStatistics",
    }
    for name in quiescent.__all__:
        assert getattr(quiescent, name).__doc__


def test_does_not_import_rcu_or_tcg() -> None:
    code = (
        "import sys, quiescent\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('rcu', 'tcg'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": 3}, TypeError),
        ({"stall_timeout": "1"}, TypeError),
        ({"stall_timeout": True}, TypeError),
        ({"stall_timeout": 0}, ValueError),
        ({"stall_timeout": -1.0}, ValueError),
        ({"stall_timeout": float("nan")}, ValueError),
        ({"on_error": 42}, TypeError),
    ],
)
def test_world_rejects_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        quiescent.World(**kwargs)  # type: ignore[arg-type]


def test_register_checks_arguments_and_registers_once(world: quiescent.World) -> None:
    with pytest.raises(TypeError):
        world.register(name=b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        world.register(kick="not callable")  # type: ignore[arg-type]
    cpu = world.register(name="main")
    try:
        assert world.current() is cpu
        assert world.vcpus() == [cpu]
        assert cpu.registered
        assert cpu.name == "main"
        assert cpu.thread is threading.current_thread()
        with pytest.raises(quiescent.QuiescentError, match="already vCPU 'main'"):
            world.register()
    finally:
        cpu.unregister()
    assert world.current() is None
    assert world.vcpus() == []
    assert not cpu.registered
    # Registering again after unregistering is allowed.
    world.register().unregister()


def test_default_names_are_numbered(world: quiescent.World) -> None:
    first = world.register()
    first.unregister()
    second = world.register()
    second.unregister()
    assert (first.name, second.name) == ("vcpu0", "vcpu1")


def test_running_is_not_nestable_and_owner_only(world: quiescent.World) -> None:
    cpu = world.register()
    try:
        with cpu.running():
            with pytest.raises(quiescent.QuiescentError, match="already inside running"):
                cpu.running().__enter__()
            # Still running: the failed entry changed nothing.
            assert repr(cpu).endswith("running>")
        error = on_thread(lambda: cpu.running().__enter__())
        assert isinstance(error, quiescent.QuiescentError)
        assert "not its own thread" in str(error)
        for call, what in ((cpu.process_work, "process_work()"), (cpu.unregister, "unregister()")):
            error = on_thread(call)
            assert isinstance(error, quiescent.QuiescentError)
            assert str(error).startswith(f"{what} of vCPU"), error
            assert "not its own thread" in str(error)
    finally:
        cpu.unregister()
    with pytest.raises(quiescent.QuiescentError, match="unregistered"):
        cpu.running().__enter__()
    with pytest.raises(quiescent.QuiescentError, match=r"^process_work\(\) .*unregistered"):
        cpu.process_work()


def test_exclusive_from_inside_running_raises_at_once(world: quiescent.World) -> None:
    cpu = world.register()
    try:
        with cpu.running():
            with pytest.raises(quiescent.QuiescentError, match="wait for itself"):
                world.start_exclusive()
            with pytest.raises(quiescent.QuiescentError, match="wait for itself"):
                world.exclusive().__enter__()
            with pytest.raises(quiescent.QuiescentError, match="inside running"):
                cpu.process_work()
            with pytest.raises(quiescent.QuiescentError, match="inside running"):
                cpu.unregister()
        # And it left no section behind.
        assert not world.in_exclusive()
        with world.exclusive():
            assert world.in_exclusive()
    finally:
        cpu.unregister()


def test_running_inside_own_exclusive_section_raises(world: quiescent.World) -> None:
    cpu = world.register()
    try:
        with (
            world.exclusive(),
            pytest.raises(quiescent.QuiescentError, match="wait for itself"),
        ):
            cpu.running().__enter__()
        with cpu.running():  # the failed entry left the vCPU outside
            pass
    finally:
        cpu.unregister()


def test_end_exclusive_without_start_raises(world: quiescent.World) -> None:
    with pytest.raises(quiescent.QuiescentError, match="holds no exclusive section"):
        world.end_exclusive()
    world.start_exclusive()
    try:
        error = on_thread(world.end_exclusive)
        assert isinstance(error, quiescent.QuiescentError)
    finally:
        world.end_exclusive()


def test_exclusive_nests_on_one_thread(world: quiescent.World) -> None:
    world.start_exclusive()
    world.start_exclusive()
    with world.exclusive():
        assert world.in_exclusive()
    world.end_exclusive()
    assert world.in_exclusive()
    world.end_exclusive()
    assert not world.in_exclusive()
    assert world.statistics().exclusive_sections == 1


def test_work_calls_check_arguments_at_the_call(world: quiescent.World) -> None:
    cpu = world.register()
    try:
        methods: list[Callable[..., object]] = [cpu.run_sync, cpu.run_async, cpu.run_safe]
        for method in methods:
            with pytest.raises(TypeError, match="fn must be callable"):
                method(42)
        for bad, error in (("1", TypeError), (-1, ValueError), (float("nan"), ValueError)):
            with pytest.raises(error):
                cpu.run_sync(print, timeout=bad)  # type: ignore[arg-type]
        assert cpu.process_work() == 0  # nothing was queued by the failed calls
        assert cpu.exit_requested is False
    finally:
        cpu.unregister()
    for method in (cpu.run_async, cpu.run_safe):
        with pytest.raises(quiescent.QuiescentError, match="unregistered"):
            method(print)
    with pytest.raises(quiescent.QuiescentError, match="unregistered"):
        cpu.run_sync(print, timeout=1)


def test_run_sync_on_own_thread_runs_at_once(world: quiescent.World) -> None:
    cpu = world.register()
    try:
        assert cpu.run_sync(lambda a, b: a + b, 2, 3) == 5
        with cpu.running():
            assert cpu.run_sync(threading.get_ident) == threading.get_ident()
        with pytest.raises(ZeroDivisionError):
            cpu.run_sync(lambda: 1 / 0)
    finally:
        cpu.unregister()


def test_run_sync_where_waiting_could_deadlock_raises(world: quiescent.World) -> None:
    cpu = world.register(name="target")
    try:

        def from_running_vcpu() -> None:
            other = world.register(name="caller")
            try:
                with other.running():
                    cpu.run_sync(print)
            finally:
                other.unregister()

        error = on_thread(from_running_vcpu)
        assert isinstance(error, quiescent.QuiescentError)
        assert "inside running() of vCPU 'caller'" in str(error)

        def from_exclusive_section() -> None:
            with world.exclusive():
                cpu.run_sync(print)

        error = on_thread(from_exclusive_section)
        assert isinstance(error, quiescent.QuiescentError)
        assert "inside an exclusive section" in str(error)
        assert cpu.process_work() == 0  # neither call queued anything
    finally:
        cpu.unregister()


def test_statistics_are_frozen_snapshots(world: quiescent.World) -> None:
    before = world.statistics()
    with world.exclusive():
        pass
    after = world.statistics()
    assert before.exclusive_sections == 0
    assert after.exclusive_sections == 1
    assert after.time_to_quiesce.count == after.pause.count == 1
    assert after.pause.max >= after.time_to_quiesce.max >= 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.kicks = 3  # type: ignore[misc]
    assert not hasattr(after, "__dict__")  # slots


@pytest.mark.timeout(30)
@pytest.mark.parametrize("limit", [math.inf, 1e10, 10**400], ids=["inf", "1e10", "10**400"])
def test_an_infinite_or_huge_duration_means_no_limit(limit: float) -> None:
    world = quiescent.World(stall_timeout=limit)
    vcpus = start_vcpus(world, 1)  # always inside running(): a section must kick it
    try:
        with world.exclusive(timeout=limit):
            assert world.in_exclusive()
        world.start_exclusive(limit)
        world.end_exclusive()
        assert vcpus[0].cpu.run_sync(lambda: 42, timeout=limit) == 42
    finally:
        stop_all(vcpus)
    assert world.statistics().exclusive_sections == 2


@pytest.mark.timeout(30)
@pytest.mark.parametrize("caller_is_a_vcpu", [False, True])
@pytest.mark.usefixtures("sigint_raises")
def test_a_run_sync_interrupted_while_waiting_never_runs_the_work_later(
    world: quiescent.World, caller_is_a_vcpu: bool
) -> None:
    # The vCPU is busy (inside running(), not looking at its kick) while the
    # caller's wait is interrupted: the caller never gets the outcome, so
    # the work must not run afterwards.
    entered, release = threading.Event(), threading.Event()
    ran: list[str] = []
    processed: list[int] = []

    def busy_vcpu() -> None:
        cpu = world.register(name="busy")
        with cpu.running():
            entered.set()
            release.wait(10)
        processed.append(cpu.process_work())
        cpu.unregister()

    thread = threading.Thread(target=busy_vcpu, name="busy")
    thread.start()
    try:
        assert entered.wait(10)
        (cpu,) = world.vcpus()
        caller = world.register(name="caller") if caller_is_a_vcpu else None
        main = threading.get_ident()
        timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                cpu.run_sync(ran.append, "late")
        finally:
            timer.join(10)
            if caller is not None:
                caller.unregister()
    finally:
        release.set()
        join_all([thread])
    assert ran == []
    assert processed == [0]
