"""Debugging aids: stall reports and poisoning of reclaimed objects.

A grace period that does not end is the RCU bug users meet first: a thread
that sleeps inside a read section, or a qsbr thread that never reports a
quiescent state. Linux prints the holdout CPU and its stack after 21 seconds;
QEMU prints nothing and hangs. Here the waiting thread warns with
:class:`rcu.RcuStallWarning`, naming each holdout thread and showing where it
is now. The warning is attributed to the code that waits (the caller of
``synchronize``), or, where no user code waits (on the callback worker), to
the line the first holdout is at, so that ``file:line`` in the report always
points at user code rather than into the library or ``threading``.

Use after reclaim is the other: code that keeps a reference past its read
section and touches an object that a callback already tore down. In Python
the memory is never unsafe, but the object's *meaning* is gone (a recycled
buffer, a closed file). Objects that opt in by deriving from
:class:`Reclaimable` are poisoned when a debug domain reclaims them, so the
next attribute access raises :class:`rcu.UseAfterReclaimError` instead of
reading stale state.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from types import FrameType
from typing import Any

from rcu._reader import Reader
from rcu.errors import UseAfterReclaimError

__all__ = ["Reclaimable", "describe_holdouts", "poison", "warn_stall"]


def current_frames() -> dict[int, FrameType]:
    """``sys._current_frames()`` with the garbage collector held off.

    CPython 3.11 builds the result while it holds the runtime's thread-list
    lock; a collection triggered by that allocation can run code that takes
    the same lock, and the interpreter then hangs with the GIL held (fixed in
    later CPythons, gh-106883). Disabling the collector for the call is the
    fix those versions apply internally.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return sys._current_frames()
    finally:
        if enabled:
            gc.enable()


def describe_holdouts(readers: Iterable[Reader]) -> str:
    """One paragraph per holdout reader: thread name, state and current stack."""
    import traceback  # only for a stall report: not worth importing with rcu

    frames = current_frames()
    parts = []
    for reader in readers:
        thread = reader.thread
        kind = "daemon thread" if thread.daemon else "thread"
        head = (
            f"  {kind} {thread.name!r} (ident {thread.ident}), "
            f"read-section depth {reader.depth}, saw grace-period counter {reader.ctr}"
        )
        frame = frames.get(thread.ident) if thread.ident is not None else None
        if frame is None:
            parts.append(head + "\n    (no stack: the thread is not running Python code)")
        else:
            stack = "".join(traceback.format_stack(frame)).rstrip()
            parts.append(head + "\n" + "\n".join("  " + line for line in stack.splitlines()))
    return "\n".join(parts)


_RCU_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


@functools.cache
def _library_dirs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The standard library's directories, and the site-packages ones inside them.

    Found on first use, not at import: only a stall warning needs them, and
    ``sysconfig`` is not worth importing with rcu.
    """
    import sysconfig

    def dirs(*keys: str) -> tuple[str, ...]:
        return tuple({os.path.abspath(sysconfig.get_path(key)) + os.sep for key in keys})

    return dirs("stdlib", "platstdlib"), dirs("purelib", "platlib")


def _is_library(filename: str) -> bool:
    """Is ``filename`` this package or the standard library (not user code)?"""
    path = os.path.abspath(filename)
    if path.startswith(_RCU_DIR):
        return True
    stdlib, site = _library_dirs()
    return path.startswith(stdlib) and not path.startswith(site)


def _user_frame(frame: FrameType | None) -> FrameType | None:
    """The first frame from ``frame`` outwards that is user code, or None."""
    while frame is not None and _is_library(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


def warn_stall(message: Warning, holdouts: Sequence[Reader]) -> None:
    """Issue a stall warning at the waiting user code, else at the first holdout's line."""
    frame = _user_frame(sys._getframe(1))
    if frame is None:  # nobody's code waits here (the callback worker)
        current = current_frames()
        for reader in holdouts:
            ident = reader.thread.ident
            frame = _user_frame(current.get(ident)) if ident is not None else None
            if frame is not None:
                break
    if frame is None:
        warnings.warn(message, stacklevel=2)
        return
    module_globals = frame.f_globals
    warnings.warn_explicit(
        message,
        type(message),
        frame.f_code.co_filename,
        frame.f_lineno,
        module=module_globals.get("__name__", "<string>"),
        registry=module_globals.setdefault("__warningregistry__", {}),
    )


class Reclaimable:
    """Mixin for objects that a debug domain poisons when it reclaims them.

    After poisoning, reading or writing any attribute raises
    :class:`rcu.UseAfterReclaimError`. Classes that use ``__slots__`` get the
    same treatment. Outside debug mode the mixin costs nothing.
    """

    __slots__ = ()


_poisoned_classes: dict[type, type] = {}  # class -> its poisoned subclass
_poisoned: set[type] = set()  # the poisoned subclasses themselves


def _poisoned_class(cls: type) -> type:
    poisoned = _poisoned_classes.get(cls)
    if poisoned is None:

        def __getattribute__(self: object, name: str) -> Any:
            if name == "__class__":
                return object.__getattribute__(self, name)
            raise UseAfterReclaimError(
                f"{cls.__qualname__} object used after it was reclaimed "
                f"(attribute {name!r}): a reference outlived its read section"
            )

        def __setattr__(self: object, name: str, value: object) -> None:
            __getattribute__(self, name)

        # setdefault: two threads poisoning the first object of a class at
        # once agree on one poisoned class.
        poisoned = _poisoned_classes.setdefault(
            cls,
            type(
                f"Reclaimed{cls.__name__}",
                (cls,),
                {
                    "__slots__": (),
                    "__getattribute__": __getattribute__,
                    "__setattr__": __setattr__,
                    "__delattr__": __getattribute__,
                },
            ),
        )
        _poisoned.add(poisoned)
    return poisoned


def poison(obj: object) -> None:
    """Poison ``obj`` if it is a :class:`Reclaimable`; otherwise do nothing."""
    if isinstance(obj, Reclaimable):
        cls = type(obj)
        if cls not in _poisoned:  # poisoning twice changes nothing
            # A subclass with no new slots has the same layout: the
            # ``__class__`` assignment is allowed and atomic.
            obj.__class__ = _poisoned_class(cls)
