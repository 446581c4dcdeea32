"""The comparison harness: every policy on the same guest work, side by side.

Why a harness
-------------
Whether retiring translated code under RCU beats a stop-the-world flush is
not a question one run answers. The answer depends on how much code the guest
has against how much buffer it gets (a flush that runs once a second costs
nothing; one that runs every millisecond costs everything), on how many vCPUs
a flush must stop, and on noise. So the harness runs a grid of *cells*,
``(policy, vcpus, buffer_kb, workload)``, each ``repeat`` times, and reports
the median with a 95% interval. Next to each (workload, vCPU count) it runs a
*no-pressure baseline* (a buffer so large nothing is ever retired), so that
throughput under pressure reads as a fraction of what the same machine does
when reclamation never happens.

Runs and rounds
---------------
A *run* executes the workload back to back until it has done at least
``min_run_seconds`` of guest work (one execution when that is 0), so that a
run's throughput is total instructions over total time, not the start-up of
one short program. The runs go in *rounds*: each round runs every cell and
every baseline once, so the baseline gets as many runs as each cell. Within a
round, the policies of one site (vCPUs, buffer, workload) run one after the
other, in a shuffled order, and the sites go in a shuffled order
(:func:`schedule`): run *i* of one policy and run *i* of another at the same
site ran seconds apart, under the same load of the host, and
:func:`comparisons` pairs them.

What is measured, and how
-------------------------
Most numbers come straight from :class:`tcg.machine.MachineResult`: guest
instructions and MIPS, translations and retranslations, flushes and region
retirements, grace-period latency, peak and sampled host-code bytes. One
number needs help: *how long vCPUs were stopped or waiting because of the
policy*. The harness wraps the policy in a probe that delegates every call
and records, per vCPU thread, the intervals spent outside guest code (from
the ``leave`` hook to the next ``enter``) and the intervals in which any
translator waited for space. An interval outside guest code counts as a
policy pause when its own vCPU waited for space in it, or, for a policy that
stops the world (one whose statistics report stop-the-world pauses), when it
overlaps any vCPU's wait. System calls and atomic steps alone do not count.

Correctness is checked on every run: the guest's output must equal the
workload's expected output (a prefix of it, when the run was cut short by its
budget), no run may hit a :class:`tcg.UseAfterReclaimError`, and no run may
fault. A run is bounded either by ``instructions`` (the machine stops once
that many have retired) or by ``seconds``: a timer stops the machine at the
next safe point once the budget has passed; a program that ends sooner simply
ends.

Scenarios
---------
The ``pressure`` scenario is the grid above. The ``stall`` scenario asks a
different question: what does each policy do when one vCPU is blocked in a
long host call? Its cells run the ``stall`` guest (one hart sleeps in
``nanosleep`` while the others run code under buffer pressure) twice, with
the machine's ``host_calls`` set to ``"inside"`` (the naive way: the sleeper
stays in ``running()`` and its read-side critical section, so a flush's
exclusive section and an RCU grace period wait for the rest of its sleep) and
to ``"outside"`` (the right way: the hart leaves guest code before it blocks,
so nobody waits for it). Each record says which in its ``host_calls`` field.

Everything a worker process returns is plain data (dicts, lists, numbers,
strings), so cells can run in parallel processes and the result is the JSON
document itself.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import datetime
import importlib
import itertools
import math
import multiprocessing
import os
import platform
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import quiescent
from tcg.block import TranslationBlock
from tcg.buffer import TranslationBuffer
from tcg.engines import DEFAULT_ENGINE, ENGINES, engine_available, make_machine
from tcg.machine import POLICIES, Machine, MachineError, MachineResult, make_policy
from tcg.policies import PolicyStatistics, RetirePolicy, VcpuHooks
from tcg.record import CellRecord, Distribution
from tcg.riscv.elf import parse_elf
from tcg.riscv.errors import LoaderError
from tcg.stats import Interval, family_confidence, log_interval, ratio_interval
from tcg.workloads import WORKLOADS

__all__ = [
    "BASELINE_KB",
    "CONFIDENCE",
    "JSON_VERSION",
    "METRICS",
    "SCENARIOS",
    "Cell",
    "Settings",
    "check_policy",
    "comparisons",
    "machine_info",
    "pressure_cells",
    "resolve_workload",
    "run_cell",
    "run_comparison",
    "run_once",
    "schedule",
    "summarize",
]

#: The version of the JSON document (bumped if a pinned field changes).
JSON_VERSION = 1
#: The no-pressure baseline: a buffer larger than any workload's code.
BASELINE_KB = 16 * 1024
#: Stored per vCPU and cell for the pause timeline (the first ones in time).
MAX_STOPS_PER_VCPU = 1000
#: Buffer timeline samples stored per cell (evenly thinned).
MAX_TIMELINE = 400
#: What a comparison is about: ``pressure``, the buffer-size and vCPU sweep;
#: ``stall``, a vCPU blocked in long host calls, each cell run with the calls
#: inside guest code and outside it.
SCENARIOS = ("pressure", "stall")
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

HostCalls = Literal["outside", "inside"]

Json = dict[str, Any]


# ----------------------------------------------------------------------
# What to run


@dataclass(frozen=True, slots=True)
class Cell:
    """One point of the grid: a policy, a vCPU count, a buffer size, a workload.

    ``host_calls`` is where the machine runs blocking host calls
    (:class:`tcg.machine.Machine`): ``"outside"`` guest code, the right way,
    or ``"inside"``, the naive way the ``stall`` scenario compares it with.
    ``engine`` names the emulator (:data:`tcg.engines.ENGINES`).
    """

    policy: str
    vcpus: int
    buffer_kb: float
    workload: str
    host_calls: HostCalls = "outside"
    engine: str = DEFAULT_ENGINE


@dataclass(frozen=True, slots=True)
class Settings:
    """A whole comparison: the grid's axes and how each run is bounded.

    ``seconds`` and ``instructions`` bound each execution of the workload (at
    most one of them; neither means: run every program to its end). A run
    repeats executions until it has lasted ``min_run_seconds`` (0: one
    execution); ``repeat`` is the number of rounds, each running every cell
    and baseline once. ``expect`` maps a workload given as a path to the
    file holding its expected output.
    """

    policies: tuple[str, ...]
    vcpus: tuple[int, ...]
    buffer_kb: tuple[float, ...]
    workloads: tuple[str, ...]
    regions: int = 8
    seconds: float | None = None
    instructions: int | None = None
    repeat: int = 1
    seed: int = 0
    jobs: int = 1
    expect: dict[str, str] = field(default_factory=dict)
    baseline_kb: float = BASELINE_KB
    scenario: str = "pressure"
    #: The emulator every cell runs on (:data:`tcg.engines.ENGINES`).
    engine: str = DEFAULT_ENGINE
    #: Each run executes the workload until it did this much guest work.
    min_run_seconds: float = 0.0

    def __post_init__(self) -> None:
        for name in ("policies", "vcpus", "buffer_kb", "workloads"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        if any(v < 1 for v in self.vcpus):
            raise ValueError(f"vcpus must be >= 1, not {list(self.vcpus)}")
        if any(not kb > 0 for kb in self.buffer_kb):
            raise ValueError(f"buffer sizes must be > 0 KiB, not {list(self.buffer_kb)}")
        if self.regions < 1 or self.repeat < 1 or self.jobs < 1:
            raise ValueError("regions, repeat and jobs must be >= 1")
        if self.seconds is not None and self.instructions is not None:
            raise ValueError("give at most one of seconds and instructions")
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError(f"seconds must be > 0, not {self.seconds}")
        if self.instructions is not None and self.instructions < 1:
            raise ValueError(f"instructions must be >= 1, not {self.instructions}")
        if not 0 <= self.min_run_seconds < math.inf:
            raise ValueError(f"min_run_seconds must be >= 0, not {self.min_run_seconds}")
        if self.scenario not in SCENARIOS:
            raise ValueError(
                f"unknown scenario {self.scenario!r}: expected one of {', '.join(SCENARIOS)}"
            )
        if self.engine not in ENGINES:
            raise ValueError(
                f"unknown engine {self.engine!r}: expected one of {', '.join(ENGINES)}"
            )

    def cells(self) -> list[Cell]:
        """The grid, in report order: workload, policy, vCPUs, buffer size.

        In the ``stall`` scenario every point runs twice, host calls
        ``inside`` guest code (before) and ``outside`` it (after).
        """
        placements: tuple[HostCalls, ...] = (
            ("inside", "outside") if self.scenario == "stall" else ("outside",)
        )
        return [
            Cell(policy, vcpus, kb, workload, host_calls, self.engine)
            for workload in self.workloads
            for policy in self.policies
            for vcpus in self.vcpus
            for kb in self.buffer_kb
            for host_calls in placements
        ]

    def baselines(self) -> list[Cell]:
        """One no-pressure cell per (workload, policy, vCPU count).

        Per policy, so that a fraction measures what pressure costs that
        policy, not the price of its read side (which the MIPS column shows).
        """
        return [
            Cell(policy, vcpus, self.baseline_kb, workload, engine=self.engine)
            for workload in self.workloads
            for policy in self.policies
            for vcpus in self.vcpus
        ]


@dataclass(frozen=True, slots=True)
class GuestProgram:
    """A workload resolved to an ELF file and, if known, its expected output."""

    name: str
    path: str
    #: The expected stdout for a vCPU count; None when nobody said what it is.
    expected: Callable[[int], bytes] | None


def resolve_workload(spec: str, expect: str | None = None) -> GuestProgram:
    """A built-in workload by name, or an ELF file by path (``ValueError`` if neither).

    A built-in workload knows its output. A path does not: its output is
    checked only against ``expect`` (a file of the exact expected stdout),
    and otherwise not at all (``output_ok`` is ``None``). A path must be an
    ELF32 RISC-V executable the emulator can load, checked here, before
    anything runs.
    """
    if spec in WORKLOADS:
        w = WORKLOADS[spec]
        return GuestProgram(spec, str(w.path), w.expected_output)
    path = Path(spec)
    if not path.is_file():
        raise ValueError(
            f"unknown workload {spec!r}: not a file, and not one of {', '.join(WORKLOADS)}"
        )
    try:
        parse_elf(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"workload {spec!r} cannot be read: {exc.strerror}") from None
    except LoaderError as exc:
        raise ValueError(f"workload {spec!r} is not a loadable ELF32 RISC-V file: {exc}") from None
    if expect is None:
        return GuestProgram(spec, str(path), None)
    data = Path(expect).read_bytes()
    return GuestProgram(spec, str(path), lambda harts: data)


def check_policy(spec: str) -> None:
    """Raise ``ValueError`` unless ``spec`` names a policy a machine can make.

    ``module:Class`` is imported and called once with a fresh world, so a
    typo or a factory that does not make a :class:`RetirePolicy` is reported
    before anything runs.
    """
    if spec in POLICIES:
        return
    if ":" not in spec:
        raise ValueError(
            f"unknown policy {spec!r}: expected one of {', '.join(POLICIES)} or module:Class"
        )
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot import policy {spec!r}: {exc}") from None
    if not callable(factory):
        raise ValueError(
            f"policy {spec!r} is a {type(factory).__name__}, not a class or factory "
            "that takes a quiescent.World"
        )
    try:
        policy = make_policy(spec, quiescent.World(name="check"))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
    except Exception as exc:
        raise ValueError(f"policy {spec!r} failed to build: {exc!r}") from None
    policy.close()


# ----------------------------------------------------------------------
# The probe: when were vCPUs out of guest code, and why


class _Probe:
    """A policy that delegates to ``inner`` and records when vCPUs stopped.

    Per vCPU thread: intervals outside guest code (``leave`` to ``enter``),
    and the intervals of every ``wait_for_space`` call. Times are seconds
    since the probe was made (about when the machine's buffer was).
    """

    def __init__(self, inner: RetirePolicy) -> None:
        self.inner = inner
        self.name = inner.name
        self.t0 = time.perf_counter()
        self._lock = threading.Lock()
        self.gaps: dict[int, list[tuple[float, float]]] = {}
        self.waits: list[tuple[float, float, int]] = []  # (start, end, vcpu)
        #: (seconds, live bytes, retired bytes) whenever a translator found the
        #: buffer full: the buffer samples itself only when regions change
        #: state, which misses how full it was just before a flush.
        self.samples: list[tuple[float, int, int]] = []
        self._buffer: TranslationBuffer | None = None
        self._order: dict[int, int] = {}  # thread ident -> vCPU number

    def _vcpu(self) -> int:
        ident = threading.get_ident()
        with self._lock:
            if ident not in self._order:
                self._order[ident] = len(self._order)
                self.gaps[self._order[ident]] = []
            return self._order[ident]

    def bind(self, buffer: TranslationBuffer) -> None:
        self.inner.bind(buffer)
        self._buffer = buffer

    def on_full(self) -> object:
        return self.inner.on_full()

    def on_region_start(self, free_regions: int) -> None:
        self.inner.on_region_start(free_regions)

    def on_invalidate(self, tbs: list[TranslationBlock]) -> None:
        self.inner.on_invalidate(tbs)

    def wait_for_space(self, token: object) -> None:
        vcpu = self._vcpu()
        start = time.perf_counter() - self.t0
        if self._buffer is not None:
            # Two int reads, no lock: a sample may be a moment stale.
            self.samples.append((start, self._buffer._live, self._buffer._retired))
        try:
            self.inner.wait_for_space(token)
        finally:
            end = time.perf_counter() - self.t0
            with self._lock:
                self.waits.append((start, end, vcpu))

    def vcpu_hooks(self) -> VcpuHooks:
        hooks = self.inner.vcpu_hooks()
        gaps = self.gaps[self._vcpu()]
        inner_enter, inner_leave = hooks.enter, hooks.leave
        clock, t0 = time.perf_counter, self.t0
        left = [clock() - t0]  # before its first entry the vCPU was starting up

        def enter() -> None:
            gaps.append((left[0], clock() - t0))
            inner_enter()

        def leave() -> None:
            inner_leave()
            left[0] = clock() - t0

        return VcpuHooks(enter, leave, hooks.boundary)

    def statistics(self) -> PolicyStatistics:
        return self.inner.statistics()

    def close(self) -> None:
        self.inner.close()

    def pauses(self, stops_world: bool) -> dict[int, list[tuple[float, float]]]:
        """Per vCPU, the intervals outside guest code that the policy caused.

        A vCPU's own wait for space counts whole (from leaving guest code to
        entering it again). Under a policy that stops the world, a vCPU's
        time outside guest code while some translator waited counts once per
        merged wait (overlapping waits of several translators make one): the
        sum of that time clipped to the wait, drawn from where it began. A
        vCPU asleep in a host call when a flush began is charged the flush,
        not the rest of its sleep; one that left guest code many times during
        a flush (a spinning hart exits at every ``fence``) is stopped once.
        """
        with self._lock:
            waits = sorted(self.waits)
            gaps = {v: list(g) for v, g in self.gaps.items()}
        busy = _union([(start, end) for start, end, _ in waits])
        busy_starts = [a for a, _ in busy]
        own: dict[int, list[tuple[float, float]]] = {}
        for start, end, vcpu in waits:
            own.setdefault(vcpu, []).append((start, end))
        result: dict[int, list[tuple[float, float]]] = {}
        for vcpu, intervals in gaps.items():
            mine = own.get(vcpu, [])
            mine_starts = [w[0] for w in mine]
            counted: list[tuple[float, float]] = []
            stopped: dict[int, tuple[float, float]] = {}  # busy interval -> (start, time)
            for a, b in intervals:
                if _contains_one(mine, mine_starts, a, b):
                    counted.append((a, b))
                elif stops_world:
                    for i, lo, hi in _clip(busy, busy_starts, a, b):
                        first, total = stopped.get(i, (lo, 0.0))
                        stopped[i] = (first, total + hi - lo)
            counted += [(first, first + total) for first, total in stopped.values()]
            result[vcpu] = sorted(counted)
        return result


def _contains_one(
    waits: list[tuple[float, float]], starts: list[float], a: float, b: float
) -> bool:
    """Does a wait of this vCPU start inside ``[a, b]``?"""
    i = bisect.bisect_left(starts, a)
    return i < len(waits) and waits[i][0] <= b


def _union(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted, overlapping intervals merged into disjoint ones."""
    merged: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _clip(
    busy: list[tuple[float, float]], starts: list[float], a: float, b: float
) -> list[tuple[int, float, float]]:
    """The parts of ``[a, b]`` inside the disjoint, sorted ``busy`` intervals, by index."""
    i = max(0, bisect.bisect_right(starts, a) - 1)
    parts = []
    while i < len(busy) and busy[i][0] <= b:
        lo, hi = max(a, busy[i][0]), min(b, busy[i][1])
        if lo < hi:
            parts.append((i, lo, hi))
        i += 1
    return parts


