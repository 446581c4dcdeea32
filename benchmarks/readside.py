"""Read-side costs of rcu against threading.Lock and readerwriterlock.

Run: ``python benchmarks/readside.py [--quick]``. Everything is measured in
this one process; ratios compare against ``with threading.Lock():`` measured
in the same run, so they carry over between machines better than the
nanoseconds do.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from readerwriterlock import rwlock

if not __package__:  # run as ``python benchmarks/NAME.py``: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rcu
from benchmarks._common import banner, machine, median_of, ns_per_op, table


def read_side_costs(number: int, repeat: int) -> None:
    banner("Cost of one read section (ns per enter + leave, median)")
    epoch = rcu.Domain(name="bench-epoch")
    qsbr = rcu.Domain("qsbr", name="bench-qsbr")
    lock = threading.Lock()
    env: dict[str, object] = {
        "lock": lock,
        "acquire": lock.acquire,
        "release": lock.release,
        "rw_read": rwlock.RWLockRead().gen_rlock(),
        "rw_fair": rwlock.RWLockFair().gen_rlock(),
        "d": epoch,
        "r": epoch.reader(),
        "q": qsbr.reader(),
        "qd": qsbr,
    }
    cases = [
        ("bare loop", "pass"),
        ("lock.acquire(); lock.release()", "acquire(); release()"),
        ("with lock:", "with lock: pass"),
        ("readerwriterlock RWLockRead", "with rw_read: pass"),
        ("readerwriterlock RWLockFair", "with rw_fair: pass"),
        ("with d.read():", "with d.read(): pass"),
        ("with r:", "with r: pass"),
        ("r.lock(); r.unlock()", "r.lock(); r.unlock()"),
        ("qsbr: with q:", "with q: pass"),
        ("qsbr: q.quiescent_state()", "q.quiescent_state()"),
        ("qsbr: qd.quiescent_state()", "qd.quiescent_state()"),
    ]
    results = {name: ns_per_op(stmt, env, number, repeat) for name, stmt in cases}
    base = results["with lock:"]
    print(
        table(
            ["operation", "ns/op", "x with lock:"], [(n, v, v / base) for n, v in results.items()]
        )
    )
    rw = min(results["readerwriterlock RWLockRead"], results["readerwriterlock RWLockFair"])
    print(f"\nreaderwriterlock's cheaper read lock is {rw / results['with r:']:.1f}x `with r:`")
    epoch.unregister_thread()
    qsbr.unregister_thread()
    epoch.close()
    qsbr.close()


def _reader_throughput(
    read_once: Callable[[], object],
    writer: Callable[[threading.Event], object] | None,
    seconds: float,
) -> tuple[float, float]:
    """Read sections per wall-clock second and per second of the reader's CPU time."""
    stop = threading.Event()
    writer_thread = None
    if writer is not None:
        writer_thread = threading.Thread(target=writer, args=(stop,), name="bench-writer")
        writer_thread.start()
    count = 0
    cpu_start = time.thread_time()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(1000):
            read_once()
        count += 1000
    cpu = time.thread_time() - cpu_start
    stop.set()
    if writer_thread is not None:
        writer_thread.join()
    return count / seconds, count / cpu


