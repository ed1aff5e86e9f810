"""Scores as the metrics take them: checked once, one entry per clip (:class:`ScoreSet`), and a
clip's score from its frames' (:func:`clip_scores`). Conventions: :mod:`experiments.metrics`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from core.constants import ATTACK, ATTACK_LABEL, BONAFIDE, BONAFIDE_LABEL

if TYPE_CHECKING:
    import pandas as pd

UNNAMED_ATTACK_TYPE = ATTACK_LABEL  # attack_type given to attacks whose type is missing


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
    out[labels == BONAFIDE] = BONAFIDE_LABEL
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
        odd = ~np.isin(names, (BONAFIDE_LABEL, ATTACK_LABEL))
        if odd.any():
            raise ValueError(
                f"scores frame column 'label' must be 'bonafide' or 'attack', got {names[odd][0]!r}"
            )
        return cls(
            scores=frame["score"].to_numpy(),
            labels=(names == BONAFIDE_LABEL).astype(np.int8),
            attack_types=frame["attack_type"].to_numpy(dtype=object),
        )


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
