"""TranslationBuffer mechanisms: allocation, lookup, unlinking, retiring, reclaiming."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import quiescent
from tcg import (
    BufferFullError,
    RcuRetire,
    StopTheWorldFlush,
    TranslationBlock,
    TranslationBuffer,
    UseAfterReclaimError,
)


def _buffer(capacity: int = 1024, regions: int = 4) -> TranslationBuffer:
    watch = bytearray(64)
    return TranslationBuffer(capacity, regions, StopTheWorldFlush(quiescent.World()), watch=watch)


def _add(buffer: TranslationBuffer, pc: int, size: int = 100, length: int = 16) -> TranslationBlock:
    return buffer.add(pc, pc + length, int, bytes([pc & 0xFF]) * size)


def test_add_copies_code_and_lookup_finds_it() -> None:
    buffer = _buffer()
    tb = _add(buffer, 0x1000, size=10)
    assert buffer.code[tb.offset : tb.offset + tb.size] == bytes([0x00]) * 10
    cache = buffer.new_jump_cache()
    assert buffer.lookup(cache, 0x1000) is tb
    assert buffer.lookup(cache, 0x1004) is None
    assert _add(buffer, 0x1000) is tb  # same key: the published TB is reused
    assert buffer.statistics().translations == 1
    assert buffer.watch is not None
    assert buffer.watch[1] & 1


def test_flags_are_part_of_the_key() -> None:
    buffer = _buffer()
    a = buffer.add(0x40, 0x50, int, b"a", flags=0)
    b = buffer.add(0x40, 0x50, int, b"b", flags=1)
    cache = buffer.new_jump_cache()
    assert buffer.lookup(cache, 0x40, 0) is a
    assert buffer.lookup(cache, 0x40, 1) is b
    assert buffer.lookup(cache, 0x40, 0) is a


def test_regions_fill_in_order_then_the_buffer_is_full() -> None:
    buffer = _buffer(capacity=400, regions=4)  # 100-byte regions
    for i in range(4):
        _add(buffer, 0x100 * (i + 1), size=60)
    assert buffer.region_states() == ["full", "full", "full", "current"]
    with pytest.raises(BufferFullError) as info:
        _add(buffer, 0x9000, size=60)
    # The buffer only reports; the translator asks the policy for its token.
    assert info.value.token is None
    assert buffer.policy.on_full() == 0  # the flush count the caller saw


class _CountingFlush(StopTheWorldFlush):
    fulls = 0

    def on_full(self) -> object:
        self.fulls += 1
        return super().on_full()


@pytest.mark.timeout(20)
def test_a_full_buffer_leaves_the_policy_to_the_translator() -> None:
    policy = _CountingFlush(quiescent.World())
    buffer = TranslationBuffer(200, 2, policy)
    _add(buffer, 0x100, size=100)
    _add(buffer, 0x200, size=100)
    with pytest.raises(BufferFullError) as info:
        _add(buffer, 0x300, size=100)
    assert policy.fulls == 0  # the buffer never calls on_full itself
    # A caller without a token (None) still gets room: the flush happens.
    policy.wait_for_space(info.value.token)
    assert policy.statistics().flushes == 1
    assert _add(buffer, 0x300, size=100).region in (0, 1)


def test_bad_sizes_and_arguments() -> None:
    buffer = _buffer(capacity=400, regions=4)
    with pytest.raises(ValueError, match="does not fit in a region"):
        _add(buffer, 0x10, size=101)
    with pytest.raises(ValueError, match="at least one byte"):
        buffer.add(0x10, 0x20, int, b"")
    policy = StopTheWorldFlush(quiescent.World())
    with pytest.raises(ValueError, match="regions must be >= 1"):
        TranslationBuffer(10, 0, policy)
    with pytest.raises(TypeError):
        TranslationBuffer(10.0, 1, policy)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="smaller than 4 regions"):
        TranslationBuffer(2, 4, policy)
    with pytest.raises(TypeError):
        TranslationBuffer(100, 1, policy, watch=[0])  # type: ignore[arg-type]


def test_invalidate_unlinks_overlapping_tbs_only() -> None:
    buffer = _buffer()
    inside = _add(buffer, 0x1000, length=0x20)
    straddle = _add(buffer, 0x1030, length=0x20)  # 0x1030..0x1050
    outside = _add(buffer, 0x2000, length=0x20)
    cache = buffer.new_jump_cache()
    for tb in (inside, straddle, outside):
        assert buffer.lookup(cache, tb.pc) is tb  # now in the jump cache too
    gone = buffer.invalidate(0x1000, 0x1040)
    assert set(gone) == {inside, straddle}
    assert inside.invalid
    assert straddle.invalid
    assert buffer.lookup(cache, 0x1000) is None
    assert buffer.lookup(cache, 0x1030) is None
    assert buffer.lookup(cache, 0x2000) is outside
    assert buffer.watch is not None
    assert not buffer.watch[1] & 1
    assert buffer.watch[2] & 1
    stats = buffer.statistics()
    assert stats.invalidations == 2
    assert stats.retired_bytes == inside.size + straddle.size
    assert buffer.invalidate(5, 5) == []


def test_stale_jump_cache_entry_is_not_followed() -> None:
    buffer = _buffer()
    tb = _add(buffer, 0x1000)
    cache = buffer.new_jump_cache()
    buffer.invalidate(0x1000, 0x1001)
    # A vCPU that read the TB before the unlink stores it afterwards:
    cache[(0x1000 >> 2) & (len(cache) - 1)] = tb
    assert buffer.lookup(cache, 0x1000) is None


def test_retire_and_reclaim_poison_and_bump_generation() -> None:
    buffer = _buffer(capacity=400, regions=4)
    first = _add(buffer, 0x100, size=60)
    _add(buffer, 0x200, size=60)  # moves on to region 1
    region, generation = buffer.retire_oldest() or (-1, -1)
    assert (region, generation) == (first.region, 0)
    assert buffer.region_states()[region] == "retired"
    first.check(buffer.generations)  # retired, not reclaimed: still valid code
    assert buffer.reclaim(region, generation) is True
    with pytest.raises(UseAfterReclaimError, match="executed after its region was reclaimed"):
        first.check(buffer.generations)
    start = region * buffer.region_size
    assert buffer.code[start : start + 4] == b"\xde\xad\xbe\xef"
    assert buffer.region_states()[region] == "free"
    assert buffer.reclaim(region, generation) is False  # already reclaimed
    assert buffer.statistics().retired_bytes == 0


def test_retire_with_a_single_region_retires_the_current_one() -> None:
    buffer = _buffer(capacity=100, regions=1)
    tb = _add(buffer, 0x100, size=60)
    assert buffer.retire_oldest() == (0, 0)
    assert buffer.retire_oldest() is None
    assert buffer.reclaim(0, 0)
    assert _add(buffer, 0x100, size=60) is not tb
    assert buffer.statistics().retranslations == 1


def test_flush_drops_everything() -> None:
    buffer = _buffer(capacity=400, regions=4)
    tbs = [_add(buffer, 0x100 * (i + 1), size=60) for i in range(4)]
    buffer.invalidate(0x100, 0x101)
    retired = buffer.retire_oldest()
    assert retired is not None
    assert buffer.flush() == 3  # region 0 held only the invalidated TB
    for tb in tbs:
        with pytest.raises(UseAfterReclaimError):
            tb.check(buffer.generations)
    stats = buffer.statistics()
    assert (stats.tbs, stats.live_bytes, stats.retired_bytes, stats.free_regions) == (0, 0, 0, 4)
    assert buffer.reclaim(*retired) is False  # the flush got there first
    assert stats.timeline


PCS = st.integers(min_value=0, max_value=63).map(lambda i: 0x1000 + 0x20 * i)


class BufferModel(RuleBasedStateMachine):
    """The buffer against a model of which TBs are live, unlinked or gone."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = _buffer(capacity=2048, regions=4)
        self.cache = self.buffer.new_jump_cache()
        self.live: dict[int, TranslationBlock] = {}
        self.unlinked: set[TranslationBlock] = set()
        self.pending: list[tuple[int, int]] = []
        self.gone: set[TranslationBlock] = set()

    @rule(pc=PCS, size=st.integers(min_value=1, max_value=400))
    def add(self, pc: int, size: int) -> None:
        try:
            tb = self.buffer.add(pc, pc + 0x20, int, b"c" * size)
        except BufferFullError:
            assert self.buffer.statistics().free_regions == 0
            return
        if pc in self.live:
            assert tb is self.live[pc]
        else:
            self.live[pc] = tb

    @rule(start=PCS, length=st.integers(min_value=1, max_value=0x100))
    def invalidate(self, start: int, length: int) -> None:
        expected = {tb for tb in self.live.values() if tb.pc < start + length and tb.end > start}
        assert set(self.buffer.invalidate(start, start + length)) == expected
        for tb in expected:
            del self.live[tb.pc]
        self.unlinked |= expected

    @rule()
    def retire(self) -> None:
        retired = self.buffer.retire_oldest()
        if retired is None:
            return
        region, _ = retired
        moved = {tb for tb in self.live.values() if tb.region == region}
        for tb in moved:
            del self.live[tb.pc]
        self.unlinked |= moved
        self.pending.append(retired)

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def reclaim(self, data: st.DataObject) -> None:
        region, generation = self.pending.pop(data.draw(st.integers(0, len(self.pending) - 1)))
        assert self.buffer.reclaim(region, generation)
        freed = {tb for tb in self.unlinked if tb.region == region}
        self.unlinked -= freed
        self.gone |= freed

    @rule()
    def flush(self) -> None:
        self.buffer.flush()
        self.gone |= set(self.live.values()) | self.unlinked
        self.live.clear()
        self.unlinked.clear()
        self.pending.clear()

    @invariant()
    def accounting_matches(self) -> None:
        stats = self.buffer.statistics()
        assert stats.live_bytes == sum(tb.size for tb in self.live.values())
        assert stats.retired_bytes == sum(tb.size for tb in self.unlinked)
        assert stats.tbs == len(self.live)

    @invariant()
    def lookups_match(self) -> None:
        generations = self.buffer.generations
        for pc, tb in self.live.items():
            assert self.buffer.lookup(self.cache, pc) is tb
            tb.check(generations)
        for tb in self.unlinked:
            assert self.buffer.lookup(self.cache, tb.pc) is not tb
            tb.check(generations)  # unlinked, not reclaimed: still valid
        for tb in self.gone:
            with pytest.raises(UseAfterReclaimError):
                tb.check(generations)

    @invariant()
    def watched_pages_hold_code(self) -> None:
        watch = self.buffer.watch
        assert watch is not None
        pages = {tb.pc >> 12 for tb in self.live.values()}
        assert {p for p in range(len(watch)) if watch[p] & 1} == pages


