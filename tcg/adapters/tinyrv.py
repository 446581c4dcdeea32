"""tinyrv harts on threads, with our translation buffer as their code cache.

Why an adapter
--------------
tinyrv (``pip install --no-deps tinyrv==0.1.0``, MIT licensed) is a RISC-V
simulator in pure Python by other authors: one ``tinyrv.sim`` object per
hart, one handler method per instruction (``sim._addi(self, rd, rs1,
imm12)``). Its code cache is ``tinyrv.common.decode``, a process-wide
``functools.lru_cache`` keyed by the instruction word. The cached objects are
mutable and shared by every simulator, and ``sim.step()`` writes the current
address into the shared one (``self.op = decode(word); self.op.addr =
addr``) before the handler reads it back (``_jal``, the branches,
``_auipc``, ``_jalr`` and traps compute from ``self.op.addr``). Two threads
that execute the same instruction word at different addresses overwrite each
other's ``addr`` between those two steps: a hart jumps relative to the other
hart's pc. One thread is fine; several threads are not, and no lock inside
tinyrv could fix it without serialising the harts.

What the adapter does
---------------------
:class:`TinyrvMachine` is a :class:`tcg.Machine` whose engine is tinyrv. It
keeps tinyrv's instruction semantics (its handlers run unchanged, on
:class:`TinyrvHart`, a subclass of ``tinyrv.sim``) and replaces its cache and
its fetch-decode-execute step:

* A *block* is built from tinyrv's decoder, from a pc up to and including
  the first control transfer (or ``max_block_insns``, or the end of the
  guest page): a tuple of :class:`TinyrvOp`, immutable per-instruction
  records (handler, a read-only copy of the arguments, address, encoding).
  tinyrv's shared cached object is read, never written. Running a block sets
  the hart's ``op`` to each record in turn, so a handler reads *its own*
  instruction's address whatever other threads do.
* Blocks live in the machine's :class:`~tcg.buffer.TranslationBuffer`,
  keyed by pc, and are retired by the machine's policy (:class:`RcuRetire`,
  :class:`StopTheWorldFlush` or a third-party :class:`RetirePolicy`), with
  the reclamation oracle checked around every block, exactly as for our own
  translated code. A block's host bytes, which fill the buffer, are
  :data:`HOST_BYTES_PER_INSN` bytes per instruction (the record's address
  and encoding, padded): a fixed, deterministic cost, close to what a decoded
  tinyrv instruction costs in memory.
* The cpu loop is :class:`tcg.Machine`'s (:mod:`tcg.cpu_loop`). Special
  instructions leave guest code as they do there: ``ecall`` is our system-call ABI
  (:mod:`tcg.riscv.syscalls`, so the workloads' outputs hold), LR/SC and AMOs
  run tinyrv's handler inside an exclusive section, ``fence.i``, CSR
  instructions, ``ebreak`` and the privileged ones run tinyrv's handler alone.
* tinyrv's store hook (``notify_stored``, called after every store with its
  address) tells the machine's services
  (:meth:`~tcg.engine.EngineServices.notify_store`), which invalidate
  translated code on the page (self-modifying code) and break other harts'
  LR reservations on the word. It gets no size, and the
  widest store is 8 bytes (``fsd``), so ``[addr, addr + 8)`` is invalidated.
* Traps become :class:`~tcg.riscv.errors.GuestFault` reports (the ABI has no
  trap handler), and addresses outside guest RAM are access faults.
* The ISA is our engine's, not all of tinyrv's: RV32IMA with ``fence.i`` and
  the counter reads, decided by :func:`tcg.riscv.decode.decode`. Compressed,
  floating-point and privileged instructions and CSR writes are illegal; a
  jump to an address that is not a multiple of 4 faults on the jump. Faults
  are precise: the instructions of a block before the faulting one count
  as retired.

Shared memory
-------------
tinyrv keeps memory in ``mem_pages``, a per-simulator ``defaultdict`` of
2 MiB pages that inserts a page on first touch. Here every hart's
``mem_pages`` is the same plain ``dict`` ``{0: ram}`` with ``mem_psize`` set
to 4 GiB, so every 32-bit address falls in "page" 0, the machine's one RAM
``bytearray``. Invariant: the dict is built before any hart thread starts
and never written afterwards; threads only look key 0 up, so no thread
inserts into a shared mapping. Races between harts on guest memory are the
guest's business, as in our engine; atomics are atomic because they run in
exclusive sections.

Threads: a :class:`TinyrvHart` belongs to the thread that runs it, which
alone writes its registers, pc, ``op`` and counters. Another hart's store may
clear its reservation, under the machine's reservation lock (see
:mod:`tcg.machine`); its own LR and SC write it only inside exclusive
sections, so both never overlap. :meth:`TinyrvEngine.generate` runs on any
hart's thread: it only reads the RAM and tinyrv's decode cache (whose
shared objects it never writes).
"""

