"""Argument checks shared by the head builders: one line that says what came and what is allowed.

The sweep feeds hyper-parameters straight from Optuna, so a bad value must fail before any layer
is built, with a message a user can act on (STYLE: Keras Applications' argument checks).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence


def positive_int(name: str, value: object) -> int:
    """``value`` as an ``int`` if it is a whole number above zero (a width, a count of units)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def dropout_rate(name: str, value: object) -> float:
    """``value`` as a ``float`` if it is a dropout rate in [0, 1); 0 means no dropout at all."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 <= float(value) < 1.0  # NaN fails this comparison too
    ):
        raise ValueError(f"{name} must be a dropout rate in [0, 1), got {value!r}")
    return float(value)


def one_of(name: str, value: object, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed`` (exact, case-sensitive strings)."""
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value