# ----------------------------------------------------------------------
# One run, one cell


def _pauses_ms(samples: Sequence[float]) -> Json:
    """The ``pause_ms`` distribution of a run from every pause it had, in seconds.

    The probe keeps every pause (not a window of recent ones, as the
    policies' statistics do) and a run pools them over its executions, so
    the percentiles are taken here, over all of them: nearest rank, the
    definition ``rcu.Percentiles`` and ``quiescent.Percentiles`` use.
    """
    ordered = sorted(samples)
    if not ordered:
        return Distribution.zero(total=True).to_json()

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1e3

    return Distribution(
        p50=rank(0.50),
        p99=rank(0.99),
        max=ordered[-1] * 1e3,
        count=len(ordered),
        total=sum(ordered) * 1e3,
    ).to_json()


def _thin(points: Sequence[Any], limit: int) -> list[Any]:
    if len(points) <= limit:
        return list(points)
    step = len(points) / limit
    return [points[int(i * step)] for i in range(limit)] + [points[-1]]


def _execute(
    cell: Cell, program: GuestProgram, regions: int, seconds: float | None, instructions: int | None
) -> tuple[Json, list[float]]:
    """One execution of ``cell``'s workload: its record, and its pauses in seconds."""
    probes: list[_Probe] = []

    def factory(world: quiescent.World) -> RetirePolicy:
        probe = _Probe(make_policy(cell.policy, world))
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
    cell: Cell, program: GuestProgram, r: MachineResult, probe: _Probe
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
    stops_world = p.pause.count > 0 or p.flushes > 0
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
        # vCPU time spent stepping aside for grace periods at block boundaries
        # (RCU under a GIL); part of the time a policy costs vCPUs.
        "stepped_aside_ms": p.stepped_aside * 1e3,
        "wait_ms": Distribution.from_seconds(p.wait, count=False).to_json(),
        "pause_ms": _pauses_ms(samples),
        "stop_the_world_ms": Distribution.from_seconds(p.pause).to_json(),
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
        parts = [r[key] for r in records if r[key] is not None]
        if parts:
            out[key] = {k: (sum if k == "count" else max)(d[k] for d in parts) for k in parts[0]}
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
    return _summary(cell, runs).to_json()


