"""The clips' frames as the fc7 cache's network saw them, decoded once and kept as uint8 on disk.

A fine-tuned trial trains layers of the backbone, so it reads the network's input, not cached
fc7. The frames come from :func:`core.features.pipeline.decoder`, the extraction's own decoder,
with the same frames per clip, the same face crop (the detector the features were cropped with,
the database's boxes when the features used them) and the same resize: byte for byte the uint8
frames the feature cache's backbone read. ``core.preprocess_input`` (the weights' mean) is applied
where they enter a network, as in extraction.

Layout: ``<cache>/frames/<key>/<clip>.npy``, one uint8 (frames_per_clip, 224, 224, 3) array per
clip (``<clip>`` is a hash of its id), and ``manifest.json`` with the parts of the key. The key is
the part of the feature cache key that decides the frames (data, frames per clip, face crop,
detector and its version, database boxes, preprocessing version), not the weights or the
precision: every backbone and every protocol of a database reads one set of frames, and a clip is
decoded once, whichever trial first needs it.

Written atomically (a temporary file in the same folder, fsync'ed, renamed into place; two
processes decoding one clip write the same bytes); read with ``np.load(mmap_mode="r",
allow_pickle=False)`` and checked (dtype, shape); a damaged file is decoded again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.constants import INPUT_SHAPE
from core.data.clips import Clip, ClipError, DataError
from core.features import faces, pipeline
from core.features.featureset import FeatureSet

FRAMES_DIR = "frames"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
# The parts of the feature cache key (core.features.extract.cache_key) that decide the frames.
FRAME_KEY_PARTS = (
    "data",
    "frames_per_clip",
    "face_crop",
    "detector",
    "face_boxes",
    "preprocessing",
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredFrames:
    """Where each clip's uint8 frames are, and what this call had to decode."""

    folder: Path
    paths: dict[str, Path]  # clip_id -> its .npy
    frames_per_clip: int
    decoded: int  # clips decoded by this call (0: every clip was already stored)

    def frames(self, clip_id: str) -> np.ndarray:
        """uint8 (frames_per_clip, 224, 224, 3) of ``clip_id``, memory-mapped read-only."""
        array = _open(self.paths[clip_id], self.frames_per_clip)
        if array is None:
            raise DataError(f"{self.paths[clip_id]}: stored frames are missing or damaged")
        return array


def frames_key(features: FeatureSet) -> tuple[str, dict[str, Any]]:
    """The frame store's key for ``features`` and the parts it hashes."""
    key_parts = features.manifest.get("key_parts")
    if not isinstance(key_parts, dict) or not set(FRAME_KEY_PARTS) <= set(key_parts):
        raise DataError(f"{features.path}: its manifest does not say how the frames were made")
    parts = {name: key_parts[name] for name in FRAME_KEY_PARTS}
    parts["format"] = FORMAT_VERSION
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return digest[:32], parts


def clip_file(clip_id: str) -> str:
    """File name of a clip's frames: a hash of its id (ids hold slashes and any character)."""
    return hashlib.sha256(clip_id.encode()).hexdigest()[:32] + ".npy"


def stored_frames(features: FeatureSet) -> StoredFrames:
    """The frames of every clip of ``features``, decoding those not stored, in the feature
    cache's own folder (``features.path``'s grandparent).

    Raises:
        DataError: a clip cannot be decoded now as it was for the features, or the features'
            face detector cannot run here.
    """
    clips = list(features.clips)
    key, parts = frames_key(features)
    root = features.path.parent.parent
    folder = root / FRAMES_DIR / key
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / MANIFEST_FILE).is_file():
        _write_atomically(folder / MANIFEST_FILE, json.dumps(parts, indent=1).encode())
    frames_per_clip = features.frames_per_clip
    paths = {clip.clip_id: folder / clip_file(clip.clip_id) for clip in clips}
    missing = [clip for clip in clips if _open(paths[clip.clip_id], frames_per_clip) is None]
    if missing:
        _decode(features, parts, missing, paths)
    return StoredFrames(folder, paths, frames_per_clip, len(missing))


def _decode(
    features: FeatureSet, parts: dict[str, Any], clips: list[Clip], paths: dict[str, Path]
) -> None:
    """Decode ``clips`` as the extraction did and store each one's frames."""
    finder = _face_finder(features, parts)
    decode = pipeline.decoder(features.frames_per_clip, finder)
    # one thread with a face detector (see core.features.faces.FaceFinder), else a few
    workers = 1 if finder is not None else min(4, os.cpu_count() or 1)
    log.info("decoding the frames of %d clips into %s", len(clips), paths[clips[0].clip_id].parent)

    def one(clip: Clip) -> None:
        try:
            decoded = decode(clip)
        except ClipError as err:
            raise DataError(f"cannot decode a clip again for fine-tuning: {err}") from None
        cached = features.no_face.get(clip.clip_id)
        if features.face_crop and cached is not None and decoded.no_face != cached:
            raise DataError(
                f"{clip.path}: the face was found in other frames than when its features were "
                f"extracted ({decoded.no_face} frames without a face, the cache says {cached})"
            )
        _write_atomically(paths[clip.clip_id], _npy_bytes(decoded.frames))

    if finder is not None:
        finder.load()
    tick = pipeline.ticker("frames decoded for fine-tuning", len(clips))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="frames") as pool:
        for done, _ in enumerate(pool.map(one, clips), start=1):
            tick(done)


def _face_finder(features: FeatureSet, parts: dict[str, Any]) -> faces.FaceFinder | None:
    """The face finder the features were cropped with, or None without a face crop."""
    if not features.face_crop:
        return None
    detector = faces.resolve_detector(str(features.detector))
    if faces.detector_version(detector) != parts["detector"]:
        raise DataError(
            f"{features.path}: features cropped with {parts['detector']!r}, but this machine "
            f"has {faces.detector_version(detector)!r}: fine-tuning would read other crops"
        )
    return faces.FaceFinder(detector, shipped=parts["face_boxes"] is not None)


def _open(path: Path, frames_per_clip: int) -> np.ndarray | None:
    """A clip's stored frames, or None when the file is missing or not what it must be."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):  # EOFError: an empty file
        return None
    if array.dtype != np.uint8 or array.shape != (frames_per_clip, *INPUT_SHAPE):
        log.warning("stored frames %s are %s %s: decoding again", path, array.dtype, array.shape)
        return None
    return array


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.uint8), allow_pickle=False)
    return buffer.getvalue()


def _write_atomically(path: Path, data: bytes) -> None:
    """``data`` at ``path`` all at once: a temporary file beside it, fsync'ed, renamed over it."""
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
