"""Run a function in a forked child, with a bounded wait (shared by the fork tests)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable

#: How long a forked child may take before it counts as hung (and is killed).
CHILD_PATIENCE = 30.0


def in_child(body: Callable[[], object], patience: float = CHILD_PATIENCE) -> int:
    """Fork; run ``body()`` in the child (exit 0 if it returns true); return the exit code.

    A child that hangs must not hang the test, nor outlive it: it is killed
    after ``patience`` seconds and the test fails.
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            status = 0 if body() else 2
        except BaseException as exc:
            print(f"child failed: {exc!r}", file=sys.stderr)
        finally:
            os._exit(status)
    deadline = time.monotonic() + patience
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child hung")
        time.sleep(0.01)
