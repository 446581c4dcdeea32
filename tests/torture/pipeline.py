"""The rcutorture pipeline, against the public rcu API.

A writer keeps replacing the object that an ``rcu.Pointer`` publishes. Each
replaced object starts a trip down a pipe of ``PIPE_LEN`` stages: its
``pipe`` count is bumped once when it is replaced and once per grace period
after that; at ``PIPE_LEN`` it is freed and goes back to the pool for reuse.
The retirement path is drawn at random for each object: ``synchronize``,
``call_rcu`` (the callback re-queues itself once per stage), ``start_poll`` +
``cond_synchronize``, or ``call_rcu`` followed by ``barrier``.

Readers load the object inside a (sometimes nested) read section, dawdle,
and then record the pipe count they see in a histogram. An object loaded
inside a section can have been replaced meanwhile (count 1) but no grace
period may have elapsed (count 2 or more), it may not have been freed, and
it may not have been reused. Readers also take a polled-grace-period cookie
inside their section and check that it is not complete while they still read.

Any of those is a failure of RCU. The oracle is trusted because it catches
a domain whose grace periods do not wait for readers (``BrokenDomain``).
"""

from __future__ import annotations

import collections
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import rcu

PIPE_LEN = 10
PATHS = ("synchronize", "call_rcu", "poll", "barrier")


class TortureObject:
    """One object of the pool. ``pipe`` is written by whoever owns its retirement."""

    __slots__ = ("freed", "generation", "pipe")

    def __init__(self) -> None:
        self.pipe = 0
        self.freed = False
        self.generation = 0


class BrokenDomain(rcu.Domain):
    """A domain whose grace periods do not wait for readers (for testing the oracle)."""

    def __init__(self, flavor: str = "epoch", **options: Any) -> None:
        super().__init__(flavor, **options)
        state = self._grace.state

        def bump_only(deadline: float | None, abort: object) -> bool:
            state.ctr += 1
            return True

        self._grace._run_grace_period = bump_only  # type: ignore[method-assign]


@dataclass
class TortureResult:
    """What one torture run observed."""

    histogram: list[int] = field(default_factory=lambda: [0] * (PIPE_LEN + 1))
    freed_seen: int = 0
    reused_seen: int = 0
    early_cookies: int = 0
    updates: int = 0
    paths: collections.Counter[str] = field(default_factory=collections.Counter)
    fake_grace_periods: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        """Readings that prove a grace period ended under a reader."""
        return sum(self.histogram[2:]) + self.freed_seen + self.reused_seen + self.early_cookies

    def summary(self) -> str:
        """A one-line description for assertion messages."""
        return (
            f"histogram={self.histogram} freed_seen={self.freed_seen} "
            f"reused_seen={self.reused_seen} early_cookies={self.early_cookies} "
            f"updates={self.updates} paths={dict(self.paths)} errors={self.errors}"
        )


