"""Dataset layouts, adapters, subjects, splits, skips and fingerprints on small real trees."""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.constants import SPLITS
from core.data.clips import DataError
from core.data.dataset import Dataset, load_dataset
from core.data.frames import read_frames
from core.data.subjects import subject_of

VIDEO_BYTES: dict[str, bytes] = {}


def video(path: Path, frames: int = 8) -> Path:
    """A tiny real video (16x16, MJPG in whatever container the suffix names)."""
    key = f"{path.suffix}-{frames}"
    if key not in VIDEO_BYTES:  # encode each kind once, then copy the bytes
        tmp = path.parent / f".tmp{path.suffix}"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), 10, (16, 16))
        for i in range(frames):
            writer.write(np.full((16, 16, 3), 20 * i, np.uint8))
        writer.release()
        VIDEO_BYTES[key] = tmp.read_bytes()
        tmp.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(VIDEO_BYTES[key])
    return path


def frame_folder(folder: Path, frames: int = 8) -> Path:
    """A folder of PNG frames."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((16, 16, 3), 20 * i, np.uint8))
    return folder


def generic_tree(root: Path, subjects: int = 10) -> Path:
    """No split folders; nested attack types; videos and frame folders; subjects in the names."""
    for s in range(1, subjects + 1):
        video(root / "real" / f"subject{s:02d}_a.mov")
        frame_folder(root / "live" / f"subject{s:02d}_b")
        video(root / "attack" / "hand" / f"subject{s:02d}_c.mp4")
        video(root / "attack" / "fixed" / "print" / f"subject{s:02d}_d.avi")
        video(root / "spoof" / f"subject{s:02d}_e.mkv")
    return root


def by_id(dataset: Dataset) -> dict:
    """clip_id -> clip."""
    return {c.clip_id: c for c in dataset.clips}


def assert_subject_disjoint(dataset: Dataset) -> None:
    """No subject in two splits, every clip has a split."""
    splits = defaultdict(set)
    for clip in dataset.clips:
        assert clip.split in SPLITS
        splits[clip.subject].add(clip.split)
    assert all(len(s) == 1 for s in splits.values()), splits


def test_generic_layout_labels_attack_types_and_subjects(tmp_path: Path) -> None:
    data = load_dataset(generic_tree(tmp_path / "data"))
    assert data.protocol == "generic" and not data.synthetic and data.skipped == []
    assert len(data.clips) == 50
    clips = by_id(data)
    assert clips["real/subject01_a"].label == "bonafide"
    assert clips["real/subject01_a"].attack_type == "bonafide"
    assert clips["live/subject01_b"].path.is_dir()  # a folder of frames is one clip
    assert clips["live/subject01_b"].attack_type == "bonafide"
    assert clips["attack/hand/subject01_c"].attack_type == "hand"
    assert clips["attack/fixed/print/subject01_d"].attack_type == "fixed/print"
    assert clips["spoof/subject01_e"].attack_type == "attack"
    assert all(c.label == "attack" for c in data.clips if c.attack_type != "bonafide")
    assert clips["real/subject07_a"].subject == "7"
    assert len(data.subjects) == 10
    assert [c.clip_id for c in data.clips] == sorted(c.clip_id for c in data.clips)


def test_seeded_split_is_subject_disjoint_stratified_and_deterministic(tmp_path: Path) -> None:
    root = generic_tree(tmp_path / "data", subjects=10)
    first = load_dataset(root, seed=3)
    assert_subject_disjoint(first)
    subjects = {s: {c.subject for c in first.split(s)} for s in SPLITS}
    assert [len(subjects[s]) for s in SPLITS] == [6, 2, 2]  # 0.6 / 0.2 / 0.2 of 10
    for split in SPLITS:
        labels = {c.label for c in first.split(split)}
        assert labels == {"bonafide", "attack"}
    again = load_dataset(root, seed=3)
    assert [(c.clip_id, c.split) for c in again.clips] == [
        (c.clip_id, c.split) for c in first.clips
    ]
    assert again.fingerprint == first.fingerprint
    others = {tuple(c.split for c in load_dataset(root, seed=s).clips) for s in range(6)}
    assert len(others) > 1  # the seed matters
    halves = load_dataset(root, seed=3, fractions=(0.4, 0.3, 0.3))
    assert [len({c.subject for c in halves.split(s)}) for s in SPLITS] == [4, 3, 3]


def test_given_split_folders_are_respected(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The generic layout on Replay-Attack's tree (train/devel/test, clientNNN subjects, hand/fixed
    folders, enroll skipped); ``auto`` reads it with its own layout (tests/test_protocols.py)."""
    root = tmp_path / "replayattack"
    clients = {"train": (1, 2, 3), "devel": (4, 5), "test": (6, 7)}
    for folder, ids in clients.items():
        for c in ids:
            name = f"client{c:03d}_session01_webcam_authenticate_adverse_1.mov"
            video(root / folder / "real" / name)
            for kind in ("hand", "fixed"):
                attack = f"attack_highdef_client{c:03d}_session01_highdef_photo_adverse.mov"
                video(root / folder / "attack" / kind / attack)
    video(root / "enroll" / "train" / "client001_session01_enroll_1.mov")
    with caplog.at_level(logging.WARNING):
        data = load_dataset(root, protocol="generic", seed=99)
    assert data.protocol == "generic" and load_dataset(root).protocol == "replay-attack"
    assert {c.split for c in data.clips if c.subject in {"4", "5"}} == {"dev"}
    for split, folder in (("train", "train"), ("dev", "devel"), ("test", "test")):
        assert {c.subject for c in data.split(split)} == {str(c) for c in clients[folder]}
    assert {c.attack_type for c in data.clips} == {"bonafide", "hand", "fixed"}
    assert [p.name for p, _ in data.skipped] == ["client001_session01_enroll_1.mov"]
    assert "client001_session01_enroll_1.mov" in caplog.text and "no label folder" in caplog.text
    assert_subject_disjoint(data)
    # seeds do not move clips between given splits
    generic = load_dataset(root, protocol="generic", seed=1)
    assert [c.split for c in generic.clips] == [c.split for c in data.clips]


