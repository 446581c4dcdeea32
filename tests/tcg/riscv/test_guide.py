"""The code in the RISC-V guide runs and does what the guide says."""

from __future__ import annotations

import contextlib
from typing import Any

from tcg.riscv import Hart, Outcome, load_elf, translate
from tcg.workloads import get
from tests.docs_examples import run_example


def example(name: str) -> dict[str, Any]:
    return run_example("guide/riscv.md", name)


def test_quick_start_runs() -> None:
    result = example("quick-start")["result"]
    assert result.stdout == get("crc32").expected_output()


class CachingHart(Hart):
    """A hart whose store hook drops cached blocks overlapping the store."""

    __slots__ = ("cache",)

    def __init__(self, ram: bytearray) -> None:
        # Watch every page: the test does not track which ones hold code.
        super().__init__(ram, watch=bytearray(b"\x01" * (len(ram) // 4096)))
        self.cache: dict[int, Any] = {}

    def on_store(self, addr: int, size: int) -> None:
        # An empty block stands for the special instruction at its pc.
        stale = [p for p, tb in self.cache.items() if p < addr + size and max(tb.end, p + 4) > addr]
        for pc in stale:
            del self.cache[pc]


def test_cpu_loop_sketch_runs_self_modifying_code() -> None:
    run_until_exit = example("cpu-loop")["run_until_exit"]
    program = load_elf(get("smc").path)
    hart = CachingHart(program.ram)
    hart.reset(program.entry, 1)

    def lookup_or_translate(pc: int) -> Any:
        if pc not in hart.cache:
            hart.cache[pc] = translate(program.ram, pc)
        return hart.cache[pc]

    out: list[bytes] = []
    outcome = run_until_exit(
        hart, program.ram, lookup_or_translate, contextlib.nullcontext, lambda fd, d: out.append(d)
    )
    assert outcome == (Outcome.EXIT, 0)
    assert b"".join(out) == get("smc").expected_output()
