"""The single-thread runner: the guest ABI (start state, system calls, exits, faults)."""

from __future__ import annotations

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tcg.riscv import FaultReason, Hart, LoaderError, Outcome, Runner, run_program
from tcg.riscv import syscall as do_syscall

from . import helpers as asm
from .helpers import at_least, tiny_program

A0, A1, A2, A7 = 10, 11, 12, 17
BASE = 0x10000


def li(rd: int, value: int) -> list[int]:
    """Load a 32-bit constant (lui + addi, with the usual carry fix-up)."""
    lo = value & 0xFFF
    lo = lo - 0x1000 if lo & 0x800 else lo
    hi = ((value - lo) >> 12) & 0xFFFFF
    return [asm.lui(rd, hi), asm.i_type("addi", rd, rd, lo)]


def syscall(number: int, *args: int) -> list[int]:
    words: list[int] = []
    for reg, value in zip((A0, A1, A2), args, strict=False):
        words += li(reg, value)
    return [*words, *li(A7, number), asm.ECALL]


def exit_with_a0() -> list[int]:
    return [*li(A7, 93), asm.ECALL]


def test_write_then_exit() -> None:
    msg = b"hello, guest\n\0\0\0"
    code = [*syscall(64, 1, 0, len(msg) - 3), *syscall(64, 2, 0, 6), *syscall(93, 3)]
    msg_addr = BASE + 4 * len(code)
    code = [*syscall(64, 1, msg_addr, 13), *syscall(64, 2, msg_addr, 6), *syscall(93, 3)]
    assert BASE + 4 * len(code) == msg_addr
    words = code + [int.from_bytes(msg[i : i + 4], "little") for i in range(0, len(msg), 4)]
    result = run_program(tiny_program(words))
    assert (result.stdout, result.stderr) == (b"hello, guest\n", b"hello,")
    assert (result.stopped, result.exit_code, result.fault) == ("exit", 3, None)


@pytest.mark.parametrize(
    ("call", "errno"),
    [
        (syscall(999), 38),  # unknown: -ENOSYS
        (syscall(64, 5, BASE, 1), 9),  # bad fd: -EBADF
        (syscall(64, 1, 0xFFFFFF00, 0x1000), 14),  # outside RAM: -EFAULT
    ],
)
def test_failing_syscalls_return_negative_errno(call: list[int], errno: int) -> None:
    result = run_program(tiny_program([*call, *exit_with_a0()]))
    assert result.exit_code == -errno & 0xFF
    assert result.stdout == b""


def test_start_state_follows_the_abi() -> None:
    # Every hart exits with a0 + a1 * 16 (hart id, number of harts).
    words = [asm.shift("slli", A1, A1, 4), asm.r_type("add", A0, A0, A1), *exit_with_a0()]
    runner = Runner(tiny_program(words), harts=3, ram_size=1 << 20)
    for i, h in enumerate(runner.harts):
        assert h.x[2] == (1 << 20) - i * 0x10000
        assert h.pc == BASE
    result = runner.run()
    assert result.exit_code == 0 + 3 * 16  # hart 0's code


def test_exit_group_ends_every_hart() -> None:
    # Hart 1 calls exit_group(7); the others spin forever.
    words = [
        asm.i_type("addi", 5, 0, 1),
        asm.branch("beq", A0, 5, 8),
        asm.jal(0, 0),  # spin
        *syscall(94, 7),
    ]
    result = run_program(tiny_program(words), harts=3)
    assert (result.stopped, result.exit_code) == ("exit", 7)


def test_guest_fault_stops_the_run_with_a_record() -> None:
    words = [asm.i_type("addi", 5, 0, 1), 0xFFFFFFFF]
    result = run_program(tiny_program(words), harts=2)
    assert (result.stopped, result.exit_code) == ("fault", None)
    fault = result.fault
    assert fault is not None
    assert (fault.hart_id, fault.pc, fault.word) == (0, BASE + 4, 0xFFFFFFFF)
    assert fault.reason is FaultReason.ILLEGAL_INSTRUCTION
    assert result.instructions == 2  # hart 1 ran the addi before hart 0 faulted


def test_ebreak_is_a_fault() -> None:
    result = run_program(tiny_program([asm.EBREAK]))
    assert result.fault is not None
    assert result.fault.reason is FaultReason.EBREAK


def test_instruction_limit() -> None:
    result = run_program(tiny_program([asm.jal(0, 0)]), max_instructions=5000)
    assert result.stopped == "limit"
    assert result.exit_code is None
    assert 5000 <= result.instructions < 10000


def test_interpreter_only_mode_runs_the_same() -> None:
    words = [*syscall(64, 1, 0, 0), *syscall(93, 4)]
    for translate_blocks in (True, False):
        result = run_program(tiny_program(words), translate_blocks=translate_blocks)
        assert (result.exit_code, result.instructions) == (4, len(words))


