"""A synthetic multi-threaded driver of a translation buffer (no ISA needed).

A fake guest has blocks at fixed pcs; each block's "translated code" is a
function that retires one instruction, picks a random successor and has
some bytes of a size drawn per block. :class:`FakeEngine` produces them for
:class:`FakeHart` vCPUs, which run them in the machine's own cpu loop
(:class:`tcg.cpu_loop.CpuLoop`): following random chains of blocks through
their jump caches and the index, translating on a miss, inside
``running()`` of a quiescent world and between the policy's hooks, checking
the reclamation oracle before and after each block and moving their
``VcpuMark`` for the grace-period check. Translator threads fill the buffer
far past its capacity with blocks nobody runs and invalidate random guest
ranges. Every thread stops at a step budget, not a timer (for a vCPU, the
loop's instruction limit), so a run does the same amount of work on any
machine.
"""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import quiescent
from tcg import BufferFullError, TranslationBuffer, UseAfterReclaimError
from tcg.block import TranslationBlock
from tcg.cpu_loop import CpuLoop
from tcg.engine import BlockCode
from tcg.policies import RetirePolicy

BLOCK_STRIDE = 0x40
HOT_BLOCKS = 64  # blocks the vCPUs run
HOT_PCS = tuple(BLOCK_STRIDE * (i + 1) for i in range(HOT_BLOCKS))
COLD_BASE = 0x100000  # blocks only translator threads add


@dataclass
class DriverResult:
    """What a run saw."""

    blocks_run: int = 0
    violations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    translations: int = 0
    full_events: int = 0


def block_size(pc: int, seed: int) -> int:
    """Host-code bytes of the block at ``pc`` (deterministic per seed)."""
    return random.Random(pc * 7919 + seed).randrange(64, 512)


class FakeHart:
    """A vCPU of the fake guest: a pc, the blocks it ran, its own random source."""

    __slots__ = ("hart_id", "instret", "pc", "reservation", "rng")

    def __init__(self, hart_id: int, seed: int) -> None:
        self.hart_id = hart_id
        self.rng = random.Random(seed * 100 + hart_id)
        self.pc = BLOCK_STRIDE
        self.instret = 0
        self.reservation: int | None = None

    def reset(self, entry: int, n_harts: int) -> None:
        self.pc = entry
        self.instret = 0


class FakeEngine:
    """The fake guest's blocks, as an engine (:class:`tcg.engine.Engine`)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def new_hart(self, hart_id: int) -> FakeHart:
        return FakeHart(hart_id, self.seed)

    def generate(self, pc: int, max_insns: int) -> BlockCode:
        def run(h: FakeHart) -> int:
            rng = h.rng
            if rng.random() < 0.2:
                # Get preempted in the middle of "executing" the block.
                threading.Event().wait(0)
            h.instret += 1
            return BLOCK_STRIDE * rng.randrange(HOT_BLOCKS) + BLOCK_STRIDE

        # Every hot block is a direct exit (a jump table with constant
        # targets), so the vCPUs chain blocks while translators unlink them.
        code = bytes([pc & 0xFF]) * block_size(pc, self.seed)
        return BlockCode(run, pc + BLOCK_STRIDE, code, HOT_PCS)

    def is_host_call(self, h: FakeHart, pc: int) -> bool:
        return False

    def run_special(self, h: FakeHart) -> bool:
        raise AssertionError("the fake guest has no special instructions")


class Driver:
    """vCPU and translator threads around one buffer and policy."""

    def __init__(
        self,
        buffer: TranslationBuffer,
        world: quiescent.World,
        *,
        vcpus: int = 3,
        translators: int = 1,
        steps: int = 3000,
        seed: int = 0,
    ) -> None:
        self.buffer = buffer
        self.policy: RetirePolicy = buffer.policy
        self.world = world
        self.n_vcpus = vcpus
        self.n_translators = translators
        self.steps = steps
        self.seed = seed
        self.engine = FakeEngine(seed)
        self.loop = CpuLoop(
            world, buffer, self.engine, translate=self._vcpu_translate, next_check=self._next_check
        )
        self.result = DriverResult()
        self._lock = threading.Lock()

    def _translate(self, pc: int) -> TranslationBlock:
        fn, end, code, exits = self.engine.generate(pc, 1)
        return self.buffer.add(pc, end, fn, code, exits=exits)

    def _vcpu_translate(self, pc: int) -> TranslationBlock:
        try:
            return self._translate(pc)
        except BufferFullError:
            with self._lock:
                self.result.full_events += 1  # the loop asks on_full() and waits
            raise

    def _next_check(self, h: FakeHart) -> int | None:
        """The step budget, as the loop's instruction limit."""
        return None if h.instret >= self.steps else self.steps

    def vcpu(self, index: int) -> None:
        h = self.engine.new_hart(index)
        h.reset(BLOCK_STRIDE, self.n_vcpus)
        try:
            self.loop.run(h, f"vcpu{index}")
        except UseAfterReclaimError as exc:
            # The oracle: this vCPU ran reclaimed code; it stops there.
            with self._lock:
                self.result.violations.append(str(exc))
        finally:
            with self._lock:
                self.result.blocks_run += h.instret

    def translator(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        for _ in range(self.steps // 2):
            if rng.random() < 0.2:
                start = BLOCK_STRIDE * rng.randrange(HOT_BLOCKS + 1)
                self.buffer.invalidate(start, start + BLOCK_STRIDE * rng.randrange(1, 4))
                continue
            pc = COLD_BASE + BLOCK_STRIDE * rng.randrange(4096)
            try:
                self._translate(pc)
            except BufferFullError:
                token = self.policy.on_full()
                with self._lock:
                    self.result.full_events += 1
                self.policy.wait_for_space(token)

    def run(self, timeout: float = 120.0) -> DriverResult:
        """Run every thread to its step budget and return what was seen."""
        old = sys.getswitchinterval()
        sys.setswitchinterval(1e-5)
        threads = [
            threading.Thread(target=self._guard(self.vcpu, i), name=f"driver-vcpu{i}")
            for i in range(self.n_vcpus)
        ] + [
            threading.Thread(target=self._guard(self.translator, i), name=f"driver-tr{i}")
            for i in range(self.n_translators)
        ]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout)
                if t.is_alive():
                    self.result.errors.append(f"{t.name} hung")
        finally:
            sys.setswitchinterval(old)
        self.result.translations = self.buffer.statistics().translations
        self.result.violations += self.buffer.violations()
        return self.result

    def _guard(self, fn: Callable[[int], None], index: int) -> Callable[[], None]:
        def run() -> None:
            try:
                fn(index)
            except BaseException as exc:
                with self._lock:
                    self.result.errors.append(f"{threading.current_thread().name}: {exc!r}")

        return run
