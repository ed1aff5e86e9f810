"""The embedded synthetic PAD set: a small, seeded demonstration set written as real video files.

With no ``--data`` the sweep runs on this set (SPEC §4), read through the same loader as user
data. Every clip is drawn, not filmed: the faces are cartoons of no one. 32 subjects, each a
distinct face and room, in the set's own split folders: 16 subjects in ``train/``, 8 in ``dev/``
and 8 in ``test/`` (dev and test figures move in steps of 1/16 bona fide and 1/8 per species).
Per subject, under ``<split>/``:

- ``real/subjectNN_session{1,2}.avi``: bona fide, filmed close with a hand-held camera (the frame
  drifts a few pixels): head sway, nod, roll, scale changes and turns (yaw: the face slides
  sideways, the far eye narrows, an ear shows), blinks, and the subject speaks throughout, so the
  mouth is open, wide, teeth showing, in almost every frame; fresh camera noise every frame;
  session 2 has other lighting and motion.
- ``attack/print/subjectNN_print.avi``: a still photo printed with a halftone dot screen, paper
  tint and border, slightly bent, held still in front of another room.
- ``attack/replay/subjectNN_replay.avi``: a bona fide recording shown on a screen: bezel, colour
  cast, raised black level, moire, flicker and a rolling refresh band; the face moves and speaks.
- ``attack/photo/subjectNN_photo.avi``: a "perfect photo": frame ``PHOTO_FRAME`` of the subject's
  session-1 clip, repeated. There the subject pauses between words, facing the camera, eyes open,
  mouth closed, as one poses for a photo. Every frame is a bona fide frame, so a frame head
  cannot see it; only the sequence shows a face that never speaks, blinks nor turns, which a head
  reading the whole clip (a recurrent head's max over time) can learn from 16 subjects.

20 frames of 160x160 at 10 fps per clip, Motion-JPEG in AVI written by OpenCV's own encoder (every
frame a key frame, byte-identical for one seed). The set is built in a temporary folder and
renamed into place, with a manifest (``SYNTHETIC_PAD_SET.json``) that the loader recognises.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from core.constants import SPLITS
from core.data.clips import SYNTHETIC_MARKER, DataError

log = logging.getLogger(__name__)

VERSION = 3  # bump whenever the generated content changes: old copies are then rebuilt
SUBJECTS = 32  # the first half in train/, a quarter each in dev/ and test/: 16, 8 and 8
FRAMES = 20
SIZE = 160
FPS = 10
BONAFIDE_SESSIONS = 2
PHOTO_FRAME = FRAMES // 2  # the frame of session 1 that the photo attack freezes
SUBJECT_BYTES = 930_000  # a subject's five clips on disk (a set: 29 MB), checked before writing
NOISE_SIGMA = 2.5  # camera sensor noise, grey levels
SHAKE_SIGMA = 2.0  # hand-held camera: a random walk of the frame's offset, pixels per frame
MOUTH_OPEN = 18.0  # half-height in pixels of the lips' opening at its widest ("aah")
TALKING = (0.9, 0.5)  # mouth opening = clip(level + swing * sin(...), 0, 1): speaking throughout


def synthetic_dataset(root: str | os.PathLike, seed: int = 0) -> Path:
    """Write (or reuse) the synthetic PAD set for ``seed`` under ``root``; return its folder.

    The folder is ``root/synthetic-pad-v<VERSION>-seed<seed>``. A complete copy (manifest present,
    every file's size and hash as listed) is reused untouched; otherwise the set is generated in a
    temporary sibling folder and renamed into place, so readers never see half a set and
    concurrent callers end with one complete copy.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise DataError(f"synthetic seed must be an integer >= 0, got {seed!r}")
    root = Path(root).expanduser()
    target = root / f"synthetic-pad-v{VERSION}-seed{seed}"
    if is_complete(target, seed):
        log.debug("reusing synthetic PAD set %s", target)
        return target
    root.mkdir(parents=True, exist_ok=True)
    needed, free = SUBJECTS * SUBJECT_BYTES, shutil.disk_usage(root).free
    if free < needed:  # OpenCV writes a clip short without a word: "0 decode back" (probe)
        raise DataError(
            f"{root}: the synthetic set needs {needed / 1e6:.0f} MB, and its disk has "
            f"{free / 1e6:.1f} MB free: free some room, or give --cache-dir on a larger disk"
        )
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    try:
        write_synthetic_set(tmp, seed)
        _move_into_place(tmp, target, seed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("synthetic PAD set written to %s in %.1f s", target, time.perf_counter() - started)
    return target


def is_complete(folder: Path, seed: int) -> bool:
    """True when ``folder`` holds this version's set for ``seed`` with every file as listed."""
    try:
        manifest = json.loads((folder / SYNTHETIC_MARKER).read_text())
        if manifest.get("version") != VERSION or manifest.get("seed") != seed:
            return False
        for name, entry in manifest["files"].items():
            data = (folder / name).read_bytes()
            if len(data) != entry["bytes"] or _digest(data) != entry["blake2b"]:
                return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return True


def _move_into_place(tmp: Path, target: Path, seed: int) -> None:
    for _ in range(5):
        try:
            os.rename(tmp, target)
            return
        except OSError:
            if is_complete(target, seed):  # another process finished first: its copy is ours
                return
            # an incomplete or outdated copy: set it aside, then try again
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            try:
                os.rename(target, aside / "old")
            except OSError:
                pass  # someone else moved it already
            shutil.rmtree(aside, ignore_errors=True)
    raise DataError(f"{target}: could not put the synthetic set in place (busy folder?)")


def write_synthetic_set(folder: Path, seed: int) -> dict:
    """Generate every clip and the manifest into ``folder``; return the manifest."""
    files: dict[str, dict] = {}
    for subject in range(1, SUBJECTS + 1):
        face = Face.random(np.random.default_rng([seed, subject, 0]), subject + seed)
        sessions = [
            _bonafide(face, np.random.default_rng([seed, subject, session]))
            for session in range(1, BONAFIDE_SESSIONS + 1)
        ]
        clips = {clip_path(subject, f"session{i}"): s for i, s in enumerate(sessions, 1)}
        clips[clip_path(subject, "print")] = _print_attack(
            face, np.random.default_rng([seed, subject, 10])
        )
        clips[clip_path(subject, "replay")] = _replay_attack(
            face, np.random.default_rng([seed, subject, 11])
        )
        clips[clip_path(subject, "photo")] = [sessions[0][PHOTO_FRAME]] * FRAMES
        for name, frames in clips.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_video(path, frames)
            data = path.read_bytes()
            files[name] = {"bytes": len(data), "blake2b": _digest(data)}
    manifest = {
        "name": "vggface-heads synthetic PAD set",
        "note": "synthetic demonstration data: drawn faces of no one, not for reporting results",
        "version": VERSION,
        "seed": seed,
        "subjects": SUBJECTS,
        "frames_per_clip": FRAMES,
        "size": [SIZE, SIZE],
        "fps": FPS,
        "codec": "MJPG/avi",
        "attack_types": ["print", "replay", "photo"],
        "files": dict(sorted(files.items())),
    }
    (folder / SYNTHETIC_MARKER).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def split_of(subject: int) -> str:
    """The split folder of ``subject`` (1-based): the first half train, a quarter dev, the rest
    test (more subjects to learn from than to be judged on, as in OULU-NPU and Replay-Attack)."""
    position = 4 * (subject - 1) // SUBJECTS  # 0..3
    return SPLITS[max(0, position - 1)]


def clip_path(subject: int, kind: str) -> str:
    """Relative path of a clip: ``kind`` is ``session1``/``session2`` (bona fide) or a species."""
    name = f"subject{subject:02d}_{kind}.avi"
    folder = "real" if kind.startswith("session") else f"attack/{kind}"
    return f"{split_of(subject)}/{folder}/{name}"


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    """Write RGB frames as MJPG, then decode the file back: a codec that fails is an error here."""
    fourcc = cv2.VideoWriter_fourcc(*"MJPG")
    # OpenCV's own MJPEG encoder: same bytes whatever FFmpeg is installed
    writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, fourcc, FPS, (SIZE, SIZE))
    if not writer.isOpened():
        writer = cv2.VideoWriter(str(path), fourcc, FPS, (SIZE, SIZE))
    if not writer.isOpened():
        raise DataError(f"{path}: this OpenCV cannot write MJPG video")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    cap = cv2.VideoCapture(str(path))
    decoded = 0
    while cap.grab():
        decoded += 1
    cap.release()
    if decoded != len(frames):
        full = shutil.disk_usage(path.parent).free < SIZE * SIZE * 3 * len(frames)  # a clip, raw
        why = ": its disk is full, free some room" if full else ""
        raise DataError(f"{path}: wrote {len(frames)} frames but {decoded} decode back{why}")


# --- drawing -------------------------------------------------------------------------------------

SKIN_TONES = np.array(  # RGB, light to dark
    [[241, 194, 167], [224, 172, 138], [198, 134, 100], [161, 102, 74], [110, 70, 50]], float
)
HAIR_COLOURS = np.array(
    [[30, 22, 18], [70, 45, 30], [150, 110, 60], [200, 170, 110], [120, 50, 25], [140, 140, 140]],
    float,
)
EYE_COLOURS = np.array([[60, 40, 25], [70, 100, 140], [70, 110, 70], [40, 30, 25]], float)


@dataclass(frozen=True)
class Face:
    """One synthetic subject: the look of the face and of the room it is filmed in."""

    skin: np.ndarray
    hair: np.ndarray
    eyes: np.ndarray
    shirt: np.ndarray
    half_width: float
    half_height: float
    eye_gap: float
    mouth_width: float
    hair_style: int
    room: np.ndarray  # (SIZE, SIZE, 3) float background, RGB
    sprites: dict = field(default_factory=dict, compare=False, repr=False)  # drawings, reused

    @staticmethod
    def random(rng: np.random.Generator, index: int) -> Face:
        """A face and room drawn from ``rng``; ``index`` cycles skin and hair so subjects differ."""
        skin = SKIN_TONES[(2 * index) % len(SKIN_TONES)] + rng.normal(0, 6, 3)
        half_width = rng.uniform(40, 44)  # filmed close: the face fills the frame
        return Face(
            skin=np.clip(skin, 0, 255),
            hair=HAIR_COLOURS[index % len(HAIR_COLOURS)],
            eyes=EYE_COLOURS[rng.integers(len(EYE_COLOURS))],
            shirt=rng.uniform(30, 220, 3),
            half_width=half_width,
            half_height=half_width * rng.uniform(1.22, 1.36),
            eye_gap=half_width * rng.uniform(0.36, 0.46),
            mouth_width=half_width * rng.uniform(0.3, 0.42),
            hair_style=int(rng.integers(3)),
            room=_room(rng),
        )


def _room(rng: np.random.Generator) -> np.ndarray:
    """A plain indoor background: a wall colour with a gradient, a door or shelf, a lamp glow."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    wall = rng.uniform(90, 210, 3)
    tilt = rng.uniform(-0.25, 0.25, 2)
    room = wall.astype(np.float32) * (1 + tilt[0] * (x - 0.5) + tilt[1] * (y - 0.5))[..., None]
    room = np.ascontiguousarray(room, dtype=np.float32)
    x0 = int(rng.integers(0, SIZE - 40))
    colour = rng.uniform(40, 200, 3).tolist()
    cv2.rectangle(room, (x0, int(rng.integers(5, 40))), (x0 + 36, SIZE), colour, -1)
    glow_x, glow_y = rng.uniform(0, 1, 2)
    glow = np.exp(-((x - glow_x) ** 2 + (y - glow_y) ** 2) / 0.05) * rng.uniform(20, 50)
    return np.clip(room + glow[..., None], 0, 255)


def _sprite(
    face: Face, part: str, eyes_open: bool = True, mouth_open: float = 0.0, yaw: float = 0.0
) -> tuple:
    """A drawing of the face (cached on it): ("head", eyes, mouth, yaw) or ("shoulders",)."""
    key = (part, eyes_open, mouth_open, yaw)
    if key not in face.sprites:
        if part == "shoulders":
            face.sprites[key] = _shoulders_sprite(face)
        else:
            face.sprites[key] = _head_sprite(face, eyes_open, mouth_open, yaw)
    return face.sprites[key]


def _shoulders_sprite(face: Face) -> tuple[np.ndarray, np.ndarray]:
    """Shirt and shoulders on a SIZE x SIZE canvas; returns (RGB float, alpha)."""
    rgb = np.zeros((SIZE, SIZE, 3), np.float32)
    alpha = np.zeros((SIZE, SIZE), np.float32)
    centre = (SIZE // 2, round(SIZE * 1.12))
    axes = (round(face.half_width * 2.5), round(face.half_height * 1.15))
    cv2.ellipse(rgb, centre, axes, 0, 0, 360, face.shirt.tolist(), -1, cv2.LINE_AA)
    cv2.ellipse(alpha, centre, axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    collar = (round(face.half_width * 0.5), round(face.half_height * 0.3))
    cv2.ellipse(
        rgb,
        (SIZE // 2, centre[1] - axes[1]),
        collar,
        0,
        0,
        180,
        (face.skin * 0.8).tolist(),
        -1,
        cv2.LINE_AA,
    )
    return rgb, alpha


def _head_sprite(
    face: Face, eyes_open: bool, mouth_open: float, yaw: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Head, hair and neck drawn on a SIZE x SIZE canvas, centred; returns (RGB float, alpha).

    ``yaw`` (-1..1) turns the head: the eyes, nose and mouth slide towards the side it turns to,
    the far eye and the mouth narrow, the nose points that way and the ear of the other side shows.
    """
    scale = 3  # drawn 3x larger with sub-pixel coordinates, then shrunk: smooth edges
    side = SIZE * scale
    rgb = np.zeros((side, side, 3), np.float32)
    alpha = np.zeros((side, side), np.float32)

    def p(x: float, y: float) -> tuple[int, int]:
        return round(x * scale), round(y * scale)

    def r(a: float, b: float) -> tuple[int, int]:
        return round(a * scale), round(b * scale)

    cx, cy = SIZE / 2, SIZE * 0.46
    hw, hh = face.half_width, face.half_height
    skin = face.skin.tolist()
    shade = (face.skin * 0.8).tolist()
    hair = face.hair.tolist()
    turn = 0.4 * hw * yaw  # how far the face's midline moves
    fx = cx + turn

    def fill(draw, colour, *args) -> None:  # draw on the picture and on its alpha mask
        draw(rgb, *args, colour, -1)
        draw(alpha, *args, 1.0, -1)

    # neck (its foot hides under the shirt), hair behind the head, head
    fill(cv2.rectangle, shade, p(cx - hw * 0.45, cy + hh * 0.6), p(cx + hw * 0.45, SIZE * 1.2))
    back = cx - 0.25 * turn  # the back of the head shows on the side away from the turn
    if face.hair_style != 1:
        fill(cv2.ellipse, hair, p(back, cy - hh * 0.1), r(hw * 1.12, hh * 1.05), 0, 0, 360)
    if abs(yaw) > 0.2:  # the ear on the side away from the turn
        ear = cx - np.sign(yaw) * hw * 0.97
        fill(cv2.ellipse, shade, p(ear, cy), r(hw * 0.2 * abs(yaw), hh * 0.2), 0, 0, 360)
    fill(cv2.ellipse, skin, p(cx, cy), r(hw, hh), 0, 0, 360)
    # hair on top: a cap, a fringe or a short crop
    top = {0: (180, 360), 1: (190, 350), 2: (170, 370)}[face.hair_style]
    fill(cv2.ellipse, hair, p(back, cy - hh * 0.35), r(hw * 1.04, hh * 0.72), 0, *top)
    if face.hair_style == 2:
        crop = p(back - hw * 0.3, cy - hh * 0.55), r(hw * 0.7, hh * 0.3)
        fill(cv2.ellipse, hair, *crop, 15, 0, 360)
    # eyes: dark sockets and brows make the eye band darker than the cheeks, as in real faces
    eye_y = cy - hh * 0.12
    for side_sign in (-1, 1):
        near = 1 - 0.5 * abs(yaw) * (side_sign * yaw > 0)  # the eye turned away narrows
        ex = fx + side_sign * face.eye_gap * (1 - 0.25 * abs(yaw))
        cv2.ellipse(rgb, p(ex, eye_y), r(hw * 0.32 * near, hh * 0.15), 0, 0, 360, shade, -1)
        cv2.line(
            rgb,
            p(ex - hw * 0.25 * near, eye_y - hh * 0.2),
            p(ex + hw * 0.25 * near, eye_y - hh * 0.22),
            np.minimum(face.hair * 0.6, face.skin * 0.45).tolist(),  # brows darker than skin
            round(2.4 * scale),
        )
        if eyes_open:
            cv2.ellipse(
                rgb, p(ex, eye_y), r(hw * 0.19 * near, hh * 0.07), 0, 0, 360, (200, 195, 190), -1
            )
            cv2.circle(rgb, p(ex, eye_y), round(hh * 0.075 * scale * near), face.eyes.tolist(), -1)
            cv2.ellipse(
                rgb,
                p(ex, eye_y - 0.3),
                r(hw * 0.2 * near, hh * 0.075),
                0,
                180,
                360,
                (25, 20, 20),
                round(0.9 * scale),
            )  # upper lid and lashes
            cv2.circle(rgb, p(ex, eye_y), round(hh * 0.035 * scale), (10, 10, 10), -1)
            cv2.circle(rgb, p(ex + 0.8, eye_y - 0.8), round(0.6 * scale), (250, 250, 250), -1)
        else:
            cv2.line(
                rgb,
                p(ex - hw * 0.2 * near, eye_y),
                p(ex + hw * 0.2 * near, eye_y + 0.5),
                (face.skin * 0.5).tolist(),
                round(1.2 * scale),
            )
    # nose: a shadow along one side and nostrils; its tip points where the head turns
    tip = fx + 2.5 + 0.6 * turn
    cv2.line(rgb, p(fx + 1, eye_y + 2), p(tip, cy + hh * 0.28), shade, round(1.5 * scale))
    for side_sign in (-1, 1):
        cv2.circle(
            rgb,
            p(tip - 2.5 + side_sign * 2.5, cy + hh * 0.3),
            round(1.1 * scale),
            (face.skin * 0.55).tolist(),
            -1,
        )
    # mouth: lips, opened wide when speaking, teeth and a dark inside
    mouth_y = cy + hh * 0.55
    width = face.mouth_width * (1 - 0.25 * abs(yaw)) * (1 + 0.5 * mouth_open)
    lips = (face.skin * np.array([0.85, 0.5, 0.5])).tolist()
    opening = MOUTH_OPEN * mouth_open
    cv2.ellipse(rgb, p(fx, mouth_y), r(width, 2.2 + opening), 0, 0, 360, lips, -1)
    if mouth_open > 0.1:
        cv2.ellipse(rgb, p(fx, mouth_y), r(width * 0.8, opening), 0, 0, 360, (45, 12, 15), -1)
        teeth = p(fx, mouth_y - opening * 0.55), r(width * 0.6, opening * 0.35)
        cv2.ellipse(rgb, *teeth, 0, 0, 360, (235, 232, 222), -1)
    else:
        cv2.line(
            rgb,
            p(fx - width, mouth_y),
            p(fx + width, mouth_y),
            (face.skin * 0.4).tolist(),
            round(0.8 * scale),
        )
    # soft shading towards the face's edge gives it volume (one per face, kept with its sprites)
    if "shading" not in face.sprites:
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / scale
        radial = ((xx - cx) / hw) ** 2 + ((yy - cy) / hh) ** 2
        face.sprites["shading"] = np.clip(1.08 - 0.22 * radial, 0.75, 1.08)[..., None]
    rgb *= face.sprites["shading"]
    rgb = cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return rgb, alpha


@dataclass(frozen=True)
class Motion:
    """Smooth head motion over a clip: sway, nod, roll, scale and turn, blinks and speech."""

    amplitude: np.ndarray  # dx, dy (pixels), roll (degrees), scale
    frequency: np.ndarray  # Hz, per component
    phase: np.ndarray
    blinks: frozenset[int]
    talking: np.ndarray  # mouth opening per frame, 0..1
    yaw: np.ndarray  # head turn per frame, -1..1
    shake: np.ndarray  # (FRAMES, 2): the hand-held camera's offset per frame, pixels

    @staticmethod
    def random(rng: np.random.Generator, avoid_blink: int | None = None) -> Motion:
        """Natural-looking motion, speaking throughout; on frame ``avoid_blink`` the subject
        pauses facing the camera, eyes open and mouth closed (the frame a photo attack freezes:
        one frame alone looks bona fide, only the sequence shows the face never speaks, blinks
        nor turns)."""
        t = np.arange(FRAMES)
        still = 0 if avoid_blink is None else avoid_blink
        starts = rng.choice(FRAMES - 2, size=int(rng.integers(1, 3)), replace=False)
        blinks = {int(s) + d for s in starts for d in (0, 1)}
        speed = rng.uniform(1.2, 2.4)  # radians per frame
        talk_phase = -np.pi / 2 - speed * still if avoid_blink is not None else rng.uniform(0, 7)
        level, swing = TALKING
        talking = np.clip(level + swing * np.sin(speed * t + talk_phase), 0, 1)
        turn_hz = rng.uniform(0.25, 0.5)
        turn_phase = -2 * np.pi * turn_hz * still / FPS + rng.choice([0, np.pi])
        if avoid_blink is None:
            turn_phase = rng.uniform(0, 2 * np.pi)
        yaw = rng.uniform(0.7, 1.0) * np.sin(2 * np.pi * turn_hz * t / FPS + turn_phase)
        phase = rng.uniform(0, 2 * np.pi, 4)
        frequency = rng.uniform(0.3, 0.9, 4)
        if avoid_blink is not None:
            blinks -= {avoid_blink}
            talking[avoid_blink] = 0.0
            yaw[avoid_blink] = 0.0
        return Motion(
            amplitude=np.array(
                [
                    rng.uniform(8, 14),
                    rng.uniform(3, 6),
                    rng.uniform(2, 5),
                    rng.uniform(0.04, 0.08),
                ]
            ),
            frequency=frequency,
            phase=phase,
            blinks=frozenset(blinks),
            talking=talking,
            yaw=yaw,
            shake=np.cumsum(rng.normal(0, SHAKE_SIGMA, (FRAMES, 2)), axis=0),
        )

    def pose(self, t: int) -> np.ndarray:
        """dx, dy, roll, scale-1 at frame ``t``."""
        return self.amplitude * np.sin(2 * np.pi * self.frequency * t / FPS + self.phase)


def _render_bonafide(
    face: Face, motion: Motion, light: np.ndarray, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Frames of the subject filmed live: the head moves over the room, the camera adds noise."""
    for t in range(FRAMES):
        mouth = round(float(motion.talking[t]) * 3) / 3  # four mouth shapes
        yaw = round(float(motion.yaw[t]) * 2) / 2  # five head turns
        dx, dy, roll, grow = motion.pose(t)
        frame = face.room
        # the head sways, nods, rolls and nears; the shoulders follow the sway a little
        head_move = cv2.getRotationMatrix2D((SIZE / 2, SIZE * 0.62), roll, 1 + grow)
        head_move[:, 2] += (dx, dy)
        body_move = np.float32([[1, 0, 0.4 * dx], [0, 1, 0.2 * dy]])
        for sprite, matrix in (
            (_sprite(face, "head", t not in motion.blinks, mouth, yaw), head_move),
            (_sprite(face, "shoulders"), body_move),
        ):
            rgb = cv2.warpAffine(sprite[0], matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
            mask = cv2.warpAffine(sprite[1], matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
            frame = frame * (1 - mask[..., None]) + rgb * mask[..., None]
        shake = np.float32([[1, 0, motion.shake[t, 0]], [0, 1, motion.shake[t, 1]]])
        frame = cv2.warpAffine(frame, shake, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT)
        yield _camera(frame * light.astype(np.float32), rng)


def _camera(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise, fresh every frame, and 8-bit quantisation."""
    noise = rng.standard_normal(frame.shape, dtype=np.float32)
    noise *= NOISE_SIGMA
    noise += frame.astype(np.float32, copy=False)
    noise += 0.5
    return np.clip(noise, 0, 255, out=noise).astype(np.uint8)


def _bonafide(face: Face, rng: np.random.Generator) -> list[np.ndarray]:
    light = rng.uniform(0.85, 1.1) * rng.uniform(0.94, 1.06, 3)  # each session its own lighting
    return list(_render_bonafide(face, Motion.random(rng, PHOTO_FRAME), light, rng))


def _print_attack(face: Face, rng: np.random.Generator) -> list[np.ndarray]:
    """A still, bent, halftone print of the subject on paper, held in front of another room."""
    source = next(_render_bonafide(face, Motion.random(rng, avoid_blink=0), np.ones(3), rng))
    photo = cv2.GaussianBlur(source.astype(np.float32), (0, 0), 0.7)  # printer resolution
    grey = photo.mean(axis=2, keepdims=True)
    photo = 0.75 * photo + 0.25 * grey  # inks: less saturated
    photo = 30 + photo * 0.8 * np.array([1.0, 0.97, 0.9])  # paper white, warm, lower contrast
    # halftone: each ink on its own rotated dot screen (the CMYK rosette)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    period = rng.uniform(3.0, 4.0)
    for channel, angle in enumerate(np.deg2rad([15, 75, 45]) + rng.uniform(0, 0.3)):
        u = (x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period
        v = (-x * np.sin(angle) + y * np.cos(angle)) * 2 * np.pi / period
        photo[..., channel] *= 0.82 + 0.18 * np.cos(u) * np.cos(v)
    # paper border around the picture
    border = int(rng.integers(8, 14))
    sheet = np.full((SIZE + 2 * border, SIZE + 2 * border, 3), 238.0, np.float32)
    sheet[border:-border, border:-border] = photo
    # hold the sheet so that the face is about life size, with a slight bend and tilt
    size = sheet.shape[0]
    scale = rng.uniform(0.8, 0.9) * SIZE / size
    corners = np.float32([[0, 0], [size, 0], [size, size], [0, size]])
    jitter = rng.uniform(-0.03, 0.03, (4, 2)) * size
    placed = (corners + jitter) * scale
    placed += (SIZE - placed.max(axis=0) - placed.min(axis=0)) / 2 + rng.uniform(-4, 4, 2)
    homography = cv2.getPerspectiveTransform(corners, placed.astype(np.float32))
    bend = rng.uniform(2, 4) * np.sin(np.pi * np.arange(size) / size)  # paper bows vertically
    map_x, map_y = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    bent = cv2.remap(
        sheet,
        map_x,
        map_y + bend[None, :].astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    bent *= (1 - 0.08 * np.cos(np.pi * np.arange(size) / size))[None, :, None]  # bend shading
    paper = cv2.warpPerspective(bent, homography, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones((size, size), np.float32), homography, (SIZE, SIZE))
    room = _room(rng)
    still = room * (1 - mask[..., None]) + paper * mask[..., None]
    return [_camera(still, rng) for _ in range(FRAMES)]


def _replay_attack(face: Face, rng: np.random.Generator) -> list[np.ndarray]:
    """A bona fide recording played on a phone or tablet screen held in front of the camera."""
    video = list(_render_bonafide(face, Motion.random(rng), np.ones(3), rng))
    room = _room(rng)
    screen_w, screen_h = int(SIZE * rng.uniform(0.78, 0.88)), int(SIZE * rng.uniform(0.82, 0.92))
    left = (SIZE - screen_w) // 2 + int(rng.integers(-4, 5))
    top = (SIZE - screen_h) // 2 + int(rng.integers(-4, 5))
    bezel = int(rng.integers(5, 9))
    cast = np.array([rng.uniform(0.85, 0.95), rng.uniform(0.95, 1.02), rng.uniform(1.05, 1.15)])
    y, x = np.mgrid[0:screen_h, 0:screen_w].astype(np.float32)
    # moire: the screen's pixel grid beating against the camera's, a slanted low-frequency wave
    angle, period = rng.uniform(0, np.pi), rng.uniform(5, 9)
    moire = 1 + 0.1 * np.cos(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
    stripes = np.stack(
        [1 + 0.04 * np.cos(2 * np.pi * x / 3 + k * 2 * np.pi / 3) for k in range(3)], axis=-1
    )  # RGB sub-pixel columns
    glare = 1 + 0.12 * np.clip(1 - np.abs(x - y - screen_w * 0.3) / 25, 0, 1)
    flicker_hz, flicker_phase = rng.uniform(2, 4), rng.uniform(0, 2 * np.pi)
    band_speed = rng.uniform(8, 14)
    frames = []
    for t, source in enumerate(video):
        content = cv2.resize(source, (screen_w, screen_h), interpolation=cv2.INTER_AREA)
        content = 18 + content.astype(np.float32) * 0.85 * cast  # raised black level, colour cast
        flicker = 1 + 0.07 * np.sin(2 * np.pi * flicker_hz * t / FPS + flicker_phase)
        band = 1 + 0.1 * np.exp(-(((y - (t * band_speed) % screen_h) / 6) ** 2))  # refresh roll
        content = content * (moire * flicker * band * glare)[..., None] * stripes
        frame = room.copy()
        cv2.rectangle(
            frame,
            (left - bezel, top - bezel),
            (left + screen_w + bezel, top + screen_h + bezel),
            (22, 22, 25),
            -1,
        )
        frame[top : top + screen_h, left : left + screen_w] = content
        frames.append(_camera(frame, rng))
    return frames
