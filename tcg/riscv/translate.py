"""Translating a guest basic block into a Python function.

Why translate
-------------
An interpreter pays for fetch, decode and dispatch on every instruction, and
in Python that overhead is most of the cost (several function calls and
dictionary lookups per guest instruction). A translator pays it once per
*block*: it decodes the straight-line run of instructions starting at a pc,
writes Python source that does exactly what they do, and compiles it once
with :func:`compile`. Guest registers live in Python locals for the length of
the block (a ``LOAD_FAST`` instead of a list lookup), immediates and constant
addresses are folded into the source, and executing the block is one call.

What a block is
---------------
A block starts at ``pc`` and ends:

* after a conditional branch (``ends_in == "branch"``) or ``jal``/``jalr``
  (``"jump"``): the function returns the next pc it computed;
* *before* an instruction a block never contains (``"special"``): ``ecall``,
  ``ebreak``, ``fence``, ``fence.i``, LR/SC, AMOs and CSR reads, an illegal
  word or a pc that cannot be fetched. The cpu loop runs that one
  instruction with :func:`tcg.riscv.interp.step` (atomics inside an
  exclusive section). If the very first instruction is such an instruction,
  the block is empty (``n_insns == 0``) and its function just returns ``pc``;
* at the end of the 4 KiB page (``"page"``): a block never spans two pages, so
  invalidating a page's code is exact;
* after ``max_insns`` instructions (``"limit"``).

A block whose closing branch targets its own start (an inner loop) becomes a
Python ``for`` loop over the block body, bounded by :data:`LOOP_ITERATIONS`
per call: the registers stay in locals across iterations and the cpu loop's
dispatch is paid once per 64 iterations, while the cpu loop still regains
control (to check for exit requests) after a bounded amount of work. Within
such a call the block keeps running its translation even if it stores into
its own code; RISC-V only promises new code after ``fence.i``, which ends
every block.

The function's contract
-----------------------
``fn(h) -> int`` runs the block on :class:`~tcg.riscv.hart.Hart` ``h`` and
returns the guest pc to continue at; it does *not* assign ``h.pc`` (the cpu
loop does, once it has decided what runs next). It reads ``h.x`` (only the
registers it uses), ``h.mem``/``h.m16``/``h.m32`` and ``h.watch``, writes
back the registers it changed and adds the number of instructions to
``h.instret``. After every store it runs
``if watch[addr >> 12]: h.on_store(addr, size)``: one byte lookup when the
page is not watched.

Faults are precise. A misaligned access raises an internal trap, an access
past the end of RAM raises ``IndexError`` from the ``memoryview``; both are
caught by one handler around the block body, which writes back the registers
the block writes (a register the block first writes after a point where it
can fault is loaded on entry, so until then it holds its old value), sets
``h.pc`` to the
faulting instruction, counts the instructions before it in ``h.instret`` and
raises :class:`~tcg.riscv.GuestFault`: the same state the reference
interpreter leaves. The line number of the ``IndexError`` names the faulting
instruction, so the bounds check costs nothing on the fast path.

Encoding rules that matter are commented where the source is generated:
registers hold unsigned values, so signed comparisons flip the sign bit
(``a ^ 0x80000000``), signed values are ``(a ^ 0x80000000) - 0x80000000``,
shifts by register use ``rs2 & 31``, and division follows the RISC-V table
(x / 0 = -1, x % 0 = x, -2**31 / -1 = -2**31, -2**31 % -1 = 0).

``TranslatedCode.code_bytes`` is ``marshal.dumps(fn.__code__)``: the real
host code (bytecode plus constants) a translation buffer stores, so its size
follows the guest code.
"""

from __future__ import annotations

import marshal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import FunctionType, TracebackType
from typing import Literal

from tcg.riscv.decode import BRANCHES, LOADS, STORES, Insn, decode
from tcg.riscv.elf import PAGE_SIZE
from tcg.riscv.errors import FaultReason, GuestFault
from tcg.riscv.hart import Hart

__all__ = ["DEFAULT_MAX_INSNS", "BlockEnd", "TranslatedCode", "translate"]

