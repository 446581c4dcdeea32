"""A callback flood: every callback runs exactly once, the backlog stays bounded,
and grace periods are shared by many callbacks."""

from __future__ import annotations

import os
import threading

import pytest

import rcu
from tests.scale import scaled

PRODUCERS = 4


def _flood(flavor: str, total: int, max_pending: int) -> None:
    per_producer = total // PRODUCERS
    runs = bytearray(PRODUCERS * per_producer)  # one counter per callback

    def ran(index: int) -> None:
        runs[index] += 1  # callbacks run on the one worker thread: no race

    domain = rcu.Domain(flavor, max_pending=max_pending, stall_timeout=None)
    start = threading.Barrier(PRODUCERS)

    def produce(p: int) -> None:
        start.wait(30)
        call_rcu = domain.call_rcu
        for i in range(p * per_producer, (p + 1) * per_producer):
            call_rcu(ran, i)

    threads = [
        threading.Thread(target=produce, args=(p,), name=f"flood-{p}") for p in range(PRODUCERS)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
            assert not thread.is_alive(), f"{thread.name} hung"
        assert domain.barrier(60)
        stats = domain.statistics()
    finally:
        domain.close()
    assert runs.count(1) == len(runs), "some callback ran zero or several times"
    assert stats.callbacks_invoked == len(runs)
    assert stats.peak_pending <= max_pending
    assert stats.grace_periods * 100 < len(runs), f"{stats.grace_periods} grace periods"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("flavor", ["epoch", "qsbr"])
def test_callback_flood(flavor: str) -> None:
    _flood(flavor, int(os.environ.get("RCU_FLOOD_CALLBACKS", "1000000")), max_pending=10_000)


@pytest.mark.torture
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("flavor", ["epoch", "qsbr"])
def test_callback_flood_long(flavor: str) -> None:
    _flood(flavor, scaled(5_000_000, minimum=1_000_000), max_pending=10_000)
