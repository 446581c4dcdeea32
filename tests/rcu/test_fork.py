"""Guarantee 6: after os.fork() the child has a working domain with only the forking thread."""

from __future__ import annotations

import os
import threading

import pytest

import rcu
from tests.forking import in_child
from tests.rcu.helpers import PATIENCE, ParkedReader

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_child_synchronizes_despite_parent_reader(domain: rcu.Domain) -> None:
    reader = ParkedReader(domain)  # would block every grace period in the parent
    assert domain.synchronize(timeout=0.05) is False

    def child() -> bool:
        stats = domain.statistics()
        ok = domain.synchronize(timeout=PATIENCE)
        with domain.read():
            pass
        return ok and stats.readers == 0

    assert in_child(child) == 0
    reader.finish()
    assert domain.synchronize(timeout=PATIENCE)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forking_thread_stays_registeredin_child(domain: rcu.Domain) -> None:
    me = domain.register_thread()
    other = ParkedReader(domain)

    def child() -> bool:
        return (
            domain.statistics().readers == 1
            and domain.reader() is me
            and (domain.synchronize(timeout=PATIENCE))
        )

    assert in_child(child) == 0
    other.finish()
    domain.unregister_thread()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_child_runs_callbacks_queued_before_fork(domain: rcu.Domain) -> None:
    reader = ParkedReader(domain)  # keeps the callbacks queued in the parent
    r_fd, w_fd = os.pipe()
    for i in range(5):
        domain.call_rcu(os.write, w_fd, b"%d" % i)

    def child() -> bool:
        os.close(r_fd)
        ok = domain.barrier(PATIENCE)
        os.close(w_fd)
        return ok

    assert in_child(child) == 0
    os.close(w_fd)
    with os.fdopen(r_fd, "rb") as pipe:
        assert pipe.read() == b"01234"  # written by the child, in queue order
    reader.finish()
    assert domain.barrier(PATIENCE)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_locks_are_usable_in_child_after_busy_parent(domain: rcu.Domain) -> None:
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            domain.synchronize()
            domain.call_rcu(lambda: None)

    thread = threading.Thread(target=churn, name="churn", daemon=True)
    thread.start()
    try:
        for _ in range(5):
            assert (
                in_child(lambda: domain.synchronize(timeout=PATIENCE) and domain.barrier(PATIENCE))
                == 0
            )
    finally:
        stop.set()
        thread.join(PATIENCE)
    assert not thread.is_alive()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_from_a_callback_runs_the_rest_of_the_batch_once_in_the_child() -> None:
    domain = rcu.Domain(batch_delay=0.2, stall_timeout=None)  # one batch for all four
    r_fd, w_fd = os.pipe()
    in_child: list[bool] = []
    children: list[int] = []

    def forker() -> None:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child, on the worker thread
            in_child.append(True)
            # The child has no main thread to end it: a timer does, after
            # its copy of the batch (and any wrong second copy) had time to run.
            threading.Timer(1.0, os._exit, (0,)).start()
        else:
            children.append(pid)

    def note(tag: bytes) -> None:
        if in_child:
            os.write(w_fd, tag)

    try:
        domain.call_rcu(forker)
        for tag in (b"a", b"b", b"c"):
            domain.call_rcu(note, tag)
        assert domain.barrier(PATIENCE)
        assert children
        _, status = os.waitpid(children[0], 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        domain.close()
    os.close(w_fd)
    with os.fdopen(r_fd, "rb") as pipe:
        assert pipe.read() == b"abc"  # each callback once in the child
