"""The verdict and the table of rcu-compare, from synthetic documents."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from tcg.compare import comparisons, machine_info
from tcg.record import CellRecord
from tcg.report import table_rows, verdict_points

Json = dict[str, Any]

#: A policy's MIPS, or a function of (vCPUs, KiB) giving it.
Speed = float | Callable[[int, float], float]
BUFFERS = (32.0, 64.0)
VCPUS = (1, 4)


def _record(policy: str, vcpus: int, kb: float) -> Json:
    """A complete cell record that ran nothing, to fill in."""
    where = {"policy": policy, "vcpus": vcpus, "buffer_kb": kb, "workload": "parallel"}
    where |= {"host_calls": "outside", "engine": "tcg"}
    return CellRecord.failed(where, None).to_json()


def _cell(policy: str, vcpus: int, kb: float, mips: list[float], lost_ms: list[float]) -> Json:
    instructions = 1_000_000
    runs = [
        {
            "mips": m,
            "instructions": instructions,
            "seconds": instructions / m / 1e6,
            "executions": 1,
            "retranslations": 10,
            "held_back_kb": 0.0 if policy == "flush" else kb / 8,
            "pause_ms": lost,
            "stepped_aside_ms": 0.0,
            "pause_max_ms": lost / 4,
            "quiesce_max_ms": 0.0,
        }
        for m, lost in zip(mips, lost_ms, strict=True)
    ]
    median = sorted(mips)[len(mips) // 2]
    return _record(policy, vcpus, kb) | {
        "mips": median,
        "mips_ci": [min(mips), max(mips)],
        "mips_spread": {"min": min(mips), "max": max(mips), "runs": mips},
        "runs": runs,
        "repeat": len(runs),
        "retirements": 0 if policy == "flush" else 5,
        "flushes": 5 if policy == "flush" else 0,
        "translations": 100,
        "retranslations": 10,
        "pause_ms": {"total": lost_ms[0], "count": 1, "p50": 0.1, "p99": 0.2, "max": 0.3},
        "gp_latency_ms": None if policy == "flush" else {"p50": 1.0, "p99": 2.0, "max": 3.0},
        "peak_retired_kb": kb,
        "held_back_kb": 0.0 if policy == "flush" else kb / 8,
        "baseline_mips": 2.0,
        "baseline_fraction": median / 2.0,
        "violations": 0,
        "faults": 0,
        "output_ok": True,
        "completed": True,
    }


def _doc(speed: dict[str, Speed], noise: float, seed: int = 0, n: int = 5) -> Json:
    """Cells where each policy runs at ``speed[policy](vcpus, kb)`` MIPS, with noise."""
    rng = random.Random(seed)
    cells = []
    for policy, factor in speed.items():
        for v in VCPUS:
            for kb in BUFFERS:
                f = factor(v, kb) if callable(factor) else factor
                mips = [f * rng.lognormvariate(0, noise) for _ in range(n)]
                lost = [50.0 * rng.lognormvariate(0, noise) for _ in range(n)]
                cells.append(_cell(policy, v, kb, mips, lost))
    baselines = [
        _cell(p, v, 16384.0, [2.0] * n, [0.0] * n) | {"peak_live_kb": 175.0, "retirements": 0}
        for p in speed
        for v in VCPUS
    ]
    doc = {
        "version": 1,
        "scenario": "pressure",
        "machine": machine_info(),
        "config": {},
        "baselines": baselines,
        "cells": cells,
    }
    doc["comparisons"] = comparisons(doc)
    return doc


def test_rcu_against_flush_comes_first_and_names_the_faster() -> None:
    doc = _doc({"rcu-qsbr": 1.0, "rcu": 1.0, "flush": 1.5}, noise=0.02)
    points = verdict_points(doc)
    assert points[0].startswith("rcu against flush, over the 4 cells under pressure: ")
    assert "flush kept more throughput: rcu ran at 0.6" in points[0]
    assert "no measurable difference in vCPU time lost at this precision" in points[0]
    assert any(p.startswith("rcu-qsbr against rcu") for p in points[1:])


def test_identical_policies_are_named_a_tie() -> None:
    doc = _doc({"rcu": 1.0, "flush": 1.0}, noise=0.05, seed=3)
    assert all(i["better"] == "tie" for i in doc["comparisons"])
    first = verdict_points(doc)[0]
    assert "no measurable difference in throughput at this precision" in first
    assert "kept more" not in first
    assert "lost less" not in first


def test_where_the_winner_changes_with_the_buffer_it_says_so() -> None:
    # rcu wins clearly at 64 KiB, flush at 32 KiB; pooled, they are even.
    def rcu(v: int, kb: float) -> float:
        return 1.0 if kb == 32 else 2.0

    def flush(v: int, kb: float) -> float:
        return 2.0 if kb == 32 else 1.0

    doc = _doc({"rcu": rcu, "flush": flush}, noise=0.01)
    points = verdict_points(doc)
    assert "no measurable difference in throughput" in points[0]
    changes = next(p for p in points if p.startswith("Single cells that differ in throughput"))
    assert "flush at 1 vCPU and 32 KiB" in changes
    assert "rcu at 4 vCPUs and 64 KiB" in changes


def test_wide_intervals_ask_for_more_runs() -> None:
    noisy = verdict_points(_doc({"rcu": 1.0, "flush": 1.1}, noise=0.5, n=3))
    precision = next(p for p in noisy if p.startswith("Precision: "))
    assert "--repeat" in precision
    assert "--min-run-seconds" in precision
    precise = verdict_points(_doc({"rcu": 1.0, "flush": 1.1}, noise=0.005, n=8))
    assert "--repeat" not in next(p for p in precise if p.startswith("Precision: "))


def test_memory_held_back_is_defined_once_and_zero_for_flush() -> None:
    points = verdict_points(_doc({"rcu": 1.0, "flush": 1.0}, noise=0.05))
    held = next(p for p in points if p.startswith("Memory held back"))
    assert "waiting for a grace period" in held
    assert "8.0 KiB under rcu, 0.0 KiB under flush" in held


@pytest.mark.parametrize("wide", [False, True])
def test_the_compact_table_fits_80_columns(wide: bool) -> None:
    head, rows = table_rows(_doc({"rcu-qsbr": 1.0, "flush": 1.0}, noise=0.05), wide=wide)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    assert "95% CI" in head
    if not wide:
        assert sum(widths) + len(widths) - 1 <= 80
    else:
        assert {"transl", "retrans", "GP p99 ms", "retired KiB"} <= set(head)


def test_the_verdict_counts_every_run_and_names_failures() -> None:
    doc = _doc({"rcu": 1.0, "flush": 1.0}, noise=0.05, n=3)
    assert verdict_points(doc)[-1].startswith("All 36 runs were correct (baselines included)")
    doc["baselines"][0]["violations"] = 1
    assert verdict_points(doc)[-1] == "1 cell(s) FAILED a correctness check (see above)."
