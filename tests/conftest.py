"""Shared test configuration: Hypothesis profiles and the leaked-thread check."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "torture", max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# Threads that legitimately outlive a test: the default domain's worker.
_PROCESS_WIDE = {"rcu-callbacks-default"}

#: How long a test's threads get to finish after it ends before they count as leaked.
LEAK_GRACE = 5.0


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves behind a thread it started."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + LEAK_GRACE
    leaked = []
    for thread in threading.enumerate():
        if thread in before or thread.name in _PROCESS_WIDE:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            leaked.append(thread.name)
    if leaked:
        pytest.fail(f"test leaked running threads: {leaked}", pytrace=False)


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Force frequent thread switches so interleavings vary (restored after)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@pytest.fixture
def sigint_raises() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt here and in child processes (restored after).

    A shell starts background jobs with SIGINT ignored, and Python then keeps
    it ignored; tests of Ctrl-C need the default handler whatever started them.
    """
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
