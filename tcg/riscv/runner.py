"""A minimal single-threaded runner: the cpu loop without threads or policies.

It exists to run guest programs to completion deterministically, for tests and
for measuring the front end alone: translate a block, cache it, run it, and
use the interpreter for the instructions blocks never contain. Several harts
are interleaved round-robin, one block or one special instruction at a time,
on the calling thread, so a multi-hart program always takes the same
interleaving and its output is reproducible. Because only one hart runs at a
time, atomics need no exclusive section here. The multi-threaded machine
replaces all of this with vCPU threads, a shared translation buffer and a
retirement policy; this runner keeps the guest ABI identical so the two can
be compared on the same programs:

* every hart starts at the entry point with ``a0`` = hart id, ``a1`` = number
  of harts, ``sp`` = RAM top minus hart id x 64 KiB;
* the system calls of :mod:`tcg.riscv.syscalls`: ``write`` to fd 1 and 2,
  ``exit`` (this hart), ``exit_group`` (all harts), ``-ENOSYS`` otherwise;
* the exit code (low 8 bits, like a process's) is exit_group's, else hart 0's.

Self-modifying code and LR reservations use the hart's store hook: the pages
holding translated blocks and LR-reserved words are flagged in the shared
``watch`` array, and :meth:`Runner._on_store` drops the blocks overlapping a
store and breaks the reservations on the stored word.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tcg.riscv.elf import DEFAULT_RAM_SIZE, PAGE_SIZE, load_elf
from tcg.riscv.errors import GuestFault
from tcg.riscv.hart import Hart
from tcg.riscv.interp import Exit, step
from tcg.riscv.syscalls import Outcome, syscall
from tcg.riscv.translate import DEFAULT_MAX_INSNS, MAX_INSNS, TranslatedCode, translate

__all__ = ["RunResult", "Runner", "run_program"]

Stopped = Literal["exit", "fault", "limit"]


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended and what the guest wrote."""

    #: The guest's exit code (0-255), or ``None`` after a fault or the limit.
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    #: Guest instructions retired, all harts together.
    instructions: int
    blocks_translated: int
    #: ``"exit"`` (every hart exited, or exit_group), ``"fault"`` or ``"limit"``.
    stopped: Stopped
    fault: GuestFault | None = None


class _RunnerHart(Hart):
    __slots__ = ("runner",)

    def __init__(self, runner: Runner, ram: bytearray, hart_id: int, watch: bytearray) -> None:
        super().__init__(ram, hart_id, watch=watch)
        self.runner = runner

    def on_store(self, addr: int, size: int) -> None:
        self.runner._on_store(addr, size)


