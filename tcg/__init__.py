"""Translated code, retired by RCU or flushed under stop-the-world, and an emulator.

``TranslationBuffer`` holds translated blocks in fixed regions; a
``RetirePolicy`` reclaims them: ``RcuRetire`` (grace periods, vCPUs keep
running) or ``StopTheWorldFlush`` (an exclusive section, QEMU's tb_flush).
``Machine`` runs RISC-V guest programs on N vCPU threads over one buffer.
This module only re-exports.
"""

from __future__ import annotations

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
