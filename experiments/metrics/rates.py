"""Error rates at a threshold (APCER per species, BPCER, ACER, HTER, accuracy), AUC, and the
thresholds chosen exactly as Bob chooses them. Conventions: :mod:`experiments.metrics`."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from core.constants import ATTACK, BONAFIDE
from experiments.metrics.scores import _attack_types, _checked, _require, _threshold

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


def tpr_at_fpr(scores: ArrayLike, labels: ArrayLike, fpr: float) -> float:
    """TPR at FPR = ``fpr``, as the cross-domain papers print it (SSDG, SSAN, FLIP, SAFAS).

    The positive class is bona fide, as in those papers' code (label 1 = real, the score its
    probability): the largest fraction of bona fide accepted at any threshold that accepts at most
    ``fpr`` of the attacks (all species pooled), i.e. ``max(tpr[fpr_curve <= fpr])`` of
    scikit-learn's ``roc_curve``, 0 when only rejecting everything keeps FPR that low. The
    threshold is chosen on the scores themselves: a figure to compare with papers, not an
    operating point.
    """
    s, y = _checked(scores, labels)
    _require(y, bonafide=True, attack=True, what="TPR at a FPR")
    target = float(fpr)
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"fpr must be a rate in [0, 1], got {fpr!r}")
    attacks, bonafide = np.sort(s[y == ATTACK]), np.sort(s[y == BONAFIDE])
    thresholds = np.unique(s)  # accepting score >= t; above the highest, nothing is accepted
    false_positive = (
        attacks.size - np.searchsorted(attacks, thresholds, side="left")
    ) / attacks.size
    true_positive = (
        bonafide.size - np.searchsorted(bonafide, thresholds, side="left")
    ) / bonafide.size
    allowed = true_positive[false_positive <= target]
    return float(allowed.max()) if allowed.size else 0.0


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
