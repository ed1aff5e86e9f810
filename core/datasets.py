"""Find the clips of a dataset, name their subject, label and attack type, and split them.

Layouts (SPEC §4):

- ``generic``: ``ROOT/[train|dev|devel|test/]...(real|live|bonafide|attack|spoof)/.../<clip>``.
  A clip is a video (``.mp4 .avi .mov .mkv``) or a folder that directly holds frames
  (``.jpg .jpeg .png``). The path between the label folder and the clip names the attack type
  (``attack/hand/x.mov`` -> ``hand``, ``attack/fixed/print/x`` -> ``fixed/print``, directly under
  ``attack/`` -> ``attack``); bona fide clips have attack type ``bonafide``.
- ``casia`` (CASIA-FASD): ``train_release/<subject>/<n>.avi`` and ``test_release/...``; 1, 2, HR_1
  are bona fide, 3, 4, HR_2 warped print, 5, 6, HR_3 cut print, 7, 8, HR_4 video replay.
  train_release is train, test_release is test, dev is carved from train by subject.
- ``oulu`` (OULU-NPU): ``Phone_Session_User_File.avi``; file 1 is bona fide, 2-3 print (two
  printers), 4-5 replay (two displays); users 1-20 train, 21-35 dev, 36-55 test (the protocol's
  own split, whatever folders the files sit in).

Subjects: a user ``subject_pattern`` (regex searched in the clip's relative path, first group),
else ``clientNNN`` (Replay-Attack) or :data:`DEFAULT_SUBJECT_PATTERN` in the clip's name, then in
its folders from the deepest up, else the clip is its own subject (the summary says how many):
then no identity is kept out of two splits, so give a pattern when the names carry one.

Splits: split folders are respected (a missing dev or test split is carved from train by subject);
otherwise a seeded, subject-disjoint split stratified by label. No subject is in two splits, and a
split without both classes is a :class:`~core.clips.DataError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from core.clips import (
    FRAME_SUFFIXES,
    LABELS,
    SPLITS,
    SYNTHETIC_MARKER,
    VIDEO_SUFFIXES,
    Clip,
    DataError,
    Label,
    Split,
)

log = logging.getLogger(__name__)

PROTOCOLS = ("auto", "generic", "casia", "oulu")
SPLIT_FOLDERS: dict[str, Split] = {"train": "train", "dev": "dev", "devel": "dev", "test": "test"}
LABEL_FOLDERS: dict[str, Label] = {
    "real": "bonafide",
    "live": "bonafide",
    "bonafide": "bonafide",
    "bona_fide": "bonafide",
    "bona-fide": "bonafide",
    "attack": "attack",
    "spoof": "attack",
}
REPLAY_ATTACK_SUBJECT = re.compile(r"(?<![a-z])client[_-]?(\d+)", re.IGNORECASE)
# Common ways of writing a subject into a file name: client007, subject_3, user-12, id04.
DEFAULT_SUBJECT_PATTERN = r"(?<![a-z])(?:client|subject|subj|user|person|id)[_-]?(\d+)"
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
SUMMARY_SKIPS = 10  # skipped entries listed by name in the summary; all are logged

# CASIA-FASD file stem -> (label, attack type); Zhang et al., ICB 2012, Table 1.
CASIA_FILES: dict[str, tuple[Label, str]] = {
    **{s: ("bonafide", "bonafide") for s in ("1", "2", "HR_1")},
    **{s: ("attack", "print/warped") for s in ("3", "4", "HR_2")},
    **{s: ("attack", "print/cut") for s in ("5", "6", "HR_3")},
    **{s: ("attack", "replay") for s in ("7", "8", "HR_4")},
}
CASIA_SPLITS: dict[str, Split] = {"train_release": "train", "test_release": "test"}
# OULU-NPU: Phone_Session_User_File; Boulkenafet et al., FG 2017, section 3.
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


@dataclass
class Dataset:
    """The clips of one dataset root, each with its split, and what was skipped on the way."""

    root: Path
    protocol: str
    clips: list[Clip]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    fingerprint: str = ""
    synthetic: bool = False
    own_subject_clips: int = 0  # clips whose name held no subject: each is its own subject
    signatures: dict[str, str] = field(default_factory=dict, repr=False)  # clip_id -> file stamp

    def split(self, name: Split) -> list[Clip]:
        """The clips of one split, in clip_id order."""
        if name not in SPLITS:
            raise DataError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
        return [c for c in self.clips if c.split == name]

    @property
    def subjects(self) -> list[str]:
        """Distinct subjects, sorted."""
        return sorted({c.subject for c in self.clips})

    def subset(self, clips: Iterable[Clip]) -> Dataset:
        """The same dataset restricted to ``clips`` (e.g. after dropping unreadable ones)."""
        kept = sorted(clips, key=lambda c: c.clip_id)
        known = {c.clip_id for c in self.clips}
        unknown = [c.clip_id for c in kept if c.clip_id not in known]
        if unknown:
            raise DataError(f"subset: clip {unknown[0]!r} is not in the dataset at {self.root}")
        signatures = {c.clip_id: self.signatures[c.clip_id] for c in kept}
        return replace(
            self,
            clips=kept,
            signatures=signatures,
            fingerprint=_fingerprint(self.protocol, kept, signatures),
        )

    def summary(self) -> str:
        """Counts per split, label and attack type, subjects per split and the skipped count."""
        kind = f"{self.protocol}, synthetic demonstration set" if self.synthetic else self.protocol
        lines = [
            f"{self.root} ({kind}): {len(self.clips)} clips, {len(self.subjects)} subjects, "
            f"{len(self.skipped)} skipped, fingerprint {self.fingerprint[:12]}"
        ]
        rows = Counter((c.split, c.label, c.attack_type) for c in self.clips)
        width = max([len("attack type")] + [len(a) for _, _, a in rows])
        lines.append(f"  {'split':<7}{'label':<10}{'attack type':<{width + 2}}clips")
        for split in SPLITS:
            for label in LABELS:
                for (s, lab, attack), n in sorted(rows.items()):
                    if s == split and lab == label:
                        lines.append(f"  {s:<7}{lab:<10}{attack:<{width + 2}}{n}")
        for split in SPLITS:
            clips = self.split(split)
            lines.append(
                f"  {split}: {len(clips)} clips "
                f"({sum(c.label == 'bonafide' for c in clips)} bona fide, "
                f"{sum(c.label == 'attack' for c in clips)} attack), "
                f"{len({c.subject for c in clips})} subject(s)"
            )
        if self.own_subject_clips:
            lines.append(
                f"  {self.own_subject_clips} clips have no subject in their name: each is its own "
                "subject, so one person may appear in two splits (pass a subject pattern)"
            )
        for path, reason in self.skipped[:SUMMARY_SKIPS]:
            lines.append(f"  skipped {path}: {reason}")
        if len(self.skipped) > SUMMARY_SKIPS:
            lines.append(
                f"  ... and {len(self.skipped) - SUMMARY_SKIPS} more skipped (see warnings)"
            )
        return "\n".join(lines)


def load_dataset(
    root: str | os.PathLike,
    protocol: str = "auto",
    subject_pattern: str | None = None,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> Dataset:
    """Find, label and split every clip under ``root`` (see the module docstring for the rules).

    Raises:
        DataError: bad option, no usable clip, a subject in two given splits, or a split without
            both classes.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: data root is not a folder")
    if protocol not in PROTOCOLS:
        raise DataError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    fractions = _check_fractions(fractions)
    pattern = _compile_subject_pattern(subject_pattern)

    candidates, skipped = _find_clips(root)
    if protocol == "auto":
        protocol = _detect_protocol(root, candidates)
    if protocol == "casia":
        found, more = _casia_clips(root, candidates)
    elif protocol == "oulu":
        found, more = _oulu_clips(root, candidates)
    else:
        found, more = _generic_clips(root, candidates, pattern)
    if protocol == "oulu":
        # OULU-NPU ships each video's face boxes in a .txt beside it: data, not a stray file
        stems = {p.with_suffix("") for p in candidates}
        skipped = [
            (p, r) for p, r in skipped if not (p.suffix == ".txt" and p.with_suffix("") in stems)
        ]
    skipped = sorted(skipped + more)
    for path, reason in skipped:
        log.warning("skipped %s: %s", path, reason)
    if not found:
        raise DataError(
            f"{root}: no usable clip ({protocol} layout, {len(skipped)} entries skipped); "
            "expected videos or frame folders under real/ and attack/ folders"
        )
    clips = [clip for clip, _ in found]
    own = sum(own_subject for _, own_subject in found)
    if own:
        log.warning(
            "%s: %d clips have no subject in their name and are each their own subject",
            root,
            own,
        )
    clips = _assign_splits(clips, protocol, seed, fractions)
    _check_splits(clips)
    clips.sort(key=lambda c: c.clip_id)
    synthetic = (root / SYNTHETIC_MARKER).is_file()
    signatures = {c.clip_id: _signature(c.path, content=synthetic) for c in clips}
    return Dataset(
        root=root,
        protocol=protocol,
        clips=clips,
        skipped=skipped,
        fingerprint=_fingerprint(protocol, clips, signatures),
        synthetic=synthetic,
        own_subject_clips=own,
        signatures=signatures,
    )