class Torture:
    """One torture run: writer, readers and a fake writer on one domain."""

    def __init__(
        self,
        domain: rcu.Domain,
        *,
        readers: int = 3,
        seed: int = 0,
        switch_interval: float = 1e-5,
    ) -> None:
        self.domain = domain
        self.n_readers = readers
        self.seed = seed
        self.switch_interval = switch_interval  # seconds; small, so threads interleave often
        self.result = TortureResult()
        self.stop = threading.Event()
        self.pool: collections.deque[TortureObject] = collections.deque(
            TortureObject() for _ in range(PIPE_LEN * 8)
        )
        self.pointer: rcu.Pointer[TortureObject] = rcu.Pointer(self._take(), domain)
        self._lock = threading.Lock()  # guards result (readers merge into it once)

    # -- the pool ---------------------------------------------------------

    def _take(self) -> TortureObject:
        obj = self.pool.popleft() if self.pool else TortureObject()
        obj.generation += 1
        obj.pipe = 0
        obj.freed = False
        return obj

    def _free(self, obj: TortureObject) -> None:
        obj.freed = True
        self.pool.append(obj)

    # -- the writer -------------------------------------------------------

    def _advance(self, obj: TortureObject) -> bool:
        """One grace period has passed for ``obj``; True once it is freed."""
        obj.pipe += 1
        if obj.pipe >= PIPE_LEN:
            self._free(obj)
            return True
        return False

    def _callback(self, obj: TortureObject) -> None:
        if not self._advance(obj):
            self.domain.call_rcu(self._callback, obj)

    def writer(self) -> None:
        rng = random.Random(self.seed)
        removed: list[TortureObject] = []  # retired on the synchronous paths
        while not self.stop.is_set():
            old = self.pointer.exchange(self._take())
            old.pipe = 1
            path = rng.choice(PATHS)
            self.result.paths[path] += 1
            self.result.updates += 1
            if path in ("call_rcu", "barrier"):
                self.domain.call_rcu(self._callback, old)
                if path == "barrier":
                    self.domain.barrier()
            else:
                removed.append(old)
                if path == "synchronize":
                    self.domain.synchronize()
                else:
                    cookie = self.domain.start_poll()
                    if rng.random() < 0.5:
                        time.sleep(rng.random() * 1e-4)
                    self.domain.cond_synchronize(cookie)
                removed = [obj for obj in removed if not self._advance(obj)]
            if rng.random() < 0.1:
                time.sleep(rng.random() * 1e-4)
        # Drain: every object finishes its trip down the pipe.
        while removed:
            self.domain.synchronize()
            removed = [obj for obj in removed if not self._advance(obj)]
        self.domain.barrier()

    # -- readers ----------------------------------------------------------

    def reader(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index + 1)
        histogram = [0] * (PIPE_LEN + 1)
        freed = reused = early = 0
        domain = self.domain
        r = domain.reader()
        qsbr = domain.flavor == "qsbr"
        while not self.stop.is_set():
            depth = rng.choice((1, 1, 2))
            for _ in range(depth):
                r.lock()
            obj = self.pointer.load()
            generation = obj.generation
            cookie = domain.start_poll() if rng.random() < 0.05 else None
            if rng.random() < 0.3:
                time.sleep(rng.random() * 2e-4)  # let the writer run mid-section
            pipe = min(obj.pipe, PIPE_LEN)
            histogram[pipe] += 1
            if obj.freed:
                freed += 1
            if obj.generation != generation:
                reused += 1
            if cookie is not None and domain.poll(cookie):
                early += 1
            for _ in range(depth):
                r.unlock()
            if qsbr:
                r.quiescent_state()
        if qsbr:
            r.offline()
        domain.unregister_thread()
        with self._lock:
            res = self.result
            res.histogram = [a + b for a, b in zip(res.histogram, histogram, strict=True)]
            res.freed_seen += freed
            res.reused_seen += reused
            res.early_cookies += early

    def fake_writer(self) -> None:
        rng = random.Random(self.seed + 7)
        while not self.stop.wait(rng.random() * 2e-3):
            if rng.random() < 0.5:
                self.domain.synchronize()
            else:
                self.domain.barrier()
            self.result.fake_grace_periods += 1

    # -- running ----------------------------------------------------------

    def run(self, seconds: float) -> TortureResult:
        """Run for ``seconds`` and return what was seen."""
        old_interval = sys.getswitchinterval()
        sys.setswitchinterval(self.switch_interval)
        threads = [
            threading.Thread(target=self._guard(self.writer), name="torture-writer"),
            threading.Thread(target=self._guard(self.fake_writer), name="torture-fake-writer"),
        ] + [
            threading.Thread(target=self._guard(self.reader, i), name=f"torture-reader-{i}")
            for i in range(self.n_readers)
        ]
        try:
            for thread in threads:
                thread.start()
            self.stop.wait(seconds)  # set early if a thread fails
            self.stop.set()
            for thread in threads:
                thread.join(60)
                if thread.is_alive():
                    self.result.errors.append(f"{thread.name} hung")
        finally:
            self.stop.set()
            sys.setswitchinterval(old_interval)
        return self.result

    def _guard(self, fn: Callable[..., None], *args: object) -> Callable[[], None]:
        def run() -> None:
            try:
                fn(*args)
            except BaseException as exc:  # reported, then the run stops
                self.result.errors.append(f"{threading.current_thread().name}: {exc!r}")
                self.stop.set()

        return run
