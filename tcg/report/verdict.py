"""The verdict: sentences written from a document's comparisons and cells.

Each point states a difference only where its interval excludes "no
difference"; ties are named as ties. The sentences are templates, so the
verdict changes when the measurements do.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tcg.compare import CONFIDENCE, comparisons, pressure_cells
from tcg.record import (
    BaselineRecord,
    CellRecord,
    Comparison,
    ComparisonDocument,
    DocumentLike,
    document,
)


def failures(cells: Sequence[CellRecord | BaselineRecord | Mapping[str, Any]]) -> list[str]:
    """One line per cell or baseline that failed a correctness check (empty if none did).

    A dict is read as the record it is: a cell's (it has ``stops``) or a baseline's.
    """
    lines = []
    for c in cells:
        if not isinstance(c, CellRecord | BaselineRecord):
            c = CellRecord.from_json(c) if "stops" in c else BaselineRecord.from_json(c)
        where = f"{c.policy} vcpus={c.vcpus} buffer={c.buffer_kb:g} KiB {c.workload}"
        cell = c if isinstance(c, CellRecord) else None
        if c.error:
            lines.append(f"{where}: {c.error}")
        if c.violations:
            first = cell.violation_messages[0] if cell and cell.violation_messages else ""
            lines.append(f"{where}: {c.violations} use-after-reclaim violation(s) {first}")
        if c.output_ok is False and not c.error:
            lines.append(f"{where}: wrong guest output")
        if c.faults:
            lines.append(f"{where}: guest fault {cell.fault if cell else None}")
    return lines


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%" if x >= 0.01 else f"{100 * x:.1f}%"


def _longest_wait_ms(c: CellRecord) -> float:
    """The longest time anything waited in a cell: to quiesce, for a grace period, for space."""
    gp = c.gp_latency_ms
    return max(c.time_to_quiesce_ms.max, 0.0 if gp is None else gp.max, c.wait_ms.max)


def stall_sentence(doc: DocumentLike) -> str:
    """The stall scenario's finding: per policy, the longest wait and the throughput,
    with host calls inside guest code against outside it."""
    cells = document(doc).cells
    policies = list(dict.fromkeys(c.policy for c in cells))
    clauses = []
    for p in policies:
        mine = {
            hc: [c for c in cells if c.policy == p and c.host_calls == hc]
            for hc in ("inside", "outside")
        }
        if not mine["inside"] or not mine["outside"]:
            continue
        wait = {hc: max(_longest_wait_ms(c) for c in cs) for hc, cs in mine.items()}
        mips = {hc: statistics.median(c.mips for c in cs) for hc, cs in mine.items()}
        clauses.append(
            f"{p} waited up to {wait['inside']:.1f} ms at {mips['inside']:.2f} MIPS with the "
            f"call inside, against {wait['outside']:.1f} ms at {mips['outside']:.2f} MIPS "
            f"with it outside"
        )
    if not clauses:
        return "The stall scenario needs cells with host calls both inside and outside."
    return (
        "With one vCPU asleep in long host calls (a wait being the longest time to quiesce, "
        "grace period or translator wait of any cell): " + "; ".join(clauses) + "."
    )


#: Pooled intervals wider than this (either way, in ratio) are too wide to decide.
WIDE = 0.10


def comparison_items(doc: DocumentLike) -> list[Comparison]:
    """The document's comparisons (computed for a document from before they were stored)."""
    doc = document(doc)
    if doc.comparisons is None:
        return [Comparison.from_json(i) for i in comparisons(doc)]
    return list(doc.comparisons)


def _oriented(item: Comparison, first: str) -> tuple[float, tuple[float, float] | None]:
    """The item's ratio and interval as ``first`` over the other policy."""
    ci = item.ci
    if item.a == first:
        return item.ratio, ci
    return 1.0 / item.ratio, None if ci is None else (1.0 / ci[1], 1.0 / ci[0])


