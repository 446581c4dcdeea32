"""Start-up: what ``python -m tcg run`` pays before the guest's first instruction.

Run as ``python benchmarks/startup.py [--against OTHER_SOURCE_TREE]``. For
this source tree (and, with ``--against``, another one, say a checkout of an
earlier commit, its C extension built or copied in), interleaved, ``--repeat``
times each, it measures in fresh interpreters started in the tree:

* ``python -X importtime -c "import tcg.__main__"``: the cumulative import
  time of ``tcg`` (the package alone) and of ``tcg.__main__`` (the command
  line, with the emulator it imports), as the interpreter reports them;
* the wall time of ``python -c "import tcg.__main__"`` (and of
  ``python -c "pass"``, the interpreter's own start-up);
* the wall time of ``python -m tcg run`` of the committed ``crc32`` workload
  under the default policy (``rcu``) and under ``flush``: the whole process,
  since what a lazy import saves at import time a run may still pay later.

Children find their modules' bytecode in a temporary ``PYTHONPYCACHEPREFIX``
(filled by a first, untimed run), as an installed package does; ``--compile``
measures instead with ``PYTHONDONTWRITEBYTECODE=1`` and no cache, every module
compiled from source at every start. Medians are printed, in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import banner, machine, table

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("_latency", "quiescent", "rcu", "tcg")
PROGRAM = Path("tcg/workloads/bin/crc32.elf")  # relative: the same file in either tree
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| +(\S+)$", re.M)


def _run(tree: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(
        [sys.executable, *args], cwd=tree, env=env, capture_output=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{args} in {tree} exited {done.returncode}: {done.stderr[-400:]!r}")
    return done


def _wall(tree: Path, env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    _run(tree, env, *args)
    return (time.perf_counter() - start) * 1e3


def _importtime(tree: Path, env: dict[str, str], module: str) -> float:
    """Cumulative milliseconds of importing ``module`` in ``import tcg.__main__``."""
    done = _run(tree, env, "-X", "importtime", "-c", "import tcg.__main__")
    for us, name in IMPORT_LINE.findall(done.stderr.decode()):
        if name == module:
            return int(us) / 1e3
    raise SystemExit(f"-X importtime did not report {module} in {tree}")


MEASURES: dict[str, Callable[[Path, dict[str, str]], float]] = {
    "importtime: tcg": lambda tree, env: _importtime(tree, env, "tcg"),
    "importtime: tcg.__main__": lambda tree, env: _importtime(tree, env, "tcg.__main__"),
    'wall: python -c "pass"': lambda tree, env: _wall(tree, env, "-c", "pass"),
    'wall: python -c "import tcg.__main__"': lambda tree, env: _wall(
        tree, env, "-c", "import tcg.__main__"
    ),
    "wall: python -m tcg run crc32.elf": lambda tree, env: _wall(
        tree, env, "-m", "tcg", "run", str(PROGRAM)
    ),
    "wall: ... --policy flush": lambda tree, env: _wall(
        tree, env, "-m", "tcg", "run", str(PROGRAM), "--policy", "flush"
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Measure each tree, interleaved, and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", type=Path, help="another source tree to compare with")
    parser.add_argument("--repeat", type=int, default=10, help="runs of each measure")
    parser.add_argument(
        "--compile", action="store_true", help="no bytecode cache: compile every module"
    )
    args = parser.parse_args(argv)
    trees = {"this tree": ROOT}
    if args.against is not None:
        trees = {"against": args.against.resolve(), **trees}
    banner("start-up")
    print(machine())
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        if args.compile:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            for tree in trees.values():
                stale = [str(p) for pkg in PACKAGES for p in (tree / pkg).rglob("__pycache__")]
                if stale:
                    raise SystemExit(f"--compile: remove the bytecode caches {stale}")
        else:
            for n, tree in enumerate(trees.values()):  # fill each tree's cache
                env["PYTHONPYCACHEPREFIX"] = str(Path(cache) / str(n))
                _run(tree, env, "-m", "tcg", "run", str(PROGRAM))
        samples: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeat):
            for measure, fn in MEASURES.items():
                for n, (label, tree) in enumerate(trees.items()):
                    if not args.compile:
                        env["PYTHONPYCACHEPREFIX"] = str(Path(cache) / str(n))
                    samples.setdefault((measure, label), []).append(fn(tree, env))
    headers = ["median ms", *trees]
    if len(trees) == 2:
        headers.append("against / this")
    rows = []
    for measure in MEASURES:
        medians = [statistics.median(samples[measure, label]) for label in trees]
        row: list[object] = [measure, *(f"{m:.1f}" for m in medians)]
        if len(trees) == 2:
            row.append(f"{medians[0] / medians[1]:.2f}")
        rows.append(row)
    print(table(headers, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
