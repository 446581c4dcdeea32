"""TranslationBuffer: host-code regions, the TB index, jump caches and the page map.

What it models
--------------
QEMU keeps translated code in one big buffer cut into regions
(tcg/region.c); threads fill regions one after the other, and when none is
left the buffer is full and something must be reclaimed. Here the buffer is a
real ``bytearray``: every TB's bytes (its compiled function's bytecode and
constants) are copied into its region, so memory pressure follows the guest
code. Reclaiming a region overwrites it with a poison pattern and bumps its
generation, which is what the :class:`~tcg.block.TranslationBlock` oracle
checks.

The grace-period check
----------------------
The generation oracle catches a vCPU that *runs* reclaimed code, which an
unsafe policy causes only when a vCPU happens to be inside the region at the
wrong moment. The buffer also checks the cause, every time: each vCPU carries
a :class:`VcpuMark` whose ``seq`` is odd while it is inside guest code
between two quiescent points (TB boundaries). Retiring a region records the marks that were
odd; reclaiming it requires each of them to have moved since (every vCPU
that could hold one of the region's TBs has passed a quiescent point), and a
flush requires every mark to be even (no vCPU inside guest code). A reclaim
that breaks this is a violation whether or not a vCPU ran the code: it is
recorded (:meth:`TranslationBuffer.violations`) and reported to
``on_violation``. Only marks are checked: a cpu loop without one is trusted.

The buffer owns the mechanisms (allocate, publish, unlink, retire a region,
reclaim a region, flush everything); a :class:`~tcg.policies.RetirePolicy`
decides when and how safely reclamation happens.

Region states (a small integer per region, changed under ``_lock``)::

    FREE --take--> CURRENT --full--> FULL --retire--> RETIRED --reclaim--> FREE
                                        \\______________ flush ______________/

``CURRENT`` is the region being filled. ``RETIRED`` regions are unpublished
(no index, page map or jump-cache entry leads to their TBs) but not yet
reclaimed: a vCPU that found one of their TBs earlier may still run it.

Readers and writers
-------------------
vCPUs read the index (a dict), their own jump cache and TBs' ``links``
without locks. Writers (translators, policies, the cpu loop making a link)
change them under ``_lock``. Unlinking a TB follows one order, relied on by
:meth:`lookup` and :meth:`link`::

    1. tb.invalid = True          (jump-cache hits check it; link() refuses it)
    2. remove from the index and the page map
    3. remove every link into it and out of it (QEMU's tb_jmp_unlink)
    4. clear jump-cache entries that hold it

A vCPU that read the TB from the index before step 2 may store it in its jump
cache after step 4; its next hit sees ``invalid`` and misses. A vCPU that
read a link to the TB before step 3 holds it as it would hold one from the
index. So after an unlink, a vCPU reaches the TB only through a reference it
obtained before, which the policy's grace period (or exclusive section)
covers: the cpu loop follows a link only from the TB it just ran, inside the
same stretch of its read side, so the reference is never older than the
vCPU's last quiescent point.

Links
-----
A link is made by :meth:`link`, under ``_lock``, only between two TBs that
are both published (neither ``invalid``), for one of the source's direct
exits. A dict store publishes it: the successor TB was fully built and
published before, and a vCPU's ``links.get`` sees either no entry or the
whole TB (a dict's reads and writes are atomic under the GIL; in
free-threaded CPython writes take the dict's lock and reads, lock-free,
still return an entry that was stored whole). Because every unlink removes
both directions, no link ever leads into a retired region; the buffer checks
it at every reclaim and flush (a link into reclaimed code is a violation, as
a vCPU mark that did not move is).

Lock order: an exclusive section (quiescent) or an rcu callback may take
``_lock``; code holding ``_lock`` never waits for either, never calls the
policy and never runs guest code.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sortedcontainers import SortedDict

from tcg.block import BlockFunction, TranslationBlock
from tcg.errors import BlockTooLargeError, BufferFullError
from tcg.policies import RetirePolicy

__all__ = [
    "BlockTooLargeError",
    "BufferFullError",
    "BufferStatistics",
    "JumpCache",
    "LinkStatistics",
    "TranslationBuffer",
    "VcpuMark",
]

FREE, CURRENT, FULL, RETIRED = 0, 1, 2, 3
_STATE_NAMES = ("free", "current", "full", "retired")

#: Entries of a per-vCPU jump cache (QEMU's TB_JMP_CACHE_SIZE).
JUMP_CACHE_BITS = 12
JUMP_CACHE_SIZE = 1 << JUMP_CACHE_BITS
_JC_MASK = JUMP_CACHE_SIZE - 1

PAGE_BITS = 12
#: Guest addresses are 32-bit: a TB's key is ``pc | flags << 32``.
ADDRESS_SPACE = 1 << 32
_POISON = b"\xde\xad\xbe\xef"

#: A vCPU's jump cache: a direct-mapped list indexed by ``(pc >> 2) & mask``.
JumpCache = list[TranslationBlock | None]


def _check_range(pc: int, end: int) -> None:
    for name, value in (("pc", pc), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= pc < end <= ADDRESS_SPACE:
        raise ValueError(
            f"a TB covers [pc, end) with 0 <= pc < end <= 2**32, not [{pc:#x}, {end:#x})"
        )


class VcpuMark:
    """Where one vCPU is with respect to guest code, for the grace-period check.

    Its cpu loop (the only writer of ``seq``) adds 1 right after each of
    the policy's ``enter`` and ``boundary`` hooks, and 1 right before each
    ``boundary`` and ``leave``. So ``seq`` is odd exactly from the end of a
    quiescent point to the start of the next one: whenever the vCPU may hold
    a TB, and only inside the policy's read side. The orders matter: a seq
    that is odd during a hook would report a vCPU that a grace period
    rightly did not wait for.
    """

    __slots__ = ("name", "seq")

    def __init__(self, name: str) -> None:
        self.name = name
        self.seq = 0

    def __repr__(self) -> str:
        where = "in guest code" if self.seq & 1 else "outside guest code"
        return f"<VcpuMark {self.name} {where}, seq={self.seq}>"


@dataclass(frozen=True, slots=True)
class LinkStatistics:
    """Block chaining: links between TBs made, followed and removed."""

    #: Links made (:meth:`TranslationBuffer.link`), and those alive now.
    made: int
    live: int
    #: Blocks entered through a link instead of a lookup, as the cpu loops report them.
    followed: int
    #: Links removed because a TB was unlinked by retiring its region, by a
    #: flush, or by an invalidation (self-modifying code, a replaced TB).
    removed_on_retire: int
    removed_on_flush: int
    removed_on_invalidate: int


@dataclass(frozen=True, slots=True)
class BufferStatistics:
    """A snapshot of a translation buffer's counters (bytes are host-code bytes)."""

    #: Bytes of host code the buffer holds.
    capacity: int
    #: How many equal regions they are cut into.
    regions: int
    #: Bytes per region.
    region_size: int
    #: TBs published.
    translations: int
    #: Of those, TBs published for a key (pc, flags) published before.
    retranslations: int
    #: TBs unlinked one by one (guest stores to their code, or a stale TB
    #: replaced by a translation of its pc with another range).
    invalidations: int
    #: Bytes of published TBs.
    live_bytes: int
    #: Bytes unpublished whose space cannot be reused yet (retired regions not
    #: reclaimed, invalidated TBs).
    retired_bytes: int
    #: The most ``live_bytes`` ever were.
    peak_live_bytes: int
    #: The most ``retired_bytes`` ever were.
    peak_retired_bytes: int
    #: Published TBs.
    tbs: int
    #: Regions free to fill.
    free_regions: int
    #: (seconds since the buffer was created, live bytes, retired bytes) samples
    timeline: tuple[tuple[float, int, int], ...]
    links: LinkStatistics