#: Default upper bound on the instructions of one block.
DEFAULT_MAX_INSNS = 64
#: A block can never hold more than a page of instructions.
MAX_INSNS = PAGE_SIZE // 4
#: A block that branches to its own start runs at most this many iterations
#: per call, so the cpu loop still gets control back regularly.
LOOP_ITERATIONS = 64

BlockEnd = Literal["branch", "jump", "special", "page", "limit"]

M = "0xFFFFFFFF"
SB = "0x80000000"


@dataclass(frozen=True, slots=True)
class TranslatedCode:
    """A translated guest block: guest range ``[pc, end)`` and its host function."""

    pc: int
    end: int
    n_insns: int
    source: str
    fn: Callable[[Hart], int]
    code_bytes: bytes
    ends_in: BlockEnd
    #: The block's direct exits: the guest pcs it can return that are known
    #: at translation time (a branch's target and fall-through, a ``jal``'s
    #: target, the pc after a block cut by a page, the limit or a special
    #: instruction). ``jalr`` computes its target: no exit. A block chains
    #: (:meth:`tcg.buffer.TranslationBuffer.link`) only through these.
    exits: tuple[int, ...] = ()


class _Trap(Exception):
    """A fault detected by an explicit check inside a block (not an IndexError)."""

    def __init__(self, index: int, reason: FaultReason, address: int) -> None:
        self.index = index
        self.reason = reason
        self.address = address


def _trap_fault(h: Hart, trap: _Trap, pc: int, words: tuple[int, ...]) -> GuestFault:
    """Turn a trap into the guest fault, leaving ``h`` as the interpreter would."""
    fault_pc = pc + 4 * trap.index
    h.pc = fault_pc
    h.instret += trap.index
    return GuestFault(h.hart_id, fault_pc, words[trap.index], trap.reason, trap.address)


def _fault(
    h: Hart,
    exc: IndexError | _Trap,
    address: int,
    pc: int,
    words: tuple[int, ...],
    lines: dict[int, tuple[int, bool]],
) -> BaseException:
    """The guest fault for a trap, or for an ``IndexError`` raised on a memory line.

    ``address`` is the block's last effective address (local ``a``) and
    ``lines`` maps the source lines that access memory to (instruction
    index, is a store).
    """
    if isinstance(exc, _Trap):
        return _trap_fault(h, exc, pc, words)
    tb: TracebackType | None = exc.__traceback__
    where = lines.get(tb.tb_lineno) if tb is not None else None
    if where is None:  # not from a guest access (e.g. from an on_store hook)
        return exc
    index, is_store = where
    reason = FaultReason.STORE_ACCESS if is_store else FaultReason.LOAD_ACCESS
    return _trap_fault(h, _Trap(index, reason, address), pc, words)


_GLOBALS: dict[str, object] = {
    "_Trap": _Trap,
    "_trap_fault": _trap_fault,
    "_fault": _fault,
    "_FM": FaultReason.FETCH_MISALIGNED,
    "_LM": FaultReason.LOAD_MISALIGNED,
    "_SM": FaultReason.STORE_MISALIGNED,
}


def _scan(mem: bytearray, pc: int, max_insns: int) -> tuple[list[Insn], BlockEnd]:
    """Decode the block's instructions and say why it ends."""
    insns: list[Insn] = []
    p = pc
    while True:
        if len(insns) == max_insns:
            return insns, "limit"
        if insns and p % PAGE_SIZE == 0:
            return insns, "page"
        if p + 4 > len(mem):
            return insns, "special"  # the fetch faults: the interpreter reports it
        insn = decode(int.from_bytes(mem[p : p + 4], "little"))
        if insn.is_special or insn.is_illegal:
            return insns, "special"
        insns.append(insn)
        if insn.name in BRANCHES:
            return insns, "branch"
        if insn.name in ("jal", "jalr"):
            return insns, "jump"
        p += 4


