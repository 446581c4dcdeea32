"""Benchmarks of the tinyrv adapter: its speed, and the policies' costs on tinyrv.

Run as ``python benchmarks/tinyrv_adapter.py`` (about 30 seconds; ``--quick``
for a few). Needs tinyrv (``pip install --no-deps tinyrv==0.1.0``). Two
tables, measured in one process:

* single-thread speed in M guest instructions per second on the compute
  kernels: stock tinyrv (``sim.run``, its own decode cache) against
  :class:`tcg.adapters.tinyrv.TinyrvMachine` (tinyrv's handlers, blocks in
  our buffer) and :class:`tcg.Machine` (our translated code), each over the
  first ``--insns`` instructions;
* for a small buffer and 2 vCPUs, each policy's cost on tinyrv next to
  ours, on whole runs of a code-heavy workload: stop-the-world pauses (a
  flush stops every vCPU), translator waits for space (RCU's only cost to
  vCPUs), each as a count, p99 and max in ms, and peak retired KiB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import banner, machine, table
from benchmarks.emulator import KERNELS, tinyrv_mips
from tcg.adapters.tinyrv import INSTALL, TinyrvMachine, tinyrv_available
from tcg.machine import Machine, MachineResult
from tcg.workloads import WORKLOADS


def engine_mips(cls: type[Machine], name: str, limit: int, repeat: int) -> float:
    """Median M instructions per second of a one-vCPU machine over ``limit`` instructions."""
    samples = []
    for _ in range(repeat):
        result = cls(WORKLOADS[name].path, max_instructions=limit).run()
        samples.append(result.mips)
    return statistics.median(samples)


def policy_costs(
    cls: type[Machine], workload: str, buffer_kb: float, repeat: int
) -> list[list[object]]:
    """Per policy (median run): flushes or retirements; stop-the-world pauses and
    translator waits (count, p99 and max in ms); peak retired KiB; MIPS."""
    rows: list[list[object]] = []
    for policy in ("rcu", "rcu-qsbr", "flush"):
        runs: list[MachineResult] = []
        for _ in range(repeat):
            r = cls(WORKLOADS[workload].path, vcpus=2, policy=policy, buffer_kb=buffer_kb).run()
            assert r.stdout == WORKLOADS[workload].expected_output(2), (cls, policy)
            runs.append(r)
        r = sorted(runs, key=lambda run: run.mips)[len(runs) // 2]
        p = r.policy
        rows.append(
            [
                policy,
                p.flushes or p.retirements,
                p.flush_latency.count,
                p.flush_latency.p99 * 1e3,
                p.flush_latency.max * 1e3,
                p.translator_waits,
                p.wait.p99 * 1e3,
                p.wait.max * 1e3,
                r.buffer.peak_retired_bytes / 1024,
                r.mips,
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, shorter runs")
    parser.add_argument("--insns", type=int, default=200_000, help="instructions per speed run")
    parser.add_argument("--workload", default="parallel", help="workload of the policy table")
    parser.add_argument("--buffer-kb", type=float, default=16, help="buffer of the policy table")
    args = parser.parse_args(argv)
    if not tinyrv_available():
        print(f"tinyrv is not installed: {INSTALL}", file=sys.stderr)
        return 2
    repeat = 1 if args.quick else 3
    limit = 20_000 if args.quick else args.insns
    print(machine())

    banner("Single-thread speed (M guest instructions/s)")
    rows: list[list[Any]] = []
    for name in KERNELS[:1] if args.quick else KERNELS:
        stock = tinyrv_mips(name, limit, repeat)
        assert stock is not None
        adapted = engine_mips(TinyrvMachine, name, limit, repeat)
        ours = engine_mips(Machine, name, limit, repeat)
        rows.append([name, stock, adapted, f"{adapted / stock:.2f}x", ours, f"{ours / stock:.0f}x"])
    headers = ["kernel", "stock tinyrv", "adapter", "vs stock", "tcg", "tcg vs stock"]
    print(table(headers, rows))

    workload = "smc" if args.quick else args.workload
    for label, cls in (("tinyrv", TinyrvMachine), ("tcg", Machine)):
        banner(f"Policies on {label}: {workload}, 2 vCPUs, {args.buffer_kb:g} KiB buffer")
        start = time.perf_counter()
        rows = policy_costs(cls, workload, args.buffer_kb, repeat)
        headers = [
            "policy", "flush/retire", "stops", "stop p99 ms", "stop max ms",
            "waits", "wait p99 ms", "wait max ms", "peak retired KiB", "MIPS",
        ]  # fmt: skip
        print(table(headers, rows))
        print(f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
