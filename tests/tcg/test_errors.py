"""The errors of tcg: one root, and the second bases that keep old handlers working."""

from __future__ import annotations

import pytest

import quiescent
import rcu
import tcg
from tcg import StopTheWorldFlush, TranslationBuffer
from tcg.errors import (
    BlockTooLargeError,
    BufferFullError,
    MachineConfigError,
    MachineError,
    TcgError,
    UseAfterReclaimError,
)


@pytest.mark.parametrize(
    "error", [BlockTooLargeError, BufferFullError, MachineError, UseAfterReclaimError]
)
def test_every_error_of_tcg_derives_from_the_root(error: type[Exception]) -> None:
    assert issubclass(error, TcgError)
    assert getattr(tcg, error.__name__) is error


def test_second_bases_keep_existing_handlers_catching() -> None:
    assert issubclass(UseAfterReclaimError, rcu.UseAfterReclaimError)
    assert issubclass(UseAfterReclaimError, rcu.RcuError)
    assert issubclass(BlockTooLargeError, ValueError)
    assert issubclass(MachineConfigError, MachineError)
    assert not issubclass(BufferFullError, ValueError)


def test_a_block_larger_than_a_region_is_block_too_large() -> None:
    buffer = TranslationBuffer(400, 4, StopTheWorldFlush(quiescent.World()))
    with pytest.raises(BlockTooLargeError, match="does not fit in a region") as info:
        buffer.add(0x10, 0x20, int, b"x" * 101)
    assert (info.value.size, info.value.region_size) == (101, 100)
    assert buffer.statistics().translations == 0  # refused before anything changed
    # Other bad arguments are plain ValueErrors, not "too large".
    with pytest.raises(ValueError, match="at least one byte") as empty:
        buffer.add(0x10, 0x20, int, b"")
    assert not isinstance(empty.value, BlockTooLargeError)
