"""Presentation-attack detection metrics (ISO/IEC 30107-3), computed as the Bob toolkit does.

Conventions, shared by every function here:

* ``scores`` is the probability of bona fide: higher means more bona fide.
* ``labels`` is 1 (or True) for bona fide and 0 (or False) for an attack.
* A sample is **accepted as bona fide when score >= threshold** (Bob's ``farfrr`` rule), so a
  score exactly at the threshold is accepted.
* ``attack_types`` names the presentation-attack instrument (PAI) species of each sample
  ("print/hand", "replay", ...); entries of bona fide samples are ignored.

ISO/IEC 30107-3 defines APCER (per PAI species; the worst species is reported) and BPCER.
ACER, their average, is the OULU-NPU / IJCB 2017 competition figure that the standard itself
does not define; HTER pools all attacks (Replay-Attack protocol). The decision threshold is
chosen on dev at its EER and applied unchanged on test (SPEC §4), which :func:`pad_report` does.
BPCER20 and BPCER100 (BPCER where the worst species' APCER is at most 5 % or 1 %) are the
operating points papers quote beside it.

Thresholds are chosen exactly as Bob chooses them (``bob.measure`` 6.1 ``eer_threshold`` and
``far_threshold``, ``bob.pad.base``'s ``apcer_threshold``), float for float: the tests compare
against ``bob.measure`` itself. Bob is not imported here; numpy does the work (scipy only for
a confidence level other than 95 %).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    import pandas as pd

BONAFIDE = 1
ATTACK = 0
BONAFIDE_TYPE = "bonafide"  # attack_type of bona fide clips, as in core.clips.Clip
UNNAMED_ATTACK_TYPE = "attack"  # attack_type given to attacks whose type is missing
BPCER_OPERATING_POINTS = (20, 100)  # BPCER20, BPCER100: worst-species APCER <= 1/20, 1/100
Z_95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975): two-sided 95 % normal quantile
REPORT_KEYS = (
    "dev_eer",
    "dev_threshold",
    "dev_acer",
    "test_accuracy",
    "test_auc",
    "test_apcer",
    "test_bpcer",
    "test_acer",
    "test_hter",
    "test_eer",
    "dev_bpcer20_threshold",
    "test_bpcer20",
    "test_apcer20",
    "dev_bpcer100_threshold",
    "test_bpcer100",
    "test_apcer100",
    "test_apcer_ci_low",
    "test_apcer_ci_high",
    "test_bpcer_ci_low",
    "test_bpcer_ci_high",
    "test_hter_ci_low",
    "test_hter_ci_high",
)  # then one "test_apcer_<type>" per attack type of the test split
SETTING_COLUMNS = ("fold", "repeat")  # scores.csv columns of a trial evaluated several times


# --------------------------------------------------------------------------- input checks


def _scores(scores: ArrayLike, name: str = "scores") -> np.ndarray:
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers (probability of bona fide)") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: nothing to evaluate")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(
            f"{name} must be finite, got {arr[bad[0]]} at index {bad[0]} ({bad.size} in all)"
        )
    return arr


def _labels(labels: ArrayLike, n: int) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be a 1-D array, got shape {arr.shape}")
    if arr.size != n:
        raise ValueError(f"labels has {arr.size} entries but scores has {n}: lengths must match")
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"labels must be 1/True (bona fide) or 0/False (attack), got dtype {arr.dtype}"
        )
    odd = ~np.isin(arr, (0, 1))
    if odd.any():
        raise ValueError(
            f"labels must be 1/True (bona fide) or 0/False (attack), got {arr[odd][0].item()!r}"
        )
    return arr.astype(np.int8)


def _attack_types(attack_types: ArrayLike | None, labels: np.ndarray) -> np.ndarray:
    """Attack types as str; bona fide entries become "bonafide", missing attack types "attack"."""
    if attack_types is None:
        raw = np.full(labels.size, UNNAMED_ATTACK_TYPE, dtype=object)
    else:
        raw = np.asarray(attack_types, dtype=object)
        if raw.ndim != 1:
            raise ValueError(f"attack_types must be a 1-D array, got shape {raw.shape}")
        if raw.size != labels.size:
            raise ValueError(
                f"attack_types has {raw.size} entries but scores has {labels.size}: "
                "lengths must match"
            )
    out = np.array([_type_name(t) for t in raw], dtype=object)
    out[labels == BONAFIDE] = BONAFIDE_TYPE
    return out.astype(str)


def _type_name(value: Any) -> str:
    # pandas reads an empty CSV cell as NaN; None or "" mean the same: type unknown.
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value) == "":
        return UNNAMED_ATTACK_TYPE
    return str(value)


def _threshold(threshold: float) -> float:
    value = float(threshold)
    if np.isnan(value):
        raise ValueError("threshold must be a number, got NaN")
    return value


def _checked(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = _scores(scores)
    return s, _labels(labels, s.size)


def _require(labels: np.ndarray, bonafide: bool, attack: bool, what: str) -> None:
    if bonafide and not (labels == BONAFIDE).any():
        raise ValueError(f"no bona fide samples: {what} is undefined without them")
    if attack and not (labels == ATTACK).any():
        raise ValueError(f"no attack samples: {what} is undefined without them")


# --------------------------------------------------------------------------- score sets


@dataclass(frozen=True, eq=False)
class ScoreSet:
    """Scores of one split (dev or test), one entry per clip, checked once on construction.

    ``labels`` becomes int8 (1 bona fide, 0 attack); ``attack_types`` becomes str, with
    "bonafide" for bona fide entries and "attack" for attacks of missing type. ``attack_types``
    may be left out when every attack is of one kind.
    """

    scores: np.ndarray
    labels: np.ndarray
    attack_types: np.ndarray = None  # type: ignore[assignment]  # None: every attack one type

    def __post_init__(self) -> None:
        scores, labels = _checked(self.scores, self.labels)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "attack_types", _attack_types(self.attack_types, labels))

    def __len__(self) -> int:
        return int(self.scores.size)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> ScoreSet:
        """Build from a frame with columns ``label`` (bonafide|attack), ``attack_type``, ``score``.

        That is the layout of the ``scores.csv`` artifact each trial logs, so the logged metrics
        can be recomputed from it.
        """
        missing = [c for c in ("label", "attack_type", "score") if c not in frame.columns]
        if missing:
            raise ValueError(
                f"scores frame lacks column(s) {missing}: expected label, attack_type, score"
            )
        names = frame["label"].astype(str).str.strip().str.lower().to_numpy()
        odd = ~np.isin(names, ("bonafide", "attack"))
        if odd.any():
            raise ValueError(
                f"scores frame column 'label' must be 'bonafide' or 'attack', got {names[odd][0]!r}"
            )
        return cls(
            scores=frame["score"].to_numpy(),
            labels=(names == "bonafide").astype(np.int8),
            attack_types=frame["attack_type"].to_numpy(dtype=object),
        )


# --------------------------------------------------------------------------- error rates


def far_frr(scores: ArrayLike, labels: ArrayLike, threshold: float) -> tuple[float, float]:
    """(FAR, FRR) at ``threshold``: attacks accepted (all types pooled), bona fide rejected.

    Bob's ``farfrr``: a score >= threshold is accepted. Both classes must be present.
    """
    s, y = _checked(scores, labels)
    _require(y, bonafide=True, attack=True, what="FAR/FRR")
    t = _threshold(threshold)
    attacks, bonafide = s[y == ATTACK], s[y == BONAFIDE]
    return int((attacks >= t).sum()) / attacks.size, int((bonafide < t).sum()) / bonafide.size


def apcer(
    scores: ArrayLike, labels: ArrayLike, attack_types: ArrayLike | None, threshold: float
) -> tuple[float, dict[str, float]]:
    """Attack presentation classification error rate (ISO/IEC 30107-3), per PAI species.

    APCER of a species is the fraction of its attacks accepted as bona fide. The standard asks
    for the worst species, so the maximum is returned first, then ``{attack_type: APCER}``.
    Pooling would let a common easy attack hide a rare one that always gets through.
    """
    s, y = _checked(scores, labels)
    _require(y, bonafide=False, attack=True, what="APCER")
    counts = _species_errors(s, y, _attack_types(attack_types, y), _threshold(threshold))
    per_type = {kind: accepted / n for kind, (accepted, n) in counts.items()}
    return max(per_type.values()), per_type


def _species_errors(
    s: np.ndarray, y: np.ndarray, types: np.ndarray, t: float
) -> dict[str, tuple[int, int]]:
    """``{attack_type: (attacks accepted, attacks)}`` at threshold ``t``, types sorted."""
    is_attack = y == ATTACK
    counts = {}
    for kind in np.unique(types[is_attack]):
        species = s[is_attack & (types == kind)]
        counts[str(kind)] = (int((species >= t).sum()), int(species.size))
    return counts


def bpcer(scores: ArrayLike, labels: ArrayLike, threshold: float) -> float:
    """Bona fide presentation classification error rate (ISO/IEC 30107-3).

    The fraction of bona fide samples rejected (score < threshold).
    """
    s, y = _checked(scores, labels)
    _require(y, bonafide=True, attack=False, what="BPCER")
    bonafide = s[y == BONAFIDE]
    return int((bonafide < _threshold(threshold)).sum()) / bonafide.size


def acer(
    scores: ArrayLike, labels: ArrayLike, attack_types: ArrayLike | None, threshold: float
) -> float:
    """Average classification error rate: (max-species APCER + BPCER) / 2.

    Not defined by ISO/IEC 30107-3 but the usual single PAD figure (OULU-NPU, Bob's
    ``bob.pad.base``); it averages the worst-species APCER, not the pooled one.
    """
    worst, _ = apcer(scores, labels, attack_types, threshold)
    return (worst + bpcer(scores, labels, threshold)) / 2


def hter(scores: ArrayLike, labels: ArrayLike, threshold: float) -> float:
    """Half total error rate, (FAR + FRR) / 2, with all attack types pooled into FAR.

    The Replay-Attack protocol's figure. It differs from ACER when attack types are unbalanced
    or unequally hard, since ACER takes the worst type rather than the pooled rate.
    """
    far, frr = far_frr(scores, labels, threshold)
    return (far + frr) / 2


def accuracy(scores: ArrayLike, labels: ArrayLike, threshold: float) -> float:
    """Fraction of samples classified correctly at ``threshold`` (score >= threshold: bona fide)."""
    s, y = _checked(scores, labels)
    predicted = (s >= _threshold(threshold)).astype(np.int8)
    return float((predicted == y).mean())


def auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve, threshold-free: P(bona fide score > attack score).

    Computed as the Mann-Whitney U statistic from average ranks, so a tie between a bona fide
    and an attack score counts 1/2 (the trapezoidal ROC area).
    """
    s, y = _checked(scores, labels)
    _require(y, bonafide=True, attack=True, what="AUC")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(counts)  # 1-based rank of each tie group's last member
    ranks = (last_rank - (counts - 1) / 2)[inverse]  # average rank within the group
    n_bonafide = int((y == BONAFIDE).sum())
    n_attack = y.size - n_bonafide
    u = ranks[y == BONAFIDE].sum() - n_bonafide * (n_bonafide + 1) / 2
    return float(u / (n_bonafide * n_attack))


