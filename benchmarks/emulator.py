"""Benchmarks of the RISC-V front end: translation cost and single-thread speed.

Run as ``python benchmarks/emulator.py`` (about 20 seconds; ``--quick`` for
a few). Everything runs in one process on one thread, each figure is the
median of repeated runs, and each speed is printed next to baselines
measured in the same run:

* the cost of translating one block (decode, generate Python source,
  ``compile``), per workload, with the size of the blocks and of their host
  code (``marshal``-ed bytecode and constants);
* guest instructions per second of :class:`tcg.riscv.Runner` (translated
  blocks) on each compute kernel, against the reference interpreter
  (:func:`tcg.riscv.step` on every instruction) and, if it is installed
  (``pip install --no-deps tinyrv``), tinyrv, a RISC-V simulator in Python
  by other authors, on the same ELF file. The baselines run the first
  ``--baseline-insns`` instructions only, to keep the run short;
* where the runner's time goes: translating blocks, running special
  instructions with the interpreter (system calls, atomics, fences), looking
  up the next block (estimated by replaying the recorded sequence of block
  lookups without running the blocks), and executing translated code (the
  rest);
* the multi-threaded machine on one vCPU (:class:`tcg.Machine`: the ``rcu``
  policy, a buffer large enough that nothing is retired, chained blocks)
  against the runner, interleaved run by run, with the 95 % interval of
  their ratio (t on log ratios of paired runs): what the cpu loop every
  emulator run goes through costs, read side, oracle and all, next to a loop
  that does nothing but look blocks up and call them.
  (``benchmarks/instructions.py`` counts host instructions instead of
  seconds, for before/after comparisons on a noisy machine.)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import banner, machine, table
from tcg import Machine
from tcg.riscv import Runner, TranslatedCode, parse_elf, translate
from tcg.riscv.runner import _RunnerHart
from tcg.stats import ratio_interval
from tcg.workloads import WORKLOADS

KERNELS = ("sort", "crc32", "matmul", "sieve")


def translation_costs(names: list[str], repeat: int) -> list[list[object]]:
    """Per workload: blocks, median us per translation, mean insns and host bytes."""
    rows: list[list[object]] = []
    for name in names:
        runner = Runner(WORKLOADS[name].path)
        runner.run()
        pcs = [pc for pc, tb in runner.blocks.items() if tb.n_insns]
        samples = []
        for _ in range(repeat):
            start = time.perf_counter_ns()
            for pc in pcs:
                translate(runner.ram, pc)
            samples.append((time.perf_counter_ns() - start) / len(pcs) / 1000)
        blocks = [runner.blocks[pc] for pc in pcs]
        rows.append(
            [
                name,
                len(pcs),
                statistics.median(samples),
                statistics.mean(tb.n_insns for tb in blocks),
                statistics.mean(len(tb.code_bytes) for tb in blocks),
                statistics.mean(len(tb.code_bytes) / tb.n_insns for tb in blocks),
            ]
        )
    return rows


def runner_mips(name: str, translate_blocks: bool, limit: int | None, repeat: int) -> float:
    """Median guest M instructions per second of the runner (whole program or ``limit``)."""
    samples = []
    for _ in range(repeat):
        runner = Runner(WORKLOADS[name].path, translate_blocks=translate_blocks)
        start = time.perf_counter()
        result = runner.run(max_instructions=limit)
        elapsed = time.perf_counter() - start
        if limit is None:
            assert result.stdout == WORKLOADS[name].expected_output(1), name
        samples.append(result.instructions / elapsed / 1e6)
    return statistics.median(samples)


def machine_mips(name: str, repeat: int) -> tuple[float, float, str]:
    """Median MIPS of a one-vCPU machine and of the runner, and their ratio.

    The two run alternately, so that both see the same load; the ratio is
    the geometric mean of the paired runs' ratios with its 95 % interval.
    """
    runs: dict[str, list[float]] = {"machine": [], "runner": []}
    for _ in range(max(2, repeat)):
        result = Machine(WORKLOADS[name].path).run()
        assert result.stdout == WORKLOADS[name].expected_output(1), name
        runs["machine"].append(result.mips)
        runs["runner"].append(runner_mips(name, True, None, 1))
    pairs = zip(runs["machine"], runs["runner"], strict=True)
    ratio = ratio_interval([[math.log(a / b) for a, b in pairs]])
    text = "-" if ratio is None else f"{ratio.estimate:.2f} ({ratio.low:.2f}-{ratio.high:.2f})"
    return statistics.median(runs["machine"]), statistics.median(runs["runner"]), text


def tinyrv_mips(name: str, limit: int, repeat: int) -> float | None:
    """tinyrv's M instructions per second on the first ``limit`` instructions, if installed."""
    try:
        import tinyrv  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None

    class Guest(tinyrv.sim):  # type: ignore[misc]
        """tinyrv's simulator with this project's loader and start state."""

        def __init__(self, data: bytes) -> None:
            super().__init__(xlen=32, trap_misaligned=True)
            image = parse_elf(data)
            for seg in image.segments:
                self.copy_in(seg.vaddr, seg.data)
            self.pc = image.entry
            self.x[2], self.x[10], self.x[11] = 16 << 20, 0, 1
            self.exited = False

        def _ecall(self, **_: Any) -> None:
            number = self.x[17]
            if number in (93, 94):
                self.exited = True
            elif number == 64:
                self.x[10] = self.x[12]
            else:
                self.x[10] = -38
            self.pc += 4

    data = WORKLOADS[name].path.read_bytes()
    samples: list[float] = []
    for _ in range(repeat):
        vm = Guest(data)
        start = time.perf_counter()
        vm.run(limit=limit, trace=False)
        elapsed = time.perf_counter() - start
        samples.append(int(vm.cycle) / elapsed / 1e6)
    return statistics.median(samples)