from __future__ import annotations

import importlib
import os
import struct
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, BinaryIO, Literal, NamedTuple

from tcg.block import BlockFunction
from tcg.engine import BlockCode, EngineServices, special_block
from tcg.errors import MachineConfigError
from tcg.machine import Machine
from tcg.policies import PolicyFactory
from tcg.riscv.decode import decode
from tcg.riscv.elf import DEFAULT_RAM_SIZE, PAGE_SIZE
from tcg.riscv.errors import FaultReason, GuestFault
from tcg.riscv.hart import Hart
from tcg.riscv.syscalls import SYS_NANOSLEEP
from tcg.riscv.translate import DEFAULT_MAX_INSNS

__all__ = [
    "HOST_BYTES_PER_INSN",
    "INSTALL",
    "TinyrvEngine",
    "TinyrvHart",
    "TinyrvMachine",
    "TinyrvOp",
    "tinyrv_available",
]

#: How to install the engine: tinyrv's declared dependencies (lief, readchar,
#: dataclasses-struct) are for its own ELF runner only, which is not used.
INSTALL = "pip install --no-deps tinyrv==0.1.0"

#: Host bytes a block takes in the translation buffer, per instruction.
HOST_BYTES_PER_INSN = 64

MASK = 0xFFFFFFFF
#: The widest store tinyrv's RV32 handlers make (``fsd``), in bytes.
MAX_STORE = 8

_base: Any = object
_decode: Any = None
_trap: Any = None
_import_error: ImportError | None = None
try:
    # By module path: the package's __init__ rebinds the name ``tinyrv.sim``
    # to the class.
    _sim_module = importlib.import_module("tinyrv.sim")
    _decode = importlib.import_module("tinyrv.common").decode
    _trap, _base = _sim_module.Trap, _sim_module.sim
except ImportError as exc:  # checked when a machine is made, not at import
    _import_error = exc


def tinyrv_available() -> bool:
    """Whether tinyrv can be imported (the engine needs it)."""
    return _import_error is None


def _require_tinyrv() -> None:
    if _import_error is not None:
        raise MachineConfigError(
            f"the tinyrv engine needs the tinyrv package ({_import_error}): {INSTALL}"
        )


#: Instructions that end a block (the last one of a block may change the pc).
CONTROL = frozenset(
    {
        "jal",
        "jalr",
        "beq",
        "bne",
        "blt",
        "bge",
        "bltu",
        "bgeu",
    }
)
#: LR/SC and AMOs: run alone, inside an exclusive section.
ATOMICS = frozenset(
    {
        "lr_w",
        "sc_w",
        "amoswap_w",
        "amoadd_w",
        "amoxor_w",
        "amoand_w",
        "amoor_w",
        "amomin_w",
        "amomax_w",
        "amominu_w",
        "amomaxu_w",
    }
)
CSRS = frozenset({"csrrw", "csrrs", "csrrc", "csrrwi", "csrrsi", "csrrci"})
#: Instructions a block never contains: the cpu loop runs them one at a time.
SPECIALS = frozenset({"ecall", "ebreak", "fence_i"}) | ATOMICS | CSRS

_TRAP_REASONS = {
    0: FaultReason.FETCH_MISALIGNED,
    1: FaultReason.FETCH_ACCESS,
    2: FaultReason.ILLEGAL_INSTRUCTION,
    3: FaultReason.EBREAK,
    4: FaultReason.LOAD_MISALIGNED,
    5: FaultReason.LOAD_ACCESS,
    6: FaultReason.STORE_MISALIGNED,
    7: FaultReason.STORE_ACCESS,
}
_ACCESS_CAUSES = {"r": 5, "w": 7}  # pa() is never asked for a fetch
# Counter CSRs (cycle, time, instret, their high halves, mcycle, minstret):
# like our interpreter, all count retired instructions.
_COUNTERS_LOW = (0xC00, 0xC01, 0xC02, 0xB00, 0xB02)
_COUNTERS_HIGH = (0xC80, 0xC81, 0xC82, 0xB80, 0xB82)
_MHARTID = 0xF14


