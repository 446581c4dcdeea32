"""One contract, two ways in: ``world.exclusive()`` and ``cpu.run_safe()``.

Where their semantics coincide (the work runs while no vCPU is inside
``running()``, alone, nestable, and holds off vCPUs that try to enter), the
same tests run against both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

import quiescent
from tests.quiescent.helpers import WAIT, VcpuThread, join_all, start_vcpus, stop_all, wait_for

Binding = Callable[[quiescent.World, list[VcpuThread], Callable[[], None]], None]


def via_exclusive(world: quiescent.World, vcpus: list[VcpuThread], fn: Callable[[], None]) -> None:
    with world.exclusive(timeout=WAIT):
        fn()


def via_run_safe(world: quiescent.World, vcpus: list[VcpuThread], fn: Callable[[], None]) -> None:
    done = threading.Event()

    def wrapper() -> None:
        try:
            fn()
        finally:
            done.set()

    vcpus[0].cpu.run_safe(wrapper)
    wait_for(done, "the safe work to run")


@pytest.fixture(params=[via_exclusive, via_run_safe], ids=["exclusive", "run_safe"])
def safely(request: pytest.FixtureRequest) -> Binding:
    binding: Binding = request.param
    return binding


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("fast_switching")
def test_safe_work_runs_alone_while_no_vcpu_runs(safely: Binding) -> None:
    world = quiescent.World(name="contract")
    active = [False]
    violations: list[str] = []

    def block(cpu: quiescent.Vcpu) -> None:
        if active[0]:
            violations.append(f"{cpu.name} ran a block during safe work")

    vcpus = start_vcpus(world, 3, block)
    rounds = 30
    try:
        for _ in range(rounds):

            def work() -> None:
                if active[0] or not world.in_exclusive():
                    violations.append("safe work not alone, or not in an exclusive section")
                active[0] = True
                sum(range(500))
                active[0] = False

            safely(world, vcpus, work)
    finally:
        stop_all(vcpus)
    assert violations == []
    assert world.statistics().exclusive_sections == rounds


@pytest.mark.timeout(30)
def test_safe_work_can_nest_an_exclusive_section(safely: Binding) -> None:
    world = quiescent.World(name="nest")
    vcpus = start_vcpus(world, 1, idle=True)
    depths: list[bool] = []
    try:

        def work() -> None:
            with world.exclusive():
                depths.append(world.in_exclusive())
            depths.append(world.in_exclusive())

        safely(world, vcpus, work)
    finally:
        stop_all(vcpus)
    assert depths == [True, True]
    assert world.statistics().exclusive_sections == 1


@pytest.mark.timeout(30)
def test_a_vcpu_registering_during_safe_work_waits_to_run(safely: Binding) -> None:
    world = quiescent.World(name="newcomer")
    vcpus = start_vcpus(world, 1, idle=True)
    about, entered = threading.Event(), threading.Event()
    observed: list[bool] = []
    newcomer: list[threading.Thread] = []

    def body() -> None:
        cpu = world.register(name="newcomer")
        try:
            about.set()
            with cpu.running():
                entered.set()
        finally:
            cpu.unregister()

    try:

        def work() -> None:
            thread = threading.Thread(target=body, name="newcomer")
            newcomer.append(thread)
            thread.start()
            wait_for(about, "the newcomer to register")
            observed.append(entered.wait(0.2))  # a correct world never lets it in

        safely(world, vcpus, work)
        wait_for(entered, "the newcomer to enter after the safe work")
    finally:
        join_all(newcomer)
        stop_all(vcpus)
    assert observed == [False]
