"""Frames of one clip: evenly spaced decoding, optional face crop, resize to the network's input.

Finding the face is :mod:`core.features.faces`' job; this module crops to the boxes it is given.

``read_frames`` returns ``frames_per_clip`` frames of **one** clip, in order, spread over the whole
clip (SPEC §4: a sequence never straddles two clips). A clip with fewer frames than asked for is
a :class:`~core.data.clips.ClipError` ("has N frames, needs K") rather than a sequence with repeated
frames: a repeated frame would look like a frozen "photo" attack to a sequence head. Callers skip
the clip with a warning and count it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from core.constants import FRAMES_PER_CLIP, INPUT_SIZE
from core.data.clips import (
    FRAME_SUFFIXES,
    READABLE_VIDEO_SUFFIXES,
    ClipError,
    DataError,
    frame_files,
    shown_path,
    utf8_name,
)

log = logging.getLogger(__name__)

OUTPUT_SIZE = INPUT_SIZE  # VGG-Face input side
# a video whose decodable frames fall below this share of its header's count is warned of as cut
# short (containers that estimate their count are a few frames off)
DECODED_SHORT = 0.9


class TooFewFrames(ClipError):
    """A clip with fewer frames than asked for: it has ``frames`` (a frame head may score them
    all: ``predict.py``)."""

    def __init__(self, path: Path, frames: int, needed: int) -> None:
        self.path, self.frames, self.needed = path, frames, needed
        super().__init__(f"{path}: has {_frames(frames)}, needs {needed}")

    def __reduce__(self) -> tuple[type, tuple[Path, int, int]]:  # across processes (review)
        return type(self), (self.path, self.frames, self.needed)


def frame_indices(n_frames: int, frames_per_clip: int) -> list[int]:
    """Indices of ``frames_per_clip`` frames evenly spread over ``n_frames`` (segment centres).

    The clip is cut into ``frames_per_clip`` equal segments and the middle frame of each is taken,
    so the first and last frames (often a fade or a damaged frame) are avoided and the indices are
    distinct whenever ``n_frames >= frames_per_clip``.
    """
    if frames_per_clip < 1:
        raise DataError(f"frames_per_clip must be >= 1, got {frames_per_clip}")
    if n_frames < frames_per_clip:
        raise DataError(f"{n_frames} frames cannot give {frames_per_clip} distinct frames")
    return [((2 * i + 1) * n_frames) // (2 * frames_per_clip) for i in range(frames_per_clip)]


# how a clip the system would not read is said (permissions, I/O): not the clip's own fault, so a
# cache entry that skipped it is not reused once it can be read (core.features.extract)
UNREADABLE = "cannot read this"


def read_frames(path: str | Path, frames_per_clip: int = FRAMES_PER_CLIP) -> np.ndarray:
    """Decode ``frames_per_clip`` evenly spaced frames of one clip as uint8 RGB (k, H, W, 3).

    Raises:
        ClipError: the clip is unreadable or corrupt, holds no frame, has fewer than
            ``frames_per_clip`` frames, or its frames differ in size.
    """
    return read_clip(path, frames_per_clip)[0]


def read_clip(
    path: str | Path, frames_per_clip: int = FRAMES_PER_CLIP
) -> tuple[np.ndarray, list[int]]:
    """:func:`read_frames` and the index in the clip of each frame (0 = its first frame), which
    per-frame annotations such as a database's face boxes are looked up by."""
    path = Path(path)
    if frames_per_clip < 1:
        raise DataError(f"frames_per_clip must be >= 1, got {frames_per_clip}")
    if path.is_dir():
        frames, indices = _read_folder(path, frames_per_clip)
    elif path.is_file() and path.suffix.lower() in FRAME_SUFFIXES:  # one image: one frame
        if frames_per_clip > 1:
            raise TooFewFrames(path, 1, frames_per_clip)
        frames, indices = [_read_image(path)], [0]
    elif path.is_file():
        if path.suffix.lower() not in READABLE_VIDEO_SUFFIXES:
            raise ClipError(
                f"{path}: not a clip (expected a video {'/'.join(READABLE_VIDEO_SUFFIXES)}, "
                "a folder of frames or, for one frame, an image)"
            )
        frames, indices = _read_video(path, frames_per_clip)
    else:
        raise ClipError(f"{path}: no such video or frame folder")
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise ClipError(f"{path}: frames differ in size {sorted(shapes)}")
    return np.stack(frames), indices


