"""The dataset layout registry: one file per layout under ``core/data/layouts/`` registers itself.

A :class:`Layout` says how a database is recognised on disk (``recognise``) and how its clips'
subjects, labels, attack types and splits are read (``read``). ``--protocol`` choices of the
command lines come from :func:`layout_names`; ``auto`` asks each layout's ``recognise`` in
descending ``priority`` and falls back to the layout that recognises anything (``generic``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.data.clips import Clip, DataError

AUTO = "auto"
# What a layout's ``read`` returns: each clip with "its subject is only itself" (no subject could
# be read from its name), and the (path, reason) entries it skipped.
Found = tuple[list[tuple[Clip, bool]], list[tuple[Path, str]]]
Reader = Callable[[Path, list[Path], "re.Pattern[str] | None"], Found]


@dataclass(frozen=True)
class Layout:
    """How one database lays out its clips.

    ``read(root, candidates, subject_pattern)`` gets every video file and frame folder under
    ``root`` and returns :data:`Found`. A clip's split may be left ``None`` when the database does
    not fix it (then every clip's must be, and the loader splits by subject). ``recognise(root,
    candidates)`` says whether ``root`` holds this database; ``None`` means never auto-detected.
    ``companion_suffixes`` are files the database ships beside each clip (e.g. face boxes), which
    are data, not stray files to warn about.
    """

    name: str
    read: Reader
    recognise: Callable[[Path, list[Path]], bool] | None = None
    priority: int = 0
    companion_suffixes: tuple[str, ...] = ()
    summary: str = ""


_LAYOUTS: dict[str, Layout] = {}


def register_layout(layout: Layout) -> Layout:
    """Add ``layout`` to the registry (its name becomes a ``--protocol`` choice)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", layout.name) or layout.name == AUTO:
        raise ValueError(f"layout name {layout.name!r}: use lower-case letters, digits, - and _")
    if layout.name in _LAYOUTS:
        raise ValueError(f"layout {layout.name!r} is registered twice")
    _LAYOUTS[layout.name] = layout
    return layout


def layout_names() -> list[str]:
    """Registered layout names, sorted: the ``--protocol`` choices besides ``auto``."""
    return sorted(_LAYOUTS)


def get_layout(name: str) -> Layout:
    """The layout called ``name``; a :class:`DataError` naming the choices otherwise."""
    if name not in _LAYOUTS:
        choices = ", ".join([AUTO, *layout_names()])
        raise DataError(f"protocol must be one of {choices}, got {name!r}")
    return _LAYOUTS[name]


def detect(root: Path, candidates: list[Path]) -> Layout:
    """The highest-priority layout that recognises ``root``."""
    ranked = sorted(_LAYOUTS.values(), key=lambda layout: (-layout.priority, layout.name))
    for layout in ranked:
        if layout.recognise is not None and layout.recognise(root, candidates):
            return layout
    raise DataError(f"{root}: no dataset layout recognises this folder")
