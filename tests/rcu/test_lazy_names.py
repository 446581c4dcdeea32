"""``import rcu`` imports each public name on first use, and registers the exit drain at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import rcu

#: The grace-period machinery, which ``import rcu`` alone does not need.
MACHINERY = {"rcu._domain", "rcu._grace", "rcu._callbacks", "rcu._registry", "rcu._reader"}


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_import_rcu_imports_the_errors_but_no_grace_period_machinery() -> None:
    done = _run(
        """
        import sys, rcu
        print(" ".join(sorted(m for m in sys.modules if m.startswith("rcu"))))
        """
    )
    assert done.returncode == 0, done.stderr
    modules = set(done.stdout.split())
    assert "rcu.errors" in modules
    assert not modules & MACHINERY, sorted(modules & MACHINERY)


def test_every_public_name_imports_in_a_fresh_interpreter() -> None:
    done = _run(
        f"""
        import rcu
        assert set(rcu.__all__) <= set(dir(rcu)), sorted(set(rcu.__all__) - set(dir(rcu)))
        from rcu import {", ".join(rcu.__all__)}
        assert implementation in ("c", "python")
        assert rcu.read is read and isinstance(default_domain(), Domain)
        assert not hasattr(rcu, "no_such_name")
        """
    )
    assert done.returncode == 0, done.stderr


def test_the_exit_drain_is_registered_by_import_rcu() -> None:
    # atexit runs handlers last registered first: this one, registered after
    # ``import rcu`` but before any domain exists, runs before the drain, so
    # the callback it queues still runs.
    done = _run(
        """
        import atexit, rcu
        atexit.register(lambda: rcu.call_rcu(print, "ran at exit"))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ran at exit\n"