def _read_folder(folder: Path, k: int) -> tuple[list[np.ndarray], list[int]]:
    files = frame_files(folder)
    if not files:
        raise ClipError(f"{folder}: frame folder holds no {'/'.join(FRAME_SUFFIXES)} image")
    if len(files) < k:
        raise TooFewFrames(folder, len(files), k)
    indices = frame_indices(len(files), k)
    return [_read_image(files[i]) for i in indices], indices


def _read_image(file: Path) -> np.ndarray:
    """One image as RGB; ClipError where it cannot be read or decoded."""
    # imdecode of the bytes rather than imread: works for any path encoding
    try:
        data = np.fromfile(file, dtype=np.uint8)
    except OSError as err:  # a clip skipped, as an unreadable video is
        raise ClipError(f"{file}: {UNREADABLE} image ({err.strerror})") from None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ClipError(f"{file}: cannot decode this image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _open(path: Path) -> cv2.VideoCapture:
    if not utf8_name(str(path)):  # OpenCV's VideoCapture crashed the process on one (probe)
        raise ClipError(
            f"{shown_path(path)}: its name is not UTF-8, which OpenCV cannot open: rename it"
        )
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        try:  # say which: a file the system will not read, or one OpenCV cannot decode
            with path.open("rb"):
                pass
        except OSError as err:
            raise ClipError(f"{path}: {UNREADABLE} video ({err.strerror})") from None
        raise ClipError(f"{path}: cannot open this video (corrupt, or not a video)")
    return cap


def _read_video(path: Path, k: int) -> tuple[list[np.ndarray], list[int]]:
    """Seek to the needed frames when the container reports a frame count; else read through.

    Seeking is checked: a failed read, a position that does not follow the request or a frame
    past the reported end (containers with a wrong or estimated frame count, truncated files)
    falls back to a sequential pass that counts the frames that really decode.
    """
    cap = _open(path)
    try:
        reported = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if reported >= k:
            indices = frame_indices(reported, k)
            frames = _read_by_seeking(cap, indices)
            # a frame past the reported end means the count was too low: indices would bunch up
            if frames is not None and not _decodes_past(cap, reported):
                return frames, indices
            log.debug("%s: frame count or seeking unreliable, reading sequentially", path)
    finally:
        cap.release()
    n = _count_decodable(path)
    if n == 0:
        raise ClipError(f"{path}: no frame decodes (unreadable or corrupt video)")
    if n < k:
        raise TooFewFrames(path, n, k)
    if n < reported * DECODED_SHORT:  # not an estimate a few frames off: the file was cut
        log.warning(
            "%s: %d of the %d frames its header counts decode (a truncated video?): its %d frames "
            "are spread over those",
            path,
            n,
            reported,
            k,
        )
    indices = frame_indices(n, k)
    return _read_sequentially(path, indices), indices


def _read_by_seeking(cap: cv2.VideoCapture, indices: list[int]) -> list[np.ndarray] | None:
    frames = []
    for index in indices:
        if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) != index:
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = cap.read()
        if not ok or bgr is None or bgr.ndim != 3:
            return None
        if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) != index + 1:
            return None
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return frames


def _decodes_past(cap: cv2.VideoCapture, reported: int) -> bool:
    cap.set(cv2.CAP_PROP_POS_FRAMES, reported)
    return bool(cap.grab())


def _count_decodable(path: Path) -> int:
    cap = _open(path)
    try:
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def _read_sequentially(path: Path, indices: list[int]) -> list[np.ndarray]:
    cap = _open(path)
    try:
        wanted = set(indices)
        frames = []
        for index in range(indices[-1] + 1):
            if not cap.grab():
                break
            if index in wanted:
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    break
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if len(frames) != len(indices):
        raise ClipError(f"{path}: frames stop decoding part way (truncated or corrupt video)")
    return frames


