"""Test helpers: a small RISC-V assembler and an ELF32 writer.

The assembler encodes instructions from the ISA manual's field layouts,
independently of :mod:`tcg.riscv.decode`, so decoding what it encodes checks
the decoder rather than repeating it.
"""

from __future__ import annotations

import struct

from hypothesis import settings

from tcg.riscv import Hart

R_OPS = {
    # name: (funct7, funct3)
    "add": (0x00, 0),
    "sub": (0x20, 0),
    "sll": (0x00, 1),
    "slt": (0x00, 2),
    "sltu": (0x00, 3),
    "xor": (0x00, 4),
    "srl": (0x00, 5),
    "sra": (0x20, 5),
    "or": (0x00, 6),
    "and": (0x00, 7),
    "mul": (0x01, 0),
    "mulh": (0x01, 1),
    "mulhsu": (0x01, 2),
    "mulhu": (0x01, 3),
    "div": (0x01, 4),
    "divu": (0x01, 5),
    "rem": (0x01, 6),
    "remu": (0x01, 7),
}
I_OPS = {"addi": 0, "slti": 2, "sltiu": 3, "xori": 4, "ori": 6, "andi": 7}
SHIFT_OPS = {"slli": (0x00, 1), "srli": (0x00, 5), "srai": (0x20, 5)}
LOAD_OPS = {"lb": 0, "lh": 1, "lw": 2, "lbu": 4, "lhu": 5}
STORE_OPS = {"sb": 0, "sh": 1, "sw": 2}
BRANCH_OPS = {"beq": 0, "bne": 1, "blt": 4, "bge": 5, "bltu": 6, "bgeu": 7}
AMO_OPS = {
    "lr.w": 0b00010,
    "sc.w": 0b00011,
    "amoswap.w": 0b00001,
    "amoadd.w": 0b00000,
    "amoxor.w": 0b00100,
    "amoand.w": 0b01100,
    "amoor.w": 0b01000,
    "amomin.w": 0b10000,
    "amomax.w": 0b10100,
    "amominu.w": 0b11000,
    "amomaxu.w": 0b11100,
}

ECALL = 0x00000073
EBREAK = 0x00100073
FENCE = 0x0FF0000F
FENCE_I = 0x0000100F


def r_type(name: str, rd: int, rs1: int, rs2: int) -> int:
    f7, f3 = R_OPS[name]
    return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x33


def i_type(name: str, rd: int, rs1: int, imm: int) -> int:
    assert -2048 <= imm < 2048
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (I_OPS[name] << 12) | (rd << 7) | 0x13


