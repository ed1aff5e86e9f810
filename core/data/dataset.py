"""Find, label and split every clip of a dataset root: the loader behind every command.

The protocol (``--protocol``; ``auto`` recognises the database and runs its first protocol) names
a layout, which reads each clip's subject, label, species, own columns and, where the database
fixes it, split; the protocol then chooses its clips and their splits (and fold): see
:mod:`core.data.layouts`. Splits given are respected (a missing dev or test split is carved from
train by subject); otherwise a seeded, subject-disjoint split stratified by label
(:mod:`core.data.splits`). A clip whose name holds no subject is an error: give
``subject_pattern`` (a regex whose first group is the subject).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.constants import LABELS, SPLITS
from core.data.clips import (
    FRAME_SUFFIXES,
    SYNTHETIC_MARKER,
    VIDEO_SUFFIXES,
    Clip,
    DataError,
    NoUsableClip,
    Split,
    frame_files,
    shown_path,
    utf8_name,
)
from core.data.layouts import AUTO, Layout, Protocol, check_one_database, detect, get_protocol
from core.data.layouts.generic import NO_LABEL_FOLDER
from core.data.layouts.registry import by_top_folder, get_layout
from core.data.splits import (
    DEFAULT_FRACTIONS,
    assign_splits,
    check_fractions,
    check_splits,
    missing_splits,
)
from core.data.subjects import compile_subject_pattern
from core.words import counted

log = logging.getLogger(__name__)

SUMMARY_SKIPS = 10  # skipped entries listed by name in the summary; all are logged


@dataclass
class Dataset:
    """The clips of one dataset root, each with its split, and what was skipped on the way."""

    root: Path
    protocol: str  # the protocol run, e.g. "oulu-p3" (auto resolved)
    clips: list[Clip]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    fingerprint: str = ""
    synthetic: bool = False
    signatures: dict[str, str] = field(default_factory=dict, repr=False)  # clip_id -> file stamp
    # Every clip the layout found under root, before a protocol chose and split some of them:
    # features are extracted (and cached) for these, so every protocol and fold shares one cache.
    source_clips: list[Clip] = field(default_factory=list, repr=False)
    # Hash of the source clips' ids and file stamps only (no split, subject or label): the data
    # part of the feature cache key.
    content_fingerprint: str = ""
    fold: int | None = None  # the protocol's fold, for protocols that have folds
    layout: str = ""  # the database layout that read the clips, e.g. "oulu"
    test_split_given: bool = True  # the database (or protocol) fixes a test split: not carved
    carved: tuple[str, ...] = ()  # splits drawn by subject (--split-seed), not given by the data
    aside: str = ""  # what the layout set aside unread: "160 enrolment videos (...) in enroll/"
    # Each source clip as its file name and sizes (sorted; names repeat), no file times: a copy
    # made without them (cp -r), whole or in part, shares them, which content_fingerprint tells
    # apart; two databases sharing one would test a head on a clip it trained on
    clip_keys: tuple[str, ...] = ()

    def split(self, name: Split) -> list[Clip]:
        """The clips of one split, in clip_id order."""
        if name not in SPLITS:
            raise DataError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
        return [c for c in self.clips if c.split == name]

    @property
    def subjects(self) -> list[str]:
        """Distinct subjects, sorted."""
        return sorted({c.subject for c in self.clips})

    @property
    def column_names(self) -> list[str]:
        """The dataset's own clip columns (e.g. phone, session), in the order clips give them."""
        clips = self.source_clips or self.clips
        return list(dict.fromkeys(name for c in clips for name, _ in c.attributes))

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
            fingerprint=_fingerprint(self.protocol, self.fold, kept, signatures),
        )

    def split_line(self) -> str:
        """The splits' counts in one line: for a fold after the first, whose clips and features
        the first fold's :meth:`summary` showed."""
        kind = self.protocol if self.fold is None else f"{self.protocol} fold {self.fold}"
        return f"{self.root} ({kind}): " + "; ".join(map(self._split_counts, SPLITS))

    def _split_counts(self, split: Split) -> str:
        clips = self.split(split)
        drawn = ""
        if split in self.carved:  # not the data's own split: say how it was drawn
            how = "split" if len(self.carved) == len(SPLITS) else "carved from train"
            drawn = f"; {how} by subject (--split-seed)"
        return (
            f"{split}: {len(clips)} clips ({sum(c.label == 'bonafide' for c in clips)} bona "
            f"fide, {sum(c.label == 'attack' for c in clips)} attack), "
            f"{counted(len({c.subject for c in clips}), 'subject')}{drawn}"
        )

    def summary(self) -> str:
        """Counts per split, label and species, subjects per split and the skipped count."""
        kind = self.protocol if self.fold is None else f"{self.protocol} fold {self.fold}"
        if self.synthetic:
            kind += ", synthetic demonstration set"
        lines = [
            f"{self.root} ({kind}): {len(self.clips)} clips, {len(self.subjects)} subjects, "
            f"{len(self.skipped)} skipped, fingerprint {self.fingerprint[:12]}"
        ]
        rows = Counter((c.split, c.label, c.attack_type) for c in self.clips)
        width = max([len("species")] + [len(a) for _, _, a in rows])
        lines.append(f"  {'split':<7}{'label':<10}{'species':<{width + 2}}clips")
        for split in SPLITS:
            for label in LABELS:
                for (s, lab, attack), n in sorted(rows.items()):
                    if s == split and lab == label:
                        lines.append(f"  {s:<7}{lab:<10}{attack:<{width + 2}}{n}")
        lines += [f"  {self._split_counts(split)}" for split in SPLITS]
        if self.aside:
            lines.append(f"  not read: {self.aside}")
        for path, reason in self.skipped[:SUMMARY_SKIPS]:
            lines.append(f"  skipped {path}: {reason}")
        if len(self.skipped) > SUMMARY_SKIPS:
            lines.append(
                f"  ... and {len(self.skipped) - SUMMARY_SKIPS} more skipped (see warnings)"
            )
        return "\n".join(lines)


