"""Official protocols on trees named as the real databases are: Replay-Attack, OULU-NPU, CASIA-FASD.

Listing and splitting decode nothing, so most clips are empty placeholder files; the Replay-Attack
tree holds real tiny videos (OpenCV). The tree builders are reusable: ``replay_tree``,
``oulu_tree``, ``casia_tree`` take ``write`` (``placeholder`` or ``tiny_video``).
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.constants import SPLITS
from core.data import layouts
from core.data.clips import Clip, DataError, FaceBoxes
from core.data.dataset import Dataset, load_dataset
from core.data.layouts import Layout, Protocol, folds, protocol_names, register_layout

REPO = Path(__file__).resolve().parents[1]
Writer = Callable[[Path], Path]
_VIDEO_BYTES: dict[str, bytes] = {}


def placeholder(path: Path) -> Path:
    """An empty file where a clip would be (enough for listing and splitting)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def tiny_video(path: Path) -> Path:
    """A real 3-frame 32x32 MJPG video in the container the suffix names."""
    if path.suffix not in _VIDEO_BYTES:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp{path.suffix}"
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
        for i in range(3):
            writer.write(np.full((32, 32, 3), 40 * i, np.uint8))
        writer.release()
        _VIDEO_BYTES[path.suffix] = tmp.read_bytes()
        tmp.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_VIDEO_BYTES[path.suffix])
    return path


# Replay-Attack: 4 real accesses and 20 attacks per client (print: highdef photo; mobile and
# highdef: photo and video; each on a fixed and a hand support, in both lights).
REPLAY_ATTACKS = (("print", "highdef", "photo"),) + tuple(
    (device, device, kind) for device in ("mobile", "highdef") for kind in ("photo", "video")
)
LIGHTS = ("adverse", "controlled")


def replay_tree(
    root: Path, clients: dict[str, tuple[int, ...]], write: Writer = placeholder
) -> Path:
    """``clients``: folder (train, devel, test) -> client numbers."""
    for folder, numbers in clients.items():
        for n in numbers:
            client = f"client{n:03d}_session01"
            for light in LIGHTS:
                for take in (1, 2):
                    write(
                        root / folder / "real" / f"{client}_webcam_authenticate_{light}_{take}.mov"
                    )
                for support in ("fixed", "hand"):
                    for device, sample_device, kind in REPLAY_ATTACKS:
                        name = f"attack_{device}_{client}_{sample_device}_{kind}_{light}.mov"
                        write(root / folder / "attack" / support / name)
    return root


def oulu_tree(root: Path, users: tuple[int, ...], write: Writer = placeholder) -> Path:
    """Every phone, session and file of ``users``, in Train_files/Dev_files/Test_files."""
    for user in users:
        folder = "Train_files" if user <= 20 else "Dev_files" if user <= 35 else "Test_files"
        for phone in range(1, 7):
            for session in range(1, 4):
                for file in range(1, 6):
                    write(root / folder / f"{phone}_{session}_{user:02d}_{file}.avi")
    return root


CASIA_NAMES = ("1", "2", "HR_1", "3", "4", "HR_2", "5", "6", "HR_3", "7", "8", "HR_4")


def casia_tree(
    root: Path, train: tuple[int, ...], test: tuple[int, ...], write: Writer = placeholder
) -> Path:
    """The twelve videos of each subject in train_release and test_release."""
    for release, subjects in (("train_release", train), ("test_release", test)):
        for s in subjects:
            for name in CASIA_NAMES:
                write(root / release / str(s) / f"{name}.avi")
    return root


def counts(data: Dataset) -> dict[str, int]:
    """Clips per split."""
    return {split: len(data.split(split)) for split in SPLITS}


def values(clips: list[Clip], column: str) -> set[str]:
    """The values a column takes on ``clips`` ("species" is the attack type)."""
    if column == "species":
        return {c.attack_type for c in clips}
    return {c.columns.get(column, "") for c in clips}


def assert_subject_disjoint(data: Dataset) -> None:
    splits = defaultdict(set)
    for clip in data.clips:
        splits[clip.subject].add(clip.split)
    assert all(len(s) == 1 for s in splits.values()), splits


