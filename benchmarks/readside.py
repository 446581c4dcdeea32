"""Read-side costs of rcu against threading.Lock and readerwriterlock.

Run: ``python benchmarks/readside.py [--quick] [--busy]``. Everything is
measured in this one process; ratios compare against ``with
threading.Lock():`` measured in the same run, so they carry over between
machines better than the nanoseconds do. The read side measured is
``rcu.implementation`` (the C extension where it is built); run with
``RCU_PURE_PYTHON=1`` for the pure-Python reference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from readerwriterlock import rwlock

if not __package__:  # run as ``python benchmarks/NAME.py``: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rcu
from benchmarks._common import banner, machine, median_of, ns_per_op, table


def read_side_costs(number: int, repeat: int) -> None:
    banner(
        f"Cost of one read section (ns per enter + leave, median; "
        f"rcu.implementation = {rcu.implementation!r})"
    )
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


def _busy_reader(
    domain: rcu.Domain, stop: threading.Event, ready: threading.Barrier, counts: list[int]
) -> None:
    """A vCPU-like reader: a read section cut at a block boundary about every microsecond."""
    reader = domain.reader()
    if domain.flavor == "qsbr":
        boundary = reader.quiescent_state
        enter, leave = reader.online, reader.offline
    else:  # as tcg.RcuRetire's vCPUs: one long section, relocked at every block
        boundary = reader.relock
        enter, leave = reader.lock, reader.unlock
    ready.wait()
    boundaries = 0
    enter()
    while not stop.is_set():
        for _ in range(100):
            x = 0
            for i in range(8):  # a short block's worth of work
                x += i
            boundary()
        boundaries += 100
    leave()
    counts.append(boundaries)
    domain.unregister_thread()


def _busy_run(
    flavor: str, readers: int, seconds: float, *, writers: int
) -> tuple[list[float], float]:
    """Grace-period latencies (s) of ``writers`` threads that each synchronize 1 ms
    apart (none: the readers alone), and the readers' boundaries per second."""
    domain = rcu.Domain(flavor, name=f"bench-busy-{flavor}")
    stop = threading.Event()
    ready = threading.Barrier(readers + 1)
    counts: list[int] = []
    threads = [
        threading.Thread(target=_busy_reader, args=(domain, stop, ready, counts))
        for _ in range(readers)
    ]
    for t in threads:
        t.start()
    ready.wait()
    latencies: list[float] = []
    lock = threading.Lock()  # guards latencies
    start = time.perf_counter()
    end = start + seconds

    def writer() -> None:
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            domain.synchronize()
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
            time.sleep(0.001)

    writer_threads = [threading.Thread(target=writer) for _ in range(writers)]
    for t in writer_threads:
        t.start()
    if not writers:
        time.sleep(seconds)
    for t in writer_threads:
        t.join()
    stop.set()
    elapsed = time.perf_counter() - start
    for t in threads:
        t.join()
    domain.close()
    return latencies, sum(counts) / elapsed


def _p50_p99_ms(latencies: list[float]) -> tuple[float, float]:
    latencies = sorted(latencies)
    p50 = latencies[len(latencies) // 2] * 1e3
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3
    return p50, p99


def grace_period_busy_readers(seconds: float, repeat: int, counts: Sequence[int]) -> None:
    banner(
        "Grace periods with readers busy at block boundaries "
        f"(synchronize() 1 ms apart, {repeat} x {seconds:g} s)"
    )
    rows = []
    for flavor in ("epoch", "qsbr"):
        for readers in counts:
            lat: list[float] = []
            kept = []
            for _ in range(repeat):  # interleaved: alone, with writer, alone, ...
                _, alone = _busy_run(flavor, readers, seconds, writers=0)
                gp, busy = _busy_run(flavor, readers, seconds, writers=1)
                lat += gp
                kept.append(busy / alone)
            p50, p99 = _p50_p99_ms(lat)
            rows.append(
                (
                    flavor,
                    readers,
                    len(lat),
                    p50,
                    p99,
                    statistics.median(kept),
                    f"{min(kept):.2f}-{max(kept):.2f}",
                )
            )
    print(
        table(
            [
                "flavor",
                "busy readers",
                "grace periods",
                "p50 ms",
                "p99 ms",
                "boundaries kept",
                "spread",
            ],
            rows,
        )
    )
    print(
        f"(switch interval {sys.getswitchinterval() * 1e3:g} ms; boundaries kept: "
        "boundaries per second with the writer over without it, runs interleaved)"
    )


def grace_period_many_readers(seconds: float, readers: int = 64, writers: int = 4) -> None:
    banner(f"{readers} busy readers, {writers} writers synchronizing 1 ms apart ({seconds:g} s)")
    latencies, _ = _busy_run("epoch", readers, seconds, writers=writers)
    p50, p99 = _p50_p99_ms(latencies)
    print(table(["synchronize() calls", "p50 ms", "p99 ms"], [(len(latencies), p50, p99)]))


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
    parser.add_argument(
        "--busy", action="store_true", help="only the grace periods under busy readers"
    )
    args = parser.parse_args()
    number, repeat, seconds = (50_000, 3, 0.3) if args.quick else (200_000, 7, 1.0)
    print(f"# rcu read-side benchmarks ({machine()})")
    if args.busy:
        grace_period_busy_readers(seconds, 3, (1, 2, 4, 8))
        grace_period_many_readers(3 * seconds)
        return
    read_side_costs(number, repeat)
    throughput_under_writer(seconds, 3 if args.quick else 5)
    grace_period_latency(3 if args.quick else 5)
    grace_period_busy_readers(0.5 if args.quick else 1.0, 2 if args.quick else 3, (1, 2, 4, 8))
    grace_period_many_readers(1.0 if args.quick else 3.0)
    callback_throughput(100_000 if args.quick else 500_000, 3)


if __name__ == "__main__":
    main()
