"""The two implementations of the read side: which one runs, and what only C checks.

The whole rcu suite runs against whichever implementation is in use; CI runs
it twice, the second time with ``RCU_PURE_PYTHON=1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import rcu
from rcu import _reader
from tests.rcu.helpers import PATIENCE, open_domain

ROOT = Path(__file__).resolve().parents[2]


def _implementation_in_child(**env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", "import rcu; print(rcu.implementation)"],
        capture_output=True,
        text=True,
        timeout=PATIENCE * 3,
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
    )
    return result.stdout.strip()


def test_implementation_names_what_serves_the_read_side() -> None:
    forced = os.environ.get("RCU_PURE_PYTHON", "") not in ("", "0")
    assert rcu.implementation == ("python" if forced or _reader.native is None else "c")
    reader_type = type(rcu.Domain().reader())
    assert issubclass(reader_type, rcu.Reader)
    assert reader_type.__module__ == "rcu._flavors"
    assert reader_type.__name__.startswith("Native") == (rcu.implementation == "c")


def test_the_environment_variable_forces_the_pure_python_reference() -> None:
    assert _implementation_in_child(RCU_PURE_PYTHON="1") == "python"


def test_a_built_extension_is_used_unless_forced_off() -> None:
    built = any((ROOT / "rcu").glob("_native*.so")) or any((ROOT / "rcu").glob("_native*.pyd"))
    if not built:
        pytest.skip("the C extension is not built here (no compiler at install time)")
    assert _implementation_in_child(RCU_PURE_PYTHON="") == "c"
    assert _implementation_in_child(RCU_PURE_PYTHON="0") == "c"


@pytest.mark.parametrize("flavor", ["epoch", "qsbr"])
@pytest.mark.parametrize("debug", [False, True])
def test_a_handle_used_on_another_thread_raises_at_the_call(flavor: str, debug: bool) -> None:
    checked = debug or rcu.implementation == "c"
    with open_domain(flavor, stall_timeout=None, debug=debug) as domain:
        reader = domain.reader()
        reader.lock()  # the owner's section, which another thread must not end
        errors: list[BaseException] = []
        calls = [reader.unlock, reader.lock, reader.__enter__]
        if flavor == "qsbr":
            calls += [reader.quiescent_state, reader.offline, reader.online]

        def intruder() -> None:
            for call in calls:
                try:
                    call()
                except rcu.RcuError as exc:
                    errors.append(exc)

        thread = threading.Thread(target=intruder, name="intruder")
        thread.start()
        thread.join(PATIENCE)
        assert not thread.is_alive()
        if checked:
            assert len(errors) == len(calls)
            assert all("another thread" in str(e) for e in errors)
            assert reader.depth == 1, "the intruder changed the owner's section"
            assert domain.in_read_section()
        reader.depth = 1  # unchecked pure Python: undo what the intruder did
        reader.unlock()
        if flavor == "qsbr":
            reader.online()
        domain.unregister_thread()


@pytest.mark.skipif(rcu.implementation != "c", reason="the C read side's own checks")
def test_the_c_records_reject_misuse_without_crashing() -> None:
    from rcu import _native

    bare = _native.EpochReader.__new__(_native.EpochReader)  # never initialised
    assert bare.stepped is None
    bare.stepped = None
    with pytest.raises(rcu.RcuError):
        bare.lock()
    with open_domain("epoch", stall_timeout=None) as domain:
        reader = domain.reader()
        reader.lock()
        with pytest.raises(TypeError, match="twice"):
            reader.__init__(domain._grace.state, threading.current_thread())  # type: ignore[misc]
        assert reader.depth == 1, "re-initialising ended the section"
        with pytest.raises(ValueError, match="depth"):
            reader.depth = -1
        with pytest.raises(ValueError, match="waiting"):
            reader.waiting = 2**32 + 2
        reader.unlock()
        domain.unregister_thread()


@pytest.mark.skipif(rcu.implementation != "c", reason="the C fast lookup")
def test_closed_domains_leave_no_reader_in_the_thread_state() -> None:
    import gc

    def readers() -> int:
        gc.collect()
        return sum(isinstance(o, rcu.Reader) for o in gc.get_objects())

    before = readers()
    for _ in range(50):
        domain = rcu.Domain(stall_timeout=None)
        with domain.read():
            pass
        domain.close()
        del domain
    assert readers() - before < 5  # was 50: one record per closed domain
