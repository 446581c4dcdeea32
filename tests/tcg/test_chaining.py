"""Chained blocks through the cpu loop: links followed, removed per policy, and the oracle.

The deliberately broken mode (``_skip_unlinking``) leaves every link in
place when a block is unlinked. It must be caught every run: by the buffer's
check at each reclaim and flush (a link still leads into the region), and,
when a vCPU follows such a link into reclaimed code, by the oracle
(``UseAfterReclaimError``).
"""

from __future__ import annotations

import pytest

import quiescent
from tcg import (
    LinkStatistics,
    StopTheWorldFlush,
    TranslationBlock,
    TranslationBuffer,
    UseAfterReclaimError,
)
from tcg.adapters.tinyrv import INSTALL, TinyrvMachine, tinyrv_available
from tcg.cpu_loop import CpuLoop
from tcg.engine import BlockCode
from tcg.machine import Machine
from tcg.policies import VcpuHooks
from tcg.workloads import WORKLOADS

A, B = 0x100, 0x200
#: Host bytes of a toy block: one per 100-byte region.
TOY_BYTES = 100


def _skip_unlinking(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broken mode: unlinking a block leaves the links into and out of it."""
    monkeypatch.setattr(TranslationBuffer, "_unlink_links", lambda self, tbs, cause: None)


class ToyHart:
    """A hart of the toy guest: two blocks that jump to each other."""

    def __init__(self, hart_id: int) -> None:
        self.hart_id = hart_id
        self.pc = A
        self.instret = 0
        self.reservation: int | None = None

    def reset(self, entry: int, n_harts: int) -> None:
        self.pc = entry


def _a(h: ToyHart) -> int:
    h.instret += 1
    return B


def _b(h: ToyHart) -> int:
    h.instret += 1
    return A


class ToyEngine:
    """Block A at 0x100 jumps to B at 0x200, which jumps back: both direct exits."""

    def new_hart(self, hart_id: int) -> ToyHart:
        return ToyHart(hart_id)

    def generate(self, pc: int, max_insns: int) -> BlockCode:
        fn, target = (_a, B) if pc == A else (_b, A)
        return BlockCode(fn, pc + 4, bytes([pc >> 8]) * TOY_BYTES, (target,))

    def is_host_call(self, h: ToyHart, pc: int) -> bool:
        return False

    def run_special(self, h: ToyHart) -> bool:
        raise AssertionError("the toy guest has no special instructions")


class ReclaimAtBoundary(StopTheWorldFlush):
    """A policy whose vCPU, at its ``at``-th quiescent point, retires and reclaims
    the oldest region itself: legal there (the vCPU holds no block), and just
    before the loop follows the link of the block it ran."""

    def __init__(self, world: quiescent.World, at: int) -> None:
        super().__init__(world)
        self.at = at
        self.boundaries = 0
        self.reclaimed: list[int] = []

    def vcpu_hooks(self) -> VcpuHooks:
        def boundary() -> None:
            self.boundaries += 1
            if self.boundaries == self.at:
                retired = self.buffer.retire_oldest()
                assert retired is not None
                assert self.buffer.reclaim(*retired)
                self.reclaimed.append(retired[0])

        return VcpuHooks(_noop, _noop, boundary)


def _noop() -> None:
    pass


def _toy_run(at: int) -> tuple[TranslationBuffer, ReclaimAtBoundary]:
    world = quiescent.World()
    policy = ReclaimAtBoundary(world, at)
    seen: list[str] = []
    buffer = TranslationBuffer(4 * TOY_BYTES, 4, policy, on_violation=seen.append)
    engine = ToyEngine()

    def translate(pc: int) -> TranslationBlock:
        fn, end, host, exits = engine.generate(pc, 1)
        return buffer.add(pc, end, fn, host, exits=exits)

    loop = CpuLoop(
        world,
        buffer,
        engine,
        translate=translate,
        next_check=lambda h: None if h.instret >= 40 else 40,
    )
    loop.run(engine.new_hart(0), "toy")
    return buffer, policy


def test_the_loop_follows_links_and_a_reclaim_removes_them() -> None:
    # Quiescent points: 1 after A, 2 after B (link A->B made before B ran),
    # 3 after the chain that starts at A (link B->A made before it) and runs
    # CHAIN_RUN more blocks through the links. The next step follows the
    # link of the last of them... unless A's region was reclaimed at point
    # 3, as here: then the link is gone and A is translated again.
    buffer, policy = _toy_run(at=3)
    assert policy.reclaimed == [0]  # A's region (A was translated first)
    stats = buffer.statistics()
    assert stats.translations == 3  # A, B, and A again after its reclaim
    assert stats.links.removed_on_retire == 2  # A->B and B->A
    assert stats.links.followed > 0
    assert buffer.violations() == []


def test_following_a_stale_link_into_reclaimed_code_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    _skip_unlinking(monkeypatch)
    with pytest.raises(UseAfterReclaimError, match="after its region was reclaimed"):
        _toy_run(at=3)


def _machine(policy: str, vcpus: int, buffer_kb: float, name: str = "parallel") -> Machine:
    return Machine(WORKLOADS[name].path, vcpus=vcpus, policy=policy, buffer_kb=buffer_kb)


@pytest.mark.parametrize("policy", ["rcu", "rcu-qsbr", "flush"])
@pytest.mark.parametrize("vcpus", [2, 4])
def test_chained_blocks_survive_constant_retirement(policy: str, vcpus: int) -> None:
    result = _machine(policy, vcpus, 16).run()
    assert result.violations == ()
    assert result.stdout == WORKLOADS["parallel"].expected_output(vcpus)
    links = result.buffer.links
    assert links.made > 0
    assert links.followed > 0
    removed = links.removed_on_flush if policy == "flush" else links.removed_on_retire
    assert removed > 0  # the links went with the code they led into
    _assert_links_add_up(links)


def _assert_links_add_up(links: LinkStatistics) -> None:
    removed = links.removed_on_retire + links.removed_on_flush + links.removed_on_invalidate
    assert links.live == links.made - removed, links


@pytest.mark.parametrize("policy", ["rcu", "rcu-qsbr", "flush"])
def test_self_modifying_code_stays_right_with_chaining(policy: str) -> None:
    # The rewritten code is called and returns through computed jumps, so
    # its blocks carry no links; unlinking on invalidation is checked in
    # tests/tcg/test_links.py.
    result = _machine(policy, 2, 32, "smc").run()
    assert result.violations == ()
    assert result.stdout == WORKLOADS["smc"].expected_output(2)
    assert result.buffer.invalidations > 0
    assert result.buffer.links.followed > 0
    _assert_links_add_up(result.buffer.links)


@pytest.mark.parametrize("policy", ["rcu", "rcu-qsbr", "flush"])
@pytest.mark.parametrize("vcpus", [2, 4])
def test_skipping_unlinking_is_caught_every_run(
    policy: str, vcpus: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _skip_unlinking(monkeypatch)
    result = _machine(policy, vcpus, 16).run()
    assert result.stopped == "violation"
    # The link check at a reclaim or flush, or the oracle: never the mark
    # check, which a correct policy does not trip.
    caught = ("still lead into", "still links to", "executed after its region was reclaimed")
    assert any(c in v for v in result.violations for c in caught), result.violations


@pytest.mark.skipif(not tinyrv_available(), reason=f"tinyrv not installed ({INSTALL})")
@pytest.mark.parametrize("policy", ["rcu", "flush"])
def test_the_tinyrv_engine_chains_and_unlinks_too(
    policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    workload = WORKLOADS["parallel"]
    result = TinyrvMachine(workload.path, vcpus=2, policy=policy, buffer_kb=8).run()
    assert result.violations == ()
    assert result.stdout == workload.expected_output(2)
    assert result.buffer.links.followed > 0
    _assert_links_add_up(result.buffer.links)
    _skip_unlinking(monkeypatch)
    broken = TinyrvMachine(workload.path, vcpus=2, policy=policy, buffer_kb=8).run()
    assert broken.stopped == "violation"