Box = tuple[int, int, int, int]  # a face as (x, y, w, h) in the frame's pixels


def prepare_frames(
    frames: np.ndarray, boxes: Sequence[Box | None] | None = None, margin: float = 0.2
) -> np.ndarray:
    """Turn decoded frames into the network's 224x224 uint8 RGB input (k, 224, 224, 3).

    Without ``boxes`` the whole frame is resized (aspect not kept). With ``boxes`` (one face box
    or None per frame; see :mod:`core.features.faces`) each frame is cropped to a square around
    its face, enlarged by ``margin`` of the face's size on every side and shifted inside the frame.

    A frame whose box is None takes the box of the nearest frame of the same clip that has one
    (ties: the earlier frame): a face moves little within a clip, and the crop keeps the scale of
    the clip's other frames, so a detector's miss does not turn into a visual cue a head could
    learn. When no frame of the clip has a face, every frame is cropped to its centre square.
    Callers count the misses (``FeatureSet.no_face``). ``core.preprocess_input`` is the caller's.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise DataError(
            f"frames must be uint8 of shape (k, H, W, 3), got {frames.dtype} {frames.shape}"
        )
    if not 0 <= margin <= 2:
        raise DataError(f"margin must be between 0 and 2, got {margin}")
    if boxes is not None and len(boxes) != len(frames):
        raise DataError(f"{len(boxes)} face boxes for {len(frames)} frames")
    filled = fill_missing(boxes) if boxes is not None else [None] * len(frames)
    out = np.empty((len(frames), OUTPUT_SIZE, OUTPUT_SIZE, 3), dtype=np.uint8)
    for i, (frame, box) in enumerate(zip(frames, filled, strict=True)):
        if boxes is not None:
            frame = _crop_square(frame, box, margin)
        out[i] = resize(frame, OUTPUT_SIZE)
    return out


def fill_missing(boxes: Sequence[Box | None]) -> list[Box | None]:
    """Each None replaced by the nearest box (the earlier one on a tie); all None if none is set."""
    found = [i for i, box in enumerate(boxes) if box is not None]
    if not found:
        return list(boxes)
    return [boxes[min(found, key=lambda j: (abs(j - i), j))] for i in range(len(boxes))]


def resize(image: np.ndarray, side: int) -> np.ndarray:
    """Resize to side x side: INTER_AREA when shrinking (no aliasing), INTER_LINEAR when growing."""
    h, w = image.shape[:2]
    if (h, w) == (side, side):
        return np.ascontiguousarray(image)
    interpolation = cv2.INTER_AREA if h * w >= side * side else cv2.INTER_LINEAR
    return cv2.resize(image, (side, side), interpolation=interpolation)


def _crop_square(frame: np.ndarray, box: Box | None, margin: float) -> np.ndarray:
    """Square crop around ``box`` grown by ``margin``, shifted inside the frame; centre if None."""
    h, w = frame.shape[:2]
    if box is None:
        side = min(h, w)
        cx, cy = w / 2, h / 2
    else:
        x, y, bw, bh = box
        side = max(1, min(round(max(bw, bh) * (1 + 2 * margin)), h, w))
        cx, cy = x + bw / 2, y + bh / 2
    left = int(min(max(round(cx - side / 2), 0), w - side))
    top = int(min(max(round(cy - side / 2), 0), h - side))
    return frame[top : top + side, left : left + side]


def _frames(n: int) -> str:
    return f"{n} frame" if n == 1 else f"{n} frames"


_SHORT = re.compile(r"(?:^|: )has (\d+) frames?, needs \d+$")  # the two raises' above, with or
# without their path


def frames_of_short_clip(reason: str) -> int | None:
    """The frames a clip had when ``reason`` (a skip's) is that it has fewer than asked."""
    found = _SHORT.search(reason)
    return int(found.group(1)) if found else None
