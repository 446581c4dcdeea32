"""Start-up: ``python -m tcg run`` and ``import tcg`` import only what they need.

Each case runs a fresh interpreter that runs ``tcg`` as ``python -m`` does
(``runpy``) and then names every module in ``sys.modules``, and checks which
modules are among them: an invariant of the import graph, never a timing.
(``-X importtime`` would not do: it leaves out the modules imported through
``importlib.import_module``, as the lazy names and the engines are.) Every
case also checks a module that must be there, so that a broken listing
cannot pass.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tcg
import tcg.riscv
from tcg.workloads import WORKLOADS

ROOT = Path(__file__).resolve().parents[2]
CRC32 = WORKLOADS["crc32"]

# Runs what follows it on its command line as ``python -m`` would (or, after
# "-c", as Python code), then writes the names in sys.modules to stderr.
WRAPPER = """
import runpy, sys
try:
    if sys.argv[1] == "-c":
        exec(sys.argv[2])
    else:
        runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)
finally:
    sys.stderr.write("\\nmodules: " + " ".join(sorted(sys.modules)) + "\\n")
"""
MODULES_LINE = re.compile(rb"^modules: (.*)$", re.M)

#: Never needed to run a program: the comparison, its report and records,
#: other engines, and the package metadata (only ``--version`` reads it).
NOT_FOR_A_RUN = {
    "tcg.cli",
    "tcg.compare",
    "tcg.record",
    "tcg.report",
    "tcg.stats",
    "tcg.riscv.runner",
    "tcg.adapters",
    "tinyrv",
    "matplotlib",
    "rich",
    "importlib.metadata",
    "email",
}

#: The grace-period machinery of rcu: only the rcu policies need it.
RCU_MACHINERY = {"rcu._domain", "rcu._grace", "rcu._callbacks", "rcu._registry", "rcu._reader"}


def _imported(*args: str) -> tuple[subprocess.CompletedProcess[bytes], set[str]]:
    """Run ``python -m ARGS`` (or ``-c CODE``) in the source tree; the modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    found = MODULES_LINE.findall(done.stderr)
    assert len(found) == 1, done.stderr[-2000:]
    return done, set(found[0].decode().split())


def _unwanted(modules: set[str], forbidden: set[str]) -> list[str]:
    """The modules of ``modules`` that are, or are inside, a package of ``forbidden``."""
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden))


@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    ("policy", "forbidden"),
    [("rcu", NOT_FOR_A_RUN), ("flush", NOT_FOR_A_RUN | RCU_MACHINERY)],
)
def test_a_run_imports_only_what_its_policy_needs(policy: str, forbidden: set[str]) -> None:
    done, modules = _imported("tcg", "run", str(CRC32.path), "--policy", policy)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == CRC32.expected_output(1)
    assert {"tcg.machine", "tcg.riscv_engine", "quiescent._world"} <= modules
    if policy == "rcu":
        assert modules >= RCU_MACHINERY
    assert not _unwanted(modules, forbidden)


@pytest.mark.timeout(150)
@pytest.mark.skipif(importlib.util.find_spec("tinyrv") is None, reason="tinyrv is not installed")
def test_the_tinyrv_adapter_is_imported_for_its_engine_only() -> None:
    done, modules = _imported(
        "tcg", "run", str(CRC32.path), "--engine", "tinyrv", "--policy", "flush"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == CRC32.expected_output(1)
    assert {"tcg.adapters.tinyrv", "tinyrv"} <= modules
    assert not _unwanted(modules, NOT_FOR_A_RUN - {"tcg.adapters", "tinyrv"} | RCU_MACHINERY)


def test_version_reads_the_metadata_and_runs_nothing() -> None:
    done, modules = _imported("tcg", "--version")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(b"python -m tcg ")
    assert "importlib.metadata" in modules
    assert not _unwanted(modules, RCU_MACHINERY | {"tcg.compare", "tcg.riscv.runner"})


def test_import_tcg_imports_none_of_its_modules() -> None:
    done, modules = _imported("-c", "import tcg")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tcg" in modules
    assert not _unwanted(modules - {"tcg"}, {"tcg", "rcu", "quiescent", "_latency"})


def test_every_public_name_imports_in_a_fresh_interpreter() -> None:
    names = ", ".join(tcg.__all__)
    code = (
        f"import tcg\n"
        f"assert set(tcg.__all__) <= set(dir(tcg)), sorted(set(tcg.__all__) - set(dir(tcg)))\n"
        f"from tcg import {names}\n"
        f"from tcg.riscv import {', '.join(tcg.riscv.__all__)}\n"
        f"import tcg.riscv\n"
        f"assert callable(tcg.riscv.decode) and callable(tcg.riscv.translate)\n"
        f"assert not hasattr(tcg, 'no_such_name')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")


@pytest.mark.parametrize("package", ["tcg", "tcg.riscv"])
def test_each_public_name_is_the_object_its_module_defines(package: str) -> None:
    module = importlib.import_module(package)
    listed = set(dir(module))
    for name in module.__all__:
        assert name in listed
        namespace: dict[str, object] = {}
        exec(f"from {package} import {name}", namespace)
        assert namespace[name] is getattr(module, name)
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018
