"""Every guest program runs to completion and prints exactly its modelled output."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tcg.machine import Machine
from tcg.riscv import Runner, run_program
from tcg.workloads import WORKLOADS, get
from tcg.workloads.build import BIN, CC, check, toolchain_version

SINGLE = sorted(name for name, w in WORKLOADS.items() if not w.multi_hart)


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_workload_output_single_hart(name: str) -> None:
    w = WORKLOADS[name]
    result = run_program(w.path)
    assert result.fault is None
    assert result.stopped == "exit"
    assert result.exit_code == 0
    assert result.stdout == w.expected_output(1)
    assert result.stderr == b""
    assert result.instructions > 1000


@pytest.mark.parametrize("harts", [2, 3, 4])
def test_atomics_counters_are_exact_on_several_harts(harts: int) -> None:
    w = get("atomics")
    result = run_program(w.path, harts=harts)
    assert (result.stopped, result.exit_code) == ("exit", 0)
    assert result.stdout == w.expected_output(harts)


@pytest.mark.parametrize("harts", [2, 3, 4])
@pytest.mark.parametrize("name", ["parallel", "stall"])
def test_shared_job_checksum_is_exact_on_several_harts(name: str, harts: int) -> None:
    w = get(name)
    result = run_program(w.path, harts=harts)
    assert (result.stopped, result.exit_code) == ("exit", 0)
    assert result.stdout == w.expected_output(harts)


def test_parallel_shares_the_work_between_harts() -> None:
    result = Machine(get("parallel").path, vcpus=4).run()
    alone = Machine(get("parallel").path).run().instructions
    # Each hart computes two of the eight slices: about a quarter of the job.
    assert all(n < alone / 2 for n in result.per_hart), (result.per_hart, alone)


@pytest.mark.parametrize("name", SINGLE)
def test_single_hart_programs_ignore_extra_harts(name: str) -> None:
    w = WORKLOADS[name]
    result = run_program(w.path, harts=3)
    assert (result.stopped, result.exit_code) == ("exit", 0)
    assert result.stdout == w.expected_output(3)


@pytest.mark.parametrize("name", ["smc", "atomics"])
def test_interpreter_alone_agrees(name: str) -> None:
    w = WORKLOADS[name]
    translated = Runner(w.path, harts=2).run()
    interpreted = Runner(w.path, harts=2, translate_blocks=False).run()
    assert interpreted.stdout == translated.stdout == w.expected_output(2)
    assert interpreted.blocks_translated == 0


def test_smc_needs_invalidation() -> None:
    # With the store hook disabled, stale translations of the rewritten
    # buffer run and the checksum goes wrong: the test above can fail.
    runner = Runner(get("smc").path)
    runner._on_store = lambda addr, size: None  # type: ignore[method-assign]
    result = runner.run()
    assert result.stdout != get("smc").expected_output(1)


def test_bigcode_has_a_large_footprint() -> None:
    result = run_program(get("bigcode").path)
    assert result.blocks_translated > 3000


def test_registry() -> None:
    names = {"sort", "crc32", "matmul", "sieve", "bigcode", "smc", "atomics", "parallel", "stall"}
    assert names <= set(WORKLOADS)
    for w in WORKLOADS.values():
        assert w.path.is_file()
        assert w.expected_output(1).endswith(b"\n")
    with pytest.raises(KeyError, match="known"):
        get("nope")
    with pytest.raises(ValueError, match="harts"):
        get("sort").expected_output(0)


def test_committed_builds_are_reproducible() -> None:
    version = toolchain_version()
    if version is None:
        pytest.skip(f"{CC} is not installed: cannot rebuild the workloads")
    recorded = (BIN / "TOOLCHAIN").read_text(encoding="utf-8").strip()
    if version != recorded:
        pytest.skip(f"installed {version!r} differs from the recorded {recorded!r}")
    assert check() == []


@pytest.mark.parametrize("name", SINGLE)
def test_same_output_under_qemu_user(name: str) -> None:
    qemu = shutil.which("qemu-riscv32")
    if qemu is None:
        pytest.skip("qemu-riscv32 (Debian qemu-user) is not installed")
    if name == "smc":
        pytest.skip("qemu-user maps .bss non-executable; smc needs flat RAM")
    w = WORKLOADS[name]
    out = subprocess.run([qemu, str(w.path)], capture_output=True, timeout=60, check=True)
    assert out.stdout == w.expected_output(1)


@pytest.mark.parametrize("max_block_insns", [1, 3, 1024])
@pytest.mark.parametrize("name", ["sort", "smc", "atomics"])
def test_output_does_not_depend_on_block_size(name: str, max_block_insns: int) -> None:
    w = WORKLOADS[name]
    runner = Runner(w.path, harts=2, max_block_insns=max_block_insns)
    result = runner.run()
    assert result.stdout == w.expected_output(2)
    assert all(tb.n_insns <= max_block_insns for tb in runner.blocks.values())
