"""Machine: guest programs on N vCPU threads sharing one translation buffer.

This is QEMU's multi-threaded TCG in miniature. Every hart runs on its own
thread, in a cpu loop (``cpu_exec``): find the translated block for the pc
(jump cache, then index, then translate), run it, repeat, checking for exit
requests at every block boundary. The translation buffer and its retirement
policy are shared by all harts, so reclamation happens while other harts run
the code being reclaimed: the situation both policies exist for.

The cpu loop of one hart::

    while the machine runs:
        with cpu.running():                 # stop-the-world read side
            hooks.enter()                   # the policy's read side (RCU)
            mark.seq += 1                   # the grace-period check (VcpuMark)
            while not cpu.exit_requested and below the limit:
                tb = lookup or translate    # BufferFullError: leave, wait, retry
                if tb is special: leave     # ecall, atomics, fence.i, csr...
                check tb; pc = tb.fn(hart); check tb   # the reclamation oracle
                mark.seq += 1; hooks.boundary(); mark.seq += 1   # a quiescent point
            mark.seq += 1
            hooks.leave()
        wait for space / run the special instruction / process queued work

Special instructions run outside guest code: atomics (LR/SC, AMOs) inside an
exclusive section (QEMU's ``cpu_exec_step_atomic``), whatever the policy, so
that a read-modify-write is atomic across harts; system calls and the rest
directly with the reference interpreter.

Stores into watched pages (the hart's store hook) invalidate translated code
on the page (self-modifying code) and break LR reservations on the word.
Reservations are written by their own hart inside exclusive sections and
cleared by other harts' stores under ``_reservation_lock``; both never
overlap, because an exclusive section runs while no hart is in guest code.

Lock order: exclusive section -> ``_reservation_lock`` -> buffer lock;
``_output_lock`` is a leaf.

Other engines
-------------
The cpu loop, the policy and world wiring, the special-instruction protocol and
the statistics do not depend on how a block is produced or run. A subclass
plugs another engine in by overriding four methods: :meth:`Machine._new_hart`
(the per-vCPU state, an :class:`EngineHart`), :meth:`Machine._generate` (a
block's function, guest end and host bytes), :meth:`Machine._is_host_call` and
:meth:`Machine._run_special`. :mod:`tcg.adapters.tinyrv` is one.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import BinaryIO, Literal, Protocol, cast

import quiescent
from tcg.block import BlockFunction, TranslationBlock
from tcg.buffer import BufferStatistics, TranslationBuffer, VcpuMark
from tcg.errors import (
    BlockTooLargeError,
    BufferFullError,
    MachineConfigError,
    MachineError,
    UseAfterReclaimError,
)
from tcg.policies import (
    POLICIES,
    PolicyFactory,
    PolicyStatistics,
    VcpuHooks,
    make_policy,
)
from tcg.riscv.decode import decode
from tcg.riscv.elf import DEFAULT_RAM_SIZE, PAGE_SIZE, load_elf
from tcg.riscv.errors import GuestFault
from tcg.riscv.hart import Hart
from tcg.riscv.interp import Exit, fetch, step
from tcg.riscv.syscalls import SYS_NANOSLEEP, Outcome, syscall
from tcg.riscv.translate import DEFAULT_MAX_INSNS, MAX_INSNS, translate

__all__ = [
    "POLICIES",
    "EngineHart",
    "Machine",
    "MachineConfigError",
    "MachineError",
    "MachineResult",
    "PolicyFactory",
    "make_policy",
    "special_block",
]

ECALL = 0x00000073
#: A hart's instret never reaches it: the cpu loop's check when there is no limit.
_NO_LIMIT = 1 << 62

#: watch-array bit of pages holding an LR-reserved word (bit 0: translated code).
RESERVED = 2

Stopped = Literal["exit", "fault", "violation", "limit"]


@dataclass(frozen=True, slots=True)
class MachineResult:
    """How a run ended, what the guest wrote, and what it cost."""

    #: The guest's exit code (0-255); None after a fault, a violation or the limit.
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    #: Guest instructions retired, all harts together, and per hart.
    instructions: int
    per_hart: tuple[int, ...]
    seconds: float
    stopped: Stopped
    fault: GuestFault | None
    #: UseAfterReclaimError messages (the machine stops at the first).
    violations: tuple[str, ...]
    buffer: BufferStatistics
    policy: PolicyStatistics
    world: quiescent.WorldStatistics

    @property
    def mips(self) -> float:
        """Guest instructions per second of wall-clock time, in millions."""
        return self.instructions / self.seconds / 1e6 if self.seconds > 0 else 0.0


class EngineHart(Protocol):
    """What the cpu loop needs of a vCPU's state, whatever the engine.

    ``pc``, ``instret`` and ``reservation`` (the LR-reserved address or
    None) belong to the hart's thread, except that another hart's store may
    clear ``reservation`` under the machine's reservation lock.
    """

    hart_id: int
    pc: int
    instret: int
    reservation: int | None

    def reset(self, entry: int, n_harts: int) -> None:
        """Set the ABI's start state (pc, a0 = hart id, a1 = harts, sp)."""


