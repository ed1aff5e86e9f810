"""MSU-MFSD (Wen, Han and Jain, IEEE TIFS 2015): 35 subjects, 70 bona fide and 210 attack videos.

``real/real_client<NNN>_<android|laptop>_SD_scene01.mp4|mov`` and ``attack/attack_client<NNN>_
<android|laptop>_SD_<ipad_video|iphone_video|printed_photo>_scene01.mp4|mov`` (android videos are
``.mp4``, laptop ones ``.mov``), as bob.db.msu_mfsd_mod's file lists (``folds/msu_mfsd_mod_
realvids.txt``, ``msu_mfsd_mod_attackvids.txt``) name them; the ``real/`` and ``attack/`` folders
may sit under any folder (the release's ``scene01/``). Species as papers group them: ``print``
(printed photo) and ``replay`` (iPad HD video, iPhone video). Columns: ``device``, the capture
device (``android``, ``laptop``) and, for attacks, ``instrument`` (``ipad_video``,
``iphone_video``, ``printed_photo``). Subjects are the client numbers. A clip may also be a folder
of its frames named as the video. Recognised when every clip has this naming.

Face boxes: the release's ``<video>.face`` beside each video (lines ``frame,x1,y1,x2,y2``, the
box's corners, as bob.db.msu_mfsd_mod's ``File.bbx`` reads them) crop its clips where they agree
with the face detector (``FaceBoxes.verify``): Bob's reader flips the frames of the android videos
its ``rotated_videos.txt`` lists before the boxes apply, and OpenCV may orient a video otherwise
(it applies the container's rotation), so a clip whose boxes miss the face the detector finds is
cropped with the detector, and counted (:func:`core.features.faces.FaceFinder.boxes`).

Protocols (subject lists from bob.db.msu_mfsd_mod, ``bob/db/msu_mfsd_mod/folds/``):

- ``msu``: the database's own split (``train_sub_list.txt``: 15 subjects; ``test_sub_list.txt``:
  20). It has no dev set; dev is carved from the train subjects by a fixed rule: the five
  highest-numbered (22, 34, 53, 54, 55) are dev, the other ten train. Test is untouched. The
  release's own copies of the two lists, where the folder holds them (at its top or one folder
  down), are data, not stray files (each had been counted as a skipped clip: probe), and are
  checked against these: a list that names other subjects is warned of, the database's kept.
- ``msu-folds``, folds 1-5: Bob's 5-fold protocol (``clients_fold1.txt`` .. ``clients_fold5.txt``,
  which ``train_clients_1.txt`` .. ``train_clients_5.txt`` repeat): 15 fixed test subjects (not
  the database's test set), the other 20 split 10 train / 10 dev, differently in each fold.

``auto`` runs ``msu``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

from core.data.clips import Clip, FaceBoxes, Split
from core.data.layouts.registry import Found, Layout, Protocol, register_layout
from core.data.subjects import clip_id

log = logging.getLogger(__name__)

MSU_NAME = re.compile(
    r"^(real|attack)_client(\d{3})_(android|laptop)_SD_"
    r"(?:(ipad_video|iphone_video|printed_photo)_)?scene01$"
)
SPECIES = {"ipad_video": "replay", "iphone_video": "replay", "printed_photo": "print"}
# bob.db.msu_mfsd_mod folds/train_sub_list.txt and folds/test_sub_list.txt
TRAIN_SUBJECTS = (2, 3, 5, 6, 7, 8, 9, 11, 12, 21, 22, 34, 53, 54, 55)
TEST_SUBJECTS = (1, 13, 14, 23, 24, 26, 28, 29, 30, 32, 33, 35, 36, 37, 39, 42, 48, 49, 50, 51)
DEV_SUBJECTS = TRAIN_SUBJECTS[-5:]  # our rule: the five highest-numbered train subjects
SUBJECTS = frozenset(TRAIN_SUBJECTS + TEST_SUBJECTS)
# bob.db.msu_mfsd_mod folds/clients_fold<k>.txt: fold -> (train subjects, dev subjects)
FOLD_TEST = (6, 7, 12, 13, 14, 26, 28, 29, 30, 32, 33, 39, 49, 50, 53)
FOLDS: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {
    1: ((5, 8, 11, 21, 23, 24, 36, 37, 54, 55), (1, 2, 3, 9, 22, 34, 35, 42, 48, 51)),
    2: ((2, 3, 8, 9, 21, 23, 34, 35, 37, 51), (1, 5, 11, 22, 24, 36, 42, 48, 54, 55)),
    3: ((3, 8, 9, 11, 23, 24, 34, 37, 42, 48), (1, 2, 5, 21, 22, 35, 36, 51, 54, 55)),
    4: ((1, 2, 3, 8, 9, 21, 22, 34, 36, 55), (5, 11, 23, 24, 35, 37, 42, 48, 51, 54)),
    5: ((1, 2, 8, 11, 21, 22, 24, 36, 54, 55), (3, 5, 9, 23, 34, 35, 37, 42, 48, 51)),
}


def _database_split(subject: int) -> Split:
    if subject in TEST_SUBJECTS:
        return "test"
    return "dev" if subject in DEV_SUBJECTS else "train"


def _parse(path: Path) -> tuple[str, int, str, str] | None:
    """(label, client, device, instrument) if ``path`` is named and placed as MSU-MFSD's."""
    match = MSU_NAME.match(path.stem)
    if match is None or path.parent.name != match[1]:
        return None
    label, client, device, instrument = match.groups()
    if (label == "attack") != (instrument is not None):
        return None
    return label, int(client), device, instrument or ""


