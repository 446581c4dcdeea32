"""The qsbr flavor: quiescent states, offline / online, and the epoch no-ops."""

from __future__ import annotations

import threading

import pytest

import rcu
from tests.rcu.helpers import GLANCE, PATIENCE, Background, join, start


def _online_reader(
    domain: rcu.Domain, steps: list[str]
) -> tuple[threading.Thread, list[threading.Event], list[threading.Event]]:
    """A registered qsbr thread that performs ``steps`` one at a time, each on a signal.

    Returns the thread, the gates that start each step and the events that
    say each step is done.
    """
    gates = [threading.Event() for _ in steps]
    done = [threading.Event() for _ in steps]
    registered = threading.Event()

    def run() -> None:
        domain.register_thread()
        registered.set()
        for step, gate, finished in zip(steps, gates, done, strict=True):
            assert gate.wait(PATIENCE)
            getattr(domain, step)()
            finished.set()
        domain.unregister_thread()

    thread = start(run, "qsbr-reader")
    assert registered.wait(PATIENCE)
    return thread, gates, done


def _step(gates: list[threading.Event], done: list[threading.Event], index: int) -> None:
    gates[index].set()
    assert done[index].wait(PATIENCE)


def test_online_thread_holds_grace_period_until_quiescent_state(qsbr_domain: rcu.Domain) -> None:
    thread, gates, done = _online_reader(qsbr_domain, ["quiescent_state"])
    sync = Background(qsbr_domain.synchronize)
    assert not sync.returned_within(GLANCE), "grace period ignored an online thread"
    _step(gates, done, 0)
    assert sync.outcome() is True
    join(thread)


def test_offline_thread_never_holds_grace_period(qsbr_domain: rcu.Domain) -> None:
    thread, gates, done = _online_reader(qsbr_domain, ["offline", "online", "quiescent_state"])
    _step(gates, done, 0)
    assert qsbr_domain.synchronize(timeout=PATIENCE) is True
    _step(gates, done, 1)  # back online: holds grace periods again
    assert qsbr_domain.synchronize(timeout=GLANCE) is False
    sync = Background(qsbr_domain.synchronize)
    _step(gates, done, 2)
    assert sync.outcome() is True
    join(thread)


def test_synchronize_from_online_thread_goes_offline_while_waiting(
    qsbr_domain: rcu.Domain,
) -> None:
    me = qsbr_domain.register_thread()
    assert me.ctr != 0
    results = [Background(qsbr_domain.synchronize, name=f"s{i}") for i in range(2)]
    # Two online threads that synchronize at once must not wait for each other.
    peers = [Background(lambda: (qsbr_domain.register_thread(), qsbr_domain.synchronize())[1])]
    assert qsbr_domain.synchronize(timeout=PATIENCE) is True
    assert me.ctr != 0, "synchronize() must bring the caller back online"
    for call in results + peers:
        assert call.outcome() is True
    qsbr_domain.unregister_thread()


def test_offline_section(qsbr_domain: rcu.Domain) -> None:
    r = qsbr_domain.register_thread()
    with qsbr_domain.offline_section():
        assert r.ctr == 0
        assert Background(qsbr_domain.synchronize).outcome() is True
    assert r.ctr != 0
    qsbr_domain.unregister_thread()


@pytest.mark.parametrize("call", ["offline", "quiescent_state"])
def test_quiescent_calls_inside_section_raise(qsbr_domain: rcu.Domain, call: str) -> None:
    with qsbr_domain.read(), pytest.raises(rcu.ReadSectionError):
        getattr(qsbr_domain, call)()
    qsbr_domain.unregister_thread()


def test_read_sections_cost_nothing_in_qsbr(qsbr_domain: rcu.Domain) -> None:
    r = qsbr_domain.register_thread()
    ctr = r.ctr
    with r, qsbr_domain.read():
        assert qsbr_domain.in_read_section()
        assert r.ctr == ctr  # a section writes nothing a grace period reads
    qsbr_domain.unregister_thread()


def test_epoch_accepts_qsbr_calls_as_noops(epoch_domain: rcu.Domain) -> None:
    epoch_domain.quiescent_state()
    epoch_domain.offline()
    epoch_domain.online()
    with epoch_domain.offline_section():
        pass
    assert epoch_domain.reader().ctr == 0
    assert epoch_domain.synchronize(timeout=PATIENCE)
    epoch_domain.unregister_thread()
