"""How much work the torture tier does: ``TORTURE_SCALE`` (default 1) multiplies it.

At 1, ``python -m pytest -m torture`` takes a few minutes on two cores; CI
runs a shorter form with a smaller scale. Every torture test sizes its run
with :func:`scaled`, so one knob sets the whole tier.
"""

from __future__ import annotations

import os


def torture_scale() -> float:
    """The factor from ``TORTURE_SCALE`` (a positive number; 1 if unset)."""
    text = os.environ.get("TORTURE_SCALE", "1")
    try:
        scale = float(text)
    except ValueError:
        raise ValueError(f"TORTURE_SCALE must be a positive number, not {text!r}") from None
    if not 0 < scale < float("inf"):
        raise ValueError(f"TORTURE_SCALE must be a positive number, not {text!r}")
    return scale


def scaled(amount: float, minimum: int = 1) -> int:
    """``amount`` times the torture scale, rounded, at least ``minimum``."""
    return max(minimum, round(amount * torture_scale()))
