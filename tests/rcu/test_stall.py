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


def test_a_stall_timeout_set_later_applies_to_the_next_grace_period() -> None:
    d = rcu.Domain(stall_timeout=None)
    reader = ParkedReader(d)
    try:
        with pytest.raises(ValueError, match="stall_timeout"):
            d.stall_timeout = 0
        with pytest.raises(TypeError):
            d.stall_timeout = "1"  # type: ignore[assignment]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert d.synchronize(timeout=0.2) is False
            d.stall_timeout = 0.05
            assert d.synchronize(timeout=0.3) is False
        stalls = [w for w in caught if issubclass(w.category, rcu.RcuStallWarning)]
        assert stalls, "the new stall_timeout was not used"
        assert d.stall_timeout == 0.05
        d.stall_timeout = float("inf")
        assert d.stall_timeout is None
    finally:
        reader.finish()
        d.close()


def test_stall_warning_is_a_runtime_warning() -> None:
    assert issubclass(rcu.RcuStallWarning, RuntimeWarning)
    assert rcu.Domain().stall_timeout == pytest.approx(21.0)
    assert PATIENCE > 0


# CPython 3.11 hangs with the GIL held when a collection that runs inside
# sys._current_frames() frees a threading.local (gh-106883, not fixed there).
# A child interpreter describes holdouts while exactly such garbage waits.
_FRAMES_UNDER_GC = """
import gc, sys, threading
import {module}
stop = threading.Event()
threads = [threading.Thread(target=stop.wait) for _ in range(4)]
for t in threads:
    t.start()
class Holder:
    def __init__(self):
        self.local = threading.local()
        self.local.x = 1
        self.me = self
for _ in range(300):
    gc.set_threshold(100000)
    garbage = [Holder() for _ in range(20)]
    del garbage
    gc.set_threshold(1)  # the next allocation collects: inside the call below
    {call}
gc.set_threshold(700)
stop.set()
for t in threads:
    t.join()
print("done")
"""


def run_frames_under_gc(module: str, call: str) -> None:
    """Run ``call`` in a child with a threading.local cycle collectable inside it."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _FRAMES_UNDER_GC.format(module=module, call=call)],
        capture_output=True,
        text=True,
        timeout=PATIENCE * 6,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"


def test_describing_holdouts_never_hangs_in_a_collection() -> None:
    run_frames_under_gc("rcu._debug", "rcu._debug.describe_holdouts([])")
