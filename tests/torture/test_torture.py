"""The torture oracle: short runs by default, long ones with ``-m torture``."""

from __future__ import annotations

import os

import pytest

import rcu
from tests.scale import torture_scale
from tests.torture.pipeline import BrokenDomain, Torture

SHORT = float(os.environ.get("RCU_TORTURE_SECONDS", "4"))
#: Seconds of each long run (4 of them): RCU_TORTURE_LONG_SECONDS, else 20 x TORTURE_SCALE.
LONG = float(os.environ.get("RCU_TORTURE_LONG_SECONDS", 0)) or max(2.0, 20 * torture_scale())


def _torture(flavor: str, seconds: float, seed: int, switch_interval: float = 1e-5) -> None:
    domain = rcu.Domain(flavor, stall_timeout=None)
    try:
        result = Torture(domain, readers=3, seed=seed, switch_interval=switch_interval).run(seconds)
    finally:
        domain.close()
    assert not result.errors, result.summary()
    assert result.failures == 0, result.summary()
    # The run did real work: many updates, every path taken, readers saw
    # replaced-but-not-yet-reclaimed objects (pipe count 1) as well as fresh ones.
    assert result.updates > 100, result.summary()
    assert all(result.paths[p] > 0 for p in ("synchronize", "call_rcu", "poll", "barrier"))
    assert result.histogram[0] > 0, result.summary()
    stats = domain.statistics()
    assert stats.pending == 0
    assert stats.callbacks_failed == 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("flavor", ["epoch", "qsbr"])
def test_torture_short(flavor: str) -> None:
    _torture(flavor, SHORT, seed=1)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("flavor", ["epoch", "qsbr"])
def test_torture_short_with_a_one_microsecond_switch_interval(flavor: str) -> None:
    # Threads switch at almost every bytecode, so readers step aside for
    # grace periods at their most interleaved: the handoff must never let a
    # grace period end under a section that began before it.
    _torture(flavor, SHORT / 2, seed=3, switch_interval=1e-6)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("flavor", ["epoch", "qsbr"])
def test_oracle_catches_a_domain_that_does_not_wait(flavor: str) -> None:
    domain = BrokenDomain(flavor, stall_timeout=None)
    try:
        result = Torture(domain, readers=3, seed=2).run(min(SHORT, 2.0))
    finally:
        domain.close()
    assert result.failures > 0, "the oracle missed a broken domain: " + result.summary()
    assert sum(result.histogram[2:]) > 0, result.summary()


@pytest.mark.torture
@pytest.mark.timeout(LONG * 3 + 120)
@pytest.mark.parametrize("flavor", ["epoch", "qsbr"])
@pytest.mark.parametrize("seed", [11, 12])
def test_torture_long(flavor: str, seed: int) -> None:
    _torture(flavor, LONG, seed=seed)