def test_the_protocols_the_issue_names_are_registered() -> None:
    names = set(protocol_names())
    assert {
        "generic",
        "casia",
        "replay-attack",
        "oulu-p1",
        "oulu-p2",
        "oulu-p3",
        "oulu-p4",
    } <= names
    assert {f"replay-attack-{d}" for d in ("print", "mobile", "highdef")} <= names
    assert {f"casia-{s}" for s in ("low", "normal", "high", "warped", "cut", "video")} <= names
    assert folds("oulu-p3") == folds("oulu-p4") == (1, 2, 3, 4, 5, 6)
    assert folds("oulu-p1") == folds("replay-attack") == folds("generic") == folds("auto") == ()
    with pytest.raises(DataError, match="protocol must be one of auto, casia"):
        folds("oulu")


def test_a_layout_declares_its_protocols_in_one_file(monkeypatch) -> None:
    monkeypatch.setattr(layouts.registry, "_LAYOUTS", dict(layouts.registry._LAYOUTS))
    plain = register_layout(Layout("plain", lambda root, candidates, pattern: ([], [])))
    assert [p.name for p in plain.protocols] == ["plain"] and "plain" in protocol_names()
    with pytest.raises(ValueError, match="protocol 'oulu-p1' is registered twice"):
        register_layout(Layout("other", plain.read, protocols=(Protocol("oulu-p1"),)))
    with pytest.raises(ValueError, match="folds must be distinct numbers >= 1"):
        register_layout(Layout("folded", plain.read, protocols=(Protocol("f", folds=(0, 1)),)))
    with pytest.raises(ValueError, match="'fixed': fixed splits need `splits`, where each is"):
        register_layout(Layout("fixed", plain.read, fixed_splits=True))  # said for a partial copy


@pytest.fixture
def replay(tmp_path: Path) -> Path:
    """Train clients 1, 2; devel 3, 4; test 5, 6; face boxes for client 1; one enrolment video."""
    root = replay_tree(
        tmp_path / "replayattack",
        {"train": (1, 2), "devel": (3, 4), "test": (5, 6)},
        write=tiny_video,
    )
    for clip in (root / "train").rglob("*client001*.mov"):
        face = root / "face-locations" / clip.relative_to(root).with_suffix(".face")
        face.parent.mkdir(parents=True, exist_ok=True)
        face.write_text("0 10 10 12 12\n1 10 10 12 12\n")
    tiny_video(root / "enroll" / "train" / "client001_session01_webcam_enroll_adverse.mov")
    return root


def test_replay_attack_grandtest(replay: Path) -> None:
    data = load_dataset(replay)
    assert (data.protocol, data.layout, data.fold) == ("replay-attack", "replay-attack", None)
    assert counts(data) == {"train": 48, "dev": 48, "test": 48}  # 24 clips per client
    for split, clients in (("train", {"1", "2"}), ("dev", {"3", "4"}), ("test", {"5", "6"})):
        assert {c.subject for c in data.split(split)} == clients
        species = Counter(c.attack_type for c in data.split(split))
        assert species == {"bonafide": 8, "print": 8, "mobile": 16, "highdef": 16}
    assert_subject_disjoint(data)
    assert data.column_names == ["light", "support", "sample_type"]
    attacks = [c for c in data.clips if c.label == "attack"]
    assert values(attacks, "support") == {"fixed", "hand"}
    assert values(attacks, "sample_type") == {"photo", "video"}
    assert values(data.clips, "light") == set(LIGHTS)
    by_id = {c.clip_id: c for c in data.clips}
    hand = by_id["train/attack/hand/attack_mobile_client001_session01_mobile_video_adverse"]
    assert (hand.label, hand.attack_type, hand.columns["support"]) == ("attack", "mobile", "hand")
    real = by_id["train/real/client001_session01_webcam_authenticate_controlled_2"]
    assert (real.label, real.attack_type, real.columns) == (
        "bonafide",
        "bonafide",
        {"light": "controlled"},
    )
    assert real.face_boxes == FaceBoxes(replay / "face-locations" / f"{real.clip_id}.face", "xywh")
    assert sum(c.face_boxes is not None for c in data.clips) == 24
    # the enrolment video is set aside, counted once; the .face files are data, not strays
    assert data.skipped == []
    assert data.aside == "1 enrolment video (face recognition, not PAD) in enroll/"
    assert "\n  not read: 1 enrolment video (face recognition, not PAD) in enroll/" in (
        data.summary()
    )


def frame_folder(path: Path) -> Path:
    """A clip as a folder of its frames (one PNG), named as the video without its suffix."""
    folder = path.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "000.png"), np.zeros((8, 8, 3), np.uint8))
    return folder


