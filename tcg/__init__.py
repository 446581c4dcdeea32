"""Translated code, retired by RCU or flushed under stop-the-world, and an emulator.

``TranslationBuffer`` holds translated blocks in fixed regions; a
``RetirePolicy`` reclaims them: ``RcuRetire`` (grace periods, vCPUs keep
running) or ``StopTheWorldFlush`` (an exclusive section, QEMU's tb_flush).
``Machine`` runs RISC-V guest programs on N vCPU threads over one buffer.
This module only re-exports.
"""

from __future__ import annotations

from tcg.block import TranslationBlock, UseAfterReclaimError
from tcg.buffer import BufferFullError, BufferStatistics, TranslationBuffer, VcpuMark
from tcg.machine import Machine, MachineConfigError, MachineError, MachineResult
from tcg.policies import (
    PolicyStatistics,
    RcuRetire,
    RetirePolicy,
    StopTheWorldFlush,
    VcpuHooks,
)

__all__ = [
    "BufferFullError",
    "BufferStatistics",
    "Machine",
    "MachineConfigError",
    "MachineError",
    "MachineResult",
    "PolicyStatistics",
    "RcuRetire",
    "RetirePolicy",
    "StopTheWorldFlush",
    "TranslationBlock",
    "TranslationBuffer",
    "UseAfterReclaimError",
    "VcpuHooks",
    "VcpuMark",
]
