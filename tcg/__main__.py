"""``python -m tcg run PROGRAM.elf``: run a guest program on the multi-threaded emulator.

The guest's stdout is this process's stdout, byte for byte; everything else
(statistics, fault reports) goes to stderr. The exit status is the guest's
exit code; a guest fault or a reclamation violation exits with 70 and a
loader error (not an ELF32 RISC-V executable) with 66.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tcg.engines import DEFAULT_ENGINE, ENGINES, engine_available, make_machine
from tcg.machine import POLICIES, MachineError, MachineResult
from tcg.riscv.errors import LoaderError

EXIT_FAULT = 70  # EX_SOFTWARE
EXIT_NOINPUT = 66  # EX_NOINPUT


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m tcg``."""
    top = argparse.ArgumentParser(prog="python -m tcg", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run an ELF32 RISC-V program")
    run.add_argument("program", help="the guest executable (ELF32 RISC-V)")
    run.add_argument("--vcpus", type=_positive_int, default=1, help="harts/threads (default 1)")
    run.add_argument(
        "--policy",
        default="rcu",
        help=f"retirement policy: {', '.join(POLICIES)} or module:Class (default rcu)",
    )
    run.add_argument(
        "--buffer-kb", type=_positive_float, default=4096, help="translation buffer KiB"
    )
    run.add_argument("--regions", type=_positive_int, default=8, help="buffer regions")
    run.add_argument(
        "--max-instructions", type=_positive_int, default=None, help="stop after this many"
    )
    run.add_argument(
        "--engine",
        choices=list(ENGINES),
        default=DEFAULT_ENGINE,
        help=f"emulator: {', '.join(ENGINES)} (default {DEFAULT_ENGINE}; tinyrv must be installed)",
    )
    run.add_argument("--stats", action="store_true", help="print statistics to stderr")
    return top


def _print_stats(result: MachineResult) -> None:
    b, p = result.buffer, result.policy
    pause = p.pause
    lines = [
        f"guest instructions {result.instructions:,} in {result.seconds:.3f} s "
        f"({result.mips:.2f} MIPS), per hart {list(result.per_hart)}",
        f"TBs translated {b.translations:,} (retranslated {b.retranslations:,}), "
        f"invalidated {b.invalidations:,}",
        f"policy {p.policy}: flushes {p.flushes}, regions retired {p.retirements}, "
        f"reclaimed {p.reclaims}, translator waits {p.translator_waits}",
        f"pauses: {pause.count}, p50 {pause.p50 * 1e3:.3f} ms, max {pause.max * 1e3:.3f} ms; "
        f"peak live {b.peak_live_bytes / 1024:.1f} KiB, "
        f"peak retired {b.peak_retired_bytes / 1024:.1f} KiB",
    ]
    if p.gp_latency is not None:
        gp = p.gp_latency
        lines.append(f"grace periods: p50 {gp.p50 * 1e6:.1f} us, p99 {gp.p99 * 1e6:.1f} us")
    lines.append(f"exclusive sections {result.world.exclusive_sections}, stopped: {result.stopped}")
    for line in lines:
        print(f"tcg: {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    cli = parser()
    args = cli.parse_args(argv)
    missing = engine_available(args.engine)
    if missing is not None:
        cli.error(missing)  # exits with status 2
    try:
        machine = make_machine(
            args.engine,
            args.program,
            vcpus=args.vcpus,
            policy=args.policy,
            buffer_kb=args.buffer_kb,
            regions=args.regions,
            max_instructions=args.max_instructions,
            echo=sys.stdout.buffer,
        )
    except (LoaderError, OSError) as exc:
        print(f"tcg: {args.program}: {exc}", file=sys.stderr)
        return EXIT_NOINPUT
    except (ValueError, TypeError) as exc:
        print(f"tcg: {exc}", file=sys.stderr)
        return 2
    try:
        result = machine.run()
    except MachineError as exc:
        print(f"tcg: {exc}", file=sys.stderr)
        return EXIT_FAULT
    if result.stderr:
        sys.stderr.buffer.write(result.stderr)
    if args.stats:
        _print_stats(result)
    if result.fault is not None:
        print(f"tcg: guest fault: {result.fault.describe()}", file=sys.stderr)
        return EXIT_FAULT
    if result.violations:
        print(f"tcg: reclamation violation: {result.violations[0]}", file=sys.stderr)
        return EXIT_FAULT
    if result.exit_code is None:  # the instruction limit
        return 0
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