def test_frame_folders_named_as_the_videos_are_recognised(tmp_path: Path) -> None:
    root = replay_tree(tmp_path / "ra", {"train": (1,), "devel": (2,), "test": (3,)}, frame_folder)
    casia = casia_tree(tmp_path / "casia", train=(1, 16), test=(1,), write=frame_folder)
    oulu = oulu_tree(tmp_path / "oulu", (1, 21, 36), write=frame_folder)
    for data in (load_dataset(root), load_dataset(casia), load_dataset(oulu)):
        assert data.layout != "generic" and data.skipped == []
        assert {c.path.is_dir() for c in data.source_clips} == {True}
    assert counts(load_dataset(root)) == {"train": 24, "dev": 24, "test": 24}


@pytest.mark.parametrize(("device", "per_client"), [("print", 4), ("mobile", 8), ("highdef", 8)])
def test_replay_attack_device_subsets(replay: Path, device: str, per_client: int) -> None:
    """Bob's bob.db.replay protocols: every real access, the attacks of one device."""
    data = load_dataset(replay, protocol=f"replay-attack-{device}")
    for split in SPLITS:
        clips = data.split(split)
        assert Counter(c.attack_type for c in clips) == {"bonafide": 8, device: 2 * per_client}
    assert data.source_clips == load_dataset(replay).source_clips
    with pytest.raises(DataError, match="protocol replay-attack-print has no folds, got --fold 1"):
        load_dataset(replay, protocol="replay-attack-print", fold=1)


# OULU-NPU Table 2 (Boulkenafet et al., FG 2017): videos per split with 20 / 15 / 20 users.
OULU_PAPER = {
    "oulu-p1": (1200, 900, 600),
    "oulu-p2": (1080, 810, 1080),
    "oulu-p3": (1500, 1125, 300),
    "oulu-p4": (600, 450, 60),
}
OULU_USERS = {"train": 20, "dev": 15, "test": 20}


@pytest.fixture(scope="module")
def oulu(tmp_path_factory) -> Path:
    """Users 1, 2 (train), 21, 22 (dev), 36, 37 (test): every phone, session and file."""
    root = oulu_tree(tmp_path_factory.mktemp("oulu") / "OULU-NPU", (1, 2, 21, 22, 36, 37))
    (root / "Train_files" / "1_1_01_1.txt").write_text("0, 10, 10, 50, 50\n")  # face boxes
    (root / "Train_files" / "readme.md").write_text("x")
    return root


def assert_paper_sizes(data: Dataset) -> None:
    """Clips per user in each split, times the database's users, are the paper's sizes."""
    per_user = [len(data.split(s)) / len({c.subject for c in data.split(s)}) for s in SPLITS]
    paper = OULU_PAPER[data.protocol]
    assert tuple(n * OULU_USERS[s] for n, s in zip(per_user, SPLITS, strict=True)) == paper


def test_oulu_reading_and_auto(oulu: Path) -> None:
    data = load_dataset(oulu)
    assert (data.protocol, data.layout) == ("oulu-p1", "oulu")  # auto runs Protocol 1
    assert len(data.source_clips) == 6 * 6 * 3 * 5
    assert data.column_names == ["phone", "session", "instrument"]
    assert [p.name for p, _ in data.skipped] == ["readme.md"]  # the .txt face boxes are data
    by_id = {c.clip_id: c for c in data.source_clips}
    first = by_id["Train_files/1_1_01_1"]
    assert (first.label, first.attack_type, first.subject) == ("bonafide", "bonafide", "1")
    assert first.columns == {"phone": "1", "session": "1"}
    assert first.face_boxes == FaceBoxes(oulu / "Train_files" / "1_1_01_1.txt", "eyes")
    kinds = [by_id[f"Test_files/6_3_37_{f}"] for f in range(2, 6)]
    assert [(c.attack_type, c.columns["instrument"]) for c in kinds] == [
        ("print", "printer1"),
        ("print", "printer2"),
        ("display", "display1"),
        ("display", "display2"),
    ]
    assert {c.split for c in kinds} == {"test"} and {c.label for c in kinds} == {"attack"}