class Runner:
    """Runs one guest program on ``harts`` harts interleaved on this thread.

    With ``translate_blocks=False`` every instruction goes through the
    reference interpreter (slow; a second opinion on whole programs).
    """

    def __init__(
        self,
        program: bytes | str | os.PathLike[str],
        *,
        harts: int = 1,
        ram_size: int = DEFAULT_RAM_SIZE,
        max_block_insns: int = DEFAULT_MAX_INSNS,
        translate_blocks: bool = True,
    ) -> None:
        if isinstance(harts, bool) or not isinstance(harts, int) or harts < 1:
            raise ValueError(f"harts must be a positive int, got {harts!r}")
        loaded = load_elf(program, ram_size=ram_size)
        self.ram = loaded.ram
        self.watch = bytearray(len(self.ram) // PAGE_SIZE)
        self.harts = [_RunnerHart(self, self.ram, i, self.watch) for i in range(harts)]
        for h in self.harts:
            h.reset(loaded.entry, harts)
        if (
            isinstance(max_block_insns, bool)
            or not isinstance(max_block_insns, int)
            or not 1 <= max_block_insns <= MAX_INSNS
        ):
            raise ValueError(
                f"max_block_insns must be in [1, {MAX_INSNS}], got {max_block_insns!r}"
            )
        self.max_block_insns = max_block_insns
        self.translate_blocks = translate_blocks
        #: Every cached translation by guest pc, empty blocks included.
        self.blocks: dict[int, TranslatedCode] = {}
        #: The functions of the non-empty ones: what the hot loop looks up.
        self._fns: dict[int, Callable[[Hart], int]] = {}
        self._page_blocks: dict[int, set[int]] = {}
        self.blocks_translated = 0
        self._out = {1: bytearray(), 2: bytearray()}
        self._exit_codes: dict[int, int] = {}
        self._group_exit: int | None = None

    # --- the store hook ----------------------------------------------------------

    def _on_store(self, addr: int, size: int) -> None:
        page = addr // PAGE_SIZE
        pcs = self._page_blocks.get(page)
        if pcs:
            # An empty block stands for the special instruction at its pc:
            # overwriting that word invalidates it too.
            for pc in [p for p in pcs if p < addr + size and self._block_end(p) > addr]:
                pcs.discard(pc)
                del self.blocks[pc]
                self._fns.pop(pc, None)
        for h in self.harts:
            r = h.reservation
            if r is not None and r < addr + size and addr < r + 4:
                h.reservation = None
        self._rewatch(page)

    def _block_end(self, pc: int) -> int:
        return max(self.blocks[pc].end, pc + 4)

    def _rewatch(self, page: int) -> None:
        watched = bool(self._page_blocks.get(page)) or any(
            h.reservation is not None and h.reservation // PAGE_SIZE == page for h in self.harts
        )
        self.watch[page] = 1 if watched else 0

    # --- blocks --------------------------------------------------------------------

    def _translate(self, pc: int) -> TranslatedCode:
        tb = translate(self.ram, pc, max_insns=self.max_block_insns)
        self.blocks_translated += 1
        if pc >= len(self.ram):
            return tb  # nothing to cache: fetching there faults
        self.blocks[pc] = tb
        if tb.n_insns:
            self._fns[pc] = tb.fn
        page = pc // PAGE_SIZE
        self._page_blocks.setdefault(page, set()).add(pc)
        self.watch[page] = 1
        return tb

    def _special(self, h: _RunnerHart) -> bool:
        """Run one instruction with the interpreter; return False once the hart exited."""
        exit_ = step(h)
        if h.reservation is not None:
            self.watch[h.reservation // PAGE_SIZE] = 1
        if exit_ is Exit.ECALL:
            return self._syscall(h)
        return True

    def _syscall(self, h: _RunnerHart) -> bool:
        outcome, code = syscall(h, self._write)
        if outcome is Outcome.EXIT:
            self._exit_codes[h.hart_id] = code
        elif outcome is Outcome.EXIT_GROUP:
            self._group_exit = code
        return outcome is Outcome.CONTINUE

    def _write(self, fd: int, data: bytes) -> None:
        self._out[fd] += data

    def _run_slice(self, h: _RunnerHart, max_blocks: int) -> bool:
        """Run up to ``max_blocks`` blocks (a special instruction counts as one)."""
        if not self.translate_blocks:
            return all(self._special(h) for _ in range(max_blocks))
        # The hot loop: one dict lookup and one call per block. ``h.pc`` is
        # only brought up to date when the slice ends or before a special
        # instruction (a faulting block sets it itself).
        fns = self._fns
        pc = h.pc
        for _ in range(max_blocks):
            fn = fns.get(pc)
            if fn is None and pc not in self.blocks and self._translate(pc).n_insns:
                fn = fns[pc]
            if fn is not None:
                pc = fn(h)
                continue
            h.pc = pc  # an empty block: the instruction at pc is special
            if not self._special(h):
                return False
            pc = h.pc
        h.pc = pc
        return True

    # --- the run ---------------------------------------------------------------------

    def run(self, max_instructions: int | None = None) -> RunResult:
        """Run until every hart exited, exit_group, a fault, or ``max_instructions``."""
        if max_instructions is not None and (
            isinstance(max_instructions, bool)
            or not isinstance(max_instructions, int)
            or max_instructions < 1
        ):
            raise ValueError(f"max_instructions must be a positive int, got {max_instructions!r}")
        live = [h for h in self.harts if h.hart_id not in self._exit_codes]
        # One hart runs long slices; several take turns one block at a time.
        slice_blocks = 1 if len(live) > 1 else 1000
        stopped: Stopped = "exit"
        fault: GuestFault | None = None
        try:
            while live and self._group_exit is None:
                for h in list(live):
                    if not self._run_slice(h, slice_blocks):
                        live.remove(h)
                        if len(live) == 1:
                            slice_blocks = 1000
                    if self._group_exit is not None:
                        break
                if max_instructions is not None and self.instructions >= max_instructions:
                    stopped = "limit"
                    break
        except GuestFault as exc:
            stopped, fault = "fault", exc
        exit_code: int | None = None
        if stopped == "exit":
            exit_code = self._group_exit
            if exit_code is None:
                exit_code = self._exit_codes.get(0, 0)
        return RunResult(
            exit_code=exit_code,
            stdout=bytes(self._out[1]),
            stderr=bytes(self._out[2]),
            instructions=self.instructions,
            blocks_translated=self.blocks_translated,
            stopped=stopped,
            fault=fault,
        )

    @property
    def instructions(self) -> int:
        """Guest instructions retired so far, all harts together."""
        return sum(h.instret for h in self.harts)


def run_program(
    program: bytes | str | os.PathLike[str],
    *,
    harts: int = 1,
    ram_size: int = DEFAULT_RAM_SIZE,
    max_instructions: int | None = None,
    translate_blocks: bool = True,
) -> RunResult:
    """Load and run a program with :class:`Runner` (see there)."""
    runner = Runner(program, harts=harts, ram_size=ram_size, translate_blocks=translate_blocks)
    return runner.run(max_instructions)
