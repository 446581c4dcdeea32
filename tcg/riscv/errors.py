"""The two ways a guest program can go wrong, kept apart on purpose.

A *loader error* is the host's problem: the file handed to the emulator is not
an executable it can run (not ELF, wrong class or machine, a segment that does
not fit in guest RAM). It is raised before any guest instruction runs, and it
is a :class:`ValueError` because it is bad input to a call.

A *guest fault* is the guest's problem: the program itself executed an illegal
instruction, touched memory it may not, or hit ``ebreak``. The emulator stops
the machine and reports it. A :class:`GuestFault` is therefore a record first
(hart, pc, instruction word, reason, address) and an exception second: the
interpreter and the translated blocks raise it to unwind out of guest code,
and the machine catches it and turns it into a report, never a traceback.
"""

from __future__ import annotations

import enum

__all__ = ["FaultReason", "GuestFault", "LoaderError"]


class LoaderError(ValueError):
    """The file is not a RISC-V ELF32 executable this emulator can load."""


class FaultReason(enum.StrEnum):
    """Why a guest instruction faulted (the value is the human-readable text)."""

    ILLEGAL_INSTRUCTION = "illegal instruction"
    EBREAK = "breakpoint (ebreak)"
    FETCH_MISALIGNED = "instruction address misaligned"
    FETCH_ACCESS = "instruction fetch outside guest RAM"
    LOAD_MISALIGNED = "misaligned load"
    LOAD_ACCESS = "load outside guest RAM"
    STORE_MISALIGNED = "misaligned store or atomic"
    STORE_ACCESS = "store or atomic outside guest RAM"


class GuestFault(Exception):
    """A guest program fault: which hart, where, which instruction, and why.

    ``pc`` is the address of the faulting instruction and ``word`` its
    encoding (``None`` when the fetch itself failed). ``address`` is the data
    or target address involved, when there is one.
    """

    def __init__(
        self,
        hart_id: int,
        pc: int,
        word: int | None,
        reason: FaultReason,
        address: int | None = None,
    ) -> None:
        self.hart_id = hart_id
        self.pc = pc
        self.word = word
        self.reason = reason
        self.address = address
        super().__init__(self.describe())

    def describe(self) -> str:
        """One line for the user: ``hart 0: illegal instruction at pc 0x... (word 0x...)``."""
        text = f"hart {self.hart_id}: {self.reason.value} at pc {self.pc:#010x}"
        if self.word is not None:
            text += f" (instruction {self.word:#010x})"
        if self.address is not None:
            text += f", address {self.address:#010x}"
        return text

    def key(self) -> tuple[int, int, int | None, FaultReason, int | None]:
        """Everything that identifies the fault, for comparing two executions."""
        return (self.hart_id, self.pc, self.word, self.reason, self.address)

    def __reduce__(self) -> tuple[type[GuestFault], tuple[object, ...]]:
        return (type(self), (self.hart_id, self.pc, self.word, self.reason, self.address))