def test_oulu_protocols_1_and_2(oulu: Path) -> None:
    p1 = load_dataset(oulu, protocol="oulu-p1")
    assert counts(p1) == {"train": 120, "dev": 120, "test": 60}
    assert_paper_sizes(p1)
    assert [values(p1.split(s), "session") for s in SPLITS] == [{"1", "2"}, {"1", "2"}, {"3"}]
    assert all(values(p1.split(s), "phone") == set("123456") for s in SPLITS)
    assert {c.subject for c in p1.split("test")} == {"36", "37"}
    assert_subject_disjoint(p1)

    p2 = load_dataset(oulu, protocol="oulu-p2")
    assert counts(p2) == {"train": 108, "dev": 108, "test": 108}
    assert_paper_sizes(p2)
    seen, unseen = {"", "printer1", "display1"}, {"", "printer2", "display2"}
    assert [values(p2.split(s), "instrument") for s in SPLITS] == [seen, seen, unseen]
    assert all(values(p2.split(s), "species") == {"bonafide", "print", "display"} for s in SPLITS)
    assert all(values(p2.split(s), "session") == {"1", "2", "3"} for s in SPLITS)


@pytest.mark.parametrize("fold", range(1, 7))
def test_oulu_protocols_3_and_4_leave_one_phone_out(oulu: Path, fold: int) -> None:
    others = set("123456") - {str(fold)}
    p3 = load_dataset(oulu, protocol="oulu-p3", fold=fold)
    assert (p3.protocol, p3.fold) == ("oulu-p3", fold)
    assert counts(p3) == {"train": 150, "dev": 150, "test": 30}
    assert_paper_sizes(p3)
    assert [values(p3.split(s), "phone") for s in SPLITS] == [others, others, {str(fold)}]
    assert all(values(p3.split(s), "session") == {"1", "2", "3"} for s in SPLITS)

    p4 = load_dataset(oulu, protocol="oulu-p4", fold=fold)
    assert counts(p4) == {"train": 60, "dev": 60, "test": 6}
    assert_paper_sizes(p4)
    assert [values(p4.split(s), "phone") for s in SPLITS] == [others, others, {str(fold)}]
    assert [values(p4.split(s), "session") for s in SPLITS] == [{"1", "2"}, {"1", "2"}, {"3"}]
    assert values(p4.split("test"), "instrument") == {"", "printer2", "display2"}
    assert values(p4.split("train"), "instrument") == {"", "printer1", "display1"}
    assert_subject_disjoint(p4)
    assert f"oulu-p4 fold {fold}" in p4.summary()


def test_every_protocol_and_fold_shares_one_source(oulu: Path) -> None:
    """The feature cache is keyed on the source clips: one extraction for every protocol."""
    loaded = [load_dataset(oulu, protocol="oulu-p1"), load_dataset(oulu, protocol="oulu-p2")]
    loaded += [load_dataset(oulu, protocol="oulu-p3", fold=k) for k in (1, 2)]
    assert len({d.content_fingerprint for d in loaded}) == 1
    assert len({d.fingerprint for d in loaded}) == len(loaded)
    assert all(d.source_clips == loaded[0].source_clips for d in loaded)


@pytest.mark.parametrize(
    ("protocol", "fold", "message"),
    [
        ("oulu-p3", None, "protocol oulu-p3 has folds 1-6: choose one with --fold K"),
        ("oulu-p4", 7, "protocol oulu-p4 has folds 1-6, got --fold 7"),
        ("oulu-p4", 0, "protocol oulu-p4 has folds 1-6, got --fold 0"),
        ("oulu-p1", 2, "protocol oulu-p1 has no folds, got --fold 2"),
        ("auto", 2, "protocol oulu-p1 has no folds, got --fold 2"),
    ],
)
def test_fold_errors_are_one_line(oulu: Path, protocol: str, fold, message: str) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(oulu, protocol=protocol, fold=fold)
    assert str(info.value) == message


def test_another_database_is_said_before_the_fold_is_asked(tmp_path: Path) -> None:
    """--protocol oulu-p3 on a CASIA folder asked for --fold, then, given one, said the folder
    holds casia's clips (probe): the folder first."""
    casia = casia_tree(tmp_path / "CASIA-FASD", train=(1, 16), test=(1,))
    with pytest.raises(DataError, match="they are casia's clips"):
        load_dataset(casia, protocol="oulu-p3")


