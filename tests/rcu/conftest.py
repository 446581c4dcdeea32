"""Fixtures of the rcu tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import rcu
from tests.rcu.helpers import open_domain


@pytest.fixture(params=["epoch", "qsbr"])
def flavor(request: pytest.FixtureRequest) -> str:
    """Each rcu flavor in turn."""
    return str(request.param)


@pytest.fixture
def domain(flavor: str) -> Iterator[rcu.Domain]:
    """A fresh domain of each flavor, closed after the test."""
    with open_domain(flavor, stall_timeout=None) as d:
        yield d


@pytest.fixture
def epoch_domain() -> Iterator[rcu.Domain]:
    """A fresh epoch domain, closed after the test."""
    with open_domain("epoch", stall_timeout=None) as d:
        yield d


@pytest.fixture
def qsbr_domain() -> Iterator[rcu.Domain]:
    """A fresh qsbr domain, closed after the test."""
    with open_domain("qsbr", stall_timeout=None) as d:
        yield d
