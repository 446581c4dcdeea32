"""Both policies under the synthetic driver; the oracle; coalescing; the memory bound."""

from __future__ import annotations

import threading

import pytest

import quiescent
import rcu
from tcg import RcuRetire, RetirePolicy, StopTheWorldFlush, TranslationBuffer
from tests.scale import scaled
from tests.tcg.driver import Driver


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [1, 2])
def test_no_use_after_reclaim_under_pressure(
    policy: RetirePolicy, world: quiescent.World, seed: int
) -> None:
    buffer = TranslationBuffer(12 * 1024, 6, policy)
    result = Driver(buffer, world, vcpus=3, translators=1, steps=8000, seed=seed).run()
    assert not result.errors, result.errors
    assert result.violations == []
    assert result.blocks_run == 3 * 8000
    stats = policy.statistics()
    reclaimed = stats.flushes if isinstance(policy, StopTheWorldFlush) else stats.reclaims
    assert reclaimed >= 100, stats  # the buffer really was recycled, many times
    assert buffer.statistics().translations > buffer.capacity // 512


class ReclaimAtOnce(RcuRetire):
    """A broken policy: it reclaims a retired region without a grace period."""

    def _retire(self) -> None:
        retired = self.buffer.retire_oldest()
        if retired is not None:
            self.buffer.reclaim(*retired)

    def wait_for_space(self, token: object) -> None:
        self._retire()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_oracle_catches_a_policy_that_does_not_wait(world: quiescent.World, seed: int) -> None:
    policy = ReclaimAtOnce(rcu.Domain(stall_timeout=None))
    try:
        buffer = TranslationBuffer(8 * 1024, 8, policy)
        result = Driver(buffer, world, vcpus=3, translators=1, steps=2000, seed=seed).run()
    finally:
        policy.domain.close()
    assert not result.errors, result.errors
    # The grace-period check catches it every run, whether or not a vCPU
    # happened to run the reclaimed code (which the generations catch).
    grace = [v for v in result.violations if "may still hold one of its TBs" in v]
    assert grace, "the check missed regions reclaimed under running vCPUs"
    ran = [v for v in result.violations if "may still hold" not in v]
    assert all("executed after its region was reclaimed" in v for v in ran)


