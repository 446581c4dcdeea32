"""The reference interpreter: one instruction at a time, obviously right.

This is the specification the translator is tested against, so it is written
for the reader, not for speed: fetch, decode, one small function per
instruction, memory through ``int.from_bytes``, signed values made explicit
with :func:`signed`. It is also the engine for the instructions translated
blocks never contain (see :data:`~tcg.riscv.decode.SPECIALS`): the cpu loop
calls :func:`step` for them.

Contract of :func:`step` (the cpu loop relies on it):

* It executes exactly one instruction of ``h`` at ``h.pc``, retires it
  (``h.instret += 1``) and advances ``h.pc``, *including* for ``ecall`` and
  ``fence.i``: the returned :class:`Exit` tells the caller what to do next,
  with ``h.pc`` already pointing past the instruction (``h.pc - 4`` is the
  ``ecall``). The syscall number is ``h.x[17]`` (a7), arguments ``h.x[10:16]``,
  and the caller writes the result to ``h.x[10]``.
* Atomics (``lr.w``, ``sc.w``, AMOs) run entirely inside the call: the caller
  wraps the call in an exclusive section and nothing else is needed.
* A guest fault (illegal instruction, misaligned or out-of-range access or
  fetch, misaligned jump target, ``ebreak``) raises :class:`GuestFault` with
  ``h.pc`` still at the faulting instruction and no register written.
* Every store (plain, SC, AMO) to a page flagged in ``h.watch`` is followed by
  ``h.on_store(addr, size)``, like in translated code.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from tcg.riscv.decode import (
    CSR_CYCLEH,
    CSR_INSTRETH,
    CSR_MHARTID,
    CSR_TIMEH,
    Insn,
    decode,
)
from tcg.riscv.errors import FaultReason, GuestFault
from tcg.riscv.hart import Hart

__all__ = ["Exit", "Hart", "fetch", "peek", "signed", "step"]

MASK = 0xFFFFFFFF


class Exit(enum.Enum):
    """What the caller of :func:`step` has to do after the instruction."""

    #: Nothing: carry on at ``h.pc``.
    NONE = "none"
    #: A system call: handle ``a7`` with ``a0..a5``, write the result to ``a0``.
    ECALL = "ecall"
    #: ``fence.i``: stores before it must be visible to instruction fetch.
    FENCE_I = "fence.i"


def signed(value: int) -> int:
    """The two's-complement value of an unsigned 32-bit register value."""
    return value - (1 << 32) if value & 0x80000000 else value


def fetch(h: Hart, pc: int) -> int:
    """Fetch the instruction word at ``pc`` (a fault if misaligned or outside RAM)."""
    if pc % 4:
        raise GuestFault(h.hart_id, pc, None, FaultReason.FETCH_MISALIGNED, pc)
    if pc + 4 > len(h.mem):
        raise GuestFault(h.hart_id, pc, None, FaultReason.FETCH_ACCESS, pc)
    return int.from_bytes(h.mem[pc : pc + 4], "little")


def peek(h: Hart) -> Insn:
    """Decode the instruction at ``h.pc`` without executing it.

    The cpu loop uses it to learn whether the next special instruction is
    an atomic (``peek(h).is_atomic``) and so must run in an exclusive
    section. A fetch fault is raised as :class:`GuestFault`.
    """
    return decode(fetch(h, h.pc))


def step(h: Hart) -> Exit:
    """Execute the instruction at ``h.pc`` (see the module docstring for the contract)."""
    pc = h.pc
    insn = decode(fetch(h, pc))
    handler = _HANDLERS.get(insn.name)
    if handler is None:
        reason = FaultReason.EBREAK if insn.name == "ebreak" else FaultReason.ILLEGAL_INSTRUCTION
        raise GuestFault(h.hart_id, pc, insn.word, reason)
    next_pc = handler(h, insn, pc)
    h.pc = next_pc
    h.instret += 1
    if insn.name == "ecall":
        return Exit.ECALL
    if insn.name == "fence.i":
        return Exit.FENCE_I
    return Exit.NONE


# --- helpers ------------------------------------------------------------------


def _set(h: Hart, rd: int, value: int) -> None:
    if rd != 0:  # x0 is hard-wired to zero
        h.x[rd] = value & MASK


def _fault(h: Hart, insn: Insn, reason: FaultReason, address: int | None = None) -> GuestFault:
    return GuestFault(h.hart_id, h.pc, insn.word, reason, address)


def _load(h: Hart, insn: Insn, addr: int, size: int, is_signed: bool) -> int:
    if addr % size:
        raise _fault(h, insn, FaultReason.LOAD_MISALIGNED, addr)
    if addr + size > len(h.mem):
        raise _fault(h, insn, FaultReason.LOAD_ACCESS, addr)
    return int.from_bytes(h.mem[addr : addr + size], "little", signed=is_signed) & MASK


