"""Our engine: RISC-V blocks translated to Python functions.

The default :class:`~tcg.engine.Engine` of :class:`tcg.Machine` (``"tcg"``
in :data:`tcg.engines.ENGINES`). Blocks come from the translator
(:func:`tcg.riscv.translate.translate`); the instructions it never puts in
a block (system calls, atomics, ``fence.i``, CSR reads...) run one at a time
on the reference interpreter (:func:`tcg.riscv.interp.step`), atomics inside
an exclusive section of the machine's world (QEMU's
``cpu_exec_step_atomic``), whatever the policy, so that a read-modify-write
is atomic across harts. A hart is a :class:`~tcg.riscv.hart.Hart` whose
store hook reports to the machine's services.
"""

from __future__ import annotations

from tcg.engine import BlockCode, EngineServices, special_block
from tcg.riscv.decode import decode
from tcg.riscv.hart import Hart
from tcg.riscv.interp import Exit, fetch, step
from tcg.riscv.syscalls import SYS_NANOSLEEP
from tcg.riscv.translate import translate

__all__ = ["RiscvEngine"]

ECALL = 0x00000073


class _ServicedHart(Hart):
    """A hart whose store hook reports to its machine's services."""

    __slots__ = ("services",)

    def __init__(
        self, services: EngineServices, ram: bytearray, hart_id: int, watch: bytearray
    ) -> None:
        super().__init__(ram, hart_id, watch=watch)
        self.services = services

    def on_store(self, addr: int, size: int) -> None:
        self.services.notify_store(addr, size)


class RiscvEngine:
    """Translated blocks and the reference interpreter, as a machine's engine."""

    def __init__(self, services: EngineServices) -> None:
        self.services = services
        self.ram = services.ram

    def new_hart(self, hart_id: int) -> Hart:
        """A :class:`~tcg.riscv.hart.Hart` on the machine's RAM and watch array."""
        services = self.services
        return _ServicedHart(services, self.ram, hart_id, services.watch)

    def generate(self, pc: int, max_insns: int) -> BlockCode:
        """The translated block at ``pc``, or :func:`~tcg.engine.special_block`."""
        code = translate(self.ram, pc, max_insns=max_insns)
        if code.n_insns == 0:
            # A special instruction: its "host code" is the word the
            # interpreter will run.
            return BlockCode(special_block, pc + 4, bytes(self.ram[pc : pc + 4]) or b"\0")
        return BlockCode(code.fn, code.end, code.code_bytes, code.exits)

    def is_host_call(self, h: Hart, pc: int) -> bool:
        """Is the instruction at ``pc`` an ``ecall`` of ``nanosleep``?"""
        return fetch(h, pc) == ECALL and h.x[17] == SYS_NANOSLEEP

    def run_special(self, h: Hart) -> bool:
        """Step the instruction at ``h.pc`` with the interpreter; False once the hart exited."""
        insn = decode(fetch(h, h.pc))
        if insn.is_atomic:
            services = self.services
            with services.world.exclusive():
                step(h)
                services.update_reservations()
            return True
        if step(h) is Exit.ECALL:
            return self.services.syscall(h)
        return True
