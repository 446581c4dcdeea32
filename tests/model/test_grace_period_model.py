"""The spin model of the grace-period protocol (tests/model/grace_period.pml).

The model must verify with no error in every configuration below, and every
busted variant must fail, each for its own reason (the property it breaks).
Skipped where spin is not installed. Each run generates, compiles and runs
the verifier in a temporary directory, so spin's files never land in the
repository; the largest takes about fifteen seconds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

MODEL = Path(__file__).with_name("grace_period.pml")
SPIN = shutil.which("spin")
CC = shutil.which("cc") or shutil.which("gcc")

pytestmark = pytest.mark.skipif(
    SPIN is None or CC is None,
    reason="needs spin and a C compiler: apt-get install -y spin gcc",
)

#: What "spin -run" compiles with, plus optimisation and a memory cap (MB).
CFLAGS = ["-O2", "-DSAFETY", "-DMEMLIM=2048", "-w"]

_RECLAIMED = r"assertion violated\s+!\(reclaimed\[v\]\)"
_GATE_EARLY = r"assertion violated.*scans_done>mark"
_HANG = r"invalid end state"
_LOST_WAKEUP = r"invalid end state|assertion violated.*sb_full"


def _run(args: list[str], cwd: Path, timeout: float) -> str:
    """Run ``args`` in ``cwd``; its output. A command that fails fails the test."""
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = done.stdout + done.stderr
    # pan exits 0 whether or not it found errors: its report says.
    assert done.returncode == 0, output
    return output


def verify(*defines: str, timeout: float = 100.0) -> str:
    """Run the model with ``-D`` ``defines`` in a scratch directory; pan's report."""
    assert SPIN is not None
    assert CC is not None
    work = Path(tempfile.mkdtemp(prefix="spin-"))
    try:
        shutil.copy(MODEL, work / MODEL.name)
        _run([SPIN, *(f"-D{d}" for d in defines), "-a", MODEL.name], work, timeout)
        _run([CC, *CFLAGS, "-o", "pan", "pan.c"], work, timeout)
        return _run(["./pan"], work, timeout)
    finally:
        shutil.rmtree(work)


def errors(report: str) -> int:
    found = re.search(r"errors: (\d+)", report)
    assert found is not None, report
    assert "max search depth too small" not in report, report
    assert "out of memory" not in report, report
    return int(found.group(1))


# Configurations that must verify. The default bounds are two readers with
# two sections (qsbr: one) and one writer; "NR=1 NW=2" covers two
# synchronize callers sharing grace periods and a handoff left to a woken
# waiter, "NS=1 NW=2" both at once (epoch: ten million states, qsbr: too
# many for a test), "NR=1 NS=1 NW=3" a next driver that ends the handoff
# before the woken waiter does. UNBOUNDED_GATE checks that no reader depends
# on its gate's timeout, in both flavors (see docs/design.md).
CORRECT = [
    (),
    ("NOGIL",),
    ("UNBOUNDED_GATE",),
    ("NR=1", "NW=2"),
    ("NR=1", "NW=2", "NOGIL"),
    ("NR=1", "NW=2", "UNBOUNDED_GATE"),
    ("NS=1", "NW=2"),
    ("NS=1", "NW=2", "NOGIL"),
    ("NR=1", "NS=1", "NW=3"),
    ("QSBR",),
    ("QSBR", "NOGIL"),
    ("QSBR", "NR=1", "NW=2"),
    ("QSBR", "NR=1", "NW=2", "NOGIL"),
    ("QSBR", "UNBOUNDED_GATE"),
    ("QSBR", "NR=1", "NW=2", "UNBOUNDED_GATE"),
]


@pytest.mark.parametrize("defines", CORRECT, ids=lambda d: " ".join(d) or "default")
def test_model_verifies(defines: tuple[str, ...]) -> None:
    report = verify(*defines)
    assert errors(report) == 0, report


# (BUSTED value, extra defines, what the failure must be)
BUSTED = [
    (1, (), _RECLAIMED),
    (1, ("QSBR",), _RECLAIMED),
    (1, ("NOGIL",), _RECLAIMED),
    (2, (), _RECLAIMED),
    (2, ("QSBR",), _RECLAIMED),
    (3, (), _HANG),
    (3, ("QSBR",), _HANG),
    (3, ("NOGIL",), _HANG),
    (4, (), _GATE_EARLY),
    (4, ("QSBR",), _GATE_EARLY),
    (5, (), _LOST_WAKEUP),
    (5, ("QSBR",), _LOST_WAKEUP),
    (5, ("NOGIL",), _LOST_WAKEUP),
    (6, (), _HANG),
    (7, (), _RECLAIMED),
    (7, ("QSBR",), _RECLAIMED),
    (8, (), _HANG),
]


@pytest.mark.parametrize(
    ("busted", "defines", "failure"),
    BUSTED,
    ids=[" ".join((f"BUSTED={k}", *d)) for k, d, _ in BUSTED],
)
def test_busted_variant_fails(busted: int, defines: tuple[str, ...], failure: str) -> None:
    report = verify(f"BUSTED={busted}", *defines)
    assert errors(report) >= 1, report
    assert re.search(failure, report), report


def test_every_busted_variant_of_the_model_is_tested() -> None:
    in_model = {int(k) for k in re.findall(r"BUSTED == (\d+)", MODEL.read_text())}
    in_model |= {int(k) for k in re.findall(r"BUSTED != (\d+)", MODEL.read_text())}
    assert in_model == {k for k, _, _ in BUSTED}
