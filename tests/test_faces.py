"""Where the face is: a database's own box files, MTCNN, OpenCV's Haar cascade, the fallback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.data.clips import Clip, ClipError, DataError, FaceBoxes
from core.data.frames import prepare_frames
from core.features import faces, pipeline

REPO = Path(__file__).resolve().parents[1]


def synthetic_face_frame() -> np.ndarray:
    """A 160x160 frame of the synthetic set's bona fide clips: a drawn head in a room.

    Cartoons are not what the detectors were trained on: on such frames (the photo's pose) MTCNN
    finds 11 of 12 drawn faces and Haar 6 of 12; this face is one both find.
    """
    from core.data.synthetic import PHOTO_FRAME, Face, Motion, _render_bonafide

    face = Face.random(np.random.default_rng(9), 9)
    motion = Motion.random(np.random.default_rng(10), PHOTO_FRAME)  # eyes open, mouth closed
    return list(_render_bonafide(face, motion, np.ones(3), np.random.default_rng(5)))[PHOTO_FRAME]


def test_replay_attack_face_file_gives_boxes_and_zeros_are_no_face(tmp_path: Path) -> None:
    path = tmp_path / "client001_session01_webcam_authenticate_adverse_1.face"
    path.write_text("0 110 60 95 95\n1 112 61 94 94\n2 0 0 0 0\n\n")
    expected = {0: (110, 60, 95, 95), 1: (112, 61, 94, 94), 2: None}
    assert faces.read_box_file(path, "xywh") == expected


def test_msu_mfsd_face_file_gives_boxes_from_corners(tmp_path: Path) -> None:
    path = tmp_path / "real_client005_android_SD_scene01.face"  # frame,x1,y1,x2,y2
    path.write_text("0,110,60,205,155\n1,0,0,0,0\n")
    assert faces.read_box_file(path, "corners") == {0: (110, 60, 95, 95), 1: None}


def test_oulu_npu_eye_file_gives_a_box_around_the_eyes(tmp_path: Path) -> None:
    path = tmp_path / "1_1_01_1.txt"  # frame,x_left_eye,y_left_eye,x_right_eye,y_right_eye
    path.write_text("1,500,800,600,800\n2,0,0,0,0\n")  # numbered from 1
    table = faces.read_box_file(path, "eyes")
    assert set(table) == {0, 1} and table[1] is None
    # 2.4 x 3 eye distances (100 px), centred on the eyes' midpoint, the eye line 0.4 of the
    # way down (box_from_eyes' rule): by hand, x = 550 - 120, y = 800 - 0.4 * 300 (any y passed)
    assert table[0] == (430, 680, 240, 300)


@pytest.mark.parametrize(
    "name,format,text,message",
    [
        ("a.face", "xywh", "0 1 2 x 4\n", "line 1"),
        ("a.face", "corners", "0,1,2,3\n", "line 1"),
        ("a.txt", "eyes", "1,2,3\n", "line 1"),
        ("a.csv", "csv", "0 1 2 3 4\n", "format must be one of"),
        ("missing.face", "xywh", None, "cannot read"),
    ],
)
def test_a_bad_box_file_is_a_clip_error(tmp_path: Path, name, format, text, message) -> None:
    """A format none of them is a layout's mistake: a DataError, not a clip's (ClipError), which
    would have sent every clip to the detector without a word (review)."""
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    error = ClipError if format != "csv" else DataError
    with pytest.raises(error, match=message) as err:
        faces.read_box_file(path, format)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_database_boxes_are_looked_up_by_frame_index_not_detected(tmp_path: Path) -> None:
    boxes = tmp_path / "clip.face"
    boxes.write_text("".join(f"{i} {i} 0 30 30\n" for i in range(10)))
    clip = Clip(
        tmp_path / "clip", "clip", "1", "bonafide", "bonafide", face_boxes=FaceBoxes(boxes, "xywh")
    )
    frames = np.zeros((3, 60, 80, 3), np.uint8)  # blank: a detector would find nothing
    found = faces.FaceFinder(faces.HAAR).boxes(clip, frames, [1, 5, 9])
    assert found == faces.Found([(1, 0, 30, 30), (5, 0, 30, 30), (9, 0, 30, 30)], True)
    found = faces.FaceFinder(faces.HAAR, shipped=False).boxes(clip, frames, [1, 5, 9])
    assert found == faces.Found([None, None, None], False)


def test_the_decoder_crops_to_the_database_boxes(tmp_path: Path) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    for i, frame in enumerate(raw):
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    boxes = tmp_path / "clip.face"
    boxes.write_text("0 0 0 0 0\n1 30 10 20 20\n2 0 0 0 0\n3 2 2 16 16\n")
    clip = Clip(folder, "clip", "1", "attack", "print", face_boxes=FaceBoxes(boxes, "xywh"))
    decoded = pipeline.decoder(2, faces.FaceFinder(faces.HAAR))(clip)  # frames 1 and 3
    expected = prepare_frames(raw[[1, 3]], [(30, 10, 20, 20), (2, 2, 16, 16)])
    assert decoded.no_face == 0 and decoded.shipped_boxes
    np.testing.assert_array_equal(decoded.frames, expected)
    decoded = pipeline.decoder(4, faces.FaceFinder(faces.HAAR))(clip)
    assert decoded.no_face == 2  # frames 0 and 2 have zeros


def face_in_a_corner() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A 240x320 frame with the synthetic face in its top-left quarter, and Haar's box of it."""
    frame = np.full((240, 320, 3), 90, np.uint8)
    frame[:160, :160] = synthetic_face_frame()
    (box,) = faces.detect_faces([frame], faces.HAAR)
    assert box is not None and box[1] + box[3] / 2 < 90  # well above the middle
    return frame, box


def upside_down(box: tuple[int, int, int, int], height: int) -> tuple[int, int, int, int]:
    """The box as drawn on the frame flipped top to bottom (Bob's MSU-MFSD reader flips some)."""
    x, y, w, h = box
    return x, height - y - h, w, h


def corners_file(path: Path, boxes: list) -> Path:
    """An MSU-MFSD .face file: frame,x1,y1,x2,y2 per frame."""
    path.write_text("".join(f"{i},{x},{y},{x + w},{y + h}\n" for i, (x, y, w, h) in boxes))
    return path


def test_boxes_to_verify_are_used_where_the_detector_agrees(tmp_path: Path) -> None:
    frame, haar = face_in_a_corner()
    frames = np.stack([frame, frame])
    x, y, w, h = haar
    larger = (x - 10, y - 14, w + 20, h + 24)  # a database's own box: not the detector's
    clip = Clip(
        tmp_path / "clip",
        "clip",
        "5",
        "bonafide",
        "bonafide",
        face_boxes=FaceBoxes(
            corners_file(tmp_path / "a.face", [(0, larger), (9, larger)]), "corners", verify=True
        ),
    )
    assert faces.FaceFinder(faces.HAAR).boxes(clip, frames, [0, 9]) == faces.Found(
        [larger] * 2, True
    )

    flipped = upside_down(larger, 240)
    clip = replace(
        clip,
        face_boxes=replace(
            clip.face_boxes, path=corners_file(tmp_path / "b.face", [(0, flipped), (9, flipped)])
        ),
    )
    found = faces.FaceFinder(faces.HAAR).boxes(clip, frames, [0, 9])
    assert found.boxes == [haar, haar] and not found.shipped
    assert found.disagreement == f"frame 0: the database's box {flipped}, haar's {haar}"
    # not verified, the same file is used as it is
    unverified = replace(clip, face_boxes=replace(clip.face_boxes, verify=False))
    assert faces.FaceFinder(faces.HAAR).boxes(unverified, frames, [0, 9]) == faces.Found(
        [flipped] * 2, True
    )
    # a detector that sees no face is no evidence against the database
    blank = np.full_like(frames, 90)
    assert faces.FaceFinder(faces.HAAR).boxes(clip, blank, [0, 9]) == faces.Found(
        [flipped] * 2, True
    )
    # the decoder carries the reason to the extraction's records
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    decoded = pipeline.decoder(2, faces.FaceFinder(faces.HAAR))(replace(clip, path=folder))
    assert not decoded.shipped_boxes and decoded.set_aside == found.disagreement
    np.testing.assert_array_equal(decoded.frames, prepare_frames(frames, [haar, haar]))


def test_haar_finds_a_synthetic_face_and_not_a_wall() -> None:
    frame = synthetic_face_frame()
    (box,) = faces.detect_faces([frame], faces.HAAR)
    assert box is not None
    x, y, w, h = box
    assert 40 < x + w / 2 < 120 and 30 < y + h / 2 < 110  # around the drawn head
    # OpenCV's cascade on the frame as it is (160 px: not shrunk), its largest box (review)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + faces.HAAR_FACE)
    gray = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
    found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=4, minSize=(20, 20))
    assert tuple(box) == tuple(int(v) for v in max(found, key=lambda b: b[2] * b[3]))
    assert faces.detect_faces([np.full((160, 160, 3), 120, np.uint8)], faces.HAAR) == [None]


