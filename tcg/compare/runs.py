"""One run, one cell: executing a workload under a probed policy and summarizing.

A run executes the workload back to back until it did ``min_run_seconds``
of guest work; its record is plain data (worker processes return it). A
cell's record (:class:`tcg.record.CellRecord`) summarizes its runs.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import quiescent
from tcg.compare.grid import Cell, GuestProgram, resolve_workload
from tcg.compare.probe import Probe
from tcg.engines import make_machine
from tcg.machine import Machine, MachineError, MachineResult, make_policy
from tcg.policies import RetirePolicy
from tcg.record import CellRecord, Distribution, RunSummary, Spread
from tcg.riscv.errors import LoaderError
from tcg.stats import log_interval
from tcg.workloads import WORKLOADS

Json = dict[str, Any]


#: Stored per vCPU and cell for the pause timeline (the first ones in time).
MAX_STOPS_PER_VCPU = 1000
#: Buffer timeline samples stored per cell (evenly thinned).
MAX_TIMELINE = 400


def _pauses_ms(samples: Sequence[float]) -> Json:
    """The ``pause_ms`` distribution of a run from every pause it had, in seconds.

    The probe keeps every pause (not a window of recent ones, as the
    policies' statistics do) and a run pools them over its executions, so
    the percentiles are taken here, over all of them: nearest rank, the
    definition ``rcu.Percentiles`` and ``quiescent.Percentiles`` use.
    """
    ordered = sorted(samples)
    if not ordered:
        return Distribution(0.0, 0.0, 0.0).to_json(total=True)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1e3

    return Distribution(
        p50=rank(0.50),
        p99=rank(0.99),
        max=ordered[-1] * 1e3,
        count=len(ordered),
        total=sum(ordered) * 1e3,
    ).to_json(total=True)


def _thin(points: Sequence[Any], limit: int) -> list[Any]:
    if len(points) <= limit:
        return list(points)
    step = len(points) / limit
    return [points[int(i * step)] for i in range(limit)] + [points[-1]]


def _execute(
    cell: Cell, program: GuestProgram, regions: int, seconds: float | None, instructions: int | None
) -> tuple[Json, list[float]]:
    """One execution of ``cell``'s workload: its record, and its pauses in seconds."""
    probes: list[Probe] = []

    def factory(world: quiescent.World) -> RetirePolicy:
        probe = Probe(make_policy(cell.policy, world))
        probes.append(probe)
        return probe

    machine = make_machine(
        cell.engine,
        program.path,
        vcpus=cell.vcpus,
        policy=factory,
        buffer_kb=cell.buffer_kb,
        regions=regions,
        max_instructions=instructions,
        host_calls=cell.host_calls,
    )
    timer = None
    if seconds is not None:
        # The machine's own stop: every hart leaves at its next safe point.
        timer = threading.Timer(seconds, machine.stop)
        timer.daemon = True
        timer.start()
    try:
        result = machine.run()
    finally:
        if timer is not None:
            timer.cancel()
            timer.join(5)
    return _record(cell, program, result, probes[0])


def _record(
    cell: Cell, program: GuestProgram, r: MachineResult, probe: Probe
) -> tuple[Json, list[float]]:
    p, b, w = r.policy, r.buffer, r.world
    output_ok: bool | None = None
    if program.expected is not None:
        expected = program.expected(cell.vcpus)
        if r.stopped == "exit":
            output_ok = r.stdout == expected
        elif r.stopped == "limit":
            output_ok = expected.startswith(r.stdout)
        else:
            output_ok = False
    stops_world = p.flush_latency.count > 0 or p.flushes > 0
    pauses = probe.pauses(stops_world)
    samples = [e - s for intervals in pauses.values() for s, e in intervals]
    gp = p.gp_latency
    timeline = sorted([*b.timeline, *probe.samples])
    record = {
        "mips": r.mips,
        "instructions": r.instructions,
        "seconds": r.seconds,
        "stopped": r.stopped,
        "exit_code": r.exit_code,
        "output_ok": output_ok,
        "fault": None if r.fault is None else str(r.fault),
        "violations": len(r.violations),
        "violation_messages": list(r.violations[:3]),
        "translations": b.translations,
        "retranslations": b.retranslations,
        "invalidations": b.invalidations,
        "retirements": p.retirements,
        "reclaims": p.reclaims,
        "flushes": p.flushes,
        "translator_waits": p.translator_waits,
        "links_made": b.links.made,
        "links_followed": b.links.followed,
        "links_removed_on_retire": b.links.removed_on_retire,
        "links_removed_on_flush": b.links.removed_on_flush,
        "links_removed_on_invalidate": b.links.removed_on_invalidate,
        # vCPU time spent stepping aside for grace periods at block boundaries
        # (RCU under a GIL); part of the time a policy costs vCPUs.
        "stepped_aside_ms": p.stepped_aside * 1e3,
        "wait_ms": Distribution.from_seconds(p.wait).to_json(count=False),
        "pause_ms": _pauses_ms(samples),
        "stop_the_world_ms": Distribution.from_seconds(p.flush_latency).to_json(),
        "time_to_quiesce_ms": Distribution.from_seconds(w.time_to_quiesce).to_json(),
        "gp_latency_ms": None if gp is None else Distribution.from_seconds(gp).to_json(),
        "peak_live_kb": b.peak_live_bytes / 1024,
        "peak_retired_kb": b.peak_retired_bytes / 1024,
        # Memory held back: retired bytes whose space cannot be reused yet,
        # as sampled while vCPUs run (the buffer samples itself after each
        # retirement, invalidation, reclaim and flush; the probe whenever a
        # translator finds it full). A flush retires and reclaims inside one
        # exclusive section, so it holds back only code invalidated before it.
        "held_back_kb": max((ret for _, _, ret in timeline), default=0) / 1024,
        "timeline": [[t, live, ret] for t, live, ret in _thin(timeline, MAX_TIMELINE)],
        "stops": {
            str(v): [[s, e] for s, e in intervals[:MAX_STOPS_PER_VCPU]]
            for v, intervals in sorted(pauses.items())
        },
    }
    return record, samples


#: How the summaries of several executions of one run combine.
_SUMMED = (
    "instructions", "seconds", "violations", "translations", "retranslations", "invalidations",
    "retirements", "reclaims", "flushes", "translator_waits", "stepped_aside_ms",
    "links_made", "links_followed", "links_removed_on_retire", "links_removed_on_flush",
    "links_removed_on_invalidate",
)  # fmt: skip
_PEAKS = ("peak_live_kb", "peak_retired_kb", "held_back_kb")
_DISTRIBUTIONS = ("wait_ms", "stop_the_world_ms", "time_to_quiesce_ms", "gp_latency_ms")


def _merge(records: list[Json], samples: list[float]) -> Json:
    """One run's record from its executions' (the first one's timeline and stops).

    Counts add up and peaks are the largest; pauses are recomputed from every
    execution's; of the other distributions, counts add up and each
    percentile is the largest of the executions' (an upper bound of the
    pooled one).
    """
    first = records[0]
    out = dict(first)
    for key in _SUMMED:
        out[key] = sum(r[key] for r in records)
    for key in _PEAKS:
        out[key] = max(r[key] for r in records)
    for key in _DISTRIBUTIONS:
        stored = [r[key] for r in records if r[key] is not None]
        if stored:
            merged = Distribution.upper_bound([Distribution.from_json(d) for d in stored])
            out[key] = merged.to_json(count="count" in stored[0], total="total" in stored[0])
    out["mips"] = out["instructions"] / out["seconds"] / 1e6 if out["seconds"] > 0 else 0.0
    out["pause_ms"] = _pauses_ms(samples)
    last = records[-1]
    out["stopped"], out["exit_code"] = last["stopped"], last["exit_code"]
    oks = [r["output_ok"] for r in records]
    out["output_ok"] = None if None in oks else all(oks)
    out["fault"] = next((r["fault"] for r in records if r["fault"] is not None), None)
    out["violation_messages"] = [m for r in records for m in r["violation_messages"]][:3]
    out["executions"] = len(records)
    return out


def run_once(
    cell: Cell,
    regions: int,
    seconds: float | None,
    instructions: int | None,
    min_run_seconds: float = 0.0,
    expect: str | None = None,
) -> Json:
    """One run of ``cell``: executions of its workload until ``min_run_seconds`` of work.

    Returns plain data: the run's record, or ``{"error": message}`` when a
    machine cannot run as configured. A run stops early at an execution that
    went wrong (a violation, a fault, wrong output) or did not end by itself.
    """
    program = resolve_workload(cell.workload, expect)
    _warm_up()
    records: list[Json] = []
    samples: list[float] = []
    try:
        while True:
            record, pauses = _execute(cell, program, regions, seconds, instructions)
            records.append(record)
            samples += pauses
            done = sum(r["seconds"] for r in records) >= min_run_seconds
            wrong = record["violations"] or record["fault"] or record["output_ok"] is False
            if done or wrong or record["stopped"] not in ("exit", "limit"):
                break
    except (MachineError, LoaderError, ValueError, TypeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return _merge(records, samples)


def run_cell(
    cell: Cell,
    regions: int,
    seconds: float | None,
    instructions: int | None,
    repeat: int,
    expect: str | None = None,
    min_run_seconds: float = 0.0,
) -> Json:
    """Run ``cell`` ``repeat`` times in a row; its summary (see :func:`summarize`)."""
    runs: list[Json] = []
    for _ in range(repeat):
        runs.append(run_once(cell, regions, seconds, instructions, min_run_seconds, expect))
        if "error" in runs[-1]:
            break
    return summarize(cell, runs)


def summarize(cell: Cell, runs: Sequence[Json]) -> Json:
    """A cell's record from its runs, in the order they ran, as the document stores it.

    ``mips`` is the median over the runs, ``mips_ci`` the 95% interval of
    their geometric mean (:func:`tcg.stats.log_interval`; None with fewer
    than two runs) and ``mips_spread`` their range; ``runs`` keeps each run's
    throughput and costs; other counts and distributions are those of the
    median run; ``violations`` and ``faults`` add up over every run and
    ``output_ok`` holds only if it held for all. The runs after the first
    that could not run are dropped, and its message is the ``error``.
    (:class:`tcg.record.CellRecord` is the same record, typed.)
    """
    return cell_record(cell, runs).to_json()


def cell_record(cell: Cell, runs: Sequence[Json]) -> CellRecord:
    """:func:`summarize`, typed: the record of ``cell`` from its runs."""
    good: list[Json] = []
    error: str | None = None
    for run in runs:
        if "error" in run:
            error = run["error"]
            break
        good.append(run)
    where = asdict(cell)
    if not good:
        return CellRecord.failed(where, error)
    by_mips = sorted(good, key=lambda run: run["mips"])
    median = by_mips[(len(by_mips) - 1) // 2]
    oks = [run["output_ok"] for run in good]
    mips = [run["mips"] for run in good]
    ci = log_interval(mips) if all(m > 0 for m in mips) else None
    spread = Spread(by_mips[0]["mips"], by_mips[-1]["mips"], tuple(mips))
    return CellRecord.from_json(
        where
        | median
        | {
            "mips": statistics.median(mips),
            "mips_ci": None if ci is None else [ci.low, ci.high],
            "mips_spread": spread.to_json(),
            "runs": [_summary(run).to_json() for run in good],
            "repeat": len(good),
            "violations": sum(run["violations"] for run in good),
            "faults": sum(run["fault"] is not None for run in good),
            "output_ok": None if None in oks else all(oks),
            "completed": all(run["stopped"] == "exit" for run in good),
            "error": error,
        }
    )


def _summary(run: Json) -> RunSummary:
    """What a cell's record keeps of one of its runs."""
    pauses = Distribution.from_json(run["pause_ms"])
    return RunSummary(
        mips=run["mips"],
        instructions=run["instructions"],
        seconds=run["seconds"],
        executions=run["executions"],
        retranslations=run["retranslations"],
        held_back_kb=run["held_back_kb"],
        pause_ms=pauses.total,
        stepped_aside_ms=run["stepped_aside_ms"],
        pause_max_ms=pauses.max,
        quiesce_max_ms=Distribution.from_json(run["time_to_quiesce_ms"]).max,
    )


_warmed = False


def _warm_up() -> None:
    """Once per process, run a short program unmeasured.

    The first machine of a process pays for one-time work (imports, caches
    of the front end); without this, whichever cell ran first looked slow.
    """
    global _warmed
    if not _warmed:
        _warmed = True
        Machine(WORKLOADS["crc32"].path, max_instructions=20_000).run()
