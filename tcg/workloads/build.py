"""Build the guest programs with the RISC-V GNU toolchain, reproducibly.

``python -m tcg.workloads.build`` compiles every program in ``src/`` (plus
the generated ``bigcode.c``) with ``riscv64-unknown-elf-gcc`` into ``bin/``
and records the compiler version in ``bin/TOOLCHAIN``. The built files are
committed, so running the programs needs no toolchain; ``--check`` rebuilds
into a scratch directory and fails if any byte differs from ``bin/``.

The build is reproducible because nothing in it depends on where or when it
runs: sources are copied into a scratch directory and compiled there with
relative names (the only paths that reach the ELF symbol table), without
debug information or a build id.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tcg.workloads.bigcode import c_source

__all__ = ["BIN", "CC", "CFLAGS", "PROGRAMS", "SRC", "build", "check", "toolchain_version"]

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
BIN = HERE / "bin"
CC = "riscv64-unknown-elf-gcc"
CFLAGS = (
    "-march=rv32ima_zicsr_zifencei",
    "-mabi=ilp32",
    "-O2",
    "-Wall",
    "-Wextra",
    "-nostdlib",
    "-ffreestanding",
    # Stop GCC from turning the runtime's own memset/memcpy loops into calls
    # to memset/memcpy.
    "-fno-tree-loop-distribute-patterns",
    "-static",
    "-g0",
    "-Wl,-Ttext=0x10000",
    # Without --no-relax the linker makes data accesses gp-relative, and
    # nothing sets gp in these programs.
    "-Wl,--no-relax",
    "-Wl,--build-id=none",
)
RUNTIME = ("crt0.S", "runtime.c")
PROGRAMS = ("sort", "crc32", "matmul", "sieve", "bigcode", "smc", "atomics", "parallel", "stall")


def toolchain_version() -> str | None:
    """The compiler's version line, or ``None`` if it is not installed."""
    if shutil.which(CC) is None:
        return None
    out = subprocess.run([CC, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0].strip()


def build(out_dir: Path) -> dict[str, Path]:
    """Build every program into ``out_dir``; return name -> ELF path."""
    version = toolchain_version()
    if version is None:
        raise RuntimeError(f"{CC} not found (Debian: apt-get install gcc-riscv64-unknown-elf)")
    out_dir.mkdir(parents=True, exist_ok=True)
    built: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="tcg-workloads-") as tmp:
        work = Path(tmp)
        for path in SRC.iterdir():
            shutil.copy(path, work / path.name)
        (work / "bigcode.c").write_text(c_source(), encoding="utf-8")
        for name in PROGRAMS:
            target = f"{name}.elf"
            cmd = [CC, *CFLAGS, "-o", target, *RUNTIME, f"{name}.c"]
            subprocess.run(cmd, cwd=work, check=True)
            built[name] = out_dir / target
            shutil.copy(work / target, built[name])
    (out_dir / "TOOLCHAIN").write_text(version + "\n", encoding="utf-8")
    return built


def check() -> list[str]:
    """Rebuild into a scratch directory; return the programs that differ from ``bin/``."""
    with tempfile.TemporaryDirectory(prefix="tcg-workloads-check-") as tmp:
        fresh = build(Path(tmp))
        return [
            name
            for name, path in fresh.items()
            if not (BIN / path.name).exists() or (BIN / path.name).read_bytes() != path.read_bytes()
        ]


def main(argv: list[str] | None = None) -> int:
    """Command line: build into ``bin/``, or ``--check`` the committed builds."""
    parser = argparse.ArgumentParser(prog="python -m tcg.workloads.build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare a rebuild with bin/")
    args = parser.parse_args(argv)
    if args.check:
        differ = check()
        for name in differ:
            print(f"{name}: rebuilt ELF differs from bin/{name}.elf", file=sys.stderr)
        return 1 if differ else 0
    for name, path in build(BIN).items():
        print(f"{name}: {path.relative_to(HERE.parent.parent)} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
