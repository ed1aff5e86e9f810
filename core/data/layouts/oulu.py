"""OULU-NPU (Boulkenafet et al., FG 2017): ``Phone_Session_User_File.avi``.

Phones 1-6, sessions 1-3, users 1-55, files 1-5: file 1 is bona fide, 2 and 3 ``print`` (printers
1 and 2), 4 and 5 ``display`` (displays 1 and 2). Columns: ``phone``, ``session`` and, for
attacks, ``instrument`` (``printer1``, ``printer2``, ``display1``, ``display2``). Users 1-20 are
train, 21-35 dev, 36-55 test, whatever folders the files sit in. Each video's face boxes ship in a
``.txt`` beside it. A clip may also be a folder of its frames named as the video. Recognised
when every clip's name has that form.

The four protocols (the paper's Table 2; the database's ``Protocols/Protocol_N`` lists):

- ``oulu-p1`` (illumination): train and dev sessions 1, 2; test session 3. All phones and files.
- ``oulu-p2`` (unseen instruments): train and dev files 1, 2, 4; test files 1, 3, 5. All sessions.
- ``oulu-p3`` (unseen phone), folds 1-6: fold k tests on phone k, trains and develops on the
  other five. All sessions and files.
- ``oulu-p4`` (all three), folds 1-6: train and dev sessions 1, 2, the phones other than k,
  files 1, 2, 4; test session 3, phone k, files 1, 3, 5.

``auto`` runs ``oulu-p1``. ``oulu-all`` keeps every clip, split by user (no protocol's): the
cross-domain target's every clip (``--target-clips all``), as SSDG tests OULU-NPU, and a
source's every clip but its dev users' (``--source-clips all``), as SSDG trains on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.data.clips import Clip, FaceBoxes, Split
from core.data.layouts.registry import Found, Layout, Protocol, register_layout
from core.data.subjects import clip_id

OULU_NAME = re.compile(r"^([1-6])_([1-3])_(\d{2})_([1-5])$")
# file -> (species, instrument)
OULU_FILES: dict[int, tuple[str, str]] = {
    1: ("bonafide", ""),
    2: ("print", "printer1"),
    3: ("print", "printer2"),
    4: ("display", "display1"),
    5: ("display", "display2"),
}
OULU_USERS: tuple[tuple[range, Split], ...] = (
    (range(1, 21), "train"),
    (range(21, 36), "dev"),
    (range(36, 56), "test"),
)
PHONES = (1, 2, 3, 4, 5, 6)
SESSIONS = (1, 2, 3)
FILES = (1, 2, 3, 4, 5)


def read_oulu(root: Path, candidates: list[Path], pattern: re.Pattern[str] | None) -> Found:
    found: list[tuple[Clip, bool]] = []
    skipped: list[tuple[Path, str]] = []
    ids: set[str] = set()
    for path in candidates:
        match = OULU_NAME.match(path.stem)
        if match is None:
            reason = "not an OULU-NPU clip (expected Phone_Session_User_File.avi: 1-6_1-3_NN_1-5)"
            skipped.append((path, reason))
            continue
        phone, session, user, file = match.groups()
        split = next((s for users, s in OULU_USERS if int(user) in users), None)
        if split is None:
            skipped.append((path, f"OULU-NPU user {user} out of range (01-55)"))
            continue
        if path.stem in ids:
            skipped.append((path, f"OULU-NPU clip {path.stem} found twice"))
            continue
        ids.add(path.stem)
        species, instrument = OULU_FILES[int(file)]
        columns = (("phone", phone), ("session", session))
        boxes = path.with_suffix(".txt")
        clip = Clip(
            path,
            clip_id(root, path),
            str(int(user)),
            "bonafide" if species == "bonafide" else "attack",
            species,
            split,
            attributes=columns + ((("instrument", instrument),) if instrument else ()),
            face_boxes=FaceBoxes.at(boxes, "eyes"),
        )
        found.append((clip, False))
    return found, skipped


@dataclass(frozen=True)
class Condition:
    """The sessions, phones and files one split of a protocol uses."""

    sessions: tuple[int, ...] = SESSIONS
    phones: tuple[int, ...] = PHONES
    files: tuple[int, ...] = FILES

    def holds(self, clip: Clip) -> bool:
        phone, session, _, file = (int(g) for g in OULU_NAME.match(clip.path.stem).groups())
        return session in self.sessions and phone in self.phones and file in self.files


Conditions = Callable[[int | None], dict[str, Condition]]


def _protocol(name: str, conditions: Conditions, folds: tuple[int, ...], summary: str) -> Protocol:
    def select(clips: list[Clip], fold: int | None) -> list[Clip]:
        table = conditions(fold)
        return [c for c in clips if table[c.split].holds(c)]

    return Protocol(name, select, folds, summary)


def _others(fold: int | None) -> tuple[int, ...]:
    return tuple(p for p in PHONES if p != fold)


SEEN, UNSEEN = (1, 2, 4), (1, 3, 5)  # bona fide + printer 1, display 1 / printer 2, display 2
PROTOCOLS = (
    _protocol(
        "oulu-p1",
        lambda fold: {
            "train": Condition(sessions=(1, 2)),
            "dev": Condition(sessions=(1, 2)),
            "test": Condition(sessions=(3,)),
        },
        (),
        "OULU-NPU Protocol 1: sessions 1, 2 train/dev, session 3 test",
    ),
    _protocol(
        "oulu-p2",
        lambda fold: {
            "train": Condition(files=SEEN),
            "dev": Condition(files=SEEN),
            "test": Condition(files=UNSEEN),
        },
        (),
        "OULU-NPU Protocol 2: printer 1, display 1 train/dev; printer 2, display 2 test",
    ),
    _protocol(
        "oulu-p3",
        lambda fold: {
            "train": Condition(phones=_others(fold)),
            "dev": Condition(phones=_others(fold)),
            "test": Condition(phones=(fold,)),
        },
        PHONES,
        "OULU-NPU Protocol 3: fold k tests on phone k, the other five train/dev",
    ),
    _protocol(
        "oulu-p4",
        lambda fold: {
            "train": Condition(sessions=(1, 2), phones=_others(fold), files=SEEN),
            "dev": Condition(sessions=(1, 2), phones=_others(fold), files=SEEN),
            "test": Condition(sessions=(3,), phones=(fold,), files=UNSEEN),
        },
        PHONES,
        "OULU-NPU Protocol 4: Protocols 1-3 combined, fold k tests on phone k",
    ),
    Protocol(  # every clip, by folder: SSDG's target "all" is its train and test clips
        "oulu-all",
        summary="OULU-NPU, every phone, session and attack: users 1-20 train, 21-35 dev, "
        "36-55 test",
    ),
)


def _recognise(root: Path, candidates: list[Path]) -> bool:
    return bool(candidates) and all(OULU_NAME.match(p.stem) for p in candidates)


register_layout(
    Layout(
        "oulu",
        read_oulu,
        recognise=_recognise,
        priority=10,
        fixed_splits=True,
        splits="users 1-20 train (Train_files), 21-35 dev (Dev_files), 36-55 test (Test_files)",
        own_subjects=True,
        companion_suffixes=(".txt",),
        boxes="a .txt of eye positions beside each video",
        summary="OULU-NPU: Phone_Session_User_File.avi (+ face boxes .txt)",
        protocols=PROTOCOLS,
    )
)