# --- finding clips -------------------------------------------------------------------------------


def _find_clips(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every video file and frame folder under ``root``; other files are skipped with a warning."""
    clips: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(folder)
        names = sorted(f for f in files if not f.startswith("."))
        if here == root and SYNTHETIC_MARKER in names:
            names.remove(SYNTHETIC_MARKER)
        frames = [n for n in names if Path(n).suffix.lower() in FRAME_SUFFIXES]
        if frames and here != root:
            clips.append(here)
        elif frames:
            skipped += [(here / n, "frame image directly in the data root") for n in frames]
        elif not dirs and not names and here != root:
            skipped.append((here, "empty folder (no frames)"))
        for name in names:
            suffix = Path(name).suffix.lower()
            if suffix in VIDEO_SUFFIXES:
                clips.append(here / name)
            elif suffix not in FRAME_SUFFIXES:
                skipped.append(
                    (
                        here / name,
                        f"unsupported file (expected {' '.join(VIDEO_SUFFIXES)} "
                        f"or a folder of {' '.join(FRAME_SUFFIXES)})",
                    )
                )
    return clips, skipped


def _detect_protocol(root: Path, candidates: list[Path]) -> str:
    if any((root / name).is_dir() for name in CASIA_SPLITS):
        return "casia"
    videos = [p for p in candidates if p.is_file()]
    if videos and all(OULU_NAME.match(p.stem) for p in videos):
        return "oulu"
    return "generic"


def _clip_id(root: Path, path: Path) -> str:
    rel = path.relative_to(root)
    return (rel.with_suffix("") if path.is_file() else rel).as_posix()


def _generic_clips(
    root: Path, candidates: list[Path], pattern: re.Pattern[str] | None
) -> tuple[list[tuple[Clip, bool]], list[tuple[Path, str]]]:
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
            skipped.append((path, "no label folder (real/live/bonafide or attack/spoof) above it"))
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
        attack_type = "bonafide" if label == "bonafide" else "/".join(below) or "attack"
        clip_id = _clip_id(root, path)
        if clip_id in ids:
            skipped.append((path, f"same clip id as {ids[clip_id]} (two videos with one name)"))
            continue
        ids[clip_id] = path
        subject, matched_user = _subject(clip_id, pattern)
        if pattern is not None and not matched_user:
            unmatched.append(clip_id)
        clip = Clip(
            path, clip_id, subject or clip_id, label, attack_type, splits.pop() if splits else None
        )
        found.append((clip, subject is None))
    if unmatched:
        log.warning(
            "subject pattern %r matched no subject in %d clips (e.g. %s): default rule used",
            pattern.pattern if pattern else None,
            len(unmatched),
            unmatched[0],
        )
    given = [c for c, _ in found if c.split is not None]
    if given and len(given) != len(found):
        loose = next(c for c, _ in found if c.split is None)
        raise DataError(
            f"{loose.path}: not under a train/dev/test folder while {len(given)} other clips "
            "are; put every clip under a split folder or none"
        )
    return found, skipped


def _subject(clip_id: str, pattern: re.Pattern[str] | None) -> tuple[str | None, bool]:
    """(subject, matched the user's pattern); subject None when nothing in the name gives one."""
    if pattern is not None:
        match = pattern.search(clip_id)
        if match:
            return _normal_subject(match.group(1) if pattern.groups else match.group(0)), True
    parts = clip_id.split("/")
    for rule in (REPLAY_ATTACK_SUBJECT, re.compile(DEFAULT_SUBJECT_PATTERN, re.IGNORECASE)):
        for part in reversed(parts):
            match = rule.search(part)
            if match:
                return _normal_subject(match.group(1)), False
    return None, False


def _normal_subject(text: str) -> str:
    """'007' and '7' are one subject."""
    return str(int(text)) if text.isdigit() else text


def _compile_subject_pattern(subject_pattern: str | None) -> re.Pattern[str] | None:
    if subject_pattern is None:
        return None
    try:
        return re.compile(subject_pattern)
    except re.error as exc:
        raise DataError(f"subject pattern {subject_pattern!r} is not a regex: {exc}") from None


def _casia_clips(
    root: Path, candidates: list[Path]
) -> tuple[list[tuple[Clip, bool]], list[tuple[Path, str]]]:
    found: list[tuple[Clip, bool]] = []
    skipped: list[tuple[Path, str]] = []
    for path in candidates:
        parts = path.relative_to(root).parts
        if not path.is_file() or len(parts) != 3 or parts[0] not in CASIA_SPLITS:
            skipped.append(
                (
                    path,
                    "not a CASIA-FASD clip (expected train_release|test_release/<subject>/"
                    "<1..8|HR_1..HR_4>.avi)",
                )
            )
            continue
        kind = CASIA_FILES.get(path.stem.upper())
        if kind is None:
            skipped.append((path, f"CASIA-FASD clip name {path.stem!r} is not 1..8 or HR_1..HR_4"))
            continue
        split = CASIA_SPLITS[parts[0]]
        # train and test subjects are different people numbered from 1 in each release
        subject = f"{split}-{_normal_subject(parts[1])}"
        label, attack_type = kind
        found.append((Clip(path, _clip_id(root, path), subject, label, attack_type, split), False))
    return found, skipped


def _oulu_clips(
    root: Path, candidates: list[Path]
) -> tuple[list[tuple[Clip, bool]], list[tuple[Path, str]]]:
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
        clip = Clip(path, _clip_id(root, path), str(user), label, attack_type, split)
        found.append((clip, False))
    return found, skipped


# --- splits --------------------------------------------------------------------------------------


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or min(values) < 0 or values[0] <= 0 or abs(sum(values) - 1) > 1e-6:
        raise DataError(
            f"fractions must be three numbers (train, dev, test) >= 0 with train > 0 summing "
            f"to 1, got {tuple(fractions)}"
        )
    return values  # type: ignore[return-value]


def _assign_splits(
    clips: list[Clip], protocol: str, seed: int, fractions: tuple[float, float, float]
) -> list[Clip]:
    """Respect given splits, carve missing dev/test from train, or split every subject."""
    given = {c.split for c in clips if c.split is not None}
    if not given:
        return _subject_split(clips, seed, fractions, SPLITS)
    by_subject: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        by_subject[clip.subject].add(clip.split)  # type: ignore[arg-type]
    for subject, splits in sorted(by_subject.items()):
        if len(splits) > 1:
            example = next(c.path for c in clips if c.subject == subject)
            raise DataError(
                f"subject {subject!r} is in splits {', '.join(sorted(splits))} (e.g. {example}); "
                "a subject must stay in one split (check the subject pattern)"
            )
    missing = [s for s in SPLITS if s not in given]
    if not missing:
        return clips
    if "train" in missing:
        raise DataError(
            f"split folders {', '.join(sorted(given))} given but no train folder to learn from"
        )
    train = [c for c in clips if c.split == "train"]
    rest = [c for c in clips if c.split != "train"]
    # e.g. CASIA-FASD: dev comes out of train, by subject, in the train:dev proportion asked for
    shares = {"train": fractions[0]} | {s: fractions[SPLITS.index(s)] for s in missing}
    total = sum(shares.values())
    names = tuple(shares)
    carved = _subject_split(train, seed, tuple(shares[n] / total for n in names), names)
    log.info("%s split carved from train by subject (protocol %s)", "/".join(missing), protocol)
    return carved + rest


def _subject_split(
    clips: list[Clip], seed: int, fractions: Sequence[float], names: Sequence[str]
) -> list[Clip]:
    """Seeded subject-disjoint split, stratified by which classes each subject has."""
    classes: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        classes[clip.subject].add(clip.label)
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for subject in sorted(classes):
        groups[tuple(sorted(classes[subject]))].append(subject)
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for key in sorted(groups):
        subjects = groups[key]
        rng.shuffle(subjects)
        counts = _allocate(len(subjects), fractions)
        start = 0
        for name, count in zip(names, counts, strict=True):
            for subject in subjects[start : start + count]:
                assignment[subject] = name
            start += count
    return [replace(c, split=assignment[c.subject]) for c in clips]


def _allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Split n subjects: held-out splits get their rounded share (at least one), train the rest."""
    counts = [0] + [int(n * f + 0.5) for f in fractions[1:]]
    counts[0] = n - sum(counts)
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    if n >= len(wanted):
        for i in wanted:
            while counts[i] < 1:
                donor = max(range(len(counts)), key=lambda j: counts[j])
                counts[donor] -= 1
                counts[i] += 1
    while counts[0] < min(n, 1):  # a tiny group goes to train first
        donor = max(range(1, len(counts)), key=lambda j: counts[j])
        counts[donor] -= 1
        counts[0] += 1
    return counts


def _check_splits(clips: list[Clip]) -> None:
    for split in SPLITS:
        counts = Counter(c.label for c in clips if c.split == split)
        if counts["bonafide"] == 0 or counts["attack"] == 0:
            raise DataError(
                f"split {split!r} has {counts['bonafide']} bona fide and {counts['attack']} attack "
                "clips; every split needs both classes (add subjects or change the fractions)"
            )


# --- fingerprint ---------------------------------------------------------------------------------


def _signature(path: Path, content: bool) -> str:
    """Stamp of a clip's files: size and mtime, or a content hash (used for the synthetic set,
    whose files are identical wherever they are generated)."""
    files = [path] if path.is_file() else [p for p in sorted(path.iterdir()) if p.is_file()]
    digest = hashlib.blake2b(digest_size=16)
    for file in files:
        stat = file.stat()
        digest.update(f"{file.name}\0{stat.st_size}\0".encode())
        if content:
            digest.update(hashlib.blake2b(file.read_bytes(), digest_size=16).digest())
        else:
            digest.update(str(stat.st_mtime_ns).encode())
    return digest.hexdigest()


def _fingerprint(protocol: str, clips: list[Clip], signatures: dict[str, str]) -> str:
    records = [
        [c.clip_id, signatures[c.clip_id], c.subject, c.label, c.attack_type, c.split]
        for c in clips
    ]
    text = json.dumps({"protocol": protocol, "clips": records}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
