"""Interpreter exit: a bounded drain, one warning, and the right names (guarantee 4)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

#: A daemon thread parks itself where it holds up every grace period of ``d``
#: (epoch: in a read section; qsbr: online, and in a section too), then the
#: main thread queues a callback and exits. {options} are Domain keywords.
PARKED_DAEMON = textwrap.dedent(
    """
    import threading, rcu
    d = rcu.Domain({flavor!r}, name="parked", stall_timeout=None, {options})
    inside = threading.Event()
    def park():
        with d.read():
            inside.set()
            threading.Event().wait()
    threading.Thread(target=park, name="parked-daemon", daemon=True).start()
    inside.wait()
    if d.flavor == "qsbr":
        d.register_thread()  # the exiting thread is online too: it is no holdout
    d.call_rcu(print, "ran")
    """
)


def _exit(flavor: str, options: str) -> tuple[subprocess.CompletedProcess[str], float]:
    script = PARKED_DAEMON.format(flavor=flavor, options=options)
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    return out, time.monotonic() - start


def _check_one_exit_warning(out: subprocess.CompletedProcess[str]) -> None:
    assert out.returncode == 0, out.stderr
    assert "ran" not in out.stdout
    err = out.stderr
    assert err.count("RcuStallWarning") == 1, err
    assert "1 callback(s) of 'parked' could not run" in err
    assert "daemon thread 'parked-daemon'" in err
    assert "exited" not in err  # the daemon thread is still alive
    assert "ReaderExitWarning" not in err
    assert "MainThread" not in err


@pytest.mark.parametrize("flavor", ["epoch", "qsbr"])
def test_exit_drain_has_its_own_deadline(flavor: str) -> None:
    out, took = _exit(flavor, "exit_timeout=0.5")
    _check_one_exit_warning(out)
    assert "exit_timeout of 0.5 s" in out.stderr
    assert took < 30


def test_exit_drain_is_bounded_by_default() -> None:
    # Without a stall timeout the drain used to wait forever.
    out, took = _exit("epoch", "")
    _check_one_exit_warning(out)
    assert "exit_timeout of 5.0 s" in out.stderr
    assert took < 30


def test_exit_drain_can_wait_without_limit_when_asked() -> None:
    script = PARKED_DAEMON.format(flavor="epoch", options="exit_timeout=None")
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=2)


def test_domains_drain_side_by_side_at_exit() -> None:
    # Three stuck domains of 2 s each: one after the other would take 6 s.
    script = textwrap.dedent(
        """
        import threading, rcu
        domains = [rcu.Domain(f, stall_timeout=None, exit_timeout=2.0)
                   for f in ("epoch", "qsbr", "epoch")]
        inside = threading.Barrier(2)
        def park():
            for d in domains:
                d.read_lock()
            inside.wait()
            threading.Event().wait()
        threading.Thread(target=park, name="parked-daemon", daemon=True).start()
        inside.wait()
        for d in domains:
            d.call_rcu(print, "ran")
        """
    )
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    took = time.monotonic() - start
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("RcuStallWarning") == 3
    assert "ran" not in out.stdout
    assert took < 5.5, f"exit took {took:.1f} s: the domains drained one after the other"
