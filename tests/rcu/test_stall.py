"""Stall warnings name the holdout thread and show its stack."""

from __future__ import annotations

import warnings

import pytest

import rcu
from tests.rcu import helpers
from tests.rcu.helpers import PATIENCE, Background, ParkedReader


@pytest.mark.parametrize("flavor", ["epoch", "qsbr"])
def test_stalled_grace_period_warns_with_holdout(flavor: str) -> None:
    d = rcu.Domain(flavor, stall_timeout=0.05)
    reader = ParkedReader(d, name="sleepy-reader")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert d.synchronize(timeout=0.3) is False
        stalls = [w for w in caught if issubclass(w.category, rcu.RcuStallWarning)]
        assert stalls, "no stall warning"
        message = str(stalls[0].message)
        assert "sleepy-reader" in message
        assert "_run" in message  # the holdout's stack: ParkedReader._run
        assert d.statistics().stalls >= 1
    finally:
        reader.finish()
        d.close()


def test_stall_warning_points_at_the_caller_that_waits() -> None:
    d = rcu.Domain(stall_timeout=0.05)
    reader = ParkedReader(d)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert d.synchronize(timeout=0.3) is False
        stalls = [w for w in caught if issubclass(w.category, rcu.RcuStallWarning)]
        assert stalls
        assert {w.filename for w in stalls} == {__file__}
    finally:
        reader.finish()
        d.close()


def test_stall_warning_on_the_worker_points_at_the_holdout() -> None:
    # No user code waits on the callback worker: the warning points at the
    # line the holdout is stuck at, not at threading.py.
    d = rcu.Domain(stall_timeout=0.05)
    reader = ParkedReader(d, name="sleepy-reader")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            d.call_rcu(int)
            assert d.barrier(timeout=0.3) is False
            reader.finish()  # inside the block: the worker warns no more after it
            assert d.barrier(timeout=PATIENCE)
        stalls = [w for w in caught if issubclass(w.category, rcu.RcuStallWarning)]
        assert stalls, "no stall warning"
        assert {w.filename for w in stalls} == {helpers.__file__}
        assert "sleepy-reader" in str(stalls[0].message)
    finally:
        reader.finish()
        d.close()


def test_no_warning_without_stall() -> None:
    d = rcu.Domain(stall_timeout=5.0)
    reader = ParkedReader(d)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sync = Background(d.synchronize)
            reader.finish()
            assert sync.outcome() is True
        assert d.statistics().stalls == 0
    finally:
        d.close()


def test_stall_warning_is_a_runtime_warning() -> None:
    assert issubclass(rcu.RcuStallWarning, RuntimeWarning)
    assert rcu.Domain().stall_timeout == pytest.approx(21.0)
    assert PATIENCE > 0
