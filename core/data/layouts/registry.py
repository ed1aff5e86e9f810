"""The dataset layout registry: one file per layout under ``core/data/layouts/`` registers itself.

A :class:`Layout` says how a database is recognised on disk (``recognise``), how its clips'
subjects, labels, species, splits and own columns are read (``read``), and which evaluation
protocols it offers (``protocols``: which clips each uses, in which split, with folds where the
protocol has them). ``--protocol`` choices of the command lines come from :func:`protocol_names`;
``auto`` asks each layout's ``recognise`` in descending ``priority`` (the generic layout, which
recognises anything, last) and runs that layout's first protocol.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.data.clips import Clip, DataError, StrayFiles

AUTO = "auto"
# What a layout's ``read`` returns: each clip with "no subject could be read from its name" (the
# loader refuses those, naming --subject-pattern), and the (path, reason) entries it skipped.
Found = tuple[list[tuple[Clip, bool]], list[tuple[Path, str]]]
Reader = Callable[[Path, list[Path], "re.Pattern[str] | None"], Found]
# (every clip the layout read, fold or None) -> the protocol's clips, each with its split
Selector = Callable[[list[Clip], "int | None"], list[Clip]]
NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol of a database.

    ``select(clips, fold)`` gets every clip the layout read and returns the protocol's clips with
    their split; ``None`` keeps every clip with the split the layout read (a split left ``None``
    is carved by the loader, by subject). ``folds`` are the fold numbers of a protocol that has
    folds (e.g. OULU-NPU Protocol 3's six phones); one of them must then be chosen.
    """

    name: str
    select: Selector | None = None
    folds: tuple[int, ...] = ()
    summary: str = ""

    def clips(self, clips: list[Clip], fold: int | None) -> list[Clip]:
        """The protocol's clips (see the class docstring); ``fold`` is checked first."""
        self.check_fold(fold)
        return list(clips) if self.select is None else self.select(clips, fold)

    def check_fold(self, fold: int | None) -> None:
        """A :class:`DataError` unless ``fold`` is one of :attr:`folds` (or None without folds)."""
        if not self.folds and fold is not None:
            raise DataError(f"protocol {self.name} has no folds, got --fold {fold}")
        if self.folds and fold not in self.folds:
            span = f"{min(self.folds)}-{max(self.folds)}"
            if fold is None:
                raise DataError(f"protocol {self.name} has folds {span}: choose one with --fold K")
            raise DataError(f"protocol {self.name} has folds {span}, got --fold {fold}")


@dataclass(frozen=True)
class Layout:
    """How one database lays out its clips.

    ``read(root, candidates, subject_pattern)`` gets every video file and frame folder under
    ``root`` and returns :data:`Found`. A clip's split may be left ``None`` when the database does
    not fix it (then every clip's must be, and the loader splits by subject). ``recognise(root,
    candidates)`` says whether ``root`` holds this database; ``None`` means never auto-detected.
    ``protocols``: the first is what ``auto`` runs; none declared means one protocol named after
    the layout that keeps every clip. ``companion_suffixes``: files the database ships (e.g. face
    boxes), which are data, not stray files to warn about. ``aside``: ``(folder, noun, note)``
    for each top-level folder of videos the database ships for another purpose (Replay's
    ``enroll/``: ``("enroll", "enrolment video", "face recognition, not PAD")``):
    not read, not warned about one by one, counted once. ``fixed_splits``: every protocol puts
    each clip in train, dev or test by the database's own lists, so a split none of the clips read
    is in means a partial copy of the database: refused, not carved from train by subject, and
    ``splits`` says where the database takes each split from.
    ``own_subjects``: the database's file names say each clip's subject, so ``read`` takes no
    subject pattern and ``--subject-pattern`` is refused (it was ignored without a word).
    ``boxes``: where the database's face-box files are read from (``{root}``: the database's
    folder), said where a clip has none (Replay-Attack's ship as an archive of their own:
    unpacked elsewhere, the detector cropped every clip without a word: probe).
    """

    name: str
    read: Reader
    recognise: Callable[[Path, list[Path]], bool] | None = None
    priority: int = 0
    companion_suffixes: tuple[str, ...] = ()
    aside: tuple[tuple[str, str, str], ...] = ()
    summary: str = ""
    protocols: tuple[Protocol, ...] = ()
    fixed_splits: bool = False
    splits: str = ""
    own_subjects: bool = False
    boxes: str = ""

    def __post_init__(self) -> None:
        if not self.protocols:
            object.__setattr__(self, "protocols", (Protocol(self.name, summary=self.summary),))


