"""A synthetic multi-threaded driver of a translation buffer (no ISA needed).

A fake guest has blocks at fixed pcs; each block's "translated code" is a
function that picks a successor and some bytes of a size drawn per block.
vCPU threads follow random chains of blocks through their jump caches and
the index, translating on a miss, exactly as a cpu loop does: inside
``running()`` of a quiescent world and between the policy's hooks, checking
the reclamation oracle before and after each block and moving their
``VcpuMark`` for the grace-period check. Translator threads fill
the buffer far past its capacity with blocks nobody runs and invalidate
random guest ranges. Every thread stops at a step budget, not a timer, so a
run does the same amount of work on any machine.
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
from tcg.policies import RetirePolicy

BLOCK_STRIDE = 0x40
HOT_BLOCKS = 64  # blocks the vCPUs run
COLD_BASE = 0x100000  # blocks only translator threads add


@dataclass
class DriverResult:
    """What a run saw."""

    blocks_run: int = 0
    violations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    translations: int = 0
    full_events: int = 0
    max_retired_bytes: int = 0


def block_size(pc: int, seed: int) -> int:
    """Host-code bytes of the block at ``pc`` (deterministic per seed)."""
    return random.Random(pc * 7919 + seed).randrange(64, 512)


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
        on_step: Callable[[DriverResult], None] | None = None,
    ) -> None:
        self.buffer = buffer
        self.policy: RetirePolicy = buffer.policy
        self.world = world
        self.n_vcpus = vcpus
        self.n_translators = translators
        self.steps = steps
        self.seed = seed
        self.result = DriverResult()
        self._lock = threading.Lock()
        self._on_step = on_step

    def _code(self, pc: int) -> tuple[Callable[[random.Random], int], bytes]:
        def run(rng: random.Random) -> int:
            if rng.random() < 0.2:
                # Get preempted in the middle of "executing" the block.
                threading.Event().wait(0)
            return BLOCK_STRIDE * rng.randrange(HOT_BLOCKS) + BLOCK_STRIDE

        size = block_size(pc, self.seed)
        return run, bytes([pc & 0xFF]) * size

    def _translate(self, pc: int) -> TranslationBlock:
        fn, code = self._code(pc)
        return self.buffer.add(pc, pc + BLOCK_STRIDE, fn, code)

    def vcpu(self, index: int) -> None:
        rng = random.Random(self.seed * 100 + index)
        cpu = self.world.register(name=f"vcpu{index}")
        hooks = self.policy.vcpu_hooks()
        cache = self.buffer.new_jump_cache()
        mark = self.buffer.new_vcpu_mark(f"vcpu{index}")
        generations = self.buffer.generations
        pc = BLOCK_STRIDE
        done = 0
        try:
            while done < self.steps:
                token: object = None
                full = False
                with cpu.running():
                    hooks.enter()
                    mark.seq += 1
                    try:
                        while done < self.steps and not cpu.exit_requested:
                            tb = self.buffer.lookup(cache, pc)
                            if tb is None:
                                try:
                                    tb = self._translate(pc)
                                except BufferFullError:
                                    token, full = self.policy.on_full(), True
                                    break
                            self._check(tb, generations)
                            next_pc = tb.fn(rng)
                            self._check(tb, generations)
                            pc = next_pc
                            done += 1
                            mark.seq += 1
                            hooks.boundary()
                            mark.seq += 1
                    finally:
                        mark.seq += 1
                        hooks.leave()
                if full:
                    with self._lock:
                        self.result.full_events += 1
                    self.policy.wait_for_space(token)
                cpu.process_work()
                if self._on_step is not None:
                    self._on_step(self.result)
        finally:
            with self._lock:
                self.result.blocks_run += done
            self.buffer.drop_vcpu_mark(mark)
            self.buffer.drop_jump_cache(cache)
            cpu.unregister()

    def _check(self, tb: TranslationBlock, generations: list[int]) -> None:
        try:
            tb.check(generations)
        except UseAfterReclaimError as exc:
            with self._lock:
                self.result.violations.append(str(exc))

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
