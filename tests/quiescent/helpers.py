"""Test harness: real vCPU threads that run blocks, process work and stop on request."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import quiescent

#: Seconds any wait of a test may take before it fails, naming what it waited for.
WAIT = 10.0


def wait_for(event: threading.Event, what: str, timeout: float = WAIT) -> None:
    """Wait for ``event`` or fail naming ``what``."""
    if not event.wait(timeout):
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def join_all(threads: list[threading.Thread], timeout: float = WAIT) -> None:
    """Join every thread; fail naming the ones still alive after ``timeout``."""
    for thread in threads:
        thread.join(timeout)
    alive = [thread.name for thread in threads if thread.is_alive()]
    if alive:
        raise AssertionError(f"threads still running after {timeout} s: {alive}")


class VcpuThread(threading.Thread):
    """A vCPU on its own thread.

    Each turn of its loop enters ``running()`` and runs ``block(cpu)`` until
    the vCPU is kicked (or, with ``idle``, waits for a kick instead of
    running), then processes its work at the safe point. ``stop()`` queues
    work that ends the loop, so a stop is itself delivered by a kick; the
    thread unregisters before it exits. An exception on the thread is kept in
    ``error`` and re-raised by ``stop()``.
    """

    def __init__(
        self,
        world: quiescent.World,
        name: str,
        block: Callable[[quiescent.Vcpu], object] | None = None,
        *,
        idle: bool = False,
        kick: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.world = world
        self.block = block
        self.idle = idle
        self.user_kick = kick
        self.registered = threading.Event()
        self.wake = threading.Event()
        self.blocks = 0
        self.turns = 0
        self.error: BaseException | None = None
        self._cpu: quiescent.Vcpu | None = None
        self._stopping = False

    @property
    def cpu(self) -> quiescent.Vcpu:
        """The vCPU, once registered."""
        wait_for(self.registered, f"{self.name} to register")
        assert self._cpu is not None
        return self._cpu

    def _kick(self) -> None:
        self.wake.set()
        if self.user_kick is not None:
            self.user_kick()

    def _stop_here(self) -> None:
        self._stopping = True

    def run(self) -> None:
        try:
            cpu = self.world.register(name=self.name, kick=self._kick)
            self._cpu = cpu
            self.registered.set()
            while not self._stopping:
                self.turns += 1
                if self.idle:
                    self.wake.wait(WAIT)
                else:
                    with cpu.running():
                        while not cpu.exit_requested:
                            if self.block is not None:
                                self.block(cpu)
                            self.blocks += 1
                # ORDER: clear the wake-up, then look at the queue.
                self.wake.clear()
                cpu.process_work()
            cpu.unregister()
        except BaseException as exc:
            self.error = exc
            self.registered.set()

    def stop(self, timeout: float = WAIT) -> None:
        """Ask the loop to end, join the thread and re-raise its error, if any."""
        if self._cpu is not None and self._cpu.registered and self.error is None:
            with contextlib.suppress(quiescent.QuiescentError):  # already unregistered
                self._cpu.run_async(self._stop_here)
        join_all([self], timeout)
        if self.error is not None:
            raise self.error


def start_vcpus(
    world: quiescent.World,
    count: int,
    block: Callable[[quiescent.Vcpu], object] | None = None,
    *,
    idle: bool = False,
) -> list[VcpuThread]:
    """Start ``count`` vCPU threads and wait until all are registered."""
    threads = [VcpuThread(world, f"vcpu{i}", block, idle=idle) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        _ = thread.cpu
    return threads


def stop_all(threads: list[VcpuThread]) -> None:
    """Stop every vCPU thread, then re-raise the first error any of them had."""
    errors = []
    for thread in threads:
        try:
            thread.stop()
        except BaseException as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