_LAYOUTS: dict[str, Layout] = {}


def register_layout(layout: Layout) -> Layout:
    """Add ``layout`` to the registry (its protocols become ``--protocol`` choices)."""
    taken = {p.name for known in _LAYOUTS.values() for p in known.protocols}
    for name in (layout.name, *(p.name for p in layout.protocols)):
        if not NAME.fullmatch(name) or name == AUTO:
            raise ValueError(f"name {name!r}: use lower-case letters, digits, - and _")
    if layout.name in _LAYOUTS:
        raise ValueError(f"layout {layout.name!r} is registered twice")
    if layout.fixed_splits and not layout.splits:  # said for a partial copy of the database
        raise ValueError(f"layout {layout.name!r}: fixed splits need `splits`, where each is")
    for protocol in layout.protocols:
        if protocol.name in taken:
            raise ValueError(f"protocol {protocol.name!r} is registered twice")
        taken.add(protocol.name)
        if any(f < 1 for f in protocol.folds) or len(set(protocol.folds)) != len(protocol.folds):
            raise ValueError(f"protocol {protocol.name!r}: folds must be distinct numbers >= 1")
    _LAYOUTS[layout.name] = layout
    return layout


def box_files(name: str) -> str:
    """Where layout ``name``'s database keeps its face-box files (its ``boxes``; ``{root}``: the
    database's folder), "" for a layout that ships none or is not registered."""
    layout = _LAYOUTS.get(name)
    return layout.boxes if layout else ""


def layout_names() -> list[str]:
    """Registered layout names, sorted."""
    return sorted(_LAYOUTS)


def get_layout(name: str) -> Layout:
    """The registered layout ``name`` (a KeyError for another name)."""
    return _LAYOUTS[name]


def protocol_names() -> list[str]:
    """Every layout's protocol names, sorted: the ``--protocol`` choices besides ``auto``."""
    return sorted(p.name for layout in _LAYOUTS.values() for p in layout.protocols)


def get_protocol(name: str) -> tuple[Layout, Protocol]:
    """The protocol called ``name`` and its layout; a :class:`DataError` naming the choices."""
    for layout in _LAYOUTS.values():
        for protocol in layout.protocols:
            if protocol.name == name:
                return layout, protocol
    choices = ", ".join([AUTO, *protocol_names()])
    raise DataError(f"protocol must be one of {choices}, got {name!r}")


def whole_protocols(protocol: str) -> list[str]:
    """The protocols of ``protocol``'s layout that take its clips without folds."""
    return [p.name for p in get_protocol(protocol)[0].protocols if not p.folds]


def folds(protocol: str) -> tuple[int, ...]:
    """The fold numbers of ``protocol`` (e.g. ``(1, ..., 6)`` for ``oulu-p3``), ``()`` when it
    has none; ``auto`` has none (it runs a database's first protocol)."""
    return () if protocol == AUTO else get_protocol(protocol)[1].folds


def detect(root: Path, candidates: list[Path]) -> Layout:
    """The highest-priority layout that recognises ``root``.

    A layout passed over although it names most of the clips (a copy ``name (1).mp4`` among a
    database's videos) is a :class:`DataError` naming it: read by a lower one, the generic
    layout, the database would be split at random and its species merged, without a word.
    """
    ranked = _ranked()
    for index, layout in enumerate(ranked):
        if layout.recognise(root, candidates):
            if layout is ranked[-1]:  # the fallback (generic): none passed over names most
                for passed in ranked[:index]:
                    _refuse_near_miss(passed, root, candidates)
            return layout
    raise DataError(f"{root}: no dataset layout recognises this folder")


def _ranked() -> list[Layout]:
    """The layouts that recognise a folder, highest priority first; the last (the lowest, the
    generic layout) is the fallback, which recognises any folder of real and attack clips."""
    ranked = sorted(_LAYOUTS.values(), key=lambda layout: (-layout.priority, layout.name))
    return [layout for layout in ranked if layout.recognise is not None]


