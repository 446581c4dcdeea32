"""Where blocks end, what a translation carries, and the block function's contract."""

from __future__ import annotations

import marshal

import pytest

from tcg.riscv import FaultReason, GuestFault, Hart, TranslatedCode, translate

from . import helpers as asm
from .helpers import make_hart

BASE = 0x1000
ADDI = asm.i_type("addi", 5, 5, 1)  # x5 += 1


def block(words: list[int], *, base: int = BASE, max_insns: int = 64) -> TranslatedCode:
    ram = bytearray(1 << 16)
    asm.put_words(ram, base, words)
    return translate(ram, base, max_insns=max_insns)


@pytest.mark.parametrize(
    ("last", "ends_in"),
    [
        (asm.branch("bne", 5, 0, -8), "branch"),
        (asm.jal(1, 64), "jump"),
        (asm.jalr(0, 1, 0), "jump"),
    ],
)
def test_block_ends_after_control_transfer(last: int, ends_in: str) -> None:
    tb = block([ADDI, ADDI, last, ADDI])
    assert (tb.n_insns, tb.end, tb.ends_in) == (3, BASE + 12, ends_in)


@pytest.mark.parametrize(
    "special",
    [
        asm.ECALL,
        asm.EBREAK,
        asm.FENCE,
        asm.FENCE_I,
        asm.amo("lr.w", 1, 2),
        asm.amo("sc.w", 1, 2, 3),
        asm.amo("amoswap.w", 1, 2, 3),
        asm.csrr(1, 0xC00),
        0,  # illegal
    ],
)
def test_block_stops_before_special_instructions(special: int) -> None:
    tb = block([ADDI, ADDI, special, ADDI])
    assert (tb.n_insns, tb.end, tb.ends_in) == (2, BASE + 8, "special")
    empty = block([special, ADDI])
    assert (empty.n_insns, empty.end, empty.ends_in) == (0, BASE, "special")
    h = make_hart([special])
    assert empty.fn(h) == BASE  # the empty block only hands back its pc
    assert h.instret == 0


def test_block_stops_at_the_page_end() -> None:
    base = 2 * 0x1000 - 8
    tb = block([ADDI] * 6, base=base)
    assert (tb.n_insns, tb.end, tb.ends_in) == (2, 0x2000, "page")
    h = make_hart([ADDI] * 6, base=base)
    assert tb.fn(h) == 0x2000
    assert (h.x[5], h.instret) == (2, 2)


def test_block_stops_at_the_size_limit() -> None:
    tb = block([ADDI] * 40, max_insns=16)
    assert (tb.n_insns, tb.ends_in) == (16, "limit")
    assert block([ADDI] * 40, max_insns=1).n_insns == 1


def test_block_stops_at_the_end_of_ram() -> None:
    ram = bytearray(1 << 16)
    asm.put_words(ram, (1 << 16) - 8, [ADDI, ADDI])
    tb = translate(ram, (1 << 16) - 8)
    assert (tb.n_insns, tb.ends_in) == (2, "page")


@pytest.mark.parametrize("pc", [BASE + 2, 1 << 16, 0xFFFFFFFC])
def test_unfetchable_pc_gives_an_empty_block(pc: int) -> None:
    tb = block([ADDI], base=BASE)
    ram = bytearray(1 << 16)
    tb = translate(ram, pc)
    assert tb.n_insns == 0


def test_code_bytes_are_the_marshalled_function() -> None:
    small = block([ADDI, asm.jal(0, 0)])
    large = block([ADDI] * 30 + [asm.jal(0, 0)])
    for tb in (small, large):
        assert tb.code_bytes == marshal.dumps(tb.fn.__code__)
        assert tb.source.startswith(f"def tb_{tb.pc:08x}(h):")
    assert len(large.code_bytes) > len(small.code_bytes)


def test_translation_is_deterministic() -> None:
    words = [ADDI, asm.load("lw", 6, 5, 0), asm.branch("beq", 5, 6, 16)]
    a, b = block(words), block(words)
    assert a.source == b.source
    assert a.code_bytes == b.code_bytes


def test_function_contract_registers_instret_and_pc() -> None:
    words = [asm.i_type("addi", 5, 0, 7), asm.r_type("add", 6, 5, 5), asm.jal(1, 0x100)]
    h = make_hart(words)
    h.instret = 10
    tb = translate(h.mem, BASE)
    nxt = tb.fn(h)
    assert nxt == BASE + 8 + 0x100
    assert h.pc == BASE  # the caller assigns the pc
    assert (h.x[5], h.x[6], h.x[1]) == (7, 14, BASE + 12)
    assert h.instret == 13
    # Only used registers are loaded; x0 is never stored.
    assert "x[0]" not in tb.source
    assert "r7" not in tb.source


def test_fault_leaves_precise_state() -> None:
    words = [asm.i_type("addi", 5, 0, 7), asm.load("lw", 6, 5, 0), asm.i_type("addi", 7, 0, 1)]
    h = make_hart(words)
    tb = translate(h.mem, BASE)
    with pytest.raises(GuestFault) as info:
        tb.fn(h)
    f = info.value
    assert (f.pc, f.word, f.reason, f.address) == (
        BASE + 4,
        words[1],
        FaultReason.LOAD_MISALIGNED,
        7,
    )
    assert (h.pc, h.instret, h.x[5], h.x[7]) == (BASE + 4, 1, 7, 0)


def test_out_of_range_fault_names_the_right_instruction() -> None:
    words = [asm.load("lw", 6, 0, 0), asm.store("sw", 6, 5, 0), asm.load("lw", 7, 0, 4)]
    h = make_hart(words)
    h.x[5] = 1 << 16
    tb = translate(h.mem, BASE)
    with pytest.raises(GuestFault) as info:
        tb.fn(h)
    f = info.value
    assert (f.pc, f.reason, f.address) == (BASE + 4, FaultReason.STORE_ACCESS, 1 << 16)
    assert f.__cause__ is None
    assert f.__suppress_context__


class Hooked(Hart):
    __slots__ = ()

    def on_store(self, addr: int, size: int) -> None:
        raise IndexError("a bug in the hook, not a guest fault")


def test_errors_from_the_store_hook_are_not_turned_into_guest_faults() -> None:
    ram = bytearray(1 << 16)
    asm.put_words(ram, BASE, [asm.store("sw", 0, 0, 0x100)])
    h = Hooked(ram)
    h.watch[0] = 1
    tb = translate(ram, BASE)
    with pytest.raises(IndexError, match="a bug in the hook"):
        tb.fn(h)


def test_bad_arguments() -> None:
    ram = bytearray(1 << 16)
    with pytest.raises(TypeError):
        translate(bytes(16), 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        translate(ram, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="32-bit"):
        translate(ram, -4)
    with pytest.raises(ValueError, match="max_insns"):
        translate(ram, 0, max_insns=0)
    with pytest.raises(ValueError, match="max_insns"):
        translate(ram, 0, max_insns=5000)


def test_block_sees_memory_written_after_translation() -> None:
    # Data is read at run time, not folded into the code.
    words = [asm.load("lw", 6, 0, 0x100), asm.jal(0, 0)]
    h = make_hart(words)
    tb = translate(h.mem, BASE)
    h.mem[0x100:0x104] = (0xCAFE).to_bytes(4, "little")
    tb.fn(h)
    assert h.x[6] == 0xCAFE
