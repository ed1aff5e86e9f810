"""CASIA-FASD (Zhang et al., ICB 2012): ``train_release/<subject>/<n>.avi``, ``test_release/...``.

Each subject has twelve videos: bona fide ``1, 2, HR_1``; warped photo ``3, 4, HR_2``; cut photo
``5, 6, HR_3``; video replay ``7, 8, HR_4``. Species: ``warped``, ``cut``, ``video``. Column
``quality``: ``normal`` (1, 3, 5, 7), ``low`` (2, 4, 6, 8), ``high`` (HR_*), as Bob's
bob.db.casia_fasd maps them (``db_mappings``). Subjects are numbered as Bob does: train_release
1-20, test_release 1-30 -> 21-50. A clip may also be a folder of its frames named as the video
(``train_release/1/HR_1/``). Recognised by a ``train_release`` or ``test_release`` folder.

Protocols (Bob's bob.pad.face CASIA-FASD ``grandtest``): train_release subjects 1-15 train, 16-20
dev (a fixed subject-disjoint dev carved from train), test_release test. The subsets of the
database's seven test scenarios restrict every split alike, as its paper's tests select their
training and test data and as Idiap's CASIA-FASD layer for Bob (antispoofing.utils) filters the
attack types of train, devel and test (and as Replay-Attack's print/mobile/highdef protocols do):
``casia-low``, ``casia-normal``, ``casia-high`` keep the clips of that quality, bona fide and
attack; ``casia-warped``, ``casia-cut``, ``casia-video`` keep the bona fide clips and that species.
They restricted the test split only until 2026-12-07 (a study's clips record which).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.data.clips import Clip, Split
from core.data.layouts.registry import Found, Layout, Protocol, register_layout
from core.data.subjects import clip_id

# file stem -> (species, quality); bob.db.casia_fasd models.py db_mappings
CASIA_FILES: dict[str, tuple[str, str]] = {
    "1": ("bonafide", "normal"),
    "2": ("bonafide", "low"),
    "HR_1": ("bonafide", "high"),
    "3": ("warped", "normal"),
    "4": ("warped", "low"),
    "HR_2": ("warped", "high"),
    "5": ("cut", "normal"),
    "6": ("cut", "low"),
    "HR_3": ("cut", "high"),
    "7": ("video", "normal"),
    "8": ("video", "low"),
    "HR_4": ("video", "high"),
}
CASIA_RELEASES = ("train_release", "test_release")
TRAIN_SUBJECTS = 20  # test_release subject n is subject 20 + n
DEV_SUBJECTS = range(16, 21)  # bob.pad.face casia_fasd grandtest: 1-15 train, 16-20 dev


def read_casia(root: Path, candidates: list[Path], pattern: re.Pattern[str] | None) -> Found:
    found: list[tuple[Clip, bool]] = []
    skipped: list[tuple[Path, str]] = []
    for path in candidates:
        parts = path.relative_to(root).parts
        if len(parts) != 3 or parts[0] not in CASIA_RELEASES or not parts[1].isdigit():
            reason = "not a CASIA-FASD clip (expected train_release|test_release/<n>/<name>.avi)"
            skipped.append((path, reason))
            continue
        kind = CASIA_FILES.get(path.stem.upper())
        if kind is None:
            skipped.append((path, f"CASIA-FASD clip name {path.stem!r} is not 1..8 or HR_1..HR_4"))
            continue
        number = int(parts[1])
        subject = number if parts[0] == "train_release" else TRAIN_SUBJECTS + number
        split: Split = "test" if parts[0] == "test_release" else "train"
        if subject in DEV_SUBJECTS:
            split = "dev"
        species, quality = kind
        label = "bonafide" if species == "bonafide" else "attack"
        clip = Clip(
            path,
            clip_id(root, path),
            str(subject),
            label,
            species,
            split,
            attributes=(("quality", quality),),
        )
        found.append((clip, False))
    return found, skipped


@dataclass(frozen=True)
class Subset:
    """Keep the clips, of every split, that ``keep`` accepts."""

    column: str  # "quality" or "species"
    value: str

    def __call__(self, clips: list[Clip], fold: int | None) -> list[Clip]:
        return [c for c in clips if self.keep(c)]

    def keep(self, clip: Clip) -> bool:
        if self.column == "quality":
            return clip.columns["quality"] == self.value
        return clip.attack_type in ("bonafide", self.value)


def _subset(column: str, value: str) -> Protocol:
    what = f"{value}-quality clips" if column == "quality" else f"bona fide + {value}"
    return Protocol(f"casia-{value}", Subset(column, value), summary=f"casia, {what} only")


register_layout(
    Layout(
        "casia",
        read_casia,
        recognise=lambda root, candidates: any((root / name).is_dir() for name in CASIA_RELEASES),
        priority=20,
        fixed_splits=True,
        splits="train_release subjects 1-15 train, 16-20 dev; test_release test",
        own_subjects=True,
        summary="CASIA-FASD: train_release|test_release/<subject>/<1..8|HR_1..HR_4>.avi",
        protocols=(
            # not the splits again: a partial copy's refusal said them twice (probe BB)
            Protocol("casia", summary="CASIA-FASD grandtest: every quality and attack"),
            *(_subset("quality", q) for q in ("low", "normal", "high")),
            *(_subset("species", s) for s in ("warped", "cut", "video")),
        ),
    )
)
