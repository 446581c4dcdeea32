"""Retirement policies: when and how safely translated code is reclaimed.

The question
------------
A full translation buffer must give memory back while vCPUs may be running
the very code it holds. Two answers, one protocol:

``StopTheWorldFlush`` (QEMU's ``tb_flush``)
    Queue a flush as safe work: inside an exclusive section no vCPU executes
    guest code, so every TB can be dropped and every region reused at once.
    Every vCPU pauses for it, and every hot block is translated again.
    Concurrent requests that saw the same flush count coalesce into one.

``RcuRetire``
    Unpublish the oldest region's TBs (index, page map, jump caches) and
    reclaim the region with ``call_rcu``, after a grace period: vCPUs keep
    running, and only the translator waits, and only when no region is free.
    Hot code outside the retired region stays translated.

The protocol
------------
The buffer calls ``on_region_start(free)`` when it starts filling a new
region and ``on_invalidate(tbs)`` after unlinking TBs. The cpu loop whose
translation found no region free (``BufferFullError``) calls ``on_full()``
there (start making room; it returns a token), then ``wait_for_space(token)``
outside guest code (outside ``running()`` and any read section) before it
retries, and runs guest code between the hooks of ``vcpu_hooks()``:
``enter``, ``boundary`` (between two TBs: a quiescent point) and ``leave``.
A third-party policy implements the same methods; see the policies guide for
a worked example.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import quiescent
import rcu
from _latency import LatencyWindow, Percentiles

if TYPE_CHECKING:
    from tcg.block import TranslationBlock

__all__ = [
    "POLICIES",
    "PolicyFactory",
    "PolicyStatistics",
    "RcuRetire",
    "RetirePolicy",
    "StopTheWorldFlush",
    "VcpuHooks",
    "make_policy",
]


def _nothing() -> None:
    """A hook with nothing to do."""


@dataclass(frozen=True, slots=True)
class VcpuHooks:
    """What a vCPU calls around guest code: ``enter``, ``boundary`` between TBs, ``leave``."""

    enter: Callable[[], None]
    leave: Callable[[], None]
    boundary: Callable[[], None]


NO_HOOKS = VcpuHooks(_nothing, _nothing, _nothing)

#: RcuRetire's default ``reserve``: regions kept free or being reclaimed.
DEFAULT_RESERVE = 1
#: The ``reserve`` of the policy named ``rcu-batch``: up to four retired
#: regions in flight, sharing grace periods.
BATCH_RESERVE = 4


@dataclass(frozen=True, slots=True)
class PolicyStatistics:
    """What a policy did, in the units the comparison reports (times in seconds)."""

    #: The policy's name (:attr:`RetirePolicy.name`).
    policy: str
    #: Full flushes of the buffer.
    flushes: int
    #: Regions unpublished to be reclaimed after a grace period.
    retirements: int
    #: Retired regions reclaimed after their grace period.
    reclaims: int
    #: TBs unlinked by guest stores to their code.
    invalidated: int
    #: Times a translator had to wait for space.
    translator_waits: int
    #: How long those waits lasted.
    wait: Percentiles
    #: Per flush, from the request (the translator that found the buffer full
    #: starting to wait) until the buffer was flushed inside the exclusive
    #: section; empty for policies that never flush. Not
    #: :attr:`quiescent.WorldStatistics.pause`, which covers every exclusive
    #: section from its stop request to its end.
    flush_latency: Percentiles
    #: Grace-period latency; None for policies without grace periods.
    gp_latency: Percentiles | None
    #: Seconds vCPUs spent stepping aside for grace periods at block
    #: boundaries, summed over vCPUs (with a GIL only; see :mod:`rcu`): vCPU
    #: time the policy cost beyond the translators' waits.
    stepped_aside: float = 0.0

    @property
    def pause(self) -> Percentiles:
        """The former name of :attr:`flush_latency`, kept as an alias."""
        return self.flush_latency


class RegionBuffer(Protocol):
    """What a policy needs of the buffer it serves (tcg.TranslationBuffer has it).

    Narrow on purpose: policies retire, reclaim and flush regions; they do
    not reach into the buffer's index or its caches.
    """

    regions: int

    def retire_oldest(self) -> tuple[int, int] | None:
        """Unpublish the oldest full region; its ``(region, generation)``, or None."""

    def reclaim(self, region: int, generation: int) -> bool:
        """Poison a retired region and make it free; False if already reclaimed."""

    def flush(self) -> int:
        """Unlink every TB and reclaim every region at once (inside an exclusive section)."""


@runtime_checkable
class RetirePolicy(Protocol):
    """What a translation buffer and a cpu loop need from a retirement policy."""

    name: str

    def bind(self, buffer: RegionBuffer) -> None:
        """Called once by the buffer that uses this policy."""

    def on_full(self) -> object:
        """No region is free: start making room (never block); return a token.

        Called by the translator that found the buffer full, before it leaves
        guest code to ``wait_for_space(token)``.
        """

    def on_region_start(self, free_regions: int) -> None:
        """The buffer started filling a region; ``free_regions`` are left."""

    def on_invalidate(self, tbs: list[TranslationBlock]) -> None:
        """``tbs`` were unlinked (guest stores to their code)."""

    def wait_for_space(self, token: object) -> None:
        """Block until a translation may succeed again (called outside guest code).

        ``token`` is what ``on_full()`` returned; None means "no token": make
        room from the current state.
        """

    def vcpu_hooks(self) -> VcpuHooks:
        """The hooks of the calling vCPU thread (called on that thread)."""

    def statistics(self) -> PolicyStatistics:
        """A frozen snapshot of what the policy did."""

    def close(self) -> None:
        """Release what the policy owns (threads, domains)."""


class _PolicyBase(RetirePolicy):
    """Bookkeeping shared by the shipped policies.

    It subclasses the protocol on purpose: a type checker then holds every
    shipped policy to the protocol's signatures (and refuses to make one that
    leaves a method out), and the methods a policy does not document itself
    show the protocol's docstrings.
    """

    #: The name the emulator and ``rcu-compare`` know the policy by.
    name = "base"

    def __init__(self) -> None:
        self._buffer: RegionBuffer | None = None
        # Guards the counters below and each subclass's own state (see its
        # __init__). Lock order: taken inside exclusive sections (quiescent)
        # and rcu callbacks, never held while calling the world, the domain or
        # guest code; before the buffer's lock (RcuRetire only), and the
        # buffer never calls the policy under its own lock.
        self._lock = threading.Lock()
        self._invalidated = 0
        self._waits = 0
        self._wait_times = LatencyWindow()

    def bind(self, buffer: RegionBuffer) -> None:
        if self._buffer is not None and self._buffer is not buffer:
            raise ValueError(f"{type(self).__name__} is already bound to another buffer")
        self._buffer = buffer

    @property
    def buffer(self) -> RegionBuffer:
        """The buffer this policy serves."""
        if self._buffer is None:
            raise RuntimeError(f"{type(self).__name__} is not bound to a buffer yet")
        return self._buffer

    def on_region_start(self, free_regions: int) -> None:
        pass

    def on_invalidate(self, tbs: list[TranslationBlock]) -> None:
        with self._lock:
            self._invalidated += len(tbs)

    def _waited(self, since_ns: int) -> None:
        self._wait_times.add(time.perf_counter_ns() - since_ns)
        with self._lock:
            self._waits += 1

    def close(self) -> None:
        pass


class StopTheWorldFlush(_PolicyBase):
    """Flush the whole buffer inside an exclusive section of ``world``.

    Coalescing (QEMU's ``tb_flush_count``): a full buffer hands out the
    current flush count as its token; a flush runs only if the count has
    not moved since, so N vCPUs that hit the same full buffer cause one flush.
    Beyond QEMU, only the first of them stops the world: the others wait for
    its flush instead of each taking an exclusive section that would find the
    count moved and do nothing (every exclusive section stops every vCPU).
    """

    name = "flush"

    def __init__(self, world: quiescent.World) -> None:
        if not isinstance(world, quiescent.World):
            raise TypeError(f"world must be a quiescent.World, not {type(world).__name__}")
        super().__init__()
        #: The world whose exclusive sections the flushes run in.
        self.world = world
        self._flushes = 0  # written only inside exclusive sections, under _lock
        self._requested: object = None  # the token being flushed for (under _lock)
        # A condition over _lock: _requested was cleared (a flush has ended).
        self._flushed = threading.Condition(self._lock)
        self._flush_latency = LatencyWindow()

    def on_full(self) -> object:
        return self._flushes

    def wait_for_space(self, token: object) -> None:
        start = time.perf_counter_ns()
        with self._lock:
            if token is None:  # no token: flush unless someone does already
                token = self._requested if self._requested is not None else self._flushes
            # Check and claim under one lock: exactly one waiter per token
            # stops the world; the rest sleep until its section has ended.
            leader = token == self._flushes and self._requested != token
            if leader:
                self._requested = token
            else:
                while self._requested == token:
                    self._flushed.wait()
        if leader:
            try:
                cpu = self.world.current()
                if cpu is not None:
                    # The vCPU's own thread, outside running(): queue the
                    # flush as safe work and process it now
                    # (async_safe_run_on_cpu).
                    cpu.run_safe(self._flush, token, start)
                    cpu.process_work()
                else:
                    with self.world.exclusive():
                        self._flush(token, start)
            finally:
                with self._lock:
                    # Only our own claim: a later leader may already have
                    # claimed the next count, and its followers must keep
                    # waiting for its flush.
                    if self._requested == token:
                        self._requested = None
                    self._flushed.notify_all()
        self._waited(start)

    def _flush(self, token: object, requested_ns: int) -> None:
        # Inside an exclusive section: no vCPU runs guest code.
        if token != self._flushes:
            return  # someone flushed since this request was made
        self.buffer.flush()
        with self._lock:
            self._flushes += 1
        self._flush_latency.add(time.perf_counter_ns() - requested_ns)

    def vcpu_hooks(self) -> VcpuHooks:
        # running() (entered by the cpu loop) is this policy's read side.
        return NO_HOOKS

    def statistics(self) -> PolicyStatistics:
        with self._lock:
            waits, invalidated = self._waits, self._invalidated
        return PolicyStatistics(
            policy=self.name,
            flushes=self._flushes,
            retirements=0,
            reclaims=0,
            invalidated=invalidated,
            translator_waits=waits,
            wait=self._wait_times.percentiles(),
            flush_latency=self._flush_latency.percentiles(),
            gp_latency=None,
        )


class RcuRetire(_PolicyBase):
    """Retire the oldest region and reclaim it with ``call_rcu``; vCPUs keep running.

    ``domain`` is the RCU domain whose read sections the vCPUs hold while they
    run guest code (epoch: a section from ``enter`` to ``leave``, cut at every
    quiescent point of the cpu loop; qsbr: a quiescent state there, offline
    outside guest code). Without one, the policy creates (and closes) its own domain
    of ``flavor``. ``reserve`` is how many regions the policy keeps free or being
    reclaimed: when fewer remain it retires the oldest full region ahead of
    need, so a translator waits only if a grace period takes longer than
    filling ``reserve`` regions. Retired-but-not-reclaimed regions never
    exceed ``reserve`` (at least one, and fewer than the buffer's regions
    unless both are 1: checked when the buffer binds the policy, with
    ``ValueError``). With ``reserve > 1`` several
    retirements can share one grace period: the domain's callback engine
    batches the reclaims queued while a grace period is pending.

    ``deferred=False`` is the unbatched variant (``synchronize_rcu`` per
    update, named ``rcu-sync``): nothing is retired ahead of need, and each
    retirement waits for a grace period of its own on the translator that
    needs the space. It exists to measure what batching buys.

    The chain, and where it hands the interpreter from one thread to another
    (under a GIL each handoff to a blocked thread costs up to a switch
    interval, 5 ms, while other vCPUs run, unless they step aside):

    1. *Retire* (on the vCPU that starts the last free region, or finds none):
       unpublish the region, take a grace-period cookie (``start_poll``) and
       queue the reclaim (``call_rcu``). No handoff: the worker is woken, but
       nobody waits for it; it reclaims in the background when it runs.
    2. *Wait for space* (the translator that finds the buffer full): it does
       not wake the worker and wait to be woken back (two handoffs). It
       expedites the oldest queued reclaim itself: ``cond_synchronize`` on its
       cookie, driving the grace period on its own thread if none is running,
       then reclaims the region on its own thread. The worker's queued reclaim
       later finds the region gone.
    3. *The grace period*: flagged vCPUs that cross a block boundary step
       aside on the domain's handoff gate (see :mod:`rcu`), so the driver runs
       as soon as the last holdout leaves, not a switch interval later.
    4. *Joining a grace period another thread drives* (the worker, or another
       translator): when it ends, the vCPUs step aside once more, so the
       woken translator runs at their next boundary.

    Measured with ``rcu-compare --policies rcu,flush --vcpus 2,4 --buffer-kb
    32,64,128`` on two busy cores: grace periods p50 2-5 us, p99 0.4-5 ms;
    translator waits p50 20-190 us (p99 0.5-22 ms, the machine's own
    scheduling); about 0.6 ms of waiting per retirement, where waking the
    worker and being woken back cost about 5.6 ms. The price is paid at step
    3 and 4 by the other vCPUs: a step aside lasts a median 1.7 ms (p90 6 ms),
    most of it waiting for the interpreter to come back, several times the
    translators' waits in all (``PolicyStatistics.stepped_aside``, counted in
    rcu-compare's time lost). Throughput is where it nets out.
    """

    name = "rcu"

    def __init__(
        self,
        domain: rcu.Domain | None = None,
        *,
        flavor: str = "epoch",
        reserve: int = DEFAULT_RESERVE,
        deferred: bool = True,
    ) -> None:
        if domain is not None and not isinstance(domain, rcu.Domain):
            raise TypeError(f"domain must be an rcu.Domain or None, not {type(domain).__name__}")
        if isinstance(reserve, bool) or not isinstance(reserve, int):
            raise TypeError(f"reserve must be an int, not {type(reserve).__name__}")
        if reserve < 1:
            raise ValueError(f"reserve must be >= 1, not {reserve}")
        if not isinstance(deferred, bool):
            raise TypeError(f"deferred must be a bool, not {type(deferred).__name__}")
        super().__init__()
        self._owns_domain = domain is None
        if domain is None:
            domain = rcu.Domain(flavor, name=f"tcg-rcu-{flavor}")
        #: The RCU domain whose read sections the vCPUs hold in guest code.
        self.domain = domain
        #: The name the emulator and ``rcu-compare`` know this variant by
        #: (``rcu``, ``rcu-qsbr``, ``rcu-sync``, ``rcu-batch``, ``rcu-reserveN``).
        self.name = "rcu" if self.domain.flavor == "epoch" else f"rcu-{self.domain.flavor}"
        if not deferred:
            self.name += "-sync"
        elif reserve > DEFAULT_RESERVE:
            self.name += "-batch" if reserve == BATCH_RESERVE else f"-reserve{reserve}"
        #: Regions kept free or being reclaimed (the most retired at once).
        self.reserve = reserve
        #: False for the unbatched variant (``rcu-sync``).
        self.deferred = deferred
        self._retirements = 0
        self._reclaims = 0
        # Guarded by _lock (which comes before the buffer's lock: _reclaim
        # calls buffer.reclaim under it, so exactly one caller reclaims; no
        # other lock is taken under it):
        self._in_flight = 0  # regions being retired or retired, reclaim pending
        self._retired: set[tuple[int, int]] = set()  # (region, generation) not yet reclaimed
        # The retired regions whose reclaim is queued with call_rcu, oldest
        # first, with the grace-period cookie that covers each.
        self._queued: dict[tuple[int, int], int] = {}
        # A condition over _lock: _in_flight went down.
        self._reclaimed = threading.Condition(self._lock)

    def bind(self, buffer: RegionBuffer) -> None:
        """Serve ``buffer``; its regions must outnumber ``reserve`` (unless both are 1).

        A reserve of as many regions as the buffer has would retire a region
        every time one is started: live code would never fill the buffer.
        """
        if self.reserve > 1 and self.reserve >= buffer.regions:
            raise ValueError(
                f"reserve={self.reserve} needs more than {self.reserve} regions; "
                f"the buffer has {buffer.regions}"
            )
        super().bind(buffer)

    def on_full(self) -> object:
        if self.deferred:
            self._retire()
        return None

    def on_region_start(self, free_regions: int) -> None:
        if self.deferred and free_regions < self.reserve:
            self._retire()

    def _retire(self) -> None:
        with self._lock:
            # At most `reserve` regions in flight: the memory bound. With
            # none in flight (a full buffer's first retirement) this always
            # retires, since reserve >= 1.
            if self._in_flight >= self.reserve:
                return
            self._in_flight += 1
        # ORDER: unpublish first (retire_oldest), then take the cookie and
        # queue the reclaim: the grace period of both starts after the
        # region's TBs left every index, so only vCPUs that found them before
        # can still hold them.
        retired = self.buffer.retire_oldest()
        if retired is None:
            with self._lock:
                self._in_flight -= 1
                self._reclaimed.notify_all()
            return
        try:
            cookie = self.domain.start_poll()
        except BaseException:
            with self._lock:
                self._in_flight -= 1
                self._reclaimed.notify_all()
            raise
        with self._lock:
            self._retirements += 1
            self._retired.add(retired)
            self._queued[retired] = cookie
            # A translator waiting for reclaims in flight may expedite this one.
            self._reclaimed.notify_all()
        self.domain.call_rcu(self._reclaim, *retired)

    def _reclaim(self, region: int, generation: int) -> None:
        # A grace period after the region was unpublished: no vCPU can hold
        # one of its TBs any more. Runs on the domain's worker (the queued
        # reclaim) or on a translator that expedited it, whichever comes
        # first; the other finds the region gone and does nothing.
        key = (region, generation)
        with self._lock:
            if key not in self._retired:
                return
            self._retired.discard(key)
            self._queued.pop(key, None)
            if self.buffer.reclaim(region, generation):
                self._reclaims += 1
            self._in_flight -= 1
            self._reclaimed.notify_all()

    def wait_for_space(self, token: object) -> None:
        # The caller must wait anyway, so it does the work itself: it drives
        # the grace period on its own thread and reclaims the region here.
        # Waking the worker and waiting for it to wake us back would cost
        # two interpreter handoffs, each up to a switch interval under a GIL
        # while the other vCPUs run.
        start = time.perf_counter_ns()
        with self._lock:
            queued = next(iter(self._queued.items()), None)
            retire_here = queued is None and self._in_flight < self.reserve
            if retire_here:
                self._in_flight += 1
        if queued is not None:
            # Expedite the oldest queued reclaim: its cookie's grace period
            # (shared with the worker if it is already driving one).
            (region, generation), cookie = queued
            self.domain.cond_synchronize(cookie)
            self._reclaim(region, generation)
        elif retire_here:
            retired = self.buffer.retire_oldest()
            if retired is None:  # nothing to retire: another thread made room
                with self._lock:
                    self._in_flight -= 1
                    self._reclaimed.notify_all()
            else:
                with self._lock:
                    self._retirements += 1
                    self._retired.add(retired)
                # ORDER: unpublish, then a full grace period, then reclaim: the
                # whole correctness argument of this policy.
                self.domain.synchronize()
                self._reclaim(*retired)
        else:
            # Other translators are reclaiming on their own threads: wait for
            # one of them rather than for a grace period of no use. The caller
            # is outside its read side.
            with self._lock:
                while self._in_flight >= self.reserve and not self._queued:
                    self._reclaimed.wait()
        self._waited(start)

    def vcpu_hooks(self) -> VcpuHooks:
        reader = self.domain.register_thread()
        if self.domain.flavor == "qsbr":
            reader.offline()  # online only between enter and leave
            return VcpuHooks(reader.online, reader.offline, reader.quiescent_state)

        # relock() at a boundary is a quiescent point: TBs found before it
        # are not used after it.
        return VcpuHooks(reader.lock, reader.unlock, reader.relock)

    def statistics(self) -> PolicyStatistics:
        with self._lock:
            retirements, reclaims = self._retirements, self._reclaims
            waits, invalidated = self._waits, self._invalidated
        domain = self.domain.statistics()
        return PolicyStatistics(
            policy=self.name,
            flushes=0,
            retirements=retirements,
            reclaims=reclaims,
            invalidated=invalidated,
            translator_waits=waits,
            wait=self._wait_times.percentiles(),
            flush_latency=Percentiles.of(()),
            gp_latency=domain.gp_latency,
            stepped_aside=domain.handoff_time,
        )

    def close(self) -> None:
        if self._owns_domain:
            self.domain.close()


# ----------------------------------------------------------------------
# The registry: policies by the names the emulator and rcu-compare know.

#: What makes a policy for a machine: called with the machine's world.
PolicyFactory = Callable[[quiescent.World], RetirePolicy]

POLICIES: dict[str, PolicyFactory] = {
    "rcu": lambda world: RcuRetire(flavor="epoch"),
    "rcu-qsbr": lambda world: RcuRetire(flavor="qsbr"),
    "rcu-sync": lambda world: RcuRetire(deferred=False),
    "rcu-batch": lambda world: RcuRetire(reserve=BATCH_RESERVE),
    "flush": StopTheWorldFlush,
}


def make_policy(policy: str | PolicyFactory, world: quiescent.World) -> RetirePolicy:
    """A policy by name (``rcu``, ``rcu-qsbr``, ``flush``, ``module:Class``) or factory."""
    made: object
    if not isinstance(policy, str) and not callable(policy):
        raise TypeError(f"policy must be a name or a factory, not {type(policy).__name__}")
    if callable(policy):
        made = policy(world)
    elif isinstance(policy, str) and policy in POLICIES:
        made = POLICIES[policy](world)
    elif isinstance(policy, str) and ":" in policy:
        made = _import_policy(policy, world)
    else:
        raise ValueError(
            f"unknown policy {policy!r}: expected one of {sorted(POLICIES)} or 'module:Class'"
        )
    if not isinstance(made, RetirePolicy):
        raise TypeError(f"{policy!r} did not make a RetirePolicy (got {type(made).__name__})")
    return made


def _import_policy(spec: str, world: quiescent.World) -> object:
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import policy {spec!r}: {exc}") from None
    if not callable(factory):
        raise ValueError(
            f"policy {spec!r} is a {type(factory).__name__}, not a class or factory "
            f"(expected 'module:Class')"
        )
    return factory(world)
