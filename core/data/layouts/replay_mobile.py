"""Replay-Mobile (Costa-Pazo et al., BIOSIG 2016), its release tree as Idiap ships it: 40 clients.

``train|devel|test/real/client<NNN>_session02_authenticate_<mobile|tablet>_<light>.mov`` (light:
``controlled``, ``adverse``, ``direct``, ``lateral``, ``diffuse``) and ``train|devel|test/attack/
attack_client<NNN>_session01_<print|mattescreen>_<fixed|hand>_<mobile|tablet>_<photo|video>_
<lighton|lightoff>.mov``, as bob.db.replaymobile's file table (``bob/db/replaymobile/db.sql3``)
names them. Species: the attack instrument, ``print`` or ``mattescreen``. Columns: ``light``,
``device`` (the capture device: ``mobile``, an LG G4 phone, or ``tablet``, an iPad Mini 2) and,
for attacks, ``support`` (``fixed``, ``hand``) and ``sample_type`` (``photo``, ``video``).
Subjects are the client numbers; splits are the folders (devel is dev), which must agree with
bob.db.replaymobile's client table (:data:`CLIENTS`): a clip under another group's folder is
skipped. Videos under ``enroll/`` are face recognition enrolment, not part of any PAD protocol:
set aside unread, counted in the summary. The release has no bona fide video of client 9: 1030
PAD videos, 390 bona fide and 640 attacks. A clip may also be a folder of its frames named as
the video. Recognised when every clip outside ``enroll/`` has this naming.

Face boxes: the release's ``faceloc/rect/<same path>.face`` (lines ``frame x y width height``, as
bob.db.replaymobile's ``File.bbx`` reads them) crop its clips where they agree with the face
detector (``FaceBoxes.verify``): Bob's reader transposes every frame and flips the mobile ones
before its boxes apply (and bob.pad.face flipped the other way once its decoder changed), so the
boxes' orientation depends on the decoder; a clip whose boxes miss the face the detector finds is
cropped with the detector, and counted (:func:`core.features.faces.FaceFinder.boxes`).

Protocols, as bob.db.replaymobile defines them (every ``authenticate`` bona fide video of each
group, the protocol's attacks): ``replay-mobile`` (grandtest, every attack; 312 train, 416 dev,
302 test videos), ``replay-mobile-print`` and ``replay-mobile-mattescreen`` (bona fide and that
species only, in train, dev and test; 216, 288, 206 videos each).
"""

from __future__ import annotations

import re
from pathlib import Path

from core.data.clips import Clip, FaceBoxes, Split
from core.data.layouts.registry import Found, Layout, Protocol, register_layout
from core.data.layouts.replay import OneDevice
from core.data.subjects import clip_id

SPLITS: dict[str, Split] = {"train": "train", "devel": "dev", "test": "test"}
# bob.db.replaymobile db.sql3, table client: group -> client numbers
CLIENTS: dict[str, tuple[int, ...]] = {
    "train": (1, 3, 8, 11, 12, 16, 18, 20, 26, 34, 37, 38),
    "devel": (5, 6, 13, 14, 15, 23, 24, 25, 28, 29, 31, 32, 35, 36, 39, 40),
    "test": (2, 4, 7, 9, 10, 17, 19, 21, 22, 27, 30, 33),
}
GROUP = {client: group for group, clients in CLIENTS.items() for client in clients}
REAL = re.compile(
    r"^client(\d{3})_session\d{2}_authenticate_(mobile|tablet)_"
    r"(controlled|adverse|direct|lateral|diffuse)$"
)
ATTACK = re.compile(
    r"^attack_client(\d{3})_session\d{2}_(print|mattescreen)_(fixed|hand)_(mobile|tablet)_"
    r"(photo|video)_(lighton|lightoff)$"
)
SPECIES = ("print", "mattescreen")
ENROLL = "enroll"
FACELOC = Path("faceloc", "rect")  # the release's face boxes, one .face per video


def read_replay_mobile(
    root: Path, candidates: list[Path], pattern: re.Pattern[str] | None
) -> Found:
    found: list[tuple[Clip, bool]] = []
    skipped: list[tuple[Path, str]] = []
    for path in candidates:
        parts = path.relative_to(root).parts
        clip = _clip(root, path, parts)
        if clip is None:
            reason = (
                "not a Replay-Mobile clip (expected train|devel|test/real/client<NNN>_session<NN>"
                "_authenticate_... or .../attack/attack_client<NNN>_session<NN>_<print|"
                "mattescreen>_...)"
            )
            skipped.append((path, reason))
            continue
        group = GROUP.get(int(clip.subject))
        if group != parts[0]:
            where = f"a {group} client" if group else "not one of clients 1-40"
            reason = f"Replay-Mobile client {clip.subject} is {where} (bob.db.replaymobile)"
            skipped.append((path, f"{reason}, found under {parts[0]}/"))
            continue
        found.append((clip, False))
    return found, skipped


def _clip(root: Path, path: Path, parts: tuple[str, ...]) -> Clip | None:
    """The clip at ``path`` if its place and name are Replay-Mobile's, else None."""
    if len(parts) != 3 or parts[0] not in SPLITS:
        return None
    if parts[1] == "real" and (real := REAL.match(path.stem)):
        client, device, light = real.groups()
        species, columns = "bonafide", (("light", light), ("device", device))
    elif parts[1] == "attack" and (attack := ATTACK.match(path.stem)):
        client, species, support, device, sample_type, light = attack.groups()
        columns = (
            ("light", light),
            ("device", device),
            ("support", support),
            ("sample_type", sample_type),
        )
    else:
        return None
    cid = clip_id(root, path)
    return Clip(
        path,
        cid,
        str(int(client)),
        "bonafide" if species == "bonafide" else "attack",
        species,
        SPLITS[parts[0]],
        attributes=columns,
        face_boxes=FaceBoxes.at(root / FACELOC / f"{cid}.face", "xywh", verify=True),
    )


def _recognise(root: Path, candidates: list[Path]) -> bool:
    clips = [p for p in candidates if p.relative_to(root).parts[0] != ENROLL]
    return bool(clips) and all(_clip(root, p, p.relative_to(root).parts) for p in clips)


register_layout(
    Layout(
        "replay-mobile",
        read_replay_mobile,
        recognise=_recognise,
        priority=14,
        fixed_splits=True,
        splits="its train, devel (dev) and test folders",
        own_subjects=True,
        companion_suffixes=(".face",),
        boxes="{root}/faceloc/rect/<the clip's path>.face",
        aside=((ENROLL, "enrolment video", "face recognition, not PAD"),),
        summary="Replay-Mobile: train|devel|test/real|attack/*.mov (+ faceloc/rect)",
        protocols=(
            Protocol("replay-mobile", summary="Replay-Mobile grandtest: every attack"),
            *(
                Protocol(
                    f"replay-mobile-{species}",
                    OneDevice(species),
                    summary=f"Replay-Mobile: bona fide and {species} attacks only",
                )
                for species in SPECIES
            ),
        ),
    )
)