def check_folder(root: Path, named: str = "") -> None:
    """A :class:`DataError` (one line, after ``named``: "database msu: ") when ``root`` is no
    folder: a database is given by its folder."""
    if not root.is_dir():
        kind = "a file, not a folder" if root.exists() else "no such folder"
        raise DataError(f"{named}{root}: {kind}; a database is given by its folder")


def load_dataset(
    root: str | os.PathLike,
    protocol: str = AUTO,
    subject_pattern: str | None = None,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    fold: int | None = None,
) -> Dataset:
    """Find, label and split the clips of ``protocol`` (and ``fold``, for a protocol that has
    folds: see :func:`core.data.layouts.folds`) under ``root``; the module docstring has the rules.

    Raises:
        DataError: bad option or fold, no usable clip, a clip without a subject, a subject in two
            given splits, or a split without both classes.
    """
    root = Path(root).expanduser()
    check_folder(root)
    layout, chosen = (None, None) if protocol == AUTO else get_protocol(protocol)
    fractions = check_fractions(fractions)
    pattern = compile_subject_pattern(subject_pattern)

    candidates, skipped = _find_clips(root)
    check_one_database(root, candidates, layout)
    layout = layout or detect(root, candidates)
    if pattern is not None and layout.own_subjects:
        raise DataError(
            f"--subject-pattern '{subject_pattern}': {root} is read as {layout.name}, whose file "
            "names say each clip's subject: drop --subject-pattern"
        )
    chosen = chosen or layout.protocols[0]
    candidates, aside = _set_aside(root, candidates, layout)
    found, more = layout.read(root, candidates, pattern)
    # files the database ships (face boxes): data, not strays
    skipped = [(p, r) for p, r in skipped if p.suffix not in layout.companion_suffixes]
    skipped = sorted(skipped + more)
    if not found:  # one line, not a warning per file (5,000 for a wrong --protocol on OULU-NPU)
        first = f", e.g. {skipped[0][0].relative_to(root)}" if skipped else ""
        raise NoUsableClip(
            f"{root}: no usable clip ({layout.name} layout, {len(skipped)} entries skipped"
            f"{first}){_recognised_as(root, candidates, layout)}; videos or frame folders where "
            f"the layout expects them: {layout.summary or layout.name}",
            layout.name,
        )
    chosen.check_fold(fold)  # once the folder holds the protocol's database, which it says first
    for path, reason in skipped:
        log.warning("skipped %s: %s", path, reason)
    nameless = sorted(clip.clip_id for clip, no_subject in found if no_subject)
    if nameless:
        fix = (
            f"--subject-pattern '{subject_pattern}' matches none of them (searched in each "
            "clip's name, then its folders)"
            if subject_pattern is not None
            else "give --subject-pattern, a regex whose first group is the subject (the person "
            "filmed), so that no person is in two splits"
        )
        raise DataError(
            f"{root}: {len(nameless)} of {len(found)} clips have no subject in their name "
            f"(e.g. {nameless[0]}); {fix}"
        )
    source = sorted((clip for clip, _ in found), key=lambda c: c.clip_id)
    clips = chosen.clips(source, fold)
    if not clips:
        raise DataError(f"{root}: protocol {chosen.name} uses none of the {len(source)} clips")
    if layout.fixed_splits:
        _check_protocol_splits(root, layout, chosen, fold, clips)
    test_split_given = any(clip.split == "test" for clip in clips)
    carved = missing_splits(clips)
    clips = assign_splits(clips, chosen.name, seed, fractions)
    try:
        check_splits(clips, carved)
    except DataError as err:  # the folder named: a study may read several databases
        (one, *other) = {clip.label for clip in clips}  # one class only: a class's own folder?
        one = "bona fide" if one == "bonafide" else one
        # "is the database's folder .?" of --data . (probe); links not followed (review)
        parent = Path(os.path.abspath(root)).parent
        whole = "" if other else f" (every clip {one}: is the database's folder {parent}?)"
        unlabelled = [p for p, why in skipped if why == NO_LABEL_FOLDER]
        if unlabelled and not other:  # attak/: a class folder misnamed, not a folder too deep
            folders = sorted({_top_folder(p, root) for p in unlabelled})
            whole = (
                f" (every clip {one}; {len(unlabelled)} skipped under {', '.join(folders)} with "
                "no label folder above them: a class folder misnamed? real/live/bonafide or "
                "attack/spoof name one)"
            )
        raise DataError(f"{root}: {err}{whole}") from None
    clips.sort(key=lambda c: c.clip_id)
    synthetic = (root / SYNTHETIC_MARKER).is_file()
    stamps = {c.clip_id: _signature(c.path, content=synthetic) for c in source}
    signatures = {clip_id: signature for clip_id, (signature, _) in stamps.items()}
    content = json.dumps(sorted(signatures.items()))
    return Dataset(
        root=root,
        protocol=chosen.name,
        clips=clips,
        skipped=skipped,
        fingerprint=_fingerprint(chosen.name, fold, clips, signatures),
        synthetic=synthetic,
        signatures=signatures,
        source_clips=source,
        content_fingerprint=hashlib.sha256(content.encode()).hexdigest(),
        clip_keys=tuple(sorted(f"{Path(i).name} {sizes}" for i, (_, sizes) in stamps.items())),
        fold=fold,
        layout=layout.name,
        test_split_given=test_split_given,
        carved=carved,
        aside=aside,
    )