TestBufferModel = BufferModel.TestCase


def test_reclaim_while_a_vcpu_may_hold_a_tb_is_a_violation_every_time() -> None:
    seen: list[str] = []
    policy = StopTheWorldFlush(quiescent.World())
    buffer = TranslationBuffer(400, 4, policy, on_violation=seen.append)
    inside, outside, moved = (buffer.new_vcpu_mark(f"vcpu{i}") for i in range(3))
    inside.seq = moved.seq = 1  # in guest code
    assert outside.seq == 0  # not in guest code: never reported
    _add(buffer, 0x100, size=60)
    _add(buffer, 0x200, size=60)
    retired = buffer.retire_oldest()
    assert retired is not None
    moved.seq += 2  # passed a TB boundary: holds nothing found before the retire
    assert buffer.reclaim(*retired) is True  # the reclaim happens; it is reported
    assert seen == buffer.violations()
    assert len(seen) == 1
    assert "region 0 reclaimed while vcpu0 may still hold one of its TBs" in seen[0]


def test_reclaim_after_every_holder_moved_on_is_not_a_violation() -> None:
    buffer = _buffer(capacity=400, regions=4)
    marks = [buffer.new_vcpu_mark(f"vcpu{i}") for i in range(2)]
    marks[0].seq = 1
    _add(buffer, 0x100, size=60)
    _add(buffer, 0x200, size=60)
    retired = buffer.retire_oldest()
    assert retired is not None
    marks[1].seq = 1  # entered after the retire: cannot find the region's TBs
    marks[0].seq += 1  # left guest code
    assert buffer.reclaim(*retired) is True
    buffer.drop_vcpu_mark(marks[1])
    buffer.flush()
    assert buffer.violations() == []


