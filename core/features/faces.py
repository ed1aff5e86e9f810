"""Where the face is in each frame, for the face crop: a database's own boxes, MTCNN or Haar.

VGG-Face was trained on face crops, so frames are cropped to the face before the network
(:func:`core.data.frames.prepare_frames` does the cropping). Where a box comes from:

* the boxes a database ships (``Clip.face_boxes``, a :class:`core.data.clips.FaceBoxes`), when
  present: they are the database's reference annotation and every paper on it uses them. Its
  layout names the format of the file's lines: ``xywh``, ``frame x y width height`` (Replay-Attack's
  and Replay-Mobile's ``.face``); ``corners``, ``frame,x1,y1,x2,y2`` (MSU-MFSD's ``.face``);
  ``eyes``, ``frame,x_left_eye,y_left_eye,x_right_eye,y_right_eye`` (OULU-NPU's ``.txt``, as Bob's
  OULU-NPU reader reads it), turned into a face box by :func:`box_from_eyes`. Commas or
  whitespace separate the numbers. Frames count from 0 (from 1 when a file's first frame is 1); a
  frame with no line, or with zeros, has no face. Boxes marked ``verify`` (drawn on frames that
  the database's own reader reorients) are used only where they agree with the detector
  (:meth:`FaceFinder.boxes`).
* a detector, for clips without such a file: ``mtcnn`` (the ``mtcnn`` package, which ships its
  weights and runs on TensorFlow; what most face anti-spoofing papers crop with) or ``haar``
  (OpenCV's frontal-face cascade: light, no TensorFlow). ``auto`` is MTCNN where it can run here
  (the package installed and Keras on the TensorFlow backend), else Haar, with a warning. Both
  keep the largest face and look on a copy of the frame whose longer side is at most
  :data:`DETECT_SIDE` pixels.

The detector's resolved name (and the ``mtcnn`` package's version) is part of the feature cache
key, so features cropped by one are never reused as another's.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.data.clips import BoxFormat, Clip, ClipError, DataError
from core.data.frames import Box
from core.device import keras_backend

log = logging.getLogger(__name__)

AUTO = "auto"
MTCNN = "mtcnn"
HAAR = "haar"
DETECTORS = (AUTO, MTCNN, HAAR)
HAAR_FACE = "haarcascade_frontalface_default.xml"
PROBES = 3  # frames of a clip on which the detector checks database boxes marked ``verify``
DETECT_SIDE = 320  # faces are searched on a copy whose longer side is at most this (speed)
MTCNN_WEIGHTS = ("pnet.lz4", "rnet.lz4", "onet.lz4")
# A face box from the eyes: width and height in inter-eye distances, and how far down the box the
# eye line sits; about the box MTCNN gives a frontal face (inter-eye distance ~0.4 of its width).
EYES_WIDTH, EYES_HEIGHT, EYES_LINE = 2.4, 3.0, 0.4


def resolve_detector(name: str) -> str:
    """``auto`` -> ``mtcnn`` where it can run here, else ``haar`` (warned); a named detector is
    checked and returned. DataError (one line, with the fix) when it cannot run here."""
    if name not in DETECTORS:
        raise DataError(f"face detector must be one of {', '.join(DETECTORS)}, got {name!r}")
    if name == AUTO:
        reason = mtcnn_unavailable()
        if reason is None:
            return MTCNN
        log.warning("face crop with OpenCV's Haar cascade, not MTCNN: %s", reason)
        name = HAAR
    reason = mtcnn_unavailable() if name == MTCNN else haar_unavailable()
    if reason is not None:
        raise DataError(f"face detector {name!r} cannot run here: {reason}")
    return name


def detector_version(name: str) -> str:
    """What identifies the detector's boxes in the cache key: ``mtcnn <version>`` or ``haar``."""
    if name == MTCNN:
        return f"{MTCNN} {importlib.metadata.version('mtcnn')}"
    return name


def mtcnn_unavailable() -> str | None:
    """Why MTCNN cannot run in this process, or None when it can. Imports nothing heavy."""
    if importlib.util.find_spec("tensorflow") is None:
        return "TensorFlow is not installed (MTCNN runs on it)"
    if importlib.util.find_spec("mtcnn") is None:
        return "the mtcnn package is not installed (pip install mtcnn)"
    backend = keras_backend()
    if backend != "tensorflow":
        return f"MTCNN needs Keras on the TensorFlow backend, this process uses {backend!r}"
    return None


def haar_unavailable() -> str | None:
    """Why the Haar cascade cannot run here, or None when it can."""
    try:
        _cascade()
    except DataError as err:
        return str(err)
    return None