def database_layouts() -> list[str]:
    """The layouts of a database of their own (OULU-NPU, CASIA-FASD...): every one that recognises
    a folder but the fallback, which reads a folder of the user's own."""
    return sorted(layout.name for layout in _ranked()[:-1])


# the folders a database keeps its clips in, right under its own folder (OULU-NPU's, CASIA-FASD's,
# Replay-Attack's and Replay-Mobile's splits, MSU-MFSD's classes): several of one layout in a
# folder are that database, whose folder it is
OWN_FOLDERS = frozenset(
    ("train_files", "dev_files", "test_files", "train_release", "test_release")
    + ("train", "devel", "dev", "test", "enroll", "real", "attack")
)


def by_top_folder(root: Path, candidates: list[Path]) -> dict[str, list[Path]]:
    """The candidates in folders under ``root`` by the folder right under it, in name order."""
    within: dict[str, list[Path]] = {}
    for path in candidates:
        parts = path.relative_to(root).parts
        if len(parts) > 1:
            within.setdefault(parts[0], []).append(path)
    return dict(sorted(within.items()))


def check_one_database(root: Path, candidates: list[Path], wanted: Layout | None = None) -> None:
    """A :class:`DataError` when the folders right under ``root`` hold databases of two or more
    layouts: ``--data`` at a folder of databases read one of them and called the others' clips
    strays (probe). ``wanted``: the layout of a protocol given, named first in the fix; the
    fallback's (a folder of the user's own) is not checked."""
    *databases, fallback = _ranked()
    if wanted is fallback:
        return
    found = {}
    for folder, paths in by_top_folder(root, candidates).items():
        for layout in databases:
            if layout.recognise(root / folder, paths):
                found[folder] = layout.name
                break
    if len(set(found.values())) < 2:
        return
    # a database whose own folders lie here (OULU-NPU's Train_files, Dev_files, Test_files):
    # one database, this folder's, not three (each had been suggested as --data: probe W); two
    # copies of one database (oulu_v1, oulu_v2) stay two
    groups: dict[str, list[str]] = {}
    for folder, name in found.items():
        if folder.lower() in OWN_FOLDERS:
            groups.setdefault(name, []).append(folder)
    here = {name: folders for name, folders in groups.items() if len(folders) > 1}
    if here:
        own = {folder for folders in here.values() for folder in folders}
        others = [folder for folder in found if folder not in own]
        listed = ", ".join(
            [f"{', '.join(folders)} ({name}, this folder's)" for name, folders in here.items()]
            + [f"{folder} ({found[folder]})" for folder in others]
        )
        listed += f", none {wanted.name}" if wanted and wanted.name not in found.values() else ""
        fix = (  # two databases' own folders mixed in one: no folder to move (review)
            f"move {', '.join(others)} out of it"
            if others and len(here) == 1
            else "give each database a folder of its own"
        )
        raise DataError(
            f"{root} holds {len(here) + len(others)} databases: {listed}; {fix} (a folder each: "
            "--data takes one, a cross-domain study names each, --db NAME=PATH ...; README: "
            "Cross-domain (OCIM))"
        )
    listed = ", ".join(f"{folder} ({name})" for folder, name in found.items())
    ours = [folder for folder, name in found.items() if wanted and name == wanted.name]
    first = ours[0] if ours else next(iter(found))
    listed += f", none {wanted.name}" if wanted and not ours else ""
    raise DataError(
        f"{root} holds {len(found)} databases: {listed}; --data takes one (--data "
        f"{root / first}), a cross-domain study names each (--db {found[first]}={root / first} "
        f"...; README: Cross-domain (OCIM)); --protocol {fallback.protocols[0].name} reads a "
        "folder of your own"
    )


def _refuse_near_miss(layout: Layout, root: Path, candidates: list[Path]) -> None:
    recognise = layout.recognise
    assert recognise is not None
    named = [path for path in candidates if recognise(root, [path])]
    if not named or 2 * len(named) < len(candidates):
        return
    # beside a clip it names, a path the layout leaves aside (Replay's enrolment videos) is fine
    others = [path for path in candidates if not recognise(root, [named[0], path])]
    if not others:
        return
    raise StrayFiles(
        f"{root}: {len(candidates) - len(others)} of {len(candidates)} clips are named as "
        f"{layout.name}'s and {len(others)} not (e.g. {others[0].relative_to(root)})",
        layout.protocols[0].name,
        layout.name,
        len(others),
    )