class _Emitter:
    """Generates the body of one block, tracking what it writes and touches."""

    def __init__(self) -> None:
        self.body: list[str] = []  # the block's lines, without indentation
        self.writes: set[int] = set()
        self.views: set[str] = set()
        self.stores = False
        self.traps = False  # whether any line raises _Trap
        self.mem_lines: dict[int, tuple[int, bool]] = {}  # body index -> (insn, is store)

    def src(self, reg: int) -> str:
        """A source operand: ``0`` for x0, else the register's local."""
        return "0" if reg == 0 else f"r{reg}"

    def flip(self, reg: int) -> str:
        """The operand with its sign bit flipped: signed order as unsigned order."""
        return SB if reg == 0 else f"({self.src(reg)} ^ {SB})"

    def dst(self, reg: int) -> str:
        """A destination: ``_`` for x0 (the value is dropped), else the local."""
        if reg == 0:
            return "_"
        self.writes.add(reg)
        return f"r{reg}"

    def emit(self, line: str) -> None:
        self.body.append(line)
        if "raise _Trap" in line:
            self.traps = True

    def address(self, insn: Insn) -> str:
        """Emit the effective address into local ``a``."""
        if insn.rs1 == 0:
            self.emit(f"a = {insn.imm & 0xFFFFFFFF:#x}")
        elif insn.imm == 0:
            self.emit(f"a = {self.src(insn.rs1)}")
        else:
            self.emit(f"a = ({self.src(insn.rs1)} + {insn.imm}) & {M}")
        return "a"

    def access(self, index: int, line: str, is_store: bool) -> None:
        """Emit a line that touches guest memory (its IndexError is an access fault)."""
        self.mem_lines[len(self.body)] = (index, is_store)
        self.emit(line)


_LOAD_FORMS = {
    # name: (alignment mask, view, index expression, value expression around {v})
    "lw": (3, "m32", "a >> 2", "{v}"),
    "lh": (1, "m16", "a >> 1", "(({v} ^ 0x8000) - 0x8000) & " + M),  # sign-extend 16
    "lhu": (1, "m16", "a >> 1", "{v}"),
    "lb": (0, "mem", "a", "(({v} ^ 0x80) - 0x80) & " + M),  # sign-extend 8
    "lbu": (0, "mem", "a", "{v}"),
}
_STORE_FORMS = {
    "sw": (3, "m32", "a >> 2", "{v}", 4),
    "sh": (1, "m16", "a >> 1", "{v} & 0xFFFF", 2),
    "sb": (0, "mem", "a", "{v} & 0xFF", 1),
}


def _emit_insn(e: _Emitter, k: int, insn: Insn, pc: int) -> None:
    """Emit straight-line code for one non-control-flow instruction."""
    n, rd, imm = insn.name, insn.rd, insn.imm
    if n in LOADS:
        align, view, index, value = _LOAD_FORMS[n]
        e.views.add(view)
        e.address(insn)
        if align:
            e.emit(f"if a & {align}: raise _Trap({k}, _LM, a)")
        e.access(k, f"{e.dst(rd)} = {value.format(v=f'{view}[{index}]')}", is_store=False)
        return
    if n in STORES:
        align, view, index, value, size = _STORE_FORMS[n]
        e.views.add(view)
        e.stores = True
        e.address(insn)
        if align:
            e.emit(f"if a & {align}: raise _Trap({k}, _SM, a)")
        e.access(k, f"{view}[{index}] = {value.format(v=e.src(insn.rs2))}", is_store=True)
        e.emit(f"if watch[a >> 12]: h.on_store(a, {size})")
        return
    if rd == 0:
        return  # every other non-control instruction only writes rd: a no-op
    a = e.src(insn.rs1)
    if n == "lui":
        e.emit(f"{e.dst(rd)} = {imm:#x}")
    elif n == "auipc":
        e.emit(f"{e.dst(rd)} = {(pc + imm) & 0xFFFFFFFF:#x}")
    elif n == "addi":
        if insn.rs1 == 0:
            e.emit(f"{e.dst(rd)} = {imm & 0xFFFFFFFF:#x}")
        elif imm == 0:
            e.emit(f"{e.dst(rd)} = {a}")
        else:
            e.emit(f"{e.dst(rd)} = ({a} + {imm}) & {M}")
    elif n == "slti":
        # Signed compare: flip both sign bits, compare unsigned.
        e.emit(
            f"{e.dst(rd)} = 1 if {e.flip(insn.rs1)} < {(imm & 0xFFFFFFFF) ^ 0x80000000:#x} else 0"
        )
    elif n == "sltiu":
        # The immediate is sign-extended, then compared as unsigned.
        e.emit(f"{e.dst(rd)} = 1 if {a} < {imm & 0xFFFFFFFF:#x} else 0")
    elif n in ("xori", "ori", "andi"):
        op = {"xori": "^", "ori": "|", "andi": "&"}[n]
        e.emit(f"{e.dst(rd)} = {a} {op} {imm & 0xFFFFFFFF:#x}")
    elif n == "slli":
        e.emit(f"{e.dst(rd)} = ({a} << {imm}) & {M}")
    elif n == "srli":
        e.emit(f"{e.dst(rd)} = {a} >> {imm}")
    elif n == "srai":
        # Arithmetic shift: make the value signed, shift, mask back.
        e.emit(f"{e.dst(rd)} = (({a} ^ {SB}) - {SB} >> {imm}) & {M}")
    else:
        _emit_reg_op(e, insn)


