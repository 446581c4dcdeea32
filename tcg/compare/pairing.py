"""Comparisons: which policy did better, and how sure that is.

Runs of two policies at the same site ran in the same round, seconds apart;
:func:`comparisons` pairs them and states each ratio with an interval, at a
confidence that holds for all the comparisons of a document together.
"""

from __future__ import annotations

import itertools
import math
import statistics
from typing import Any

from tcg.record import CellRecord, Comparison, ComparisonDocument, document
from tcg.stats import Interval, family_confidence, ratio_interval

Json = dict[str, Any]


#: The confidence of a report's claims together: every comparison's interval
#: is widened (Bonferroni) so that all of them hold at once this often.
CONFIDENCE = 0.95
#: What :func:`comparisons` compares: name -> (what it is, higher is better).
#: ``throughput`` is a run's MIPS; ``time_lost`` the vCPU time the policy
#: stopped or kept vCPUs waiting (stops, translator waits, and the time vCPUs
#: stepped aside for grace periods), per million guest instructions (so runs
#: that did more work compare fairly), floored at :data:`LOST_FLOOR_MS`.
METRICS: dict[str, tuple[str, bool]] = {
    "throughput": ("guest MIPS", True),
    "time_lost": ("vCPU ms lost to the policy per million guest instructions", False),
}
#: The resolution of ``time_lost``: less than 1 us per million instructions
#: counts as 1 us, so that two policies that lost nothing compare as equal.
LOST_FLOOR_MS = 1e-3


def pressure_cells(doc: ComparisonDocument | Json) -> list[CellRecord]:
    """The cells whose workload's code did not fit in the buffer and where the policy acted.

    The code's size is the largest host code any policy's no-pressure
    baseline translated for that workload and vCPU count.
    """
    doc = document(doc)
    fits: dict[tuple[str, int], float] = {}
    for b in doc.baselines:
        key = (b.workload, b.vcpus)
        fits[key] = max(fits.get(key, 0.0), b.peak_live_kb)
    return [
        c
        for c in doc.cells
        if c.buffer_kb < fits.get((c.workload, c.vcpus), 0.0) and (c.retirements or c.flushes)
    ]


def _metric_values(cell: CellRecord, metric: str) -> list[float]:
    """Per run, in round order, the value of ``metric`` (empty if unknown)."""
    if cell.runs is None:  # a document from before per-run records: MIPS only
        return list(cell.mips_spread.runs) if metric == "throughput" else []
    if metric == "throughput":
        return [run.mips for run in cell.runs]
    return [
        max((run.pause_ms + run.stepped_aside_ms) * 1e6 / run.instructions, LOST_FLOOR_MS)
        if run.instructions
        else LOST_FLOOR_MS
        for run in cell.runs
    ]


def comparisons(doc: ComparisonDocument | Json, confidence: float = CONFIDENCE) -> list[Json]:
    """Every pair of policies on every metric, pooled and per cell, with intervals.

    For each pair ``(a, b)`` (in the order the policies were given) and each
    metric of :data:`METRICS`: one item pooled over the cells where both
    were under pressure (:func:`pressure_cells`; ``vcpus``, ``buffer_kb``
    and ``workload`` are None), then one per (vCPUs, buffer, workload) cell
    both ran. ``ratio`` is a's value over b's: the geometric mean of the
    ratios of their paired runs (run *i* of each ran in round *i*), pooled as
    the geometric mean over cells; ``ci`` its interval
    (:func:`tcg.stats.ratio_interval`), at the confidence that makes all
    items' intervals hold together with probability ``confidence``
    (weighted Bonferroni: the pooled items share half of ``1 - confidence``,
    the per-cell items the other half; the item's ``confidence``); None with
    fewer than two runs.
    ``better`` is ``"tie"`` unless ``ci`` excludes 1. In a ``stall``
    comparison, only cells with host calls outside guest code are compared.
    Each item is a :class:`tcg.record.Comparison` as JSON.
    """
    doc = document(doc)
    cells = [c for c in doc.cells if c.host_calls == "outside" and not c.error and c.mips > 0]
    policies = list(dict.fromkeys(c.policy for c in cells))
    pressed = {id(c) for c in pressure_cells(doc)}
    by = {(c.policy, c.vcpus, c.buffer_kb, c.workload): c for c in cells}
    keys = list(dict.fromkeys((c.vcpus, c.buffer_kb, c.workload) for c in cells))
    plans: list[tuple[str, str, str, tuple[int, float, str] | None, list[list[float]]]] = []
    for a, b in itertools.combinations(policies, 2):
        for metric in METRICS:
            pooled: list[list[float]] = []
            per: list[tuple[tuple[int, float, str], list[float]]] = []
            for key in keys:
                ca, cb = by.get((a, *key)), by.get((b, *key))
                if ca is None or cb is None:
                    continue
                va, vb = _metric_values(ca, metric), _metric_values(cb, metric)
                if not va or not vb or min(va + vb) <= 0:
                    continue
                logs = [math.log(x / y) for x, y in zip(va, vb, strict=False)]
                per.append((key, logs))
                if id(ca) in pressed and id(cb) in pressed:
                    pooled.append(logs)
            if pooled:
                plans.append((metric, a, b, None, pooled))
            plans += [(metric, a, b, key, [logs]) for key, logs in per]
    # Weighted Bonferroni: the pooled comparisons (the verdict's headline)
    # share half the error budget, the single cells the other half.
    kinds = [sum(where is None for *_, where, _ in plans), 0]
    kinds[1] = len(plans) - kinds[0]
    budget = (1.0 - confidence) / (2 if all(kinds) else 1)
    levels = [family_confidence(1.0 - budget, n) if n else confidence for n in kinds]
    items = []
    for metric, a, b, where, groups in plans:
        each = levels[0] if where is None else levels[1]
        interval: Interval | None = ratio_interval(groups, each)
        if interval is None:
            ratio = math.exp(sum(statistics.fmean(g) for g in groups) / len(groups))
        else:
            ratio = interval.estimate
        better = "tie"
        if interval is not None and interval.excludes(1.0):
            a_larger = interval.low > 1.0
            better = "a" if a_larger == METRICS[metric][1] else "b"
        vcpus, buffer_kb, workload = (None, None, None) if where is None else where
        items.append(
            Comparison(
                metric=metric,
                a=a,
                b=b,
                vcpus=vcpus,
                buffer_kb=buffer_kb,
                workload=workload,
                ratio=ratio,
                ci=None if interval is None else (interval.low, interval.high),
                better=better,
                confidence=each,
                cells=len(groups),
                runs=sum(len(g) for g in groups),
            ).to_json()
        )
    return items
