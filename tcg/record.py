"""A comparison's results, typed: the document and one frozen record per cell.

The harness (:mod:`tcg.compare`) writes a JSON document whose ``cells`` are
the records of this module, one per (policy, vCPUs, buffer, workload, host
calls, engine). :class:`CellRecord` names every field once, with its type
and unit, and converts exactly: ``CellRecord.from_json(d).to_json() == d``
for every cell the harness writes and for the stored documents of
``docs/comparison/`` (a document from before per-run records has no
``runs``; its record keeps ``runs`` as None and writes no such key).

:class:`ComparisonDocument` is the whole document the same way: where it
was measured (:class:`MachineInfo`), the settings, the no-pressure
baselines (:class:`BaselineRecord`, a cell's record reduced to what a
fraction and a correctness check need), the cells and the comparisons
(:class:`Comparison`). Everything that reads a document (the report, the
comparison page) reads it through these records, never by string keys; the
JSON stays the interchange format, so worker processes, files and other
tools keep plain data.

Older documents load: fields added since (``stepped_aside_ms``,
``executions``, ``held_back_kb``, ``mips_ci``, the per-run ``runs``, the
document's ``comparisons``) read as what they meant before they existed
(nothing stepped aside, one execution per run, nothing held back, no
interval, no per-run figures, comparisons not stored).

Latencies are in milliseconds (:class:`Distribution`), sizes in KiB,
throughput in guest MIPS (millions of guest instructions per second).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

__all__ = [
    "BaselineRecord",
    "CellRecord",
    "Comparison",
    "ComparisonDocument",
    "Distribution",
    "DocumentLike",
    "MachineInfo",
    "RunSummary",
    "Spread",
    "document",
    "records",
]

Json = dict[str, Any]


class _Summary(Protocol):
    """What :meth:`Distribution.from_seconds` reads: a latency summary in seconds."""

    @property
    def count(self) -> int: ...
    @property
    def p50(self) -> float: ...
    @property
    def p99(self) -> float: ...
    @property
    def max(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Distribution:
    """A latency distribution in milliseconds: median, 99th percentile, maximum.

    ``count`` is how many samples there were and ``total`` their sum. Not
    every distribution of the document carries them (``wait_ms`` has
    neither, only ``pause_ms`` has a total): :meth:`to_json` says which to
    write, and :meth:`from_json` reads an absent one as 0.
    """

    p50: float
    p99: float
    max: float
    count: int = 0
    total: float = 0.0

    @classmethod
    def from_seconds(cls, summary: _Summary) -> Distribution:
        """A summary in seconds (``rcu.Percentiles``, ``quiescent.Percentiles``) in ms."""
        return cls(
            p50=summary.p50 * 1e3,
            p99=summary.p99 * 1e3,
            max=summary.max * 1e3,
            count=summary.count,
        )

    def to_json(self, count: bool = True, total: bool = False) -> Json:
        """The document's dict: ``total`` and ``count`` if asked for, ``p50``, ``p99``, ``max``."""
        out: Json = {}
        if total:
            out["total"] = self.total
        if count:
            out["count"] = self.count
        return out | {"p50": self.p50, "p99": self.p99, "max": self.max}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Distribution:
        """The inverse of :meth:`to_json`."""
        return cls(
            data["p50"], data["p99"], data["max"], data.get("count", 0), data.get("total", 0.0)
        )

    @classmethod
    def upper_bound(cls, parts: Sequence[Distribution]) -> Distribution:
        """Several distributions pooled, without their samples: counts and totals add
        up, and each percentile is the largest of the parts' (a bound of the pooled one)."""
        if not parts:
            raise ValueError("upper_bound needs at least one distribution")
        return cls(
            p50=max(d.p50 for d in parts),
            p99=max(d.p99 for d in parts),
            max=max(d.max for d in parts),
            count=sum(d.count for d in parts),
            total=sum(d.total for d in parts),
        )


