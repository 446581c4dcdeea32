"""The multi-threaded machine: every workload under every policy, the CLI, the guest ABI."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import quiescent
import tcg.machine
import tcg.policies
from tcg import RcuRetire, StopTheWorldFlush
from tcg.engine import BlockCode
from tcg.machine import Machine, MachineConfigError, MachineError, make_policy
from tcg.riscv.errors import FaultReason, LoaderError
from tcg.riscv.translate import LOOP_ITERATIONS
from tcg.riscv_engine import RiscvEngine
from tcg.workloads import WORKLOADS
from tests.tcg.riscv.helpers import (
    amo,
    branch,
    i_type,
    jal,
    load,
    lui,
    make_elf,
    store,
    tiny_program,
)

ECALL = 0x00000073
ILLEGAL = 0xFFFFFFFF


def li(rd: int, value: int) -> int:
    """addi rd, x0, value (12-bit signed)."""
    return i_type("addi", rd, 0, value)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("vcpus", [1, 2, 4])
@pytest.mark.parametrize("policy", ["rcu", "rcu-qsbr", "flush"])
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_workload_output_under_pressure(name: str, policy: str, vcpus: int) -> None:
    workload = WORKLOADS[name]
    # 32 KiB in 8 regions: below bigcode's and smc's code size, about the
    # size of the kernels' (so they retire too, without thrashing).
    result = Machine(workload.path, vcpus=vcpus, policy=policy, buffer_kb=32, regions=8).run()
    assert result.violations == ()
    assert result.fault is None
    assert result.stopped == "exit"
    assert result.exit_code == 0
    assert result.stdout == workload.expected_output(vcpus)
    stats = result.policy
    if name == "bigcode":
        assert stats.reclaims + stats.flushes >= 100, stats
    assert result.instructions == sum(result.per_hart) > 0


def test_a_buffer_that_holds_one_block_is_enough() -> None:
    workload = WORKLOADS["smc"]
    result = Machine(workload.path, policy="rcu", buffer_kb=4, regions=1).run()
    assert result.stdout == workload.expected_output(1)
    assert result.policy.reclaims > 0


def test_a_buffer_too_small_for_any_block_is_a_clear_error() -> None:
    with pytest.raises(MachineError, match="use a larger buffer"):
        Machine(WORKLOADS["crc32"].path, buffer_kb=0.05, regions=1).run()


def test_guest_fault_stops_the_machine_with_a_report() -> None:
    program = tiny_program([li(10, 5), ILLEGAL])
    result = Machine(program, vcpus=2).run()
    assert result.stopped == "fault"
    assert result.exit_code is None
    fault = result.fault
    assert fault is not None
    assert fault.reason is FaultReason.ILLEGAL_INSTRUCTION
    assert fault.pc == 0x10004
    assert fault.word == ILLEGAL
    assert "illegal instruction at pc 0x00010004" in fault.describe()


def test_unknown_syscall_returns_enosys_and_exit_code_is_the_guests() -> None:
    # a7 = 500 (unknown): a0 = -38; then exit(a0) -> 218 (low 8 bits of -38)
    program = tiny_program([li(17, 500), ECALL, li(17, 93), ECALL])
    result = Machine(program).run()
    assert result.exit_code == (-38) & 0xFF


def test_bad_arguments_fail_at_the_call(tmp_path: Path) -> None:
    elf = WORKLOADS["crc32"].path
    with pytest.raises(ValueError, match="vcpus"):
        Machine(elf, vcpus=0)
    with pytest.raises(TypeError):
        Machine(elf, regions="8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="buffer_kb"):
        Machine(elf, buffer_kb=0)
    with pytest.raises(ValueError, match="unknown policy"):
        Machine(elf, policy="lru")
    not_elf = tmp_path / "not.elf"
    not_elf.write_bytes(b"#!/bin/sh\necho hi\n")
    with pytest.raises(LoaderError):
        Machine(not_elf)


def make_flush(world: quiescent.World) -> StopTheWorldFlush:
    """A policy factory importable as ``tests.tcg.test_machine:make_flush``."""
    return StopTheWorldFlush(world)


def test_policy_from_module_and_class() -> None:
    world = quiescent.World()
    policy = make_policy("tests.tcg.test_machine:make_flush", world)
    assert isinstance(policy, StopTheWorldFlush)
    with pytest.raises(ValueError, match="cannot import"):
        make_policy("tests.tcg.test_machine:nothing_here", world)


def test_a_machine_runs_once() -> None:
    machine = Machine(tiny_program([li(17, 93), ECALL]))
    assert machine.run().exit_code == 0
    with pytest.raises(MachineError):
        machine.run()


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tcg", *args], capture_output=True, timeout=120, check=False
    )


@pytest.mark.timeout(150)
def test_cli_stdout_is_exactly_the_guests_and_stats_go_to_stderr() -> None:
    workload = WORKLOADS["crc32"]
    done = _cli("run", str(workload.path), "--vcpus", "2", "--policy", "flush", "--stats")
    assert done.returncode == 0, done.stderr
    assert done.stdout == workload.expected_output(2)
    assert b"tcg: guest instructions" in done.stderr
    assert b"MIPS" in done.stderr


@pytest.mark.timeout(150)
def test_cli_reports_a_guest_fault_without_a_traceback(tmp_path: Path) -> None:
    program = tmp_path / "fault.elf"
    program.write_bytes(tiny_program([ILLEGAL]))
    done = _cli("run", str(program))
    assert done.returncode == 70
    assert b"guest fault: hart 0: illegal instruction at pc 0x00010000" in done.stderr
    assert b"Traceback" not in done.stderr


@pytest.mark.timeout(150)
def test_cli_rejects_a_file_that_is_not_an_executable(tmp_path: Path) -> None:
    program = tmp_path / "text.elf"
    program.write_bytes(b"hello")
    done = _cli("run", str(program))
    assert done.returncode == 66
    assert b"tcg:" in done.stderr
    assert b"Traceback" not in done.stderr
    missing = _cli("run", str(tmp_path / "missing.elf"))
    assert missing.returncode == 66


@pytest.mark.timeout(150)
def test_cli_usage_errors() -> None:
    done = _cli("run", "x.elf", "--vcpus", "0")
    assert done.returncode == 2
    assert b"usage" in done.stderr
    bad_policy = _cli("run", str(WORKLOADS["crc32"].path), "--policy", "lru")
    assert bad_policy.returncode == 2
    assert b"unknown policy" in bad_policy.stderr


def _stall_program(sleep_ns: int) -> bytes:
    """Hart 1 sets a flag and sleeps in a host call; hart 0 waits for the flag,
    then runs an atomic (an exclusive section) and ends the program."""
    flag, timespec = 0x20000, 0x20010
    t0, t1, t2, a0, a7 = 5, 6, 7, 10, 17
    code = [
        branch("bne", a0, 0, 7 * 4),  # hart != 0: to hart1
        lui(t1, flag >> 12),
        load("lw", t0, t1, 0),  # spin: until hart 1 is asleep
        branch("beq", t0, 0, -4),
        amo("amoadd.w", t2, t1, t0),  # an exclusive step
        li(a7, 94),
        ECALL,  # exit_group(a0 = 0)
        # hart1:
        lui(t1, flag >> 12),
        li(t0, 1),
        store("sw", t0, t1, 0),
        lui(a0, timespec >> 12),
        i_type("addi", a0, a0, timespec & 0xFFF),
        li(a7, 101),
        ECALL,  # nanosleep(&timespec)
        li(a0, 0),
        li(a7, 93),
        ECALL,  # exit(0)
    ]
    text = b"".join(w.to_bytes(4, "little") for w in code)
    data = (
        (0).to_bytes(4, "little") * 4 + (0).to_bytes(4, "little") + sleep_ns.to_bytes(4, "little")
    )
    return make_elf([(0x10000, text, len(text), 5), (flag, data, len(data), 6)], 0x10000)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["rcu", "flush"])
def test_a_host_call_inside_guest_code_stalls_exclusive_sections(policy: str) -> None:
    sleep = 0.3
    program = _stall_program(int(sleep * 1e9))
    inside = Machine(program, vcpus=2, policy=policy, host_calls="inside").run()
    outside = Machine(program, vcpus=2, policy=policy, host_calls="outside").run()
    for result in (inside, outside):
        assert result.exit_code == 0
        assert result.world.exclusive_sections == 1
    # Inside: the atomic's exclusive section started while hart 1 slept in
    # running(), so it had to wait for the rest of the sleep.
    assert inside.world.time_to_quiesce.max >= sleep / 2
    # Outside: the sleeping hart was not in guest code; nothing waited for it.
    assert outside.world.time_to_quiesce.max < sleep / 2


@pytest.mark.parametrize(
    ("request_addr", "expected"), [(0x1000000, (-14) & 0xFF), (0x20010, (-22) & 0xFF)]
)
def test_nanosleep_rejects_bad_requests(request_addr: int, expected: int) -> None:
    # 0x1000000 is the end of the 16 MiB RAM (EFAULT); at 0x20010 lies a
    # timespec with tv_nsec = 2e9 (EINVAL).
    a0, a7 = 10, 17
    code = [
        lui(a0, request_addr >> 12),
        i_type("addi", a0, a0, request_addr & 0xFFF),
        li(a7, 101),
        ECALL,
        li(a7, 93),
        ECALL,  # exit(a0)
    ]
    text = b"".join(w.to_bytes(4, "little") for w in code)
    data = bytes(16) + (0).to_bytes(4, "little") + (2_000_000_000).to_bytes(4, "little")
    program = make_elf([(0x10000, text, len(text), 5), (0x20000, data, len(data), 6)], 0x10000)
    assert Machine(program).run().exit_code == expected


@pytest.mark.timeout(60)
def test_stop_ends_a_run_at_the_next_safe_point() -> None:
    machine = Machine(WORKLOADS["stall"].path, vcpus=2, policy="flush", buffer_kb=32)
    timer = threading.Timer(0.05, machine.stop)
    timer.start()
    try:
        result = machine.run()
    finally:
        timer.cancel()
        timer.join(5)
    assert result.stopped == "limit"
    assert result.exit_code is None
    assert result.violations == ()
    assert WORKLOADS["stall"].expected_output(2).startswith(result.stdout)


def test_stop_before_run_runs_nothing() -> None:
    machine = Machine(WORKLOADS["parallel"].path, vcpus=2)
    machine.stop()
    machine.stop()  # again: harmless
    result = machine.run()
    assert (result.stopped, result.instructions) == ("limit", 0)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("vcpus", [1, 3])
@pytest.mark.parametrize(
    "loop",
    [
        pytest.param([jal(0, 0)], id="jump-to-itself"),
        # Two blocks that jump to each other: no block loops on itself.
        pytest.param([i_type("addi", 5, 5, 1), jal(0, 8), 0, jal(0, -12)], id="two-blocks"),
    ],
)
def test_max_instructions_stops_a_guest_that_never_leaves_guest_code(
    loop: list[int], vcpus: int
) -> None:
    # No special instruction ever runs: only the cpu loop's own check can stop it.
    result = Machine(tiny_program(loop), vcpus=vcpus, max_instructions=1000).run()
    assert result.stopped == "limit"
    assert result.exit_code is None
    # Each hart overshoots by at most one block (a self-loop block runs up
    # to LOOP_ITERATIONS iterations in one call).
    assert 1000 <= result.instructions <= 1000 + vcpus * LOOP_ITERATIONS


class ReclaimAtOnce(RcuRetire):
    """A broken policy: it reclaims a retired region without a grace period."""

    def __init__(self, world: quiescent.World) -> None:
        super().__init__()

    def _retire(self) -> None:
        retired = self.buffer.retire_oldest()
        if retired is not None:
            self.buffer.reclaim(*retired)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("vcpus", [1, 2])
@pytest.mark.parametrize("run", range(3))
def test_a_policy_without_grace_periods_is_caught_every_run(vcpus: int, run: int) -> None:
    # Whether another hart happens to run the reclaimed code is luck; the
    # grace-period check does not depend on it.
    program = WORKLOADS["bigcode"].path
    result = Machine(program, vcpus=vcpus, policy=ReclaimAtOnce, buffer_kb=16).run()
    assert result.stopped == "violation"
    assert result.violations
    assert "may still hold one of its TBs" in result.violations[0]


def test_max_block_insns_is_checked_at_the_call() -> None:
    program = WORKLOADS["crc32"].path
    with pytest.raises(ValueError, match="max_block_insns"):
        Machine(program, max_block_insns=0)
    with pytest.raises(ValueError, match="max_block_insns"):
        Machine(program, max_block_insns=100_000)
    with pytest.raises(TypeError, match="max_block_insns"):
        Machine(program, max_block_insns=2.5)  # type: ignore[arg-type]
    assert Machine(program, max_block_insns=1).run().stdout == WORKLOADS["crc32"].expected_output()


def test_a_policy_of_none_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Machine(WORKLOADS["crc32"].path, policy=None)  # type: ignore[arg-type]


def _writes_then(tail: list[int], *, stderr: bytes = b"guest says: oops\n") -> bytes:
    """A program that writes ``stderr`` to fd 2 and ``ready`` to fd 1, then runs ``tail``."""
    data_at = 0x20000
    ready = b"ready\n"
    a0, a1, a2, a7 = 10, 11, 12, 17
    code = [
        lui(a1, data_at >> 12),
        li(a7, 64),
        li(a0, 2),
        li(a2, len(stderr)),
        ECALL,  # write(2, stderr)
        lui(a1, data_at >> 12),
        i_type("addi", a1, a1, len(stderr)),
        li(a0, 1),
        li(a2, len(ready)),
        li(a7, 64),
        ECALL,  # write(1, "ready")
        *tail,
    ]
    text = b"".join(w.to_bytes(4, "little") for w in code)
    data = stderr + ready
    return make_elf([(0x10000, text, len(text), 5), (data_at, data, len(data), 6)], 0x10000)


@pytest.mark.timeout(150)
def test_cli_a_buffer_too_small_is_a_configuration_error_and_keeps_guest_output(
    tmp_path: Path,
) -> None:
    # The first blocks fit in a 409-byte region; a one-instruction block
    # with a store does not.
    program = tmp_path / "store.elf"
    program.write_bytes(_writes_then([store("sw", 0, 11, 0), li(17, 93), ECALL]))
    done = _cli("run", str(program), "--buffer-kb", "0.4", "--regions", "1")
    assert done.returncode == 78, done.stderr
    assert done.stdout == b"ready\n"
    assert b"guest says: oops\n" in done.stderr
    assert b"use a larger buffer" in done.stderr
    assert b"Traceback" not in done.stderr
    with pytest.raises(MachineConfigError, match="use a larger buffer"):
        Machine(program, buffer_kb=0.4, regions=1).run()


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("sigint_raises")
def test_cli_ctrl_c_exits_130_without_a_traceback_and_keeps_guest_output(tmp_path: Path) -> None:
    program = tmp_path / "loop.elf"
    program.write_bytes(_writes_then([jal(0, 0)]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcg", "run", str(program)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"  # the guest is looping now
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    assert b"guest says: oops\n" in err
    assert b"tcg: interrupted" in err


@pytest.mark.timeout(150)
def test_cli_messages_name_the_problem() -> None:
    crc = str(WORKLOADS["crc32"].path)
    vcpus = _cli("run", crc, "--vcpus", "abc")
    assert vcpus.returncode == 2
    assert b"--vcpus: expected a positive integer, not 'abc'" in vcpus.stderr
    assert b"_positive_int" not in vcpus.stderr
    module = _cli("run", crc, "--policy", "os:path")
    assert module.returncode == 2
    assert b"policy 'os:path' is a module, not a class or factory" in module.stderr
    infinite = _cli("run", crc, "--buffer-kb", "inf")
    assert infinite.returncode == 2
    assert b"finite" in infinite.stderr
    version = _cli("--version")
    assert version.returncode == 0
    assert version.stdout.startswith(b"python -m tcg ")
    help_text = _cli("run", "--help")
    for status in (b"2 ", b"66 ", b"70 ", b"78 ", b"130 "):
        assert status in help_text.stdout


def test_the_policy_registry_lives_with_the_policies() -> None:
    assert tcg.machine.POLICIES is tcg.policies.POLICIES
    assert make_policy is tcg.policies.make_policy
    assert set(tcg.policies.POLICIES) == {"rcu", "rcu-qsbr", "rcu-sync", "rcu-batch", "flush"}


def test_only_a_block_too_large_makes_the_translator_shrink_blocks() -> None:
    asked: list[int] = []

    class EmptyCode(RiscvEngine):
        def generate(self, pc: int, max_insns: int) -> BlockCode:
            asked.append(max_insns)
            return BlockCode(int, pc + 4, b"")  # a bad block, not a large one

    machine = Machine(WORKLOADS["crc32"].path, engine=EmptyCode)
    with pytest.raises(MachineError, match="at least one byte"):
        machine.run()
    assert asked == [machine.max_block_insns]  # tried once, not halved
