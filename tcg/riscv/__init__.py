"""The RISC-V guest front end: ELF loader, decoder, interpreter and translator.

RV32IMA user-level code plus ``fence.i`` and the Zicsr counter reads, in flat
little-endian guest RAM. :func:`load_elf` validates and loads an executable,
:func:`decode` turns words into :class:`Insn` records, :func:`step` is the
reference interpreter, :func:`translate` turns a basic block into a Python
function, :func:`syscall` implements the guest's system calls, and
:class:`Runner` runs a program single-threaded with all of them.

The multi-threaded emulator (:class:`tcg.Machine`) imports this package
with the modules it needs, but not the single-threaded :class:`Runner`:
``runner``'s names are imported when first used (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcg.riscv.decode import Insn, decode
from tcg.riscv.elf import (
    DEFAULT_RAM_SIZE,
    PAGE_SIZE,
    ElfImage,
    LoadedProgram,
    Segment,
    load_elf,
    parse_elf,
)
from tcg.riscv.errors import FaultReason, GuestFault, LoaderError
from tcg.riscv.hart import STACK_SIZE, Hart
from tcg.riscv.interp import Exit, peek, step
from tcg.riscv.syscalls import Outcome, syscall
from tcg.riscv.translate import TranslatedCode, translate

if TYPE_CHECKING:
    from tcg.riscv.runner import Runner, RunResult, run_program

__all__ = [
    "DEFAULT_RAM_SIZE",
    "PAGE_SIZE",
    "STACK_SIZE",
    "ElfImage",
    "Exit",
    "FaultReason",
    "GuestFault",
    "Hart",
    "Insn",
    "LoadedProgram",
    "LoaderError",
    "Outcome",
    "RunResult",
    "Runner",
    "Segment",
    "TranslatedCode",
    "decode",
    "load_elf",
    "parse_elf",
    "peek",
    "run_program",
    "step",
    "syscall",
    "translate",
]

if not TYPE_CHECKING:
    _RUNNER = ("RunResult", "Runner", "run_program")

    def __getattr__(name: str) -> object:
        """Import ``runner``'s names on first use and keep them in the module."""
        if name not in _RUNNER:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from tcg.riscv import runner

        value = getattr(runner, name)
        # Later lookups find the name without this function. Two threads that
        # race here store the same object (the import system imports a module
        # once).
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
