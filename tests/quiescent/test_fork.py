"""After os.fork() the child has a working world with only the forking thread's vCPU."""

from __future__ import annotations

import os
import threading

import pytest

import quiescent
from tests.forking import in_child

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]
PATIENCE = 10.0


def test_child_can_stop_the_world_while_the_parent_holds_a_section() -> None:
    world = quiescent.World()
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with world.exclusive():
            held.set()
            release.wait(PATIENCE)

    thread = threading.Thread(target=holder, name="holder")
    thread.start()
    assert held.wait(PATIENCE)

    def child() -> bool:
        with world.exclusive(timeout=PATIENCE):
            pass
        cpu = world.register(name="child-vcpu")
        with cpu.running():
            pass
        cpu.unregister()
        return world.statistics().vcpus == 0

    try:
        assert in_child(child) == 0
    finally:
        release.set()
        thread.join(PATIENCE)
    assert not thread.is_alive()


def test_fork_while_another_vcpu_works_never_hangs_the_child() -> None:
    world = quiescent.World()
    stop = threading.Event()

    def vcpu() -> None:
        cpu = world.register(name="busy")
        while not stop.is_set():
            cpu.run_async(int)
            with cpu.running():
                pass
            cpu.process_work()
        cpu.unregister()

    thread = threading.Thread(target=vcpu, name="busy-vcpu")
    thread.start()
    try:
        for _ in range(30):
            assert in_child(lambda: world.statistics().vcpus == 0) == 0
    finally:
        stop.set()
        thread.join(PATIENCE)
    assert not thread.is_alive()


def test_a_forking_thread_keeps_its_exclusive_section_in_the_child() -> None:
    world = quiescent.World()
    cpu = world.register(name="forker")
    try:
        world.start_exclusive()
        world.start_exclusive()  # nested: the child keeps the depth too

        def child() -> bool:
            held = world.in_exclusive()
            world.end_exclusive()
            still = world.in_exclusive()
            world.end_exclusive()
            with world.exclusive(timeout=PATIENCE):  # the world works on
                pass
            with cpu.running():
                pass
            return held and still and not world.in_exclusive()

        try:
            assert in_child(child) == 0
        finally:
            world.end_exclusive()
            world.end_exclusive()
        assert not world.in_exclusive()
    finally:
        cpu.unregister()
