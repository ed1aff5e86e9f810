"""How sure a figure is: Wilson intervals of error rates, the Bengio-Mariethoz interval of HTER,
and mean and standard deviation over folds or repeats."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

Z_95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975): two-sided 95 % normal quantile


# --------------------------------------------------------------------------- uncertainty


def _z(confidence: float) -> float:
    """Two-sided normal quantile for ``confidence`` (0.95 -> 1.96)."""
    level = float(confidence)
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if level == 0.95:
        return Z_95
    from scipy.stats import norm  # only for other levels: the usual 95 % needs no scipy

    return float(norm.ppf(0.5 + level / 2))


def _count(value: Any, name: str) -> int:
    try:
        whole = not isinstance(value, bool) and float(value).is_integer()
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise ValueError(f"{name} must be a whole number of samples, got {value!r}")
    return int(value)


def wilson_interval(errors: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (Wilson 1927) for an error rate of ``errors`` out of ``n``.

    Unlike the normal (Wald) interval it stays inside [0, 1] and has a width at 0 or n errors:
    0 of 10 gives (0, 0.278) at 95 %. The bounds are exactly 0 and 1 when errors is 0 or n.
    """
    k, total = _count(errors, "errors"), _count(n, "n")
    if total < 1:
        raise ValueError(f"n must be at least 1, got {n!r}")
    if not 0 <= k <= total:
        raise ValueError(f"errors must be between 0 and n = {total}, got {errors!r}")
    z = _z(confidence)
    p, z2 = k / total, z * z
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = z / (1 + z2 / total) * np.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    low = 0.0 if k == 0 else max(0.0, float(centre - half))
    high = 1.0 if k == total else min(1.0, float(centre + half))
    return low, high


def hter_interval(
    false_accepts: int,
    n_attack: int,
    false_rejects: int,
    n_bonafide: int,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Confidence interval of HTER = (FAR + FRR) / 2 (Bengio & Mariethoz, Odyssey 2004).

    FAR and FRR are independent binomial proportions (attacks and bona fide are different
    samples), so HTER has variance FAR(1 - FAR) / (4 n_attack) + FRR(1 - FRR) / (4 n_bonafide),
    and the interval is HTER -/+ z sigma, clipped to [0, 1]. Being a normal approximation it
    has zero width when both rates are 0 (or 1); read it with the Wilson intervals of APCER and
    BPCER, which do not.
    """
    fa, n_a = _count(false_accepts, "false_accepts"), _count(n_attack, "n_attack")
    fr, n_b = _count(false_rejects, "false_rejects"), _count(n_bonafide, "n_bonafide")
    for name, k, total in (("false_accepts", fa, n_a), ("false_rejects", fr, n_b)):
        if total < 1 or not 0 <= k <= total:
            raise ValueError(f"{name} must be between 0 and its sample count {total} (>= 1)")
    far, frr = fa / n_a, fr / n_b
    sigma = np.sqrt(far * (1 - far) / (4 * n_a) + frr * (1 - frr) / (4 * n_b))
    centre, half = (far + frr) / 2, _z(confidence) * float(sigma)
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_std(values: ArrayLike) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1) of a metric over repeated runs or folds.

    A single value has no spread to estimate: its deviation is reported as 0.0.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"values must be a non-empty 1-D list of numbers, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"values must be finite, got {arr[~np.isfinite(arr)][0]}")
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), std
