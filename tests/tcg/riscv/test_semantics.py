"""Per-instruction edge cases, run on the interpreter and on translated blocks.

Each case sets up a hart, executes one instruction and checks the result
against a value worked out by hand from the ISA manual. Every case runs on
both engines: :func:`tcg.riscv.step` and a one-instruction translated block.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tcg.riscv import Exit, FaultReason, GuestFault, Hart, peek, step, translate

from . import helpers as asm
from .helpers import Recorder, make_hart

BASE = 0x1000
DATA = 0x2000


def run_interp(h: Hart) -> None:
    step(h)


def run_translated(h: Hart) -> None:
    tb = translate(h.mem, h.pc)
    if tb.n_insns:
        assert tb.n_insns == 1  # the next word is 0: illegal, so the block stops
        h.pc = tb.fn(h)
    else:
        step(h)


ENGINES = {"interp": run_interp, "translated": run_translated}
Engine = Callable[[Hart], None]


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> Engine:
    return ENGINES[request.param]


def exec1(engine: Engine, word: int, **regs: int) -> Hart:
    h = make_hart([word], base=BASE)
    for name, value in regs.items():
        h.x[int(name[1:])] = value & 0xFFFFFFFF
    engine(h)
    return h


M = 0xFFFFFFFF
MIN = 0x80000000


@pytest.mark.parametrize(
    ("op", "a", "b", "want"),
    [
        ("div", 7, 0, M),  # division by zero: -1
        ("divu", 7, 0, M),  # all ones
        ("rem", 7, 0, 7),  # remainder by zero: the dividend
        ("remu", 7, 0, 7),
        ("rem", -7, 0, -7 & M),
        ("div", -7, 0, M),  # -1 whatever the dividend's sign
        ("div", 0, 0, M),
        ("divu", 0, 0, M),
        ("div", MIN, -1, MIN),  # overflow: -2**31
        ("rem", MIN, -1, 0),  # overflow: 0
        ("div", -7, 2, -3 & M),  # rounds toward zero, not down
        ("rem", -7, 2, -1 & M),  # sign of the dividend
        ("div", 7, -2, -3 & M),
        ("rem", 7, -2, 1),
        ("divu", -7, 2, (M - 6) // 2),
        ("remu", -7, 2, 1),
        ("mul", 0x10000, 0x10000, 0),
        ("mul", -3, 5, -15 & M),
        ("mulh", -1, -1, 0),
        ("mulh", MIN, MIN, 0x40000000),
        ("mulh", -2, 3, M),
        ("mulhu", M, M, 0xFFFFFFFE),
        ("mulhsu", -1, M, M),  # -1 * (2**32 - 1) = -(2**32) + 1: high word -1
        ("mulhsu", 2, M, 1),
        ("sll", 1, 33, 2),  # shift amount: rs2 & 31
        ("srl", MIN, 63, 1),
        ("sra", MIN, 31, M),
        ("sra", MIN, 32, MIN),  # & 31 = 0
        ("srl", 0xF0, 4, 0xF),
        ("slt", -1, 0, 1),
        ("sltu", -1, 0, 0),
        ("sub", 0, 1, M),
        ("add", M, 1, 0),
    ],
)
def test_register_ops(engine: Engine, op: str, a: int, b: int, want: int) -> None:
    h = exec1(engine, asm.r_type(op, 3, 1, 2), x1=a, x2=b)
    assert h.x[3] == want
    assert h.pc == BASE + 4
    assert h.instret == 1


@pytest.mark.parametrize(
    ("op", "a", "imm", "want"),
    [
        ("addi", 5, -1, 4),
        ("addi", 0, -2048, -2048 & M),
        ("slti", -5, -4, 1),
        ("slti", 5, -4, 0),
        ("sltiu", 5, -1, 1),  # -1 sign-extends to 0xFFFFFFFF, then compares unsigned
        ("sltiu", M, -1, 0),
        ("xori", 0x0F, -1, ~0x0F & M),  # xori rd, rs, -1 is NOT
        ("ori", 0, -2048, 0xFFFFF800),
        ("andi", M, 0x7FF, 0x7FF),
    ],
)
def test_immediate_ops(engine: Engine, op: str, a: int, imm: int, want: int) -> None:
    assert exec1(engine, asm.i_type(op, 3, 1, imm), x1=a).x[3] == want


@pytest.mark.parametrize(
    ("op", "a", "sh", "want"),
    [("slli", 1, 31, MIN), ("srli", MIN, 31, 1), ("srai", MIN, 31, M), ("srai", 0x40000000, 30, 1)],
)
def test_shift_immediates(engine: Engine, op: str, a: int, sh: int, want: int) -> None:
    assert exec1(engine, asm.shift(op, 3, 1, sh), x1=a).x[3] == want


def test_lui_auipc(engine: Engine) -> None:
    assert exec1(engine, asm.lui(3, 0xFFFFF)).x[3] == 0xFFFFF000
    assert exec1(engine, asm.auipc(3, 1)).x[3] == BASE + 0x1000
    assert exec1(engine, asm.auipc(3, 0xFFFFF)).x[3] == (BASE - 0x1000) & M


def test_writes_to_x0_are_ignored(engine: Engine) -> None:
    for word in (
        asm.i_type("addi", 0, 0, 5),
        asm.lui(0, 1),
        asm.load("lw", 0, 1, 0),
        asm.jal(0, 8),
        asm.r_type("div", 0, 1, 0),
    ):
        h = exec1(engine, word, x1=DATA)
        assert h.x[0] == 0


@pytest.mark.parametrize(
    ("op", "stored", "want"),
    [
        ("lb", b"\x80", 0xFFFFFF80),
        ("lbu", b"\x80", 0x80),
        ("lb", b"\x7f", 0x7F),
        ("lh", b"\x00\x80", 0xFFFF8000),
        ("lhu", b"\x00\x80", 0x8000),
        ("lw", b"\x78\x56\x34\x12", 0x12345678),  # little-endian
    ],
)
def test_load_sign_extension(engine: Engine, op: str, stored: bytes, want: int) -> None:
    h = make_hart([asm.load(op, 3, 1, -4)], base=BASE)
    h.mem[DATA : DATA + len(stored)] = stored
    h.x[1] = DATA + 4
    engine(h)
    assert h.x[3] == want


def test_stores_write_little_endian_and_truncate(engine: Engine) -> None:
    for op, want in (("sb", b"\xef\0\0\0"), ("sh", b"\xef\xbe\0\0"), ("sw", b"\xef\xbe\xad\xde")):
        h = make_hart([asm.store(op, 2, 1, 8)], base=BASE)
        h.x[1], h.x[2] = DATA - 8, 0xDEADBEEF
        engine(h)
        assert bytes(h.mem[DATA : DATA + 4]) == want


def fault_of(engine: Engine, h: Hart) -> GuestFault:
    before = list(h.x)
    with pytest.raises(GuestFault) as info:
        engine(h)
    assert h.x == before  # no register written
    assert h.pc == info.value.pc  # pc left at the faulting instruction
    return info.value


@pytest.mark.parametrize(
    ("word", "addr", "reason"),
    [
        (asm.load("lw", 3, 1, 2), DATA + 2, FaultReason.LOAD_MISALIGNED),
        (asm.load("lh", 3, 1, 1), DATA + 1, FaultReason.LOAD_MISALIGNED),
        (asm.load("lhu", 3, 1, 3), DATA + 3, FaultReason.LOAD_MISALIGNED),
        (asm.store("sw", 3, 1, 1), DATA + 1, FaultReason.STORE_MISALIGNED),
        (asm.store("sh", 3, 1, -1), DATA - 1, FaultReason.STORE_MISALIGNED),
    ],
)
def test_misaligned_access_faults(
    engine: Engine, word: int, addr: int, reason: FaultReason
) -> None:
    h = make_hart([word], base=BASE)
    h.x[1] = DATA
    fault = fault_of(engine, h)
    assert (fault.pc, fault.word, fault.reason, fault.address) == (BASE, word, reason, addr)


@pytest.mark.parametrize(
    ("word", "reason"),
    [
        (asm.load("lw", 3, 1, 0), FaultReason.LOAD_ACCESS),
        (asm.load("lb", 3, 1, 0), FaultReason.LOAD_ACCESS),
        (asm.store("sw", 3, 1, 0), FaultReason.STORE_ACCESS),
        (asm.store("sb", 3, 1, 0), FaultReason.STORE_ACCESS),
    ],
)
@pytest.mark.parametrize("addr", [1 << 16, 0xFFFFFFFC])
def test_out_of_range_access_faults(
    engine: Engine, word: int, reason: FaultReason, addr: int
) -> None:
    h = make_hart([word], base=BASE)  # RAM is 64 KiB
    h.x[1] = addr
    fault = fault_of(engine, h)
    assert (fault.reason, fault.address) == (reason, addr)


def test_jalr_clears_bit_zero_and_reads_rs1_before_writing_rd(engine: Engine) -> None:
    h = exec1(engine, asm.jalr(1, 1, 1), x1=0x3000)
    assert h.pc == 0x3000  # 0x3001 with bit 0 cleared
    assert h.x[1] == BASE + 4


def test_jal_links_and_jumps_backwards(engine: Engine) -> None:
    h = exec1(engine, asm.jal(1, -0x800))
    assert (h.pc, h.x[1]) == (BASE - 0x800, BASE + 4)


def test_misaligned_jump_targets_fault_on_the_jump(engine: Engine) -> None:
    h = make_hart([asm.jalr(5, 1, 2)], base=BASE)
    h.x[1] = 0x3000
    fault = fault_of(engine, h)
    assert (fault.reason, fault.address, fault.pc) == (FaultReason.FETCH_MISALIGNED, 0x3002, BASE)
    h = make_hart([asm.jal(5, 6)], base=BASE)
    assert fault_of(engine, h).address == BASE + 6


@pytest.mark.parametrize(
    ("op", "a", "b", "taken"),
    [
        ("beq", 1, 1, True),
        ("bne", 1, 1, False),
        ("blt", -1, 0, True),  # signed
        ("bltu", -1, 0, False),  # unsigned
        ("bge", 0, -1, True),
        ("bgeu", 0, -1, False),
        ("bge", 5, 5, True),
        ("blt", MIN, M, True),
    ],
)
def test_branches(engine: Engine, op: str, a: int, b: int, taken: bool) -> None:
    h = exec1(engine, asm.branch(op, 1, 2, -16), x1=a, x2=b)
    assert h.pc == (BASE - 16 if taken else BASE + 4)


def test_taken_branch_to_misaligned_target_faults_only_when_taken(engine: Engine) -> None:
    h = exec1(engine, asm.branch("beq", 1, 2, 6), x1=1, x2=2)
    assert h.pc == BASE + 4
    h = make_hart([asm.branch("beq", 0, 0, 6)], base=BASE)
    assert fault_of(engine, h).reason is FaultReason.FETCH_MISALIGNED


# --- interpreter-only instructions -----------------------------------------------------


def test_ecall_and_fences_report_to_the_caller() -> None:
    for word, want in (
        (asm.ECALL, Exit.ECALL),
        (asm.FENCE_I, Exit.FENCE_I),
        (asm.FENCE, Exit.NONE),
    ):
        h = make_hart([word], base=BASE)
        assert step(h) is want
        assert (h.pc, h.instret) == (BASE + 4, 1)


def test_ebreak_and_illegal_are_faults() -> None:
    for word, reason in ((asm.EBREAK, FaultReason.EBREAK), (0, FaultReason.ILLEGAL_INSTRUCTION)):
        h = make_hart([word], base=BASE)
        with pytest.raises(GuestFault) as info:
            step(h)
        assert (info.value.reason, info.value.pc, info.value.word) == (reason, BASE, word)
        assert (h.pc, h.instret) == (BASE, 0)


def test_fetch_faults() -> None:
    h = make_hart([])
    h.pc = 1 << 16
    with pytest.raises(GuestFault, match="outside guest RAM") as info:
        step(h)
    assert info.value.word is None
    h.pc = BASE + 2
    with pytest.raises(GuestFault, match="misaligned"):
        step(h)


def test_csr_reads() -> None:
    words = [asm.i_type("addi", 0, 0, 0)] * 3 + [
        asm.csrr(5, 0xC02),
        asm.csrr(6, 0xC00),
        asm.csrr(7, 0xF14),
        asm.csrr(8, 0xC82),
        asm.csrr(9, 0xC01),
    ]
    ram = bytearray(1 << 16)
    asm.put_words(ram, BASE, words)
    h = Hart(ram, hart_id=3)
    h.pc = BASE
    h.instret = (1 << 32) + 10
    for _ in words:
        step(h)
    assert h.x[5] == 13  # instret low word before the csr read retires
    assert h.x[6] == 14  # cycle counts retired instructions too
    assert h.x[7] == 3  # mhartid
    assert h.x[8] == 1  # instreth
    assert h.x[9] == 17  # time aliases cycle


def atomic_hart(words: list[int], value: int = 10) -> Hart:
    h = make_hart(words, base=BASE)
    h.mem[DATA : DATA + 4] = value.to_bytes(4, "little")
    h.x[1] = DATA
    return h


def word_at(h: Hart, addr: int = DATA) -> int:
    return int.from_bytes(h.mem[addr : addr + 4], "little")


def test_lr_sc_succeeds_once_after_a_reservation() -> None:
    h = atomic_hart([asm.amo("lr.w", 3, 1), asm.amo("sc.w", 4, 1, 2), asm.amo("sc.w", 5, 1, 2)])
    h.x[2] = 99
    step(h)
    assert (h.x[3], h.reservation) == (10, DATA)
    step(h)
    assert (h.x[4], word_at(h), h.reservation) == (0, 99, None)
    h.x[2] = 7
    step(h)
    assert (h.x[5], word_at(h)) == (1, 99)  # no reservation: fails, stores nothing


def test_sc_to_another_address_fails() -> None:
    h = atomic_hart([asm.amo("lr.w", 3, 1), asm.amo("sc.w", 4, 2, 1)])
    h.x[2] = DATA + 4
    step(h)
    step(h)
    assert h.x[4] == 1
    assert word_at(h, DATA + 4) == 0


@pytest.mark.parametrize(
    ("op", "old", "operand", "new"),
    [
        ("amoswap.w", 10, 3, 3),
        ("amoadd.w", M, 2, 1),
        ("amoxor.w", 0b1100, 0b1010, 0b0110),
        ("amoand.w", 0b1100, 0b1010, 0b1000),
        ("amoor.w", 0b1100, 0b1010, 0b1110),
        ("amomin.w", 5, M, M),  # signed: -1 < 5
        ("amominu.w", 5, M, 5),
        ("amomax.w", 5, M, 5),
        ("amomaxu.w", 5, M, M),
    ],
)
def test_amos(op: str, old: int, operand: int, new: int) -> None:
    h = atomic_hart([asm.amo(op, 3, 1, 2)], old)
    h.x[2] = operand
    assert step(h) is Exit.NONE
    assert (h.x[3], word_at(h)) == (old, new)


def test_misaligned_atomics_fault() -> None:
    for word, reason in (
        (asm.amo("amoadd.w", 3, 1, 2), FaultReason.STORE_MISALIGNED),
        (asm.amo("lr.w", 3, 1), FaultReason.LOAD_MISALIGNED),
        (asm.amo("sc.w", 3, 1, 2), FaultReason.STORE_MISALIGNED),
    ):
        h = atomic_hart([word])
        h.x[1] = DATA + 2
        with pytest.raises(GuestFault) as info:
            step(h)
        assert info.value.reason is reason


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
def test_store_hook_runs_for_watched_pages_only(engine_name: str) -> None:
    words = [asm.store("sw", 2, 1, 0), asm.store("sh", 2, 1, 4), asm.store("sb", 2, 5, 0)]
    ram = bytearray(1 << 16)
    asm.put_words(ram, BASE, words)
    h = Recorder(ram)
    h.pc, h.x[1], h.x[5] = BASE, DATA, DATA + 0x1000
    h.watch[DATA >> 12] = 1
    if engine_name == "interp":
        for _ in words:
            step(h)
    else:
        tb = translate(ram, BASE)
        assert tb.n_insns == 3
        h.pc = tb.fn(h)
    assert h.stores == [(DATA, 4), (DATA + 4, 2)]  # the page at DATA + 0x1000 is not watched
    assert h.pc == BASE + 12


def test_store_hook_runs_for_atomics() -> None:
    ram = bytearray(1 << 16)
    asm.put_words(
        ram, BASE, [asm.amo("amoadd.w", 0, 1, 2), asm.amo("lr.w", 3, 1), asm.amo("sc.w", 4, 1, 2)]
    )
    h = Recorder(ram)
    h.pc, h.x[1] = BASE, DATA
    h.watch[DATA >> 12] = 1
    for _ in range(3):
        step(h)
    assert h.stores == [(DATA, 4), (DATA, 4)]


def test_fault_record() -> None:
    fault = GuestFault(2, 0x1000, 0xDEADBEEF, FaultReason.LOAD_ACCESS, 0x5000)
    text = str(fault)
    assert "hart 2" in text
    assert "0x00001000" in text
    assert "0xdeadbeef" in text
    assert "load outside guest RAM" in text
    import pickle

    assert pickle.loads(pickle.dumps(fault)).key() == fault.key()


def test_hart_reset_follows_the_abi() -> None:
    ram = bytearray(1 << 20)
    h = Hart(ram, hart_id=2)
    h.reset(0x10000, 4)
    assert (h.pc, h.x[10], h.x[11], h.x[2]) == (0x10000, 2, 4, (1 << 20) - 2 * 0x10000)
    with pytest.raises(ValueError, match="not one of"):
        h.reset(0x10000, 2)
    with pytest.raises(ValueError, match="multiple"):
        Hart(bytearray(100))
    with pytest.raises(TypeError):
        Hart(b"")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="watch"):
        Hart(ram, watch=bytearray(3))


def test_peek_decodes_without_executing() -> None:
    h = atomic_hart([asm.amo("amoadd.w", 3, 1, 2)])
    insn = peek(h)
    assert (insn.name, insn.is_atomic, insn.is_special) == ("amoadd.w", True, True)
    assert (h.pc, h.instret, word_at(h)) == (BASE, 0, 10)
    h.pc = 1 << 16
    with pytest.raises(GuestFault, match="outside guest RAM"):
        peek(h)
