"""Fixtures of the tcg tests: a world, and each shipped policy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import quiescent
import rcu
from tcg import RcuRetire, RetirePolicy, StopTheWorldFlush


@pytest.fixture
def world() -> quiescent.World:
    """A fresh quiescent world."""
    return quiescent.World(name="test-world")


@pytest.fixture(params=["flush", "rcu", "rcu-qsbr", "rcu-sync", "rcu-batch"])
def policy(request: pytest.FixtureRequest, world: quiescent.World) -> Iterator[RetirePolicy]:
    """Each shipped policy in turn (closed after the test)."""
    made: RetirePolicy
    if request.param == "flush":
        made = StopTheWorldFlush(world)
    elif request.param == "rcu":
        made = RcuRetire(rcu.Domain(stall_timeout=None))
    elif request.param == "rcu-sync":
        made = RcuRetire(rcu.Domain(stall_timeout=None), deferred=False)
    elif request.param == "rcu-batch":
        made = RcuRetire(rcu.Domain(stall_timeout=None), reserve=4)
    else:
        made = RcuRetire(rcu.Domain("qsbr", stall_timeout=None))
    yield made
    made.close()
    if isinstance(made, RcuRetire):
        made.domain.close()