def shift(name: str, rd: int, rs1: int, shamt: int) -> int:
    f7, f3 = SHIFT_OPS[name]
    return (f7 << 25) | ((shamt & 31) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x13


def load(name: str, rd: int, rs1: int, imm: int) -> int:
    assert -2048 <= imm < 2048
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (LOAD_OPS[name] << 12) | (rd << 7) | 0x03


def store(name: str, rs2: int, rs1: int, imm: int) -> int:
    assert -2048 <= imm < 2048
    imm &= 0xFFF
    return (
        ((imm >> 5) << 25)
        | (rs2 << 20)
        | (rs1 << 15)
        | (STORE_OPS[name] << 12)
        | ((imm & 31) << 7)
        | 0x23
    )


def branch(name: str, rs1: int, rs2: int, offset: int) -> int:
    assert offset % 2 == 0
    assert -4096 <= offset < 4096
    o = offset & 0x1FFF
    return (
        (((o >> 12) & 1) << 31)
        | (((o >> 5) & 0x3F) << 25)
        | (rs2 << 20)
        | (rs1 << 15)
        | (BRANCH_OPS[name] << 12)
        | (((o >> 1) & 0xF) << 8)
        | (((o >> 11) & 1) << 7)
        | 0x63
    )


def jal(rd: int, offset: int) -> int:
    assert offset % 2 == 0
    assert -(1 << 20) <= offset < (1 << 20)
    o = offset & 0x1FFFFF
    return (
        (((o >> 20) & 1) << 31)
        | (((o >> 1) & 0x3FF) << 21)
        | (((o >> 11) & 1) << 20)
        | (((o >> 12) & 0xFF) << 12)
        | (rd << 7)
        | 0x6F
    )


def jalr(rd: int, rs1: int, imm: int) -> int:
    assert -2048 <= imm < 2048
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (rd << 7) | 0x67


def lui(rd: int, imm20: int) -> int:
    return ((imm20 & 0xFFFFF) << 12) | (rd << 7) | 0x37


def auipc(rd: int, imm20: int) -> int:
    return ((imm20 & 0xFFFFF) << 12) | (rd << 7) | 0x17


def amo(name: str, rd: int, rs1: int, rs2: int = 0, aq: int = 0, rl: int = 0) -> int:
    return (
        (AMO_OPS[name] << 27)
        | (aq << 26)
        | (rl << 25)
        | (rs2 << 20)
        | (rs1 << 15)
        | (2 << 12)
        | (rd << 7)
        | 0x2F
    )


def csrr(rd: int, csr: int) -> int:
    """``csrrs rd, csr, x0``: the read form behind ``rdcycle`` and ``csrr``."""
    return (csr << 20) | (2 << 12) | (rd << 7) | 0x73


def put_words(mem: bytearray, addr: int, words: list[int]) -> None:
    for i, w in enumerate(words):
        mem[addr + 4 * i : addr + 4 * i + 4] = w.to_bytes(4, "little")


def make_hart(words: list[int], *, base: int = 0x1000, ram_size: int = 1 << 16) -> Hart:
    """A hart in a small RAM with ``words`` at ``base`` and pc there."""
    ram = bytearray(ram_size)
    put_words(ram, base, words)
    h = Hart(ram)
    h.pc = base
    return h


# --- ELF writer -------------------------------------------------------------------

EHDR = struct.Struct("<16sHHIIIIIHHHHHH")
PHDR = struct.Struct("<IIIIIIII")


def make_elf(
    segments: list[tuple[int, bytes, int, int]],
    entry: int,
    *,
    ident: bytes = b"\x7fELF\x01\x01\x01",
    e_type: int = 2,
    e_machine: int = 243,
    e_version: int = 1,
    e_flags: int = 0,
    phentsize: int = 32,
    p_types: list[int] | None = None,
) -> bytes:
    """An ELF32 file: ``segments`` are ``(vaddr, data, memsz, flags)``."""
    phoff = EHDR.size
    data_off = phoff + PHDR.size * len(segments)
    header = EHDR.pack(
        ident.ljust(16, b"\0"),
        e_type,
        e_machine,
        e_version,
        entry,
        phoff,
        0,
        e_flags,
        EHDR.size,
        phentsize,
        len(segments),
        0,
        0,
        0,
    )
    phdrs = b""
    blobs = b""
    for i, (vaddr, data, memsz, flags) in enumerate(segments):
        p_type = p_types[i] if p_types else 1
        phdrs += PHDR.pack(p_type, data_off + len(blobs), vaddr, vaddr, len(data), memsz, flags, 4)
        blobs += data
    return header + phdrs + blobs


def tiny_program(words: list[int], *, base: int = 0x10000) -> bytes:
    """An executable whose code is ``words`` at ``base`` (entry there)."""
    code = b"".join(w.to_bytes(4, "little") for w in words)
    return make_elf([(base, code, len(code), 5)], base)


def at_least(n: int) -> settings:
    """The loaded Hypothesis profile's settings, with at least ``n`` examples."""
    profile = settings.default
    return settings(max_examples=max(n, profile.max_examples if profile else 0))


class Recorder(Hart):
    """A hart that records the stores its store hook sees."""

    __slots__ = ("stores",)

    def __init__(self, ram: bytearray) -> None:
        super().__init__(ram)
        self.stores: list[tuple[int, int]] = []

    def on_store(self, addr: int, size: int) -> None:
        self.stores.append((addr, size))
