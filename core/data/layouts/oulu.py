"""OULU-NPU (Boulkenafet et al., FG 2017): ``Phone_Session_User_File.avi``.

File 1 is bona fide, 2-3 print (two printers), 4-5 replay (two displays); users 1-20 train, 21-35
dev, 36-55 test (the protocol's own split, whatever folders the files sit in). Each video's face
boxes ship in a ``.txt`` beside it. Recognised when every video's name has that form.
"""

from __future__ import annotations

import re
from pathlib import Path

from core.data.clips import Clip, Label, Split
from core.data.layouts.registry import Found, Layout, register_layout
from core.data.subjects import clip_id

OULU_NAME = re.compile(r"^(\d)_(\d)_(\d{2})_(\d)$")
OULU_FILES: dict[int, tuple[Label, str]] = {
    1: ("bonafide", "bonafide"),
    2: ("attack", "print/1"),
    3: ("attack", "print/2"),
    4: ("attack", "replay/1"),
    5: ("attack", "replay/2"),
}
OULU_USERS: tuple[tuple[range, Split], ...] = (
    (range(1, 21), "train"),
    (range(21, 36), "dev"),
    (range(36, 56), "test"),
)


def read_oulu(root: Path, candidates: list[Path], pattern: re.Pattern[str] | None) -> Found:
    found: list[tuple[Clip, bool]] = []
    skipped: list[tuple[Path, str]] = []
    ids: set[str] = set()
    for path in candidates:
        match = OULU_NAME.match(path.stem) if path.is_file() else None
        if match is None:
            skipped.append((path, "not an OULU-NPU clip (expected Phone_Session_User_File.avi)"))
            continue
        user, file = int(match.group(3)), int(match.group(4))
        split = next((s for users, s in OULU_USERS if user in users), None)
        if split is None or file not in OULU_FILES:
            skipped.append((path, f"OULU-NPU user {user} or file {file} out of range (1-55, 1-5)"))
            continue
        if path.stem in ids:
            skipped.append((path, f"OULU-NPU clip {path.stem} found twice"))
            continue
        ids.add(path.stem)
        label, attack_type = OULU_FILES[file]
        clip = Clip(path, clip_id(root, path), str(user), label, attack_type, split)
        found.append((clip, False))
    return found, skipped


def _recognise(root: Path, candidates: list[Path]) -> bool:
    videos = [p for p in candidates if p.is_file()]
    return bool(videos) and all(OULU_NAME.match(p.stem) for p in videos)


register_layout(
    Layout(
        "oulu",
        read_oulu,
        recognise=_recognise,
        priority=10,
        companion_suffixes=(".txt",),
        summary="OULU-NPU: Phone_Session_User_File.avi (+ face boxes .txt)",
    )
)