@pytest.mark.skipif(faces.keras_backend() != "tensorflow", reason="MTCNN runs on TensorFlow")
def test_mtcnn_finds_a_synthetic_face_and_not_a_wall() -> None:
    frame = synthetic_face_frame()
    wall = np.full((160, 160, 3), 120, np.uint8)
    box, none = faces.detect_faces([frame, wall], faces.MTCNN)
    assert box is not None and none is None
    x, y, w, h = box
    assert 40 < x + w / 2 < 120 and 30 < y + h / 2 < 110
    assert faces.resolve_detector("auto") == faces.MTCNN
    assert faces.detector_version(faces.MTCNN).startswith("mtcnn ")


FALLBACK = """
    import logging, sys
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from core.data.clips import DataError
    from core.features import faces
    print(faces.resolve_detector("auto"))
    try:
        faces.resolve_detector("mtcnn")
    except DataError as err:
        print("error:", err)
"""


def test_haar_is_the_fallback_where_mtcnn_cannot_run() -> None:
    """A process on the JAX backend cannot run MTCNN (TensorFlow models): auto falls back to
    Haar with a warning, and asking for MTCNN by name is a clear error."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FALLBACK)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "haar"
    assert lines[1].startswith("error: face detector 'mtcnn' cannot run here")
    assert "TensorFlow backend" in lines[1]
    assert "Haar cascade, not MTCNN" in done.stderr


def test_unknown_detector_is_a_data_error() -> None:
    with pytest.raises(DataError, match="one of auto, mtcnn, haar"):
        faces.resolve_detector("dlib")


def test_haar_without_its_cascade_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    faces._cascade.cache_clear()
    monkeypatch.setattr(faces, "HAAR_FACE", "no_such_cascade.xml")
    try:
        assert "Haar" in faces.haar_unavailable()
        with pytest.raises(DataError, match="'haar' cannot run here.*cascade"):
            faces.resolve_detector("haar")
    finally:
        faces._cascade.cache_clear()