class TimedRunner(Runner):
    """A runner that accounts the time spent translating and in special instructions."""

    translate_ns = 0
    special_ns = 0

    def _translate(self, pc: int) -> TranslatedCode:
        start = time.perf_counter_ns()
        try:
            return super()._translate(pc)
        finally:
            self.translate_ns += time.perf_counter_ns() - start

    def _special(self, h: _RunnerHart) -> bool:
        start = time.perf_counter_ns()
        try:
            return super()._special(h)
        finally:
            self.special_ns += time.perf_counter_ns() - start


def block_trace(name: str) -> tuple[list[int], dict[int, Any]]:
    """The pcs of every block executed by a run, and the functions looked up."""
    runner = Runner(WORKLOADS[name].path)
    trace: list[int] = []
    original = runner._translate

    def recording(pc: int) -> TranslatedCode:
        tb = original(pc)
        if tb.n_insns:
            fn = tb.fn

            def record(h: Any, fn: Any = fn, pc: int = pc) -> int:
                trace.append(pc)
                return int(fn(h))

            runner._fns[pc] = record
        return tb

    runner._translate = recording  # type: ignore[method-assign]
    runner.run()
    return trace, dict(runner._fns)


def time_split(name: str) -> list[object]:
    """Shares of the run time: translation, specials, lookup (estimated), execution."""
    runner = TimedRunner(WORKLOADS[name].path)
    start = time.perf_counter_ns()
    result = runner.run()
    total = time.perf_counter_ns() - start
    trace, fns = block_trace(name)
    start = time.perf_counter_ns()
    for pc in trace:  # the runner's hot loop without the calls
        fn = fns.get(pc)
        if fn is None:
            continue
    lookup = time.perf_counter_ns() - start
    execute = total - runner.translate_ns - runner.special_ns - lookup
    return [
        name,
        total / 1e6,
        result.instructions / len(trace),
        100 * runner.translate_ns / total,
        100 * runner.special_ns / total,
        100 * lookup / total,
        100 * execute / total,
    ]


def main(argv: list[str] | None = None) -> int:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--baseline-insns", type=int, default=100_000)
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else 3
    print(machine())

    banner("Translation cost per block")
    rows = translation_costs(sorted(WORKLOADS), repeat)
    headers = ["workload", "blocks", "us/block", "insns/block", "host bytes", "bytes/insn"]
    print(table(headers, rows))

    banner("Single-thread speed (M guest instructions/s)")
    speed_rows: list[list[object]] = []
    for name in KERNELS:
        translated = runner_mips(name, True, None, repeat)
        interp = runner_mips(name, False, args.baseline_insns, repeat)
        tiny = tinyrv_mips(name, args.baseline_insns, repeat)
        speed_rows.append(
            [
                name,
                translated,
                interp,
                translated / interp,
                "-" if tiny is None else f"{tiny:.3f}",
                "-" if tiny is None else f"{translated / tiny:.0f}x",
            ]
        )
    headers = ["kernel", "translated", "interpreter", "ratio", "tinyrv", "vs tinyrv"]
    print(table(headers, speed_rows))

    banner("Where the runner's time goes (% of the run)")
    split_rows = [time_split(name) for name in (*KERNELS, "bigcode", "smc")]
    headers = ["workload", "ms", "insns/call", "translate", "special", "lookup", "execute"]
    print(table(headers, split_rows))

    banner("The machine on one vCPU, chained blocks, against the runner (M guest insns/s)")
    machine_rows = [[name, *machine_mips(name, 2 * repeat + 1)] for name in KERNELS]
    headers = ["kernel", "machine", "runner", "machine / runner (95% CI)"]
    print(table(headers, machine_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