def _recognised_as(root: Path, candidates: list[Path], layout: Layout) -> str:
    """``"; they are oulu's clips (protocol auto or oulu-p1 reads them)"`` when another
    database's layout recognises what ``layout`` could not read; else nothing. No flag named:
    the protocol was given by --protocol, --test-protocol or --db NAME=PATH:PROTOCOL."""
    try:
        other = detect(root, candidates)
    except DataError:  # most of them another database's: no one name to give
        return ""
    if other.name in (layout.name, "generic"):
        return ""
    return (
        f"; they are {other.name}'s clips (protocol auto or {other.protocols[0].name} reads them)"
    )


def check_the_path(root: Path, layout_name: str) -> str:
    """The fix for a named database whose folder did not read as its layout: the folder right
    under ``root`` that the layout recognises, where the copy is one folder down (a nested
    Replay-Attack or CASIA-FASD read as the generic layout, its real place unsaid: probe W);
    else "check the path"."""
    recognise = get_layout(layout_name).recognise
    if recognise is not None:
        for folder, paths in by_top_folder(root, _find_clips(root)[0]).items():
            if recognise(root / folder, paths):
                return f"is the database's folder {root / folder}, one down?"
    return "check the path"


def _set_aside(root: Path, candidates: list[Path], layout: Layout) -> tuple[list[Path], str]:
    """The candidates outside the folders ``layout`` sets aside, and what it set aside, counted
    (``"160 enrolment videos (...) in enroll/"``), for the summary."""
    what = {top: (noun, note) for top, noun, note in layout.aside}
    folder = [path.relative_to(root).parts[0] for path in candidates]
    counted = Counter(top for top in folder if top in what)
    kept = [path for path, top in zip(candidates, folder, strict=True) if top not in what]
    said = [
        f"{n} {what[top][0]}{'s' * (n != 1)} ({what[top][1]}) in {top}/"
        for top, n in counted.items()
    ]
    return kept, "; ".join(said)