def _emit_reg_op(e: _Emitter, insn: Insn) -> None:
    n = insn.name
    a, b = e.src(insn.rs1), e.src(insn.rs2)
    d = e.dst(insn.rd)
    if n in ("add", "sub", "mul"):
        op = {"add": "+", "sub": "-", "mul": "*"}[n]
        e.emit(f"{d} = ({a} {op} {b}) & {M}")
    elif n in ("xor", "or", "and"):
        op = {"xor": "^", "or": "|", "and": "&"}[n]
        e.emit(f"{d} = {a} {op} {b}")
    elif n == "sll":
        # Shifts by register use only the low 5 bits of rs2.
        e.emit(f"{d} = ({a} << ({b} & 31)) & {M}")
    elif n == "srl":
        e.emit(f"{d} = {a} >> ({b} & 31)")
    elif n == "sra":
        e.emit(f"{d} = (({a} ^ {SB}) - {SB} >> ({b} & 31)) & {M}")
    elif n == "slt":
        e.emit(f"{d} = 1 if {e.flip(insn.rs1)} < {e.flip(insn.rs2)} else 0")
    elif n == "sltu":
        e.emit(f"{d} = 1 if {a} < {b} else 0")
    elif n == "mulh":
        e.emit(f"{d} = ((({a} ^ {SB}) - {SB}) * (({b} ^ {SB}) - {SB}) >> 32) & {M}")
    elif n == "mulhsu":
        e.emit(f"{d} = ((({a} ^ {SB}) - {SB}) * {b} >> 32) & {M}")
    elif n == "mulhu":
        e.emit(f"{d} = {a} * {b} >> 32")
    elif n == "divu":
        e.emit(f"{d} = {a} // {b} if {b} else {M}  # x / 0 = all ones")
    elif n == "remu":
        e.emit(f"{d} = {a} % {b} if {b} else {a}  # x % 0 = x")
    elif n in ("div", "rem"):
        # Signed operands; RISC-V rounds toward zero where Python floors, so
        # divide magnitudes and fix the sign. x / 0 = -1 and x % 0 = x;
        # -2**31 / -1 gives 2**31, which masks to -2**31 as the spec wants,
        # and -2**31 % -1 gives 0.
        e.emit(f"s = ({a} ^ {SB}) - {SB}")
        e.emit(f"t = ({b} ^ {SB}) - {SB}")
        if n == "div":
            e.emit("q = abs(s) // abs(t) if t else -1")
            e.emit(f"{d} = (-q if t and (s < 0) != (t < 0) else q) & {M}")
        else:
            e.emit("q = abs(s) % abs(t) if t else abs(s)")
            e.emit(f"{d} = (-q if s < 0 else q) & {M}")
    else:  # pragma: no cover - the decoder produces no other names here
        raise AssertionError(f"no translation for {n}")


_BRANCH_OPS = {"beq": "==", "bne": "!=", "blt": "<", "bge": ">=", "bltu": "<", "bgeu": ">="}


def _branch_cond(e: _Emitter, insn: Insn) -> str:
    """The Python condition under which a branch is taken."""
    if insn.name in ("blt", "bge"):
        return f"{e.flip(insn.rs1)} {_BRANCH_OPS[insn.name]} {e.flip(insn.rs2)}"
    return f"{e.src(insn.rs1)} {_BRANCH_OPS[insn.name]} {e.src(insn.rs2)}"


