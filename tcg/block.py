"""TranslationBlock: one guest block's translated code, and the reclamation oracle.

Why a generation
----------------
A translation block (TB) lives in a region of the translation buffer. When a
policy reclaims the region, its bytes are overwritten and reused for other
blocks. A vCPU that still executes a TB from a reclaimed region runs code
that no longer exists: in QEMU, a crash or silent corruption
(CVE-2020-24165 was exactly this). Here every region carries a generation
number, bumped when the region is reclaimed, and every TB remembers the
generation of its region when it was allocated. Executing a TB whose
generation is stale raises :class:`UseAfterReclaimError`: the oracle that
every policy test and every emulator run checks. It costs one list index and
one comparison per executed block.

Links
-----
A TB's *direct exits* (``exits``: the constant targets of its closing branch
or jump, or the pc after it) can each hold a link to the TB translated for
that target, once both exist: QEMU's ``goto_tb``, where a block's exit jumps
straight into its successor. ``links`` maps an exit's pc to the successor;
``incoming`` lists the TBs whose links lead here, so that unlinking a TB can
remove every path into it (QEMU's ``tb_jmp_unlink``). Both are written only
by the buffer, under its lock (:meth:`tcg.buffer.TranslationBuffer.link`);
a vCPU reads ``links`` without a lock, one ``dict.get`` per block.

Immutability
------------
Everything but ``invalid``, ``links`` and ``incoming`` is fixed once the TB
is published. ``invalid`` (QEMU's ``CF_INVALID``) goes from False to True
once, when the TB is unlinked; it is what keeps a vCPU from following a
stale entry of its jump cache (see :mod:`tcg.buffer`).
"""

from __future__ import annotations

from collections.abc import Callable

from tcg.errors import UseAfterReclaimError

__all__ = ["TranslationBlock", "UseAfterReclaimError"]

#: What a translated block does: run on a vCPU state, return the next guest pc.
BlockFunction = Callable[..., int]


class TranslationBlock:
    """The translated code of one guest block, and where it lives in the buffer.

    ``key`` is the index key (``pc | flags << 32``); ``[pc, end)`` the guest
    bytes it was translated from; ``region``, ``offset`` and ``size`` its
    host-code bytes; ``generation`` its region's generation at allocation;
    ``exits`` the guest pcs its direct exits lead to (see Links above).
    """

    __slots__ = (
        "end",
        "exits",
        "flags",
        "fn",
        "generation",
        "incoming",
        "invalid",
        "key",
        "links",
        "offset",
        "pc",
        "region",
        "size",
    )

    def __init__(
        self,
        pc: int,
        end: int,
        flags: int,
        fn: BlockFunction,
        region: int,
        generation: int,
        offset: int,
        size: int,
        exits: tuple[int, ...] = (),
    ) -> None:
        self.pc = pc
        self.end = end
        self.flags = flags
        self.key = pc | flags << 32
        self.fn = fn
        self.region = region
        self.generation = generation
        self.offset = offset
        self.size = size
        self.invalid = False
        self.exits = exits
        #: exit pc -> the TB it leads to (written under the buffer's lock).
        self.links: dict[int, TranslationBlock] = {}
        #: the TBs whose ``links`` lead here (an insertion-ordered set; same lock).
        self.incoming: dict[TranslationBlock, None] = {}

    def check(self, generations: list[int]) -> None:
        """Raise :class:`UseAfterReclaimError` if this TB's region was reclaimed."""
        if generations[self.region] != self.generation:
            raise UseAfterReclaimError(
                f"{self!r} executed after its region was reclaimed "
                f"(region generation is now {generations[self.region]})"
            )

    def __repr__(self) -> str:
        state = " invalid" if self.invalid else ""
        return (
            f"<TB pc={self.pc:#x}..{self.end:#x} flags={self.flags} region={self.region} "
            f"gen={self.generation} {self.size}B{state}>"
        )
