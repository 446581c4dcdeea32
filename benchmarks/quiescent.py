"""Benchmarks of :mod:`quiescent`: the running() fast path and the time to quiesce.

Run as ``python benchmarks/quiescent.py`` (about 20 seconds). Everything runs
in one process, every figure is the median of repeated runs, and each is
printed next to a baseline measured in the same run:

* entering and leaving ``running()`` with no exclusive section pending,
  against ``with lock:`` on an uncontended ``threading.Lock``;
* the time an exclusive section waits for N busy vCPUs to leave ``running()``
  (they check ``exit_requested`` every K loop iterations), against a
  ``threading.Event`` round trip between two threads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import quiescent


def per_op_ns(fn: object, ops: int, repeats: int) -> float:
    """Median over ``repeats`` runs of the time per operation of ``fn(ops)``, in ns."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn(ops)  # type: ignore[operator]
        samples.append((time.perf_counter_ns() - start) / ops)
    return statistics.median(samples)


def bench_enter_leave(ops: int, repeats: int) -> tuple[float, float, float]:
    """(empty loop, with lock:, with cpu.running():) in ns per iteration."""
    world = quiescent.World(name="bench")
    cpu = world.register(name="bench")
    lock = threading.Lock()
    section = cpu.running()

    def empty(n: int) -> None:
        for _ in range(n):
            pass

    def with_lock(n: int) -> None:
        for _ in range(n):
            with lock:
                pass

    def with_running(n: int) -> None:
        for _ in range(n):
            with section:
                pass

    try:
        results = (
            per_op_ns(empty, ops, repeats),
            per_op_ns(with_lock, ops, repeats),
            per_op_ns(with_running, ops, repeats),
        )
    finally:
        cpu.unregister()
    return results


def bench_event_round_trip(trips: int, repeats: int) -> float:
    """Median time of a ping-pong between two threads over two Events, in ns."""
    ping, pong = threading.Event(), threading.Event()
    stop = [False]

    def responder() -> None:
        while True:
            if not ping.wait(10):
                raise RuntimeError("round-trip benchmark: no ping for 10 s")
            ping.clear()
            if stop[0]:
                return
            pong.set()

    thread = threading.Thread(target=responder, name="responder")
    thread.start()

    def run(n: int) -> None:
        for _ in range(n):
            ping.set()
            if not pong.wait(10):
                raise RuntimeError("round-trip benchmark: no pong for 10 s")
            pong.clear()

    try:
        return per_op_ns(run, trips, repeats)
    finally:
        stop[0] = True
        ping.set()
        thread.join(10)


def bench_quiesce(vcpus: int, k: int, sections: int) -> tuple[float, float, float]:
    """p50 and p90 time to quiesce and p50 pause (ns) of ``sections`` sections."""
    world = quiescent.World(name=f"q{vcpus}x{k}")
    ready = threading.Barrier(vcpus + 1)
    done = [False]

    def vcpu(index: int) -> None:
        cpu = world.register(name=f"vcpu{index}")
        ready.wait(10)
        x = 0
        while not done[0]:
            with cpu.running():
                while not cpu.exit_requested and not done[0]:
                    for _ in range(k):  # one block: K iterations between checks
                        x += 1
            cpu.process_work()
        cpu.unregister()

    threads = [threading.Thread(target=vcpu, args=(i,), name=f"vcpu{i}") for i in range(vcpus)]
    for thread in threads:
        thread.start()
    ready.wait(10)
    try:
        for _ in range(sections):
            time.sleep(0.002)  # let the vCPUs get back into running()
            with world.exclusive():
                pass
    finally:
        done[0] = True
        for thread in threads:
            thread.join(10)
            if thread.is_alive():
                raise RuntimeError(f"{thread.name} did not stop")
    stats = world.statistics()
    ttq = stats.time_to_quiesce
    return ttq.p50 * 1e9, ttq.p90 * 1e9, stats.pause.p50 * 1e9


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--ops", type=int, default=200_000, help="enter/leave per run")
    parser.add_argument("--sections", type=int, default=30, help="exclusive sections per run")
    args = parser.parse_args(argv)
    repeats = args.repeats

    print(f"Python {sys.version.split()[0]}, switch interval {sys.getswitchinterval() * 1e3} ms")
    empty, lock, running = bench_enter_leave(args.ops, repeats)
    print("\nUncontended enter + leave (ns per pair, loop overhead subtracted)")
    ratio = (running - empty) / (lock - empty)
    print(f"  with lock:            {lock - empty:8.1f}")
    print(f"  with cpu.running():   {running - empty:8.1f}   ratio {ratio:.2f}x")

    round_trip = bench_event_round_trip(2_000, repeats)
    print(f"\nthreading.Event round trip between two threads: {round_trip / 1e3:.1f} us")

    print("\nTime to quiesce p50 / p90, pause p50, in us; (p50 time to quiesce / Event round trip)")
    ks = (10, 1_000, 10_000)
    print("  vCPUs " + "".join(f"{'K=' + str(k):>36}" for k in ks))
    for vcpus in (1, 2, 4, 8):
        cells = []
        for k in ks:
            runs = [bench_quiesce(vcpus, k, args.sections) for _ in range(3)]
            p50, p90, pause = (statistics.median(r[i] for r in runs) for i in range(3))
            cells.append(
                f"{p50 / 1e3:7.1f} /{p90 / 1e3:7.1f} /{pause / 1e3:7.1f} ({p50 / round_trip:5.1f}x)"
            )
        print(f"  {vcpus:5d} " + "".join(f"{c:>36}" for c in cells))


if __name__ == "__main__":
    main()