def _emit_exit(e: _Emitter, k: int, insn: Insn, pc: int) -> str:
    """Emit the block's final control transfer; return the next-pc expression."""
    n = insn.name
    if n in BRANCHES:
        taken = (pc + insn.imm) & 0xFFFFFFFF
        cond = _branch_cond(e, insn)
        if taken % 4:
            # A taken branch to a misaligned target faults on the branch.
            e.emit(f"if {cond}: raise _Trap({k}, _FM, {taken:#x})")
            return f"{pc + 4:#x}"
        return f"{taken:#x} if {cond} else {pc + 4:#x}"
    if n == "jal":
        target = (pc + insn.imm) & 0xFFFFFFFF
        if target % 4:
            e.emit(f"raise _Trap({k}, _FM, {target:#x})")
        if insn.rd:
            e.emit(f"{e.dst(insn.rd)} = {pc + 4:#x}")
        return f"{target:#x}"
    if n == "jalr":
        # The target is computed before rd is written (rd may be rs1), and
        # jalr clears bit 0 of the sum.
        if insn.rs1 == 0:
            e.emit(f"n = {insn.imm & 0xFFFFFFFE:#x}")
        else:
            e.emit(f"n = ({e.src(insn.rs1)} + {insn.imm}) & 0xFFFFFFFE")
        e.emit(f"if n & 2: raise _Trap({k}, _FM, n)")
        if insn.rd:
            e.emit(f"{e.dst(insn.rd)} = {pc + 4:#x}")
        return "n"
    raise AssertionError(f"{n} does not end a block")  # pragma: no cover


def _check_args(mem: bytearray, pc: int, max_insns: int) -> None:
    if not isinstance(mem, bytearray):
        raise TypeError(f"mem must be a bytearray, not {type(mem).__name__}")
    if isinstance(pc, bool) or not isinstance(pc, int):
        raise TypeError(f"pc must be an int, not {type(pc).__name__}")
    if not 0 <= pc <= 0xFFFFFFFF:
        raise ValueError(f"pc must be a 32-bit address, got {pc:#x}")
    if isinstance(max_insns, bool) or not isinstance(max_insns, int):
        raise TypeError(f"max_insns must be an int, not {type(max_insns).__name__}")
    if not 1 <= max_insns <= MAX_INSNS:
        raise ValueError(f"max_insns must be in [1, {MAX_INSNS}], got {max_insns}")
    if sys.byteorder != "little":  # pragma: no cover - all supported hosts are LE
        raise RuntimeError("translated code needs a little-endian host")


def translate(mem: bytearray, pc: int, *, max_insns: int = DEFAULT_MAX_INSNS) -> TranslatedCode:
    """Translate the guest block at ``pc`` in guest RAM ``mem``.

    See the module docstring for where blocks end and for the contract of
    the returned ``fn``. A ``pc`` that is misaligned, outside RAM or holds a
    special or illegal instruction gives an empty block (``n_insns == 0``):
    the caller runs :func:`tcg.riscv.interp.step`, which executes or faults
    (a pc outside RAM has no page: do not index ``watch`` with it).
    """
    _check_args(mem, pc, max_insns)
    if pc % 4:
        insns: list[Insn] = []
        ends_in: BlockEnd = "special"
    else:
        insns, ends_in = _scan(mem, pc, max_insns)
    source = _generate(pc, insns, ends_in)
    namespace = dict(_GLOBALS)
    exec(compile(source, f"<tb {pc:#010x}>", "exec"), namespace)
    fn = namespace[f"tb_{pc:08x}"]
    assert isinstance(fn, FunctionType)
    return TranslatedCode(
        pc=pc,
        end=pc + 4 * len(insns),
        n_insns=len(insns),
        source=source,
        fn=fn,
        code_bytes=marshal.dumps(fn.__code__),
        ends_in=ends_in,
        exits=_exits(pc, insns, ends_in),
    )


def _exits(pc: int, insns: list[Insn], ends_in: BlockEnd) -> tuple[int, ...]:
    """The block's direct exits (see :attr:`TranslatedCode.exits`)."""
    if not insns:
        return ()
    end = pc + 4 * len(insns)
    if ends_in in ("page", "limit", "special"):
        return (end,)
    last = insns[-1]
    if last.name == "jalr":
        return ()
    target = (end - 4 + last.imm) & 0xFFFFFFFF
    aligned = () if target % 4 else (target,)  # a misaligned target faults instead
    if last.name == "jal":
        return aligned
    return tuple(dict.fromkeys((*aligned, end)))  # a branch: taken, fall-through