def test_flush_while_a_vcpu_is_in_guest_code_is_a_violation() -> None:
    buffer = _buffer()
    mark = buffer.new_vcpu_mark("hart3")
    mark.seq = 1
    _add(buffer, 0x100)
    buffer.flush()
    (message,) = buffer.violations()
    assert "flush while hart3 is inside guest code" in message


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((0x100, 0x90, int, b"x"), ValueError, "pc < end"),
        ((0x100, 0x100, int, b"x"), ValueError, "pc < end"),
        ((-4, 8, int, b"x"), ValueError, "0 <= pc"),
        ((0xFFFF_FFFC, 1 << 33, int, b"x"), ValueError, "2\\*\\*32"),
        ((256.0, 0x110, int, b"x"), TypeError, "pc must be an int"),
        ((0x100, 0x110, 5, b"x"), TypeError, "fn must be callable"),
        ((0x100, 0x110, int, "x"), TypeError, "code must be bytes"),
        ((0x100, 0x110, int, b"x", -1), ValueError, "flags"),
    ],
)
def test_add_rejects_bad_arguments_at_the_call(
    args: tuple[object, ...], error: type[Exception], match: str
) -> None:
    buffer = _buffer()
    with pytest.raises(error, match=match):
        buffer.add(*args)  # type: ignore[arg-type]
    assert buffer.statistics().translations == 0


