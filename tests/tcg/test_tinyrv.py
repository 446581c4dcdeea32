"""The tinyrv adapter: stock tinyrv breaks with two harts on threads, the adapter does not."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("tinyrv", reason="tinyrv is not installed: pip install --no-deps tinyrv")

import tcg.adapters.tinyrv as adapter
from tcg import RcuRetire
from tcg.adapters.tinyrv import TinyrvMachine
from tcg.cli import main as compare_main
from tcg.engines import ENGINES, machine_class, make_machine
from tcg.machine import Machine, MachineError
from tcg.riscv.errors import FaultReason, LoaderError
from tcg.workloads import WORKLOADS
from tests.tcg.riscv.helpers import (
    auipc,
    branch,
    csrr,
    i_type,
    jal,
    jalr,
    load,
    lui,
    make_elf,
    tiny_program,
)

ROOT = Path(__file__).resolve().parents[2]
ECALL = 0x00000073
ENTRY, COPY_A, COPY_B = 0x10000, 0x11000, 0x12000
#: Offset of the instruction after each copy's loop.
LOOP_END = 20


def _copy(letter: str, k: int) -> bytes:
    """A loop of ``k * 4096`` iterations, then write(1, <the letter of this copy>, 1), exit(0).

    Both copies are the same instruction words; which letter is written
    depends on the pc of the ``auipc`` after the loop, so a hart that jumped
    into the other copy writes the other letter.
    """
    words = [
        lui(5, k),  # t0 = iterations
        i_type("addi", 13, 0, 0),
        i_type("addi", 13, 13, 1),  # loop:
        i_type("addi", 5, 5, -1),
        branch("bne", 5, 0, -8),
        auipc(11, 0),  # LOOP_END
        i_type("addi", 11, 11, 40),  # a1 = the letter below
        i_type("addi", 10, 0, 1),
        i_type("addi", 12, 0, 1),
        i_type("addi", 17, 0, 64),
        ECALL,
        i_type("addi", 10, 0, 0),
        i_type("addi", 17, 0, 93),
        ECALL,
        i_type("addi", 0, 0, 0),
        ord(letter),
    ]
    return b"".join(w.to_bytes(4, "little") for w in words)


def two_copies(k: int = 1) -> bytes:
    """Code at ENTRY sends hart 0 to copy A and hart 1 to copy B (same words)."""
    image = bytearray(COPY_B + 64 - ENTRY)
    stub = [branch("bne", 10, 0, 8), jal(0, COPY_A - ENTRY - 4), jal(0, COPY_B - ENTRY - 8)]
    image[0:12] = b"".join(w.to_bytes(4, "little") for w in stub)
    image[COPY_A - ENTRY : COPY_A - ENTRY + 64] = _copy("A", k)
    image[COPY_B - ENTRY : COPY_B - ENTRY + 64] = _copy("B", k)
    return bytes(image)


def stock_diversions(image: bytes, k: int) -> list[tuple[int, int]]:
    """Two stock tinyrv harts on two threads, one per copy: where a hart left its copy."""
    import tinyrv

    diverted: list[tuple[int, int]] = []

    def hart(base: int) -> None:
        vm = tinyrv.sim(xlen=32)
        vm.copy_in(ENTRY, image)
        vm.pc = base
        for _ in range(3 * 4096 * k + 10):
            vm.step(trace=False)
            if vm.pc == base + LOOP_END:
                return
            if not base <= vm.pc < base + 64:
                diverted.append((base, vm.pc))
                return

    threads = [
        threading.Thread(target=hart, args=(b,), name=f"stock{b:#x}") for b in (COPY_A, COPY_B)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    return diverted


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("fast_switching")
def test_stock_tinyrv_harts_on_threads_corrupt_each_others_pc() -> None:
    image = two_copies()
    seen: list[tuple[int, int]] = []
    for _ in range(20):
        seen += stock_diversions(image, 1)
        if seen:
            break
    # tinyrv's decode cache shares one mutable object per instruction word:
    # one hart's branch jumps relative to the other hart's pc.
    assert seen, "stock tinyrv kept every hart in its own code (the race did not show)"
    base, pc = seen[0]
    other = COPY_B if base == COPY_A else COPY_A
    assert other <= pc < other + 64


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("fast_switching")
@pytest.mark.parametrize("policy", ["rcu", "rcu-qsbr", "flush"])
def test_the_adapter_keeps_every_hart_in_its_own_code(policy: str) -> None:
    program = make_elf([(ENTRY, two_copies(), len(two_copies()), 5)], ENTRY)
    for _ in range(4):
        # Two regions of 512 bytes, smaller than the program: retirements.
        result = TinyrvMachine(program, vcpus=2, policy=policy, buffer_kb=1, regions=2).run()
        assert result.violations == ()
        assert result.fault is None
        assert result.stopped == "exit"
        assert sorted(result.stdout) == sorted(b"AB"), result.stdout
        assert result.per_hart[0] == result.per_hart[1]
        assert result.policy.reclaims + result.policy.flushes > 0


POLICIES = ["rcu", "rcu-qsbr", "flush"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("vcpus", [1, 2])
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_workloads_give_the_same_output_as_our_engine(name: str, vcpus: int) -> None:
    workload = WORKLOADS[name]
    policy = POLICIES[(sorted(WORKLOADS).index(name) + vcpus) % 3]
    ours = Machine(workload.path, vcpus=vcpus, policy=policy, buffer_kb=32).run()
    theirs = TinyrvMachine(workload.path, vcpus=vcpus, policy=policy, buffer_kb=8).run()
    assert theirs.violations == ()
    assert theirs.fault is None
    assert (theirs.stdout, theirs.exit_code) == (ours.stdout, ours.exit_code)
    assert theirs.stdout == workload.expected_output(vcpus)
    assert theirs.instructions == sum(theirs.per_hart) > 0
    if name in ("bigcode", "parallel", "smc"):
        assert theirs.policy.reclaims + theirs.policy.flushes > 0


def test_self_modifying_code_invalidates_translated_blocks() -> None:
    workload = WORKLOADS["smc"]
    result = TinyrvMachine(workload.path, vcpus=2, policy="rcu").run()
    assert result.stdout == workload.expected_output(2)
    assert result.buffer.invalidations > 0
    assert result.buffer.retranslations > 0


class CountingRetire(RcuRetire):
    """A third-party policy: RCU retirement that counts the times the buffer filled."""

    fulls = 0

    def on_full(self) -> object:
        type(self).fulls += 1
        return super().on_full()


def test_a_third_party_policy_plugs_in() -> None:
    workload = WORKLOADS["bigcode"]
    CountingRetire.fulls = 0
    result = TinyrvMachine(
        workload.path, vcpus=2, policy=lambda world: CountingRetire(), buffer_kb=16
    ).run()
    assert result.stdout == workload.expected_output(2)
    assert result.violations == ()
    assert CountingRetire.fulls > 0
    assert result.policy.reclaims > 0


def test_engines_by_name() -> None:
    assert set(ENGINES) == {"tcg", "tinyrv"}
    assert machine_class("tcg") is Machine
    assert machine_class("tinyrv") is TinyrvMachine
    result = make_machine("tinyrv", WORKLOADS["crc32"].path, max_instructions=5_000).run()
    assert result.stopped == "limit"
    assert result.instructions >= 5_000
    with pytest.raises(ValueError, match="unknown engine"):
        machine_class("qemu")


def test_guest_faults_are_reports() -> None:
    illegal = TinyrvMachine(tiny_program([i_type("addi", 10, 0, 5), 0xFFFFFFFF]), vcpus=2).run()
    assert illegal.stopped == "fault"
    assert illegal.fault is not None
    assert illegal.fault.reason is FaultReason.ILLEGAL_INSTRUCTION
    assert (illegal.fault.pc, illegal.fault.word) == (0x10004, 0xFFFFFFFF)
    misaligned = TinyrvMachine(tiny_program([i_type("addi", 5, 0, 1), load("lw", 6, 5, 0)])).run()
    assert misaligned.fault is not None
    assert misaligned.fault.reason is FaultReason.LOAD_MISALIGNED
    assert misaligned.fault.pc == 0x10004
    outside = TinyrvMachine(tiny_program([lui(5, 0x7FFFF), load("lw", 6, 5, 0)])).run()
    assert outside.fault is not None
    assert outside.fault.reason is FaultReason.LOAD_ACCESS
    ebreak = TinyrvMachine(tiny_program([0x00100073])).run()
    assert ebreak.fault is not None
    assert ebreak.fault.reason is FaultReason.EBREAK
    jump = TinyrvMachine(tiny_program([lui(5, 0x7FFFF), jalr(0, 5, 0)])).run()
    assert jump.fault is not None
    assert jump.fault.reason is FaultReason.FETCH_ACCESS


def test_bad_arguments_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vcpus"):
        TinyrvMachine(WORKLOADS["crc32"].path, vcpus=0)
    with pytest.raises(LoaderError):
        TinyrvMachine(b"not an elf")
    machine = TinyrvMachine(WORKLOADS["crc32"].path, max_instructions=1_000)
    machine.run()
    with pytest.raises(MachineError, match="runs once"):
        machine.run()


def test_without_tinyrv_construction_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(adapter, "_import_error", ImportError("No module named 'tinyrv'"))
    with pytest.raises(MachineError, match="pip install --no-deps tinyrv"):
        TinyrvMachine(WORKLOADS["crc32"].path)
    from tcg.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--engine", "tinyrv", str(WORKLOADS["crc32"].path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "pip install --no-deps tinyrv" in err
    assert "usage: python -m tcg run" in err  # the run command's usage, not the parent's


@pytest.mark.timeout(60)
def test_python_m_tcg_run_engine_tinyrv() -> None:
    workload = WORKLOADS["smc"]
    cmd = [sys.executable, "-m", "tcg", "run", "--engine", "tinyrv", "--vcpus", "2", "--stats"]
    done = subprocess.run(
        [*cmd, "--buffer-kb", "8", str(workload.path)],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == workload.expected_output(2)
    assert b"policy rcu" in done.stderr


@pytest.mark.timeout(60)
def test_rcu_compare_engine_tinyrv(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    argv = ["--workload", "crc32", "--vcpus", "1,2", "--buffer-kb", "8", "--repeat", "1"]
    argv += ["--policies", "rcu,flush", "--instructions", "20000", "--quiet"]
    assert compare_main([*argv, "--engine", "tinyrv", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["machine"]["engine"] == "tinyrv"
    assert doc["config"]["engine"] == "tinyrv"
    assert len(doc["cells"]) == 4
    for cell in doc["cells"]:
        assert cell["engine"] == "tinyrv"
        assert cell["violations"] == 0
        assert cell["instructions"] >= 20_000


@pytest.mark.parametrize("engine", ["tcg", "tinyrv"])
def test_a_branch_below_address_zero_is_a_fetch_fault(engine: str) -> None:
    result = make_machine(engine, tiny_program([branch("beq", 0, 0, -0x80)], base=0x40)).run()
    assert result.stopped == "fault"
    assert result.fault is not None
    assert result.fault.reason is FaultReason.FETCH_ACCESS
    assert result.fault.pc == 0xFFFFFFC0


@pytest.mark.parametrize("engine", ["tcg", "tinyrv"])
def test_counter_csrs_read_as_32_bit_registers(engine: str) -> None:
    # rdinstret past 2**31 is negative to a signed compare: exit(2), not exit(1).
    words = [
        csrr(10, 0xC02),
        branch("blt", 10, 0, 16),
        i_type("addi", 10, 0, 1),
        i_type("addi", 17, 0, 93),
        ECALL,
        i_type("addi", 10, 0, 2),
        i_type("addi", 17, 0, 93),
        ECALL,
    ]
    machine = make_machine(engine, tiny_program(words))
    for hart in machine.harts:
        hart.instret = 0x80000000
    assert machine.run().exit_code == 2


def _fault_of(engine: str, words: list[int]) -> tuple[object, ...]:
    result = make_machine(engine, tiny_program(words)).run()
    assert result.stopped == "fault"
    fault = result.fault
    assert fault is not None
    return (fault.reason, fault.pc, fault.word, fault.address, result.instructions)


ADDI = [i_type("addi", 5, 0, 1), i_type("addi", 6, 0, 2), i_type("addi", 7, 0, 3)]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        # Two c.nop: compressed instructions are not part of the ISA.
        pytest.param(
            [*ADDI, 0x00010001],
            (FaultReason.ILLEGAL_INSTRUCTION, 0x1000C, 0x00010001, None, 3),
            id="compressed",
        ),
        # flw f0, 0(x0): no floating point either.
        pytest.param(
            [*ADDI, 0x00002007],
            (FaultReason.ILLEGAL_INSTRUCTION, 0x1000C, 0x00002007, None, 3),
            id="float",
        ),
        # jal ra, +6: a target that is not a multiple of 4 faults on the jump.
        pytest.param(
            [*ADDI, jal(1, 6)],
            (FaultReason.FETCH_MISALIGNED, 0x1000C, jal(1, 6), 0x10012, 3),
            id="jump-to-2-aligned",
        ),
        # A misaligned load after three instructions of the same block.
        pytest.param(
            [*ADDI, load("lw", 28, 5, 0)],
            (FaultReason.LOAD_MISALIGNED, 0x1000C, load("lw", 28, 5, 0), 1, 3),
            id="block-then-fault",
        ),
        # A load past the end of RAM after three instructions.
        pytest.param(
            [*ADDI, lui(29, 0x7FFFF), load("lw", 28, 29, 0)],
            (FaultReason.LOAD_ACCESS, 0x10010, load("lw", 28, 29, 0), 0x7FFFF000, 4),
            id="block-then-access-fault",
        ),
    ],
)
@pytest.mark.parametrize("engine", ["tcg", "tinyrv"])
def test_both_engines_implement_the_same_isa_and_precise_faults(
    engine: str, words: list[int], expected: tuple[object, ...]
) -> None:
    assert _fault_of(engine, words) == expected


@pytest.mark.parametrize("engine", ["tcg", "tinyrv"])
def test_a_misaligned_jump_leaves_its_link_register_alone(engine: str) -> None:
    machine = make_machine(engine, tiny_program([i_type("addi", 1, 0, 7), jal(1, 6)]))
    result = machine.run()
    assert result.fault is not None
    assert result.fault.reason is FaultReason.FETCH_MISALIGNED
    assert machine.harts[0].x[1] == 7  # type: ignore[attr-defined]