@dataclass(frozen=True, slots=True)
class Spread:
    """The MIPS of a cell's runs, in the order they ran, and their range."""

    min: float
    max: float
    runs: tuple[float, ...]

    def to_json(self) -> Json:
        """The document's ``mips_spread`` dict."""
        return {"min": self.min, "max": self.max, "runs": list(self.runs)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Spread:
        """The inverse of :meth:`to_json`."""
        return cls(data["min"], data["max"], tuple(data["runs"]))


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One run of a cell: its throughput and what the policy cost it.

    ``pause_ms`` is the total vCPU time the policy stopped or kept vCPUs
    waiting, ``stepped_aside_ms`` the time vCPUs stepped aside for grace
    periods; ``pause_max_ms`` and ``quiesce_max_ms`` the longest pause and
    the longest wait for the world to quiesce.
    """

    mips: float
    instructions: int
    seconds: float
    executions: int
    retranslations: int
    held_back_kb: float
    pause_ms: float
    stepped_aside_ms: float
    pause_max_ms: float
    quiesce_max_ms: float

    def to_json(self) -> Json:
        """The dict of a cell's ``runs`` list."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSummary:
        """The inverse of :meth:`to_json` (``stepped_aside_ms`` 0 in older documents)."""
        return cls(**({"stepped_aside_ms": 0.0} | dict(data)))


#: Fields of :class:`CellRecord` that older documents lack, and what their
#: absence meant.
_ADDED_SINCE: dict[str, Any] = {
    "stepped_aside_ms": 0.0,
    "executions": 1,
    "held_back_kb": 0.0,
    "mips_ci": None,
    "links_made": 0,
    "links_followed": 0,
    "links_removed_on_retire": 0,
    "links_removed_on_flush": 0,
    "links_removed_on_invalidate": 0,
}

#: The fields of :class:`CellRecord` that hold a :class:`Distribution`, and
#: which of ``count`` and ``total`` the document stores for each.
_DISTRIBUTIONS: dict[str, dict[str, bool]] = {
    "wait_ms": {"count": False},
    "pause_ms": {"total": True},
    "stop_the_world_ms": {},
    "time_to_quiesce_ms": {},
    "gp_latency_ms": {},
}


@dataclass(frozen=True, slots=True)
class CellRecord:
    """What one cell of a comparison measured, over all its runs.

    The first six fields say which cell (:class:`tcg.compare.Cell`); the
    fields go in the order the document has always listed them.
    ``mips`` is the median over the runs, ``mips_ci`` the 95% interval of
    their geometric mean (None with fewer than two runs), ``mips_spread``
    their range; counts and distributions are those of the median run;
    ``violations`` and ``faults`` add up over every run and ``output_ok``
    holds only if it held for all (None: no expected output known).
    ``error`` is the message of the first run that could not run.
    ``baseline_mips`` and ``baseline_fraction`` compare the cell with its
    no-pressure baseline; None for a record that has none (a baseline's own
    record), and then left out of the JSON.
    """

    policy: str
    vcpus: int
    buffer_kb: float
    workload: str
    host_calls: str
    engine: str
    mips: float
    instructions: int
    seconds: float
    stopped: str
    exit_code: int | None
    output_ok: bool | None
    fault: str | None
    violations: int
    violation_messages: tuple[str, ...]
    translations: int
    retranslations: int
    invalidations: int
    retirements: int
    reclaims: int
    flushes: int
    translator_waits: int
    #: Block chaining: links made and blocks entered through one, and links
    #: removed by retiring regions, by flushes and by invalidations (what
    #: unlinking cost each policy; see :class:`tcg.buffer.LinkStatistics`).
    links_made: int
    links_followed: int
    links_removed_on_retire: int
    links_removed_on_flush: int
    links_removed_on_invalidate: int
    #: vCPU time spent stepping aside for grace periods at block boundaries.
    stepped_aside_ms: float
    wait_ms: Distribution
    pause_ms: Distribution
    stop_the_world_ms: Distribution
    time_to_quiesce_ms: Distribution
    gp_latency_ms: Distribution | None
    peak_live_kb: float
    peak_retired_kb: float
    #: Retired code whose space could not be reused yet, sampled while vCPUs ran.
    held_back_kb: float
    #: ``(seconds, live bytes, retired bytes)`` samples of the buffer.
    timeline: tuple[tuple[float, int, int], ...]
    #: Per vCPU (its number as a string), ``(start, end)`` of its pauses in seconds.
    stops: Mapping[str, tuple[tuple[float, float], ...]]
    executions: int
    mips_ci: tuple[float, float] | None
    mips_spread: Spread
    runs: tuple[RunSummary, ...] | None
    repeat: int
    faults: int
    completed: bool
    error: str | None
    baseline_mips: float | None = None
    baseline_fraction: float | None = None

    @classmethod
    def failed(cls, cell: Mapping[str, Any], error: str | None) -> CellRecord:
        """The record of a cell none of whose runs could run (``cell``: its six keys)."""
        zero = Distribution(0.0, 0.0, 0.0)
        return cls(
            **dict(cell),
            mips=0.0,
            mips_spread=Spread(0.0, 0.0, ()),
            instructions=0,
            seconds=0.0,
            stopped="error",
            exit_code=None,
            output_ok=False,
            fault=None,
            violations=0,
            violation_messages=(),
            translations=0,
            retranslations=0,
            invalidations=0,
            retirements=0,
            reclaims=0,
            flushes=0,
            translator_waits=0,
            links_made=0,
            links_followed=0,
            links_removed_on_retire=0,
            links_removed_on_flush=0,
            links_removed_on_invalidate=0,
            stepped_aside_ms=0.0,
            wait_ms=zero,
            pause_ms=zero,
            stop_the_world_ms=zero,
            time_to_quiesce_ms=zero,
            gp_latency_ms=None,
            peak_live_kb=0.0,
            peak_retired_kb=0.0,
            held_back_kb=0.0,
            timeline=(),
            stops={},
            mips_ci=None,
            runs=(),
            executions=0,
            repeat=0,
            faults=0,
            completed=False,
            error=error,
        )

    def to_json(self) -> Json:
        """The cell as the document stores it: plain dicts, lists and numbers."""
        out: Json = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("baseline_mips", "baseline_fraction", "runs") and value is None:
                continue
            if isinstance(value, Distribution):
                value = value.to_json(**_DISTRIBUTIONS[f.name])
            elif isinstance(value, Spread):
                value = value.to_json()
            elif f.name == "runs":
                value = [run.to_json() for run in value]
            elif f.name == "timeline":
                value = [list(point) for point in value]
            elif f.name == "stops":
                value = {v: [list(pause) for pause in pauses] for v, pauses in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CellRecord:
        """The inverse of :meth:`to_json`; ``ValueError`` names a missing field.

        A field an older document lacks (see the module's docstring) reads
        as what it meant then, and is written by :meth:`to_json`.
        """
        known = {f.name for f in fields(cls)}
        optional = {"baseline_mips", "baseline_fraction", "runs", *_ADDED_SINCE}
        missing = sorted(known - optional - set(data))
        if missing:
            raise ValueError(f"a cell record needs {', '.join(missing)}")
        data = _ADDED_SINCE | dict(data)
        values = {name: data[name] for name in known if name in data}
        for name in _DISTRIBUTIONS:
            value = data[name]
            values[name] = None if value is None else Distribution.from_json(value)
        values["mips_spread"] = Spread.from_json(data["mips_spread"])
        values["violation_messages"] = tuple(data["violation_messages"])
        values["timeline"] = tuple(_triple(point) for point in data["timeline"])
        values["stops"] = {
            v: tuple(_pair(pause) for pause in pauses) for v, pauses in data["stops"].items()
        }
        ci = data["mips_ci"]
        values["mips_ci"] = None if ci is None else _pair(ci)
        runs = data.get("runs")
        values["runs"] = None if runs is None else tuple(RunSummary.from_json(r) for r in runs)
        return cls(**values)


def records(cells: Iterable[Mapping[str, Any] | CellRecord]) -> list[CellRecord]:
    """A document's cells (or a selection of them) as typed records (records as they are)."""
    return [c if isinstance(c, CellRecord) else CellRecord.from_json(c) for c in cells]


@dataclass(frozen=True, slots=True)
class BaselineRecord:
    """A no-pressure baseline's record: the fields of its :class:`CellRecord` the document keeps.

    What a cell's ``baseline_fraction`` divides by (``mips``), how much code
    the workload translated when nothing was retired (``peak_live_kb``: a
    cell is under pressure when its buffer is smaller), and what a
    correctness check needs. ``runs`` is None for a document from before
    per-run records (and then not written).
    """

    policy: str
    vcpus: int
    buffer_kb: float
    workload: str
    mips: float
    mips_spread: Spread
    instructions: int
    seconds: float
    stopped: str
    output_ok: bool | None
    violations: int
    faults: int
    peak_live_kb: float
    error: str | None
    host_calls: str
    mips_ci: tuple[float, float] | None
    runs: tuple[RunSummary, ...] | None

    @classmethod
    def of(cls, record: CellRecord) -> BaselineRecord:
        """The baseline's part of a cell record."""
        return cls(**{f.name: getattr(record, f.name) for f in fields(cls)})

    def to_json(self) -> Json:
        """The baseline as the document's ``baselines`` list stores it."""
        out: Json = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "runs":
                if value is None:
                    continue
                value = [run.to_json() for run in value]
            elif isinstance(value, Spread):
                value = value.to_json()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BaselineRecord:
        """The inverse of :meth:`to_json` (a whole cell's dict reads as its baseline part)."""
        known = [f.name for f in fields(cls)]
        missing = [name for name in known if name not in data and name not in ("mips_ci", "runs")]
        if missing:
            raise ValueError(f"a baseline record needs {', '.join(missing)}")
        values = {name: data[name] for name in known if name in data}
        values["mips_spread"] = Spread.from_json(data["mips_spread"])
        ci = data.get("mips_ci")
        values["mips_ci"] = None if ci is None else _pair(ci)
        runs = data.get("runs")
        values["runs"] = None if runs is None else tuple(RunSummary.from_json(r) for r in runs)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Comparison:
    """One comparison of two policies on one metric (:func:`tcg.compare.comparisons`).

    ``vcpus``, ``buffer_kb`` and ``workload`` are None for the item pooled
    over the cells under pressure. ``ratio`` is ``a``'s value over ``b``'s,
    ``ci`` its interval at ``confidence`` (None with fewer than two runs),
    ``better`` ``"a"``, ``"b"`` or ``"tie"``; ``cells`` and ``runs`` say
    how many cells and paired runs it rests on.
    """

    metric: str
    a: str
    b: str
    vcpus: int | None
    buffer_kb: float | None
    workload: str | None
    ratio: float
    ci: tuple[float, float] | None
    better: str
    confidence: float
    cells: int
    runs: int

    @property
    def pooled(self) -> bool:
        """Whether this item pools the cells under pressure (rather than being one cell)."""
        return self.vcpus is None

    @property
    def winner(self) -> str | None:
        """The policy the interval favours, None for a tie."""
        return None if self.better == "tie" else self.a if self.better == "a" else self.b

    def to_json(self) -> Json:
        """The item as the document's ``comparisons`` list stores it."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["ci"] = None if self.ci is None else list(self.ci)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Comparison:
        """The inverse of :meth:`to_json`."""
        ci = data["ci"]
        return cls(**(dict(data) | {"ci": None if ci is None else _pair(ci)}))


@dataclass(frozen=True, slots=True)
class MachineInfo:
    """Where a document was measured (:func:`tcg.compare.machine_info`).

    ``gil`` is whether the interpreter ran with its GIL, ``switch_interval_ms``
    its switch interval (``sys.getswitchinterval``), ``processor`` the
    machine type, ``date`` when the run started (ISO 8601, UTC), ``engine``
    the emulator every cell ran on.
    """

    python: str
    implementation: str
    gil: bool
    switch_interval_ms: float
    platform: str
    processor: str
    cpu_count: int | None
    date: str
    engine: str

    def to_json(self) -> Json:
        """The document's ``machine`` dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MachineInfo:
        """The inverse of :meth:`to_json`."""
        return cls(**data)


@dataclass(frozen=True, slots=True)
class ComparisonDocument:
    """A whole comparison, as ``rcu-compare --json`` writes it.

    ``config`` holds the settings as the harness echoed them
    (:class:`tcg.compare.Settings` as a dict, with ``wall_seconds`` and
    ``runs`` added; ``Settings.from_json`` reads them back). ``comparisons``
    is None for a document from before they were stored (and then not
    written); :func:`tcg.compare.comparisons` computes them.
    """

    version: int
    scenario: str
    machine: MachineInfo
    config: Mapping[str, Any]
    baselines: tuple[BaselineRecord, ...]
    cells: tuple[CellRecord, ...]
    comparisons: tuple[Comparison, ...] | None

    def to_json(self) -> Json:
        """The document as plain dicts, lists and numbers (what ``json.dumps`` writes)."""
        out: Json = {
            "version": self.version,
            "scenario": self.scenario,
            "machine": self.machine.to_json(),
            "config": dict(self.config),
            "baselines": [b.to_json() for b in self.baselines],
            "cells": [c.to_json() for c in self.cells],
        }
        if self.comparisons is not None:
            out["comparisons"] = [i.to_json() for i in self.comparisons]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComparisonDocument:
        """The inverse of :meth:`to_json`; ``ValueError`` names a missing field."""
        missing = [
            k for k in ("version", "scenario", "machine", "config", "cells") if k not in data
        ]
        if missing:
            raise ValueError(f"a comparison document needs {', '.join(missing)}")
        items = data.get("comparisons")
        return cls(
            version=data["version"],
            scenario=data["scenario"],
            machine=MachineInfo.from_json(data["machine"]),
            config=dict(data["config"]),
            baselines=tuple(BaselineRecord.from_json(b) for b in data.get("baselines", ())),
            cells=tuple(records(data["cells"])),
            comparisons=None if items is None else tuple(Comparison.from_json(i) for i in items),
        )


#: What reads a document takes: the typed record, or its JSON.
DocumentLike = ComparisonDocument | Mapping[str, Any]


def document(doc: DocumentLike) -> ComparisonDocument:
    """``doc`` as a typed document: a record as it is, a JSON document read."""
    return doc if isinstance(doc, ComparisonDocument) else ComparisonDocument.from_json(doc)


def _pair(values: Sequence[float]) -> tuple[float, float]:
    low, high = values
    return (low, high)


def _triple(values: Sequence[Any]) -> tuple[float, int, int]:
    t, live, retired = values
    return (t, live, retired)
