"""Engines by name: which emulator runs a guest program under our buffer and policies.

Every engine (:class:`tcg.engine.Engine`) runs in a :class:`tcg.Machine`
(same keywords, same :class:`~tcg.machine.MachineResult`); this registry
names the machine of each, so a caller picks one by name:

* ``"tcg"``: our engine, guest blocks translated to Python functions;
* ``"tinyrv"``: tinyrv's instruction handlers (:mod:`tcg.adapters.tinyrv`),
  which needs ``pip install --no-deps tinyrv==0.1.0``.

Engines are imported when asked for, so ``import tcg`` never needs tinyrv.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from tcg.machine import Machine, MachineError

__all__ = ["DEFAULT_ENGINE", "ENGINES", "engine_available", "machine_class", "make_machine"]

DEFAULT_ENGINE = "tcg"

#: Engine name -> ``"module:Class"`` of its machine.
ENGINES: dict[str, str] = {
    "tcg": "tcg.machine:Machine",
    "tinyrv": "tcg.adapters.tinyrv:TinyrvMachine",
}


def machine_class(engine: str) -> type[Machine]:
    """The machine class of ``engine``; ``ValueError`` for an unknown name."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")
    module_name, _, name = ENGINES[engine].partition(":")
    cls = getattr(importlib.import_module(module_name), name)
    if not (isinstance(cls, type) and issubclass(cls, Machine)):  # pragma: no cover
        raise MachineError(f"engine {engine!r} is not a Machine: {ENGINES[engine]}")
    return cls


def engine_available(engine: str) -> str | None:
    """None if ``engine`` can run here, else why not (with the install command)."""
    machine_class(engine)  # ValueError for an unknown name
    if engine == "tinyrv":
        from tcg.adapters.tinyrv import INSTALL, tinyrv_available

        if not tinyrv_available():
            return f"the tinyrv engine needs the tinyrv package: {INSTALL}"
    return None


def make_machine(engine: str, program: bytes | str | os.PathLike[str], **options: Any) -> Machine:
    """``machine_class(engine)(program, **options)``.

    Raises :class:`~tcg.machine.MachineError` if the engine's emulator is not
    installed, ``ValueError`` for an unknown engine.
    """
    return machine_class(engine)(program, **options)
