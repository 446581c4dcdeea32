"""Test helpers: reader threads parked inside read sections, and bounded waits."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import rcu

#: Upper bound for any wait that must succeed; a correct run never comes close.
PATIENCE = 10.0
#: How long to watch for something that must *not* happen.
GLANCE = 0.2


def wait_until(predicate: Callable[[], object], timeout: float = PATIENCE) -> bool:
    """Poll ``predicate`` every millisecond until it is true; False after ``timeout``.

    For tests that observe a state no event announces (a grace period that
    has started); library code never polls.
    """
    ticker = threading.Event()
    for _ in range(int(timeout * 1000)):
        if predicate():
            return True
        ticker.wait(0.001)
    return bool(predicate())


def start(target: Callable[[], object], name: str) -> threading.Thread:
    """Start a daemon thread running ``target``."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def join(*threads: threading.Thread) -> None:
    """Join threads, failing loudly if one hangs."""
    for thread in threads:
        thread.join(PATIENCE)
        assert not thread.is_alive(), f"thread {thread.name!r} hung"


class ParkedReader:
    """A thread that holds ``domain`` up until released.

    Epoch: it sits inside a read section. qsbr: it is online and reports no
    quiescent state (it also sits inside a read section, which qsbr ignores).
    """

    def __init__(self, domain: rcu.Domain, name: str = "parked-reader", depth: int = 1) -> None:
        self.domain = domain
        self.entered = threading.Event()
        self.release = threading.Event()
        self.left = threading.Event()
        self._depth = depth
        self.thread = start(self._run, name)
        assert self.entered.wait(PATIENCE), "reader never entered its section"

    def _run(self) -> None:
        reader = self.domain.reader()
        for _ in range(self._depth):
            reader.lock()
        self.entered.set()
        self.release.wait(PATIENCE * 3)
        for _ in range(self._depth):
            reader.unlock()
        self.left.set()
        if self.domain.flavor == "qsbr":
            self.domain.offline()

    def finish(self) -> None:
        """Release the reader and join its thread."""
        self.release.set()
        join(self.thread)


class Background:
    """Run a blocking call on another thread and observe when it returns."""

    def __init__(self, fn: Callable[[], object], name: str = "background") -> None:
        self.done = threading.Event()
        self.result: object = None
        self.error: BaseException | None = None
        self._fn = fn
        self.thread = start(self._run, name)

    def _run(self) -> None:
        try:
            self.result = self._fn()
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def returned_within(self, seconds: float) -> bool:
        """True if the call returned within ``seconds``."""
        return self.done.wait(seconds)

    def outcome(self) -> object:
        """Wait for the call and return its result (re-raising its error)."""
        assert self.done.wait(PATIENCE), "background call hung"
        join(self.thread)
        if self.error is not None:
            raise self.error
        return self.result


@contextmanager
def open_domain(flavor: str = "epoch", **options: object) -> Iterator[rcu.Domain]:
    """A domain that is closed (and its worker joined) when the block ends."""
    domain = rcu.Domain(flavor, **options)  # type: ignore[arg-type]
    try:
        yield domain
    finally:
        domain.close()