def _summary(cell: Cell, runs: Sequence[Json]) -> CellRecord:
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
    spread = {"min": by_mips[0]["mips"], "max": by_mips[-1]["mips"], "runs": mips}
    return CellRecord.from_json(
        where
        | median
        | {
            "mips": statistics.median(mips),
            "mips_ci": None if ci is None else [ci.low, ci.high],
            "mips_spread": spread,
            "runs": [{key: run[key] for key in _RUN_KEYS} | _run_costs(run) for run in good],
            "repeat": len(good),
            "violations": sum(run["violations"] for run in good),
            "faults": sum(run["fault"] is not None for run in good),
            "output_ok": None if None in oks else all(oks),
            "completed": all(run["stopped"] == "exit" for run in good),
            "error": error,
        }
    )


_RUN_KEYS = ("mips", "instructions", "seconds", "executions", "retranslations", "held_back_kb")


def _run_costs(run: Json) -> Json:
    return {
        "pause_ms": run["pause_ms"]["total"],
        "stepped_aside_ms": run.get("stepped_aside_ms", 0.0),
        "pause_max_ms": run["pause_ms"]["max"],
        "quiesce_max_ms": run["time_to_quiesce_ms"]["max"],
    }


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


# ----------------------------------------------------------------------
# The whole comparison


