"""Replay-Attack (Chingovska et al., BIOSIG 2012), its release tree as Idiap ships it.

``train|devel|test/real/client001_session01_webcam_authenticate_adverse_1.mov`` and
``train|devel|test/attack/fixed|hand/attack_<device>_client001_session01_<sample device>_<photo|
video>_<light>.mov``. Species: the attack device, ``print``, ``mobile`` or ``highdef``. Columns:
``light`` (adverse, controlled) and, for attacks, ``support`` (fixed, hand) and ``sample_type``
(photo, video), as bob.db.replay parses them. Subjects are the client numbers; splits are the
folders (devel is dev). Videos under ``enroll/`` are face recognition enrolment, not part of any
PAD protocol: set aside unread, counted in the summary. Face boxes ship in
``face-locations/<same path>.face`` (one line per frame: frame, x, y, width, height). A clip may
also be a folder of its frames named as the video.
Recognised when every clip outside ``enroll/`` has this naming.

Protocols, as bob.db.replay defines them (every real access in every group, the attacks of the
protocol's list): ``replay-attack`` (grandtest, every attack) and ``replay-attack-print``,
``replay-attack-mobile``, ``replay-attack-highdef`` (bona fide and that attack device only, in
train, dev and test).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.data.clips import Clip, FaceBoxes, Split
from core.data.layouts.registry import Found, Layout, Protocol, register_layout
from core.data.subjects import clip_id

SPLITS: dict[str, Split] = {"train": "train", "devel": "dev", "test": "test"}
REAL = re.compile(r"^client(\d{3})_session\d{2}_webcam_authenticate_(adverse|controlled)_\d$")
ATTACK = re.compile(
    r"^attack_(print|mobile|highdef)_client(\d{3})_session\d{2}_(?:highdef|mobile)_"
    r"(photo|video)_(adverse|controlled)$"
)
SUPPORTS = ("fixed", "hand")
DEVICES = ("print", "mobile", "highdef")
ENROLL = "enroll"
FACE_LOCATIONS = "face-locations"


def read_replay(root: Path, candidates: list[Path], pattern: re.Pattern[str] | None) -> Found:
    found: list[tuple[Clip, bool]] = []
    skipped: list[tuple[Path, str]] = []
    for path in candidates:
        parts = path.relative_to(root).parts
        clip = _clip(root, path, parts)
        if clip is None:
            skipped.append(
                (
                    path,
                    "not a Replay-Attack clip (expected train|devel|test/real/client<NNN>_..."
                    ".mov or .../attack/fixed|hand/attack_<print|mobile|highdef>_client<NNN>_...)",
                )
            )
            continue
        found.append((clip, False))
    return found, skipped


def _clip(root: Path, path: Path, parts: tuple[str, ...]) -> Clip | None:
    """The clip at ``path`` if its place and name are Replay-Attack's, else None."""
    if parts[0] not in SPLITS:
        return None
    cid = clip_id(root, path)
    boxes = root / FACE_LOCATIONS / f"{cid}.face"
    if len(parts) == 3 and parts[1] == "real" and (real := REAL.match(path.stem)):
        client, light = real.groups()
        species, columns = "bonafide", (("light", light),)
    elif len(parts) == 4 and parts[1] == "attack" and parts[2] in SUPPORTS:
        attack = ATTACK.match(path.stem)
        if attack is None:
            return None
        species, client, sample_type, light = attack.groups()
        columns = (("light", light), ("support", parts[2]), ("sample_type", sample_type))
    else:
        return None
    return Clip(
        path,
        cid,
        str(int(client)),
        "bonafide" if species == "bonafide" else "attack",
        species,
        SPLITS[parts[0]],
        attributes=columns,
        face_boxes=FaceBoxes.at(boxes, "xywh"),
    )


def _recognise(root: Path, candidates: list[Path]) -> bool:
    clips = [p for p in candidates if p.relative_to(root).parts[0] != ENROLL]
    return bool(clips) and all(_clip(root, p, p.relative_to(root).parts) for p in clips)


@dataclass(frozen=True)
class OneDevice:
    """Every bona fide clip and the attacks of one device, in every split."""

    device: str

    def __call__(self, clips: list[Clip], fold: int | None) -> list[Clip]:
        return [c for c in clips if c.attack_type in ("bonafide", self.device)]


register_layout(
    Layout(
        "replay-attack",
        read_replay,
        recognise=_recognise,
        priority=15,
        fixed_splits=True,
        splits="its train, devel (dev) and test folders",
        own_subjects=True,
        companion_suffixes=(".face",),
        boxes=f"{{root}}/{FACE_LOCATIONS}/<the clip's path>.face (Idiap ships them apart)",
        aside=((ENROLL, "enrolment video", "face recognition, not PAD"),),
        summary="Replay-Attack: train|devel|test/real|attack/fixed|hand/*.mov (+ face-locations)",
        protocols=(
            Protocol("replay-attack", summary="Replay-Attack grandtest: every attack"),
            *(
                Protocol(
                    f"replay-attack-{device}",
                    OneDevice(device),
                    summary=f"Replay-Attack: bona fide and {device} attacks only",
                )
                for device in DEVICES
            ),
        ),
    )
)
