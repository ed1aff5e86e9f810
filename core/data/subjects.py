"""Reading a subject (the person filmed) out of a clip's relative path."""

from __future__ import annotations

import re
from pathlib import Path

from core.data.clips import DataError

REPLAY_ATTACK_SUBJECT = re.compile(r"(?<![a-z])client[_-]?(\d+)", re.IGNORECASE)
# Common ways of writing a subject into a file name: client007, subject_3, user-12, id04.
DEFAULT_SUBJECT_PATTERN = r"(?<![a-z])(?:client|subject|subj|user|person|id)[_-]?(\d+)"


def subject_of(clip_id: str, pattern: re.Pattern[str] | None) -> tuple[str | None, bool]:
    r"""(subject, matched the user's pattern); subject None when nothing in the name gives one.

    The user's ``pattern`` (its first group that matched something, else the match; an empty
    match reads nothing) is searched in the clip's name, then
    in its folders from the deepest up, then in the whole relative path (a pattern that spans
    folders): a name's ``(\d+)`` is not read from an attack folder ``print2`` above it, and
    ``^`` anchors at the name. Then ``clientNNN`` (Replay-Attack) and
    :data:`DEFAULT_SUBJECT_PATTERN` in the name, then in the folders from the deepest up.
    """
    parts = clip_id.split("/")
    if pattern is not None:
        for text in (*reversed(parts), clip_id):
            for match in pattern.finditer(text):
                found = _read(match)
                if found:  # an empty match reads no subject: it would make each clip its own
                    return normal_subject(found), True
    for rule in (REPLAY_ATTACK_SUBJECT, re.compile(DEFAULT_SUBJECT_PATTERN, re.IGNORECASE)):
        for part in reversed(parts):
            match = rule.search(part)
            if match:
                return normal_subject(match.group(1)), False
    return None, False


def _read(match: re.Match[str]) -> str:
    r"""A match's subject: its first group that took part (``a(\d+)|b(\d+)``), else the match."""
    if not match.re.groups:
        return match.group(0)
    return next((group for group in match.groups() if group), "")


def normal_subject(text: str) -> str:
    """'007' and '7' are one subject."""
    return str(int(text)) if text.isdigit() else text


def compile_subject_pattern(subject_pattern: str | None) -> re.Pattern[str] | None:
    if subject_pattern is None:
        return None
    try:
        return re.compile(subject_pattern)
    except re.error as exc:
        raise DataError(f"--subject-pattern '{subject_pattern}' is not a regex: {exc}") from None


def clip_id(root: Path, path: Path) -> str:
    """A clip's id: its path relative to the data root, without a video's suffix."""
    rel = path.relative_to(root)
    return (rel.with_suffix("") if path.is_file() else rel).as_posix()
