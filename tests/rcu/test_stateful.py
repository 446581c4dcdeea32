"""A model-based test of grace periods (Hypothesis RuleBasedStateMachine).

Reader threads are driven one step at a time: enter or leave a read section,
report a quiescent state, go offline or online. A ``synchronize()`` runs in
the background; the model knows which readers it must wait for (those that
held the domain up when the grace period started) and checks after every
step that it has not returned while one of them still holds, and that it
does return once none does.
"""

from __future__ import annotations

import queue
import threading

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import rcu
from tests.rcu.helpers import PATIENCE, Background, join, start, wait_until

N_READERS = 3
readers = st.integers(min_value=0, max_value=N_READERS - 1)


class ReaderThread:
    """A registered reader thread that runs one named call on command."""

    def __init__(self, domain: rcu.Domain, index: int) -> None:
        self._commands: queue.Queue[tuple[str | None, threading.Event]] = queue.Queue()
        self._domain = domain
        ready = threading.Event()
        self._commands.put(("register_thread", ready))
        self.thread = start(self._run, f"model-reader-{index}")
        assert ready.wait(PATIENCE)

    def _run(self) -> None:
        while True:
            name, ack = self._commands.get(timeout=PATIENCE * 3)
            if name is None:
                self._domain.unregister_thread()
                ack.set()
                return
            getattr(self._domain, name)()
            ack.set()

    def do(self, name: str | None) -> None:
        ack = threading.Event()
        self._commands.put((name, ack))
        assert ack.wait(PATIENCE), f"reader hung in {name}"


class GracePeriodModel(RuleBasedStateMachine):
    flavor = "epoch"

    def __init__(self) -> None:
        super().__init__()
        self.domain = rcu.Domain(self.flavor, stall_timeout=None)
        self.readers = [ReaderThread(self.domain, i) for i in range(N_READERS)]
        self.depth = [0] * N_READERS
        self.online = [self.flavor == "qsbr"] * N_READERS
        self.sync: Background | None = None
        self.owed: set[int] = set()

    def holds(self, i: int) -> bool:
        """Does reader ``i`` hold up a grace period that starts now?"""
        return self.online[i] if self.flavor == "qsbr" else self.depth[i] > 0

    @rule(i=readers)
    def enter(self, i: int) -> None:
        self.readers[i].do("read_lock")
        self.depth[i] += 1

    @precondition(lambda self: any(self.depth))
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        i = data.draw(st.sampled_from([j for j, d in enumerate(self.depth) if d]))
        self.readers[i].do("read_unlock")
        self.depth[i] -= 1
        if self.flavor == "epoch" and not self.depth[i]:
            self.owed.discard(i)

    @precondition(lambda self: self.sync is None)
    @rule()
    def start_synchronize(self) -> None:
        self.owed = {i for i in range(N_READERS) if self.holds(i)}
        before = self.domain._grace.state.ctr
        self.sync = Background(self.domain.synchronize, name="model-sync")
        # Readers act only once the grace period has started: from then on
        # their new sections must not delay it.
        sync = self.sync
        assert wait_until(lambda: self.domain._grace.state.ctr != before or sync.done.is_set())

    @invariant()
    def synchronize_waits_for_exactly_the_owed_readers(self) -> None:
        if self.sync is None:
            return
        if self.owed:
            assert not self.sync.done.is_set(), f"returned while {self.owed} still read"
        else:
            assert self.sync.outcome() is True, "did not return after the last holdout left"
            self.sync = None

    def teardown(self) -> None:
        for i, reader in enumerate(self.readers):
            for _ in range(self.depth[i]):
                reader.do("read_unlock")
            reader.do(None)
            join(reader.thread)
        if self.sync is not None:
            self.sync.outcome()
        self.domain.close()


class QsbrModel(GracePeriodModel):
    flavor = "qsbr"

    @rule(i=readers)
    def quiescent_state(self, i: int) -> None:
        if self.depth[i]:
            return  # illegal inside a section; covered by test_qsbr
        self.readers[i].do("quiescent_state")
        self.owed.discard(i)

    @rule(i=readers)
    def offline(self, i: int) -> None:
        if self.depth[i]:
            return
        self.readers[i].do("offline")
        self.online[i] = False
        self.owed.discard(i)

    @rule(i=readers)
    def online_again(self, i: int) -> None:
        self.readers[i].do("online")
        self.online[i] = True


TestEpochGracePeriods = GracePeriodModel.TestCase
TestQsbrGracePeriods = QsbrModel.TestCase
