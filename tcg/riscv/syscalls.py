"""The guest's system calls: the whole operating system a guest program sees.

Guest programs are freestanding: everything they ask of the outside world goes
through ``ecall`` with the Linux RISC-V numbers, and only three calls exist.
Keeping them in one place lets every engine (the single-threaded runner, a
multi-threaded machine) share one implementation of the ABI:

* ``a7 = 64``: ``write(fd, buf, len)`` for fd 1 (stdout) and 2 (stderr);
  returns ``len``, ``-EBADF`` for another fd, ``-EFAULT`` if the buffer is
  not inside guest RAM;
* ``a7 = 101``: ``nanosleep(req, rem)`` blocks the hart for the time in
  ``req`` (``{int32 tv_sec; int32 tv_nsec}``, at most :data:`MAX_SLEEP`
  seconds): a long host call, returns 0, ``-EINVAL`` or ``-EFAULT``;
* ``a7 = 93``: ``exit(code)`` ends the calling hart;
* ``a7 = 94``: ``exit_group(code)`` ends every hart;
* anything else returns ``-ENOSYS`` (-38).

Results go to ``a0`` as unsigned 32-bit values (``-38`` is ``0xFFFFFFDA``).
Exit codes keep their low 8 bits, like a process's exit status.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from tcg.riscv.hart import Hart

__all__ = [
    "EBADF",
    "EFAULT",
    "EINVAL",
    "ENOSYS",
    "MAX_SLEEP",
    "SYS_EXIT",
    "SYS_EXIT_GROUP",
    "SYS_NANOSLEEP",
    "SYS_WRITE",
    "Outcome",
    "syscall",
]

SYS_WRITE = 64
SYS_EXIT = 93
SYS_EXIT_GROUP = 94
SYS_NANOSLEEP = 101
EBADF = 9
EFAULT = 14
EINVAL = 22
ENOSYS = 38
#: The longest host call a guest may make, in seconds.
MAX_SLEEP = 10.0

_A0, _A1, _A2, _A7 = 10, 11, 12, 17


class Outcome(enum.Enum):
    """What the hart does after the system call."""

    #: Continue at ``h.pc`` (the instruction after the ``ecall``).
    CONTINUE = "continue"
    #: This hart has exited.
    EXIT = "exit"
    #: Every hart must stop.
    EXIT_GROUP = "exit_group"


def syscall(h: Hart, write: Callable[[int, bytes], object]) -> tuple[Outcome, int]:
    """Perform the system call ``h`` requested with ``ecall``.

    ``write(fd, data)`` receives what the guest writes to fd 1 or 2. Returns
    the outcome and, for the two exits, the exit code (else 0). For the
    other calls the result is already in ``a0``.
    """
    x = h.x
    number = x[_A7]
    if number == SYS_WRITE:
        fd, buf, length = x[_A0], x[_A1], x[_A2]
        if fd not in (1, 2):
            x[_A0] = -EBADF & 0xFFFFFFFF
        elif buf + length > len(h.mem):
            x[_A0] = -EFAULT & 0xFFFFFFFF
        else:
            write(fd, bytes(h.mem[buf : buf + length]))
            x[_A0] = length
        return Outcome.CONTINUE, 0
    if number == SYS_NANOSLEEP:
        x[_A0] = _nanosleep(h.mem, x[_A0])
        return Outcome.CONTINUE, 0
    if number == SYS_EXIT:
        return Outcome.EXIT, x[_A0] & 0xFF
    if number == SYS_EXIT_GROUP:
        return Outcome.EXIT_GROUP, x[_A0] & 0xFF
    x[_A0] = -ENOSYS & 0xFFFFFFFF
    return Outcome.CONTINUE, 0


def _nanosleep(mem: bytearray, request: int) -> int:
    if request + 8 > len(mem):
        return -EFAULT & 0xFFFFFFFF
    sec = int.from_bytes(mem[request : request + 4], "little", signed=True)
    nsec = int.from_bytes(mem[request + 4 : request + 8], "little", signed=True)
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        return -EINVAL & 0xFFFFFFFF
    time.sleep(min(sec + nsec / 1e9, MAX_SLEEP))
    return 0