def check_lists(root: Path) -> None:
    """Warn of a ``train_sub_list.txt`` or ``test_sub_list.txt`` under ``root`` (at its top or
    one folder down, as the release ships them) that lists other subjects than MSU-MFSD's."""
    for name, subjects in (
        ("train_sub_list.txt", TRAIN_SUBJECTS),
        ("test_sub_list.txt", TEST_SUBJECTS),
    ):
        for path in sorted({root / name, *root.glob(f"*/{name}")}):
            if not path.is_file():
                continue
            try:
                listed = {int(n) for n in re.findall(r"\d+", path.read_text(errors="replace"))}
            except OSError as err:
                log.warning("%s: not read (%s); MSU-MFSD's own list is used", path, err.strerror)
                continue
            if listed != set(subjects):
                log.warning(
                    "%s lists subjects %s, MSU-MFSD's (bob.db.msu_mfsd_mod) %s: the protocol "
                    "keeps the database's; the file is not read",
                    path,
                    " ".join(f"{n:03d}" for n in sorted(listed)) or "none",
                    " ".join(f"{n:03d}" for n in subjects),
                )


def read_msu(root: Path, candidates: list[Path], pattern: re.Pattern[str] | None) -> Found:
    check_lists(root)
    found: list[tuple[Clip, bool]] = []
    skipped: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for path in candidates:
        parsed = _parse(path)
        if parsed is None:
            reason = (
                "not an MSU-MFSD clip (expected real/real_client<NNN>_<android|laptop>_SD_scene01"
                " or attack/attack_client<NNN>_<android|laptop>_SD_<ipad_video|iphone_video|"
                "printed_photo>_scene01)"
            )
            skipped.append((path, reason))
            continue
        label, client, device, instrument = parsed
        if client not in SUBJECTS:
            skipped.append((path, f"MSU-MFSD has no client {client:03d} (35 clients, 001-055)"))
            continue
        if path.stem in seen:
            skipped.append((path, f"MSU-MFSD clip {path.stem} found twice"))
            continue
        seen.add(path.stem)
        columns = (("device", device),) + ((("instrument", instrument),) if instrument else ())
        clip = Clip(
            path,
            clip_id(root, path),
            str(client),
            "bonafide" if label == "real" else "attack",
            SPECIES[instrument] if instrument else "bonafide",
            _database_split(client),
            attributes=columns,
            face_boxes=FaceBoxes.at(path.with_name(f"{path.stem}.face"), "corners", verify=True),
        )
        found.append((clip, False))
    return found, skipped


def _fold(clips: list[Clip], fold: int | None) -> list[Clip]:
    train, dev = FOLDS[fold]  # type: ignore[index]  # the protocol checked the fold
    split: dict[int, Split] = {s: "test" for s in FOLD_TEST}
    split |= {s: "train" for s in train} | {s: "dev" for s in dev}
    return [replace(c, split=split[int(c.subject)]) for c in clips]


def _recognise(root: Path, candidates: list[Path]) -> bool:
    return bool(candidates) and all(_parse(p) is not None for p in candidates)


register_layout(
    Layout(
        "msu",
        read_msu,
        recognise=_recognise,
        priority=12,
        fixed_splits=True,
        splits="subjects by MSU-MFSD's lists (msu) or Bob's folds (msu-folds)",
        own_subjects=True,
        companion_suffixes=(".face", ".txt"),  # face boxes; the subject lists (check_lists)
        boxes="a .face beside each video",
        summary="MSU-MFSD: real|attack/<real|attack>_client<NNN>_<android|laptop>_SD_..._scene01",
        protocols=(
            Protocol(
                "msu",
                summary="MSU-MFSD's own split: 15 train subjects (22 34 53 54 55 dev), 20 test",
            ),
            Protocol(
                "msu-folds",
                _fold,
                tuple(FOLDS),
                summary="MSU-MFSD, Bob's 5 folds: 15 fixed test subjects, 10 train / 10 dev",
            ),
        ),
    )
)
