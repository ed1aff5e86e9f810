"""Frame reading: evenly spaced, in order, from one clip; bad clips fail loudly; crop to a box.

Each test video carries its frame number in the pixels (8 black/white blocks, one bit each), so
decoded frames can be traced back to the exact index they came from, whatever the codec.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.data import frames as frames_module
from core.data.clips import ClipError, DataError
from core.data.frames import (
    fill_missing,
    frame_indices,
    prepare_frames,
    read_clip,
    read_frames,
    resize,
)

H, W = 48, 64
CODECS = [("MJPG", ".avi"), ("mp4v", ".mp4"), ("mp4v", ".mov"), ("MJPG", ".mkv")]


def encode(number: int) -> np.ndarray:
    """An RGB frame whose 8 blocks spell ``number`` in binary (robust to lossy codecs)."""
    image = np.full((H, W, 3), 40, np.uint8)
    for bit in range(8):
        if number >> bit & 1:
            image[16:32, bit * 8 : bit * 8 + 8] = 230
    return image


def decode(image: np.ndarray) -> int:
    """The number :func:`encode` wrote into ``image``."""
    return sum(1 << bit for bit in range(8) if image[20:28, bit * 8 + 2 : bit * 8 + 6].mean() > 128)


def write_video(path: Path, numbers: range | list[int], fourcc: str = "MJPG") -> Path:
    """A real video whose frames carry ``numbers``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25, (W, H))
    assert writer.isOpened(), f"cannot write {fourcc} {path.suffix} here"
    for number in numbers:
        writer.write(cv2.cvtColor(encode(number), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_frame_folder(folder: Path, numbers: range | list[int], suffix: str = ".png") -> Path:
    """A folder of frames named frame_1, frame_2, ... (natural, not lexical, order matters)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, number in enumerate(numbers, 1):
        cv2.imwrite(
            str(folder / f"frame_{i}{suffix}"), cv2.cvtColor(encode(number), cv2.COLOR_RGB2BGR)
        )
    return folder


def centres(n: int, k: int) -> list[int]:
    """The centres of ``k`` equal segments of ``n`` frames, by hand: what the readers must give
    (they were checked against the project's own ``frame_indices``: review)."""
    return [int((i + 0.5) * n / k) for i in range(k)]


def test_frame_indices_are_segment_centres() -> None:
    assert frame_indices(70, 7) == [5, 15, 25, 35, 45, 55, 65]
    assert all(frame_indices(n, k) == centres(n, k) for n in range(1, 300) for k in range(1, n))
    assert frame_indices(7, 7) == list(range(7))
    assert frame_indices(10, 1) == [5]
    for n in range(7, 200):
        indices = frame_indices(n, 7)
        assert indices == sorted(set(indices)), n  # distinct, in order
        assert indices[0] < n / 7 and indices[-1] >= n - n / 7  # spread over the whole clip
    with pytest.raises(DataError, match="frames_per_clip must be >= 1"):
        frame_indices(10, 0)


@pytest.mark.parametrize("fourcc,suffix", CODECS)
@pytest.mark.parametrize("n", [7, 30, 97])
def test_video_frames_evenly_spaced_in_order(
    tmp_path: Path, fourcc: str, suffix: str, n: int
) -> None:
    path = write_video(tmp_path / f"clip{suffix}", range(n), fourcc)
    out = read_frames(path, 7)
    assert out.shape == (7, H, W, 3) and out.dtype == np.uint8
    assert [decode(f) for f in out] == centres(n, 7)


@pytest.mark.parametrize("fourcc,suffix", CODECS[:2])
def test_sequential_fallback_gives_the_same_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fourcc: str, suffix: str
) -> None:
    path = write_video(tmp_path / f"clip{suffix}", range(41), fourcc)
    seeking = read_frames(path, 7)
    monkeypatch.setattr(frames_module, "_read_by_seeking", lambda cap, indices: None)
    sequential = read_frames(path, 7)
    assert [decode(f) for f in sequential] == [decode(f) for f in seeking] == centres(41, 7)


@pytest.mark.parametrize("reported", [300.0, 12.0])
def test_wrong_frame_count_falls_back_to_counting(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    reported: float,
) -> None:
    """A container that over- or under-reports its length must not shift or bunch frames."""
    path = write_video(tmp_path / "clip.avi", range(30))
    real_capture = cv2.VideoCapture

    class LyingCapture:  # wraps, not subclasses: subclassing the cv2 type crashes
        def __init__(self, *args: object) -> None:
            self._cap = real_capture(*args)

        def get(self, prop: int) -> float:
            return reported if prop == cv2.CAP_PROP_FRAME_COUNT else self._cap.get(prop)

        def __getattr__(self, name: str) -> object:
            return getattr(self._cap, name)

    monkeypatch.setattr(frames_module.cv2, "VideoCapture", LyingCapture)
    with caplog.at_level("DEBUG", logger="core.data.frames"):
        frames, indices = read_clip(path, 7)
    assert [decode(f) for f in frames] == indices == centres(30, 7)
    assert "reading sequentially" in caplog.text


def test_read_clip_gives_the_index_of_each_frame(tmp_path: Path) -> None:
    """The indices that per-frame annotations (a database's face boxes) are looked up by."""
    video = write_video(tmp_path / "clip.avi", range(23))
    frames, indices = read_clip(video, 5)
    assert [decode(f) for f in frames] == indices == centres(23, 5)
    folder = write_frame_folder(tmp_path / "clip", range(12))  # files numbered from 1
    frames, indices = read_clip(folder, 4)
    assert [decode(f) for f in frames] == indices == centres(12, 4)


def test_honest_videos_are_read_by_seeking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for fourcc, suffix in CODECS:
        path = write_video(tmp_path / f"clip{suffix}", range(50), fourcc)
        with caplog.at_level("DEBUG", logger="core.data.frames"):
            read_frames(path, 7)
    assert "reading sequentially" not in caplog.text


def test_frame_folder_natural_order_and_spacing(tmp_path: Path) -> None:
    folder = write_frame_folder(tmp_path / "clip", range(12))  # frame_10 sorts after frame_9
    out = read_frames(folder, 7)
    assert [decode(f) for f in out] == centres(12, 7)
    jpg = write_frame_folder(tmp_path / "jpg", range(9), ".jpg")
    assert [decode(f) for f in read_frames(jpg, 3)] == centres(9, 3)


def test_frames_come_from_one_clip_only(tmp_path: Path) -> None:
    a = write_video(tmp_path / "a.avi", range(0, 20))
    b = write_video(tmp_path / "b.avi", range(100, 135))
    c = write_frame_folder(tmp_path / "c", range(200, 210))
    for path, numbers in ((a, range(0, 20)), (b, range(100, 135)), (c, range(200, 210))):
        got = [decode(f) for f in read_frames(path, 7)]
        assert all(g in numbers for g in got), (path, got)
        assert got == [numbers[i] for i in centres(len(numbers), 7)]


def test_rgb_channel_order(tmp_path: Path) -> None:
    folder = tmp_path / "red"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(
            str(folder / f"{i}.png"),
            np.dstack([np.zeros((8, 8)), np.zeros((8, 8)), np.full((8, 8), 255)]),
        )  # BGR red
    out = read_frames(folder, 3)
    assert (out[..., 0] == 255).all() and (out[..., 2] == 0).all()


def test_grey_frames_become_three_channels(tmp_path: Path) -> None:
    folder = tmp_path / "grey"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((10, 12), 60 * i, np.uint8))
    out = read_frames(folder, 2)
    assert out.shape == (2, 10, 12, 3)  # frames 1 and 3 of 4, each grey in every channel
    assert (out[0] == 60).all() and (out[1] == 180).all()


def test_short_clips_are_a_clip_error(tmp_path: Path) -> None:
    video = write_video(tmp_path / "short.avi", range(5))
    with pytest.raises(ClipError, match=r"short\.avi: has 5 frames, needs 7"):
        read_frames(video, 7)
    assert read_frames(video, 5).shape[0] == 5
    folder = write_frame_folder(tmp_path / "three", range(3))
    with pytest.raises(ClipError, match="three: has 3 frames, needs 7"):
        read_frames(folder, 7)


def test_corrupt_and_empty_clips_are_clip_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    empty_file = tmp_path / "empty.avi"
    empty_file.write_bytes(b"")
    good = write_video(tmp_path / "good.mp4", range(40), "mp4v")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    empty_folder = tmp_path / "empty_folder"
    empty_folder.mkdir()
    (empty_folder / "notes.txt").write_text("no frames here")
    bad_image = write_frame_folder(tmp_path / "bad_image", range(5))  # all 5 are read
    (bad_image / "frame_3.png").write_bytes(b"not a png")
    for path in (noise, empty_file, truncated, empty_folder, bad_image):
        with pytest.raises(ClipError, match=path.name):
            read_frames(path, 5)
    with pytest.raises(ClipError, match="no such video"):
        read_frames(tmp_path / "missing.avi")
    text = tmp_path / "readme.txt"
    text.write_text("hi")
    with pytest.raises(ClipError, match="not a clip"):
        read_frames(text)


def test_truncated_avi_reads_only_frames_that_decode(tmp_path: Path, caplog) -> None:
    """MJPG/AVI cut short still opens and over-reports: no frame may be invented or repeated,
    and the cut is warned of (a probe's clip cut to a third scored without a word)."""
    good = write_video(tmp_path / "good.avi", range(60))
    cut = tmp_path / "cut.avi"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    capture, decoded = cv2.VideoCapture(str(cut)), 0  # what OpenCV decodes of it, counted
    while capture.read()[0]:
        decoded += 1
    capture.release()
    assert 7 <= decoded < 60  # a cut that leaves frames to read (either branch passed: review)
    got = [decode(f) for f in read_frames(cut, 7)]
    assert got == centres(decoded, 7)  # spread over what decodes, none invented or repeated
    (said,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert (
        said.startswith(f"{cut}: ")
        and f"{decoded} of the 60 frames its header counts decode" in said
    )
    caplog.clear()
    read_frames(good, 7)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_frames_of_different_sizes_are_a_clip_error(tmp_path: Path) -> None:
    folder = write_frame_folder(tmp_path / "mixed", range(4))
    cv2.imwrite(str(folder / "frame_5.png"), np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ClipError, match="differ in size"):
        read_frames(folder, 5)


def test_prepare_frames_resizes_to_network_input() -> None:
    small = np.random.default_rng(0).integers(0, 256, (3, 100, 120, 3), dtype=np.uint8)
    out = prepare_frames(small)
    assert out.shape == (3, 224, 224, 3) and out.dtype == np.uint8
    # shrinking averages (INTER_AREA): a 1-pixel checkerboard becomes flat grey, not aliased
    board = (np.indices((448, 448)).sum(axis=0) % 2 * 255).astype(np.uint8)
    big = np.repeat(board[None, ..., None], 3, axis=-1)
    assert np.abs(prepare_frames(big).astype(int) - 128).max() <= 1
    exact = np.zeros((1, 224, 224, 3), np.uint8)
    assert prepare_frames(exact).shape == (1, 224, 224, 3)


def test_prepare_frames_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="uint8 of shape"):
        prepare_frames(np.zeros((2, 10, 10), np.uint8))
    with pytest.raises(DataError, match="uint8 of shape"):
        prepare_frames(np.zeros((1, 10, 10, 3), np.float32))
    with pytest.raises(DataError, match="margin"):
        prepare_frames(np.zeros((1, 10, 10, 3), np.uint8), [None], margin=-1)
    with pytest.raises(DataError, match="2 face boxes for 1 frames"):
        prepare_frames(np.zeros((1, 10, 10, 3), np.uint8), [None, None])


def test_face_crop_uses_the_box_with_margin() -> None:
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[50:150, 100:200] = 255  # the "face": a white 100x100 square
    out = prepare_frames(frame[None], [(120, 70, 60, 60)], margin=0.2)
    # box 60 + 2 * 12 margin = an 84 square centred on (150, 100): all inside the white square
    assert (out == 255).all()


def test_face_crop_box_near_the_edge_stays_inside() -> None:
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[:, :50] = 255
    out = prepare_frames(frame[None], [(0, 0, 40, 40)], margin=0.5)
    # an 80 square pushed back inside the frame: left 50 of 80 columns white
    expected = resize(frame[:80, :80], 224)
    assert np.array_equal(out[0], expected)


def test_a_frame_without_a_face_is_cropped_like_the_nearest_frame_with_one() -> None:
    frames = np.zeros((4, 100, 160, 3), np.uint8)
    frames[:, 10:50, 10:50] = 255  # a white square where frame 1's face box is
    boxes = [None, (10, 10, 40, 40), None, None]
    out = prepare_frames(frames, boxes, margin=0)
    assert (out == 255).all()  # every frame cropped to frame 1's box, not to its centre
    assert fill_missing([None, (1, 1, 1, 1), None, (3, 3, 3, 3), None]) == [
        (1, 1, 1, 1),
        (1, 1, 1, 1),
        (1, 1, 1, 1),  # a tie goes to the earlier frame
        (3, 3, 3, 3),
        (3, 3, 3, 3),
    ]


def test_a_clip_without_any_face_is_cropped_to_the_centre_square() -> None:
    frame = np.zeros((100, 160, 3), np.uint8)
    frame[:, 30:130] = 200  # the centre square
    out = prepare_frames(np.stack([frame, frame]), [None, None])
    assert (out == 200).all()
    whole = prepare_frames(np.stack([frame, frame]))  # no boxes: the whole frame, squashed
    assert not (whole == 200).all()
