"""The comparison harness: every policy on the same guest work, side by side.

Why a harness
-------------
Whether retiring translated code under RCU beats a stop-the-world flush is
not a question one run answers. The answer depends on how much code the guest
has against how much buffer it gets (a flush that runs once a second costs
nothing; one that runs every millisecond costs everything), on how many vCPUs
a flush must stop, and on noise. So the harness runs a grid of *cells*,
``(policy, vcpus, buffer_kb, workload)``, each ``repeat`` times, and reports
the median with its spread. Next to each (workload, vCPU count) it runs a
*no-pressure baseline* (a buffer so large nothing is ever retired), so that
throughput under pressure reads as a fraction of what the same machine does
when reclamation never happens.

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import quiescent
from tcg.block import TranslationBlock
from tcg.buffer import TranslationBuffer
from tcg.engines import DEFAULT_ENGINE, ENGINES, engine_available, make_machine
from tcg.machine import POLICIES, Machine, MachineError, MachineResult, make_policy
from tcg.policies import PolicyStatistics, RetirePolicy, VcpuHooks
from tcg.riscv.errors import LoaderError
from tcg.workloads import WORKLOADS

__all__ = [
    "BASELINE_KB",
    "JSON_VERSION",
    "SCENARIOS",
    "Cell",
    "Settings",
    "check_policy",
    "machine_info",
    "resolve_workload",
    "run_cell",
    "run_comparison",
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

    ``seconds`` and ``instructions`` bound each run (at most one of them;
    neither means: run every program to its end). ``expect`` maps a workload
    given as a path to the file holding its expected output.
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
    and otherwise not at all (``output_ok`` is ``None``).
    """
    if spec in WORKLOADS:
        w = WORKLOADS[spec]
        return GuestProgram(spec, str(w.path), w.expected_output)
    path = Path(spec)
    if not path.is_file():
        raise ValueError(
            f"unknown workload {spec!r}: not a file, and not one of {', '.join(WORKLOADS)}"
        )
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