class TranslationBuffer:
    """Translated code for every vCPU, retired by ``policy``.

    ``capacity`` bytes of host code cut into ``regions`` equal regions. A TB
    must fit in one region. ``watch``, if given, is a per-guest-page
    ``bytearray``; the buffer sets bit 0 of a page's byte while TBs
    translated from that page exist (so that guest stores there can be
    caught cheaply) and clears it when the last one goes. ``on_violation``,
    if given, is called with the message of every grace-period violation
    (see the module's documentation), on the thread that reclaimed, without
    the buffer's lock held.
    """

    def __init__(
        self,
        capacity: int,
        regions: int,
        policy: RetirePolicy,
        *,
        watch: bytearray | None = None,
        on_violation: Callable[[str], None] | None = None,
    ) -> None:
        for name, value in (("capacity", capacity), ("regions", regions)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if regions < 1:
            raise ValueError(f"regions must be >= 1, not {regions}")
        if capacity < regions:
            raise ValueError(f"capacity {capacity} is smaller than {regions} regions of 1 byte")
        if not isinstance(policy, RetirePolicy):
            raise TypeError(f"policy must be a RetirePolicy, not {type(policy).__name__}")
        if watch is not None and not isinstance(watch, bytearray):
            raise TypeError("watch must be a bytearray or None")
        if on_violation is not None and not callable(on_violation):
            raise TypeError("on_violation must be callable or None")
        self.capacity = capacity
        self.regions = regions
        self.region_size = capacity // regions
        self.code = bytearray(capacity)
        self.policy = policy
        self.watch = watch
        # Read by vCPUs without a lock (one list index per executed TB).
        self.generations = [0] * regions
        # Guards every field below and the writes to the index, the jump
        # caches, generations and the watch bits (vCPUs read those without
        # it). Lock order: the innermost lock but the owner's leaves: taken
        # inside exclusive sections, rcu callbacks, the policy's lock and a
        # machine's reservation lock; while it is held nothing else is taken
        # (no policy call, no on_violation, no guest code).
        self._lock = threading.Lock()
        self._state = [FREE] * regions
        self._used = [0] * regions  # allocation offset within each region
        self._region_tbs: list[list[TranslationBlock]] = [[] for _ in range(regions)]
        self._retired_in = [0] * regions  # unlinked bytes per region, not yet reclaimed
        self._full_order: collections.deque[int] = collections.deque()  # oldest first
        self._current = -1
        self._index: dict[int, TranslationBlock] = {}
        self._pages: SortedDict = SortedDict()  # page -> {tb: None} (insertion-ordered set)
        self._jump_caches: list[JumpCache] = []
        self._marks: list[VcpuMark] = []
        # Per region: the marks that were odd when it was retired, with their seq.
        self._holders: list[list[tuple[VcpuMark, int]]] = [[] for _ in range(regions)]
        self._violations: list[str] = []
        self._on_violation = on_violation
        self._seen: set[int] = set()  # keys translated at least once
        self._translations = 0
        self._retranslations = 0
        self._invalidations = 0
        self._links = 0  # alive now
        self._links_made = 0
        self._links_followed = 0
        self._links_removed = {"retire": 0, "flush": 0, "invalidate": 0}
        self._live = 0
        self._retired = 0
        self._peak_live = 0
        self._peak_retired = 0
        self._born = time.perf_counter()
        self._timeline: collections.deque[tuple[float, int, int]] = collections.deque(maxlen=4096)
        policy.bind(self)

    def __repr__(self) -> str:
        return (
            f"<TranslationBuffer {self.capacity} B in {self.regions} regions, "
            f"policy={self.policy.name}, {len(self._index)} TBs>"
        )

    # ------------------------------------------------------------------
    # vCPU side: lookups without locks

    def new_jump_cache(self) -> JumpCache:
        """A fresh jump cache for one vCPU; the buffer clears stale entries in it."""
        cache: JumpCache = [None] * JUMP_CACHE_SIZE
        with self._lock:
            self._jump_caches.append(cache)
        return cache

    def drop_jump_cache(self, cache: JumpCache) -> None:
        """Forget a vCPU's jump cache (the vCPU is gone)."""
        with self._lock:
            self._jump_caches = [c for c in self._jump_caches if c is not cache]

    def new_vcpu_mark(self, name: str) -> VcpuMark:
        """A :class:`VcpuMark` for one vCPU, checked at every reclaim and flush."""
        mark = VcpuMark(name)
        with self._lock:
            self._marks.append(mark)
        return mark

    def drop_vcpu_mark(self, mark: VcpuMark) -> None:
        """Forget a vCPU's mark (the vCPU is gone, outside guest code)."""
        with self._lock:
            self._marks = [m for m in self._marks if m is not mark]

    def violations(self) -> list[str]:
        """The grace-period violations seen so far, oldest first."""
        with self._lock:
            return list(self._violations)

    def lookup(self, cache: JumpCache, pc: int, flags: int = 0) -> TranslationBlock | None:
        """The published TB for ``pc``, through ``cache`` then the index; None if absent.

        Call inside the policy's read side (a read section, or ``running()``).
        ``cache`` must come from :meth:`new_jump_cache`.
        """
        slot = (pc >> 2) & _JC_MASK
        try:
            tb = cache[slot]  # free unless it raises: no check on the hot path
        except (LookupError, TypeError):
            raise TypeError(
                f"cache must be a jump cache from new_jump_cache(), not {type(cache).__name__}"
            ) from None
        if tb is not None and tb.pc == pc and tb.flags == flags and not tb.invalid:
            return tb
        tb = self._index.get(pc | flags << 32)
        if tb is not None:
            cache[slot] = tb
        return tb

    # ------------------------------------------------------------------
    # Translator side

    def add(
        self,
        pc: int,
        end: int,
        fn: BlockFunction,
        code: bytes,
        flags: int = 0,
        exits: tuple[int, ...] = (),
    ) -> TranslationBlock:
        """Allocate room for ``code``, copy it in and publish a TB for ``[pc, end)``.

        ``pc`` and ``end`` are guest addresses, ``0 <= pc < end <= 2**32``;
        ``fn`` is the block's callable; ``code`` its host bytes (at least one,
        at most a region: :class:`~tcg.errors.BlockTooLargeError` otherwise);
        ``flags`` (``>= 0``) is part of the key. ``exits`` are the guest
        pcs of the block's direct exits, the ones :meth:`link` may chain.

        Raises :class:`BufferFullError` when no region is free, without
        telling the policy: the caller asks it for its token (``on_full``),
        waits for space outside its read side, then retries.

        One TB per key is published. If one for the same key and the same
        ``[pc, end)`` is already published (another thread translated the
        same block first), that one is returned and ``code`` is dropped. A
        published TB for the same key with another range is stale: it is
        unlinked, as by :meth:`invalidate`, and the new one replaces it.
        """
        _check_range(pc, end)
        if isinstance(flags, bool) or not isinstance(flags, int) or flags < 0:
            raise ValueError(f"flags must be an int >= 0, not {flags!r}")
        if not callable(fn):
            raise TypeError(f"fn must be callable, not {type(fn).__name__}")
        if not isinstance(code, bytes | bytearray | memoryview):
            raise TypeError(f"code must be bytes, not {type(code).__name__}")
        if not isinstance(exits, tuple) or not all(
            isinstance(x, int) and not isinstance(x, bool) and 0 <= x < ADDRESS_SPACE for x in exits
        ):
            raise TypeError(f"exits must be a tuple of 32-bit guest pcs, not {exits!r}")
        size = len(code)
        if size > self.region_size:
            raise BlockTooLargeError(size, self.region_size)
        if size == 0:
            raise ValueError("a TB needs at least one byte of code")
        key = pc | flags << 32
        free_left = -1  # >= 0 once this call started filling a fresh region
        replaced: list[TranslationBlock] = []
        with self._lock:
            existing = self._index.get(key)
            if existing is not None:
                if existing.end == end:
                    return existing
                replaced.append(existing)
                self._unlink(replaced, "invalidate")
                self._retired_in[existing.region] += existing.size
                self._invalidations += 1
            region = self._current
            if region < 0 or self._used[region] + size > self.region_size:
                region = self._next_region()
                free_left = self._state.count(FREE)
            if region >= 0:
                offset = region * self.region_size + self._used[region]
                self._used[region] += size
                # ORDER: the bytes are in place before the TB is published.
                self.code[offset : offset + size] = code
                tb = TranslationBlock(
                    pc, end, flags, fn, region, self.generations[region], offset, size, exits
                )
                self._publish(tb)
        # The policy is called without the lock (it may queue callbacks or
        # take other locks that are ordered before this one).
        if replaced:
            self.policy.on_invalidate(replaced)
        if region < 0:
            raise BufferFullError
        if free_left >= 0:
            self.policy.on_region_start(free_left)
        return tb

    def _next_region(self) -> int:
        # Lock held. Close the current region and take a free one (-1: none).
        current = self._current
        if current >= 0:
            self._state[current] = FULL
            self._full_order.append(current)
            self._current = -1
        for region, state in enumerate(self._state):
            if state == FREE:
                self._state[region] = CURRENT
                self._used[region] = 0
                self._current = region
                return region
        return -1

    def _publish(self, tb: TranslationBlock) -> None:
        # Lock held.
        self._region_tbs[tb.region].append(tb)
        self._index[tb.key] = tb
        for page in range(tb.pc >> PAGE_BITS, ((tb.end - 1) >> PAGE_BITS) + 1):
            tbs = self._pages.get(page)
            if tbs is None:
                self._pages[page] = {tb: None}
                if self.watch is not None and page < len(self.watch):
                    self.watch[page] |= 1
            else:
                tbs[tb] = None
        self._translations += 1
        if tb.key in self._seen:
            self._retranslations += 1
        else:
            self._seen.add(tb.key)
        self._live += tb.size
        if self._live > self._peak_live:
            self._peak_live = self._live

    # ------------------------------------------------------------------
    # Unlinking, retiring, reclaiming, flushing

    def invalidate(self, start: int, end: int) -> list[TranslationBlock]:
        """Unlink every TB translated from guest bytes overlapping ``[start, end)``.

        Their bytes stay until their region is reclaimed (they count as
        retired). Returns the TBs unlinked; the policy is told. An empty
        range (``end <= start``) unlinks nothing.
        """
        for name, value in (("start", start), ("end", end)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if end <= start:
            return []
        with self._lock:
            found: dict[TranslationBlock, None] = {}
            for page in self._pages.irange(start >> PAGE_BITS, (end - 1) >> PAGE_BITS):
                for tb in self._pages[page]:
                    if tb.pc < end and tb.end > start:
                        found[tb] = None
            tbs = list(found)
            self._unlink(tbs, "invalidate")
            for tb in tbs:
                self._retired_in[tb.region] += tb.size
            self._invalidations += len(tbs)
            self._sample()
        if tbs:
            self.policy.on_invalidate(tbs)
        return tbs

    def _unlink(self, tbs: Iterable[TranslationBlock], cause: str) -> None:
        # Lock held. The four steps in the order the module docstring gives.
        tbs = [tb for tb in tbs if not tb.invalid]
        for tb in tbs:
            tb.invalid = True  # ORDER: 1, before the TB leaves the index
        for tb in tbs:
            if self._index.get(tb.key) is tb:
                del self._index[tb.key]  # ORDER: 2
            for page in range(tb.pc >> PAGE_BITS, ((tb.end - 1) >> PAGE_BITS) + 1):
                tbs_on_page = self._pages.get(page)
                if tbs_on_page is not None:
                    tbs_on_page.pop(tb, None)
                    if not tbs_on_page:
                        del self._pages[page]
                        if self.watch is not None and page < len(self.watch):
                            self.watch[page] &= ~1
            self._live -= tb.size
            self._retired += tb.size
        if self._retired > self._peak_retired:
            self._peak_retired = self._retired
        self._unlink_links(tbs, cause)  # ORDER: 3
        for cache in self._jump_caches:  # ORDER: 4
            for tb in tbs:
                slot = (tb.pc >> 2) & _JC_MASK
                if cache[slot] is tb:
                    cache[slot] = None

    def _unlink_links(self, tbs: list[TranslationBlock], cause: str) -> None:
        # Lock held; every TB of ``tbs`` is invalid already (step 1), so no
        # new link can be made into or out of it.
        removed = 0
        for tb in tbs:
            for src in tb.incoming:
                if src.links.get(tb.pc) is tb:
                    del src.links[tb.pc]
                    removed += 1
            tb.incoming.clear()
            for dst in tb.links.values():
                if dst.incoming.pop(tb, 0) is None:
                    removed += 1
            tb.links.clear()
        self._links -= removed
        self._links_removed[cause] += removed

    def link(self, src: TranslationBlock, dst: TranslationBlock) -> bool:
        """Chain ``src``'s direct exit at ``dst.pc`` to ``dst``; True if the link is made.

        The cpu loop calls it after it ran ``src`` and found (or translated)
        ``dst`` at the pc ``src`` returned, inside its read side. Nothing is
        linked (False) unless ``dst.pc`` is one of ``src.exits``, both TBs
        have the same flags, both are still published, and that exit has no
        link yet: a TB being unlinked never gains one.
        """
        if not isinstance(src, TranslationBlock) or not isinstance(dst, TranslationBlock):
            raise TypeError("link() takes two TranslationBlocks")
        if dst.pc not in src.exits or dst.flags != src.flags:
            return False
        with self._lock:
            if src.invalid or dst.invalid or dst.pc in src.links:
                return False
            # ORDER: dst was published (index) before; this store publishes
            # the edge to vCPUs reading src.links without the lock.
            src.links[dst.pc] = dst
            dst.incoming[src] = None
            self._links += 1
            self._links_made += 1
            return True

    def count_followed(self, n: int) -> None:
        """Add ``n`` blocks entered through a link (a cpu loop reports them in batches)."""
        if n:
            with self._lock:
                self._links_followed += n

    def retire_oldest(self) -> tuple[int, int] | None:
        """Unpublish the oldest full region; return ``(region, generation)`` or None.

        If no region is full, the current one (if it holds TBs) is retired.
        The caller must reclaim it (:meth:`reclaim`) once no vCPU can hold
        one of its TBs.
        """
        with self._lock:
            if self._full_order:
                region = self._full_order.popleft()
            elif self._current >= 0 and self._used[self._current]:
                region = self._current
                self._current = -1
            else:
                return None
            self._state[region] = RETIRED
            tbs = self._region_tbs[region]
            live = [tb for tb in tbs if not tb.invalid]
            self._unlink(live, "retire")
            # ORDER: after the unlink: a vCPU outside guest code now can no
            # longer find the region's TBs; those inside may hold one.
            self._holders[region] = [(m, m.seq) for m in self._marks if m.seq & 1]
            self._retired_in[region] += sum(tb.size for tb in live)
            self._sample()
            return region, self.generations[region]

    def reclaim(self, region: int, generation: int) -> bool:
        """Poison a retired region, bump its generation and make it free.

        Returns False (and does nothing) if the region was reclaimed another
        way meanwhile, e.g. by a flush. ``(region, generation)`` is what
        :meth:`retire_oldest` returned.
        """
        for name, value in (("region", region), ("generation", generation)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if not 0 <= region < self.regions:
            raise ValueError(f"region must be in [0, {self.regions}), not {region}")
        with self._lock:
            if self._state[region] != RETIRED or self.generations[region] != generation:
                return False
            found = [
                f"region {region} reclaimed while {mark.name} may still hold one of its TBs "
                f"(no quiescent point since the region was retired)"
                for mark, seq in self._holders[region]
                if mark.seq == seq
            ]
            found += self._links_into([region])
            self._wipe(region)
            self._sample()
        self._report(found)
        return True

    def _report(self, found: list[str]) -> None:
        # Without the lock: on_violation may take the caller's locks.
        if not found:
            return
        with self._lock:
            self._violations.extend(found)
        if self._on_violation is not None:
            for message in found:
                self._on_violation(message)

    def _links_into(self, regions: Iterable[int]) -> list[str]:
        # Lock held, before the regions are wiped: a link still leading
        # into one of their TBs is a path into reclaimed code; one still
        # leading out of one keeps a live TB's ``incoming`` pointing at it.
        found = []
        for region in regions:
            for tb in self._region_tbs[region]:
                if tb.incoming:
                    found.append(
                        f"region {region} reclaimed while {len(tb.incoming)} link(s) "
                        f"still lead into {tb!r}"
                    )
                if tb.links:
                    found.append(
                        f"region {region} reclaimed while {tb!r} still links to "
                        f"{len(tb.links)} TB(s)"
                    )
        return found

    def _wipe(self, region: int) -> None:
        # Lock held. The region's TBs are all unlinked.
        start = region * self.region_size
        size = self.region_size
        self.code[start : start + size] = (_POISON * (size // 4 + 1))[:size]
        # ORDER: the generation bump is the oracle: after it, running any of
        # the region's TBs raises UseAfterReclaimError.
        self.generations[region] += 1
        self._retired -= self._retired_in[region]
        self._retired_in[region] = 0
        self._region_tbs[region] = []
        self._holders[region] = []
        self._used[region] = 0
        self._state[region] = FREE

    def flush(self) -> int:
        """Unlink every TB and reclaim every region at once; returns TBs dropped.

        Only safe while no vCPU can hold a TB: inside an exclusive section.
        """
        with self._lock:
            found = [
                f"flush while {mark.name} is inside guest code (outside an exclusive section?)"
                for mark in self._marks
                if mark.seq & 1
            ]
            live = list(self._index.values())
            self._unlink(live, "flush")
            found += self._links_into(range(self.regions))
            for region in range(self.regions):
                self._retired_in[region] = sum(tb.size for tb in self._region_tbs[region])
                self._wipe(region)
            self._full_order.clear()
            self._current = -1
            for cache in self._jump_caches:
                cache[:] = [None] * JUMP_CACHE_SIZE
            self._sample()
        self._report(found)
        return len(live)

    def mark_page(self, page: int, bit: int, on: bool) -> None:
        """Set or clear ``bit`` of ``page`` in ``watch`` for a user of the array.

        Bit 0 is the buffer's own (pages holding TBs). Other users (an LR
        reservation, say) change their bits through this method so that
        every read-modify-write of the array happens under one lock.
        """
        if bit == 1 or bit & (bit - 1) or bit <= 0 or bit > 0x80:
            raise ValueError(f"bit must be a single bit other than 1, not {bit!r}")
        watch = self.watch
        if watch is None:
            raise RuntimeError("this buffer has no watch array")
        with self._lock:
            if on:
                watch[page] |= bit
            else:
                watch[page] &= ~bit

    def _sample(self) -> None:
        # Lock held.
        self._timeline.append((time.perf_counter() - self._born, self._live, self._retired))

    # ------------------------------------------------------------------
    # Introspection

    def region_states(self) -> list[str]:
        """Each region's state name, for tests and reports."""
        with self._lock:
            return [_STATE_NAMES[s] for s in self._state]

    def tbs(self) -> list[TranslationBlock]:
        """The published TBs."""
        with self._lock:
            return list(self._index.values())

    def occupancy(self) -> tuple[int, int]:
        """``(live_bytes, retired_bytes)``: code published; unpublished, not yet reclaimed.

        The two figures of :meth:`statistics`, read together under the lock
        without building a snapshot: cheap enough for a sampler.
        """
        with self._lock:
            return self._live, self._retired

    def statistics(self) -> BufferStatistics:
        """A frozen snapshot of the buffer's counters."""
        with self._lock:
            return BufferStatistics(
                capacity=self.capacity,
                regions=self.regions,
                region_size=self.region_size,
                translations=self._translations,
                retranslations=self._retranslations,
                invalidations=self._invalidations,
                live_bytes=self._live,
                retired_bytes=self._retired,
                peak_live_bytes=self._peak_live,
                peak_retired_bytes=self._peak_retired,
                tbs=len(self._index),
                free_regions=self._state.count(FREE),
                timeline=tuple(self._timeline),
                links=LinkStatistics(
                    made=self._links_made,
                    live=self._links,
                    followed=self._links_followed,
                    removed_on_retire=self._links_removed["retire"],
                    removed_on_flush=self._links_removed["flush"],
                    removed_on_invalidate=self._links_removed["invalidate"],
                ),
            )
