"""Block chaining in the buffer: links made, removed with every unlink, and checked."""

from __future__ import annotations

import pytest

import quiescent
from tcg import StopTheWorldFlush, TranslationBlock, TranslationBuffer
from tcg.machine import Machine, MachineError
from tcg.riscv_engine import RiscvEngine
from tcg.workloads import WORKLOADS


def _buffer(capacity: int = 1200, regions: int = 4) -> TranslationBuffer:
    return TranslationBuffer(capacity, regions, StopTheWorldFlush(quiescent.World()))


def _add(
    buffer: TranslationBuffer, pc: int, exits: tuple[int, ...], size: int = 100
) -> TranslationBlock:
    return buffer.add(pc, pc + 16, int, bytes([pc & 0xFF]) * size, exits=exits)


def _skip_unlinking(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deliberately broken mode: unlinking a TB leaves the links into it."""
    monkeypatch.setattr(TranslationBuffer, "_unlink_links", lambda self, tbs, cause: None)


def test_a_link_is_made_once_and_only_for_a_direct_exit() -> None:
    buffer = _buffer()
    a = _add(buffer, 0x100, exits=(0x200, 0x110))
    b = _add(buffer, 0x200, exits=(0x100,))
    c = _add(buffer, 0x300, exits=())
    assert buffer.link(a, b)
    assert not buffer.link(a, b)  # that exit is linked already
    assert not buffer.link(a, c)  # 0x300 is not one of a's exits
    assert not buffer.link(c, a)  # c has no direct exit (an indirect jump)
    assert buffer.link(b, a)
    assert a.links == {0x200: b}
    assert b.links == {0x100: a}
    assert list(b.incoming) == [a]
    assert list(a.incoming) == [b]
    stats = buffer.statistics().links
    assert (stats.made, stats.live) == (2, 2)


def test_a_block_may_link_to_itself() -> None:
    buffer = _buffer()
    loop = _add(buffer, 0x100, exits=(0x100, 0x110))
    assert buffer.link(loop, loop)
    buffer.invalidate(0x100, 0x104)
    assert loop.links == {}
    assert loop.incoming == {}
    assert buffer.statistics().links.removed_on_invalidate == 1


def test_no_link_is_made_into_or_out_of_an_unlinked_tb() -> None:
    buffer = _buffer()
    a = _add(buffer, 0x100, exits=(0x200,))
    b = _add(buffer, 0x200, exits=(0x100,))
    buffer.invalidate(0x200, 0x204)
    assert not buffer.link(a, b)
    assert not buffer.link(b, a)
    assert buffer.statistics().links.made == 0


def test_invalidation_removes_links_in_both_directions() -> None:
    buffer = _buffer()
    a = _add(buffer, 0x100, exits=(0x200,))
    b = _add(buffer, 0x200, exits=(0x300,))
    c = _add(buffer, 0x300, exits=())
    assert buffer.link(a, b)
    assert buffer.link(b, c)
    buffer.invalidate(0x200, 0x204)  # b: one link in, one out
    assert a.links == {}
    assert c.incoming == {}
    assert b.links == {}
    assert b.incoming == {}
    stats = buffer.statistics().links
    assert (stats.live, stats.removed_on_invalidate) == (0, 2)


def test_retiring_a_region_removes_every_link_into_it() -> None:
    buffer = _buffer(capacity=400, regions=4)  # 100-byte regions: one TB each
    old = _add(buffer, 0x100, exits=(0x200,))
    live = [_add(buffer, 0x200 + 0x100 * i, exits=(0x100,)) for i in range(3)]
    assert buffer.link(old, live[0])
    for tb in live:
        assert buffer.link(tb, old)
    assert buffer.retire_oldest() == (old.region, 0)
    assert all(tb.links == {} for tb in live)
    assert old.links == {}
    assert old.incoming == {}
    stats = buffer.statistics().links
    assert (stats.live, stats.removed_on_retire) == (0, 4)
    assert buffer.reclaim(old.region, 0)
    assert buffer.violations() == []


def test_a_flush_removes_every_link() -> None:
    buffer = _buffer()
    a = _add(buffer, 0x100, exits=(0x200,))
    b = _add(buffer, 0x200, exits=(0x100,))
    assert buffer.link(a, b)
    assert buffer.link(b, a)
    assert buffer.flush() == 2
    stats = buffer.statistics().links
    assert (stats.live, stats.removed_on_flush) == (0, 2)
    assert buffer.violations() == []


def test_reclaiming_with_a_link_left_into_the_region_is_a_violation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _skip_unlinking(monkeypatch)
    seen: list[str] = []
    buffer = TranslationBuffer(
        400, 4, StopTheWorldFlush(quiescent.World()), on_violation=seen.append
    )
    old = _add(buffer, 0x100, exits=(0x200,))
    live = _add(buffer, 0x200, exits=(0x100,))
    assert buffer.link(live, old)
    region, generation = buffer.retire_oldest() or (-1, -1)
    assert live.links == {0x100: old}  # the broken mode left the path in place
    assert buffer.reclaim(region, generation)
    assert len(seen) == 1
    assert "link(s) still lead into" in seen[0]
    assert buffer.violations() == seen


def test_a_flush_that_leaves_links_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    _skip_unlinking(monkeypatch)
    buffer = _buffer()
    a = _add(buffer, 0x100, exits=(0x200,))
    b = _add(buffer, 0x200, exits=())
    assert buffer.link(a, b)
    buffer.flush()
    assert any("link(s) still lead into" in v for v in buffer.violations())


def test_bad_arguments_are_refused() -> None:
    buffer = _buffer()
    a = _add(buffer, 0x100, exits=(0x200,))
    with pytest.raises(TypeError, match="two TranslationBlocks"):
        buffer.link(a, "b")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exits"):
        buffer.add(0x400, 0x410, int, b"x", exits=[0x500])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exits"):
        buffer.add(0x400, 0x410, int, b"x", exits=(1 << 32,))


def test_followed_links_are_counted() -> None:
    buffer = _buffer()
    buffer.count_followed(0)
    buffer.count_followed(5)
    assert buffer.statistics().links.followed == 5


def test_a_retired_tb_that_keeps_its_outgoing_links_is_a_violation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A one-way unlink (links into the TB removed, its own left) is caught too."""

    def one_way(self: TranslationBuffer, tbs: list[TranslationBlock], cause: str) -> None:
        for tb in tbs:
            for src in tb.incoming:
                src.links.pop(tb.pc, None)
            tb.incoming.clear()

    monkeypatch.setattr(TranslationBuffer, "_unlink_links", one_way)
    buffer = TranslationBuffer(400, 4, StopTheWorldFlush(quiescent.World()))
    old = _add(buffer, 0x100, exits=(0x200,))
    live = _add(buffer, 0x200, exits=())
    assert buffer.link(old, live)
    region, generation = buffer.retire_oldest() or (-1, -1)
    assert buffer.reclaim(region, generation)
    assert any("still links to" in v for v in buffer.violations())


class OldStyleEngine:
    """An engine that returns a plain tuple from generate(): refused with a clear error."""

    def __init__(self, services: object) -> None:
        self.inner = RiscvEngine(services)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def generate(self, pc: int, max_insns: int) -> tuple[object, int, bytes]:
        fn, end, host, _ = self.inner.generate(pc, max_insns)
        return fn, end, host


def test_an_engine_that_returns_no_block_code_is_told_so() -> None:
    machine = Machine(WORKLOADS["crc32"].path, engine=OldStyleEngine)  # type: ignore[arg-type]
    with pytest.raises(MachineError, match=r"must return a tcg\.engine\.BlockCode, not tuple"):
        machine.run()
