"""Path and name flags' argparse types, shared by every command (``python -m core.port`` and the
``experiments/`` commands)."""

from __future__ import annotations

import argparse
from pathlib import Path


def given_path(text: str) -> Path:
    """``Path`` refusing an empty text, which ``Path`` reads as the current folder (``--data ""``
    of a variable that is not set)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path: name a file or folder")
    return Path(text)


def given_name(text: str) -> str:
    """A name refusing an empty text (``--study "$STUDY"`` of a variable that is not set), which
    would read as "not given": the default study, another one's (probe)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty name: name one, or leave the flag out")
    return text
