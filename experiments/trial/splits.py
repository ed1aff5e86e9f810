"""A split as a head reads it: inputs, a label per input, the clip of each input.

Frame heads read one frame per input and score a clip by the mean of its frame scores; sequence
heads read a clip's frames in order. No Keras here: a sweep that only reads a finished study
imports this (through :mod:`experiments.trial.evaluation`) without loading a backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from core.constants import BONAFIDE_LABEL
from core.data.clips import Clip
from experiments.metrics import ScoreSet, clip_scores

if TYPE_CHECKING:
    from core.features import FeatureSet
    from core.features.bottom import BottomInputs
    from experiments.trial.finetune import StoredRows


@dataclass(frozen=True)
class SplitData:
    """One split ready for a head: inputs, a label per input and the clip row of each input.

    ``x`` is fc7 (an array), or for fine-tuning the frozen bottom's outputs (:class:`StoredRows`),
    when ``fc7`` holds the split's cached fc7, the standardisation's statistics. Per clip:
    ``databases`` (the database it comes from, when a study has several) and ``no_face`` (its
    frames without a face, when the features were cropped).
    """

    x: np.ndarray | StoredRows
    y: np.ndarray  # 1 bona fide, 0 attack
    clip_of: np.ndarray  # index into ``clips`` of every input
    clips: list[Clip]
    fc7: np.ndarray | None = None  # (inputs..., 4096) cached fc7 when ``x`` is not fc7
    databases: tuple[str, ...] = ()
    no_face: np.ndarray | None = None

    def scores(self, frame_scores: np.ndarray) -> ScoreSet:
        """Clip-level scores (mean over a clip's frames), with labels and attack types."""
        per_clip = clip_scores(frame_scores, self.clip_of, len(self.clips))
        labels = [int(clip.label == BONAFIDE_LABEL) for clip in self.clips]
        return ScoreSet(per_clip, labels, [clip.attack_type for clip in self.clips])

    @classmethod
    def pooled(cls, parts: list[SplitData]) -> SplitData:
        """Several databases' splits as one (cached fc7 only): inputs, labels and clips in order."""
        if len(parts) == 1:
            return parts[0]
        if any(not isinstance(part.x, np.ndarray) for part in parts):
            raise ValueError("fine-tuning trains on one database at a time")
        offsets = np.cumsum([0] + [len(part.clips) for part in parts[:-1]])
        no_face = [part.no_face for part in parts]
        return cls(
            np.concatenate([part.x for part in parts]),
            np.concatenate([part.y for part in parts]),
            np.concatenate([part.clip_of + at for part, at in zip(parts, offsets, strict=True)]),
            [clip for part in parts for clip in part.clips],
            databases=tuple(name for part in parts for name in part.databases),
            no_face=None if any(n is None for n in no_face) else np.concatenate(no_face),
        )


def split_data(
    features: FeatureSet,
    split: str,
    kind: str,
    bottom: BottomInputs | None = None,
    database: str = "",
) -> SplitData:
    """Inputs of ``split`` for a frame head (one frame each) or a sequence head (one clip each).

    With ``bottom`` (a fine-tuned trial) the inputs are its stored outputs for these clips, read
    on demand, and ``fc7`` their cached fc7. ``database`` names where the clips come from.
    """
    rows = features.indices(split)
    clips = [features.clips[i] for i in rows]
    block = np.asarray(features.clip_features(rows), dtype=np.float32)  # (n, frames, 4096)
    n, frames = block.shape[:2]
    labels = np.array([int(clip.label == BONAFIDE_LABEL) for clip in clips], dtype=np.int32)
    if kind == "sequence":
        fc7, y, clip_of = block.reshape(n, frames, 1, 1, -1), labels, np.arange(n)
    else:
        fc7 = block.reshape(n * frames, 1, 1, -1)
        y, clip_of = np.repeat(labels, frames), np.repeat(np.arange(n), frames)
    known = {
        "databases": (database,) * n if database else (),
        "no_face": np.array([features.no_face.get(c.clip_id, 0) for c in clips])
        if features.face_crop
        else None,
    }
    if bottom is None:
        return SplitData(fc7, y, clip_of, clips, **known)
    from experiments.trial.finetune import StoredRows  # Keras: only a fine-tuned trial

    rows = StoredRows(bottom.entry, bottom.rows(clips), kind)
    return SplitData(rows, y, clip_of, clips, fc7, **known)
