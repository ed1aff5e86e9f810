"""CASIA-FASD (Zhang et al., ICB 2012): ``train_release/<subject>/<n>.avi``, ``test_release/...``.

1, 2, HR_1 are bona fide; 3, 4, HR_2 warped print; 5, 6, HR_3 cut print; 7, 8, HR_4 video replay
(the paper's Table 1). train_release is train, test_release is test; the loader carves dev from
train by subject. Recognised by a ``train_release`` or ``test_release`` folder at the root.
"""

from __future__ import annotations

import re
from pathlib import Path

from core.data.clips import Clip, Label, Split
from core.data.layouts.registry import Found, Layout, register_layout
from core.data.subjects import clip_id, normal_subject

# file stem -> (label, attack type)
CASIA_FILES: dict[str, tuple[Label, str]] = {
    **{s: ("bonafide", "bonafide") for s in ("1", "2", "HR_1")},
    **{s: ("attack", "print/warped") for s in ("3", "4", "HR_2")},
    **{s: ("attack", "print/cut") for s in ("5", "6", "HR_3")},
    **{s: ("attack", "replay") for s in ("7", "8", "HR_4")},
}
CASIA_SPLITS: dict[str, Split] = {"train_release": "train", "test_release": "test"}


def read_casia(root: Path, candidates: list[Path], pattern: re.Pattern[str] | None) -> Found:
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
        subject = f"{split}-{normal_subject(parts[1])}"
        label, attack_type = kind
        found.append((Clip(path, clip_id(root, path), subject, label, attack_type, split), False))
    return found, skipped


register_layout(
    Layout(
        "casia",
        read_casia,
        recognise=lambda root, candidates: any((root / name).is_dir() for name in CASIA_SPLITS),
        priority=20,
        summary="CASIA-FASD: train_release|test_release/<subject>/<1..8|HR_1..HR_4>.avi",
    )
)
