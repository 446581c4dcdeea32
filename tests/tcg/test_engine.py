"""The engine seam: a third engine through the machine, and the shared cpu loop."""

from __future__ import annotations

import pytest

import quiescent
import rcu
from tcg import RcuRetire, RetirePolicy, StopTheWorldFlush, TranslationBuffer
from tcg.engine import BlockCode, EngineServices, special_block
from tcg.machine import Machine
from tcg.riscv.decode import BRANCHES, decode
from tcg.riscv.hart import Hart
from tcg.riscv.interp import Exit, fetch, step
from tcg.riscv_engine import RiscvEngine
from tcg.workloads import WORKLOADS
from tests.tcg.driver import Driver

#: Host bytes of one interpreted instruction in the buffer.
INTERP_BYTES = 48


def _interpret(h: Hart) -> int:
    step(h)
    return h.pc


class ReportingHart(Hart):
    """A hart whose stores to watched pages go to the machine's services."""

    __slots__ = ("services",)

    def __init__(self, services: EngineServices, hart_id: int) -> None:
        super().__init__(services.ram, hart_id, watch=services.watch)
        self.services = services

    def on_store(self, addr: int, size: int) -> None:
        self.services.notify_store(addr, size)


class InterpEngine:
    """A third engine, written against the protocol only: every block is one
    instruction, run by the reference interpreter."""

    def __init__(self, services: EngineServices) -> None:
        self.services = services
        self.made: list[int] = []

    def new_hart(self, hart_id: int) -> Hart:
        self.made.append(hart_id)
        return ReportingHart(self.services, hart_id)

    def generate(self, pc: int, max_insns: int) -> BlockCode:
        ram = self.services.ram
        word = bytes(ram[pc : pc + 4])
        if len(word) < 4 or pc & 3:
            return BlockCode(special_block, pc + 4, word or b"\0")  # the interpreter faults on it
        insn = decode(int.from_bytes(word, "little"))
        if insn.is_special or insn.is_illegal:
            return BlockCode(special_block, pc + 4, word)
        # Direct exits: the next instruction, or a branch's or jal's target.
        if insn.name == "jalr":
            exits: tuple[int, ...] = ()
        elif insn.name == "jal":
            exits = ((pc + insn.imm) & 0xFFFFFFFF,)
        elif insn.name in BRANCHES:
            exits = ((pc + insn.imm) & 0xFFFFFFFF, pc + 4)
        else:
            exits = (pc + 4,)
        return BlockCode(_interpret, pc + 4, word.ljust(INTERP_BYTES, b"\0"), exits)

    def is_host_call(self, h: Hart, pc: int) -> bool:
        return False

    def run_special(self, h: Hart) -> bool:
        services = self.services
        if decode(fetch(h, h.pc)).is_atomic:
            with services.world.exclusive():
                step(h)
                services.update_reservations()
            return True
        if step(h) is Exit.ECALL:
            return services.syscall(h)
        return True


def test_the_machine_makes_its_engine_once_with_its_services() -> None:
    engines: list[InterpEngine] = []

    def factory(services: EngineServices) -> InterpEngine:  # an EngineFactory (mypy)
        engine = InterpEngine(services)
        engines.append(engine)
        return engine

    machine = Machine(WORKLOADS["crc32"].path, vcpus=2, engine=factory)
    assert len(engines) == 1
    assert machine.engine is engines[0]
    assert engines[0].made == [0, 1]
    services = engines[0].services
    assert services.ram is machine.ram
    assert services.watch is machine.watch
    assert services.world is machine.world
    assert [h.hart_id for h in machine.harts] == [0, 1]
    assert all(h.pc == machine.entry for h in machine.harts)  # reset by the machine


@pytest.mark.timeout(120)
@pytest.mark.parametrize("policy", ["rcu", "flush"])
def test_a_third_engine_runs_under_both_policies(policy: str) -> None:
    workload = WORKLOADS["parallel"]
    result = Machine(
        workload.path, vcpus=3, policy=policy, buffer_kb=8, regions=4, engine=InterpEngine
    ).run()
    assert result.stopped == "exit"
    assert result.violations == ()
    assert result.stdout == workload.expected_output(3)
    assert result.exit_code == 0
    assert result.instructions == sum(result.per_hart)
    assert all(n > 0 for n in result.per_hart)
    # One instruction per block: the buffer really was recycled.
    assert result.buffer.translations > result.buffer.capacity // INTERP_BYTES
    recycled = result.policy.flushes if policy == "flush" else result.policy.reclaims
    assert recycled > 0, result.policy


def test_the_default_engine_is_ours_and_an_engine_must_be_callable() -> None:
    machine = Machine(WORKLOADS["crc32"].path)
    assert isinstance(machine.engine, RiscvEngine)
    with pytest.raises(TypeError, match="engine must be an engine factory, not str"):
        Machine(WORKLOADS["crc32"].path, engine="tinyrv")  # type: ignore[arg-type]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("flush", [True, False], ids=["flush", "rcu"])
def test_the_fake_engine_in_the_shared_loop(flush: bool) -> None:
    world = quiescent.World()
    domain = rcu.Domain(stall_timeout=None)
    policy: RetirePolicy = StopTheWorldFlush(world) if flush else RcuRetire(domain)
    try:
        buffer = TranslationBuffer(6 * 1024, 4, policy)
        result = Driver(buffer, world, vcpus=4, translators=0, steps=3000, seed=9).run()
    finally:
        policy.close()
        domain.close()
    assert not result.errors, result.errors
    assert result.violations == []
    assert result.blocks_run == 4 * 3000  # the step budget, as the loop's limit
    # Only the vCPUs translate: every full buffer was found by the loop.
    assert result.full_events > 0
    assert result.translations > buffer.capacity // 512
