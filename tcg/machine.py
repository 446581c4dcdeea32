"""Machine: guest programs on N vCPU threads sharing one translation buffer.

This is QEMU's multi-threaded TCG in miniature. Every hart runs on its own
thread, in the cpu loop (:mod:`tcg.cpu_loop`, QEMU's ``cpu_exec``): find the
translated block for the pc (jump cache, then index, then translate), run
it, repeat, checking for exit requests at every block boundary. The
translation buffer and its retirement policy are shared by all harts, so
reclamation happens while other harts run the code being reclaimed: the
situation both policies exist for.

The machine owns what does not depend on how a block is produced or run:
argument checks, the guest program's RAM and the page watch array, the
world, the policy and the buffer, the threads, the instruction limit, the
system-call ABI's output and exit codes, LR reservations and the result.
Its cpu loop translates through ``Machine._translate`` (a block that does
not fit a region is retried with fewer instructions; guest bytes rewritten
while they were translated are translated again) and asks
``Machine._next_check`` after every exit from guest code whether to go on
and where the limit is next compared.

Special instructions run outside guest code, by the engine: atomics (LR/SC,
AMOs) inside an exclusive section, whatever the policy, so that a
read-modify-write is atomic across harts (QEMU's ``cpu_exec_step_atomic``);
system calls and the rest directly.

Stores into watched pages (the hart's store hook) invalidate translated code
on the page (self-modifying code) and break LR reservations on the word.
Reservations are written by their own hart inside exclusive sections and
cleared by other harts' stores under the reservation lock; both never
overlap, because an exclusive section runs while no hart is in guest code.

Lock order: exclusive section -> reservation lock -> buffer lock;
``_state_lock`` and ``_output_lock`` are leaves (nothing is taken while one
is held; the state lock is released before a halt kicks the vCPUs).

Other engines
-------------
How a block is produced and run is the engine's business (:mod:`tcg.engine`):
``Machine(program, engine=factory)`` calls ``factory(services)`` once the
program is loaded, with an :class:`~tcg.engine.EngineServices` object (the
RAM, the watch array, the world, system calls, reservation updates and store
notifications), and gets an :class:`~tcg.engine.Engine`: the harts
(:class:`~tcg.engine.EngineHart`), a block's code at a pc, and special
instructions. The default is our translator,
:class:`tcg.riscv_engine.RiscvEngine`; :mod:`tcg.adapters.tinyrv` is another.
The cpu loop, the policy and world wiring, the special-instruction protocol
and the statistics are the same for every engine.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import quiescent
from tcg.block import TranslationBlock
from tcg.buffer import BufferStatistics, TranslationBuffer
from tcg.cpu_loop import CpuLoop
from tcg.engine import BlockCode, Engine, EngineFactory, EngineHart, special_block
from tcg.errors import (
    BlockTooLargeError,
    MachineConfigError,
    MachineError,
    UseAfterReclaimError,
)
from tcg.policies import (
    POLICIES,
    PolicyFactory,
    PolicyStatistics,
    make_policy,
)
from tcg.riscv.elf import DEFAULT_RAM_SIZE, PAGE_SIZE, load_elf
from tcg.riscv.errors import GuestFault
from tcg.riscv.hart import Hart
from tcg.riscv.syscalls import Outcome, syscall
from tcg.riscv.translate import DEFAULT_MAX_INSNS, MAX_INSNS
from tcg.riscv_engine import RiscvEngine

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

#: A hart's instret never reaches it: the cpu loop's check when there is no limit.
_NO_LIMIT = 1 << 62

#: watch-array bit of pages holding translated code (set by the buffer).
CODE = 1
#: watch-array bit of pages holding an LR-reserved word.
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

    ``engine`` makes the engine that produces and runs the blocks (see
    :mod:`tcg.engine`): called once with the machine's
    :class:`~tcg.engine.EngineServices`; our translator by default.

    Blocks are chained: a block's direct exits are linked to their
    successors' blocks, so that the cpu loop enters the next block without a
    lookup (QEMU's ``goto_tb``; see :mod:`tcg.cpu_loop`).
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
        engine: EngineFactory = RiscvEngine,
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
        if not callable(engine):
            raise TypeError(f"engine must be an engine factory, not {type(engine).__name__}")
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
        self.watch = bytearray(len(self.ram) // PAGE_SIZE)
        # The engine before the world and the policy: an engine that cannot
        # be made (tinyrv not installed) leaves no policy behind.
        services = _Services(self)
        self.engine: Engine[Any] = engine(services)
        self.world = quiescent.World(name="machine")
        self.policy = make_policy(policy, self.world)
        self.buffer = TranslationBuffer(
            capacity, regions, self.policy, watch=self.watch, on_violation=self._violation
        )
        self.harts: list[EngineHart] = [self.engine.new_hart(i) for i in range(vcpus)]
        for h in self.harts:
            h.reset(self.entry, vcpus)
        self._loop: CpuLoop[Any] = CpuLoop(
            self.world,
            self.buffer,
            self.engine,
            translate=self._translate,
            next_check=self._next_check,
            host_calls=host_calls,
        )
        self._echo = echo
        self._out = {1: bytearray(), 2: bytearray()}
        # Guards _out and the writes to echo; a leaf.
        self._output_lock = threading.Lock()
        self._stop = False  # set once, under _state_lock; read by every hart at its safe points
        self._stopped: Stopped = "exit"
        self._fault: GuestFault | None = None
        self._violations: list[str] = []
        self._exit_codes: dict[int, int] = {}
        self._group_exit: int | None = None
        self._error: BaseException | None = None
        # Guards the seven fields above (_stop is also read without it: it
        # only ever goes from False to True); a leaf.
        self._state_lock = threading.Lock()
        self._ran = False

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
        try:
            self._loop.run(h, f"hart{h.hart_id}")
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

    def _next_check(self, h: EngineHart) -> int | None:
        """The instret at which hart ``h`` next compares the harts' total with the limit.

        Asked by the cpu loop outside guest code; None once the machine
        stops (the limit reached: it stops here). Each hart takes an equal
        share of the instructions left, so the harts together overshoot the
        limit by at most one block each.
        """
        limit = self.max_instructions
        if limit is not None:
            left = limit - sum(other.instret for other in self.harts)
            if left <= 0:
                self._halt("limit")
                return None
            return None if self._stop else h.instret - (-left // self.vcpus)
        return None if self._stop else _NO_LIMIT

    def _translate(self, pc: int) -> TranslationBlock:
        """Translate the block at ``pc`` and publish it (inside the read side)."""
        ram = self.ram
        generate = self.engine.generate
        max_insns = self.max_block_insns
        while True:
            # Snapshot the guest bytes first: if another hart rewrites them
            # while this one translates, the check below catches it.
            before = bytes(ram[pc : pc + 4 * max_insns])
            code = generate(pc, max_insns)
            if not isinstance(code, BlockCode):
                raise MachineError(
                    f"the engine's generate() must return a tcg.engine.BlockCode, "
                    f"not {type(code).__name__}"
                )
            fn, end, host, exits = code
            try:
                tb = self.buffer.add(pc, end, fn, host, exits=exits)
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

    # ------------------------------------------------------------------
    # System calls and output

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


class _Services:
    """A machine's :class:`~tcg.engine.EngineServices`: what its engine may use of it.

    It owns the LR reservation bookkeeping: which pages hold a reserved
    word (watched with :data:`RESERVED`), and the lock under which any hart
    clears another's reservation.
    """

    __slots__ = ("_machine", "_reservation_lock", "_reserved_pages", "ram", "watch")

    def __init__(self, machine: Machine) -> None:
        self._machine = machine
        self.ram = machine.ram
        self.watch = machine.watch
        # Guards _reserved_pages and the clearing of harts' reservations by
        # other harts. Lock order: taken inside an exclusive section (an
        # atomic step) or by a running hart's store; takes the buffer lock
        # (mark_page) inside.
        self._reservation_lock = threading.Lock()
        self._reserved_pages: set[int] = set()

    @property
    def world(self) -> quiescent.World:
        """The machine's world."""
        return self._machine.world

    def syscall(self, h: Hart) -> bool:
        """The ``ecall`` that ``h`` just stepped over; False once the hart exited."""
        return self._machine._syscall(h)

    def update_reservations(
        self, addr: int = 0, size: int = 0, *, spare: EngineHart | None = None
    ) -> None:
        """Break reservations on ``[addr, addr + size)`` but ``spare``'s; re-mark reserved pages.

        Called after every atomic step (inside its exclusive section) and
        after stores to reserved pages (by running harts).
        """
        harts = self._machine.harts
        buffer = self._machine.buffer
        with self._reservation_lock:
            for other in harts:
                r = other.reservation
                if r is not None and r < addr + size and addr < r + 4 and other is not spare:
                    other.reservation = None
            pages = {h.reservation // PAGE_SIZE for h in harts if h.reservation is not None}
            for page in pages ^ self._reserved_pages:
                buffer.mark_page(page, RESERVED, page in pages)
            self._reserved_pages = pages

    def notify_store(self, addr: int, size: int, *, spare: EngineHart | None = None) -> None:
        """A store of ``size`` bytes at ``addr`` to a watched page."""
        watch = self.watch
        last = (min(addr + size, len(self.ram)) - 1) // PAGE_SIZE
        flags = watch[addr // PAGE_SIZE] | watch[last]
        if flags & CODE:
            self._machine.buffer.invalidate(addr, addr + size)
        if flags & RESERVED:
            self.update_reservations(addr, size, spare=spare)


def _nothing() -> None:
    """Queued to kick a vCPU out of guest code."""
