"""The engine seam: what produces and runs a machine's blocks, and what it may ask of the machine.

A :class:`~tcg.machine.Machine` owns what every emulator of this shape
shares: the vCPU threads and their world, the translation buffer and its
retirement policy, the cpu loop (:mod:`tcg.cpu_loop`), the guest's output,
LR reservations and the statistics. An *engine* owns what differs between
emulators: the state of a vCPU (an :class:`EngineHart`), how the code of a
block is produced at a pc, and how an instruction that never goes into a
block (a system call, an atomic, ``fence.i``...) runs outside guest code.

The two meet at two small protocols, one per direction, so that neither
reaches into the other's private state:

* :class:`Engine`, what the machine and its cpu loop call;
* :class:`EngineServices`, what the engine may call back: the guest RAM and
  the page watch array, the machine's ``quiescent.World`` (atomics run in
  its exclusive sections), the system-call ABI with the machine's output and
  exit bookkeeping, LR reservation updates, and store notifications (which
  invalidate translated code on the page and break reservations).

A machine makes its engine by calling an :data:`EngineFactory` with its
services once the guest program is loaded: ``Machine(program,
engine=factory)``. Our translator (:class:`tcg.riscv_engine.RiscvEngine`)
is one engine, tinyrv's handlers (:mod:`tcg.adapters.tinyrv`) another.

Threads: :meth:`Engine.generate` runs on any hart's thread, inside that
hart's read side, concurrently with other harts' calls; it must only read
shared state. :meth:`Engine.is_host_call` and :meth:`Engine.run_special` run
on the hart's own thread: ``run_special`` outside guest code (outside
``running()`` and the policy's read side), except for a blocking host call
when the machine runs them ``"inside"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeVar

import quiescent
from tcg.block import BlockFunction
from tcg.riscv.hart import Hart

__all__ = [
    "BlockCode",
    "Engine",
    "EngineFactory",
    "EngineHart",
    "EngineServices",
    "HartT",
    "special_block",
]


class EngineHart(Protocol):
    """What the cpu loop needs of a vCPU's state, whatever the engine.

    ``pc``, ``instret`` and ``reservation`` (the LR-reserved address or
    None) belong to the hart's thread, except that another hart's store may
    clear ``reservation`` (through :meth:`EngineServices.notify_store`, under
    the machine's reservation lock).
    """

    hart_id: int
    pc: int
    instret: int
    reservation: int | None

    def reset(self, entry: int, n_harts: int) -> None:
        """Set the ABI's start state (pc, a0 = hart id, a1 = harts, sp)."""


#: The hart type of an engine.
HartT = TypeVar("HartT", bound=EngineHart)


def special_block(h: object) -> int:
    """Stands for an instruction run outside guest code (its TB has no code of its own).

    An engine's :meth:`Engine.generate` returns it as the function of such
    an instruction's block; the cpu loop never calls it, it leaves guest code
    and calls :meth:`Engine.run_special` instead.
    """
    raise AssertionError("special blocks are never called")


class BlockCode(NamedTuple):
    """What an engine makes of the guest block at a pc (see :meth:`Engine.generate`)."""

    #: Runs the block on a hart and returns the next guest pc.
    fn: BlockFunction
    #: The guest address just past the block's last instruction.
    end: int
    #: The host bytes the block takes in the translation buffer (at least one).
    host: bytes
    #: The guest pcs the block can return that are known when it is made (a
    #: branch's target and fall-through, a direct jump's target, the next pc
    #: of a block cut short): the exits the cpu loop may chain to the
    #: successor's block (:meth:`tcg.buffer.TranslationBuffer.link`). A
    #: computed jump has none; an empty tuple never chains.
    exits: tuple[int, ...] = ()


class Engine(Protocol[HartT]):
    """What a machine's engine provides, for harts of type ``HartT``."""

    def new_hart(self, hart_id: int) -> HartT:
        """The state of vCPU ``hart_id`` (the machine resets it before the run)."""
        ...

    def generate(self, pc: int, max_insns: int) -> BlockCode:
        """The code of the block at ``pc``: its function, guest end, host bytes and exits.

        The function runs the block on a hart and returns the next pc; it
        retires what it ran (``h.instret``). At most ``max_insns``
        instructions; the host bytes (at least one) fill the buffer. A
        special instruction gets :func:`special_block` as its function, the
        pc of the next instruction as its end. A guest fault is raised when
        the block runs, not here.
        """
        ...

    def is_host_call(self, h: HartT, pc: int) -> bool:
        """Is the instruction at ``pc`` a blocking host call (``nanosleep``)?"""
        ...

    def run_special(self, h: HartT) -> bool:
        """Run the special instruction at ``h.pc``; False once the hart has exited.

        Atomics run inside an exclusive section of the machine's world and
        update the reservations there; system calls go through
        :meth:`EngineServices.syscall`.
        """
        ...


class EngineServices(Protocol):
    """What a machine gives its engine (and nothing else of its state)."""

    @property
    def ram(self) -> bytearray:
        """The guest RAM, shared by every hart."""
        ...

    @property
    def watch(self) -> bytearray:
        """One flag byte per guest page; a store to a page whose byte is non-zero
        must be reported with :meth:`notify_store`."""
        ...

    @property
    def world(self) -> quiescent.World:
        """The machine's world (atomics run inside ``world.exclusive()``)."""
        ...

    def syscall(self, h: Hart) -> bool:
        """Perform the ``ecall`` that ``h`` just stepped over (the ABI of
        :mod:`tcg.riscv.syscalls`); False once the hart has exited."""
        ...

    def update_reservations(
        self, addr: int = 0, size: int = 0, *, spare: EngineHart | None = None
    ) -> None:
        """Break the reservations on ``[addr, addr + size)`` except ``spare``'s, and
        re-mark the pages that hold reserved words.

        Called with no range after every atomic step (inside its exclusive
        section), so that the reservation it set or cleared is watched.
        """
        ...

    def notify_store(self, addr: int, size: int, *, spare: EngineHart | None = None) -> None:
        """A hart stored ``size`` bytes at ``addr`` on a watched page.

        Invalidates the translated code there (self-modifying code) and
        breaks the reservations on the range, except ``spare``'s (an engine
        whose ``sc.w`` reads its own reservation after its store passes
        itself).
        """
        ...


#: Makes a machine's engine from the machine's services.
EngineFactory = Callable[[EngineServices], Engine[Any]]