@dataclass(frozen=True)
class FaceFinder:
    """Finds the face box of each frame of a clip: from the database's file when the clip has one
    (and ``shipped`` is True), else with ``detector`` (a resolved name, ``mtcnn`` or ``haar``).

    Not thread-safe: use one decoding thread (OpenCV does not promise a cascade is, and MTCNN's
    TensorFlow models are shared).
    """

    detector: str
    shipped: bool = True

    def load(self) -> None:
        """Load the detector now (a few seconds for MTCNN) rather than in a decoding thread."""
        _detector(self.detector)

    def boxes(self, clip: Clip, frames: np.ndarray, indices: Sequence[int]) -> Found:
        """The box of each frame (None: no face) and where they came from.

        A clip's database boxes marked ``verify`` are checked first: on the first of its frames
        (up to :data:`PROBES`) where both the database and the detector see a face, each box's
        centre must lie inside the other box. When they do not, the database's boxes are set
        aside for this clip (``Found.disagreement`` says where) and the detector crops it. A
        detector that sees no face on the probed frames is no evidence: the boxes are used. A
        box file that does not read (a malformed line, a file gone) is set aside alike, saying
        why: its clip had been skipped, and a database that lost its one bona fide test clip so
        was refused (probe).
        """
        if self.shipped and clip.face_boxes is not None:
            try:
                table = read_box_file(clip.face_boxes.path, clip.face_boxes.format)
            except ClipError as err:  # the video is fine: cropped as a clip without boxes is
                return Found(detect_faces(frames, self.detector), False, str(err))
            shipped = [table.get(i) for i in indices]
            if not clip.face_boxes.verify:
                return Found(shipped, True)
            disagreement = self._disagreement(frames, shipped, indices)
            if disagreement is None:
                return Found(shipped, True)
            return Found(detect_faces(frames, self.detector), False, disagreement)
        return Found(detect_faces(frames, self.detector), False)

    def _disagreement(
        self, frames: np.ndarray, shipped: list[Box | None], indices: Sequence[int]
    ) -> str | None:
        """Where the database's boxes miss the face the detector finds, or None."""
        probed = 0
        for position, box in enumerate(shipped):
            if box is None:
                continue
            if probed == PROBES:
                break
            probed += 1
            (found,) = detect_faces(frames[position : position + 1], self.detector)
            if found is None:
                continue
            if _centre_inside(box, found) and _centre_inside(found, box):
                return None
            return f"frame {indices[position]}: the database's box {box}, {self.detector}'s {found}"
        return None


@dataclass(frozen=True)
class Found:
    """A clip's face box per frame (None: no face), whether they are its database's boxes, and,
    when the database's boxes were set aside (the detector disagreed, or their file does not
    read), why."""

    boxes: list[Box | None]
    shipped: bool
    disagreement: str | None = None


def _centre_inside(box: Box, other: Box) -> bool:
    x, y, w, h = box
    ox, oy, ow, oh = other
    cx, cy = x + w / 2, y + h / 2
    return ox <= cx <= ox + ow and oy <= cy <= oy + oh


def detect_faces(frames: np.ndarray | Sequence[np.ndarray], detector: str) -> list[Box | None]:
    """The largest face of each RGB frame as (x, y, w, h) in its pixels, or None, with
    ``detector`` (``mtcnn`` or ``haar``, see :func:`resolve_detector`)."""
    if not len(frames):
        return []
    return _detector(detector)(list(frames))


NOT_A_BOX = "is not 'frame and 4 numbers'"  # a box file's line that does not read


def read_box_file(path: Path, format: BoxFormat) -> dict[int, Box | None]:
    """A database's face boxes per frame index, its lines read as ``format`` (``xywh``,
    ``corners`` or ``eyes``: see the module docstring).

    Raises:
        ClipError: the file is missing, unreadable or has a line that is not the format.
        DataError: ``format`` is none of them (a layout's mistake, not the clip's).
    """
    path = Path(path)
    if format not in _BOX_FORMATS:
        raise DataError(f"{path}: face-box format must be one of {', '.join(_BOX_FORMATS)}")
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as err:
        raise ClipError(f"{path}: cannot read this face-box file ({err})") from None
    parse = _BOX_FORMATS[format]
    table: dict[int, Box | None] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        values = [v for v in re.split(r"[,\s]+", line.strip()) if v]
        try:
            numbers = [round(float(v)) for v in values]
        except ValueError:
            numbers = []
        if len(numbers) != 5 or numbers[0] < 0:
            raise ClipError(f"{path}: line {number} {NOT_A_BOX}: {line.strip()!r}")
        table[numbers[0]] = parse(*numbers[1:])
    if table and min(table) == 1:  # numbered from 1
        table = {frame - 1: box for frame, box in table.items()}
    return table