def _error_counts(
    scores: ArrayLike, labels: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Candidate thresholds and, at each, attacks accepted and bona fide rejected (counts)."""
    s, y = _checked(scores, labels)
    _require(y, bonafide=True, attack=True, what="the EER")
    attacks = np.sort(s[y == ATTACK])
    bonafide = np.sort(s[y == BONAFIDE])
    # Every distinct score is a threshold (>= accepts it), plus one just above the maximum that
    # rejects everything; together they give every distinct (FAR, FRR) pair of Bob's scan.
    thresholds = np.append(np.unique(s), np.nextafter(s.max(), np.inf))
    attacks_accepted = attacks.size - np.searchsorted(attacks, thresholds, side="left")
    bonafide_rejected = np.searchsorted(bonafide, thresholds, side="left")
    return thresholds, attacks_accepted, bonafide_rejected, attacks.size, bonafide.size


def far_frr_curve(
    scores: ArrayLike, labels: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, FAR, FRR) at every candidate threshold, thresholds ascending.

    FAR falls from 1 to 0 and FRR rises from 0 to 1: the points of the ROC (FAR, 1 - FRR) and
    DET (FAR, FRR) curves. They are the (FAR, FRR) pairs :func:`eer_threshold` chooses among,
    though it places each threshold at a midpoint between scores, as Bob does, not on a score.
    """
    thresholds, fa, fr, n_attack, n_bonafide = _error_counts(scores, labels)
    return thresholds, fa / n_attack, fr / n_bonafide


def eer_threshold(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """Equal error rate and its threshold, as Bob chooses and reports them.

    The threshold is ``bob.measure.eer_threshold(negatives=attack scores, positives=bona fide
    scores)`` (bob.measure 6.1), reproduced float for float. The EER returned is the HTER at that
    threshold, (FAR + FRR) / 2 by :func:`far_frr`: what ``bob measure metrics --criterion eer``
    prints as the development HTER. (bob.measure has no function for this number; its
    ``eer_rocch`` is a different figure, read off the ROC convex hull.)

    Bob's scan walks the distinct scores u1 < u2 < ... < uD. State 0 accepts everything
    (threshold u1, FAR 1, FRR 0); state j has passed every score <= uj and sits at the midpoint
    (uj + uj+1) / 2, or at uD itself for j = D. FAR and FRR are running float sums of 1/n steps,
    and the state with the smallest |FAR - FRR| wins: among the states before one class is used
    up, the last of equal minima; the state where a class runs out wins only if strictly
    smaller. So a separable set gets the midpoint of its gap (EER 0), a reversed one (every
    attack above every bona fide) the midpoint between the classes (EER 1), and all-equal scores
    their common value (EER 1/2). Rejecting everything is never chosen: state 0 already scores
    |1 - 0|. Float rounding of the running sums can split what would be an exact tie, even
    between states of very different EER (attacks 0.1 0.1 0.5 0.9 0.9, bona fide 0.5 0.5: the
    gaps 0.6 at 0.3 and 0.6 at 0.7 come out as 0.6000000000000001 and 0.5999999999999999, so
    Bob takes 0.7, EER 0.7, over 0.3, EER 0.3), and the midpoint of two adjacent floats rounds
    onto one of them. Both are kept, so the threshold and the EER equal Bob's.

    Raises ValueError unless both classes are present: the EER is undefined otherwise.
    """
    s, y = _checked(scores, labels)
    _require(y, bonafide=True, attack=True, what="the EER")
    attacks, bonafide = np.sort(s[y == ATTACK]), np.sort(s[y == BONAFIDE])
    threshold = _bob_eer_threshold(attacks, bonafide)
    far = int((attacks >= threshold).sum()) / attacks.size
    frr = int((bonafide < threshold).sum()) / bonafide.size
    return (far + frr) / 2, threshold


def _bob_eer_threshold(attacks: np.ndarray, bonafide: np.ndarray) -> float:
    """``bob.measure._minimizing_threshold(..., "absolute-difference")``; inputs sorted, non-empty.

    Bob loops over the scores; this computes every state of that loop at once and then picks
    the winner with the loop's rules, so the floats involved are the same.
    """
    values = np.unique(np.concatenate((attacks, bonafide)))  # u1 < ... < uD
    # Bob's running sums, `far -= 1 / n` per attack passed and `frr += 1 / m` per bona fide
    # passed: a cumulative sum adds in the same order, so each partial sum is the same float.
    far_after = np.cumsum(np.concatenate(([1.0], np.full(attacks.size, -(1.0 / attacks.size)))))
    frr_after = np.cumsum(np.concatenate(([0.0], np.full(bonafide.size, 1.0 / bonafide.size))))
    attacks_passed = np.concatenate(([0], np.searchsorted(attacks, values, side="right")))
    bonafide_passed = np.concatenate(([0], np.searchsorted(bonafide, values, side="right")))
    gap = np.abs(far_after[attacks_passed] - frr_after[bonafide_passed])  # state 0 .. D
    thresholds = np.concatenate((values[:1], (values[:-1] + values[1:]) / 2, values[-1:]))
    # The loop runs while both classes have scores left, keeping the last of equal minima
    # (`<=`); the state where a class runs out is checked after it with `<`.
    last = int(np.searchsorted(values, min(attacks[-1], bonafide[-1]))) + 1
    best = int(np.flatnonzero(gap[:last] == gap[:last].min())[-1])
    if gap[last] < gap[best]:
        best = last
    return float(thresholds[best])


def _bob_far_threshold(attacks: np.ndarray, far_value: float) -> float:
    """``bob.measure.far_threshold(attacks, [], far_value)``; ``attacks`` sorted, non-empty.

    The lowest attack score at which the fraction of attacks at or above it is at most
    ``far_value``, or just above the highest attack when none is. Bob refuses fewer than two
    attacks; one works the same way here (any ``far_value`` < 1 then gives just above it).
    """
    if far_value >= 1 - np.finfo(np.float64).eps:  # Bob's shortcut: accept every attack
        return float(np.nextafter(attacks[0], attacks[0] - 1))
    values = np.unique(attacks)[::-1]  # descending, as Bob walks them
    accepted = attacks.size - np.searchsorted(attacks, values, side="left")
    too_many = np.flatnonzero(accepted / attacks.size > far_value)  # Bob's float comparison
    stop = int(too_many[0]) if too_many.size else values.size
    if stop == 0:
        return float(np.nextafter(attacks[-1], attacks[-1] + 1))
    return float(values[stop - 1])


def apcer_threshold(
    scores: ArrayLike, labels: ArrayLike, attack_types: ArrayLike | None, apcer_target: float
) -> float:
    """Threshold at which every PAI species' APCER is at most ``apcer_target``, as Bob sets it.

    Each species gets ``bob.measure.far_threshold(species scores, bona fide, apcer_target)``
    and the highest wins, so the worst species meets the target too: ``bob.pad.base``'s
    ``apcer_threshold``, behind its ``bpcer20`` criterion (target 1/20). BPCER at this
    threshold is BPCER20 for a target of 0.05 and BPCER100 for 0.01 (ISO/IEC 30107-3 reporting).
    Bona fide scores play no part. A species with fewer than 1/target attacks can accept none,
    so the threshold lands just above its highest score. A species with a single attack, which
    Bob refuses, is handled the same way.
    """
    s, y = _checked(scores, labels)
    _require(y, bonafide=False, attack=True, what="the APCER threshold")
    target = float(apcer_target)
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"apcer_target must be a rate in [0, 1], got {apcer_target!r}")
    types = _attack_types(attack_types, y)
    is_attack = y == ATTACK
    return max(
        _bob_far_threshold(np.sort(s[is_attack & (types == kind)]), target)
        for kind in np.unique(types[is_attack])
    )


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


# --------------------------------------------------------------------------- video scores


def clip_scores(
    frame_scores: ArrayLike, clip_index: ArrayLike, n_clips: int | None = None
) -> np.ndarray:
    """Score of each clip as the mean of its frame scores.

    Frame heads score single frames and sequence heads whole clips; averaging frames (SPEC §4)
    puts both at video level so they compare. ``clip_index[i]`` is the clip (0 .. n_clips - 1)
    of frame ``i``; the result has one entry per clip in index order. ``n_clips`` defaults to
    ``max(clip_index) + 1``; every clip must have at least one frame.
    """
    s = _scores(frame_scores, "frame_scores")
    index = np.asarray(clip_index)
    if index.ndim != 1 or index.size != s.size:
        raise ValueError(
            f"clip_index has shape {index.shape} but frame_scores has {s.size} entries: "
            "one clip index per frame is expected"
        )
    if index.dtype.kind not in "iu":
        raise ValueError(f"clip_index must be integers, got dtype {index.dtype}")
    if index.min() < 0:
        raise ValueError(f"clip_index must be >= 0, got {index.min()}")
    count = int(index.max()) + 1 if n_clips is None else int(n_clips)
    if index.max() >= count:
        raise ValueError(f"clip_index holds {index.max()} but n_clips is {count}")
    frames = np.bincount(index, minlength=count)
    empty = np.flatnonzero(frames == 0)
    if empty.size:
        raise ValueError(f"clip(s) {empty[:5].tolist()} have no frames: their score is undefined")
    return np.bincount(index, weights=s, minlength=count) / frames


# --------------------------------------------------------------------------- report


def metric_suffix(attack_type: str) -> str:
    """Attack type as a metric-name suffix: lower case, runs of other than [a-z0-9_] -> "_"."""
    return re.sub(r"[^a-z0-9_]+", "_", attack_type.lower()).strip("_") or "unnamed"


def pad_report(dev: ScoreSet, test: ScoreSet) -> dict[str, float]:
    """Every PAD metric a trial logs: thresholds chosen on dev, applied unchanged on test.

    At the dev EER threshold (:func:`eer_threshold`): ``dev_eer``, ``dev_threshold``,
    ``dev_acer``, then on test ``test_accuracy``, ``test_apcer`` (worst species),
    ``test_bpcer``, ``test_acer``, ``test_hter`` and ``test_apcer_<type>`` for each attack type
    of the test split (type through :func:`metric_suffix`).

    Threshold-free or chosen on test itself: ``test_auc`` and ``test_eer`` (the test split's
    own EER at its own threshold, the figure many papers quote; not an operating point).

    ISO/IEC 30107-3 operating points: ``dev_bpcer20_threshold`` is where every dev species'
    APCER is at most 5 % (:func:`apcer_threshold`); ``test_bpcer20`` is test BPCER there and
    ``test_apcer20`` the test worst-species APCER, which shows how far the operating point
    drifted from 5 %. The same for ``bpcer100`` and 1 %.

    95 % intervals at the dev EER threshold: ``test_apcer_ci_low``/``_high`` (Wilson, for the
    worst species' own count; on a tie, the species with fewer attacks), ``test_bpcer_ci_*``
    (Wilson) and ``test_hter_ci_*`` (:func:`hter_interval`).
    """
    for name, split in (("dev", dev), ("test", test)):
        if not (split.labels == BONAFIDE).any() or not (split.labels == ATTACK).any():
            raise ValueError(
                f"{name} split needs bona fide and attack clips, got "
                f"{int((split.labels == BONAFIDE).sum())} bona fide and "
                f"{int((split.labels == ATTACK).sum())} attack: EER and APCER are undefined"
            )
    eer, threshold = eer_threshold(dev.scores, dev.labels)
    worst, per_type = apcer(test.scores, test.labels, test.attack_types, threshold)
    test_bpcer = bpcer(test.scores, test.labels, threshold)
    report = {
        "dev_eer": eer,
        "dev_threshold": threshold,
        "dev_acer": acer(dev.scores, dev.labels, dev.attack_types, threshold),
        "test_accuracy": accuracy(test.scores, test.labels, threshold),
        "test_auc": auc(test.scores, test.labels),
        "test_apcer": worst,
        "test_bpcer": test_bpcer,
        "test_acer": (worst + test_bpcer) / 2,
        "test_hter": hter(test.scores, test.labels, threshold),
        "test_eer": eer_threshold(test.scores, test.labels)[0],
    }
    for point in BPCER_OPERATING_POINTS:
        at = apcer_threshold(dev.scores, dev.labels, dev.attack_types, 1 / point)
        report[f"dev_bpcer{point}_threshold"] = at
        report[f"test_bpcer{point}"] = bpcer(test.scores, test.labels, at)
        report[f"test_apcer{point}"] = apcer(test.scores, test.labels, test.attack_types, at)[0]
    report.update(_intervals(test, threshold))
    for kind, value in sorted(per_type.items()):
        key = f"test_apcer_{metric_suffix(kind)}"
        if key in REPORT_KEYS:
            raise ValueError(f"attack type {kind!r} gives the metric name {key!r}: rename it")
        if key in report:
            clash = [k for k in per_type if metric_suffix(k) == metric_suffix(kind)]
            raise ValueError(f"attack types {clash} share the metric name {key!r}: rename one")
        report[key] = value
    return report


def _intervals(test: ScoreSet, threshold: float) -> dict[str, float]:
    """95 % intervals of test APCER (worst species), BPCER and HTER at ``threshold``."""
    counts = _species_errors(test.scores, test.labels, test.attack_types, threshold)
    # Worst APCER first; on a tie the species with fewer attacks, the less certain estimate.
    worst = min(counts, key=lambda kind: (-counts[kind][0] / counts[kind][1], counts[kind][1]))
    bonafide, attacks = test.scores[test.labels == BONAFIDE], test.scores[test.labels == ATTACK]
    rejected, accepted = int((bonafide < threshold).sum()), int((attacks >= threshold).sum())
    apcer_ci = wilson_interval(*counts[worst])
    bpcer_ci = wilson_interval(rejected, bonafide.size)
    hter_ci = hter_interval(accepted, attacks.size, rejected, bonafide.size)
    return {
        "test_apcer_ci_low": apcer_ci[0],
        "test_apcer_ci_high": apcer_ci[1],
        "test_bpcer_ci_low": bpcer_ci[0],
        "test_bpcer_ci_high": bpcer_ci[1],
        "test_hter_ci_low": hter_ci[0],
        "test_hter_ci_high": hter_ci[1],
    }


def summarise(reports: Sequence[dict[str, float]]) -> dict[str, float]:
    """Figures over several settings (folds, repeats): each figure's mean, its std as ``_std``.

    One report is returned as it is. A figure missing from some reports (an attack species
    absent from one fold's test split) is averaged over those that have it. Means add in the
    order given, so the same reports in the same order give the same floats.
    """
    if len(reports) == 1:
        return dict(reports[0])
    summary: dict[str, float] = {}
    for key in dict.fromkeys(k for report in reports for k in report):  # first-seen order
        summary[key], summary[f"{key}_std"] = mean_std([r[key] for r in reports if key in r])
    return summary


def report_from_scores_frame(frame: pd.DataFrame) -> dict[str, float]:
    """:func:`pad_report` from a ``scores.csv`` frame (split, clip, subject, label, ...).

    Rows whose ``split`` is "dev" or "test" are used; any others (e.g. train) are ignored.
    With ``fold``/``repeat`` columns (:data:`SETTING_COLUMNS`), each setting is reported on its
    own, in the order its rows first appear, then :func:`summarise` gives mean and std. This is
    how a logged trial's metrics are recomputed from its artifact.
    """
    if "split" not in frame.columns:
        raise ValueError("scores frame lacks column 'split': expected dev and test rows")
    columns = [c for c in SETTING_COLUMNS if c in frame.columns]
    if columns:
        groups = frame.groupby(columns, sort=False, dropna=False)
        return summarise([_setting_report(rows) for _, rows in groups])
    return _setting_report(frame)


def _setting_report(frame: pd.DataFrame) -> dict[str, float]:
    sets = {}
    for name in ("dev", "test"):
        rows = frame[frame["split"] == name]
        if rows.empty:
            raise ValueError(f"scores frame has no rows with split == {name!r}")
        try:
            sets[name] = ScoreSet.from_frame(rows)
        except ValueError as err:
            raise ValueError(f"{name} split: {err}") from None
    return pad_report(sets["dev"], sets["test"])
