"""Decoding RV32IMA (+ fence.i and the Zicsr counter reads) into records.

A 32-bit instruction word becomes an immutable :class:`Insn`: the mnemonic
and the operand fields every execution engine needs, with the immediate
already assembled and sign-extended. Both the reference interpreter and the
translator start from this record, so the bit-twiddling of the six RISC-V
immediate formats lives here and nowhere else.

The decoder is total: every one of the 2**32 words decodes to a record. A word
that is not an instruction this guest supports (compressed, floating point, a
reserved encoding, a CSR that does not exist or a write to a read-only one)
decodes to an ``Insn`` named ``"illegal"``; executing it is a guest fault
(:class:`~tcg.riscv.GuestFault`), decoding it is not an error. That keeps the
decoder usable from the translator, which only looks ahead and must never
fault for an instruction that may never run.

Decoding is pure, so results are memoized by word.

The CSRs are the unprivileged counters plus ``mhartid``, all read-only:
``cycle``/``time``/``instret`` and their ``h`` halves read the hart's
retired-instruction count (one instruction per cycle keeps runs
deterministic). Only the read forms are legal: ``csrrs``/``csrrc`` with
``rs1 = x0`` and ``csrrsi``/``csrrci`` with a zero immediate (spec: those
forms do not write, so they are legal on read-only CSRs; every other form
writes and raises illegal instruction).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "ATOMICS",
    "BRANCHES",
    "CSR_CYCLE",
    "CSR_CYCLEH",
    "CSR_INSTRET",
    "CSR_INSTRETH",
    "CSR_MHARTID",
    "CSR_TIME",
    "CSR_TIMEH",
    "ILLEGAL",
    "LOADS",
    "SPECIALS",
    "STORES",
    "Insn",
    "decode",
]

CSR_CYCLE = 0xC00
CSR_TIME = 0xC01
CSR_INSTRET = 0xC02
CSR_CYCLEH = 0xC80
CSR_TIMEH = 0xC81
CSR_INSTRETH = 0xC82
CSR_MHARTID = 0xF14
_READABLE_CSRS = frozenset(
    {CSR_CYCLE, CSR_TIME, CSR_INSTRET, CSR_CYCLEH, CSR_TIMEH, CSR_INSTRETH, CSR_MHARTID}
)

ILLEGAL = "illegal"

BRANCHES = frozenset({"beq", "bne", "blt", "bge", "bltu", "bgeu"})
LOADS = frozenset({"lb", "lh", "lw", "lbu", "lhu"})
STORES = frozenset({"sb", "sh", "sw"})
ATOMICS = frozenset(
    {
        "lr.w",
        "sc.w",
        "amoswap.w",
        "amoadd.w",
        "amoxor.w",
        "amoand.w",
        "amoor.w",
        "amomin.w",
        "amomax.w",
        "amominu.w",
        "amomaxu.w",
    }
)
_CSR_OPS = frozenset({"csrrs", "csrrc", "csrrsi", "csrrci"})
#: Instructions a translated block never contains: the cpu loop runs them one
#: at a time with the interpreter (atomics inside an exclusive section).
SPECIALS = frozenset({"ecall", "ebreak", "fence", "fence.i"}) | ATOMICS | _CSR_OPS

_BRANCH_F3 = {0: "beq", 1: "bne", 4: "blt", 5: "bge", 6: "bltu", 7: "bgeu"}
_LOAD_F3 = {0: "lb", 1: "lh", 2: "lw", 4: "lbu", 5: "lhu"}
_STORE_F3 = {0: "sb", 1: "sh", 2: "sw"}
_OPIMM_F3 = {0: "addi", 2: "slti", 3: "sltiu", 4: "xori", 6: "ori", 7: "andi"}
_OP_F3 = {
    0x00: {0: "add", 1: "sll", 2: "slt", 3: "sltu", 4: "xor", 5: "srl", 6: "or", 7: "and"},
    0x20: {0: "sub", 5: "sra"},
    0x01: {
        0: "mul",
        1: "mulh",
        2: "mulhsu",
        3: "mulhu",
        4: "div",
        5: "divu",
        6: "rem",
        7: "remu",
    },
}
_AMO_F5 = {
    0b00010: "lr.w",
    0b00011: "sc.w",
    0b00001: "amoswap.w",
    0b00000: "amoadd.w",
    0b00100: "amoxor.w",
    0b01100: "amoand.w",
    0b01000: "amoor.w",
    0b10000: "amomin.w",
    0b10100: "amomax.w",
    0b11000: "amominu.w",
    0b11100: "amomaxu.w",
}
_CSR_F3 = {2: "csrrs", 3: "csrrc", 6: "csrrsi", 7: "csrrci"}


@dataclass(frozen=True, slots=True)
class Insn:
    """One decoded instruction.

    ``imm`` is sign-extended (a Python int, possibly negative) for the I, S,
    B and J formats, the shift amount for shifts by immediate, and the upper
    20 bits in place (``word & 0xFFFFF000``, unsigned) for ``lui``/``auipc``.
    ``csr`` is the CSR number of a CSR read, else 0. Fields an instruction
    does not have are 0.
    """

    name: str
    word: int
    rd: int = 0
    rs1: int = 0
    rs2: int = 0
    imm: int = 0
    csr: int = 0

    @property
    def is_illegal(self) -> bool:
        """Whether executing this word is an illegal-instruction fault."""
        return self.name == ILLEGAL

    @property
    def is_special(self) -> bool:
        """Whether it must run through the interpreter, never in a translated block."""
        return self.name in SPECIALS

    @property
    def is_atomic(self) -> bool:
        """Whether it is an LR/SC or AMO (run inside an exclusive section)."""
        return self.name in ATOMICS


def _sext(value: int, bits: int) -> int:
    """Sign-extend the low ``bits`` bits of ``value``."""
    sign = 1 << (bits - 1)
    return (value & (sign - 1)) - (value & sign)


def decode(word: int) -> Insn:
    """Decode one 32-bit instruction word (an illegal word decodes to ``"illegal"``)."""
    if isinstance(word, bool) or not isinstance(word, int):
        raise TypeError(f"word must be an int, not {type(word).__name__}")
    if not 0 <= word <= 0xFFFFFFFF:
        raise ValueError(f"word must be a 32-bit unsigned value, got {word:#x}")
    return _decode(word)


@lru_cache(maxsize=1 << 16)
def _decode(w: int) -> Insn:
    opcode = w & 0x7F
    rd = (w >> 7) & 31
    f3 = (w >> 12) & 7
    rs1 = (w >> 15) & 31
    rs2 = (w >> 20) & 31
    f7 = w >> 25
    i_imm = _sext(w >> 20, 12)
    illegal = Insn(ILLEGAL, w)

    if opcode == 0x37:
        return Insn("lui", w, rd=rd, imm=w & 0xFFFFF000)
    if opcode == 0x17:
        return Insn("auipc", w, rd=rd, imm=w & 0xFFFFF000)
    if opcode == 0x6F:
        # J-type: imm[20|10:1|11|19:12] in bits 31..12.
        imm = (
            ((w >> 31) << 20)
            | (((w >> 12) & 0xFF) << 12)
            | (((w >> 20) & 1) << 11)
            | (((w >> 21) & 0x3FF) << 1)
        )
        return Insn("jal", w, rd=rd, imm=_sext(imm, 21))
    if opcode == 0x67:
        return Insn("jalr", w, rd=rd, rs1=rs1, imm=i_imm) if f3 == 0 else illegal
    if opcode == 0x63:
        name = _BRANCH_F3.get(f3)
        if name is None:
            return illegal
        # B-type: imm[12|10:5] in bits 31..25, imm[4:1|11] in bits 11..7.
        imm = (
            ((w >> 31) << 12)
            | (((w >> 7) & 1) << 11)
            | (((w >> 25) & 0x3F) << 5)
            | (((w >> 8) & 0xF) << 1)
        )
        return Insn(name, w, rs1=rs1, rs2=rs2, imm=_sext(imm, 13))
    if opcode == 0x03:
        name = _LOAD_F3.get(f3)
        return illegal if name is None else Insn(name, w, rd=rd, rs1=rs1, imm=i_imm)
    if opcode == 0x23:
        name = _STORE_F3.get(f3)
        imm = _sext(((w >> 25) << 5) | ((w >> 7) & 31), 12)
        return illegal if name is None else Insn(name, w, rs1=rs1, rs2=rs2, imm=imm)
    if opcode == 0x13:
        if f3 == 1:
            # RV32: shamt is 5 bits; shamt[5] (bit 25) set is reserved.
            return Insn("slli", w, rd=rd, rs1=rs1, imm=rs2) if f7 == 0 else illegal
        if f3 == 5:
            if f7 == 0:
                return Insn("srli", w, rd=rd, rs1=rs1, imm=rs2)
            return Insn("srai", w, rd=rd, rs1=rs1, imm=rs2) if f7 == 0x20 else illegal
        return Insn(_OPIMM_F3[f3], w, rd=rd, rs1=rs1, imm=i_imm)
    if opcode == 0x33:
        name = _OP_F3.get(f7, {}).get(f3)
        return illegal if name is None else Insn(name, w, rd=rd, rs1=rs1, rs2=rs2)
    if opcode == 0x0F:
        if f3 == 0:
            return Insn("fence", w)
        return Insn("fence.i", w) if f3 == 1 else illegal
    if opcode == 0x73:
        if f3 == 0:
            if w == 0x00000073:
                return Insn("ecall", w)
            return Insn("ebreak", w) if w == 0x00100073 else illegal
        name = _CSR_F3.get(f3)
        csr = w >> 20
        # rs1 is a register for csrrs/csrrc and a 5-bit immediate for the
        # i-forms; either way zero means "read only, no write".
        if name is None or rs1 != 0 or csr not in _READABLE_CSRS:
            return illegal
        return Insn(name, w, rd=rd, csr=csr)
    if opcode == 0x2F:
        name = _AMO_F5.get(w >> 27)
        if f3 != 2 or name is None or (name == "lr.w" and rs2 != 0):
            return illegal
        return Insn(name, w, rd=rd, rs1=rs1, rs2=rs2)
    return illegal