def test_missing_dev_split_is_carved_from_train_by_subject(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for s in range(1, 9):
        video(root / "train" / "real" / f"id{s}_r.avi")
        video(root / "train" / "attack" / f"id{s}_a.avi")
    for s in range(20, 23):
        video(root / "test" / "real" / f"id{s}_r.avi")
        video(root / "test" / "attack" / f"id{s}_a.avi")
    data = load_dataset(root)
    assert_subject_disjoint(data)
    assert {c.subject for c in data.split("test")} == {"20", "21", "22"}
    dev = {c.subject for c in data.split("dev")}
    assert len(dev) == 2 and dev <= {str(s) for s in range(1, 9)}  # 8 * 0.2 / 0.8 subjects


def test_subject_in_two_given_splits_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for split in SPLITS:
        video(root / split / "real" / f"user1_{split}.avi")
        video(root / split / "attack" / f"user{SPLITS.index(split) + 2}.avi")
    with pytest.raises(DataError, match="subject '1' is in splits dev, test, train"):
        load_dataset(root)


def test_split_without_both_classes_is_an_error(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "data"
    for split, s in (("train", 1), ("dev", 2), ("test", 3)):
        video(root / split / "real" / f"client{s:03d}.avi")
        if split != "dev":
            video(root / split / "attack" / f"client{s:03d}.avi")
    with pytest.raises(DataError) as given:  # the data's own split: no subject advice
        load_dataset(root)
    assert str(given.value) == (  # the folder named: several databases may be read at once
        f"{root}: split 'dev' has 1 bona fide and 0 attack clips, in the data's own dev split; "
        "every split needs both classes: add attack clips there"
    )
    few = tmp_path / "few"  # two subjects cannot fill three splits
    for s in (1, 2):
        video(few / "real" / f"subject{s}.avi")
        video(few / "attack" / f"subject{s}.avi")
    said = []
    for seed in range(20):  # 'another --split-seed' was the advice: no seed draws other classes
        with pytest.raises(DataError) as drawn:
            load_dataset(few, seed=seed)
        said.append(str(drawn.value))
    assert set(said) == {
        f"{few}: split 'dev' has 0 bona fide and 0 attack clips: train, dev, test are drawn by "
        "subject (no person in two), and bona fide clips come from 2 subjects, attack clips from "
        "2: too few to give each of them both classes; add clips of other subjects, or give the "
        "data its own train, dev and test folders"
    }
    shutil.rmtree(few / "real")  # only attacks: no split or subject would help (probe)
    for s in (3, 4, 5, 6):
        video(few / "attack" / f"subject{s}.avi")
    with pytest.raises(DataError) as lone:
        load_dataset(few)
    assert str(lone.value) == (
        f"{few}: the data has no bona fide clip; every split needs both classes (every clip "
        f"attack: is the database's folder {tmp_path}?)"
    )
    monkeypatch.chdir(few)  # --data .: its folder by name ("the database's folder .?": probe)
    with pytest.raises(DataError) as here:
        load_dataset(Path("."))
    assert str(here.value).endswith(f"attack: is the database's folder {tmp_path}?)")
    # its bona fide clips under a misnamed class folder: that folder said, not the parent (probe)
    for s in (3, 4, 5, 6):
        video(few / "reel" / f"subject{s}.avi")
    with pytest.raises(DataError) as misnamed:
        load_dataset(Path("."))
    assert str(misnamed.value).endswith(
        "(every clip attack; 4 skipped under reel/ with no label folder above them: a class "
        "folder misnamed? real/live/bonafide or attack/spoof name one)"
    )


def test_clips_with_and_without_split_folders_is_an_error(tmp_path: Path) -> None:
    root = generic_tree(tmp_path / "data", subjects=3)
    video(root / "train" / "real" / "subject09.avi")
    with pytest.raises(DataError, match="under a split folder or none$"):
        load_dataset(root)
    split = tmp_path / "split"  # a validation folder: the name the error wants said (probe)
    for folder, subject in (("train", 1), ("val", 2), ("test", 3)):
        video(split / folder / "real" / f"subject{subject:02d}.avi")
        video(split / folder / "attack" / f"subject{subject:02d}.avi")
    with pytest.raises(DataError, match=r"under a split folder or none \(rename val/ to dev/\)$"):
        load_dataset(split)


def test_user_subject_pattern_and_unreadable_subjects(tmp_path: Path) -> None:
    """A clip whose subject cannot be read is an error naming --subject-pattern, never one
    subject per clip (one person could then sit in two splits)."""
    root = tmp_path / "data"
    for p in range(1, 6):
        for take in (1, 2):
            video(root / "real" / f"p{p:02d}-take{take}.avi")
            video(root / "attack" / "screen" / f"p{p:02d}-take{take}.avi")
    with pytest.raises(DataError, match="20 of 20 clips have no subject") as info:
        load_dataset(root)
    assert "--subject-pattern" in str(info.value) and "\n" not in str(info.value)
    grouped = load_dataset(root, subject_pattern=r"p(\d+)-")
    assert grouped.subjects == ["1", "2", "3", "4", "5"]
    with pytest.raises(DataError) as info:  # no group: its whole match, alike in every clip
        load_dataset(root, subject_pattern="take")
    assert str(info.value) == (
        "--subject-pattern 'take' reads one subject ('take') from all 20 clips it matches, and "
        "splits need subjects apart: put a group around what tells people apart, e.g. "
        r"'client(\d+)'"
    )
    assert_subject_disjoint(grouped)
    folders = tmp_path / "folders"  # the subject may be a folder: the pattern sees the path
    for p in range(1, 6):
        video(folders / "real" / f"person_{p}" / "a.avi")
        video(folders / "attack" / f"person_{p}" / "b.avi")
    by_folder = load_dataset(folders)
    assert by_folder.subjects == ["1", "2", "3", "4", "5"]
    # the subject's folder below attack/ is no attack type (it was: one species per person)
    assert {c.attack_type for c in by_folder.clips if c.label == "attack"} == {"attack"}
    with pytest.raises(DataError) as info:  # as typed: its backslashes were doubled (probe)
        load_dataset(root, subject_pattern=r"p(\d")
    assert str(info.value).startswith(r"--subject-pattern 'p(\d' is not a regex: ")
    with pytest.raises(DataError) as info:  # the user's pattern is not told to give one
        load_dataset(root, subject_pattern=r"person(\d+)")
    assert str(info.value).startswith(
        "--subject-pattern 'person(\\d+)' matches none of the 20 clips (e.g. attack/screen/"
    )
    assert str(info.value).endswith(
        "searched in each clip's name, then its folders): fix it, or drop it for the default rule "
        "(clientNNN, subjectNN, userNN ... in the names)"
    )


def test_a_subject_pattern_that_matches_no_clip_is_refused_not_replaced(tmp_path, caplog):
    """It warned and read every subject by the default rule (probe); one that reads some clips
    leaves the others to the default rule, warned with the pattern as typed (not doubled \\)."""
    root = tmp_path / "data"
    for client in (1, 2, 3, 10, 11, 12):
        video(root / "real" / f"client{client:03d}.avi")
        video(root / "attack" / f"client{client:03d}.avi")
    with pytest.raises(DataError, match=r"^--subject-pattern 'person\(\\d\+\)' matches none"):
        load_dataset(root, subject_pattern=r"person(\d+)")
    with caplog.at_level(logging.WARNING):
        data = load_dataset(root, subject_pattern=r"client00(\d)")
    assert data.subjects == ["1", "10", "11", "12", "2", "3"]
    said = [r.getMessage() for r in caplog.records if "subject-pattern" in r.getMessage()]
    assert said == [
        "--subject-pattern 'client00(\\d)' matched no subject in 6 of 12 clips (e.g. "
        "attack/client010): the default rule read theirs"
    ]


def test_a_subject_pattern_reads_the_name_before_the_folders(tmp_path: Path) -> None:
    r"""'(\d+)' read 2 from every clip under attack/print2/, so all print attacks went to one
    split; '^' never matched, the path starting with the label folder."""
    root = tmp_path / "data"
    for s in range(1, 9):
        video(root / "real" / f"{s:03d}_live.avi")
        video(root / "attack" / "print2" / f"{s:03d}_p.avi")
        video(root / "attack" / "replay" / f"{s:03d}_r.avi")
    data = load_dataset(root, subject_pattern=r"(\d+)")
    assert {c.subject for c in data.clips if c.attack_type == "print2"} == set(data.subjects)
    assert data.subjects == [str(s) for s in range(1, 9)]
    for split in ("train", "dev", "test"):  # each split has both attack types
        assert {c.attack_type for c in data.split(split) if c.label == "attack"} == {
            "print2",
            "replay",
        }
    anchored = load_dataset(root, subject_pattern=r"^(\d+)_")
    assert anchored.subjects == data.subjects
    spanning = re.compile(r"(\w+)/\d+_")  # a pattern across folders: the whole path, last
    assert subject_of("attack/print2/001_p", spanning) == ("print2", True)
    # the first group that took part; an empty match reads none (it made each clip a subject)
    either = re.compile(r"user(\d+)|person(\d+)")  # a traceback: group 1 was None
    assert subject_of("real/person07_a", either) == ("7", True)
    assert subject_of("real/person07_a", re.compile(r"(\d*)")) == ("7", True)  # not ''
    assert subject_of("real/abc", re.compile(r"(zzz)?")) == (None, False)
    with pytest.raises(
        DataError, match=r"--subject-pattern '\(x\?\)' matches none of the 24 clips"
    ):
        load_dataset(root, subject_pattern=r"(x?)")


def test_unsupported_and_empty_entries_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = generic_tree(tmp_path / "data", subjects=5)
    (root / "real" / "notes.txt").write_text("hello")
    (root / "attack" / "hand" / "subject01_c.wmv").write_bytes(b"\0" * 10)
    (root / "attack" / "hand" / "empty_clip").mkdir()
    (root / ".DS_Store").write_bytes(b"")  # hidden: ignored silently
    gifs = root / "attack" / "hand" / "subject02_g"  # a frame folder of another format
    gifs.mkdir()
    for i in range(300):
        (gifs / f"{i}.gif").write_bytes(b"GIF89a")
    with caplog.at_level(logging.WARNING):
        data = load_dataset(root)
    skipped = {p.relative_to(root).as_posix(): reason for p, reason in data.skipped}
    assert set(skipped) == {
        "real/notes.txt",
        "attack/hand/subject01_c.wmv",
        "attack/hand/empty_clip",
        "attack/hand/subject02_g/*.gif",  # one skip, one warning: they were 300 (probe)
    }
    assert skipped["attack/hand/subject02_g/*.gif"].startswith("300 unsupported files (expected")
    assert (
        "unsupported file" in skipped["real/notes.txt"]
        and "empty folder" in skipped["attack/hand/empty_clip"]
    )
    for name in ("notes.txt", "subject01_c.wmv", "empty_clip"):
        assert name in caplog.text
    assert len(data.clips) == 25 and "4 skipped" in data.summary()
    with pytest.raises(DataError, match="no usable clip"):
        load_dataset(root / "live" / "subject01_b")  # a lone frame folder
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no usable clip"):
        load_dataset(empty)


def test_summary_counts_per_split_label_and_attack_type(tmp_path: Path) -> None:
    data = load_dataset(generic_tree(tmp_path / "data", subjects=5))
    text = data.summary()
    assert "25 clips, 5 subjects, 0 skipped" in text
    for split in SPLITS:
        n = len({c.subject for c in data.split(split)})
        assert f"  {split}: {5 * n} clips ({2 * n} bona fide, {3 * n} attack)" in text
    train_hand = sum(c.split == "train" and c.attack_type == "hand" for c in data.clips)
    assert any(
        line.split() == ["train", "attack", "hand", str(train_hand)] for line in text.splitlines()
    )


def test_fingerprint_follows_the_files(tmp_path: Path) -> None:
    root = generic_tree(tmp_path / "data", subjects=5)
    base = load_dataset(root).fingerprint
    assert load_dataset(root).fingerprint == base
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)  # same names, sizes and mtimes: the same data
    assert load_dataset(copy).fingerprint == base

    clip = root / "real" / "subject01_a.mov"
    video(root / "real" / "subject06_a.mov")
    added = load_dataset(root).fingerprint
    assert added != base
    (root / "real" / "subject06_a.mov").unlink()
    assert load_dataset(root).fingerprint == base
    stat = clip.stat()
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert load_dataset(root).fingerprint != base
    frame = root / "live" / "subject02_b" / "000.png"
    cv2.imwrite(str(frame), np.zeros((16, 16, 3), np.uint8))  # a frame changed
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert load_dataset(root).fingerprint != base
    assert load_dataset(copy, seed=5).fingerprint != base  # other splits, other data set
    # what Finder or a user leaves in a frame folder is not a frame: the same data (a new study
    # and a whole extraction, from browsing the folder: probe)
    before = load_dataset(copy).fingerprint
    (copy / "live" / "subject02_b" / ".DS_Store").write_bytes(b"x")
    (copy / "live" / "subject02_b" / "._000.png").write_bytes(b"x")  # macOS's AppleDouble
    (copy / "live" / "subject02_b" / "notes.txt").write_text("x")
    assert load_dataset(copy).fingerprint == before


def test_subset_keeps_order_and_refingerprints(tmp_path: Path) -> None:
    data = load_dataset(generic_tree(tmp_path / "data", subjects=5))
    kept = [c for c in reversed(data.clips) if c.subject != "1"]
    sub = data.subset(kept)
    assert [c.clip_id for c in sub.clips] == sorted(c.clip_id for c in kept)
    assert sub.fingerprint != data.fingerprint and sub.root == data.root
    assert data.subset(data.clips).fingerprint == data.fingerprint
    with pytest.raises(DataError, match="not in the dataset"):
        sub.subset(data.clips)


def test_every_found_clip_reads(tmp_path: Path) -> None:
    data = load_dataset(generic_tree(tmp_path / "data", subjects=3))
    for clip in data.clips:
        assert read_frames(clip.path, 7).shape == (7, 16, 16, 3)


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    root = generic_tree(tmp_path / "data", subjects=3)
    cases = [
        (dict(root=tmp_path / "missing"), "missing: no such folder; a database is given"),
        (dict(root=root / "real" / "subject01_a.mov"), "subject01_a.mov: a file, not a folder"),
        (dict(root=root, protocol="replay"), "protocol must be one of"),
        (dict(root=root, fractions=(0.5, 0.5)), "fractions must be three numbers"),
        (dict(root=root, fractions=(0.5, 0.3, 0.3)), "fractions must be three numbers"),
        (dict(root=root, fractions=(0, 0.5, 0.5)), "fractions must be three numbers"),
    ]
    for kwargs, message in cases:
        with pytest.raises(DataError, match=message) as info:
            load_dataset(**kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(DataError) as info:  # the layout asked for says what it expects
        load_dataset(tmp_path / "data" / "real", protocol="oulu-p1")
    assert str(info.value).endswith(
        "expects them: OULU-NPU: Phone_Session_User_File.avi (+ face boxes .txt)"
    )
    with pytest.raises(DataError, match="split must be one of"):
        load_dataset(root).split("val")  # type: ignore[arg-type]


def test_the_summary_says_which_splits_were_drawn_by_subject(tmp_path: Path) -> None:
    """A tree with train/ and test/ only: its dev split came out of train's subjects, and the
    summary showed it as if the data gave it."""

    def split_lines(dataset: Dataset) -> dict[str, str]:
        lines = dataset.summary().splitlines()
        return {s: next(line for line in lines if line.startswith(f"  {s}: ")) for s in SPLITS}

    def tree(root: Path, splits: dict[str, range]) -> Path:
        for split, subjects in splits.items():
            for s in subjects:
                video(root / split / "real" / f"client{s:03d}_a.avi")
                video(root / split / "attack" / f"client{s:03d}_b.avi")
        return root

    lines = split_lines(
        load_dataset(tree(tmp_path / "a", {"train": range(6), "test": range(6, 8)}))
    )
    assert lines["dev"].endswith("; carved from train by subject (--split-seed)")
    assert "by subject" not in lines["train"] + lines["test"]
    given = {"train": range(4), "dev": range(4, 6), "test": range(6, 8)}
    lines = split_lines(load_dataset(tree(tmp_path / "b", given)))
    assert not [line for line in lines.values() if "by subject" in line]
    lines = split_lines(load_dataset(generic_tree(tmp_path / "flat", subjects=6)))
    assert all(line.endswith("; split by subject (--split-seed)") for line in lines.values())


def test_what_cannot_be_read_is_a_counted_skip_naming_why(tmp_path: Path) -> None:
    """A folder, a video or a frame image the system will not read (a chmod 000, run without the
    permission a root test run has: ``setpriv`` drops it): the folder was left out without a
    word (its split then carved from train), an image stopped the whole extraction, a video
    was called 'unreadable or corrupt'."""
    import subprocess
    import sys

    setpriv = shutil.which("setpriv")
    assert setpriv, "needs util-linux's setpriv (Debian's util-linux package)"
    root = tmp_path / "data"
    for split, s in (("train", 1), ("train", 2), ("dev", 3), ("test", 4)):
        video(root / split / "real" / f"client{s:03d}.avi")
        video(root / split / "attack" / f"client{s:03d}.avi")
    locked = root / "test" / "attack" / "print"
    video(locked / "client004_p.avi")
    closed = video(root / "train" / "attack" / "client002_b.avi")
    frames = root / "dev" / "attack" / "client003_f"
    frames.mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), np.zeros((8, 8, 3), np.uint8))
    image = frames / "1.png"
    for path in (locked, closed, image):
        path.chmod(0)
    script = (
        "from core.data.dataset import load_dataset; from core.data.frames import read_clip\n"
        "from core.data.clips import ClipError\n"
        f"data = load_dataset({str(root)!r})\n"
        "for path, why in data.skipped: print(path, why, sep=' | ')\n"
        f"for clip in ({str(closed)!r}, {str(frames)!r}):\n"
        "    try: read_clip(clip, 3)\n"
        "    except ClipError as err: print(err)\n"
    )
    drop = "-dac_override,-dac_read_search"
    done = subprocess.run(
        [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    for path in (locked, closed, image):
        path.chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{locked} | cannot read this folder (Permission denied)",
        f"{closed}: cannot read this video (Permission denied)",
        f"{image}: cannot read this image (Permission denied)",
    ]


def test_folders_reached_through_links_are_read_and_links_to_nothing_skipped(tmp_path):
    """A species' or a class's folder linked from another disk was left out without a word (or
    the data refused as all attacks); a link to a missing file stopped the whole run (probe)."""
    elsewhere = generic_tree(tmp_path / "disk2", subjects=5)
    root = tmp_path / "data"
    root.mkdir()
    (root / "real").symlink_to(elsewhere / "real")
    (root / "attack").mkdir()
    (root / "attack" / "hand").symlink_to(elsewhere / "attack" / "hand")
    (root / "attack" / "hand2").symlink_to(root / "attack")  # a loop: walked once
    (root / "real" / "subject09_a.mov").symlink_to(tmp_path / "gone.mov")
    (root / "attack" / "paper").symlink_to(elsewhere / "attack" / "hand")  # a second way there
    data = load_dataset(root)
    assert Counter(c.attack_type for c in data.clips) == {"bonafide": 5, "hand": 5}
    assert sorted(data.skipped) == [  # said: a second link was dropped without a word (review)
        (
            root / "attack" / "hand2",
            f"the folder {root / 'attack'} again (through a link): read once",
        ),
        (
            root / "attack" / "paper",
            f"the folder {root / 'attack' / 'hand'} again (through a link): read once",
        ),
        (root / "real" / "subject09_a.mov", "a link to nothing"),
    ]


def test_a_name_that_is_not_utf8_is_a_counted_skip(tmp_path: Path) -> None:
    """A Latin-1 name (a zip made on Windows) stopped the loader with a traceback (probe)."""
    root = generic_tree(tmp_path / "data", subjects=5)
    name = os.fsdecode(b"subject01_caf\xe9.mov")
    video(root / "real" / name)
    frame = root / "live" / "subject02_b" / os.fsdecode(b"caf\xe9.png")
    shutil.copy(root / "live" / "subject02_b" / "000.png", frame)  # one frame among the others
    data = load_dataset(root)
    assert len(data.clips) == 25  # said as \xe9: a surrogate fails every UTF-8 log and record
    assert sorted(data.skipped) == [
        (root / "live" / "subject02_b" / "caf\\xe9.png", "its name is not UTF-8: rename it"),
        (root / "real" / "subject01_caf\\xe9.mov", "its name is not UTF-8: rename it"),
    ]
    folder = next(c for c in data.clips if c.clip_id == "live/subject02_b")
    assert len(read_frames(folder.path, 8)) == 8  # its other frames, read as ever
    assert load_dataset(root).fingerprint == data.fingerprint


def test_subject_folders_are_no_species_and_split_folders_go_above_classes(tmp_path):
    """``attack/print/subject01/x.mp4`` made one species per subject, silently, and a split
    folder below a class folder a species named ``train`` with the data split at random (probe)."""
    root = tmp_path / "data"
    for s in range(1, 7):
        video(root / "real" / f"subject{s:02d}" / "take1.mp4")
        for kind in ("print", "replay"):
            video(root / "attack" / kind / f"subject{s:02d}" / "take1.mp4")
    data = load_dataset(root)
    assert Counter(c.attack_type for c in data.clips) == {"bonafide": 6, "print": 6, "replay": 6}
    assert data.subjects == [str(s) for s in range(1, 7)]
    numbered = tmp_path / "numbered"  # species and session folders named by number (review)
    for s in range(1, 6):
        video(numbered / "real" / f"client{s:03d}.avi")
        for kind in (1, 2, 3):
            video(numbered / "attack" / str(kind) / f"client{s:03d}_{kind}.avi")
            video(numbered / "spoof" / "print" / str(kind) / f"client{s:03d}_{kind}.avi")
    kinds = Counter(c.attack_type for c in load_dataset(numbered).clips)
    species = ("1", "2", "3", "print/1", "print/2", "print/3")
    assert kinds == {"bonafide": 5, **dict.fromkeys(species, 5)}
    below = tmp_path / "below"
    for split, s in (("train", 1), ("dev", 2), ("test", 3)):
        video(below / "real" / split / f"client{s:03d}.mp4")
        video(below / "attack" / split / f"client{s:03d}.mp4")
    with pytest.raises(DataError) as refused:
        load_dataset(below)
    assert str(refused.value).startswith(f"{below / 'attack' / 'dev' / 'client002.mp4'}: split ")
    assert "split folders go above class folders (DATA/train/real/..." in str(refused.value)


def test_a_subject_pattern_that_reads_one_subject_is_refused(tmp_path: Path) -> None:
    """As a pattern without a group that matches every clip: one that matches some, the others
    read by the default rule (probe: the refusal then blamed a split)."""
    root = generic_tree(tmp_path / "data", subjects=5)
    video(root / "real" / "client06_a.mov")
    with pytest.raises(DataError) as refused:
        load_dataset(root, subject_pattern="subject")
    assert str(refused.value).startswith(
        "--subject-pattern 'subject' reads one subject ('subject') from all 25 clips it matches"
    )


@pytest.mark.parametrize("suffix", [".bmp", ".tif", ".webp", ".jpeg"])
def test_frame_folders_of_any_image_opencv_reads(tmp_path: Path, suffix: str) -> None:
    """.bmp, .tif and .webp frames were each a skipped 'unsupported file' (probe)."""
    root = generic_tree(tmp_path / "data", subjects=5)
    folder = root / "attack" / "paper" / "subject03_f"
    folder.mkdir(parents=True)
    for i in range(8):
        cv2.imwrite(str(folder / f"{i}{suffix}"), np.full((16, 16, 3), 30 * i, np.uint8))
    data = load_dataset(root)
    assert not data.skipped
    clip = next(c for c in data.clips if c.attack_type == "paper")
    assert clip.path == folder and read_frames(folder, 8)[:, 0, 0, 0].tolist() == [
        30 * i for i in range(8)
    ]
