"""``rcu-compare``: RCU retirement against a stop-the-world flush, measured side by side.

The command is the project's front door: with no arguments it runs a
comparison sized to finish in under two minutes on a two-core machine and
ends with a table and a verdict in plain words, each claim backed by an
interval that excludes "no difference". Options narrow or widen the grid,
write the results as JSON, or write a report directory with plots and an
HTML page. ``--scenario stall`` runs the stalled-vCPU comparison instead:
one vCPU blocked in long host calls, with the calls inside guest code and
outside it, under each policy.

Exit status: 0 when every run was correct; 1 when any run used reclaimed code
(a ``UseAfterReclaimError``), produced the wrong guest output, faulted, or
could not run; 2 for bad options (one line saying what is wrong), found before the
first run: unknown policies and workloads, files that are not ELF32 RISC-V
executables, output paths that cannot be written.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO, TypeVar

from tcg.compare import (
    SCENARIOS,
    Cell,
    Settings,
    check_policy,
    resolve_workload,
    run_comparison,
    schedule,
)
from tcg.engines import DEFAULT_ENGINE, ENGINES, engine_available
from tcg.record import ComparisonDocument
from tcg.report import failures, table_rows, verdict_points

__all__ = ["DEFAULTS", "STALL_DEFAULTS", "main", "parser"]

T = TypeVar("T")

#: The default comparison: ``parallel`` (every hart computes a share of a
#: code-heavy job; about 175 KiB of host code) on 1, 2 and 4 vCPUs, with
#: buffers from a fifth of its code to more than all of it. An execution of
#: the program takes a tenth to half a second; a run repeats it until it did
#: a fifth of a second of guest work, so that short no-pressure runs are
#: not mostly start-up; five rounds give every cell and baseline five runs.
#: The time budget only guards against a run that hangs.
DEFAULTS: dict[str, Any] = {
    "policies": ("rcu", "rcu-qsbr", "flush"),
    "vcpus": (1, 2, 4),
    "buffer_kb": (32.0, 64.0, 128.0, 256.0),
    "workloads": ("parallel",),
    "seconds": 10.0,
    "repeat": 5,
    "min_run_seconds": 0.2,
}

#: The stall scenario's defaults, where they differ: the ``stall`` guest (one
#: hart sleeps 4 x 100 ms in host calls while the others run code under
#: pressure) on 2 and 4 vCPUs in a 32 KiB buffer, each run to its end (the
#: budget only guards against a run that hangs).
STALL_DEFAULTS: dict[str, Any] = {
    "vcpus": (2, 4),
    "buffer_kb": (32.0,),
    "workloads": ("stall",),
    "seconds": 5.0,
}


def _list_of(convert: Callable[[str], T], what: str) -> Callable[[str], tuple[T, ...]]:
    def parse(text: str) -> tuple[T, ...]:
        items = [item.strip() for item in text.split(",")]
        if not any(items):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}")
        if not all(items):
            raise argparse.ArgumentTypeError(f"an empty item in the list of {what}: {text!r}")
        return tuple(convert(item) for item in items)

    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def _policy(text: str) -> str:
    try:
        check_policy(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _seconds_or_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def _version() -> str:
    try:
        return importlib.metadata.version("rcu-quiescent")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: what is wrong, and where help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    """The command line of ``rcu-compare``."""
    d = DEFAULTS
    p = _Parser(
        prog="rcu-compare",
        description=__doc__.splitlines()[0].split(": ", 1)[1],
        epilog="With no options: " + _describe_defaults(),
    )
    p.add_argument(
        "--policies",
        type=_list_of(_policy, "policies"),
        default=d["policies"],
        help="comma list: rcu, rcu-qsbr, rcu-sync, rcu-batch, flush, or module:Class "
        "(default %(default)s)",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    p.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="pressure",
        help="pressure: the buffer and vCPU sweep; stall: one vCPU blocked in long host "
        "calls, each cell run with the calls inside guest code and outside it "
        "(default %(default)s)",
    )
    p.add_argument(
        "--vcpus", type=_list_of(_positive_int, "vCPU counts"),
        help="comma list of vCPU counts (default 1,2,4; stall: 2,4)",
    )  # fmt: skip
    p.add_argument(
        "--buffer-kb",
        type=_list_of(_positive_float, "sizes in KiB"),
        help="comma list of translation buffer sizes in KiB (default 32,64,128,256; stall: 32)",
    )
    p.add_argument("--regions", type=_positive_int, default=8, help="buffer regions (default 8)")
    p.add_argument(
        "--engine", choices=list(ENGINES), default=DEFAULT_ENGINE,
        help="the emulator: tcg (ours) or tinyrv (pip install --no-deps tinyrv) "
        "(default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--workload",
        action="append",
        type=_list_of(str, "workloads"),
        help="a built-in workload name or an ELF path; repeatable or a comma list "
        "(default parallel; stall: stall)",
    )
    p.add_argument(
        "--expect",
        metavar="FILE",
        help="expected stdout of a workload given as an ELF path (else it is not checked)",
    )
    bound = p.add_mutually_exclusive_group()
    bound.add_argument(
        "--seconds",
        type=_positive_float,
        help=f"time budget per execution: stop at the next safe point after S seconds "
        f"(default {d['seconds']}; stall: {STALL_DEFAULTS['seconds']})",
    )
    bound.add_argument(
        "--instructions", type=_positive_int, help="stop each execution after N guest instructions"
    )
    p.add_argument(
        "--min-run-seconds", type=_seconds_or_zero, default=d["min_run_seconds"],
        help="each run executes the workload back to back until it did S seconds of guest "
        "work (0: once) (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--repeat", type=_positive_int, default=d["repeat"],
        help="runs per cell and baseline, one per round; the median and a 95%% interval are "
        "reported (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--seed", type=_int, default=0, help="seed of the shuffled run order (default 0)"
    )
    p.add_argument(
        "--json", metavar="FILE",
        help="write the results as JSON to FILE (-: to stdout, everything else to stderr)",
    )  # fmt: skip
    p.add_argument(
        "--report", metavar="DIR", help="write results.json, PNG plots and index.html to DIR"
    )
    p.add_argument("--wide", action="store_true", help="the full table, every column")
    p.add_argument(
        "--jobs", type=_positive_int, default=1,
        help="cells in parallel processes (default 1: the least noisy)",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    return p


def _describe_defaults() -> str:
    d = DEFAULTS
    return (
        f"policies {','.join(d['policies'])}; vCPUs {','.join(map(str, d['vcpus']))}; "
        f"buffers {','.join(f'{kb:g}' for kb in d['buffer_kb'])} KiB; "
        f"workload {','.join(d['workloads'])}; runs of at least {d['min_run_seconds']} s "
        f"of guest work; {d['repeat']} rounds."
    )


def settings_from(args: argparse.Namespace, p: argparse.ArgumentParser) -> Settings:
    """The comparison the parsed options ask for (``p.error`` on bad combinations)."""
    d = DEFAULTS | (STALL_DEFAULTS if args.scenario == "stall" else {})
    workloads: list[str] = []
    for group in args.workload or [d["workloads"]]:
        workloads.extend(group)
    workloads = list(dict.fromkeys(workloads))
    expect: dict[str, str] = {}
    if args.expect is not None:
        if not Path(args.expect).is_file():
            p.error(f"--expect: no such file: {args.expect}")
        paths = [w for w in workloads if Path(w).is_file()]
        if len(paths) != 1:
            p.error("--expect needs exactly one workload given as an ELF path")
        expect[paths[0]] = args.expect
    for w in workloads:
        try:
            resolve_workload(w, expect.get(w))
        except ValueError as exc:
            p.error(f"--workload: {exc}")
    if args.report is not None:
        report = Path(args.report)
        if report.exists() and not report.is_dir():
            p.error(f"--report: {args.report} exists and is not a directory")
        if not report.exists() and not report.parent.is_dir():
            p.error(f"--report: no such directory: {report.parent}")
        if not os.access(report if report.exists() else report.parent, os.W_OK):
            p.error(f"--report: {args.report} cannot be written")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            p.error("--report needs matplotlib: pip install 'rcu-quiescent[compare]'")
    if args.json is not None and args.json != "-":
        out = Path(args.json)
        if out.is_dir():
            p.error(f"--json: {args.json} is a directory")
        if not out.parent.is_dir():
            p.error(f"--json: no such directory: {out.parent}")
        if not os.access(out if out.exists() else out.parent, os.W_OK):
            p.error(f"--json: {args.json} cannot be written")
    missing = engine_available(args.engine)
    if missing is not None:
        p.error(f"--engine: {missing}")
    seconds = args.seconds
    if seconds is None and args.instructions is None:
        seconds = d["seconds"]
    try:
        return Settings(
            policies=tuple(dict.fromkeys(args.policies)),
            vcpus=tuple(dict.fromkeys(args.vcpus or d["vcpus"])),
            buffer_kb=tuple(dict.fromkeys(args.buffer_kb or d["buffer_kb"])),
            workloads=tuple(workloads),
            regions=args.regions,
            seconds=seconds,
            instructions=args.instructions,
            repeat=args.repeat,
            min_run_seconds=args.min_run_seconds,
            seed=args.seed,
            jobs=args.jobs,
            expect=expect,
            scenario=args.scenario,
            engine=args.engine,
        )
    except ValueError as exc:
        p.error(str(exc))


# ----------------------------------------------------------------------
# Output


def _print_table(doc: ComparisonDocument, wide: bool, out: TextIO) -> None:
    head, rows = table_rows(doc, wide=wide)
    try:
        from rich import box
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        for r in [head, *rows]:
            print(" ".join(x.rjust(w) for x, w in zip(r, widths, strict=True)), file=out)
        return
    table = Table(
        title="Median MIPS of each cell's runs, with the 95% interval",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    for i, name in enumerate(head):
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
    for r in rows:
        table.add_row(*r, style="bold red" if r[-1] == "NO" else None)
    console = Console(file=out)
    console.print(table, width=max(160, console.width) if wide else None)


def _wrapped(points: Sequence[str], width: int) -> str:
    """The verdict as a list, each point wrapped to ``width`` columns."""
    return "\n".join(
        textwrap.fill(point, width, initial_indent="- ", subsequent_indent="  ") for point in points
    )


class _Progress:
    """A progress bar (rich) or plain lines on stderr, ticked once per finished run."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.done, self.quiet = total, 0, quiet
        self._bar: Any = None
        self._task: Any = None
        if quiet:
            return
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
        except ImportError:
            return
        self._bar = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("runs"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._bar.add_task("starting", total=total)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, cell: Cell, record: dict[str, Any]) -> None:
        self.done += 1
        what = f"{cell.policy} x{cell.vcpus} {cell.buffer_kb:g}K"
        if cell.host_calls != "outside":
            what += f" ({cell.host_calls})"
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=f"{what:<24}")
        elif not self.quiet:
            result = record.get("error") or f"{record['mips']:.2f} MIPS"
            print(f"[{self.done}/{self.total}] {what}: {result}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rcu-compare`` with ``argv`` (default: the process's); the exit status."""
    p = parser()
    args = p.parse_args(argv)
    settings = settings_from(args, p)
    # With --json -, stdout carries the JSON alone.
    out = sys.stderr if args.json == "-" else sys.stdout
    with _Progress(len(schedule(settings)), args.quiet) as progress:
        doc = run_comparison(settings, progress)
    typed = ComparisonDocument.from_json(doc)
    if not args.quiet:
        _print_table(typed, args.wide, out)
    text = json.dumps(doc, indent=1) + "\n"
    if args.json == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    elif args.json is not None:
        Path(args.json).write_text(text)
        print(f"rcu-compare: results written to {args.json}", file=out)
    if args.report is not None:
        from tcg.report import write_report

        written = write_report(typed, Path(args.report))
        print(f"rcu-compare: report written to {written[-1]}", file=out)
    bad = failures(typed.cells) + failures(typed.baselines)
    for line in bad:
        print(f"rcu-compare: FAILED: {line}", file=sys.stderr)
    width = min(100, shutil.get_terminal_size((80, 24)).columns)
    print(file=out)
    print(_wrapped(verdict_points(typed), width), file=out)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
