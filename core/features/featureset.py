"""What :func:`core.features.extract_features` returns: one protocol's clips and their fc7 rows.

A cache entry holds every clip of a database (:attr:`FeatureSet.entry`); a protocol, fold or
split seed selects some of them (:attr:`FeatureSet.clips`, with their splits), and
:attr:`FeatureSet.rows` says where each one's features are in the entry, so every selection reads
the same memory-mapped file.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from core.constants import BONAFIDE_LABEL, SPLITS
from core.data.clips import Clip
from core.features.crop import FaceCrop
from core.words import counted, percent


class NoFace(NamedTuple):
    """Frames where no face was found, out of ``frames``."""

    missed: int
    frames: int

    @property
    def rate(self) -> float:
        return self.missed / self.frames if self.frames else 0.0


FACELESS_WARNING = 0.5  # the share of frames without a face that the data summary warns about


@dataclass
class FeatureSet:
    """fc7 features of the usable clips of one selection, memory-mapped read-only from the store.

    ``features[i, j]`` is the fc7 vector of frame ``j`` of ``clips[i]``; the frames of a row come
    from that one clip, in time order.
    """

    entry: np.ndarray  # (clips of the database, frames_per_clip, 4096) float32, read-only memmap
    rows: np.ndarray  # row in ``entry`` of each clip of ``clips`` (int)
    clips: list[Clip]  # the selection's usable clips, with its splits
    skipped: list[tuple[Path, str]]  # the dataset's skips, then its clips that failed to decode
    fingerprint: str  # the cache key
    weights_fingerprint: str  # sha256 of the weights file, or "random:<init>:<seed>"
    dataset_fingerprint: str  # the selection (Dataset.fingerprint: clips, labels, splits)
    content_fingerprint: str  # the database's clips (the data part of the cache key)
    random_weights: bool
    synthetic: bool
    frames_per_clip: int
    face_crop: bool
    detector: str | None  # "mtcnn" or "haar" for clips without database boxes; None: no crop
    path: Path  # the cache entry's folder
    extracted: bool  # False when an existing cache entry was reused
    seconds: float  # wall time of this call
    # clip_id -> frames of that clip where no face was found (every clip of ``clips`` when
    # face_crop; empty without it)
    no_face: dict[str, int] = field(default_factory=dict)
    database_boxes: int = 0  # clips of ``clips`` cropped with the boxes their database ships
    # clips of ``clips`` whose database boxes missed the detector's face: cropped with the detector
    boxes_set_aside: int = 0
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)
    protocol: str = ""  # the protocol that selected the clips, resolved (never "auto")
    fold: int | None = None  # its fold, for a protocol with folds
    layout: str = ""  # the database layout that read them, e.g. "oulu"
    test_split_given: bool = True  # False: the loader carved the test split (no split folders)
    boxes_looked_for: bool = False  # cropped, and with the database's boxes where a clip has them

    @functools.cached_property
    def features(self) -> np.ndarray:
        """(len(clips), frames_per_clip, 4096) float32, row i for clips[i]: a view of the memory
        map when the clips are one run of the entry's rows (a whole database), else a copy of
        their rows (use :meth:`clip_features` to read only some)."""
        rows = self.rows
        if len(rows) and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
            return self.entry[rows[0] : rows[0] + len(rows)]
        return np.asarray(self.entry[rows])

    def clip_features(self, positions: np.ndarray | Iterable[int]) -> np.ndarray:
        """fc7 of ``clips[positions]`` (n, frames_per_clip, 4096) float32, read from the memory
        map without copying the other clips (e.g. ``clip_features(indices("dev"))``)."""
        positions = np.fromiter(positions, dtype=np.intp)
        return np.asarray(self.entry[self.rows[positions]], dtype=np.float32)

    def indices(self, split: str) -> np.ndarray:
        """Positions in ``clips`` (and rows of ``features``) of the clips in ``split``."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return np.flatnonzero([clip.split == split for clip in self.clips])

    @property
    def frames(self) -> int:
        """Number of frames whose features are stored."""
        return len(self.clips) * self.frames_per_clip

    @property
    def crop(self) -> FaceCrop:
        """How the frames were cropped (:class:`core.features.crop.FaceCrop`)."""
        if not self.face_crop:
            return FaceCrop(False)
        detector = self.detector if self.database_boxes < len(self.clips) else None
        return FaceCrop(True, detector, self.database_boxes, len(self.clips))

    @property
    def face_crop_method(self) -> str:
        """How frames were cropped, for people: ``none``, ``mtcnn``, ``haar``,
        ``database boxes`` or ``database boxes + mtcnn`` (some clips with their database's)."""
        return self.crop.method

    def no_face_by_species(self) -> dict[str, NoFace]:
        """Frames without a face per attack species (``bonafide`` included); empty without crop."""
        if not self.face_crop:
            return {}
        return no_face_by_species(self.clips, self.no_face, self.frames_per_clip)

    def face_summary(self) -> str:
        """One line for the data summary: the crop and its frames without a face per species."""
        if not self.face_crop:
            return "face crop: none (whole frames)"
        counts = ", ".join(
            f"{species} {c.missed}/{c.frames} ({percent(c.rate)}%)"
            for species, c in self.no_face_by_species().items()
        )
        aside = (
            f"; database boxes set aside on {self.boxes_set_aside} "
            f"clip{'s' * (self.boxes_set_aside != 1)} (they miss the face "
            f"{self.detector} finds, or do not read)"
            if self.boxes_set_aside
            else ""
        )
        method, crop = self.face_crop_method, self.crop
        if 0 < crop.database_boxes < crop.clips:  # which clips had none (a missing box file)
            method = (
                f"database boxes on {crop.database_boxes} of {crop.clips} clips, "
                f"{crop.detector or self.detector} on the rest"
            )
        return f"face crop: {method}{aside}{self._missing_boxes()}; frames without a face: {counts}"

    def _missing_boxes(self) -> str:
        """``; no box file for N of M clips (first ids): <where the layout reads them>`` where
        the database ships face boxes and some clips had none: a misplaced box folder had every
        clip cropped by the detector without a word, and one missing file was counted unnamed
        (probe)."""
        from core.data.layouts.registry import box_files

        missing = [c.clip_id for c in self.clips if c.face_boxes is None]
        if not (self.boxes_looked_for and box_files(self.layout) and missing):
            return ""
        root = self.manifest.get("dataset_folder", "<the database's folder>")
        where = box_files(self.layout).replace("{root}", str(root))
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        return f"; no box file for {len(missing)} of {len(self.clips)} clips ({shown}): {where}"

    def face_warning(self) -> str | None:
        """A line when the crop found no face in half the frames or more (those of clips without
        any are centre squares, not faces: a detector that does not work on these frames, or
        frames that are faces already); else one naming the clips without any face, which the
        figures count and predict refuses (a sweep had said only a species' rate: probe); else
        None."""
        counts = self.no_face_by_species().values()
        missed, frames = sum(c.missed for c in counts), sum(c.frames for c in counts)
        ids = [
            c.clip_id for c in self.clips if self.no_face.get(c.clip_id, 0) >= self.frames_per_clip
        ]
        shown = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
        if frames and ids and missed < FACELESS_WARNING * frames:
            return (
                f"warning: no face found in any frame of {len(ids)} of {len(self.clips)} clips "
                f"({shown}): the figures score their centre squares, and predict.py refuses such "
                "a clip"
            )
        if not frames or missed < FACELESS_WARNING * frames:
            return None
        whole = len(ids) * self.frames_per_clip  # the others take their clip's nearest face
        # the clips without any face named, as below the rate (none were: probe Y)
        named = f"{counted(len(ids), 'clip')} without any face ({shown})" if ids else ""
        if not ids:
            what = "every clip has a face in one frame at least, whose box the others take"
        elif len(ids) == len(self.clips):
            what = "they are centre squares, not faces"
        elif whole == missed:
            what = f"they are centre squares, not faces, in the {named}"
        else:
            what = (
                f"{whole} of them, in the {named}, are centre squares, the other "
                f"{missed - whole} take their clip's nearest face"
            )
        return (
            f"warning: no face found in {missed} of {frames} frames ({percent(missed / frames, 0)}%"
            f"): {what}, and predict.py refuses clips without one; check --face-detector, or "
            "pass --no-face-crop if the frames are faces already"
        )


def no_face_by_species(
    clips: Iterable[Clip], no_face: Mapping[str, int], frames_per_clip: int
) -> dict[str, NoFace]:
    """Frames without a face per attack species (``clip.attack_type``), bona fide first.

    A detector that misses more faces on one species gives the head a shortcut (that species'
    crops look different): compare the rates.
    """
    missed: dict[str, int] = defaultdict(int)
    frames: dict[str, int] = defaultdict(int)
    for clip in clips:
        missed[clip.attack_type] += int(no_face.get(clip.clip_id, 0))
        frames[clip.attack_type] += frames_per_clip
    order = sorted(frames, key=lambda species: (species != BONAFIDE_LABEL, species))
    return {species: NoFace(missed[species], frames[species]) for species in order}