def _generate(pc: int, insns: list[Insn], ends_in: BlockEnd) -> str:
    """The Python source of the block function."""
    name = f"tb_{pc:08x}"
    if not insns:
        return f"def {name}(h):\n    return {pc:#x}\n"
    e = _Emitter()
    n = len(insns)
    next_pc = f"{pc + 4 * n:#x}"
    last = insns[-1]
    last_pc = pc + 4 * (n - 1)
    # A block that branches back to its own start is a loop: run it as a
    # Python loop, at most LOOP_ITERATIONS times per call.
    loop_cond = None
    if ends_in == "branch" and (last_pc + last.imm) & 0xFFFFFFFF == pc:
        loop_cond = _branch_cond(e, last)
    # Which registers to load on entry: those read before the block writes
    # them, and those first written after a point where the block can fault
    # (a fault writes every register the block writes back, so each must
    # hold its old value until the block assigns it). A register the block
    # assigns before it can first fault needs no load.
    live_in: set[int] = set()
    assigned: set[int] = set()
    for k, insn in enumerate(insns):
        # Fields an instruction does not use are 0 in its Insn record.
        live_in.update(r for r in (insn.rs1, insn.rs2) if r and r not in assigned)
        ipc = pc + 4 * k
        if k == n - 1 and ends_in in ("branch", "jump"):
            if loop_cond is None:
                next_pc = _emit_exit(e, k, insn, ipc)
        else:
            _emit_insn(e, k, insn, ipc)
        # A fault point inside this instruction comes before its write.
        if insn.rd and insn.rd not in assigned:
            assigned.add(insn.rd)
            if e.traps or e.mem_lines:
                live_in.add(insn.rd)

    regs = sorted(live_in)
    written = sorted(e.writes)
    head = [f"def {name}(h):"]
    if regs or written:
        head.append("    x = h.x")
    if regs:
        head.append("    " + "; ".join(f"r{r} = x[{r}]" for r in regs))
    for view in sorted(e.views):
        head.append(f"    {view} = h.{view}")
    if e.stores:
        head.append("    watch = h.watch")
    if e.mem_lines and e.traps:
        # The shared handler reads ``a``; a jump's trap may come before any
        # access assigned it.
        head.append("    a = 0")
    writeback = [f"x[{r}] = r{r}" for r in written]
    # Instructions retired by the iterations of a loop block that completed.
    done = [f"h.instret += (it - 1) * {n}"] if loop_cond else []

    lines = list(head)
    words = "(" + ", ".join(f"{i.word:#x}" for i in insns) + ",)"
    body = list(e.body)
    # Only a block that can fault needs the try statement and its handlers.
    can_fault = e.traps or bool(e.mem_lines)
    indent = "        " if can_fault else "    "
    if can_fault:
        lines.append("    try:")
    if loop_cond is not None:
        lines.append(f"{indent}for it in range(1, {LOOP_ITERATIONS + 1}):")
        body.append(f"if not ({loop_cond}): break")
        indent += "    "
        next_pc = f"{pc:#x} if {loop_cond} else {pc + 4 * n:#x}"
    first = len(lines) + 1  # 1-based line number of the first body line
    lines.extend(indent + line for line in body)
    # One handler for both kinds of fault keeps the source (and compile time) small.
    if e.mem_lines:
        mem_lines = {first + idx: where for idx, where in e.mem_lines.items()}
        caught = "(IndexError, _Trap)" if e.traps else "IndexError"
        lines.append(f"    except {caught} as exc:")
        lines.extend("        " + w for w in writeback + done)
        lines.append(f"        raise _fault(h, exc, a, {pc:#x}, {words}, {mem_lines!r}) from None")
    elif e.traps:
        lines.append("    except _Trap as exc:")
        lines.extend("        " + w for w in writeback + done)
        lines.append(f"        raise _trap_fault(h, exc, {pc:#x}, {words}) from None")
    lines.extend("    " + w for w in writeback)
    lines.append(f"    h.instret += {f'it * {n}' if loop_cond else n}")
    lines.append(f"    return {next_pc}")
    return "\n".join(lines) + "\n"
