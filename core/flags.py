"""A path flag's argparse type, shared by every command (``python -m core.port`` and the
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
