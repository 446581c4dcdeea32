"""Every misuse raises the named error at the call."""

from __future__ import annotations

import pytest

import rcu
from tests.rcu.helpers import PATIENCE


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.synchronize(),
        lambda d: d.synchronize(timeout=0),
        lambda d: d.barrier(),
        lambda d: d.close(),
        lambda d: d.cond_synchronize(d.start_poll()),
        lambda d: d.unregister_thread(),
    ],
    ids=["synchronize", "synchronize-timeout", "barrier", "close", "cond_synchronize", "unreg"],
)
def test_waiting_inside_own_read_section_raises(domain: rcu.Domain, call: object) -> None:
    assert callable(call)
    with domain.read(), pytest.raises(rcu.ReadSectionError):
        call(domain)
    assert not domain.closed
    domain.unregister_thread()


def test_waiting_inside_another_domains_section_is_allowed(domain: rcu.Domain) -> None:
    other = rcu.Domain()
    try:
        with other.read():
            assert domain.synchronize(timeout=PATIENCE)
        other.unregister_thread()
    finally:
        other.close()


@pytest.mark.parametrize("how", ["reader", "domain", "module"])
def test_unbalanced_unlock_raises(domain: rcu.Domain, how: str) -> None:
    if how == "reader":
        with pytest.raises(rcu.ReadSectionError, match="without a matching lock"):
            domain.reader().unlock()
    elif how == "domain":
        with pytest.raises(rcu.ReadSectionError):
            domain.read_unlock()
        domain.read_lock()
        domain.read_unlock()
        with pytest.raises(rcu.ReadSectionError):
            domain.read_unlock()
    else:
        d = rcu.default_domain()
        rcu.read_lock()
        rcu.read_unlock()
        with pytest.raises(rcu.ReadSectionError):
            rcu.read_unlock()
        d.unregister_thread()
    assert not domain.in_read_section()
    domain.unregister_thread()


def test_unbalanced_exit_of_with_block_raises(domain: rcu.Domain) -> None:
    r = domain.reader()
    with pytest.raises(rcu.ReadSectionError):
        r.__exit__(None, None, None)
    domain.unregister_thread()


def test_closed_domain_refuses_update_side_calls(flavor: str) -> None:
    d = rcu.Domain(flavor)
    d.close()
    d.close()  # idempotent
    with pytest.raises(rcu.DomainClosedError):
        d.synchronize()
    with pytest.raises(rcu.DomainClosedError):
        d.start_poll()
    with pytest.raises(rcu.DomainClosedError):
        d.call_rcu(print)
    assert d.barrier(timeout=PATIENCE)  # nothing queued: nothing to wait for
    with d.read():  # reading stays possible
        pass
    d.unregister_thread()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"flavor": "rwlock"}, ValueError),
        ({"flavor": 3}, TypeError),
        ({"batch_size": 0}, ValueError),
        ({"batch_size": 2.5}, TypeError),
        ({"batch_delay": -1}, ValueError),
        ({"batch_delay": "1"}, TypeError),
        ({"max_pending": 0}, ValueError),
        ({"max_pending": True}, TypeError),
        ({"stall_timeout": 0}, ValueError),
        ({"stall_timeout": -1.0}, ValueError),
        ({"stall_timeout": "soon"}, TypeError),
        ({"debug": "yes"}, TypeError),
        ({"on_error": 42}, TypeError),
        ({"name": 42}, TypeError),
    ],
)
def test_bad_options_raise_at_construction(kwargs: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        rcu.Domain(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("timeout", "error"), [(-1, ValueError), ("1", TypeError), (float("nan"), ValueError)]
)
def test_bad_timeouts_raise(domain: rcu.Domain, timeout: object, error: type) -> None:
    with pytest.raises(error):
        domain.synchronize(timeout)  # type: ignore[arg-type]
    with pytest.raises(error):
        domain.barrier(timeout)  # type: ignore[arg-type]


def test_call_rcu_rejects_non_callables(domain: rcu.Domain) -> None:
    with pytest.raises(TypeError, match="callable"):
        domain.call_rcu(42)  # type: ignore[arg-type]
    assert domain.statistics().callbacks_queued == 0


def test_close_rejects_non_bool(domain: rcu.Domain) -> None:
    with pytest.raises(TypeError):
        domain.close(drain="yes")  # type: ignore[arg-type]
