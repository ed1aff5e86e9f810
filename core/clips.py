"""A clip: one video or one folder of frames, with what is known of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Label = Literal["bonafide", "attack"]
Split = Literal["train", "dev", "test"]
SPLITS: tuple[Split, ...] = ("train", "dev", "test")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Clip:
    """One clip. ``attack_type`` is "bonafide" for bona fide clips, else e.g. "print/hand"."""

    path: Path  # a video file or a folder of frames
    clip_id: str  # unique within its dataset, stable (relative path without suffix)
    subject: str
    label: Label
    attack_type: str
    split: Split | None = None  # None until a split is assigned
