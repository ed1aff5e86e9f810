"""Counts and rates in words, as a person writes them: ``1 clip``, ``2 clips``, ``56.3``; and the
names a person most likely meant by a mistyped one."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, plural (``noun + "s"`` unless given) unless ``n`` is 1."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def percent(rate: float, digits: int = 1) -> str:
    """A rate in percent to ``digits`` decimals, without the sign, rounded half up as papers round:
    9 of 16 bona fide clips rejected is 56.3 (Python's format rounds half to even, 56.2, so one
    table of k/16 rates rounded some ties down and others up). What is rounded is the shortest
    decimal that reads back as ``rate``, shifted two places: ``100 * rate`` in binary can fall
    below the tie (100 * 23/80 is 28.749999999999996). ``nan`` for what is no number."""
    value = float(rate)
    if not math.isfinite(value):
        return str(value)
    step = Decimal(1).scaleb(-digits)
    return str(Decimal(repr(value)).scaleb(2).quantize(step, ROUND_HALF_UP))


def meant(typed: str, names: Iterable[object], n: int = 4) -> list[str]:
    """The ``n`` of ``names`` closest to ``typed`` in any case (``MSU``, ``msuu`` for ``msu``;
    ``ocmi`` for ``ocim``), closest first, ties in the order of ``names``; none where no name is
    close."""
    lower = {str(name).lower(): str(name) for name in names}
    typed = typed.lower()
    close = difflib.get_close_matches(typed, list(lower), n=n, cutoff=0.6)
    score = {c: difflib.SequenceMatcher(None, typed, c).ratio() for c in close}
    order = list(lower)
    return [lower[c] for c in sorted(close, key=lambda c: (-score[c], order.index(c)))]