def box_from_eyes(x_left: float, y_left: float, x_right: float, y_right: float) -> Box | None:
    """A face box around two eye positions (None when they coincide: no face annotated)."""
    distance = math.hypot(x_right - x_left, y_right - y_left)
    if distance < 1:
        return None
    cx, cy = (x_left + x_right) / 2, (y_left + y_right) / 2
    w, h = EYES_WIDTH * distance, EYES_HEIGHT * distance
    return round(cx - w / 2), round(cy - EYES_LINE * h), round(w), round(h)


def _box_xywh(x: int, y: int, w: int, h: int) -> Box | None:
    return (x, y, w, h) if w > 0 and h > 0 else None


def _box_corners(x1: int, y1: int, x2: int, y2: int) -> Box | None:
    return _box_xywh(x1, y1, x2 - x1, y2 - y1)


_BOX_FORMATS: dict[str, Callable[..., Box | None]] = {
    "xywh": _box_xywh,  # Replay-Attack face-locations, Replay-Mobile faceloc/rect
    "corners": _box_corners,  # MSU-MFSD
    "eyes": box_from_eyes,  # OULU-NPU eye positions
}


# --- detectors ----------------------------------------------------------------------------------


def _detector(name: str) -> Callable[[list[np.ndarray]], list[Box | None]]:
    if name == MTCNN:
        return _mtcnn_detector()
    if name == HAAR:
        return _haar_detect
    raise DataError(f"face detector must be {MTCNN!r} or {HAAR!r} here, got {name!r}")


def _scaled(frame: np.ndarray) -> tuple[np.ndarray, float]:
    """A copy whose longer side is at most DETECT_SIDE, and its scale."""
    h, w = frame.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(h, w))
    if scale == 1.0:
        return frame, scale
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), scale


def _unscale(box: Sequence[float], scale: float) -> Box:
    x, y, w, h = (round(float(v) / scale) for v in box)
    return x, y, w, h


@functools.cache
def _cascade() -> cv2.CascadeClassifier:
    """OpenCV's frontal-face Haar cascade, loaded once."""
    data = getattr(getattr(cv2, "data", None), "haarcascades", None)
    xml = Path(data) / HAAR_FACE if data else None
    if not hasattr(cv2, "CascadeClassifier") or xml is None or not xml.is_file():
        raise DataError(
            f"the Haar face detector needs OpenCV's cascade (cv2.CascadeClassifier and "
            f"cv2.data.haarcascades/{HAAR_FACE}), which OpenCV {cv2.__version__} does not ship; "
            "install opencv-python-headless<5 or run without face crop"
        )
    cascade = cv2.CascadeClassifier(str(xml))
    if cascade.empty():
        raise DataError(f"{xml}: OpenCV could not load this Haar cascade")
    return cascade


def _haar_detect(frames: list[np.ndarray]) -> list[Box | None]:
    boxes: list[Box | None] = []
    for frame in frames:
        small, scale = _scaled(frame)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        min_side = max(20, min(gray.shape) // 8)
        found = _cascade().detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=4, minSize=(min_side, min_side)
        )
        largest = max(found, key=lambda b: b[2] * b[3]) if len(found) else None
        boxes.append(None if largest is None else _unscale(largest, scale))
    return boxes


@functools.cache
def _mtcnn_detector() -> Callable[[list[np.ndarray]], list[Box | None]]:
    """MTCNN with the weights its package ships, loaded once. The weights are named by their full
    path inside the package: MTCNN would otherwise first look for a file of that name in the
    working directory (and unpickle it)."""
    reason = mtcnn_unavailable()
    if reason is not None:
        raise DataError(f"face detector 'mtcnn' cannot run here: {reason}")
    from importlib.resources import files

    from mtcnn import MTCNN as Network
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    weights = files("mtcnn.assets.weights")
    for name in MTCNN_WEIGHTS:
        if not (weights / name).is_file():
            raise DataError(f"the mtcnn package has no {name}: reinstall it (pip install mtcnn)")
    network = Network(
        stages=[
            stage(weights=str(weights / name))
            for stage, name in zip((StagePNet, StageRNet, StageONet), MTCNN_WEIGHTS, strict=True)
        ]
    )

    def detect(frames: list[np.ndarray]) -> list[Box | None]:
        scaled = [_scaled(frame) for frame in frames]
        images = [np.ascontiguousarray(small) for small, _ in scaled]
        found = network.detect_faces(images)  # default minimum face: 20 pixels
        boxes: list[Box | None] = []
        for faces, (_, scale) in zip(found, scaled, strict=True):
            faces = [f for f in faces if f["box"][2] > 0 and f["box"][3] > 0]
            largest = max(faces, key=lambda f: f["box"][2] * f["box"][3]) if faces else None
            boxes.append(None if largest is None else _unscale(largest["box"], scale))
        return boxes

    return detect
