"""Shared helpers of the benchmark scripts: timing loops and table printing."""

from __future__ import annotations

import platform
import statistics
import sys
import timeit
from collections.abc import Callable, Sequence


def ns_per_op(stmt: str, env: dict[str, object], number: int, repeat: int) -> float:
    """Median nanoseconds per execution of ``stmt`` over ``repeat`` timed loops."""
    timer = timeit.Timer(stmt, globals=env)
    runs = timer.repeat(repeat=repeat, number=number)
    return statistics.median(runs) / number * 1e9


def median_of(fn: Callable[[], float], repeat: int) -> tuple[float, float]:
    """Median and spread (max - min) of ``repeat`` calls of ``fn``."""
    values = [fn() for _ in range(repeat)]
    return statistics.median(values), max(values) - min(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with right-aligned numeric columns."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    return str(value)


def banner(title: str) -> None:
    """Print a section title with the interpreter it runs on."""
    print(f"\n## {title}")


def machine() -> str:
    """One line naming the interpreter and machine."""
    return f"{platform.python_implementation()} {sys.version.split()[0]} on {platform.machine()}"
