"""``python -m tcg run PROGRAM.elf``: run a guest program on the multi-threaded emulator.

The guest's stdout is this process's stdout, byte for byte; everything else
(the guest's stderr, statistics, reports) goes to stderr, and the guest's
stderr is written on every path, also when the run fails. Exit statuses:

* the guest's exit code (0-255), or 0 when ``--max-instructions`` stopped it;
* 2: a usage error (a bad option value, an unknown policy, a missing engine);
* 66: the program is not an ELF32 RISC-V executable, or cannot be read;
* 70: the guest faulted, a reclamation violation, or the emulator failed;
* 78: the configuration cannot run this program (a buffer too small for one
  block);
* 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

from tcg.engines import DEFAULT_ENGINE, ENGINES, engine_available, make_machine
from tcg.machine import POLICIES, MachineConfigError, MachineError, MachineResult
from tcg.riscv.errors import LoaderError

EXIT_USAGE = 2
EXIT_NOINPUT = 66  # EX_NOINPUT
EXIT_FAULT = 70  # EX_SOFTWARE
EXIT_CONFIG = 78  # EX_CONFIG
EXIT_INTERRUPTED = 130  # 128 + SIGINT

EXIT_STATUSES = f"""\
exit status:
  N    the guest's exit code (0 if --max-instructions stopped it)
  {EXIT_USAGE}    usage error (a bad option, an unknown policy, a missing engine)
  {EXIT_NOINPUT}   not an ELF32 RISC-V executable, or unreadable
  {EXIT_FAULT}   guest fault, reclamation violation, or emulator failure
  {EXIT_CONFIG}   the configuration cannot run the program (a buffer too small for a block)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be finite and > 0, not {text}")
    return value


def _engine(name: str) -> str:
    if name not in ENGINES:
        raise argparse.ArgumentTypeError(
            f"unknown engine {name!r} (choose from {', '.join(ENGINES)})"
        )
    missing = engine_available(name)
    if missing is not None:
        raise argparse.ArgumentTypeError(missing)
    return name


def _version() -> str:
    # Imported here: importlib.metadata (and the email package it needs) costs
    # more to import than the rest of the command line, and only --version
    # needs it.
    from importlib import metadata

    try:
        return metadata.version("rcu-quiescent")
    except metadata.PackageNotFoundError:  # run from a source tree
        return "unknown (not installed)"


class _VersionAction(argparse.Action):
    """``--version``: print ``PROG VERSION`` and exit, finding the version only then."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(f"{parser.prog} {_version()}")
        parser.exit()


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m tcg``."""
    top = argparse.ArgumentParser(
        prog="python -m tcg",
        description=__doc__.splitlines()[0],
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument(
        "--version", action=_VersionAction, help="show program's version number and exit"
    )
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run an ELF32 RISC-V program",
        description="Run an ELF32 RISC-V program on the multi-threaded emulator.",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
        type=_engine,
        metavar="{" + ",".join(ENGINES) + "}",
        default=DEFAULT_ENGINE,
        help=f"emulator: {', '.join(ENGINES)} (default {DEFAULT_ENGINE}; tinyrv must be installed)",
    )
    run.add_argument("--stats", action="store_true", help="print statistics to stderr")
    return top


def _print_stats(result: MachineResult) -> None:
    b, p = result.buffer, result.policy
    flush = p.flush_latency
    lines = [
        f"guest instructions {result.instructions:,} in {result.seconds:.3f} s "
        f"({result.mips:.2f} MIPS), per hart {list(result.per_hart)}",
        f"TBs translated {b.translations:,} (retranslated {b.retranslations:,}), "
        f"invalidated {b.invalidations:,}",
        f"policy {p.policy}: flushes {p.flushes}, regions retired {p.retirements}, "
        f"reclaimed {p.reclaims}, translator waits {p.translator_waits}",
        f"flush latency: {flush.count} flushes, p50 {flush.p50 * 1e3:.3f} ms, "
        f"max {flush.max * 1e3:.3f} ms; "
        f"peak live {b.peak_live_bytes / 1024:.1f} KiB, "
        f"peak retired {b.peak_retired_bytes / 1024:.1f} KiB",
    ]
    if p.gp_latency is not None:
        gp = p.gp_latency
        lines.append(f"grace periods: p50 {gp.p50 * 1e6:.1f} us, p99 {gp.p99 * 1e6:.1f} us")
    links = b.links
    lines.append(
        f"chaining: links made {links.made:,}, blocks entered through a link "
        f"{links.followed:,}; links removed on retire {links.removed_on_retire:,}, "
        f"on flush {links.removed_on_flush:,}, on invalidate {links.removed_on_invalidate:,}"
    )
    lines.append(f"exclusive sections {result.world.exclusive_sections}, stopped: {result.stopped}")
    for line in lines:
        print(f"tcg: {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (see the module's documentation)."""
    try:
        return _main(parser().parse_args(argv))
    except KeyboardInterrupt:  # before or after the run (during it: see _main)
        print("tcg: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(args: argparse.Namespace) -> int:
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
    except MachineConfigError as exc:
        print(f"tcg: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (ValueError, TypeError) as exc:
        print(f"tcg: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = machine.run()
    except KeyboardInterrupt:
        # run() has stopped the harts; what the guest wrote is still reported.
        _guest_stderr(machine.output()[1])
        print("tcg: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MachineError as exc:
        _guest_stderr(machine.output()[1])
        print(f"tcg: {exc}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(exc, MachineConfigError) else EXIT_FAULT
    _guest_stderr(result.stderr)
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


def _guest_stderr(data: bytes) -> None:
    if data:
        sys.stderr.flush()
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()


if __name__ == "__main__":
    sys.exit(main())
