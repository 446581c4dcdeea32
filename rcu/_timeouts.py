"""Durations: one validation rule for every timeout and delay of the package.

Every duration the package accepts (``timeout`` arguments, ``stall_timeout``,
``batch_delay``, ``exit_timeout``) goes through :func:`duration`. A duration
is a non-negative int or float, in seconds. ``float("inf")``, and any
duration longer than the threading module can wait (``threading.TIMEOUT_MAX``,
about 292 years on Linux), mean *no limit*, exactly like ``None`` where
``None`` is accepted: a lock or condition given such a timeout would raise
``OverflowError`` instead of waiting, so the package never hands one over.
Waits convert deadlines back with :func:`remaining`, which never returns
more than a threading primitive accepts.
"""

from __future__ import annotations

import math
import threading
import time

__all__ = ["LONGEST", "deadline_after", "duration", "remaining"]

#: The longest finite duration the package waits for; longer means no limit.
#: One second below ``threading.TIMEOUT_MAX``, so that the time left until a
#: deadline, recomputed later in floating point, still fits.
LONGEST = threading.TIMEOUT_MAX - 1.0


def duration(name: str, value: object, *, allow_none: bool = True) -> float | None:
    """Validate the duration argument ``name``; None means no limit.

    Raises TypeError for a non-number (and for None unless ``allow_none``),
    ValueError for a negative number or NaN. Returns None for None, infinity
    and durations over :data:`LONGEST`, else the duration as a float.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        kinds = "a number or None" if allow_none else "a number"
        raise TypeError(f"{name} must be {kinds}, not {type(value).__name__}")
    # Compared before any conversion: an int such as 10**400 has no float.
    if (isinstance(value, float) and math.isnan(value)) or value < 0:
        raise ValueError(f"{name} must be >= 0, not {value!r}")
    if value > LONGEST:
        return None
    return float(value)


def deadline_after(timeout: object) -> float | None:
    """Validate a ``timeout`` argument and turn it into a monotonic deadline (None: none)."""
    seconds = duration("timeout", timeout)
    return None if seconds is None else time.monotonic() + seconds


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (0 once passed), for a threading wait; None: no limit."""
    if deadline is None:
        return None
    return min(max(0.0, deadline - time.monotonic()), LONGEST)
