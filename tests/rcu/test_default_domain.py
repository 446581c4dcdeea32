"""The module-level calls on the process-wide default domain."""

from __future__ import annotations

import pytest

import rcu
from tests.rcu.helpers import PATIENCE


def test_default_domain_is_a_singleton_epoch_domain() -> None:
    d = rcu.default_domain()
    assert d is rcu.default_domain()
    assert d.flavor == "epoch"
    assert d.name == "default"


def test_module_level_calls() -> None:
    d = rcu.default_domain()
    with rcu.read():
        assert d.in_read_section()
    rcu.read_lock()
    assert d.in_read_section()
    rcu.read_unlock()
    assert rcu.synchronize(timeout=PATIENCE)
    out: list[int] = []
    rcu.call_rcu(out.append, 7)
    assert rcu.barrier(PATIENCE)
    assert out == [7]
    cookie = rcu.start_poll()
    assert rcu.synchronize()
    assert rcu.poll(cookie)
    d.unregister_thread()


def test_public_names_are_exported() -> None:
    for name in rcu.__all__:
        assert getattr(rcu, name) is not None, name
    with pytest.raises(AttributeError):
        _ = rcu._not_there  # type: ignore[attr-defined]
