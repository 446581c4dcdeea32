"""Host instructions per guest instruction, counted by valgrind: a measure noise cannot move.

Run as ``python benchmarks/instructions.py`` (a minute or two; needs
``valgrind``, Debian: ``apt-get install valgrind``). On a shared machine,
wall-clock figures of short runs swing by a factor of two with the load of
other tenants; the number of instructions the host CPU executes does not
(``valgrind --tool=cachegrind`` gives the same count for the same binary,
inputs and environment whatever else runs). So this benchmark counts them:

* for each compute kernel, the whole process ``python -m tcg run KERNEL.elf``
  (one vCPU, the ``rcu`` policy);
* the start-up alone, ``python -c "import tcg.__main__"``, which is
  subtracted to give the cost of running the guest: host instructions per
  guest instruction, translation included.

``--tree DIR`` adds the same counts for another checkout of the project
(its packages first on ``sys.path``), e.g. the code before a change, so that
a claim "A costs fewer instructions than B" compares two counts taken the
same way. Counts are exact; they leave out what valgrind cannot see (cache
misses, the GIL's waits), which is why the wall-clock benchmarks stay.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import banner, machine, table
from tcg.workloads import WORKLOADS

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ("sort", "crc32", "matmul", "sieve")
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def count(args: list[str], tree: Path) -> int:
    """Host instructions of ``python ARGS`` with ``tree``'s packages first on the path."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [
        "valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
        sys.executable, *args,
    ]  # fmt: skip
    # In the tree's directory: ``-m`` puts the working directory first on the path.
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree, check=False)
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{' '.join(args)} failed under valgrind: {done.stderr[-400:]}")
    return int(found.group(1).replace(",", ""))


def guest_instructions(name: str) -> int:
    """Guest instructions of a whole run of kernel ``name`` (one vCPU)."""
    from tcg import Machine

    return Machine(WORKLOADS[name].path).run().instructions


def main(argv: list[str] | None = None) -> int:
    """Count and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, help="another checkout to count the same way")
    parser.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=KERNELS)
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found (Debian: apt-get install valgrind)")
    trees = {"this tree": ROOT}
    if args.tree is not None:
        trees[str(args.tree)] = args.tree.resolve()
    banner(f"Host instructions per guest instruction ({machine()})")
    rows: list[list[object]] = []
    for label, tree in trees.items():
        startup = count(["-c", "import tcg.__main__"], tree)
        rows.append([label, "start-up", f"{startup / 1e6:,.0f} M", "-"])
        for name in args.kernels:
            guest = guest_instructions(name)
            elf = str(WORKLOADS[name].path)
            host = count(["-m", "tcg", "run", elf], tree)
            per = (host - startup) / guest
            rows.append([label, name, f"{host / 1e6:,.0f} M", f"{per:,.0f}"])
    headers = ["tree", "run", "host insns", "per guest insn"]
    print(table(headers, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