class TinyrvOp(NamedTuple):
    """One decoded instruction, frozen: what a hart's ``op`` is while it runs.

    Handlers read ``op.addr`` and ``op.data`` as they read tinyrv's own
    decoded objects; nothing writes a record after it is built, so any
    number of threads can run it at once.
    """

    #: tinyrv's instruction name (``"addi"``, ``"lr_w"``, ``"UNKNOWN"``...).
    name: str
    #: Guest address of the instruction.
    addr: int
    #: Its encoding.
    data: int
    #: Its size in bytes: always 4 (compressed instructions are illegal here).
    size: int
    #: The handler's keyword arguments, read-only.
    args: Mapping[str, int]
    #: tinyrv's handler (a ``sim`` method, unbound), or None for an illegal word.
    handler: Callable[..., None] | None


def _sext32(value: int) -> int:
    value &= MASK
    return value - (1 << 32) if value & 0x80000000 else value


class TinyrvHart(_base):  # type: ignore[misc]
    """A ``tinyrv.sim`` (RV32, misaligned accesses trap) as one vCPU of a machine.

    Its memory is the machine's RAM (see the module docstring), its traps
    raise :class:`~tcg.riscv.errors.GuestFault`, its stores report to the
    machine's services, and ``abi`` is a :class:`~tcg.riscv.hart.Hart` that
    carries its registers through the system-call ABI. Never call tinyrv's ``step`` or
    ``run`` on it: they use tinyrv's shared decoded objects.
    """

    def __init__(
        self, services: EngineServices, ram: bytearray, hart_id: int, watch: bytearray
    ) -> None:
        _require_tinyrv()
        super().__init__(xlen=32, trap_misaligned=True)
        # tinyrv appends a line to trace_log on every register write unless
        # it is None (its step() resets it; blocks never call step()).
        self.trace_log = None
        self.services = services
        self.hart_id = hart_id
        self.instret = 0
        self.ram_size = len(ram)
        self.watch = watch
        self.mem_psize = 1 << 32
        self.mem_pages = {0: ram}  # never written again: see "Shared memory"
        self.op: TinyrvOp | None = None
        self.last_access = "r"
        self.abi = Hart(ram, hart_id, watch=watch)
        self.csr[_MHARTID] = hart_id

    @property
    def reservation(self) -> int | None:
        """The address reserved by the last ``lr.w`` (tinyrv's ``lr_res_addr``), or None."""
        address: int = self.lr_res_addr
        return None if address == -1 else address & MASK

    @reservation.setter
    def reservation(self, address: int | None) -> None:
        self.lr_res_addr = -1 if address is None else _sext32(address)

    def reset(self, entry: int, n_harts: int) -> None:
        """The ABI's start state, as :meth:`tcg.riscv.hart.Hart.reset` sets it."""
        abi = self.abi
        abi.reset(entry, n_harts)
        for i in range(1, 32):
            self.x[i] = _sext32(abi.x[i])
        self.pc = entry
        self.instret = 0
        self.lr_res_addr = -1

    # tinyrv's hooks -------------------------------------------------------

    def pa(self, addr: int, access: str = "w") -> int:
        """Physical address of ``addr``: the same (no paging), or an access trap."""
        addr &= MASK
        self.last_access = access  # for access_fault() if the access overruns RAM
        if addr >= self.ram_size:
            raise _trap(addr, _ACCESS_CAUSES[access])
        return addr

    def mtrap(self, tval: int, cause: int) -> None:
        """A trap: the ABI has no handler, so it is a guest fault."""
        op = self.op
        reason = _TRAP_REASONS.get(cause, FaultReason.ILLEGAL_INSTRUCTION)
        address = None if cause in (2, 3) else tval & MASK
        pc = self.pc if op is None else op.addr
        raise GuestFault(self.hart_id, pc, None if op is None else op.data, reason, address)

    def notify_stored(self, addr: int) -> None:
        """After every store: tell the machine if a watched page may be hit.

        tinyrv gives no size: the widest store, :data:`MAX_STORE` bytes. Other
        harts' reservations only: tinyrv's ``sc.w`` reads its own reservation
        after its store to compute the result.
        """
        watch = self.watch
        last = min(addr + MAX_STORE - 1, self.ram_size - 1) // PAGE_SIZE
        if watch[addr // PAGE_SIZE] or watch[last]:
            self.services.notify_store(addr, MAX_STORE, spare=self)

    def access_fault(self) -> GuestFault:
        """The fault of the current instruction's access that ran past the end of RAM."""
        op = self.op
        assert op is not None
        store = self.last_access == "w"
        reason = FaultReason.STORE_ACCESS if store else FaultReason.LOAD_ACCESS
        return GuestFault(self.hart_id, op.addr, op.data, reason, None)

    def __repr__(self) -> str:
        return f"<TinyrvHart {self.hart_id} pc={self.pc:#010x} instret={self.instret}>"


def _exits(last: TinyrvOp, end: int) -> tuple[int, ...]:
    """The block's direct exits (:attr:`tcg.engine.BlockCode.exits`), from its last record."""
    if last.name not in CONTROL:
        return (end,)  # cut by the page, the limit or a special instruction
    if last.name == "jalr":
        return ()
    target = (last.addr + decode(last.data).imm) & MASK
    aligned = () if target % 4 else (target,)  # a misaligned target faults on the jump
    if last.name == "jal":
        return aligned
    return tuple(dict.fromkeys((*aligned, end)))  # a branch: taken, fall-through


def _block_function(ops: tuple[TinyrvOp, ...], pc: int) -> BlockFunction:
    """The function that runs ``ops`` (built at ``pc``) on a hart; returns the next pc.

    Faults are precise, as in our engine: the instructions before the faulting
    one count as retired, and a jump or taken branch to an address that is not
    a multiple of 4 faults on the jump itself, its link register unchanged
    (tinyrv, built with the C extension, would accept any even target).
    """
    n = len(ops)
    last = ops[-1]
    jumps = last.name in CONTROL
    link = last.args.get("rd", 0) if jumps else 0  # jal and jalr write rd

    body = ops[:-1]
    last_handler = last.handler
    last_args = last.args
    assert last_handler is not None

    def run(h: Any) -> int:
        h.pc = pc
        try:
            for op in body:
                # ORDER: op before the handler, which reads op.addr and op.data.
                h.op = op
                op.handler(h, **op.args)  # type: ignore[misc]
            h.op = last
            saved = h.x[link] if link else 0
            last_handler(h, **last_args)
        except struct.error:  # a word access overlapping the end of RAM
            h.instret += ops.index(h.op)
            raise h.access_fault() from None
        except GuestFault:  # a trap (mtrap): at h.op, the ones before it retired
            h.instret += ops.index(h.op)
            raise
        # tinyrv's branches do not wrap: a pc below 0 is 2**32 - x, as on hardware.
        target = int(h.pc) & MASK
        if jumps and target & 3:
            if link:
                h.x[link] = saved
            h.instret += n - 1
            h.pc = last.addr
            raise GuestFault(h.hart_id, last.addr, last.data, FaultReason.FETCH_MISALIGNED, target)
        h.instret += n
        return target

    return run


class TinyrvEngine:
    """tinyrv's handlers as a machine's engine (see the module docstring).

    Made by a machine with its services: ``Machine(program,
    engine=TinyrvEngine)``, which is what :class:`TinyrvMachine` does. Raises
    :class:`~tcg.machine.MachineConfigError` naming the install command if
    tinyrv is not installed.
    """

    def __init__(self, services: EngineServices) -> None:
        _require_tinyrv()
        self.services = services
        self.ram = services.ram

    def new_hart(self, hart_id: int) -> TinyrvHart:
        """A tinyrv simulator on the machine's RAM."""
        services = self.services
        return TinyrvHart(services, self.ram, hart_id, services.watch)

    # Decoding and blocks --------------------------------------------------

    def _decode_at(self, pc: int) -> TinyrvOp | None:
        """The frozen record of the instruction at ``pc``; None if it cannot be fetched.

        The ISA is our engine's, RV32IMA with ``fence.i`` and the counter
        reads (:func:`tcg.riscv.decode.decode` decides what is legal): a word
        it calls illegal (a compressed or floating-point instruction, a
        privileged one, a CSR write) gets no handler, so it faults as an
        illegal instruction, whatever tinyrv could run.
        """
        ram = self.ram
        if pc & 3 or pc < 0 or pc + 4 > len(ram):
            return None
        word = int.from_bytes(ram[pc : pc + 4], "little")
        # tinyrv's cached, shared object: read here, never written.
        decoded = _decode(word, 0, 32)
        name: str = decoded.name
        legal = hasattr(decoded, "extension") and decode(word).name != "illegal"
        handler = getattr(TinyrvHart, "_" + name, None) if legal else None
        return TinyrvOp(
            name=name,
            addr=pc,
            data=word,
            size=4,
            args=MappingProxyType(dict(decoded.args)),
            handler=handler,
        )

    def generate(self, pc: int, max_insns: int) -> BlockCode:
        """A block of tinyrv records from ``pc``, or :func:`~tcg.engine.special_block`."""
        ops: list[TinyrvOp] = []
        addr = pc
        page_end = (pc | (PAGE_SIZE - 1)) + 1  # blocks never cross a guest page
        while len(ops) < max_insns:
            op = self._decode_at(addr)
            if op is None or op.handler is None or op.name in SPECIALS:
                break
            if addr + op.size > page_end:
                break
            ops.append(op)
            addr += op.size
            if op.name in CONTROL or addr == page_end:
                break
        if not ops:
            # A special, illegal or unfetchable instruction: run alone, outside
            # guest code; its "host code" is its encoding.
            return BlockCode(special_block, pc + 4, bytes(self.ram[pc : pc + 4]) or b"\0")
        host = b"".join(
            struct.pack("<II", op.addr, op.data).ljust(HOST_BYTES_PER_INSN, b"\0") for op in ops
        )
        return BlockCode(_block_function(tuple(ops), pc), addr, host, _exits(ops[-1], addr))

    # Special instructions, system calls, stores -----------------------------

    def is_host_call(self, h: TinyrvHart, pc: int) -> bool:
        """Is the instruction at ``pc`` an ``ecall`` of ``nanosleep``?"""
        op = self._decode_at(pc)
        return op is not None and op.name == "ecall" and h.x[17] & MASK == SYS_NANOSLEEP

    def run_special(self, h: TinyrvHart) -> bool:
        """Run the instruction at ``h.pc`` alone with tinyrv's handler; False once it exited."""
        pc: int = h.pc & MASK
        op = self._decode_at(pc)
        if op is None:
            reason = FaultReason.FETCH_MISALIGNED if pc & 3 else FaultReason.FETCH_ACCESS
            raise GuestFault(h.hart_id, pc, None, reason, pc)
        if op.handler is None:
            raise GuestFault(h.hart_id, pc, op.data, FaultReason.ILLEGAL_INSTRUCTION)
        if op.name == "ecall":
            h.pc = pc + 4
            h.instret += 1
            return self._tinyrv_syscall(h)
        if op.name in ATOMICS:
            services = self.services
            with services.world.exclusive():
                self._execute(h, op)
                services.update_reservations()
            return True
        if op.name in CSRS:
            counters = h.csr._csr  # tinyrv's raw CSR array (no write hooks)
            # Sign-extended, as tinyrv keeps every register value.
            for csr in _COUNTERS_LOW:
                counters[csr] = _sext32(h.instret)
            for csr in _COUNTERS_HIGH:
                counters[csr] = _sext32(h.instret >> 32)
        self._execute(h, op)
        return True

    def _execute(self, hart: TinyrvHart, op: TinyrvOp) -> None:
        """Run one instruction with tinyrv's handler."""
        hart.pc = op.addr
        hart.op = op
        assert op.handler is not None
        try:
            op.handler(hart, **op.args)
        except struct.error:
            raise hart.access_fault() from None
        hart.instret += 1

    def _tinyrv_syscall(self, hart: TinyrvHart) -> bool:
        """Our system-call ABI on a tinyrv hart's registers; False once it exited."""
        abi = hart.abi
        x = hart.x
        abi.x = [x[i] & MASK for i in range(32)]
        abi.pc = hart.pc
        alive = self.services.syscall(abi)
        x[10] = _sext32(abi.x[10])
        return alive


class TinyrvMachine(Machine):
    """A :class:`tcg.Machine` whose harts are tinyrv simulators (see the module docstring).

    Same keywords, same :meth:`run` and :meth:`stop`, same
    :class:`~tcg.machine.MachineResult`: callers swap engines without other
    changes. It only passes :class:`TinyrvEngine` as the engine. Raises
    :class:`~tcg.machine.MachineConfigError` naming the install command if
    tinyrv is not installed.
    """

    def __init__(
        self,
        program: bytes | str | os.PathLike[str],
        *,
        vcpus: int = 1,
        policy: str | PolicyFactory = "rcu",
        buffer_kb: float = 4096,
        regions: int = 8,
        ram_size: int = DEFAULT_RAM_SIZE,
        max_block_insns: int = DEFAULT_MAX_INSNS,
        max_instructions: int | None = None,
        host_calls: Literal["outside", "inside"] = "outside",
        echo: BinaryIO | None = None,
    ) -> None:
        _require_tinyrv()  # before the machine makes its policy and world
        super().__init__(
            program,
            vcpus=vcpus,
            policy=policy,
            buffer_kb=buffer_kb,
            regions=regions,
            ram_size=ram_size,
            max_block_insns=max_block_insns,
            max_instructions=max_instructions,
            host_calls=host_calls,
            echo=echo,
            engine=TinyrvEngine,
        )
