"""call_rcu batching: how batch_size and batch_delay trade latency for overhead.

Run: ``python benchmarks/callbacks.py [--quick]``. A producer queues
callbacks at a steady rate (a server retiring objects) while a reader thread
keeps entering read sections. For each (batch_size, batch_delay) the table
shows the enqueue-to-invocation latency, the callbacks each grace period
covers, and the producer's cost per call_rcu, next to the cost of
``with threading.Lock():`` measured in the same run. A flood (as fast as the
producer can queue) shows the throughput ceiling.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

if not __package__:  # run as ``python benchmarks/NAME.py``: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rcu
from benchmarks._common import banner, machine, ns_per_op, table


def steady(batch_size: int, batch_delay: float, rate: int, seconds: float) -> tuple[float, ...]:
    domain = rcu.Domain(name="bench-batch", batch_size=batch_size, batch_delay=batch_delay)
    latencies: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        r = domain.reader()
        while not stop.is_set():
            with r:
                pass
            stop.wait(0.0005)  # a reader that reads now and then
        domain.unregister_thread()

    def done(enqueued: int) -> None:
        latencies.append(time.perf_counter_ns() - enqueued)

    t = threading.Thread(target=reader, name="bench-reader")
    t.start()
    interval = 1.0 / rate
    total = int(rate * seconds)
    spent = 0
    start = time.perf_counter()
    for i in range(total):
        # Pace the producer; sleeping in chunks keeps the timer overhead low.
        target = start + i * interval
        ahead = target - time.perf_counter()
        if ahead > 0.001:
            time.sleep(ahead)
        t0 = time.perf_counter_ns()
        domain.call_rcu(done, t0)
        spent += time.perf_counter_ns() - t0
    assert domain.barrier(30)
    stop.set()
    t.join()
    stats = domain.statistics()
    domain.close()
    latencies.sort()
    p50 = latencies[len(latencies) // 2] / 1e6
    p99 = latencies[int(len(latencies) * 0.99)] / 1e6
    per_gp = stats.callbacks_invoked / max(1, stats.grace_periods)
    return p50, p99, per_gp, spent / total


def flood(batch_size: int, batch_delay: float, total: int) -> tuple[float, float]:
    domain = rcu.Domain(name="bench-flood", batch_size=batch_size, batch_delay=batch_delay)
    start = time.perf_counter()
    for i in range(total):
        domain.call_rcu(int, i)
    assert domain.barrier(60)
    elapsed = time.perf_counter() - start
    stats = domain.statistics()
    domain.close()
    return total / elapsed, stats.callbacks_invoked / max(1, stats.grace_periods)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs")
    args = parser.parse_args()
    seconds = 0.5 if args.quick else 2.0
    rate = 20_000
    print(f"# call_rcu batching ({machine()})")
    lock_ns = ns_per_op("with lock: pass", {"lock": threading.Lock()}, 200_000, 5)
    print(f"`with threading.Lock():` here: {lock_ns:.0f} ns")

    banner(f"Steady producer, {rate:,} callbacks/s, one reader")
    rows = []
    for batch_size in (32, 256, 1024, 4096):
        for batch_delay in (0.001, 0.01, 0.05):
            p50, p99, per_gp, cost = steady(batch_size, batch_delay, rate, seconds)
            rows.append((batch_size, batch_delay * 1e3, p50, p99, per_gp, cost, cost / lock_ns))
    print(
        table(
            [
                "batch_size",
                "batch_delay ms",
                "latency p50 ms",
                "p99 ms",
                "callbacks/GP",
                "ns per call_rcu",
                "x with lock:",
            ],
            rows,
        )
    )

    banner("Flood: one producer queues as fast as it can")
    total = 200_000 if args.quick else 1_000_000
    flood_rows = []
    for batch_size in (32, 1024, 4096):
        runs = [flood(batch_size, 0.01, total) for _ in range(3)]
        flood_rows.append(
            (
                batch_size,
                statistics.median(r[0] for r in runs) / 1e3,
                statistics.median(r[1] for r in runs),
            )
        )
    print(table(["batch_size", "k callbacks/s", "callbacks/GP"], flood_rows))


if __name__ == "__main__":
    main()