def _percentiles_ms(samples: Sequence[float]) -> Json:
    ordered = sorted(samples)
    if not ordered:
        return {"total": 0.0, "count": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1e3

    return {
        "total": sum(ordered) * 1e3,
        "count": len(ordered),
        "p50": rank(0.50),
        "p99": rank(0.99),
        "max": ordered[-1] * 1e3,
    }


def _thin(points: Sequence[Any], limit: int) -> list[Any]:
    if len(points) <= limit:
        return list(points)
    step = len(points) / limit
    return [points[int(i * step)] for i in range(limit)] + [points[-1]]


def _run_once(
    cell: Cell, program: GuestProgram, regions: int, seconds: float | None, instructions: int | None
) -> Json:
    """One machine run of ``cell``: a plain-data record of what happened."""
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


def _record(cell: Cell, program: GuestProgram, r: MachineResult, probe: _Probe) -> Json:
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
    return {
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
        "wait_ms": {"p50": p.wait.p50 * 1e3, "p99": p.wait.p99 * 1e3, "max": p.wait.max * 1e3},
        "pause_ms": _percentiles_ms(samples),
        "stop_the_world_ms": {
            "count": p.pause.count,
            "p50": p.pause.p50 * 1e3,
            "p99": p.pause.p99 * 1e3,
            "max": p.pause.max * 1e3,
        },
        "time_to_quiesce_ms": {
            "count": w.time_to_quiesce.count,
            "p50": w.time_to_quiesce.p50 * 1e3,
            "p99": w.time_to_quiesce.p99 * 1e3,
            "max": w.time_to_quiesce.max * 1e3,
        },
        "gp_latency_ms": None
        if gp is None
        else {"count": gp.count, "p50": gp.p50 * 1e3, "p99": gp.p99 * 1e3, "max": gp.max * 1e3},
        "peak_live_kb": b.peak_live_bytes / 1024,
        "peak_retired_kb": b.peak_retired_bytes / 1024,
        "timeline": [
            [t, live, ret]
            for t, live, ret in _thin(sorted([*b.timeline, *probe.samples]), MAX_TIMELINE)
        ],
        "stops": {
            str(v): [[s, e] for s, e in intervals[:MAX_STOPS_PER_VCPU]]
            for v, intervals in sorted(pauses.items())
        },
    }


def run_cell(
    cell: Cell,
    regions: int,
    seconds: float | None,
    instructions: int | None,
    repeat: int,
    expect: str | None = None,
) -> Json:
    """Run ``cell`` ``repeat`` times; the median run's details, with the spread.

    Returns plain data (safe to pickle and to dump as JSON). ``mips`` is the
    median over the runs and ``mips_spread`` their range; counts and
    distributions are those of the median run; ``violations`` and ``faults``
    add up over every run and ``output_ok`` holds only if it held for all.
    A machine that cannot run as configured is reported in ``error``.
    """
    program = resolve_workload(cell.workload, expect)
    _warm_up()
    runs: list[Json] = []
    error: str | None = None
    for _ in range(repeat):
        try:
            runs.append(_run_once(cell, program, regions, seconds, instructions))
        except (MachineError, LoaderError, ValueError, TypeError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            break
    out: Json = {
        "policy": cell.policy,
        "vcpus": cell.vcpus,
        "buffer_kb": cell.buffer_kb,
        "workload": cell.workload,
        "host_calls": cell.host_calls,
        "engine": cell.engine,
    }
    if not runs:
        return out | _empty(error)
    by_mips = sorted(runs, key=lambda run: run["mips"])
    median = by_mips[(len(by_mips) - 1) // 2]
    oks = [run["output_ok"] for run in runs]
    out |= median
    out |= {
        "mips": statistics.median(run["mips"] for run in runs),
        "mips_spread": {
            "min": by_mips[0]["mips"],
            "max": by_mips[-1]["mips"],
            "runs": [run["mips"] for run in runs],
        },
        "repeat": len(runs),
        "violations": sum(run["violations"] for run in runs),
        "faults": sum(run["fault"] is not None for run in runs),
        "output_ok": None if None in oks else all(oks),
        "completed": all(run["stopped"] == "exit" for run in runs),
        "error": error,
    }
    return out


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


def _empty(error: str | None) -> Json:
    zero = {"p50": 0.0, "p99": 0.0, "max": 0.0}
    return {
        "mips": 0.0,
        "mips_spread": {"min": 0.0, "max": 0.0, "runs": []},
        "instructions": 0,
        "seconds": 0.0,
        "stopped": "error",
        "exit_code": None,
        "output_ok": False,
        "fault": None,
        "violations": 0,
        "violation_messages": [],
        "translations": 0,
        "retranslations": 0,
        "invalidations": 0,
        "retirements": 0,
        "reclaims": 0,
        "flushes": 0,
        "translator_waits": 0,
        "wait_ms": dict(zero),
        "pause_ms": {"total": 0.0, "count": 0, **zero},
        "stop_the_world_ms": {"count": 0, **zero},
        "time_to_quiesce_ms": {"count": 0, **zero},
        "gp_latency_ms": None,
        "peak_live_kb": 0.0,
        "peak_retired_kb": 0.0,
        "timeline": [],
        "stops": {},
        "repeat": 0,
        "faults": 0,
        "completed": False,
        "error": error,
    }


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


Progress = Callable[[Cell, Json], None]
_BASELINE_KEYS = (
    "policy", "vcpus", "buffer_kb", "workload", "mips", "mips_spread", "instructions",
    "seconds", "stopped", "output_ok", "violations", "faults", "peak_live_kb", "error",
    "host_calls",
)  # fmt: skip


def run_comparison(settings: Settings, progress: Progress | None = None) -> Json:
    """Run every cell and baseline of ``settings``; the JSON document.

    Cells run in an order shuffled with ``settings.seed`` (so slow drift of
    the host does not always hit the same policy), on ``settings.jobs``
    processes; ``progress(cell, record)`` is called as each one finishes.
    The document lists cells in grid order.
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
    tasks = baselines + cells
    order = list(range(len(tasks)))
    random.Random(settings.seed).shuffle(order)
    results: dict[int, Json] = {}

    def args(cell: Cell) -> tuple[Any, ...]:
        return (
            cell,
            settings.regions,
            settings.seconds,
            settings.instructions,
            settings.repeat,
            settings.expect.get(cell.workload),
        )

    started = time.perf_counter()
    if settings.jobs == 1:
        for i in order:
            results[i] = run_cell(*args(tasks[i]))
            if progress is not None:
                progress(tasks[i], results[i])
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(settings.jobs, mp_context=context) as pool:
            futures = {pool.submit(run_cell, *args(tasks[i])): i for i in order}
            for future in concurrent.futures.as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                if progress is not None:
                    progress(tasks[i], results[i])
    elapsed = time.perf_counter() - started

    base = {(c.policy, c.workload, c.vcpus): results[i] for i, c in enumerate(baselines)}
    records = []
    for j, cell in enumerate(cells):
        record = results[len(baselines) + j]
        baseline_mips = base[cell.policy, cell.workload, cell.vcpus]["mips"]
        record["baseline_mips"] = baseline_mips
        record["baseline_fraction"] = record["mips"] / baseline_mips if baseline_mips else 0.0
        records.append(record)
    config = asdict(settings)
    return {
        "version": JSON_VERSION,
        "scenario": settings.scenario,
        "machine": machine_info() | {"engine": settings.engine},
        "config": config | {"wall_seconds": elapsed},
        "baselines": [
            {key: base[c.policy, c.workload, c.vcpus][key] for key in _BASELINE_KEYS}
            for c in baselines
        ],
        "cells": records,
    }