def clips_under(
    root: Path, videos: tuple[str, ...] = VIDEO_SUFFIXES
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every video file (of the suffixes ``videos``) and frame folder under ``root``, as a
    database's are found, and what may have been one but cannot be read (a name that is not
    UTF-8, a link to nothing, a folder that cannot be read: a video's or an image's name, or a
    name without a suffix, as a folder's), each with why: a reader of the clips said them not
    (probe); other files, and ``root`` itself, are not said."""
    clips, skipped = _find_clips(root, videos)
    maybe = (*videos, *FRAME_SUFFIXES, "")
    return clips, [
        (path, why)
        for path, why in skipped
        if why.startswith(UNREACHED) and path.suffix.lower() in maybe and path != root
    ]


# why a path under a data folder, a clip or a folder of them perhaps, cannot be read
UNREACHED = ("its name is not UTF-8: rename it", "a link to nothing", "cannot read this folder")


def _find_clips(
    root: Path, videos: tuple[str, ...] = VIDEO_SUFFIXES
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every video file and frame folder under ``root``, through symbolic links (a database's
    folders linked from another disk were left out without a word); other files, links to
    nothing, names that are not UTF-8 and folders that cannot be read are skipped with a warning
    (an unreadable split folder went unsaid, its split then carved from train)."""
    clips: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    seen: dict[str, Path] = {}  # folders walked, by their real path: each is read once

    def unreadable(err: OSError) -> None:
        skipped.append((Path(err.filename), f"{UNREACHED[2]} ({err.strerror})"))

    def usable(here: Path, name: str) -> bool:
        if not utf8_name(name):  # its other bytes as \xe9, which a log or a record takes
            skipped.append((Path(shown_path(here / name)), UNREACHED[0]))
        elif not os.path.exists(here / name):
            skipped.append((here / name, UNREACHED[1]))
        else:
            return True
        return False

    for folder, dirs, files in os.walk(root, onerror=unreadable, followlinks=True):
        here = Path(folder)
        real = os.path.realpath(folder)
        if real in seen:  # a second way to a folder (a link to it, or back above it)
            skipped.append((here, f"the folder {seen[real]} again (through a link): read once"))
            dirs[:] = []
            continue
        seen[real] = here
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and usable(here, d))
        names = sorted(f for f in files if not f.startswith(".") and usable(here, f))
        if here == root and SYNTHETIC_MARKER in names:
            names.remove(SYNTHETIC_MARKER)
        frames = [n for n in names if Path(n).suffix.lower() in FRAME_SUFFIXES]
        if frames and here != root:
            clips.append(here)
        elif frames:
            skipped += [(here / n, "frame image directly in the data root") for n in frames]
        elif not dirs and not names and here != root:
            skipped.append((here, "empty folder (no frames)"))
        odd: dict[str, list[str]] = {}  # by suffix: a folder of .gif frames is one skip
        for name in names:
            suffix = Path(name).suffix.lower()
            if suffix in videos:
                clips.append(here / name)
            elif suffix not in FRAME_SUFFIXES:
                odd.setdefault(suffix, []).append(name)
        expected = f"expected {' '.join(VIDEO_SUFFIXES)} or a folder of {' '.join(FRAME_SUFFIXES)}"
        for suffix, same in odd.items():
            if len(same) == 1:
                skipped.append((here / same[0], f"unsupported file ({expected})"))
            else:
                skipped.append((here / f"*{suffix}", f"{len(same)} unsupported files ({expected})"))
    return clips, skipped


def _signature(path: Path, content: bool) -> tuple[str, list[int]]:
    """Stamp of a clip's files: size and mtime, or a content hash (used for the synthetic set,
    whose files are identical wherever they are generated); and their sizes."""
    digest = hashlib.blake2b(digest_size=16)
    sizes = []
    files = [path] if path.is_file() else sorted(frame_files(path))  # the files read
    for file in files:
        stat = file.stat()
        sizes.append(stat.st_size)
        digest.update(f"{file.name}\0{stat.st_size}\0".encode())
        if content:
            digest.update(hashlib.blake2b(file.read_bytes(), digest_size=16).digest())
        else:
            digest.update(str(stat.st_mtime_ns).encode())
    return digest.hexdigest(), sizes


def _fingerprint(
    protocol: str, fold: int | None, clips: list[Clip], signatures: dict[str, str]
) -> str:
    records = [
        [c.clip_id, signatures[c.clip_id], c.subject, c.label, c.attack_type, c.split]
        for c in clips
    ]
    described = {"protocol": protocol, "clips": records} | ({"fold": fold} if fold else {})
    text = json.dumps(described, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_protocol_splits(
    root: Path, layout: Layout, protocol: Protocol, fold: int | None, clips: list[Clip]
) -> None:
    """A DataError when the protocol's train, dev or test split holds none of ``clips``: the
    database's lists fix every split, so an empty one is a partial copy, and carving it from
    train by subject would put a random split where the protocol's is expected. It says where
    the database's splits come from (a partial CASIA-FASD copy did not say where dev is)."""
    empty = [s for s in SPLITS if not any(clip.split == s for clip in clips)]
    if empty:
        which = f"protocol {protocol.name}" + (f" fold {fold}" if fold is not None else "")
        raise DataError(
            f"{root}: {which} has no {' or '.join(empty)} clip among the {len(clips)} found: "
            f"a partial copy of the {layout.name} database? Its splits are the database's "
            f"lists, never drawn at random ({layout.splits}; {protocol.name}: {protocol.summary})"
        )


def _top_folder(path: Path, root: Path) -> str:
    """The folder of ``root`` that ``path`` is in, as ``name/`` (``path`` where it is not in
    one)."""
    parts = path.relative_to(root).parts if path.is_relative_to(root) else ()
    return f"{parts[0]}/" if len(parts) > 1 else str(path)
