"""Differential testing: translated blocks against the reference interpreter.

Hypothesis writes random straight-line programs (ALU, M, loads and stores
into a scratch area, ending in a branch or jump), places them anywhere in a
page and translates them with a random size limit. The interpreter then runs
the same instructions one at a time. Registers, pc, instret, memory, the
stores reported to the hook and the fault (if any) must all be identical.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import event, given
from hypothesis import strategies as st

from tcg.riscv import GuestFault, step, translate
from tcg.riscv.translate import LOOP_ITERATIONS

from . import helpers as asm
from .helpers import Recorder, at_least

RAM_SIZE = 1 << 16
PAGE = 0x1000
SCRATCH = 0x8000  # memory operands point here (base registers x30, x31)
M = 0xFFFFFFFF

values = st.one_of(
    st.sampled_from([0, 1, 2, 31, 32, 0x7FFFFFFF, 0x80000000, M, M - 1, 0xFFFF, 0x8000, 0x80]),
    st.integers(0, M),
    st.integers(0x80000000, M),  # negative as signed: large products, signed division
)
dst = st.integers(0, 29)  # x30/x31 stay memory bases (mostly: see wild_memory)
src = st.integers(0, 31)


def r_ops() -> st.SearchStrategy[int]:
    return st.builds(asm.r_type, st.sampled_from(sorted(asm.R_OPS)), dst, src, src)


def i_ops() -> st.SearchStrategy[int]:
    return st.builds(
        asm.i_type, st.sampled_from(sorted(asm.I_OPS)), dst, src, st.integers(-2048, 2047)
    )


def shift_ops() -> st.SearchStrategy[int]:
    return st.builds(
        asm.shift, st.sampled_from(sorted(asm.SHIFT_OPS)), dst, src, st.integers(0, 31)
    )


def upper_ops() -> st.SearchStrategy[int]:
    imm20 = st.integers(0, (1 << 20) - 1)
    return st.one_of(st.builds(asm.lui, dst, imm20), st.builds(asm.auipc, dst, imm20))


# Offsets from a base near SCRATCH: mostly aligned, sometimes not.
offsets = st.builds(
    lambda k, mis: 4 * k + mis, st.integers(-16, 16), st.sampled_from([0] * 40 + [1, 2, 3])
)
bases = st.sampled_from([30, 31])


def memory_ops() -> st.SearchStrategy[int]:
    loads = st.builds(asm.load, st.sampled_from(sorted(asm.LOAD_OPS)), dst, bases, offsets)
    stores = st.builds(asm.store, st.sampled_from(sorted(asm.STORE_OPS)), src, bases, offsets)
    return st.one_of(loads, stores)


def wild_memory() -> st.SearchStrategy[int]:
    """Accesses through any register: mostly out of range, i.e. faults."""
    loads = st.builds(
        asm.load, st.sampled_from(sorted(asm.LOAD_OPS)), dst, src, st.integers(-2048, 2047)
    )
    stores = st.builds(
        asm.store, st.sampled_from(sorted(asm.STORE_OPS)), src, src, st.integers(-2048, 2047)
    )
    return st.one_of(loads, stores)


tame_op = st.one_of(
    r_ops(), r_ops(), r_ops(), i_ops(), shift_ops(), upper_ops(), memory_ops(), memory_ops()
)
wild_op = st.one_of(tame_op, wild_memory())

branch_offsets = st.builds(
    lambda k, mis: 4 * k + mis, st.integers(-64, 64), st.sampled_from([0, 0, 0, 2])
)


def final_ops(body: st.SearchStrategy[int]) -> st.SearchStrategy[int]:
    return st.one_of(
        st.builds(asm.branch, st.sampled_from(sorted(asm.BRANCH_OPS)), src, src, branch_offsets),
        st.builds(asm.jal, st.integers(0, 31), branch_offsets),
        st.builds(asm.jalr, st.integers(0, 31), src, st.integers(-2048, 2047)),
        body,  # no control transfer: the block ends at the limit, page or next word
    )


@dataclass
class Case:
    words: list[int]
    base: int
    regs: list[int]
    scratch: bytes
    max_insns: int

    def hart(self) -> Recorder:
        ram = bytearray(RAM_SIZE)
        asm.put_words(ram, self.base, self.words)
        ram[SCRATCH - 256 : SCRATCH + 256] = self.scratch
        h = Recorder(ram)
        h.x = [0, *self.regs[1:30], SCRATCH, SCRATCH + 8]
        h.pc = self.base
        h.instret = 1000
        h.watch[SCRATCH >> 12] = 1
        h.watch[(SCRATCH - 256) >> 12] = 1
        return h


@st.composite
def cases(draw: st.DrawFn, op: st.SearchStrategy[int]) -> Case:
    n = draw(st.integers(0, 40))
    body = draw(st.lists(op, min_size=n, max_size=n))
    words = [*body, draw(final_ops(op))]
    # Anywhere in the second page: some blocks run into the page end.
    slot = draw(st.integers(0, PAGE // 4 - 1))
    base = PAGE + 4 * min(slot, PAGE // 4 - 1)
    if base + 4 * len(words) > 2 * PAGE + 64:
        base = 2 * PAGE - 4 * draw(st.integers(1, len(words)))
    regs = draw(st.lists(values, min_size=32, max_size=32))
    scratch = draw(st.binary(min_size=512, max_size=512))
    max_insns = draw(st.sampled_from([64] * 6 + [1, 5, 17]))
    return Case(words, base, regs, scratch, max_insns)


def state(h: Recorder) -> tuple[object, ...]:
    return (list(h.x), h.pc, h.instret, bytes(h.mem), h.stores, h.reservation)


# The main oracle of the translator: worth more examples than the profile's default.
MANY = at_least(400)


def check(case: Case) -> None:
    translated, interpreted = case.hart(), case.hart()
    tb = translate(translated.mem, case.base, max_insns=case.max_insns)
    assert tb.n_insns >= 1
    assert tb.end == case.base + 4 * tb.n_insns
    assert (tb.end - 1) // PAGE == case.base // PAGE  # never crosses a page

    fault_t: GuestFault | None = None
    try:
        translated.pc = tb.fn(translated)
    except GuestFault as exc:
        fault_t = exc
    executed = translated.instret - 1000

    # The interpreter runs as many instructions as the block retired, plus
    # the faulting one.
    fault_i: GuestFault | None = None
    try:
        for _ in range(executed + (1 if fault_t else 0)):
            step(interpreted)
    except GuestFault as exc:
        fault_i = exc

    assert (fault_t and fault_t.key()) == (fault_i and fault_i.key())
    assert state(translated) == state(interpreted)
    event(f"ends in {tb.ends_in}")
    event("faulted" if fault_i else "ran to the end")
    event(f"executed {min(executed // 10 * 10, 30)}+ instructions")
    if fault_t is None:
        loops = tb.ends_in == "branch" and "for it in range" in tb.source
        if loops:
            assert executed % tb.n_insns == 0
            assert 1 <= executed // tb.n_insns <= LOOP_ITERATIONS
        else:
            assert executed == tb.n_insns


@MANY
@given(cases(tame_op))
def test_translated_block_matches_interpreter(case: Case) -> None:
    check(case)


@MANY
@given(cases(wild_op))
def test_faults_in_translated_blocks_are_precise(case: Case) -> None:
    check(case)


one_op = st.one_of(
    st.builds(asm.r_type, st.sampled_from(sorted(asm.R_OPS)), st.just(3), st.just(1), st.just(2)),
    st.builds(asm.r_type, st.sampled_from(sorted(asm.R_OPS)), st.just(1), st.just(1), st.just(1)),
    st.builds(
        asm.i_type,
        st.sampled_from(sorted(asm.I_OPS)),
        st.just(3),
        st.just(1),
        st.integers(-2048, 2047),
    ),
    st.builds(
        asm.shift,
        st.sampled_from(sorted(asm.SHIFT_OPS)),
        st.just(3),
        st.just(1),
        st.integers(0, 31),
    ),
    st.builds(
        asm.branch, st.sampled_from(sorted(asm.BRANCH_OPS)), st.just(1), st.just(2), st.just(-8)
    ),
)


@at_least(1500)
@given(one_op, values, values)
def test_each_operation_on_interesting_values(word: int, a: int, b: int) -> None:
    regs = [0] * 32
    regs[1], regs[2] = a, b
    check(Case([word], 2 * PAGE, regs, bytes(512), 64))


@st.composite
def loops(draw: st.DrawFn, op: st.SearchStrategy[int]) -> Case:
    """A block that branches back to its own start (a loop block)."""
    n = draw(st.integers(0, 12))
    body = draw(st.lists(op, min_size=n, max_size=n))
    name = draw(st.sampled_from(sorted(asm.BRANCH_OPS)))
    words = [*body, asm.branch(name, draw(src), draw(src), -4 * n)]
    regs = draw(st.lists(values, min_size=32, max_size=32))
    # Counters: x1 counts up to x2, so some loops end before the iteration limit.
    regs[1], regs[2] = draw(st.integers(0, 10)), draw(st.integers(0, 100))
    scratch = draw(st.binary(min_size=512, max_size=512))
    return Case(words, PAGE + 4 * draw(st.integers(0, 100)), regs, scratch, 64)


counting_op = st.one_of(tame_op, st.just(asm.i_type("addi", 1, 1, 1)))


@MANY
@given(loops(counting_op))
def test_loop_blocks_match_interpreter(case: Case) -> None:
    check(case)


@MANY
@given(loops(wild_op))
def test_faults_in_loop_blocks_are_precise(case: Case) -> None:
    check(case)
