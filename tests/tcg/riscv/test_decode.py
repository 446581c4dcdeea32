"""The decoder: every word decodes; encodings from the ISA manual decode back."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcg.riscv import Exit, FaultReason, GuestFault, Hart, decode, step
from tcg.riscv.decode import SPECIALS
from tcg.workloads import WORKLOADS

from . import helpers as asm

regs = st.integers(0, 31)
imm12 = st.integers(-2048, 2047)


@given(st.sampled_from(sorted(asm.R_OPS)), regs, regs, regs)
def test_r_type_round_trip(name: str, rd: int, rs1: int, rs2: int) -> None:
    i = decode(asm.r_type(name, rd, rs1, rs2))
    assert (i.name, i.rd, i.rs1, i.rs2) == (name, rd, rs1, rs2)


@given(st.sampled_from(sorted(asm.I_OPS)), regs, regs, imm12)
def test_i_type_round_trip(name: str, rd: int, rs1: int, imm: int) -> None:
    i = decode(asm.i_type(name, rd, rs1, imm))
    assert (i.name, i.rd, i.rs1, i.imm) == (name, rd, rs1, imm)


@given(st.sampled_from(sorted(asm.SHIFT_OPS)), regs, regs, st.integers(0, 31))
def test_shift_round_trip(name: str, rd: int, rs1: int, shamt: int) -> None:
    i = decode(asm.shift(name, rd, rs1, shamt))
    assert (i.name, i.rd, i.rs1, i.imm) == (name, rd, rs1, shamt)


@given(st.sampled_from(sorted(asm.LOAD_OPS)), regs, regs, imm12)
def test_load_round_trip(name: str, rd: int, rs1: int, imm: int) -> None:
    i = decode(asm.load(name, rd, rs1, imm))
    assert (i.name, i.rd, i.rs1, i.imm) == (name, rd, rs1, imm)


@given(st.sampled_from(sorted(asm.STORE_OPS)), regs, regs, imm12)
def test_store_round_trip(name: str, rs2: int, rs1: int, imm: int) -> None:
    i = decode(asm.store(name, rs2, rs1, imm))
    assert (i.name, i.rs2, i.rs1, i.imm) == (name, rs2, rs1, imm)


@given(st.sampled_from(sorted(asm.BRANCH_OPS)), regs, regs, st.integers(-2048, 2047))
def test_branch_round_trip(name: str, rs1: int, rs2: int, half: int) -> None:
    i = decode(asm.branch(name, rs1, rs2, 2 * half))
    assert (i.name, i.rs1, i.rs2, i.imm) == (name, rs1, rs2, 2 * half)


@given(regs, st.integers(-(1 << 19), (1 << 19) - 1), regs, imm12)
def test_jumps_round_trip(rd: int, half: int, rs1: int, imm: int) -> None:
    i = decode(asm.jal(rd, 2 * half))
    assert (i.name, i.rd, i.imm) == ("jal", rd, 2 * half)
    i = decode(asm.jalr(rd, rs1, imm))
    assert (i.name, i.rd, i.rs1, i.imm) == ("jalr", rd, rs1, imm)


@given(regs, st.integers(0, (1 << 20) - 1))
def test_upper_immediates(rd: int, imm20: int) -> None:
    assert decode(asm.lui(rd, imm20)).imm == imm20 << 12
    assert decode(asm.auipc(rd, imm20)).imm == imm20 << 12
    assert decode(asm.auipc(rd, imm20)).name == "auipc"


@given(st.sampled_from(sorted(asm.AMO_OPS)), regs, regs, regs, st.integers(0, 1), st.integers(0, 1))
def test_atomics_round_trip(name: str, rd: int, rs1: int, rs2: int, aq: int, rl: int) -> None:
    if name == "lr.w":
        rs2 = 0
    i = decode(asm.amo(name, rd, rs1, rs2, aq, rl))
    assert (i.name, i.rd, i.rs1, i.rs2) == (name, rd, rs1, rs2)
    assert i.is_atomic
    assert i.is_special


def test_system_and_fences() -> None:
    assert decode(asm.ECALL).name == "ecall"
    assert decode(asm.EBREAK).name == "ebreak"
    assert decode(asm.FENCE).name == "fence"
    assert decode(asm.FENCE_I).name == "fence.i"
    for csr in (0xC00, 0xC01, 0xC02, 0xC80, 0xC81, 0xC82, 0xF14):
        i = decode(asm.csrr(7, csr))
        assert (i.name, i.rd, i.csr) == ("csrrs", 7, csr)
        assert i.is_special


@pytest.mark.parametrize(
    "word",
    [
        0x00000000,  # all zeros: defined illegal
        0xFFFFFFFF,
        0x00004501,  # a compressed instruction (c.li) in the low half
        asm.csrr(5, 0x300),  # mstatus: no such CSR here
        (0xC00 << 20) | (1 << 12) | (5 << 7) | 0x73,  # csrrw cycle: a write
        (0xC00 << 20) | (3 << 15) | (2 << 12) | (5 << 7) | 0x73,  # csrrs with rs1 != x0
        (0xC00 << 20) | (1 << 15) | (6 << 12) | (5 << 7) | 0x73,  # csrrsi with uimm != 0
        asm.shift("slli", 1, 2, 3) | (1 << 25),  # shamt[5] set: reserved on RV32
        asm.amo("lr.w", 1, 2) | (3 << 20),  # lr.w with rs2 != 0
        asm.amo("amoadd.w", 1, 2, 3) ^ (2 << 12) ^ (3 << 12),  # amoadd.d: RV64 only
        0x30200073,  # mret
        0x10500073,  # wfi
        0x00002007,  # flw: no F extension
        asm.r_type("add", 1, 2, 3) | (0x40 << 25),  # unknown funct7
        asm.jalr(1, 2, 0) | (1 << 12),  # jalr with funct3 != 0
    ],
)
def test_illegal_words(word: int) -> None:
    assert decode(word).is_illegal


def test_decode_checks_its_argument() -> None:
    with pytest.raises(ValueError, match="32-bit"):
        decode(1 << 32)
    with pytest.raises(ValueError, match="32-bit"):
        decode(-1)
    with pytest.raises(TypeError):
        decode(1.5)  # type: ignore[arg-type]


_OPCODES = [0x37, 0x17, 0x6F, 0x67, 0x63, 0x03, 0x23, 0x13, 0x33, 0x0F, 0x73, 0x2F]
words = st.one_of(
    st.integers(0, 0xFFFFFFFF),
    # Mostly-valid words: a real major opcode under random fields.
    st.builds(
        lambda hi, op: (hi << 7) | op, st.integers(0, (1 << 25) - 1), st.sampled_from(_OPCODES)
    ),
)


@given(words)
def test_fuzz_every_word_decodes_or_faults_as_illegal(word: int) -> None:
    insn = decode(word)
    assert insn.word == word
    assert all(0 <= f < 32 for f in (insn.rd, insn.rs1, insn.rs2))
    # Executing it on a real hart: an Exit, or a guest fault, never another error.
    h = asm.make_hart([word])
    for r in range(1, 32):
        h.x[r] = 0x2000 + 4 * r  # aligned, in-range addresses for loads and stores
    result = execute(h)
    if isinstance(result, GuestFault):
        assert (result.pc, result.word) == (0x1000, word)
        if insn.is_illegal:
            assert result.reason is FaultReason.ILLEGAL_INSTRUCTION
        return
    assert not insn.is_illegal
    assert isinstance(result, Exit)
    assert h.x[0] == 0
    assert h.instret == 1


def execute(h: Hart) -> Exit | GuestFault:
    try:
        return step(h)
    except GuestFault as fault:
        return fault


_OBJDUMP = shutil.which("riscv64-unknown-elf-objdump")
_LINE = re.compile(r"^\s*([0-9a-f]+):\s+([0-9a-f]{8})\s+(\S+)")


@pytest.mark.skipif(_OBJDUMP is None, reason="riscv64-unknown-elf-objdump is not installed")
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_agrees_with_objdump_on_real_code(name: str) -> None:
    assert _OBJDUMP is not None
    out = subprocess.run(
        [_OBJDUMP, "-d", "-M", "no-aliases,numeric", str(WORKLOADS[name].path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    seen = 0
    for line in out.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        word, mnemonic = int(m.group(2), 16), m.group(3)
        mnemonic = re.sub(r"\.(aq|rl|aqrl)$", "", mnemonic)  # ordering bits
        assert decode(word).name == mnemonic, f"{m.group(1)}: {word:#010x}"
        seen += 1
    assert seen > 50


def test_specials_are_exactly_the_interpreter_only_instructions() -> None:
    assert {"ecall", "ebreak", "fence", "fence.i", "lr.w", "sc.w", "csrrs"} <= SPECIALS
    assert "add" not in SPECIALS
