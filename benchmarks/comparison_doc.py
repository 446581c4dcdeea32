"""Regenerate ``docs/comparison.md``: the documented comparison, measured, not typed.

Run as ``python benchmarks/comparison_doc.py`` (about eight minutes on two
cores). It runs four measurements in this process, one after the other:

* ``pressure``: ``rcu``, ``rcu-qsbr`` and ``flush`` on the ``parallel``
  workload, 1, 2, 4 and 8 vCPUs, buffers from a fifth of its code to more
  than all of it (what ``rcu-compare`` runs by default, plus 8 vCPUs);
* ``batching``: ``rcu-sync`` (a grace period per retirement, waited for by
  the translator), ``rcu`` (one region in flight) and ``rcu-batch`` (up to
  four regions share a grace period) on the same grid, 1, 2 and 4 vCPUs;
* ``stall``: ``rcu-compare --scenario stall`` (one vCPU asleep in 100 ms host
  calls, inside guest code and outside it);
* ``quiesce``: the time an exclusive section waits for busy vCPUs that check
  for exit requests every K loop iterations (``benchmarks/quiescent.py``).

It stores each result as JSON in ``docs/comparison/`` with the plots of the
pressure run, then writes the page: the tables, the plots, and for each of
five shapes the literature predicts whether this measurement shows it, with
the figure, computed from the JSON: a shape counts as reproduced only where
a confidence interval supports it (the page's intervals hold together with
95% confidence, Bonferroni). ``--from-json`` rewrites the page from
the stored results without measuring again; ``--quick`` runs a tiny grid
into a scratch directory (to check the script, not to publish).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.quiescent import bench_quiesce
from tcg.compare import Settings, comparisons, run_comparison
from tcg.record import CellRecord, Comparison, ComparisonDocument, RunSummary
from tcg.report import (
    PLOTS,
    precision,
    pressure_cells,
    representative,
    stall_sentence,
    table_rows,
    verdict,
)
from tcg.stats import Interval, family_confidence, ratio_interval

Json = dict[str, Any]

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "comparison.md"
DATA = ROOT / "docs" / "comparison"

#: The measurements behind the page (``--quick`` shrinks them).
RUNS: dict[str, Settings] = {
    "pressure": Settings(
        policies=("rcu", "rcu-qsbr", "flush"),
        vcpus=(1, 2, 4, 8),
        buffer_kb=(32.0, 64.0, 128.0, 256.0),
        workloads=("parallel",),
        seconds=10.0,
        repeat=5,
        min_run_seconds=0.25,
    ),
    "batching": Settings(
        policies=("rcu-sync", "rcu", "rcu-batch"),
        vcpus=(1, 2, 4),
        buffer_kb=(32.0, 64.0, 128.0),
        workloads=("parallel",),
        seconds=10.0,
        repeat=5,
        min_run_seconds=0.25,
    ),
    "stall": Settings(
        policies=("rcu", "rcu-qsbr", "flush"),
        vcpus=(2, 4),
        buffer_kb=(32.0,),
        workloads=("stall",),
        seconds=5.0,
        repeat=5,
        scenario="stall",
    ),
}
QUIESCE_VCPUS = (1, 2, 4, 8)
QUIESCE_KS = (10, 1_000, 10_000)
QUIESCE_SECTIONS = 30
QUIESCE_RUNS = 5
#: The intervals the five shapes rest on (see each ``shape_*``); each is
#: widened so that all of them hold together with 95% confidence.
PAGE_INTERVALS = 10
EACH = family_confidence(0.95, PAGE_INTERVALS)
#: Values below this count as this (a pause of 0 ms, say), so ratios exist.
FLOOR = 1e-3


def _quick(s: Settings) -> Settings:
    return Settings(
        policies=s.policies,
        vcpus=s.vcpus[:2],
        buffer_kb=tuple(dict.fromkeys(s.buffer_kb[:1] + s.buffer_kb[-1:])),
        workloads=s.workloads,
        seconds=s.seconds,
        repeat=2,
        scenario=s.scenario,
    )


def measure(out: Path, quick: bool) -> None:
    """Run every measurement and store it under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for name, settings in RUNS.items():
        settings = _quick(settings) if quick else settings
        start = time.perf_counter()
        doc = ComparisonDocument.from_json(run_comparison(settings))
        print(f"{name}: {len(doc.cells)} cells in {time.perf_counter() - start:.0f} s")
        (out / f"{name}.json").write_text(json.dumps(_slim(doc, plots=name == "pressure")) + "\n")
    rows = []
    for vcpus in QUIESCE_VCPUS[:2] if quick else QUIESCE_VCPUS:
        for k in QUIESCE_KS:
            runs = [bench_quiesce(vcpus, k, QUIESCE_SECTIONS) for _ in range(QUIESCE_RUNS)]
            p50, p90 = (statistics.median(r[i] for r in runs) / 1e3 for i in range(2))
            row = Quiesce(vcpus, k, p50, p90, tuple(r[0] / 1e3 for r in runs))
            rows.append(row.to_json())
    (out / "quiesce.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("quiesce: done")


@dataclass(frozen=True, slots=True)
class Quiesce:
    """One row of ``quiesce.json``: the time to quiesce at ``vcpus`` and ``k``, in us.

    ``p50_us`` and ``p90_us`` are medians over the runs; ``runs_p50_us``
    each run's p50 (empty in results from before they were kept).
    """

    vcpus: int
    k: int
    p50_us: float
    p90_us: float
    runs_p50_us: tuple[float, ...]

    def to_json(self) -> Json:
        """The row as ``quiesce.json`` stores it."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "runs_p50_us": list(self.runs_p50_us)
        }

    @classmethod
    def from_json(cls, data: Json) -> Quiesce:
        """The inverse of :meth:`to_json`."""
        return cls(
            data["vcpus"], data["k"], data["p50_us"], data["p90_us"],
            tuple(data.get("runs_p50_us", ())),
        )  # fmt: skip


def _slim(doc: ComparisonDocument, plots: bool) -> Json:
    """``doc`` small enough to keep in the repository.

    Per-run timelines and pause intervals are kept only for the cells the
    plots draw; numbers keep six significant digits.
    """
    drawn = {id(c) for c in representative(doc)} if plots else set()
    cells = tuple(c if id(c) in drawn else replace(c, timeline=(), stops={}) for c in doc.cells)
    slim: Json = _rounded(replace(doc, cells=cells).to_json())
    return slim


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


# ----------------------------------------------------------------------
# The five shapes, judged from the data


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def _by(cells: Sequence[CellRecord], field: str) -> dict[Any, list[CellRecord]]:
    groups: dict[Any, list[CellRecord]] = {}
    for c in cells:
        groups.setdefault(getattr(c, field), []).append(c)
    return dict(sorted(groups.items()))


Runs = tuple[RunSummary, ...] | None


def _runs(runs: Runs, field: str) -> list[float]:
    """Per run, in round order, ``field`` of each run (floored; empty if not stored)."""
    return [max(float(getattr(run, field)), FLOOR) for run in runs or ()]


def _paired(pairs: Sequence[tuple[Runs, Runs]], field: str) -> Interval | None:
    """The ratio of ``field`` between the runs of each pair, run by run, pooled over the pairs."""
    groups = []
    for x, y in pairs:
        xs, ys = _runs(x, field), _runs(y, field)
        groups.append([math.log(a / b) for a, b in zip(xs, ys, strict=False)])
    if not groups or any(len(g) < 2 for g in groups):
        return None
    return ratio_interval(groups, EACH)


def _iv(interval: Interval | None) -> str:
    if interval is None:
        return "no interval: the stored results have no per-run figures"
    low, high = (f"{x:.2f}" if x < 100 else f"{x:.3g}" for x in (interval.low, interval.high))
    return f"{interval.estimate:.2f}x, interval {low}-{high}"


def _above(interval: Interval | None, bound: float = 1.0) -> bool:
    return interval is not None and interval.low > bound


def _below(interval: Interval | None, bound: float = 1.0) -> bool:
    return interval is not None and interval.high < bound


def _grows(values: Sequence[float]) -> bool:
    """Non-decreasing within 20 % noise at every step, and at least doubled overall."""
    steps_ok = all(b >= 0.8 * a for a, b in itertools.pairwise(values))
    return len(values) > 1 and steps_ok and values[-1] >= 2 * max(values[0], 1e-9)


def _k_interval(quiesce: Sequence[Quiesce]) -> Interval | None:
    """Time to quiesce at the largest K over the smallest, run by run, pooled over vCPUs."""
    ks = sorted({r.k for r in quiesce})
    groups = []
    for v in sorted({r.vcpus for r in quiesce}):
        mine = {r.k: r for r in quiesce if r.vcpus == v}
        hi, lo = mine[ks[-1]].runs_p50_us, mine[ks[0]].runs_p50_us
        if not hi or not lo:
            return None
        groups.append(
            [math.log(max(a, FLOOR) / max(b, FLOOR)) for a, b in zip(hi, lo, strict=False)]
        )
    if not groups or any(len(g) < 2 for g in groups):
        return None
    return ratio_interval(groups, EACH)


def shape_pause_grows(
    pressure: ComparisonDocument, quiesce: Sequence[Quiesce], stall: ComparisonDocument
) -> tuple[str, str]:
    """(1) A stop-the-world pause grows with vCPUs and with the run between exit checks.

    Three intervals: flush's longest pause per run at the most vCPUs over
    one vCPU (paired by round, pooled over buffers under pressure); time to
    quiesce at the largest K over the smallest; in the stall scenario,
    flush's longest time to quiesce with host calls inside over outside.
    """
    flush = [c for c in pressure_cells(pressure) if c.policy == "flush"]
    by_vcpus = _by(flush, "vcpus")
    p99 = [_median([c.pause_ms.p99 for c in cs]) for cs in by_vcpus.values()]
    peak = [_median([c.pause_ms.max for c in cs]) for cs in by_vcpus.values()]
    vcpu_list = ", ".join(
        f"{v}: {a:.2f} / {b:.1f}" for v, a, b in zip(by_vcpus, p99, peak, strict=True)
    )
    most, fewest = (max(by_vcpus), min(by_vcpus)) if by_vcpus else (0, 0)
    at = {(c.vcpus, c.buffer_kb): c for c in flush}
    pairs = [
        (at[most, kb].runs, at[fewest, kb].runs)
        for kb in sorted({c.buffer_kb for c in flush})
        if (most, kb) in at and (fewest, kb) in at
    ]
    vcpus_iv = _paired(pairs, "pause_max_ms") if most != fewest else None
    ks = sorted({r.k for r in quiesce})
    per_k = {k: _median([r.p50_us for r in quiesce if r.k == k]) for k in ks}
    k_list = ", ".join(f"K={k}: {per_k[k]:.0f} us" for k in ks)
    k_iv = _k_interval(quiesce)
    stall_flush = [c for c in stall.cells if c.policy == "flush"]
    quiesce_at = {
        hc: max((c.time_to_quiesce_ms.max for c in stall_flush if c.host_calls == hc),
                default=0.0)
        for hc in ("inside", "outside")
    }  # fmt: skip
    placed = {(c.vcpus, c.host_calls): c for c in stall_flush}
    stall_iv = _paired(
        [
            (placed[v, "inside"].runs, placed[v, "outside"].runs)
            for v in sorted({c.vcpus for c in stall_flush})
            if (v, "inside") in placed and (v, "outside") in placed
        ],
        "quiesce_max_ms",
    )
    vcpus_hold, k_hold, stall_hold = _above(vcpus_iv), _above(k_iv), _above(stall_iv, 10.0)
    held = sum((vcpus_hold, k_hold, stall_hold))
    status = "reproduced" if held == 3 else "partly reproduced" if held else "not reproduced"
    text = (
        f"Flush pauses under pressure, median over buffer sizes of each cell's p99 / max "
        f"(ms) by vCPU count: {vcpu_list}. Longest pause per run at {most} vCPUs over "
        f"{fewest}, paired by round: {_iv(vcpus_iv)}; "
        + ("they grow with the vCPU count. " if vcpus_hold else "no growth the interval supports. ")
        + f"Time to quiesce (p50, median over 1-{max(r.vcpus for r in quiesce)} vCPUs) "
        f"against K, the loop iterations between exit checks: {k_list}; K={ks[-1]} over "
        f"K={ks[0]}: {_iv(k_iv)}"
        + (", growing with K. " if k_hold else ", no growth the interval supports. ")
        + f"The extreme case is the stall scenario: a vCPU that blocks 100 ms without an exit "
        f"check held a flush's exclusive section for up to {quiesce_at['inside']:.1f} ms, "
        f"against {quiesce_at['outside']:.1f} ms once the call runs outside guest code "
        f"(inside over outside, run by run: {_iv(stall_iv)}"
        + ("; at least ten times longer)." if stall_hold else "; not ten times longer for sure).")
    )
    return status, text


def shape_rcu_runs(pressure: ComparisonDocument) -> tuple[str, str]:
    """(2) RCU keeps vCPUs running and pays in memory, bounded by the regions it holds.

    One interval: the vCPU time rcu lost per guest instruction over flush's,
    pooled over the cells where both were under pressure.
    """
    cells = pressure_cells(pressure)
    rcu = [c for c in cells if c.policy in ("rcu", "rcu-qsbr")]
    flush = [c for c in cells if c.policy == "flush"]
    # Exclusive sections the world ran: under RCU only the guest's atomics
    # (amoadd, once per hart) take one; under flush, atomics and flushes.
    sections_rcu = sum(c.time_to_quiesce_ms.count for c in rcu)
    sections_flush = sum(c.time_to_quiesce_ms.count for c in flush)
    flushes = sum(c.flushes for c in flush)
    regions = Settings.from_json(pressure.config).regions  # rcu, rcu-qsbr: one in flight
    held = [c.held_back_kb for c in rcu]
    bound_ok = all(h <= c.buffer_kb / regions + 1e-6 for h, c in zip(held, rcu, strict=True))
    worst = max((h / c.buffer_kb for h, c in zip(held, rcu, strict=True)), default=0.0)
    flush_held = max((c.held_back_kb for c in flush), default=0.0)
    at = {(c.vcpus, c.buffer_kb, c.workload): c for c in flush}
    pairs = [
        (c.runs, at[c.vcpus, c.buffer_kb, c.workload].runs)
        for c in cells
        if c.policy == "rcu" and (c.vcpus, c.buffer_kb, c.workload) in at
    ]
    lost = _lost_interval(pairs)
    near_zero = _below(lost, 0.25)
    atomics_only = sections_rcu <= sum(c.vcpus for c in rcu)
    status = "reproduced" if near_zero and bound_ok and atomics_only else "partly reproduced"
    text = (
        f"RCU's reclamation stopped no vCPU: its {len(rcu)} cells under pressure ran "
        f"{sections_rcu} exclusive sections in all, the guest's own atomics (at most one "
        f"per hart), against {sections_flush} in the {len(flush)} flush cells, "
        f"{flushes} of them flushes. Memory held back under RCU (retired regions waiting for "
        f"a grace period) peaked at {100 * worst:.1f}% of the buffer, within its bound of one "
        f"region of {regions} ({'held' if bound_ok else 'EXCEEDED'}); a flush retires and "
        f"reclaims the whole buffer while every vCPU is stopped, so it held back "
        f"{flush_held:.1f} KiB. vCPU time lost per guest instruction, rcu over flush, pooled "
        f"over the cells under pressure: {_iv(lost)}. "
    )
    if near_zero:
        text += "RCU cost vCPUs at most a quarter of what the flush cost them."
    else:
        waits = sum(c.pause_ms.total for c in rcu)
        stepped = sum(c.stepped_aside_ms for c in rcu)
        gps = [c.gp_latency_ms for c in rcu if c.gp_latency_ms is not None]
        gp50 = statistics.median(g.p50 for g in gps) if gps else 0.0
        gp99 = statistics.median(g.p99 for g in gps) if gps else 0.0
        text += (
            "The interval does not put RCU's lost time near zero. Under the GIL one vCPU "
            "runs at a time, and a grace period gets the interpreter only because the other "
            "vCPUs step aside at their next block boundary (see the rcu guide): in the RCU "
            f"cells vCPUs stepped aside {stepped:.0f} ms in all, most of it waiting for the "
            f"interpreter to come back, and translators waited {waits:.0f} ms for space, "
            f"while the grace periods themselves took a median {gp50:.3f} ms (p99 "
            f"{gp99:.2f} ms; the switch interval is "
            f"{pressure.machine.switch_interval_ms:g} ms). RCU also retires one "
            "region (an eighth of the buffer) per grace period where a flush empties all "
            "eight at once, so it waits several times as often. Free-threaded CPython, where "
            "nothing steps aside, is where this shape should fully appear."
        )
    return status, text


def _lost_interval(pairs: Sequence[tuple[Runs, Runs]]) -> Interval | None:
    """vCPU time lost per guest instruction, the first runs of each pair over the second."""
    groups = []
    for x, y in pairs:
        per = [
            [
                max((r.pause_ms + r.stepped_aside_ms) * 1e6 / max(r.instructions, 1), FLOOR)
                for r in runs
            ]
            for runs in (x, y)
            if runs
        ]
        if len(per) < 2:
            return None
        groups.append([math.log(a / b) for a, b in zip(*per, strict=False)])
    if not groups or any(len(g) < 2 for g in groups):
        return None
    return ratio_interval(groups, EACH)


def shape_retranslation(pressure: ComparisonDocument) -> tuple[str, str]:
    """(3) A flush throws hot code away and retranslates more than retiring the oldest.

    One interval: flush's retranslations per run over rcu's, pooled over the
    cells where both were under pressure.
    """
    cells = pressure_cells(pressure)
    totals = {
        p: sum(c.retranslations for c in cells if c.policy == p)
        for p in ("flush", "rcu", "rcu-qsbr")
    }
    per_kb = {
        kb: (
            sum(c.retranslations for c in cs if c.policy == "flush"),
            sum(c.retranslations for c in cs if c.policy == "rcu"),
        )
        for kb, cs in _by(cells, "buffer_kb").items()
    }
    at = {(c.vcpus, c.buffer_kb): c for c in cells if c.policy == "rcu"}
    pairs = [
        (c.runs, at[c.vcpus, c.buffer_kb].runs)
        for c in cells
        if c.policy == "flush" and (c.vcpus, c.buffer_kb) in at
    ]
    interval = _paired(pairs, "retranslations")
    detail = "; ".join(f"{kb:g} KiB: {f} against {r}" for kb, (f, r) in per_kb.items())
    more = _above(interval)
    status = "reproduced" if more else "not reproduced"
    text = (
        f"Retranslations under pressure, the median runs of all cells: flush {totals['flush']}, "
        f"rcu {totals['rcu']}, rcu-qsbr {totals['rcu-qsbr']}; by buffer, flush against rcu: "
        f"{detail}. Flush over rcu, run by run, pooled over the cells: {_iv(interval)}. "
    )
    if not more:
        text += (
            "The interval does not put flush above rcu. The workload's footprint is the "
            "reason: every slice of `parallel` calls all 128 functions once, so little code "
            "stays hot between slices, and retiring the oldest region throws away nearly what "
            "a flush does."
        )
    else:
        text += (
            "The gap is not larger because `parallel` is footprint-heavy: each slice calls all "
            "128 functions once, so the oldest region is often code that is needed again "
            "soon (FIFO retirement), and RCU keeps one region free, an eighth less room."
        )
    return status, text


def shape_baseline(pressure: ComparisonDocument) -> tuple[str, str]:
    """(4) With a buffer larger than the working set every policy matches the baseline.

    One interval per policy (three): the throughput of its cells where the
    code fit over its no-pressure baseline's, paired by round; the shape
    holds where every interval lies within 15% of 1.
    """
    code: dict[int, float] = {}
    for b in pressure.baselines:
        code[b.vcpus] = max(code.get(b.vcpus, 0.0), b.peak_live_kb)
    fits = [c for c in pressure.cells if c.buffer_kb >= code.get(c.vcpus, 0.0)]
    base = {(b.policy, b.vcpus, b.workload): b for b in pressure.baselines}
    acted = sum(c.retirements + c.flushes for c in fits)
    listed, ok = [], bool(fits) and acted == 0
    for policy, cs in _by(fits, "policy").items():
        pairs = [(c.runs, base[policy, c.vcpus, c.workload].runs) for c in cs]
        interval = _paired(pairs, "mips")
        listed.append(f"{policy} {_iv(interval)}")
        ok = ok and interval is not None and interval.low >= 0.85 and interval.high <= 1.15
    text = (
        f"With {', '.join(f'{kb:g}' for kb in sorted({c.buffer_kb for c in fits}))} KiB "
        f"(the code is {max(code.values(), default=0):.0f} KiB), no policy retired or flushed "
        f"anything ({acted} events). Throughput over the no-pressure baseline, run by run, "
        f"pooled over the vCPU counts: {'; '.join(listed)}. "
        + (
            "Every interval lies within 15% of the baseline."
            if ok
            else "Not every interval lies within 15% of the baseline: a run of `parallel` "
            "lasts a few tenths of a second, where thread start-up and the GIL's scheduling "
            "show."
        )
    )
    return ("reproduced" if ok else "not reproduced"), text


def _gps(c: CellRecord) -> int:
    gp = c.gp_latency_ms
    return 0 if gp is None else gp.count


def shape_batching(batching: ComparisonDocument) -> tuple[str, str]:
    """(5) Batching retirements per grace period beats one grace period per retirement.

    Two intervals: rcu-batch's throughput over rcu's and over rcu-sync's,
    pooled over the cells where both were under pressure.
    """
    cells = pressure_cells(batching)
    rows = []
    stats: dict[str, dict[str, float]] = {}
    for policy, cs in _by(cells, "policy").items():
        retired = sum(c.retirements for c in cs)
        stats[policy] = {
            "gp_per_retirement": sum(_gps(c) for c in cs) / max(1, retired),
            "waits_per_retirement": sum(c.translator_waits for c in cs) / max(1, retired),
            "fraction": _median(
                [c.baseline_fraction for c in cs if c.baseline_fraction is not None]
            ),
            "wait_ms": sum(c.pause_ms.total for c in cs) / len(cs),
            "retranslations": sum(c.retranslations for c in cs) / len(cs),
        }
    for policy in ("rcu-sync", "rcu", "rcu-batch"):
        if policy in stats:
            s = stats[policy]
            rows.append(
                f"{policy}: {s['gp_per_retirement']:.2f} grace periods and "
                f"{s['waits_per_retirement']:.2f} translator waits per retirement, "
                f"{s['wait_ms']:.0f} ms waiting per cell, {s['retranslations']:.0f} "
                f"retranslations per cell, {100 * s['fraction']:.0f}% of the baseline"
            )
    if not {"rcu", "rcu-batch", "rcu-sync"} <= stats.keys():
        return "not measured", "The batching run is missing a policy."
    batched = stats["rcu-batch"]
    fewer_gps = batched["gp_per_retirement"] < 0.75 * stats["rcu"]["gp_per_retirement"]
    at = {(c.policy, c.vcpus, c.buffer_kb): c for c in cells}

    def against(other: str) -> Interval | None:
        pairs = [
            (c.runs, at[other, c.vcpus, c.buffer_kb].runs)
            for c in cells
            if c.policy == "rcu-batch" and (other, c.vcpus, c.buffer_kb) in at
        ]
        return _paired(pairs, "mips")

    over = {other: against(other) for other in ("rcu", "rcu-sync")}
    faster = all(_above(iv) for iv in over.values())
    status = (
        "reproduced"
        if fewer_gps and faster
        else "partly reproduced"
        if fewer_gps
        else "not reproduced"
    )
    text = (
        "Under pressure (median or mean over the cells): "
        + "; ".join(rows)
        + ". Throughput of rcu-batch, run by run, pooled over the cells: "
        + "; ".join(f"over {other} {_iv(iv)}" for other, iv in over.items())
        + ". "
    )
    if fewer_gps and faster:
        text += "Sharing grace periods cut the waits and kept the most throughput."
    elif fewer_gps:
        text += (
            "Batching works as a mechanism (several retirements share each grace period and "
            "translators wait less often) but buys no throughput the intervals support: each "
            "region in flight is an eighth of the buffer that holds no live code, so four in "
            "flight cost retranslations, and `rcu-sync`, which keeps all eight regions live "
            "until a translator needs space, wastes none. With regions that small against a "
            "footprint this large, buffer capacity matters more than grace periods."
        )
    else:
        text += "Retirements did not share grace periods in this run."
    return status, text


# ----------------------------------------------------------------------
# The page


def chaining(pressure: ComparisonDocument) -> tuple[str, list[str], list[list[str]]]:
    """What chaining cost each policy: links made, followed, and removed per retirement or flush."""
    head = ["policy", "cells", "links made", "entered by link", "removed per event", "range"]
    rows: list[list[str]] = []
    per_event: dict[str, float] = {}
    for policy, cells in _by(pressure.cells, "policy").items():
        events = [
            (c.links_removed_on_retire + c.links_removed_on_flush) / (c.flushes or c.retirements)
            for c in cells
            if c.flushes or c.retirements
        ]
        made = sum(c.links_made for c in cells)
        followed = sum(c.links_followed for c in cells) / max(1, sum(c.instructions for c in cells))
        if events:
            per_event[policy] = _median(events)
        rows.append(
            [
                policy,
                str(len(cells)),
                f"{made:,}",
                f"{1000 * followed:.0f} per 1000 insns",
                "-" if not events else f"{_median(events):.1f}",
                "-" if not events else f"{min(events):.1f}-{max(events):.1f}",
            ]
        )
    text = (
        "Every block's direct exits are linked to their successors, and a vCPU follows the "
        "links instead of looking blocks up; unlinking a block removes every link into it "
        "(`docs/design.md`, Chained blocks). RCU pays for it at each retirement, for the "
        "links into the retired region; a flush pays once for all of them."
    )
    if "flush" in per_event and "rcu" in per_event and per_event["rcu"] > 0:
        text += (
            f" Per event, a flush removed {per_event['flush'] / per_event['rcu']:.1f} times "
            "as many links as an `rcu` retirement (medians over the cells that retired)."
        )
    return text, head, rows


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r).replace("±", "+/-") + " |" for r in rows]
    return "\n".join(lines)


def _section(
    title: str, intro: str, finding: str, doc: ComparisonDocument, figures: Sequence[str] = ()
) -> list[str]:
    """A measured run's part of the page: heading, setup, finding, figures, table."""
    head, rows = table_rows(doc)
    return [f"## {title}", "", intro, "", finding, "", *figures, _md_table(head, rows), ""]


def _settings_line(doc: ComparisonDocument) -> str:
    s = Settings.from_json(doc.config)
    return (
        f"policies {', '.join(s.policies)}; vCPUs {', '.join(map(str, s.vcpus))}; "
        f"buffers {', '.join(f'{kb:g}' for kb in s.buffer_kb)} KiB in {s.regions} "
        f"regions; workload {', '.join(s.workloads)}; {s.repeat} runs per cell in as "
        f"many rounds, each of at least {s.min_run_seconds:g} s of guest work "
        f"(median shown, with its 95% interval)"
    )


def _precision_of(doc: ComparisonDocument) -> str:
    """The run's precision, from its comparisons (computed if the document predates them)."""
    if doc.comparisons is None:
        items = tuple(Comparison.from_json(i) for i in comparisons(doc))
        doc = replace(doc, comparisons=items)
    return precision(doc).removeprefix("Precision: ")


def _load(path: Path) -> ComparisonDocument:
    return ComparisonDocument.from_json(json.loads(path.read_text()))


def draw_plots(data: Path) -> None:
    """Draw the pressure run's plots next to its JSON."""
    pressure = _load(data / "pressure.json")
    for name, plot, _ in PLOTS:
        plot(pressure, data / name)


def render(data: Path, images: str) -> str:
    """The page's Markdown, from the JSON stored in ``data``; plots linked under ``images``."""
    docs = {name: _load(data / f"{name}.json") for name in RUNS}
    quiesce = [Quiesce.from_json(r) for r in json.loads((data / "quiesce.json").read_text())]
    pressure, batching, stall = docs["pressure"], docs["batching"], docs["stall"]
    m = pressure.machine
    shapes: list[tuple[str, Callable[[], tuple[str, str]]]] = [
        (
            "Stop-the-world pauses grow with the vCPU count and the longest run between "
            "exit checks",
            lambda: shape_pause_grows(pressure, quiesce, stall),
        ),
        (
            "RCU keeps vCPUs running and pays in memory, bounded by the regions it holds",
            lambda: shape_rcu_runs(pressure),
        ),
        (
            "A flush throws away hot code and retranslates more than retiring the oldest region",
            lambda: shape_retranslation(pressure),
        ),
        (
            "With a buffer larger than the working set both policies match the baseline",
            lambda: shape_baseline(pressure),
        ),
        (
            "Batching retirements per grace period beats one grace period per retirement",
            lambda: shape_batching(batching),
        ),
    ]
    out = [
        "# Comparison: RCU retirement against a stop-the-world flush",
        "",
        "<!-- Generated by benchmarks/comparison_doc.py from the JSON in docs/comparison/;"
        " do not edit by hand. -->",
        "",
        f"Measured on {m.date[:10]}: Python {m.python} ({m.implementation}), "
        f"{m.cpu_count} CPUs, {m.platform}. Regenerate with "
        "`python benchmarks/comparison_doc.py` (about eight minutes), or rewrite this page "
        "from the stored results with `--from-json`.",
        "",
        f"How precise the pressure sweep was: {_precision_of(pressure)}",
        "",
        "## Five expected shapes",
        "",
        "What the literature (QEMU's tb_flush, Linux and liburcu's RCU) leads one to expect, "
        "and whether this measurement shows it. Every figure below is computed from the "
        "stored results; so is the verdict. A shape counts as reproduced only where a "
        f"confidence interval supports it: the {PAGE_INTERVALS} intervals the shapes rest on "
        f"are Student t intervals of ratios of paired runs, each at {100 * EACH:.1f}% so that "
        "all of them hold together with 95% confidence (Bonferroni).",
        "",
    ]
    for i, (title, judge) in enumerate(shapes, 1):
        status, text = judge()
        out += [f"{i}. **{title}**: *{status}*. {text}", ""]
    figures = []
    for name, _, caption in PLOTS:
        figures += [f"![{caption}]({images}/{name})", "", f"*{caption}*", ""]
    out += _section(
        "Pressure sweep",
        f"`rcu-compare`'s default grid plus 8 vCPUs: {_settings_line(pressure)}.",
        verdict(pressure),
        pressure,
        figures,
    )
    chain_text, chain_head, chain_rows = chaining(pressure)
    out += [
        "## Chained blocks",
        "",
        chain_text,
        "",
        _md_table(chain_head, chain_rows),
        "",
    ]
    out += _section(
        "Batching retirements per grace period",
        f"{_settings_line(batching)}. `rcu-sync` retires only when a translator needs "
        "space and waits for a grace period of its own each time; `rcu` keeps one region "
        "in flight through `call_rcu`; `rcu-batch` keeps up to four, which share grace "
        "periods.",
        verdict(batching),
        batching,
    )
    out += _section(
        "A stalled vCPU",
        f"`rcu-compare --scenario stall`: {_settings_line(stall)}. One hart sleeps in "
        "`nanosleep` (4 x 100 ms) while the others translate under pressure; each cell runs "
        "with the call inside guest code (the vCPU stays in `running()` and its read-side "
        "section: before) and outside it (after).",
        stall_sentence(stall),
        stall,
    )
    out += [
        "## Time to quiesce",
        "",
        "An exclusive section's wait for busy vCPUs that check for exit requests every K "
        "loop iterations (`benchmarks/quiescent.py`), in microseconds, p50 / p90:",
        "",
    ]
    ks = sorted({r.k for r in quiesce})
    qrows = []
    for v in sorted({r.vcpus for r in quiesce}):
        mine = {r.k: r for r in quiesce if r.vcpus == v}
        qrows.append([str(v)] + [f"{mine[k].p50_us:.0f} / {mine[k].p90_us:.0f}" for k in ks])
    out += [_md_table(["vCPUs", *(f"K={k}" for k in ks)], qrows), ""]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    """Measure (unless ``--from-json``) and write the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-json", action="store_true", help="do not measure again")
    parser.add_argument(
        "--quick", metavar="DIR", type=Path, help="a tiny run into DIR (a check of the script)"
    )
    args = parser.parse_args(argv)
    data, page, images = DATA, PAGE, DATA.name
    if args.quick is not None:
        data, page, images = args.quick, args.quick / "comparison.md", "."
        measure(data, quick=True)
    elif not args.from_json:
        measure(data, quick=False)
    draw_plots(data)
    page.write_text(render(data, images))
    print(f"wrote {page}")


if __name__ == "__main__":
    main()
