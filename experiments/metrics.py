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

Only numpy is used: these are small pure functions over 1-D arrays.
"""

from __future__ import annotations

import re
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
)  # then one "test_apcer_<type>" per attack type of the test split


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
    accepted = s >= t
    return float(accepted[y == ATTACK].mean()), float((~accepted[y == BONAFIDE]).mean())


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
    types = _attack_types(attack_types, y)
    t = _threshold(threshold)
    is_attack = y == ATTACK
    per_type = {
        str(kind): float((s[is_attack & (types == kind)] >= t).mean())
        for kind in np.unique(types[is_attack])
    }
    return max(per_type.values()), per_type


def bpcer(scores: ArrayLike, labels: ArrayLike, threshold: float) -> float:
    """Bona fide presentation classification error rate (ISO/IEC 30107-3).

    The fraction of bona fide samples rejected (score < threshold).
    """
    s, y = _checked(scores, labels)
    _require(y, bonafide=True, attack=False, what="BPCER")
    return float((s[y == BONAFIDE] < _threshold(threshold)).mean())


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
    DET (FAR, FRR) curves, and the candidates :func:`eer_threshold` chooses from.
    """
    thresholds, fa, fr, n_attack, n_bonafide = _error_counts(scores, labels)
    return thresholds, fa / n_attack, fr / n_bonafide


def eer_threshold(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """Equal error rate and its threshold, chosen as Bob's ``eer_threshold`` chooses it.

    Candidates are the distinct scores plus one value just above the maximum (rejecting all).
    The threshold is the candidate where |FPR - FNR| is smallest (FPR: attacks accepted, FNR:
    bona fide rejected); the EER is (FPR + FNR) / 2 there, since on finite sets the two rarely
    meet exactly. Bob returns mid-points between adjacent scores; this returns the upper score
    itself, which splits the dev set identically under the >= rule.

    Ties: the comparison uses exact integer counts. FPR - FNR falls strictly from one candidate
    to the next, so at most two adjacent candidates tie, one on each side of FPR = FNR; the one
    with the lower (FPR + FNR) / 2 wins, then the higher threshold (fewer attacks accepted).
    Bob's scan keeps the later tied point except at the end of a score list, and its summed
    float rates can split a tie, so the two choose the same (FPR, FNR) except on exact ties,
    where this never reports a higher EER than Bob.

    Raises ValueError unless both classes are present: the EER is undefined otherwise.
    """
    thresholds, fa, fr, n_attack, n_bonafide = _error_counts(scores, labels)
    # FPR - FNR and FPR + FNR scaled by n_attack * n_bonafide: integers, so ties are exact.
    gap = np.abs(fa * n_bonafide - fr * n_attack)
    total = fa * n_bonafide + fr * n_attack
    closest = np.flatnonzero(gap == gap.min())
    best = int(closest[total[closest] == total[closest].min()][-1])
    eer = (fa[best] / n_attack + fr[best] / n_bonafide) / 2
    return float(eer), float(thresholds[best])


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
    """Every PAD metric a trial logs: threshold chosen on dev at its EER, applied on test.

    Keys: ``dev_eer``, ``dev_threshold``, ``dev_acer`` (dev ACER at that threshold),
    ``test_accuracy``, ``test_auc``, ``test_apcer`` (worst type), ``test_bpcer``,
    ``test_acer``, ``test_hter``, then ``test_apcer_<type>`` for each attack type of the test
    split (type through :func:`metric_suffix`). The test split is never used for choosing.
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
    }
    for kind, value in sorted(per_type.items()):
        key = f"test_apcer_{metric_suffix(kind)}"
        if key in report:
            clash = [k for k in per_type if metric_suffix(k) == metric_suffix(kind)]
            raise ValueError(f"attack types {clash} share the metric name {key!r}: rename one")
        report[key] = value
    return report


def report_from_scores_frame(frame: pd.DataFrame) -> dict[str, float]:
    """:func:`pad_report` from a ``scores.csv`` frame (split, clip, subject, label, ...).

    Rows whose ``split`` is "dev" or "test" are used; any others (e.g. train) are ignored.
    This is how a logged trial's metrics are recomputed from its artifact.
    """
    if "split" not in frame.columns:
        raise ValueError("scores frame lacks column 'split': expected dev and test rows")
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