def test_adding_the_same_block_twice_returns_the_published_tb() -> None:
    buffer = _buffer()
    first = buffer.add(0x100, 0x110, int, b"a" * 10)
    again = buffer.add(0x100, 0x110, int, b"b" * 20)
    assert again is first
    stats = buffer.statistics()
    assert (stats.translations, stats.tbs, stats.live_bytes) == (1, 1, 10)


def test_adding_another_range_for_a_published_pc_replaces_the_stale_tb() -> None:
    buffer = _buffer()
    cache = buffer.new_jump_cache()
    old = buffer.add(0x100, 0x110, int, b"a" * 10)
    assert buffer.lookup(cache, 0x100) is old
    new = buffer.add(0x100, 0x120, int, b"b" * 20)
    assert new is not old
    assert old.invalid
    assert buffer.lookup(cache, 0x100) is new
    assert buffer.tbs() == [new]
    stats = buffer.statistics()
    assert (stats.live_bytes, stats.retired_bytes, stats.invalidations) == (20, 10, 1)


def test_lookup_and_reclaim_reject_bad_arguments() -> None:
    buffer = _buffer()
    with pytest.raises(TypeError, match="new_jump_cache"):
        buffer.lookup({}, 0x100)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="new_jump_cache"):
        buffer.lookup([None] * 4, 0x100)
    with pytest.raises(ValueError, match="region must be in"):
        buffer.reclaim(99, 0)
    with pytest.raises(TypeError, match="generation"):
        buffer.reclaim(0, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="start"):
        buffer.invalidate("a", 5)  # type: ignore[arg-type]


def test_a_buffer_needs_a_policy() -> None:
    with pytest.raises(TypeError, match="policy must be a RetirePolicy"):
        TranslationBuffer(1024, 4, None)  # type: ignore[arg-type]


def test_an_rcu_reserve_must_leave_a_region_for_live_code() -> None:
    policy = RcuRetire(reserve=8)
    try:
        with pytest.raises(ValueError, match="reserve=8 needs more than 8 regions"):
            TranslationBuffer(8 * 1024, 8, policy)
        TranslationBuffer(8 * 1024, 9, policy)  # 9 regions: accepted
    finally:
        policy.close()
    single = RcuRetire()  # the default reserve of 1 suits a one-region buffer
    try:
        TranslationBuffer(1024, 1, single)
    finally:
        single.close()


def test_occupancy_is_live_and_retired_bytes() -> None:
    buffer = _buffer(capacity=400, regions=4)  # 100-byte regions
    assert buffer.occupancy() == (0, 0)
    for i in range(3):
        _add(buffer, 0x100 * (i + 1), size=60)
    assert buffer.occupancy() == (180, 0)
    assert buffer.retire_oldest() is not None  # the first region: one 60-byte TB
    live, retired = buffer.occupancy()
    stats = buffer.statistics()
    assert (live, retired) == (120, 60) == (stats.live_bytes, stats.retired_bytes)
