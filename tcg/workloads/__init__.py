"""Guest programs for the emulator, with the output each must produce.

The programs are C (freestanding, no libc) and assembly in ``src/``, built by
:mod:`tcg.workloads.build` into the committed ``bin/*.elf`` files, so running
them needs no cross compiler. :data:`WORKLOADS` names each one with its ELF
path and a Python model of its output (:mod:`tcg.workloads.expected`):

* ``sort``, ``crc32``, ``matmul``, ``sieve``: compute kernels (hart 0 works,
  other harts exit at once);
* ``bigcode``: thousands of distinct generated functions, a code footprint
  larger than a small translation buffer;
* ``smc``: self-modifying code, rewritten and re-run after ``fence.i``;
* ``atomics``: every hart takes an AMO spinlock and bumps LR/SC and AMO
  counters; the output depends on the number of harts and is exact;
* ``parallel``: every hart does a share of a code-heavy job (sort, CRC-32
  and 128 distinct functions per slice of an array), then hart 0 combines
  the shares into one checksum;
* ``stall``: the same job on all harts but the last, which sleeps in long
  ``nanosleep`` host calls meanwhile (a stalled vCPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tcg.workloads import expected

__all__ = ["BIN", "WORKLOADS", "Workload", "get"]

BIN = Path(__file__).resolve().parent / "bin"


@dataclass(frozen=True, slots=True)
class Workload:
    """A guest program: its ELF file and a model of its standard output."""

    name: str
    description: str
    #: Whether the program does work on every hart (else only hart 0 works).
    multi_hart: bool
    _expected: Callable[[int], bytes]

    @property
    def path(self) -> Path:
        """The committed ELF build."""
        return BIN / f"{self.name}.elf"

    def expected_output(self, harts: int = 1) -> bytes:
        """The exact standard output of a run on ``harts`` harts."""
        if isinstance(harts, bool) or not isinstance(harts, int) or harts < 1:
            raise ValueError(f"harts must be a positive int, got {harts!r}")
        return self._expected(harts)


#: Every guest program by name.
WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("sort", "quicksort of 4000 words", False, expected.sort),
        Workload("crc32", "bitwise CRC-32 of 4 KiB, 3 rounds", False, expected.crc32),
        Workload("matmul", "40 x 40 integer matrix multiply", False, expected.matmul),
        Workload("sieve", "sieve of Eratosthenes below 120000", False, expected.sieve),
        Workload("bigcode", "3000 generated functions, 4 rounds", False, expected.bigcode_output),
        Workload("smc", "300 rounds of rewritten code and fence.i", False, expected.smc),
        Workload("atomics", "AMO spinlock, LR/SC and AMO counters", True, expected.atomics),
        Workload("parallel", "8 slices of sort, CRC and 128 functions", True, expected.parallel),
        Workload("stall", "parallel's job, one hart sleeping 4 x 100 ms", True, expected.stall),
    )
}


def get(name: str) -> Workload:
    """The workload called ``name`` (``KeyError`` listing the names otherwise)."""
    try:
        return WORKLOADS[name]
    except KeyError:
        raise KeyError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}") from None