def _check_store(h: Hart, insn: Insn, addr: int, size: int) -> None:
    if addr % size:
        raise _fault(h, insn, FaultReason.STORE_MISALIGNED, addr)
    if addr + size > len(h.mem):
        raise _fault(h, insn, FaultReason.STORE_ACCESS, addr)


def _store(h: Hart, insn: Insn, addr: int, size: int, value: int) -> None:
    _check_store(h, insn, addr, size)
    h.mem[addr : addr + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    if h.watch[addr >> 12]:
        h.on_store(addr, size)


def _jump(h: Hart, insn: Insn, target: int) -> int:
    # Without the C extension every instruction address is a multiple of 4;
    # a jump or taken branch elsewhere faults on the jump itself.
    if target % 4:
        raise _fault(h, insn, FaultReason.FETCH_MISALIGNED, target)
    return target


# --- instructions ---------------------------------------------------------------

_Handler = Callable[[Hart, Insn, int], int]
_HANDLERS: dict[str, _Handler] = {}


def _op(name: str) -> Callable[[_Handler], _Handler]:
    def register(fn: _Handler) -> _Handler:
        _HANDLERS[name] = fn
        return fn

    return register


@_op("lui")
def _lui(h: Hart, i: Insn, pc: int) -> int:
    _set(h, i.rd, i.imm)
    return pc + 4


@_op("auipc")
def _auipc(h: Hart, i: Insn, pc: int) -> int:
    _set(h, i.rd, pc + i.imm)
    return pc + 4


@_op("jal")
def _jal(h: Hart, i: Insn, pc: int) -> int:
    target = _jump(h, i, (pc + i.imm) & MASK)
    _set(h, i.rd, pc + 4)
    return target


@_op("jalr")
def _jalr(h: Hart, i: Insn, pc: int) -> int:
    # The target is computed before rd is written (rd may equal rs1), and
    # jalr clears bit 0 of the sum.
    target = _jump(h, i, (h.x[i.rs1] + i.imm) & MASK & ~1)
    _set(h, i.rd, pc + 4)
    return target


def _branch(taken: Callable[[int, int], bool]) -> _Handler:
    def run(h: Hart, i: Insn, pc: int) -> int:
        if taken(h.x[i.rs1], h.x[i.rs2]):
            return _jump(h, i, (pc + i.imm) & MASK)
        return pc + 4

    return run


_HANDLERS["beq"] = _branch(lambda a, b: a == b)
_HANDLERS["bne"] = _branch(lambda a, b: a != b)
_HANDLERS["blt"] = _branch(lambda a, b: signed(a) < signed(b))
_HANDLERS["bge"] = _branch(lambda a, b: signed(a) >= signed(b))
_HANDLERS["bltu"] = _branch(lambda a, b: a < b)
_HANDLERS["bgeu"] = _branch(lambda a, b: a >= b)


def _load_op(size: int, is_signed: bool) -> _Handler:
    def run(h: Hart, i: Insn, pc: int) -> int:
        _set(h, i.rd, _load(h, i, (h.x[i.rs1] + i.imm) & MASK, size, is_signed))
        return pc + 4

    return run


_HANDLERS["lb"] = _load_op(1, True)
_HANDLERS["lh"] = _load_op(2, True)
_HANDLERS["lw"] = _load_op(4, True)
_HANDLERS["lbu"] = _load_op(1, False)
_HANDLERS["lhu"] = _load_op(2, False)


def _store_op(size: int) -> _Handler:
    def run(h: Hart, i: Insn, pc: int) -> int:
        _store(h, i, (h.x[i.rs1] + i.imm) & MASK, size, h.x[i.rs2])
        return pc + 4

    return run


_HANDLERS["sb"] = _store_op(1)
_HANDLERS["sh"] = _store_op(2)
_HANDLERS["sw"] = _store_op(4)


def _div(a: int, b: int) -> int:
    """RISC-V DIV: signed, rounds toward zero (Python's // floors)."""
    sa, sb = signed(a), signed(b)
    if sb == 0:
        return MASK  # division by zero: all ones (-1)
    if sa == -(1 << 31) and sb == -1:
        return a  # overflow: the dividend, -2**31
    q = abs(sa) // abs(sb)
    return -q if (sa < 0) != (sb < 0) else q


def _rem(a: int, b: int) -> int:
    """RISC-V REM: the remainder's sign follows the dividend."""
    sa, sb = signed(a), signed(b)
    if sb == 0:
        return a  # division by zero: the dividend
    if sa == -(1 << 31) and sb == -1:
        return 0  # overflow: zero
    r = abs(sa) % abs(sb)
    return -r if sa < 0 else r


_ALU: dict[str, Callable[[int, int], int]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "sll": lambda a, b: a << (b & 31),  # shift amounts use the low 5 bits only
    "slt": lambda a, b: int(signed(a) < signed(b)),
    "sltu": lambda a, b: int(a < b),
    "xor": lambda a, b: a ^ b,
    "srl": lambda a, b: a >> (b & 31),
    "sra": lambda a, b: signed(a) >> (b & 31),
    "or": lambda a, b: a | b,
    "and": lambda a, b: a & b,
    "mul": lambda a, b: a * b,
    "mulh": lambda a, b: (signed(a) * signed(b)) >> 32,
    "mulhsu": lambda a, b: (signed(a) * b) >> 32,
    "mulhu": lambda a, b: (a * b) >> 32,
    "div": _div,
    "divu": lambda a, b: a // b if b else MASK,
    "rem": _rem,
    "remu": lambda a, b: a % b if b else a,
}


def _alu_reg(fn: Callable[[int, int], int]) -> _Handler:
    def run(h: Hart, i: Insn, pc: int) -> int:
        _set(h, i.rd, fn(h.x[i.rs1], h.x[i.rs2]))
        return pc + 4

    return run


def _alu_imm(fn: Callable[[int, int], int]) -> _Handler:
    def run(h: Hart, i: Insn, pc: int) -> int:
        # The immediate is sign-extended to 32 bits first, also for sltiu
        # (which then compares unsigned) and for xori/ori/andi.
        _set(h, i.rd, fn(h.x[i.rs1], i.imm & MASK))
        return pc + 4

    return run


for _name, _fn in _ALU.items():
    _HANDLERS[_name] = _alu_reg(_fn)
for _name, _base in [
    ("addi", "add"),
    ("slti", "slt"),
    ("sltiu", "sltu"),
    ("xori", "xor"),
    ("ori", "or"),
    ("andi", "and"),
    ("slli", "sll"),
    ("srli", "srl"),
    ("srai", "sra"),
]:
    _HANDLERS[_name] = _alu_imm(_ALU[_base])


@_op("fence")
@_op("fence.i")
@_op("ecall")
def _no_effect(h: Hart, i: Insn, pc: int) -> int:
    # Memory is sequentially consistent here, so a fence orders nothing more;
    # ecall and fence.i are the caller's business (see Exit).
    return pc + 4


def _read_csr(h: Hart, csr: int) -> int:
    if csr == CSR_MHARTID:
        return h.hart_id
    # cycle, time and instret all count retired instructions.
    if csr in (CSR_CYCLEH, CSR_TIMEH, CSR_INSTRETH):
        return (h.instret >> 32) & MASK
    return h.instret & MASK


@_op("csrrs")
@_op("csrrc")
@_op("csrrsi")
@_op("csrrci")
def _csr(h: Hart, i: Insn, pc: int) -> int:
    # The decoder accepts only the forms that do not write (rs1/uimm = 0).
    _set(h, i.rd, _read_csr(h, i.csr))
    return pc + 4


@_op("lr.w")
def _lr(h: Hart, i: Insn, pc: int) -> int:
    addr = h.x[i.rs1]
    value = _load(h, i, addr, 4, False)
    h.reservation = addr
    _set(h, i.rd, value)
    return pc + 4


@_op("sc.w")
def _sc(h: Hart, i: Insn, pc: int) -> int:
    addr = h.x[i.rs1]
    _check_store(h, i, addr, 4)
    reserved = h.reservation == addr
    h.reservation = None  # an SC always ends the reservation
    if reserved:
        _store(h, i, addr, 4, h.x[i.rs2])
    _set(h, i.rd, 0 if reserved else 1)
    return pc + 4


_AMO: dict[str, Callable[[int, int], int]] = {
    "amoswap.w": lambda old, v: v,
    "amoadd.w": lambda old, v: old + v,
    "amoxor.w": lambda old, v: old ^ v,
    "amoand.w": lambda old, v: old & v,
    "amoor.w": lambda old, v: old | v,
    "amomin.w": lambda old, v: old if signed(old) <= signed(v) else v,
    "amomax.w": lambda old, v: old if signed(old) >= signed(v) else v,
    "amominu.w": lambda old, v: min(old, v),
    "amomaxu.w": lambda old, v: max(old, v),
}


def _amo(fn: Callable[[int, int], int]) -> _Handler:
    def run(h: Hart, i: Insn, pc: int) -> int:
        addr = h.x[i.rs1]
        # An AMO is a store for alignment and access faults.
        _check_store(h, i, addr, 4)
        old = _load(h, i, addr, 4, False)
        _store(h, i, addr, 4, fn(old, h.x[i.rs2]))
        _set(h, i.rd, old)
        return pc + 4

    return run


for _name, _fn in _AMO.items():
    _HANDLERS[_name] = _amo(_fn)