def test_bad_arguments() -> None:
    prog = tiny_program([asm.jal(0, 0)])
    with pytest.raises(ValueError, match="harts"):
        Runner(prog, harts=0)
    with pytest.raises(ValueError, match="max_block_insns"):
        Runner(prog, max_block_insns=0)
    with pytest.raises(ValueError, match="max_instructions"):
        Runner(prog).run(max_instructions=0)
    with pytest.raises(LoaderError):
        Runner(b"not an elf")
    with pytest.raises(ValueError, match="hart stacks"):
        Runner(prog, harts=3, ram_size=0x20000)


# --- whole programs of random instructions ------------------------------------------

_OPCODES = [0x37, 0x17, 0x6F, 0x67, 0x63, 0x03, 0x23, 0x13, 0x33, 0x0F, 0x73, 0x2F]
_regs = st.integers(0, 31)
_dst = st.integers(3, 31)
_stack = st.builds(
    lambda k, mis: -4 * k - mis, st.integers(1, 64), st.sampled_from([0] * 9 + [1, 2])
)
random_words = st.one_of(
    # Mostly instructions that keep running: ALU, stack accesses, short branches.
    st.builds(asm.r_type, st.sampled_from(sorted(asm.R_OPS)), _dst, _regs, _regs),
    st.builds(
        asm.i_type, st.sampled_from(sorted(asm.I_OPS)), _dst, _regs, st.integers(-2048, 2047)
    ),
    st.builds(asm.load, st.sampled_from(sorted(asm.LOAD_OPS)), _dst, st.just(2), _stack),
    st.builds(asm.store, st.sampled_from(sorted(asm.STORE_OPS)), _regs, st.just(2), _stack),
    st.builds(
        asm.branch,
        st.sampled_from(sorted(asm.BRANCH_OPS)),
        _regs,
        _regs,
        st.sampled_from([-8, -4, 4, 8, 12]),
    ),
    st.builds(asm.amo, st.sampled_from(sorted(asm.AMO_OPS)), _dst, st.just(2), _regs),
    # System calls with a chosen number, fences, counters.
    st.sampled_from([asm.ECALL, asm.FENCE, asm.FENCE_I, asm.csrr(5, 0xC00), asm.csrr(6, 0xF14)]),
    st.builds(lambda n: asm.i_type("addi", A7, 0, n), st.sampled_from([64, 93, 94, 7])),
    st.builds(lambda v: asm.i_type("addi", A0, 0, v), st.integers(0, 3)),
    # Anything at all, sometimes.
    st.builds(
        lambda hi, op: (hi << 7) | op, st.integers(0, (1 << 25) - 1), st.sampled_from(_OPCODES)
    ),
)


@at_least(300)
@given(st.integers(1, 60).flatmap(lambda n: st.lists(random_words, min_size=n, max_size=n)))
def test_random_programs_end_cleanly_and_engines_agree(words: list[int]) -> None:
    program = tiny_program([*words, *exit_with_a0()])
    translated = Runner(program, ram_size=1 << 20).run(max_instructions=3000)
    assert translated.stopped in ("exit", "fault", "limit")
    event(f"stopped: {translated.stopped}")
    event(f"ran {min(translated.instructions // 10 * 10, 50)}+ instructions")
    assert (translated.fault is None) == (translated.stopped != "fault")
    if translated.stopped == "limit":
        return  # the two engines check the limit at different points
    interpreted = Runner(program, ram_size=1 << 20, translate_blocks=False).run(
        max_instructions=3000
    )
    assert interpreted.stopped == translated.stopped
    assert interpreted.exit_code == translated.exit_code
    assert interpreted.stdout == translated.stdout
    assert interpreted.instructions == translated.instructions
    assert (interpreted.fault and interpreted.fault.key()) == (
        translated.fault and translated.fault.key()
    )


def test_jump_past_the_end_of_ram_is_a_fetch_fault() -> None:
    result = run_program(tiny_program([asm.jal(0, 0xF0000)]), ram_size=1 << 20)
    assert result.fault is not None
    assert (result.fault.reason, result.fault.pc) == (FaultReason.FETCH_ACCESS, 1 << 20)


def test_syscall_function_directly() -> None:
    h = Hart(bytearray(1 << 16))
    written: list[tuple[int, bytes]] = []
    h.mem[0x100:0x103] = b"abc"
    h.x[A7], h.x[A0], h.x[A1], h.x[A2] = 64, 2, 0x100, 3
    assert do_syscall(h, lambda fd, data: written.append((fd, data))) == (Outcome.CONTINUE, 0)
    assert (written, h.x[A0]) == ([(2, b"abc")], 3)
    h.x[A7], h.x[A0] = 93, 0x105
    assert do_syscall(h, print) == (Outcome.EXIT, 5)  # low 8 bits, like a process
    h.x[A7], h.x[A0] = 94, 1
    assert do_syscall(h, print) == (Outcome.EXIT_GROUP, 1)
    h.x[A7] = 1000
    assert do_syscall(h, print) == (Outcome.CONTINUE, 0)
    assert h.x[A0] == 0xFFFFFFDA  # -38