def test_a_partial_copy_says_where_each_split_comes_from(tmp_path: Path) -> None:
    """CASIA-FASD without subjects 16-20 has no dev split: the message did not say where dev
    is; OULU-NPU's splits are its users, not Protocol 1's sessions (review)."""
    casia = casia_tree(tmp_path / "CASIA-FASD", train=(1, 2), test=(1,))
    oulu = oulu_tree(tmp_path / "OULU-NPU", (1, 2))
    for root, protocol, empty, said in (
        (
            casia,
            "casia",
            "dev",
            "(train_release subjects 1-15 train, 16-20 dev; test_release test; casia: CASIA-FASD "
            "grandtest: every quality and attack)",
        ),
        (casia, "casia-low", "dev", "test_release test; casia-low: casia, low-quality clips only"),
        (oulu, "oulu-p1", "dev or test", "(users 1-20 train (Train_files), 21-35 dev (Dev_files)"),
    ):
        with pytest.raises(DataError) as refused:
            load_dataset(root, protocol=protocol)
        assert f"protocol {protocol} has no {empty} clip among" in str(refused.value)
        assert said in str(refused.value)


@pytest.fixture
def casia(tmp_path: Path) -> Path:
    """train_release subjects 1, 2 (train) and 16 (dev, as Bob's grandtest); test_release 1, 2."""
    return casia_tree(tmp_path / "CASIA-FASD", train=(1, 2, 16), test=(1, 2))


def test_casia_release_with_bob_dev(casia: Path) -> None:
    data = load_dataset(casia)
    assert (data.protocol, data.layout) == ("casia", "casia")
    assert counts(data) == {"train": 24, "dev": 12, "test": 24}
    subjects = [sorted({c.subject for c in data.split(s)}) for s in SPLITS]
    assert subjects == [["1", "2"], ["16"], ["21", "22"]]  # test_release n is subject 20 + n
    assert data.column_names == ["quality"]
    # its file names say the subject: a pattern was ignored without a word (probe); the pattern
    # as typed (its backslashes had been doubled)
    with pytest.raises(DataError) as refused:
        load_dataset(casia, subject_pattern=r"(\d+)")
    assert str(refused.value) == (
        rf"--subject-pattern '(\d+)': {casia} is read as casia, whose file names say each "
        "clip's subject: drop --subject-pattern"
    )
    by_id = {c.clip_id: c for c in data.clips}
    expected = {  # bob.db.casia_fasd: 1, 3, 5, 7 normal; 2, 4, 6, 8 low; HR_* high
        "1": ("bonafide", "normal"),
        "2": ("bonafide", "low"),
        "HR_1": ("bonafide", "high"),
        "4": ("warped", "low"),
        "5": ("cut", "normal"),
        "HR_3": ("cut", "high"),
        "8": ("video", "low"),
    }
    for name, (species, quality) in expected.items():
        clip = by_id[f"train_release/1/{name}"]
        assert (clip.attack_type, clip.columns["quality"]) == (species, quality)
        assert clip.label == ("bonafide" if species == "bonafide" else "attack")
    assert_subject_disjoint(data)


@pytest.mark.parametrize(
    ("protocol", "test_species", "test_quality"),
    [
        ("casia-low", {"bonafide": 2, "warped": 2, "cut": 2, "video": 2}, {"low"}),
        ("casia-normal", {"bonafide": 2, "warped": 2, "cut": 2, "video": 2}, {"normal"}),
        ("casia-high", {"bonafide": 2, "warped": 2, "cut": 2, "video": 2}, {"high"}),
        ("casia-warped", {"bonafide": 6, "warped": 6}, {"low", "normal", "high"}),
        ("casia-cut", {"bonafide": 6, "cut": 6}, {"low", "normal", "high"}),
        ("casia-video", {"bonafide": 6, "video": 6}, {"low", "normal", "high"}),
    ],
)
def test_casia_subsets_restrict_every_split(
    casia: Path, protocol: str, test_species: dict, test_quality: set
) -> None:
    """A scenario's subset in train and dev as in test, as Idiap's CASIA-FASD layer for Bob
    filters train, devel and test by attack type (train and dev had stayed whole: probe)."""
    whole = load_dataset(casia)
    data = load_dataset(casia, protocol=protocol)
    assert Counter(c.attack_type for c in data.split("test")) == test_species
    assert values(data.split("test"), "quality") == test_quality
    for split in ("train", "dev"):  # the same selection of the whole split's clips
        kept = [c for c in whole.split(split) if c.columns["quality"] in test_quality]
        kept = [c for c in kept if c.attack_type in test_species]
        assert data.split(split) == kept and len(kept) < len(whole.split(split))


