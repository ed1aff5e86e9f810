r"""The generic layout: label folders (and optional split folders) name what each clip is.

``ROOT/[train|dev|devel|test/]...(real|live|bonafide|attack|spoof)/.../<clip>``. A clip is a video
(``.mp4 .avi .mov .mkv``) or a folder that directly holds frames (``.jpg .jpeg .png .bmp .tif
.tiff .webp``). The path between the label folder and the clip names the attack type
(``attack/hand/x.mov`` -> ``hand``, ``attack/fixed/print/x`` -> ``fixed/print``, directly under
``attack/`` -> ``attack``), but for a folder that names one subject, whole, and holds that
subject's clips only (``attack/print/subject01/x.mp4`` -> ``print``; SiW's
``spoof/003/003-1-2-1-1.mov`` with ``--subject-pattern '(\d{3})-'`` -> ``attack``); bona fide
clips have attack type ``bonafide``. A split folder below a label folder (``real/train/``) is
refused: its clips would be a species named ``train``, and the data split at random. Subjects
come from :func:`core.data.subjects.subject_of`; a clip whose name holds none is reported to the
loader, which refuses the data (one person could otherwise sit in two splits): give
``--subject-pattern``. It recognises any folder, so ``auto`` falls back to it (a database laid
out like this, e.g. SiW or MSU-MFSD, is read as generic data). Its one protocol, ``generic``,
keeps every clip.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

from core.data.clips import Clip, DataError, Label, Split
from core.data.layouts.registry import Found, Layout, register_layout
from core.data.subjects import (
    DEFAULT_SUBJECT_PATTERN,
    REPLAY_ATTACK_SUBJECT,
    clip_id,
    normal_subject,
    subject_of,
)

log = logging.getLogger(__name__)

SPLIT_FOLDERS: dict[str, Split] = {"train": "train", "dev": "dev", "devel": "dev", "test": "test"}
NO_LABEL_FOLDER = "no label folder (real/live/bonafide or attack/spoof) above it"  # a skip's reason
DEFAULT_RULE = re.compile(DEFAULT_SUBJECT_PATTERN, re.IGNORECASE)
DEV_LIKE = ("val", "valid", "validation", "development")  # said: dev/ is what they mean
LABEL_FOLDERS: dict[str, Label] = {
    "real": "bonafide",
    "live": "bonafide",
    "bonafide": "bonafide",
    "bona_fide": "bonafide",
    "bona-fide": "bonafide",
    "attack": "attack",
    "spoof": "attack",
}


def read_generic(root: Path, candidates: list[Path], pattern: re.Pattern[str] | None) -> Found:
    found: list[tuple[Clip, bool]] = []
    skipped: list[tuple[Path, str]] = []
    ids: dict[str, Path] = {}
    unmatched: list[str] = []
    for path in candidates:
        folders = path.relative_to(root).parts[:-1]
        labels = [
            (i, LABEL_FOLDERS[f.lower()])
            for i, f in enumerate(folders)
            if f.lower() in LABEL_FOLDERS
        ]
        if not labels:
            skipped.append((path, NO_LABEL_FOLDER))
            continue
        if len({label for _, label in labels}) > 1:
            skipped.append((path, "both a bona fide and an attack folder above it"))
            continue
        at, label = labels[0]
        splits = {SPLIT_FOLDERS[f.lower()] for f in folders[:at] if f.lower() in SPLIT_FOLDERS}
        if len(splits) > 1:
            skipped.append((path, f"more than one split folder above it ({sorted(splits)})"))
            continue
        below = [f for f in folders[at + 1 :] if f.lower() not in LABEL_FOLDERS]
        if misplaced := [f for f in below if f.lower() in (*SPLIT_FOLDERS, *DEV_LIKE)]:
            raise DataError(
                f"{path}: split folder {misplaced[0]}/ below the class folder {folders[at]}/; "
                f"split folders go above class folders (DATA/train/real/..., not "
                f"DATA/real/train/...), or they would be read as attack species"
            )
        cid = clip_id(root, path)
        if cid in ids:
            skipped.append((path, f"same clip id as {ids[cid]} (two videos with one name)"))
            continue
        ids[cid] = path
        subject, matched_user = subject_of(cid, pattern)
        if pattern is not None and not matched_user:
            unmatched.append(cid)
        attack_type = "bonafide" if label == "bonafide" else "/".join(below) or "attack"
        clip = Clip(path, cid, subject or cid, label, attack_type, splits.pop() if splits else None)
        found.append((clip, subject is None))
    found = _without_subject_folders(found, pattern)
    if unmatched and pattern is not None and len(unmatched) == len(found):  # a wrong pattern
        raise DataError(
            f"--subject-pattern '{pattern.pattern}' matches none of the {len(found)} clips (e.g. "
            f"{unmatched[0]}; searched in each clip's name, then its folders): fix it, or drop "
            "it for the default rule (clientNNN, subjectNN, userNN ... in the names)"
        )
    other = set(unmatched)
    read = {c.subject for c, _ in found if c.clip_id not in other}  # by the pattern
    if pattern is not None and len(read) == 1 and len(found) - len(other) > 1:
        raise DataError(
            f"--subject-pattern '{pattern.pattern}' reads one subject ({read.pop()!r}) from all "
            f"{len(found) - len(other)} clips it matches, and splits need subjects apart: put a "
            r"group around what tells people apart, e.g. 'client(\d+)'"
        )
    if unmatched and pattern is not None:
        log.warning(
            "--subject-pattern '%s' matched no subject in %d of %d clips (e.g. %s): the default "
            "rule read theirs",
            pattern.pattern,
            len(unmatched),
            len(found),
            unmatched[0],
        )
    given = [c for c, _ in found if c.split is not None]
    if given and len(given) != len(found):
        loose = next(c for c, _ in found if c.split is None)
        named = [f for f in loose.clip_id.split("/")[:-1] if f.lower() in DEV_LIKE]  # val/
        rename = f" (rename {named[0]}/ to dev/)" if named else ""
        raise DataError(
            f"{loose.path}: not under a train/dev/test folder while {len(given)} other clips "
            f"are; put every clip under a split folder or none{rename}"
        )
    return found, skipped


def _without_subject_folders(
    found: list[tuple[Clip, bool]], pattern: re.Pattern[str] | None
) -> list[tuple[Clip, bool]]:
    """The clips with the folders in their attack type that are a subject's taken out: a folder
    is, whole, a name of one subject (``subject01``; SiW's ``003`` by ``--subject-pattern
    '(\\d{3})-'``) and every clip below it is that subject's. A species or session folder
    ``2/`` holding several people's clips stays, for each of them."""
    people: dict[str, set[str]] = {}  # a type's folder path -> the subjects of its clips
    for clip, _ in found:
        parts = clip.attack_type.split("/")
        for depth in range(1, len(parts) + 1):
            people.setdefault("/".join(parts[:depth]), set()).add(clip.subject)

    def kept(clip: Clip) -> str:
        parts = clip.attack_type.split("/")
        names = [
            part
            for depth, part in enumerate(parts, start=1)
            if not (
                people["/".join(parts[:depth])] == {clip.subject}
                and _names_subject(part, clip.subject, pattern)
            )
        ]
        return "/".join(names) or "attack"

    return [
        (clip if clip.label == "bonafide" else replace(clip, attack_type=kept(clip)), nameless)
        for clip, nameless in found
    ]


def _names_subject(folder: str, subject: str, pattern: re.Pattern[str] | None) -> bool:
    """Whether ``folder`` is, whole, a name of ``subject``."""
    if normal_subject(folder) == subject:  # SiW's 003/ of subject 3
        return True
    rules = [REPLAY_ATTACK_SUBJECT, DEFAULT_RULE] if pattern is None else [pattern]
    named = any(rule.fullmatch(folder) for rule in rules)
    return named and subject_of(folder, pattern)[0] == subject


register_layout(
    Layout(
        "generic",
        read_generic,
        recognise=lambda root, candidates: True,
        priority=-100,
        summary="real|live|bonafide and attack|spoof folders, optional train/dev/test folders",
    )
)