def machine_info() -> Json:
    """Where the numbers were measured."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "gil": getattr(sys, "_is_gil_enabled", lambda: True)(),
        "switch_interval_ms": sys.getswitchinterval() * 1e3,
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


#: Called once per scheduled run as it finishes: the cell and the run's
#: record (``{"error": ...}`` for a run that failed or was skipped).
Progress = Callable[[Cell, Json], None]
_BASELINE_KEYS = (
    "policy", "vcpus", "buffer_kb", "workload", "mips", "mips_spread", "instructions",
    "seconds", "stopped", "output_ok", "violations", "faults", "peak_live_kb", "error",
    "host_calls", "mips_ci", "runs",
)  # fmt: skip


def schedule(settings: Settings) -> list[tuple[int, Cell]]:
    """Every run of ``settings`` in the order it runs: ``(round, cell)`` pairs.

    Each round runs every baseline and every cell once. Within a round the
    runs are grouped by *site* (everything but the policy: vCPUs, buffer,
    workload, host calls), so the runs a comparison pairs ran within a few
    seconds of each other and a change in the host's load hits both; the
    sites, and the policies within each site, go in an order shuffled anew
    each round by a generator seeded with ``settings.seed``.
    """
    sites: dict[tuple[Any, ...], list[Cell]] = {}
    for cell in settings.baselines() + settings.cells():
        site = (cell.vcpus, cell.buffer_kb, cell.workload, cell.host_calls)
        sites.setdefault(site, []).append(cell)
    rng = random.Random(settings.seed)
    out = []
    for round_ in range(settings.repeat):
        order = list(sites.values())
        rng.shuffle(order)
        for site_cells in order:
            site_cells = list(site_cells)
            rng.shuffle(site_cells)
            out += [(round_, cell) for cell in site_cells]
    return out


def run_comparison(settings: Settings, progress: Progress | None = None) -> Json:
    """Run every cell and baseline of ``settings``; the JSON document.

    The runs go in the rounds of :func:`schedule`, on ``settings.jobs``
    processes; ``progress(cell, run)`` is called as each one finishes. A
    cell whose run failed is not run again. The document lists cells in
    grid order and ends with their :func:`comparisons`.
    """
    for workload in settings.workloads:
        resolve_workload(workload, settings.expect.get(workload))
    for policy in settings.policies:
        check_policy(policy)
    missing = engine_available(settings.engine)
    if missing is not None:
        raise MachineError(missing)
    cells = settings.cells()
    baselines = settings.baselines()
    plan = schedule(settings)
    results: dict[tuple[int, Cell], Json] = {}
    failed: set[Cell] = set()

    def args(cell: Cell) -> tuple[Any, ...]:
        return (
            cell,
            settings.regions,
            settings.seconds,
            settings.instructions,
            settings.min_run_seconds,
            settings.expect.get(cell.workload),
        )

    def finished(round_: int, cell: Cell, run: Json) -> None:
        results[round_, cell] = run
        if "error" in run:
            failed.add(cell)
        if progress is not None:
            progress(cell, run)

    started = time.perf_counter()
    if settings.jobs == 1:
        for round_, cell in plan:
            if cell in failed:
                finished(round_, cell, {"error": "skipped: an earlier run failed"})
            else:
                finished(round_, cell, run_once(*args(cell)))
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(settings.jobs, mp_context=context) as pool:
            futures = {pool.submit(run_once, *args(cell)): (r, cell) for r, cell in plan}
            for future in concurrent.futures.as_completed(futures):
                finished(*futures[future], future.result())
    elapsed = time.perf_counter() - started

    def summary(cell: Cell) -> CellRecord:
        return _summary(cell, [results[r, cell] for r in range(settings.repeat)])

    base = {(c.policy, c.workload, c.vcpus): summary(c).to_json() for c in baselines}
    records = []
    for cell in cells:
        record = summary(cell)
        baseline_mips = base[cell.policy, cell.workload, cell.vcpus]["mips"]
        fraction = record.mips / baseline_mips if baseline_mips else 0.0
        records.append(
            replace(record, baseline_mips=baseline_mips, baseline_fraction=fraction).to_json()
        )
    config = asdict(settings)
    doc: Json = {
        "version": JSON_VERSION,
        "scenario": settings.scenario,
        "machine": machine_info() | {"engine": settings.engine},
        "config": config | {"wall_seconds": elapsed, "runs": len(plan)},
        "baselines": [
            {key: base[c.policy, c.workload, c.vcpus][key] for key in _BASELINE_KEYS}
            for c in baselines
        ],
        "cells": records,
    }
    doc["comparisons"] = comparisons(doc)
    return doc


# ----------------------------------------------------------------------
# Comparisons: which policy did better, and how sure that is


def pressure_cells(doc: Json) -> list[Json]:
    """The cells whose workload's code did not fit in the buffer and where the policy acted.

    The code's size is the largest host code any policy's no-pressure
    baseline translated for that workload and vCPU count.
    """
    fits: dict[tuple[str, int], float] = {}
    for b in doc.get("baselines", []):
        key = (b["workload"], b["vcpus"])
        fits[key] = max(fits.get(key, 0.0), b["peak_live_kb"])
    out = []
    for c in doc["cells"]:
        code_kb = fits.get((c["workload"], c["vcpus"]), 0.0)
        if c["buffer_kb"] < code_kb and (c["retirements"] or c["flushes"]):
            out.append(c)
    return out


def _metric_values(cell: Json, metric: str) -> list[float]:
    """Per run, in round order, the value of ``metric`` (empty if unknown)."""
    runs = cell.get("runs")
    if runs is None:  # a document from before per-run records: MIPS only
        return list(cell["mips_spread"]["runs"]) if metric == "throughput" else []
    if metric == "throughput":
        return [run["mips"] for run in runs]
    return [
        max(
            (run["pause_ms"] + run.get("stepped_aside_ms", 0.0)) * 1e6 / run["instructions"],
            LOST_FLOOR_MS,
        )
        if run["instructions"]
        else LOST_FLOOR_MS
        for run in runs
    ]


def comparisons(doc: Json, confidence: float = CONFIDENCE) -> list[Json]:
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
    """
    cells = [
        c
        for c in doc["cells"]
        if c.get("host_calls", "outside") == "outside" and not c.get("error") and c["mips"] > 0
    ]
    policies = list(dict.fromkeys(c["policy"] for c in cells))
    pressed = {id(c) for c in pressure_cells(doc)}
    by = {(c["policy"], c["vcpus"], c["buffer_kb"], c["workload"]): c for c in cells}
    keys = list(dict.fromkeys((c["vcpus"], c["buffer_kb"], c["workload"]) for c in cells))
    plans: list[tuple[str, str, str, tuple[Any, ...] | None, list[list[float]]]] = []
    for a, b in itertools.combinations(policies, 2):
        for metric in METRICS:
            pooled: list[list[float]] = []
            per: list[tuple[tuple[Any, ...], list[float]]] = []
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
        items.append(
            {
                "metric": metric,
                "a": a,
                "b": b,
                "vcpus": None if where is None else where[0],
                "buffer_kb": None if where is None else where[1],
                "workload": None if where is None else where[2],
                "ratio": ratio,
                "ci": None if interval is None else [interval.low, interval.high],
                "better": better,
                "confidence": each,
                "cells": len(groups),
                "runs": sum(len(g) for g in groups),
            }
        )
    return items