def interval_text(ci: tuple[float, float] | None) -> str:
    """An interval as the report writes it."""
    return "no interval" if ci is None else f"interval {ci[0]:.2f}-{ci[1]:.2f}"


def _half_width(ci: tuple[float, float] | None) -> float:
    """How far an interval reaches either side of its center, as a fraction (inf if none)."""
    if ci is None:
        return math.inf
    return math.sqrt(ci[1] / ci[0]) - 1.0


def _reach(half_width: float) -> str:
    """An interval's reach in words: +/-4% or, past doubling, a factor."""
    if half_width < 1.0:
        return f"+/-{100 * half_width:.0f}%"
    return f"a factor of {1.0 + half_width:.1f} either way"


def where_text(item: Comparison, workloads: int) -> str:
    """The cell a comparison is about, as the report names it."""
    v = item.vcpus
    text = f"{v} vCPU{'s' if v != 1 else ''} and {item.buffer_kb:g} KiB"
    return text + (f" ({Path(str(item.workload)).name})" if workloads > 1 else "")


def _claim(item: Comparison, first: str, other: str) -> str:
    """One metric of one comparison in words, from ``first``'s side."""
    ratio, ci = _oriented(item, first)
    winner = item.winner
    if item.metric == "throughput":
        figure = f"{first} ran at {ratio:.2f}x {other}'s MIPS ({interval_text(ci)})"
        if winner is None:
            return f"no measurable difference in throughput at this precision: {figure}"
        return f"{winner} kept more throughput: {figure}"
    figure = (
        f"{first} cost vCPUs {ratio:.2f}x the time {other} cost them per guest instruction "
        f"({interval_text(ci)})"
    )
    if winner is None:
        return f"no measurable difference in vCPU time lost at this precision: {figure}"
    return f"vCPUs lost less time to {winner}: {figure}"


def _pair_points(items: list[Comparison], first: str, other: str, workloads: int) -> list[str]:
    """What the comparisons of two policies say: pooled, then where the winner changes."""
    mine = [i for i in items if {i.a, i.b} == {first, other}]
    pooled = {i.metric: i for i in mine if i.pooled}
    points = []
    if pooled:
        n = next(iter(pooled.values())).cells
        claims = [
            _claim(pooled[m], first, other) for m in ("throughput", "time_lost") if m in pooled
        ]
        points.append(
            f"{first} against {other}, over the {n} cell{'s' if n != 1 else ''} under pressure: "
            + "; ".join(claims)
            + "."
        )
    else:
        points.append(f"{first} against {other}: no cell put both under pressure.")
    for metric in ("throughput", "time_lost"):
        overall = pooled[metric].winner if metric in pooled else None
        changes = [
            i
            for i in mine
            if i.metric == metric and not i.pooled and i.winner not in (None, overall)
        ]
        if not changes:
            continue
        what = "throughput" if metric == "throughput" else "vCPU time lost"
        listed = []
        for i in changes[:6]:
            ratio, ci = _oriented(i, first)
            listed.append(
                f"{i.winner} at {where_text(i, workloads)} ({ratio:.2f}x, {interval_text(ci)})"
            )
        more = f", and {len(changes) - 6} more" if len(changes) > 6 else ""
        lead = "Where the winner changes" if overall is not None else "Single cells that differ"
        points.append(f"{lead} in {what}: " + "; ".join(listed) + more + ".")
    return points


