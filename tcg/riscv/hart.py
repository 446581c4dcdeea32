"""The architectural state of one hart, shared by interpreter and translated code.

A hart is what a vCPU thread executes: 32 integer registers, a pc, a retired
instruction count and an LR reservation. Both execution engines work on the
same object: the reference interpreter (:mod:`tcg.riscv.interp`) one
instruction at a time, translated blocks (:mod:`tcg.riscv.translate`) a basic
block at a time. They agree on its layout, which is why it is a plain class
with ``__slots__`` and public attributes rather than something clever: a
translated block reads ``h.x`` once on entry and writes it back once on exit,
and slot access is the cheapest attribute access CPython has.

Representation invariants (relied on by both engines):

* ``x`` is a list of 32 ints, each in ``[0, 2**32)`` (registers hold
  *unsigned* values; signed operations reinterpret them). ``x[0]`` is 0 and
  is never written: writes to ``x0`` are dropped at decode or translation time.
* ``pc`` is the address of the next instruction to execute.
* ``mem``, ``m16`` and ``m32`` are the same guest RAM as bytes, as unsigned
  16-bit and as unsigned 32-bit words (``memoryview`` casts, host byte
  order; the translator refuses to run on a big-endian host).
* ``watch`` has one byte per 4 KiB guest page; after every guest store to a
  page whose byte is non-zero the engines call ``h.on_store(addr, size)``.
  The machine sets it for pages holding translated code (self-modifying code)
  and for LR-reserved words, and overrides :meth:`Hart.on_store`. Harts of one
  machine share one ``watch`` array and one RAM.

Threads: a hart belongs to the one thread that runs it; only that thread
touches ``x``, ``pc`` and ``instret``, and ``on_store`` runs on it. The RAM
and ``watch`` are shared. Races between harts on guest memory are the
guest's business (an aligned word access is one ``memoryview`` element
access, never torn into bytes by the front end); atomicity of LR/SC and AMOs
is the caller's, which runs them inside an exclusive section. Another hart's
``reservation`` is cleared by the machine's store hook, under its own lock.
"""

from __future__ import annotations

from tcg.riscv.elf import PAGE_SIZE

__all__ = ["STACK_SIZE", "Hart"]

#: Each hart's stack: hart ``i`` starts with ``sp = RAM top - i * STACK_SIZE``.
STACK_SIZE = 64 * 1024


class Hart:
    """Registers, pc, counters and memory views of one hart."""

    __slots__ = ("hart_id", "instret", "m16", "m32", "mem", "pc", "reservation", "watch", "x")

    def __init__(self, ram: bytearray, hart_id: int = 0, *, watch: bytearray | None = None) -> None:
        if not isinstance(ram, bytearray):
            raise TypeError(f"ram must be a bytearray, not {type(ram).__name__}")
        if not ram or len(ram) % PAGE_SIZE:
            raise ValueError(f"ram size must be a positive multiple of {PAGE_SIZE}")
        if isinstance(hart_id, bool) or not isinstance(hart_id, int) or hart_id < 0:
            raise ValueError(f"hart_id must be a non-negative int, got {hart_id!r}")
        pages = len(ram) // PAGE_SIZE
        if watch is None:
            watch = bytearray(pages)
        elif not isinstance(watch, bytearray) or len(watch) != pages:
            raise ValueError(f"watch must be a bytearray of {pages} page flags")
        self.hart_id = hart_id
        self.x: list[int] = [0] * 32
        self.pc = 0
        self.instret = 0
        #: Address of the word reserved by the last ``lr.w``, or ``None``.
        self.reservation: int | None = None
        self.mem = ram
        view = memoryview(ram)
        self.m16 = view.cast("H")
        self.m32 = view.cast("I")
        self.watch = watch

    def reset(self, entry: int, n_harts: int) -> None:
        """Set the start state of the ABI: ``pc = entry``, ``a0`` = hart id,
        ``a1`` = number of harts, ``sp`` = RAM top minus hart id x 64 KiB."""
        if not 0 <= self.hart_id < n_harts:
            raise ValueError(f"hart {self.hart_id} is not one of {n_harts} harts")
        sp = len(self.mem) - self.hart_id * STACK_SIZE
        if sp < STACK_SIZE:
            raise ValueError(f"guest RAM too small for {n_harts} hart stacks")
        self.x = [0] * 32
        self.x[10] = self.hart_id
        self.x[11] = n_harts
        # 2**32 wraps to 0 (a 4 GiB RAM): the first push stores just below it.
        self.x[2] = sp & 0xFFFFFFFF
        self.pc = entry
        self.instret = 0
        self.reservation = None

    def on_store(self, addr: int, size: int) -> None:
        """Called after a guest store of ``size`` bytes at ``addr`` to a watched page.

        The default does nothing; a machine overrides it to invalidate
        translated code on the page and to break LR reservations.
        """

    def __repr__(self) -> str:
        return f"<Hart {self.hart_id} pc={self.pc:#010x} instret={self.instret}>"
