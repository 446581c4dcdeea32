"""The whole comparison: every run in shuffled rounds, then the JSON document."""

from __future__ import annotations

import concurrent.futures
import datetime
import multiprocessing
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from tcg.compare.grid import JSON_VERSION, Cell, Settings, check_policy, resolve_workload
from tcg.compare.pairing import comparisons
from tcg.compare.runs import cell_record, run_once
from tcg.engines import DEFAULT_ENGINE, engine_available
from tcg.machine import MachineError
from tcg.record import BaselineRecord, CellRecord, ComparisonDocument, MachineInfo

Json = dict[str, Any]


def machine_info(engine: str = DEFAULT_ENGINE) -> Json:
    """Where the numbers were measured (a :class:`tcg.record.MachineInfo` as JSON)."""
    return _machine(engine).to_json()


def _machine(engine: str) -> MachineInfo:
    return MachineInfo(
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        gil=getattr(sys, "_is_gil_enabled", lambda: True)(),
        switch_interval_ms=sys.getswitchinterval() * 1e3,
        platform=platform.platform(),
        processor=platform.machine(),
        cpu_count=os.cpu_count(),
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        engine=engine,
    )


#: Called once per scheduled run as it finishes: the cell and the run's
#: record (``{"error": ...}`` for a run that failed or was skipped).
Progress = Callable[[Cell, Json], None]


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
        return cell_record(cell, [results[r, cell] for r in range(settings.repeat)])

    base = {(c.policy, c.workload, c.vcpus): summary(c) for c in baselines}
    records = []
    for cell in cells:
        record = summary(cell)
        baseline_mips = base[cell.policy, cell.workload, cell.vcpus].mips
        fraction = record.mips / baseline_mips if baseline_mips else 0.0
        records.append(replace(record, baseline_mips=baseline_mips, baseline_fraction=fraction))
    config = asdict(settings)
    doc = ComparisonDocument(
        version=JSON_VERSION,
        scenario=settings.scenario,
        machine=_machine(settings.engine),
        config=config | {"wall_seconds": elapsed, "runs": len(plan)},
        baselines=tuple(BaselineRecord.of(base[c.policy, c.workload, c.vcpus]) for c in baselines),
        cells=tuple(records),
        comparisons=None,
    )
    return doc.to_json() | {"comparisons": comparisons(doc)}