def precision(doc: DocumentLike) -> str:
    """How precise a run's comparisons were, and what to do if that is not enough."""
    items = comparison_items(doc)
    if not items:
        return "Nothing to compare: the grid has one policy, or no cell both policies ran."
    pooled = [i for i in items if i.pooled]
    cells = [i for i in items if not i.pooled]
    if all(i.ci is None for i in items):
        return "With one run per cell there are no intervals and no claims: use --repeat 3 or more."
    levels = [
        f"each {kind} one at {100 * group[0].confidence:.2f}%"
        for kind, group in (("pooled", pooled), ("single-cell", cells))
        if group
    ]
    text = (
        f"Precision: {100 * CONFIDENCE:.0f}% intervals for all {len(items)} comparisons "
        f"together (Bonferroni: {', '.join(levels)})"
    )
    widths = {
        "pooled": [_half_width(i.ci) for i in pooled if i.metric == "throughput"],
        "single-cell": [_half_width(i.ci) for i in cells if i.metric == "throughput"],
    }
    spans = [
        f"{name} throughput ratios {_reach(statistics.median(w))}"
        for name, w in widths.items()
        if w and statistics.median(w) < math.inf
    ]
    if spans:
        text += "; the median interval reaches " + ", ".join(spans)
    text += "."
    more = "run more rounds (--repeat 10) or longer runs (--min-run-seconds 1)"
    if not widths["pooled"] or statistics.median(widths["pooled"]) > WIDE:
        text += f" That is too wide to decide differences of a few percent: {more}."
    elif widths["single-cell"] and statistics.median(widths["single-cell"]) > 2 * WIDE:
        text += f" Single cells are told apart only by large differences: for them, {more}."
    return text


def _held_back(pressed: list[CellRecord], policies: list[str]) -> str:
    held = {
        p: max(c.held_back_kb for c in pressed if c.policy == p)
        for p in policies
        if any(c.policy == p for c in pressed)
    }
    listed = ", ".join(f"{held[p]:.1f} KiB under {p}" for p in held)
    return (
        "Memory held back (retired code whose space cannot be reused yet: under RCU, "
        "regions waiting for a grace period; a flush reclaims while every vCPU is stopped, so "
        f"it holds back only code invalidated before it) peaked at {listed}."
    )


def verdict_points(doc: DocumentLike) -> list[str]:
    """The verdict as a list of points, rcu against flush first (see the module's docstring)."""
    doc = document(doc)
    cells = doc.cells
    if doc.scenario == "stall":
        return [stall_sentence(doc), _correctness(doc)]
    policies = list(dict.fromkeys(c.policy for c in cells))
    workloads = len({c.workload for c in cells})
    pressed = pressure_cells(doc)
    items = comparison_items(doc)
    points: list[str] = []
    if not pressed:
        points.append(
            "No cell put the buffer under pressure (every workload's code fit, or no policy "
            "had to act), so the policies cannot be told apart on this grid."
        )
    else:
        pairs = list(itertools.combinations(policies, 2))
        if {"rcu", "flush"} <= set(policies):
            pairs = [("rcu", "flush")] + [ab for ab in pairs if set(ab) != {"rcu", "flush"}]
        for a, b in pairs:
            points += _pair_points(items, a, b, workloads)
        points.append(_held_back(pressed, policies))
    under = {id(c) for c in pressed}
    relaxed = [c.baseline_fraction for c in cells if id(c) not in under and c.baseline_fraction]
    if relaxed:
        points.append(
            f"Where the code fit ({len(relaxed)} cells), the policies ran at a median "
            f"{_pct(statistics.median(relaxed))} of their no-pressure baselines."
        )
    points.append(precision(doc))
    points.append(_correctness(doc))
    return points


def verdict(doc: DocumentLike) -> str:
    """The verdict of :func:`verdict_points` as one paragraph."""
    return " ".join(verdict_points(doc))


def _runs(record: CellRecord | BaselineRecord) -> int:
    """How many runs a record rests on (one per baseline of a document without per-run records)."""
    if record.runs is not None:
        return len(record.runs)
    return record.repeat if isinstance(record, CellRecord) else 1


def _correctness(doc: ComparisonDocument) -> str:
    records: list[CellRecord | BaselineRecord] = [*doc.cells, *doc.baselines]
    bad = failures(records)
    if bad:
        return f"{len(bad)} cell(s) FAILED a correctness check (see above)."
    runs = sum(_runs(c) for c in records)
    return (
        f"All {runs} runs were correct (baselines included): the guest output matched, no "
        "fault, no use of reclaimed code."
        if runs != 1
        else "The run was correct: the guest output matched, no fault, no use of reclaimed code."
    )