def throughput_under_writer(seconds: float, repeat: int) -> None:
    banner("Reader throughput while a writer updates in a loop (fraction of readers alone)")
    domain = rcu.Domain(name="bench-writer")
    ptr = rcu.Pointer({"v": 0}, domain)
    lock = rwlock.RWLockFair()

    def rcu_read() -> None:
        with domain.read():
            ptr.load()

    def rcu_writer(stop: threading.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            ptr.publish({"v": n})
            domain.synchronize()

    shared = {"v": 0}
    rlock, wlock = lock.gen_rlock(), lock.gen_wlock()

    def rw_read() -> None:
        with rlock:
            shared["v"]

    def rw_writer(stop: threading.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            with wlock:
                shared["v"] = n

    def busy_writer(stop: threading.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1

    cases: list[tuple[str, Callable[[], object], Callable[[threading.Event], object]]] = [
        ("rcu: publish + synchronize", rcu_read, rcu_writer),
        ("RWLockFair: write lock", rw_read, rw_writer),
        ("rcu, writer only burns CPU", rcu_read, busy_writer),
    ]
    rows = []
    for name, read, writer in cases:
        alone = [_reader_throughput(read, None, seconds) for _ in range(repeat)]
        busy = [_reader_throughput(read, writer, seconds) for _ in range(repeat)]
        wall = statistics.median(b[0] for b in busy) / statistics.median(a[0] for a in alone)
        cpu = statistics.median(b[1] for b in busy) / statistics.median(a[1] for a in alone)
        rows.append((name, statistics.median(a[0] for a in alone) / 1e3, wall, cpu))
    print(
        table(
            ["writer", "k reads/s alone", "fraction kept (wall)", "fraction kept (reader CPU)"],
            rows,
        )
    )
    print(
        "(wall: with the GIL any runnable writer takes about half the interpreter; "
        "reader CPU: reads per second the reader thread actually ran)"
    )
    domain.unregister_thread()
    domain.close()


def grace_period_latency(repeat: int) -> None:
    banner("Grace-period latency (synchronize() with idle registered readers)")
    rows = []
    for flavor in ("epoch", "qsbr"):
        for idle in (0, 1, 8):
            domain = rcu.Domain(flavor, name=f"bench-gp-{flavor}")
            registered = threading.Barrier(idle + 1)
            release = threading.Event()

            def idle_reader(
                d: rcu.Domain = domain,
                registered: threading.Barrier = registered,
                release: threading.Event = release,
            ) -> None:
                d.register_thread()
                d.offline()  # qsbr: idle means offline; epoch: outside sections
                registered.wait()
                release.wait()
                d.unregister_thread()

            threads = [threading.Thread(target=idle_reader) for _ in range(idle)]
            for t in threads:
                t.start()
            registered.wait()
            ns = ns_per_op("d.synchronize()", {"d": domain}, 2000, repeat)
            release.set()
            for t in threads:
                t.join()
            rows.append((flavor, idle, ns / 1e3))
            domain.close()
    print(table(["flavor", "idle readers", "us per synchronize()"], rows))
    event_rt = _event_round_trip()
    print(f"(a threading.Event ping-pong round trip here: {event_rt / 1e3:.1f} us)")


def _event_round_trip(rounds: int = 2000) -> float:
    ping, pong = threading.Event(), threading.Event()

    def echo() -> None:
        for _ in range(rounds):
            ping.wait()
            ping.clear()
            pong.set()

    t = threading.Thread(target=echo)
    t.start()
    start = time.perf_counter_ns()
    for _ in range(rounds):
        ping.set()
        pong.wait()
        pong.clear()
    elapsed = time.perf_counter_ns() - start
    t.join()
    return elapsed / rounds


def callback_throughput(total: int, repeat: int) -> None:
    banner("call_rcu end to end (enqueue to invocation)")
    rows = []
    for flavor in ("epoch", "qsbr"):

        def run(flavor: str = flavor) -> float:
            domain = rcu.Domain(flavor, name="bench-cb")
            noop = int
            start = time.perf_counter()
            for i in range(total):
                domain.call_rcu(noop, i)
            assert domain.barrier(60)
            elapsed = time.perf_counter() - start
            stats = domain.statistics()
            run.per_gp = stats.callbacks_invoked / max(1, stats.grace_periods)  # type: ignore[attr-defined]
            domain.close()
            return total / elapsed

        rate, spread = median_of(run, repeat)
        rows.append((flavor, rate / 1e3, spread / 1e3, run.per_gp))  # type: ignore[attr-defined]
    print(table(["flavor", "k callbacks/s", "spread", "callbacks per grace period"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs")
    args = parser.parse_args()
    number, repeat, seconds = (50_000, 3, 0.3) if args.quick else (200_000, 7, 1.0)
    print(f"# rcu read-side benchmarks ({machine()})")
    read_side_costs(number, repeat)
    throughput_under_writer(seconds, 3 if args.quick else 5)
    grace_period_latency(3 if args.quick else 5)
    callback_throughput(100_000 if args.quick else 500_000, 3)


if __name__ == "__main__":
    main()
