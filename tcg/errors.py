"""The errors of :mod:`tcg`: one root, :class:`TcgError`, and what derives from it.

Every error the package raises on its own account is a :class:`TcgError`:
a full buffer (:class:`BufferFullError`), a block too large for a region
(:class:`BlockTooLargeError`), a reclaimed block executed
(:class:`UseAfterReclaimError`) and a failed machine (:class:`MachineError`).
Two keep a second base so that code written against it still catches them:
``BlockTooLargeError`` is a ``ValueError`` (what the buffer raised for it
before) and ``UseAfterReclaimError`` is :class:`rcu.UseAfterReclaimError`
(the same mistake, made with translated code). Guest faults are not errors of
the machine: see :class:`tcg.riscv.errors.GuestFault`.
"""

from __future__ import annotations

import rcu

__all__ = [
    "BlockTooLargeError",
    "BufferFullError",
    "MachineConfigError",
    "MachineError",
    "TcgError",
    "UseAfterReclaimError",
]


class TcgError(Exception):
    """Base class of every error raised by :mod:`tcg` itself."""


class BufferFullError(TcgError):
    """No region is free for a new TB.

    The translator asks the policy for a token (``policy.on_full()``, still
    where it found the buffer full), leaves guest code (its read section and
    ``running()``) and calls ``policy.wait_for_space(token)`` before it
    retries. ``token`` is None unless the raiser passes one; a policy takes
    None as "no token: make room from the current state".
    """

    def __init__(self, token: object = None) -> None:
        super().__init__("translation buffer full")
        self.token = token


class BlockTooLargeError(TcgError, ValueError):
    """A TB's host code is larger than a region of the buffer: it can never fit.

    The translator can try a shorter block; a ``ValueError`` as well, as a
    bad argument to :meth:`tcg.TranslationBuffer.add`.
    """

    def __init__(self, size: int, region_size: int) -> None:
        super().__init__(
            f"a TB of {size} bytes does not fit in a region of {region_size} bytes: "
            f"use a larger buffer or fewer regions"
        )
        self.size = size
        self.region_size = region_size


class UseAfterReclaimError(TcgError, rcu.UseAfterReclaimError):
    """A vCPU executed a translation block whose region was reclaimed."""


class MachineError(TcgError):
    """The machine failed, not the guest: misuse, a failed hart thread, a bad configuration."""


class MachineConfigError(MachineError):
    """The machine as configured cannot run this program (e.g. a buffer too small for a block).

    Found only once the program runs; arguments that are wrong whatever the
    program raise ``TypeError``/``ValueError`` when the machine is made.
    """