def test_a_tree_whose_subjects_cannot_be_read_is_refused(tmp_path: Path) -> None:
    """SiW-like: Train|Test/live|spoof/<id>/<id>-...mov looks generic, subjects are not readable."""
    root = tmp_path / "SiW"
    for split, ids in (("Train", (3, 4, 5, 6)), ("Test", (7, 8))):
        for n in ids:
            placeholder(root / split / "live" / f"{n:03d}" / f"{n:03d}-1-1-1-1.mov")
            placeholder(root / split / "spoof" / f"{n:03d}" / f"{n:03d}-1-3-2-1.mov")
    with pytest.raises(DataError) as info:
        load_dataset(root)
    message = str(info.value)
    assert "12 of 12 clips have no subject" in message and "--subject-pattern" in message
    data = load_dataset(root, subject_pattern=r"(\d{3})-")
    assert data.protocol == "generic" and data.subjects == [str(n) for n in range(3, 9)]
    # spoof/003/: the subject's folder, not a species of its own (each subject's was one)
    assert {c.attack_type for c in data.clips} == {"bonafide", "attack"}
    assert_subject_disjoint(data)


def list_clips(*args: str) -> subprocess.CompletedProcess:
    """``extract.py --list`` in a fresh interpreter that then checks no Keras was imported."""
    code = (
        "import sys; sys.path.insert(0, 'experiments'); import extract; "
        "code = extract.main(sys.argv[1:]); "
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules; sys.exit(code)"
    )
    return subprocess.run(
        [sys.executable, "-c", code, "--list", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_list_prints_the_protocols_clips_as_csv(oulu: Path, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    args = ["--data", str(oulu), "--protocol", "oulu-p3", "--fold", "2", "--cache-dir", cache]
    result = list_clips(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    header = result.stdout.splitlines()[0]
    assert header == "clip,split,label,species,subject,phone,session,instrument,face_boxes"
    boxed = {r["clip"]: r["face_boxes"] for r in rows if r["face_boxes"]}
    assert boxed == {"Train_files/1_1_01_1": "Train_files/1_1_01_1.txt"}  # the one it has
    assert Counter(r["split"] for r in rows) == {"train": 150, "dev": 150, "test": 30}
    assert {r["phone"] for r in rows if r["split"] == "test"} == {"2"}
    row = next(r for r in rows if r["clip"] == "Test_files/2_3_36_5")
    assert row == {
        "clip": "Test_files/2_3_36_5",
        "split": "test",
        "label": "attack",
        "species": "display",
        "subject": "36",
        "phone": "2",
        "session": "3",
        "instrument": "display2",
        "face_boxes": "",
    }
    assert "oulu-p3 fold 2" in result.stderr  # the summary, off the CSV
    assert not (tmp_path / "cache" / "features").exists()  # nothing extracted

    # without --fold, every fold's clips, a fold column first (it was refused: probe V)
    every = list_clips("--data", str(oulu), "--protocol", "oulu-p3", "--cache-dir", cache)
    assert every.returncode == 0, every.stderr[-2000:]
    listed = list(csv.DictReader(io.StringIO(every.stdout)))
    assert [r for r in listed if r.pop("fold") == "2"] == rows  # fold 2's, as --fold 2 lists
    assert "protocol oulu-p3: folds 1-6, each fold's clips (the fold column)" in every.stderr


def test_a_stray_file_is_warned_once_over_a_protocols_folds(tmp_path: Path, caplog) -> None:
    """A sweep of oulu-p3 reads the database for each of its six folds: a stray file was warned
    of six times (probe). Within one command (``read_once``) it is said once."""
    import logging

    from core.features.request import FeatureOptions, load_data, read_once

    root = oulu_tree(tmp_path / "OULU-NPU", (1, 21, 36))
    stray = root / "Train_files" / "1_1_01_1 (1).avi"
    stray.write_bytes(b"")
    caplog.set_level(logging.WARNING)

    def warned() -> int:
        return sum(str(stray) in record.getMessage() for record in caplog.records)

    with read_once():
        for fold in (1, 2, 3):
            read = load_data(FeatureOptions(data=root, protocol="oulu-p3", fold=fold))
            assert [path for path, _ in read.skipped] == [stray]  # each fold still counts it
    assert warned() == 1
    load_data(FeatureOptions(data=root, protocol="oulu-p3", fold=1))  # another command: again
    assert warned() == 2
