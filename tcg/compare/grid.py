"""The grid of a comparison: its cells, its settings, and checking what they name.

A :class:`Cell` is one (policy, vCPUs, buffer size, workload, host calls,
engine) point; :class:`Settings` holds the axes and how each run is bounded.
Workloads and policies are checked here, before anything runs.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import quiescent
from tcg.engines import DEFAULT_ENGINE, ENGINES
from tcg.machine import POLICIES, make_policy
from tcg.riscv.elf import parse_elf
from tcg.riscv.errors import LoaderError
from tcg.workloads import WORKLOADS

#: The version of the JSON document (bumped if a pinned field changes).
JSON_VERSION = 1
#: The no-pressure baseline: a buffer larger than any workload's code.
BASELINE_KB = 16 * 1024
#: What a comparison is about: ``pressure``, the buffer-size and vCPU sweep;
#: ``stall``, a vCPU blocked in long host calls, each cell run with the calls
#: inside guest code and outside it.
SCENARIOS = ("pressure", "stall")

HostCalls = Literal["outside", "inside"]


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

    @classmethod
    def from_json(cls, config: Mapping[str, Any]) -> Settings:
        """The settings a document's ``config`` echoes (``asdict`` of them, lists for tuples).

        Its other keys (``wall_seconds``, ``runs``) are left out; a setting
        an older document lacks takes its default.
        """
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in config.items() if k in names}
        for name in ("policies", "vcpus", "buffer_kb", "workloads"):
            values[name] = tuple(config[name])
        values["expect"] = dict(config.get("expect", {}))
        return cls(**values)

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