def test_concurrent_full_events_coalesce_into_one_flush(world: quiescent.World) -> None:
    policy = StopTheWorldFlush(world)
    buffer = TranslationBuffer(4096, 2, policy)
    token = policy.on_full()
    start = threading.Barrier(8)

    def full() -> None:
        start.wait(10)
        policy.wait_for_space(token)

    threads = [threading.Thread(target=full, name=f"full-{i}") for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    stats = policy.statistics()
    assert stats.flushes == 1
    assert stats.translator_waits == 8
    assert stats.flush_latency.count == 1
    assert stats.pause is stats.flush_latency  # the former name, an alias
    assert buffer.statistics().tbs == 0
    # Only one of the eight stopped the world; the others waited for its flush.
    assert world.statistics().exclusive_sections == 1


@pytest.mark.timeout(60)
def test_rcu_retire_memory_bound_with_a_stuck_reader() -> None:
    domain = rcu.Domain(stall_timeout=None)
    policy = RcuRetire(domain, reserve=2)
    buffer = TranslationBuffer(8 * 1024, 8, policy)
    entered, release = threading.Event(), threading.Event()

    def stuck_reader() -> None:
        with domain.read():
            entered.set()
            release.wait(30)
        domain.unregister_thread()

    def translator() -> None:
        for i in range(200):  # far past capacity: 200 x 256 B = 6x the buffer
            while True:
                try:
                    buffer.add(0x1000 + 64 * i, 0x1000 + 64 * i + 64, int, b"x" * 256)
                    break
                except Exception as exc:  # BufferFullError
                    policy.wait_for_space(getattr(exc, "token", None))

    reader = threading.Thread(target=stuck_reader, name="stuck-reader")
    reader.start()
    assert entered.wait(10)
    worker = threading.Thread(target=translator, name="translator")
    worker.start()
    worker.join(0.5)
    assert worker.is_alive(), "the translator should wait while a reader is stuck"
    stats = buffer.statistics()
    assert stats.retired_bytes <= policy.reserve * buffer.region_size
    assert stats.peak_retired_bytes <= policy.reserve * buffer.region_size
    assert policy.statistics().reclaims == 0
    release.set()
    reader.join(10)
    worker.join(30)
    assert not worker.is_alive()
    final = buffer.statistics()
    assert final.peak_retired_bytes <= policy.reserve * buffer.region_size
    assert policy.statistics().translator_waits >= 1
    domain.close()


def test_rcu_retire_validates_arguments() -> None:
    with pytest.raises(TypeError):
        RcuRetire("domain")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reserve"):
        RcuRetire(reserve=0)
    with pytest.raises(TypeError):
        StopTheWorldFlush(None)  # type: ignore[arg-type]


def test_own_domain_is_closed_with_the_policy() -> None:
    policy = RcuRetire()
    assert policy.name == "rcu"
    policy.close()
    assert policy.domain.closed


def test_policy_binds_to_one_buffer(world: quiescent.World) -> None:
    policy = StopTheWorldFlush(world)
    TranslationBuffer(1024, 1, policy)
    with pytest.raises(ValueError, match="already bound"):
        TranslationBuffer(1024, 1, policy)


def test_policies_satisfy_the_protocol(world: quiescent.World) -> None:
    flush = StopTheWorldFlush(world)
    retire = RcuRetire()
    assert isinstance(flush, RetirePolicy)
    assert isinstance(retire, RetirePolicy)
    retire.close()


@pytest.mark.torture
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_no_use_after_reclaim_long(policy: RetirePolicy, world: quiescent.World, seed: int) -> None:
    buffer = TranslationBuffer(12 * 1024, 6, policy)
    steps = scaled(50_000, minimum=8000)
    result = Driver(buffer, world, vcpus=4, translators=2, steps=steps, seed=seed).run(1200)
    assert not result.errors, result.errors
    assert result.violations == []
    stats = policy.statistics()
    assert max(stats.flushes, stats.reclaims) >= steps // 50, stats


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flavor", ["epoch", "qsbr"])
def test_wait_for_space_never_reclaims_a_region_a_reader_still_holds(flavor: str) -> None:
    policy = RcuRetire(flavor=flavor)
    buffer = TranslationBuffer(600, 3, policy)  # three regions of 200 bytes
    held = buffer.add(0x100, 0x110, int, b"h" * 150)  # region 0
    entered, release = threading.Event(), threading.Event()

    def vcpu() -> None:
        hooks = policy.vcpu_hooks()
        cache = buffer.new_jump_cache()
        hooks.enter()
        tb = buffer.lookup(cache, 0x100)  # this vCPU now holds a TB of region 0
        assert tb is held
        entered.set()
        release.wait(30)
        tb.check(buffer.generations)  # still valid: not reclaimed under the reader
        hooks.leave()

    reader = threading.Thread(target=vcpu, name="holding-vcpu")
    reader.start()
    assert entered.wait(10)
    buffer.add(0x200, 0x210, int, b"x" * 150)  # region 1; region 0 is now the oldest full one
    waiter = threading.Thread(target=policy.wait_for_space, args=(None,), name="translator")
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive(), "wait_for_space returned while a reader held the region"
    assert buffer.generations[held.region] == held.generation
    release.set()
    reader.join(10)
    waiter.join(10)
    assert not waiter.is_alive()
    assert buffer.generations[held.region] == held.generation + 1
    policy.close()


@pytest.mark.timeout(60)
def test_rcu_sync_retires_only_when_a_translator_needs_space(world: quiescent.World) -> None:
    domain = rcu.Domain(stall_timeout=None)
    policy = RcuRetire(domain, deferred=False)
    assert policy.name == "rcu-sync"
    try:
        buffer = TranslationBuffer(12 * 1024, 6, policy)
        result = Driver(buffer, world, vcpus=3, translators=1, steps=4000, seed=5).run()
    finally:
        policy.close()
        domain.close()
    assert not result.errors, result.errors
    assert result.violations == []
    stats = policy.statistics()
    # Nothing retired ahead of need: every retirement happens in a translator's
    # wait, reclaimed on that translator after a grace period of its own.
    assert 0 < stats.retirements == stats.reclaims <= stats.translator_waits, stats
    assert stats.gp_latency is not None
    assert stats.gp_latency.count >= stats.retirements
    assert domain.statistics().callbacks_invoked == 0  # no call_rcu at all


def test_rcu_retire_rejects_a_non_bool_deferred() -> None:
    with pytest.raises(TypeError, match="deferred"):
        RcuRetire(deferred=1)  # type: ignore[arg-type]


class _Regions:
    """A stand-in buffer that records retirements and reclaims, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.retired = threading.Event()

    def retire_oldest(self) -> tuple[int, int]:
        self.events.append(("retire", threading.current_thread().name))
        self.retired.set()
        return (0, 1)

    def reclaim(self, region: int, generation: int) -> bool:
        self.events.append(("reclaim", threading.current_thread().name))
        return True


@pytest.mark.timeout(60)
def test_rcu_sync_second_translator_waits_for_the_first_reclaim_not_a_grace_period() -> None:
    policy = RcuRetire(rcu.Domain(stall_timeout=None), deferred=False)
    regions = _Regions()
    policy._buffer = regions  # type: ignore[assignment]
    entered, release = threading.Event(), threading.Event()

    def reader() -> None:
        r = policy.domain.register_thread()
        with r:
            entered.set()
            release.wait(30)
        policy.domain.unregister_thread()

    def translator(name: str) -> None:
        policy.wait_for_space(None)
        regions.events.append(("returned", name))

    holder = threading.Thread(target=reader, name="reader")
    holder.start()
    assert entered.wait(10)
    first = threading.Thread(target=translator, args=("A",), name="A")
    first.start()
    assert regions.retired.wait(10)  # A retired and waits for its grace period
    second = threading.Thread(target=translator, args=("B",), name="B")
    second.start()
    second.join(0.2)
    assert second.is_alive(), "B returned before A's region was reclaimed"
    release.set()
    for t in (holder, first, second):
        t.join(10)
        assert not t.is_alive()
    assert regions.events.index(("reclaim", "A")) < regions.events.index(("returned", "B"))
    stats = policy.statistics()
    assert stats.retirements == 1
    assert stats.gp_latency is not None
    assert stats.gp_latency.count == 1  # B waited for A's reclaim, not a grace period
    policy.close()


@pytest.mark.timeout(60)
def test_followers_of_a_flush_wait_for_that_flush(
    world: quiescent.World,
) -> None:
    policy = StopTheWorldFlush(world)
    in_second, release_second = threading.Event(), threading.Event()

    class Regions:
        flushes = 0

        def flush(self) -> None:
            Regions.flushes += 1
            if Regions.flushes == 2:  # the flush for token 1: hold it
                in_second.set()
                release_second.wait(30)

    policy._buffer = Regions()  # type: ignore[assignment]
    policy.wait_for_space(0)  # token 0: flushed, count now 1
    done: list[str] = []

    def call(name: str) -> None:
        policy.wait_for_space(1)
        done.append(name)

    leader = threading.Thread(target=call, args=("leader",), name="leader")
    leader.start()
    assert in_second.wait(10)
    with policy._lock:
        assert policy._requested == 1
    follower = threading.Thread(target=call, args=("follower",), name="follower")
    follower.start()
    follower.join(0.2)
    assert follower.is_alive()
    assert done == []
    release_second.set()
    for t in (leader, follower):
        t.join(10)
        assert not t.is_alive()
    assert sorted(done) == ["follower", "leader"]
    assert world.statistics().exclusive_sections == 2  # token 0 and token 1, once each


@pytest.mark.timeout(60)
def test_a_translator_expedites_the_queued_reclaim_on_its_own_thread() -> None:
    # The worker would wait 30 s for a fuller batch: only the translator's
    # own grace period can reclaim the region in time.
    domain = rcu.Domain(stall_timeout=None, batch_delay=30.0)
    policy = RcuRetire(domain)
    regions = _Regions()
    policy._buffer = regions  # type: ignore[assignment]
    entered, release = threading.Event(), threading.Event()

    def reader() -> None:
        r = domain.register_thread()
        with r:  # began before the retirement: holds its grace period
            entered.set()
            release.wait(30)
        domain.unregister_thread()

    holder = threading.Thread(target=reader, name="reader")
    holder.start()
    assert entered.wait(10)
    policy.on_full()  # retire the oldest region, reclaim queued with call_rcu
    assert regions.events == [("retire", "MainThread")]
    translator = threading.Thread(target=policy.wait_for_space, args=(None,), name="translator")
    translator.start()
    translator.join(0.2)
    assert translator.is_alive(), "the translator reclaimed under a reader"
    release.set()
    for t in (holder, translator):
        t.join(10)
        assert not t.is_alive()
    assert regions.events == [("retire", "MainThread"), ("reclaim", "translator")]
    domain.close()  # runs the queued reclaim, which finds the region gone
    assert regions.events == [("retire", "MainThread"), ("reclaim", "translator")]
    stats = policy.statistics()
    assert (stats.retirements, stats.reclaims, stats.translator_waits) == (1, 1, 1)
    assert domain.statistics().callbacks_invoked == 1
