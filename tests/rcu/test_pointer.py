"""Pointer: publication, atomic writer operations, replace, debug checks."""

from __future__ import annotations

import functools
import threading

import pytest

import rcu
from tests.rcu.helpers import PATIENCE, join, start


def test_load_publish_exchange(domain: rcu.Domain) -> None:
    p = rcu.Pointer("a", domain)
    assert p.domain is domain
    with domain.read():
        assert p.load() == "a"
    p.publish("b")
    assert p.exchange("c") == "b"
    with domain.read():
        assert p.load() == "c"
    domain.unregister_thread()


def test_compare_and_set_compares_identity(domain: rcu.Domain) -> None:
    first = [1]
    p = rcu.Pointer(first, domain)
    assert p.compare_and_set([1], [2]) is False  # equal but not identical
    second = [2]
    assert p.compare_and_set(first, second) is True
    assert p.exchange(first) is second


def test_compare_and_set_is_atomic_between_writers(domain: rcu.Domain) -> None:
    p = rcu.Pointer(0, domain)
    wins = [0] * 4

    def increment(index: int) -> None:
        done = 0
        while done < 500:
            old = p.load()
            if p.compare_and_set(old, old + 1):
                done += 1
                wins[index] += 1

    threads = [start(functools.partial(increment, i), f"cas-{i}") for i in range(4)]
    join(*threads)
    assert p.load() == sum(wins) == 2000


def test_replace_reclaims_old_after_grace_period(domain: rcu.Domain) -> None:
    p = rcu.Pointer({"v": 1}, domain)
    reclaimed: list[object] = []
    entered = threading.Event()
    release = threading.Event()
    seen: list[object] = []

    def reader() -> None:
        with domain.read():
            seen.append(p.load())
            entered.set()
            assert release.wait(PATIENCE)
            # The object this section loaded must not be reclaimed yet.
            seen.append(list(reclaimed))
        domain.offline()

    thread = start(reader, "reader")
    assert entered.wait(PATIENCE)
    old = p.replace({"v": 2}, reclaimed.append)
    assert old == {"v": 1}
    assert domain.barrier(0.2) is False  # the reader holds the grace period
    release.set()
    join(thread)
    assert domain.barrier(PATIENCE)
    assert seen == [{"v": 1}, []]
    assert reclaimed == [{"v": 1}]


def test_replace_validates_reclaim(domain: rcu.Domain) -> None:
    p = rcu.Pointer(1, domain)
    with pytest.raises(TypeError):
        p.replace(2, reclaim=5)  # type: ignore[arg-type]
    assert p.exchange(3) == 1  # nothing was published


def test_pointer_rejects_non_domain() -> None:
    with pytest.raises(TypeError):
        rcu.Pointer(1, domain="default")  # type: ignore[arg-type]


def test_pointer_defaults_to_default_domain() -> None:
    assert rcu.Pointer(None).domain is rcu.default_domain()


class Node(rcu.Reclaimable):
    def __init__(self, value: int) -> None:
        self.value = value


def test_debug_load_outside_section_raises() -> None:
    d = rcu.Domain(debug=True)
    try:
        p = rcu.Pointer(1, d)
        with pytest.raises(rcu.ReadSectionError, match="outside a read section"):
            p.load()
        with d.read():
            assert p.load() == 1
        d.unregister_thread()
    finally:
        d.close()


def test_debug_poisons_reclaimed_objects() -> None:
    d = rcu.Domain(debug=True)
    try:
        p = rcu.Pointer(Node(1), d)
        with d.read():
            leaked = p.load()
        d.unregister_thread()
        p.replace(Node(2))
        assert d.barrier(PATIENCE)
        with pytest.raises(rcu.UseAfterReclaimError, match="Node object used after"):
            _ = leaked.value
        with pytest.raises(rcu.UseAfterReclaimError):
            leaked.value = 3
        assert isinstance(leaked, Node)
        with d.read():
            assert p.load().value == 2
        d.unregister_thread()
    finally:
        d.close()


def test_debug_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCU_DEBUG", "1")
    d = rcu.Domain()
    assert d.debug
    d.close()
    monkeypatch.setenv("RCU_DEBUG", "0")
    d = rcu.Domain()
    assert not d.debug
    d.close()


def test_without_debug_nothing_is_poisoned(domain: rcu.Domain) -> None:
    p = rcu.Pointer(Node(1), domain)
    old = p.replace(Node(2), reclaim=lambda n: None)
    assert domain.barrier(PATIENCE)
    assert old.value == 1


@pytest.mark.parametrize("debug", [False, True])
def test_replace_after_close_stores_nothing(flavor: str, debug: bool) -> None:
    d = rcu.Domain(flavor, debug=debug)
    p = rcu.Pointer("old", d)
    d.close()
    reclaimed: list[object] = []
    with pytest.raises(rcu.DomainClosedError):
        p.replace("new", reclaim=reclaimed.append)
    with d.read():
        assert p.load() == "old"
    d.unregister_thread()
    assert reclaimed == []


def test_writers_that_queue_nothing_work_after_close(flavor: str) -> None:
    d = rcu.Domain(flavor)
    p = rcu.Pointer(1, d)
    d.close()
    p.publish(2)
    assert p.exchange(3) == 2
    assert p.compare_and_set(3, 4)
    assert p.replace(5) == 4  # nothing to reclaim: a plain exchange
    with d.read():
        assert p.load() == 5
    d.unregister_thread()


def test_replace_that_races_with_close_is_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    d = rcu.Domain()
    p = rcu.Pointer("old", d)
    real_exchange = rcu.Pointer.exchange

    def exchange_then_close(self: rcu.Pointer[str], new: str) -> str:
        old = real_exchange(self, new)
        d.close()  # lands between the check and call_rcu
        return old

    monkeypatch.setattr(rcu.Pointer, "exchange", exchange_then_close)
    with pytest.raises(rcu.DomainClosedError):
        p.replace("new", reclaim=print)
    with d.read():
        assert p.load() == "old"
    d.unregister_thread()
