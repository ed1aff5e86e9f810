"""A clip: one video or one folder of frames, with what is known of it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Label = Literal["bonafide", "attack"]  # core.constants.LABELS
Split = Literal["train", "dev", "test"]  # core.constants.SPLITS
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")  # a database's clips (its cache key's files)
# what predict.py reads besides: the containers a phone, camera or browser writes that OpenCV's
# FFmpeg reads (probe: .m4v refused). Not a database's: a folder would yield other clips than it
# did, another study and every clip extracted again (review)
READABLE_VIDEO_SUFFIXES = (
    *VIDEO_SUFFIXES,
    ".m4v",
    ".webm",
    ".3gp",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".mts",
)
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")  # OpenCV decodes
# Written by core.data.synthetic at the root of the set it makes; the loader recognises it by name.
SYNTHETIC_MARKER = "SYNTHETIC_PAD_SET.json"


BoxFormat = Literal["xywh", "corners", "eyes"]


class DataError(ValueError):
    """A user's data or data option is unusable; the one-line message names the path or field."""


class NoUsableClip(DataError):
    """A folder holds no clip its layout reads; ``layout`` names the layout it was read as."""

    def __init__(self, message: str, layout: str) -> None:
        super().__init__(message)
        self.layout = layout


class StrayFiles(DataError):
    """A folder of one database's clips beside files not named as its clips: its protocol reads
    it, skipping the others. ``fix(how)`` says so with ``how`` naming the protocol as the command
    in use takes it (``--protocol msu``; a cross-domain database's ``--db msu=PATH:msu``)."""

    def __init__(self, said: str, protocol: str, layout: str, strays: int = 1) -> None:
        self.said, self.protocol, self.layout, self.strays = said, protocol, layout, strays
        super().__init__(self.fix(f"--protocol {protocol}", "--protocol generic"))

    def fix(self, how: str, own: str | None = None) -> str:
        """The refusal, the protocol named by ``how``; ``own``: how one's own folder is read.
        First the fix that keeps every clip (a real clip misnamed was only to be skipped: probe)."""
        other = f"; {own} reads a folder of your own" if own else ""
        them = "it" if self.strays == 1 else "them"
        keep = f"name {them} as {self.layout} names its clips, or move {them} out; or"
        skip = "skipping the others with a warning"
        return f"{self.said}: {keep} {how} reads it as {self.layout}, {skip}{other}"


class ClipError(DataError):
    """One clip cannot be used (unreadable, empty, too short): callers skip it, warn and count."""


@dataclass(frozen=True)
class FaceBoxes:
    """The face boxes a database ships for one clip: the file, how its lines read
    (:func:`core.features.faces.read_box_file`) and whether they are used only where the face
    detector agrees with them (``verify``: a database whose boxes were drawn on frames oriented
    as its own reader turns them, which OpenCV may decode otherwise)."""

    path: Path
    format: BoxFormat
    verify: bool = False

    @classmethod
    def at(cls, path: Path, format: BoxFormat, verify: bool = False) -> FaceBoxes | None:
        """The boxes in file ``path`` when it exists, else None."""
        return cls(path, format, verify) if path.is_file() else None


@dataclass(frozen=True)
class Clip:
    """One clip. ``attack_type`` is the attack species (PAI) as the literature groups it
    ("print", "replay", ...), "bonafide" for bona fide clips."""

    path: Path  # a video file or a folder of frames
    clip_id: str  # unique within its dataset, stable (relative path without suffix)
    subject: str
    label: Label
    attack_type: str
    split: Split | None = None  # None until a split is assigned
    # the dataset's own columns, e.g. (("session", "1"), ("phone", "3")) or (("support", "hand"),)
    attributes: tuple[tuple[str, str], ...] = ()
    face_boxes: FaceBoxes | None = None  # the face boxes the database ships for this clip, if any

    @property
    def file(self) -> str:
        """The clip's path in its database's folder: its id with the video's suffix (a folder of
        frames: its id), for a user to paste (scores.csv's clip ids have no suffix)."""
        named = self.clip_id.rsplit("/", 1)[-1] == self.path.name  # a folder, or no suffix
        return self.clip_id if named else self.clip_id + self.path.suffix

    @property
    def columns(self) -> dict[str, str]:
        """:attr:`attributes` as a dict (column -> value)."""
        return dict(self.attributes)


def frame_files(folder: Path) -> list[Path]:
    """Frame images directly in ``folder``, in natural order (frame2 before frame10); hidden
    files (macOS's ``._frame1.jpg``) are not frames."""
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in FRAME_SUFFIXES
        and not p.name.startswith(".")
        and utf8_name(p.name)  # skipped, and said, where the clip is found
        and p.is_file()
    ]
    return sorted(files, key=_natural_key)


def _natural_key(path: Path) -> list[int | str]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name.lower())]


def shown_path(path: str | os.PathLike) -> str:
    """A path as a UTF-8 line can hold it: a name's bytes that are not UTF-8 as ``\\xe9``
    (printed as they are, they raised UnicodeEncodeError on a UTF-8 stdout)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def utf8_name(name: str) -> bool:
    """Whether a file name read from the disk is UTF-8 (Python keeps other bytes as surrogates,
    which no UTF-8 log, CSV, JSON or MLflow record takes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
