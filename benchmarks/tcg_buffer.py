"""Costs on the cpu loop's hot path: TB lookup and the reclamation oracle.

Run: ``python benchmarks/tcg_buffer.py [--quick]``. Each line is one
operation in a ``timeit`` loop, with its ratio to ``with threading.Lock():``
measured in the same run, and the policies' read-side hooks per TB boundary.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

if not __package__:  # run as ``python benchmarks/tcg_buffer.py``: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import quiescent
import rcu
from benchmarks._common import banner, machine, ns_per_op, table
from tcg import RcuRetire, StopTheWorldFlush, TranslationBuffer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs")
    args = parser.parse_args()
    number, repeat = (50_000, 3) if args.quick else (300_000, 7)
    print(f"# tcg hot-path costs ({machine()})")
    world = quiescent.World()
    buffer = TranslationBuffer(1 << 20, 8, StopTheWorldFlush(world))
    tb = buffer.add(0x1000, 0x1010, int, b"x" * 300)
    cache = buffer.new_jump_cache()
    buffer.lookup(cache, 0x1000)
    cold = buffer.new_jump_cache()
    cpu = world.register(name="bench-vcpu")
    epoch = RcuRetire(rcu.Domain(name="bench-epoch"))
    qsbr = RcuRetire(rcu.Domain("qsbr", name="bench-qsbr"))
    epoch_hooks, qsbr_hooks = epoch.vcpu_hooks(), qsbr.vcpu_hooks()
    epoch_hooks.enter()  # boundaries happen inside the read side
    qsbr_hooks.enter()
    env: dict[str, object] = {
        "lock": threading.Lock(),
        "buffer": buffer,
        "lookup": buffer.lookup,
        "cache": cache,
        "cold": cold,
        "tb": tb,
        "gens": buffer.generations,
        "cpu": cpu,
        "epoch": epoch_hooks,
        "qsbr": qsbr_hooks,
    }
    cases = [
        ("bare loop", "pass"),
        ("with lock:", "with lock: pass"),
        ("lookup, jump-cache hit", "lookup(cache, 0x1000)"),
        ("lookup, index hit (cache cleared)", "cold[1024] = None; lookup(cold, 0x1000)"),
        ("oracle: tb.check(gens)", "tb.check(gens)"),
        ("oracle inlined: gens[tb.region] != tb.generation", "gens[tb.region] != tb.generation"),
        ("with cpu.running():", "with cpu.running(): pass"),
        ("rcu epoch boundary (unlock + lock)", "epoch.boundary()"),
        ("rcu qsbr boundary (quiescent_state)", "qsbr.boundary()"),
    ]
    banner("ns per operation (median)")
    results = {name: ns_per_op(stmt, env, number, repeat) for name, stmt in cases}
    base = results["with lock:"]
    print(
        table(
            ["operation", "ns/op", "x with lock:"], [(n, v, v / base) for n, v in results.items()]
        )
    )
    cpu.unregister()
    epoch_hooks.leave()
    qsbr_hooks.leave()
    for policy in (epoch, qsbr):
        policy.domain.unregister_thread()
        policy.close()


if __name__ == "__main__":
    main()
