"""Whole process against whole process: ``python -m tcg run`` and tinyrv's own runner.

Run as ``python benchmarks/whole_process.py --tinyrv PATH/tinyrv-user-elf``.
A user who runs a guest program pays for starting Python, importing the
emulator and translating, not only for the guest's instructions, so this
benchmark times whole commands, the way a shell would:

* ``python -m tcg run PROGRAM`` (one vCPU, the default policy), and, with
  ``--tree DIR``, the same command in another checkout of the project (the
  code before a change, say), so that both are measured in the same run;
* ``tinyrv-user-elf PROGRAM``, the runner that comes with tinyrv (it needs
  tinyrv's own dependencies, which ``pip install tinyrv==0.1.0`` brings;
  this project installs it with ``--no-deps``, so point ``--tinyrv`` at a
  separate environment's script);
* ``python -c "import tcg.__main__"``: the start-up alone.

Python's bytecode cache is on (in a scratch directory, after one untimed
run of each command), as it is for an installed package.

The default program is the ``crc32`` workload built with ``ROUNDS=20``
(about 5 million guest instructions), compiled here with the workloads'
toolchain and flags (``riscv64-unknown-elf-gcc``); ``--elf`` runs another
file. Commands run interleaved, ``--repeat`` times each, and every ratio is
printed with its 95 % interval (t on log ratios of the paired runs, as
``rcu-compare`` does): a ratio is only a claim if the interval excludes 1.
The guest output of every command must be the same bytes.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import banner, machine, table
from tcg.stats import Interval, ratio_interval
from tcg.workloads.build import CC, CFLAGS, RUNTIME, SRC

ROOT = Path(__file__).resolve().parent.parent

ROUNDS = 20


def build_crc32(out_dir: Path, rounds: int = ROUNDS) -> Path:
    """The crc32 workload with ``rounds`` rounds, built like the committed workloads."""
    if shutil.which(CC) is None:
        raise SystemExit(f"{CC} not found: install it, or pass --elf PROGRAM")
    for path in SRC.iterdir():
        shutil.copy(path, out_dir / path.name)
    target = f"crc32-{rounds}.elf"
    cmd = [CC, *CFLAGS, f"-DROUNDS={rounds}", "-o", target, *RUNTIME, "crc32.c"]
    subprocess.run(cmd, cwd=out_dir, check=True)
    return out_dir / target


def timed(cmd: list[str], cwd: Path, pycache: Path) -> tuple[float, bytes]:
    """Wall-clock seconds of ``cmd`` run in ``cwd``, and its stdout; it must succeed.

    ``-m`` puts the working directory first on the path, so ``cwd`` picks
    the checkout whose ``tcg`` runs. Bytecode is cached (under ``pycache``,
    outside the trees), as it is for an installed package, whatever
    ``PYTHONDONTWRITEBYTECODE`` says.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env |= {"PYTHONPATH": str(cwd), "PYTHONPYCACHEPREFIX": str(pycache)}
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, cwd=cwd, env=env, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.decode()[-400:]}")
    return seconds, done.stdout


def _ratio(slow: list[float], fast: list[float]) -> Interval | None:
    return ratio_interval([[math.log(s / f) for s, f in zip(slow, fast, strict=True)]])


def main(argv: list[str] | None = None) -> int:
    """Time the commands and print the table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--elf", type=Path, help="the guest program (default: crc32, 20 rounds)")
    parser.add_argument("--tinyrv", help="tinyrv's runner (tinyrv-user-elf), if installed")
    parser.add_argument("--tree", type=Path, help="another checkout to time the same way")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tcg-whole-") as tmp:
        elf = args.elf or build_crc32(Path(tmp))
        run = [sys.executable, "-m", "tcg", "run", str(elf.resolve())]
        commands: dict[str, tuple[list[str], Path]] = {
            "tcg": (run, ROOT),
            "start-up": ([sys.executable, "-c", "import tcg.__main__"], ROOT),
        }
        if args.tree:
            commands["tcg (tree)"] = (run, args.tree.resolve())
        if args.tinyrv:
            commands["tinyrv"] = ([args.tinyrv, str(elf)], ROOT)
        times: dict[str, list[float]] = {name: [] for name in commands}
        outputs: dict[str, bytes] = {}
        pycache = Path(tmp) / "pycache"
        for name, (cmd, cwd) in commands.items():
            if name != "tinyrv":
                timed(cmd, cwd, pycache)  # fills the bytecode cache; not timed
        for _ in range(args.repeat):
            for name, (cmd, cwd) in commands.items():
                seconds, out = timed(cmd, cwd, pycache)
                times[name].append(seconds)
                if name != "start-up":
                    outputs.setdefault(name, out)
                    if out != outputs["tcg"]:
                        raise SystemExit(f"{name} wrote other output: {out[:200]!r}")
    banner(f"Whole process ({machine()}), {elf.name}, {args.repeat} runs each, interleaved")
    rows = [
        [name, statistics.median(v) * 1e3, min(v) * 1e3, max(v) * 1e3] for name, v in times.items()
    ]
    print(table(["command", "median ms", "min ms", "max ms"], rows))
    print()
    pairs = [("tcg (tree)", "tcg")] if args.tree else []
    if args.tinyrv:
        pairs.insert(0, ("tinyrv", "tcg"))
    for slow, fast in pairs:
        ci = _ratio(times[slow], times[fast])
        if ci is None:
            continue
        claim = "" if ci.excludes(1.0) else "  (not significant)"
        print(
            f"{slow} / {fast}: {ci.estimate:.2f}x, 95% interval {ci.low:.2f}-{ci.high:.2f}{claim}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
