"""Stall warnings name the holdout thread and show its stack."""

from __future__ import annotations

import warnings

import pytest

import rcu
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
