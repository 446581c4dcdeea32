"""The shared latency statistics: one implementation behind rcu's and quiescent's names."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

import quiescent
import rcu
from _latency import LatencyWindow, Percentiles


def test_rcu_and_quiescent_name_the_same_class() -> None:
    assert rcu.Percentiles is Percentiles
    assert quiescent.Percentiles is Percentiles
    assert rcu.DomainStatistics.__annotations__["gp_latency"] == "Percentiles"
    assert quiescent.WorldStatistics.__annotations__["pause"] == "Percentiles"


def test_leaf_imports_no_package_of_the_distribution() -> None:
    code = (
        "import sys, _latency\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('rcu', 'quiescent', 'tcg'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_percentiles_of_known_samples() -> None:
    samples = [i * 1000 for i in range(1, 101)]  # 1..100 microseconds
    p = Percentiles.of(reversed(samples))
    assert p == Percentiles(100, 50e-6, 90e-6, 99e-6, 100e-6)
    assert Percentiles.of([]) == Percentiles(0, 0.0, 0.0, 0.0, 0.0)


@given(st.lists(st.integers(min_value=0, max_value=10**12), max_size=200))
def test_percentiles_are_ordered_samples(samples: list[int]) -> None:
    p = Percentiles.of(samples)
    assert p.count == len(samples)
    assert p.p50 <= p.p90 <= p.p99 <= p.max
    if samples:
        assert p.max == max(samples) / 1e9
        assert min(samples) / 1e9 <= p.p50
        # Nearest rank: each percentile is one of the samples.
        assert {p.p50, p.p90, p.p99} <= {s / 1e9 for s in samples}


def test_latency_window_keeps_the_most_recent() -> None:
    window = LatencyWindow(size=3)
    for ns in (10**9, 1, 2, 3):
        window.add(ns)
    assert window.percentiles().count == 3
    assert window.percentiles().max == 3e-9


@pytest.mark.parametrize(
    ("size", "error"),
    [(0, ValueError), (-1, ValueError), ("3", TypeError), (True, TypeError), (2.0, TypeError)],
)
def test_latency_window_checks_its_size(size: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        LatencyWindow(size=size)  # type: ignore[arg-type]
