"""Translated code, retired by RCU or flushed under stop-the-world, and an emulator.

``TranslationBuffer`` holds translated blocks in fixed regions; a
``RetirePolicy`` reclaims them: ``RcuRetire`` (grace periods, vCPUs keep
running) or ``StopTheWorldFlush`` (an exclusive section, QEMU's tb_flush).
``Machine`` runs RISC-V guest programs on N vCPU threads over one buffer.
This module only re-exports.

Each name is imported when it is first used (PEP 562): ``python -m tcg``
imports this package first, and a run needs only part of it (the flush
policy, say, needs no grace periods), so nothing is imported here up front.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = [
    "BlockTooLargeError",
    "BufferFullError",
    "BufferStatistics",
    "LinkStatistics",
    "Machine",
    "MachineConfigError",
    "MachineError",
    "MachineResult",
    "PolicyStatistics",
    "RcuRetire",
    "RetirePolicy",
    "StopTheWorldFlush",
    "TcgError",
    "TranslationBlock",
    "TranslationBuffer",
    "UseAfterReclaimError",
    "VcpuHooks",
    "VcpuMark",
]

# name -> the module it is imported from on first use (by __getattr__ below).
_LAZY = {
    name: module
    for module, names in {
        "tcg.block": ["TranslationBlock"],
        "tcg.buffer": ["BufferStatistics", "LinkStatistics", "TranslationBuffer", "VcpuMark"],
        "tcg.errors": [
            "BlockTooLargeError",
            "BufferFullError",
            "MachineConfigError",
            "MachineError",
            "TcgError",
            "UseAfterReclaimError",
        ],
        "tcg.machine": ["Machine", "MachineResult"],
        "tcg.policies": [
            "PolicyStatistics",
            "RcuRetire",
            "RetirePolicy",
            "StopTheWorldFlush",
            "VcpuHooks",
        ],
    }.items()
    for name in names
}

if TYPE_CHECKING:
    from tcg.block import TranslationBlock
    from tcg.buffer import BufferStatistics, LinkStatistics, TranslationBuffer, VcpuMark
    from tcg.errors import (
        BlockTooLargeError,
        BufferFullError,
        MachineConfigError,
        MachineError,
        TcgError,
        UseAfterReclaimError,
    )
    from tcg.machine import Machine, MachineResult
    from tcg.policies import (
        PolicyStatistics,
        RcuRetire,
        RetirePolicy,
        StopTheWorldFlush,
        VcpuHooks,
    )
else:

    def __getattr__(name: str) -> object:
        """Import a public name on first use and keep it in the module."""
        try:
            module = _LAZY[name]
        except KeyError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), name)
        # Later lookups find the name without this function. Two threads that
        # race here store the same object (the import system imports a module
        # once).
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