class _MachineHart(Hart):
    """A hart whose store hook reports to its machine."""

    __slots__ = ("machine",)

    def __init__(self, machine: Machine, ram: bytearray, hart_id: int, watch: bytearray) -> None:
        super().__init__(ram, hart_id, watch=watch)
        self.machine = machine

    def on_store(self, addr: int, size: int) -> None:
        self.machine._on_store(addr, size)


def special_block(h: object) -> int:
    """Stands for an instruction run outside guest code (its TB has no code of its own)."""
    raise AssertionError("special blocks are never called")


class Machine:
    """A RISC-V machine: ``vcpus`` harts on threads, one translation buffer.

    ``program`` is an ELF32 RISC-V executable (a path or its bytes).
    ``policy`` retires translated code: a name of :data:`POLICIES` (``"rcu"``,
    ``"rcu-qsbr"``, ``"rcu-sync"``, ``"rcu-batch"``, ``"flush"``),
    ``"module:Class"``, or a factory called with the machine's
    ``quiescent.World``. ``buffer_kb`` is the buffer's capacity in KiB of
    host-code bytes, cut into ``regions``; a small buffer just retires often.
    ``echo`` (a binary stream) receives the guest's stdout as it is written.
    ``max_block_insns`` (1 to 1024) caps the guest instructions of a block.
    ``max_instructions`` stops the run (``stopped == "limit"``) once the harts
    together have retired at least that many instructions; it is checked at
    every block boundary, so it stops a guest that never leaves translated
    code too, each hart overshooting by at most one block.

    ``host_calls`` says where a blocking host call (``nanosleep``) runs:
    ``"outside"`` guest code (the hart leaves ``running()`` and its read side
    first, as QEMU drops its locks around blocking I/O: neither a flush nor a
    grace period waits for it), or ``"inside"`` (the naive way, a stalled
    vCPU: exclusive sections and grace periods wait for the call to end).
    """

    def __init__(
        self,
        program: bytes | str | os.PathLike[str],
        *,
        vcpus: int = 1,
        policy: str | PolicyFactory = "rcu",
        buffer_kb: float = 4096,
        regions: int = 8,
        ram_size: int = DEFAULT_RAM_SIZE,
        max_block_insns: int = DEFAULT_MAX_INSNS,
        max_instructions: int | None = None,
        host_calls: Literal["outside", "inside"] = "outside",
        echo: BinaryIO | None = None,
    ) -> None:
        for name, value in (("vcpus", vcpus), ("regions", regions)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, not {value}")
        if isinstance(buffer_kb, bool) or not isinstance(buffer_kb, int | float):
            raise TypeError(f"buffer_kb must be a number, not {type(buffer_kb).__name__}")
        if not 0 < buffer_kb < math.inf:
            raise ValueError(f"buffer_kb must be finite and > 0, not {buffer_kb!r}")
        if max_instructions is not None and (
            isinstance(max_instructions, bool)
            or not isinstance(max_instructions, int)
            or max_instructions < 1
        ):
            raise ValueError(f"max_instructions must be a positive int, not {max_instructions!r}")
        if isinstance(max_block_insns, bool) or not isinstance(max_block_insns, int):
            raise TypeError(f"max_block_insns must be an int, not {type(max_block_insns).__name__}")
        if not 1 <= max_block_insns <= MAX_INSNS:
            raise ValueError(f"max_block_insns must be in [1, {MAX_INSNS}], not {max_block_insns}")
        if host_calls not in ("outside", "inside"):
            raise ValueError(f"host_calls must be 'outside' or 'inside', not {host_calls!r}")
        loaded = load_elf(program, ram_size=ram_size)  # LoaderError before anything runs
        capacity = int(buffer_kb * 1024)
        if capacity < regions:
            raise ValueError(f"a buffer of {capacity} bytes cannot hold {regions} regions")
        self.ram = loaded.ram
        self.entry = loaded.entry
        self.vcpus = vcpus
        self.max_block_insns = max_block_insns
        self.max_instructions = max_instructions
        self.host_calls = host_calls
        self.world = quiescent.World(name="machine")
        self.policy = make_policy(policy, self.world)
        self.watch = bytearray(len(self.ram) // PAGE_SIZE)
        self.buffer = TranslationBuffer(
            capacity, regions, self.policy, watch=self.watch, on_violation=self._violation
        )
        self.harts: list[EngineHart] = [self._new_hart(i) for i in range(vcpus)]
        for h in self.harts:
            h.reset(self.entry, vcpus)
        self._echo = echo
        self._out = {1: bytearray(), 2: bytearray()}
        self._output_lock = threading.Lock()
        self._reservation_lock = threading.Lock()  # guards _reserved_pages, see above
        self._reserved_pages: set[int] = set()
        self._stop = False  # set once; read by every hart at its safe points
        self._stopped: Stopped = "exit"
        self._fault: GuestFault | None = None
        self._violations: list[str] = []
        self._exit_codes: dict[int, int] = {}
        self._group_exit: int | None = None
        self._error: BaseException | None = None
        self._state_lock = threading.Lock()  # guards the six fields above
        self._ran = False

    def _new_hart(self, hart_id: int) -> EngineHart:
        """The state of vCPU ``hart_id`` (an engine's override returns its own)."""
        return _MachineHart(self, self.ram, hart_id, self.watch)

    # ------------------------------------------------------------------
    # Running

    def run(self) -> MachineResult:
        """Run the program to its end and return the result (once per machine)."""
        if self._ran:
            raise MachineError("a Machine runs once; make a new one")
        self._ran = True
        threads = [
            threading.Thread(target=self._hart_main, args=(h,), name=f"hart{h.hart_id}")
            for h in self.harts
        ]
        start = time.perf_counter()
        try:
            try:
                for t in threads:
                    t.start()
                for t in threads:
                    while t.is_alive():
                        t.join(0.5)
            finally:
                # Also on KeyboardInterrupt: stop the harts and wait for them
                # (after a normal end, every hart has exited: "exit").
                self._halt("exit")
                for t in threads:
                    t.join()
            seconds = time.perf_counter() - start
            if self._error is not None:
                if isinstance(self._error, MachineError):
                    raise self._error
                raise MachineError(f"a hart thread failed: {self._error!r}") from self._error
            return self._result(seconds)
        finally:
            self.policy.close()

    def output(self) -> tuple[bytes, bytes]:
        """What the guest has written so far to stdout and stderr (from any thread).

        The same bytes as :class:`MachineResult`'s once the run has ended,
        and the only way to get them after :meth:`run` raised.
        """
        with self._output_lock:
            return bytes(self._out[1]), bytes(self._out[2])

    def _result(self, seconds: float) -> MachineResult:
        with self._state_lock:
            stopped = self._stopped
            exit_code: int | None = None
            if stopped == "exit":
                exit_code = self._group_exit
                if exit_code is None:
                    exit_code = self._exit_codes.get(0, 0)
            per_hart = tuple(h.instret for h in self.harts)
            return MachineResult(
                exit_code=exit_code,
                stdout=bytes(self._out[1]),
                stderr=bytes(self._out[2]),
                instructions=sum(per_hart),
                per_hart=per_hart,
                seconds=seconds,
                stopped=stopped,
                fault=self._fault,
                violations=tuple(self._violations),
                buffer=self.buffer.statistics(),
                policy=self.policy.statistics(),
                world=self.world.statistics(),
            )

    def stop(self) -> None:
        """Stop every hart at its next safe point; the run ends with ``stopped == "limit"``.

        Safe to call from any thread, before or during :meth:`run`, and more
        than once (the first reason to stop wins: a program that already
        exited stays ``"exit"``).
        """
        self._halt("limit")

    def _halt(self, why: Stopped) -> None:
        """Stop every hart at its next safe point (the first reason wins)."""
        with self._state_lock:
            if self._stop:
                return
            self._stop = True
            self._stopped = why
        for cpu in self.world.vcpus():
            # Queued work kicks the vCPU out of guest code; one that
            # unregistered meanwhile refuses it, which is fine.
            with contextlib.suppress(quiescent.QuiescentError):
                cpu.run_async(_nothing)

    def _violation(self, message: str) -> None:
        """A reclaim broke the grace-period rule (reported by the buffer)."""
        with self._state_lock:
            self._violations.append(message)
        self._halt("violation")

    def _hart_main(self, h: EngineHart) -> None:
        cpu = self.world.register(name=f"hart{h.hart_id}")
        hooks = self.policy.vcpu_hooks()
        cache = self.buffer.new_jump_cache()
        mark = self.buffer.new_vcpu_mark(f"hart{h.hart_id}")
        try:
            self._cpu_loop(h, cpu, hooks, cache, mark)
        except GuestFault as fault:
            with self._state_lock:
                if self._fault is None:
                    self._fault = fault
            self._halt("fault")
        except UseAfterReclaimError as exc:
            with self._state_lock:
                self._violations.append(str(exc))
            self._halt("violation")
        except BaseException as exc:  # reported by run() on the caller's thread
            with self._state_lock:
                if self._error is None:
                    self._error = exc
            self._halt("fault")
        finally:
            self.buffer.drop_vcpu_mark(mark)
            self.buffer.drop_jump_cache(cache)
            cpu.unregister()

    def _cpu_loop(
        self,
        h: EngineHart,
        cpu: quiescent.Vcpu,
        hooks: VcpuHooks,
        cache: list[TranslationBlock | None],
        mark: VcpuMark,
    ) -> None:
        enter, leave, boundary = hooks.enter, hooks.leave, hooks.boundary
        lookup = self.buffer.lookup
        on_full = self.policy.on_full
        generations = self.buffer.generations
        limit = self.max_instructions
        inside = self.host_calls == "inside"
        # The limit is checked where guest code can see it: a guest that loops
        # without a special instruction never leaves the inner loop. One
        # comparison per block against this hart's share of what is left.
        check_at = self._limit_check_at(h)
        pc = h.pc
        while not self._stop:
            token: object = None
            full = special = False
            with cpu.running():
                enter()
                # ORDER: odd after the read side is entered, even again
                # before it is left or cut (see VcpuMark).
                mark.seq += 1
                try:
                    while not cpu.exit_requested and h.instret < check_at:
                        tb = lookup(cache, pc)
                        if tb is None:
                            try:
                                tb = self._translate(pc)
                            except BufferFullError:
                                # Asked here, where the buffer was found full
                                # (the flush count this hart saw).
                                token, full = on_full(), True
                                break
                        fn = tb.fn
                        if fn is special_block:
                            if inside and self._is_host_call(h, pc):
                                # The naive way: block with the read side
                                # held (a stalled vCPU, for comparison).
                                h.pc = pc
                                self._run_special(h)
                                pc = h.pc
                                continue
                            special = True
                            break
                        # The oracle, before and after: the region of the TB
                        # must not be reclaimed while this hart runs it.
                        if generations[tb.region] != tb.generation:
                            tb.check(generations)
                        pc = fn(h)
                        if generations[tb.region] != tb.generation:
                            tb.check(generations)
                        mark.seq += 1
                        boundary()
                        mark.seq += 1
                finally:
                    mark.seq += 1
                    leave()
                    h.pc = pc
            if full:
                self.policy.wait_for_space(token)
            elif special:
                if not self._run_special(h):
                    return  # this hart exited
                pc = h.pc
            cpu.process_work()
            if limit is not None and self._instructions() >= limit:
                self._halt("limit")
            check_at = self._limit_check_at(h)

    def _instructions(self) -> int:
        return sum(h.instret for h in self.harts)

    def _limit_check_at(self, h: EngineHart) -> int:
        """The instret at which hart ``h`` next compares the harts' total with the limit.

        Each hart takes an equal share of the instructions left, so the
        harts together overshoot the limit by at most one block each.
        """
        limit = self.max_instructions
        if limit is None:
            return _NO_LIMIT
        left = limit - self._instructions()
        return h.instret + max(1, -(-left // self.vcpus))

    def _translate(self, pc: int) -> TranslationBlock:
        """Translate the block at ``pc`` and publish it (inside the read side)."""
        ram = self.ram
        max_insns = self.max_block_insns
        while True:
            # Snapshot the guest bytes first: if another hart rewrites them
            # while this one translates, the check below catches it.
            before = bytes(ram[pc : pc + 4 * max_insns])
            fn, end, host = self._generate(pc, max_insns)
            try:
                tb = self.buffer.add(pc, end, fn, host)
            except BlockTooLargeError as exc:
                # Too big for a region: fewer instructions per block.
                if max_insns == 1:
                    raise MachineConfigError(
                        f"a one-instruction block needs {exc.size} bytes; the buffer's "
                        f"regions hold {exc.region_size}: use a larger buffer"
                    ) from None
                max_insns = max(1, max_insns // 2)
                continue
            if bytes(ram[pc:end]) == before[: end - pc]:
                return tb
            self.buffer.invalidate(pc, end)  # rewritten meanwhile: translate again

    def _generate(self, pc: int, max_insns: int) -> tuple[BlockFunction, int, bytes]:
        """The code of the block at ``pc``: its function, guest end and host bytes.

        A special instruction gets :func:`special_block` as its function (the cpu
        loop leaves guest code and calls :meth:`_run_special` for it).
        """
        code = translate(self.ram, pc, max_insns=max_insns)
        if code.n_insns == 0:
            # A special instruction: its "host code" is the word the
            # interpreter will run.
            return special_block, pc + 4, bytes(self.ram[pc : pc + 4]) or b"\0"
        return code.fn, code.end, code.code_bytes

    # ------------------------------------------------------------------
    # Special instructions, system calls, stores

    def _is_host_call(self, h: EngineHart, pc: int) -> bool:
        """Is the instruction at ``pc`` an ``ecall`` of a blocking host call?"""
        hart = cast(_MachineHart, h)
        return fetch(hart, pc) == ECALL and hart.x[17] == SYS_NANOSLEEP

    def _run_special(self, h: EngineHart) -> bool:
        """Run the instruction at ``h.pc`` outside guest code; False once the hart exited."""
        hart = cast(_MachineHart, h)
        insn = decode(fetch(hart, hart.pc))
        if insn.is_atomic:
            with self.world.exclusive():
                step(hart)
                self._update_reservations()
            return True
        if step(hart) is Exit.ECALL:
            return self._syscall(hart)
        return True

    def _on_store(self, addr: int, size: int) -> None:
        flags = self.watch[addr // PAGE_SIZE]
        if flags & 1:
            self.buffer.invalidate(addr, addr + size)
        if flags & RESERVED:
            self._update_reservations(addr, size)

    def _update_reservations(self, addr: int = 0, size: int = 0) -> None:
        """Break reservations overlapping ``[addr, addr + size)``; re-mark reserved pages.

        Called after every atomic step (inside its exclusive section) and
        after stores to reserved pages (by running harts).
        """
        with self._reservation_lock:
            for other in self.harts:
                r = other.reservation
                if r is not None and r < addr + size and addr < r + 4:
                    other.reservation = None
            pages = {h.reservation // PAGE_SIZE for h in self.harts if h.reservation is not None}
            for page in pages ^ self._reserved_pages:
                self.buffer.mark_page(page, RESERVED, page in pages)
            self._reserved_pages = pages

    def _syscall(self, h: Hart) -> bool:
        """Perform the ``ecall`` that ``h`` just stepped over; False once the hart exited."""
        outcome, code = syscall(h, self._write)
        if outcome is Outcome.CONTINUE:
            return True
        with self._state_lock:
            if outcome is Outcome.EXIT:
                self._exit_codes[h.hart_id] = code
            elif self._group_exit is None:
                self._group_exit = code
        if outcome is Outcome.EXIT_GROUP:
            self._halt("exit")
        return False

    def _write(self, fd: int, data: bytes) -> None:
        with self._output_lock:
            self._out[fd] += data
            if fd == 1 and self._echo is not None:
                self._echo.write(data)
                self._echo.flush()


def _nothing() -> None:
    """Queued to kick a vCPU out of guest code."""
