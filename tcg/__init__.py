"""Translated code, retired by RCU or flushed under stop-the-world, and an emulator.

``TranslationBuffer`` holds translated blocks in fixed regions; a
``RetirePolicy`` reclaims them: ``RcuRetire`` (grace periods, vCPUs keep
running) or ``StopTheWorldFlush`` (an exclusive section, QEMU's tb_flush).
This module only re-exports.
"""

from __future__ import annotations

from tcg.block import TranslationBlock, UseAfterReclaimError
from tcg.buffer import BufferFullError, BufferStatistics, TranslationBuffer
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
    "PolicyStatistics",
    "RcuRetire",
    "RetirePolicy",
    "StopTheWorldFlush",
    "TranslationBlock",
    "TranslationBuffer",
    "UseAfterReclaimError",
    "VcpuHooks",
]
