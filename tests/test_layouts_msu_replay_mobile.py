"""MSU-MFSD and Replay-Mobile on trees named as the real databases are, with their protocols' lists.

The lists below are restated from the databases' Bob packages, independently of the layouts'
own tables, so a typo in either shows: bob.db.msu_mfsd_mod ``bob/db/msu_mfsd_mod/folds/*.txt``
and bob.db.replaymobile ``bob/db/replaymobile/db.sql3`` (tables client, file, protocol).

Tree builders, reusable by other tests (e.g. cross-domain ones); ``write`` is
:func:`tests.test_protocols.placeholder` (empty files: enough to list and split) or
:func:`tests.test_protocols.tiny_video` (real 3-frame videos):

- ``msu_tree(root, subjects, write)``: the 8 videos of each subject number under ``root/real`` and
  ``root/attack``.
- ``replay_mobile_tree(root, clients, write)``: the videos of each client number (1-40) in its
  official group's folder (train, devel, test), with its enrolment videos under ``enroll/``.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections import Counter
from pathlib import Path

import pytest

from core.constants import SPLITS
from core.data.clips import VIDEO_SUFFIXES, DataError, FaceBoxes
from core.data.dataset import Dataset, load_dataset
from core.data.layouts import folds, get_protocol
from core.features import FeatureOptions
from experiments.config import NamedData
from experiments.trial.evaluation import check_database
from tests.test_protocols import (
    Writer,
    assert_subject_disjoint,
    casia_tree,
    counts,
    frame_folder,
    list_clips,
    oulu_tree,
    placeholder,
    replay_tree,
    tiny_video,
    values,
)

# --- MSU-MFSD: bob.db.msu_mfsd_mod folds/ ------------------------------------------------------

MSU_TRAIN = (2, 3, 5, 6, 7, 8, 9, 11, 12, 21, 22, 34, 53, 54, 55)  # train_sub_list.txt
MSU_TEST = (1, 13, 14, 23, 24, 26, 28, 29, 30, 32, 33, 35, 36, 37, 39, 42, 48, 49, 50, 51)
MSU_DEV = (22, 34, 53, 54, 55)  # our rule: the five highest-numbered train subjects
MSU_SUBJECTS = tuple(sorted(MSU_TRAIN + MSU_TEST))
MSU_FOLD_TEST = (6, 7, 12, 13, 14, 26, 28, 29, 30, 32, 33, 39, 49, 50, 53)
MSU_FOLDS = {  # clients_fold<k>.txt: (train, devel)
    1: ({5, 8, 11, 21, 23, 24, 36, 37, 54, 55}, {1, 2, 3, 9, 22, 34, 35, 42, 48, 51}),
    2: ({2, 3, 8, 9, 21, 23, 34, 35, 37, 51}, {1, 5, 11, 22, 24, 36, 42, 48, 54, 55}),
    3: ({3, 8, 9, 11, 23, 24, 34, 37, 42, 48}, {1, 2, 5, 21, 22, 35, 36, 51, 54, 55}),
    4: ({1, 2, 3, 8, 9, 21, 22, 34, 36, 55}, {5, 11, 23, 24, 35, 37, 42, 48, 51, 54}),
    5: ({1, 2, 8, 11, 21, 22, 24, 36, 54, 55}, {3, 5, 9, 23, 34, 35, 37, 42, 48, 51}),
}
MSU_CAMERAS = (("android", ".mp4"), ("laptop", ".mov"))
MSU_INSTRUMENTS = ("ipad_video", "iphone_video", "printed_photo")


def msu_tree(root: Path, subjects: tuple[int, ...], write: Writer = placeholder) -> Path:
    """MSU-MFSD's 8 videos of each subject (client number): ``real/real_client<NNN>_<camera>_SD_
    scene01`` and ``attack/attack_client<NNN>_<camera>_SD_<instrument>_scene01``, for the android
    (.mp4) and laptop (.mov) cameras and the ipad_video, iphone_video, printed_photo instruments."""
    for n in subjects:
        for camera, suffix in MSU_CAMERAS:
            write(root / "real" / f"real_client{n:03d}_{camera}_SD_scene01{suffix}")
            for instrument in MSU_INSTRUMENTS:
                name = f"attack_client{n:03d}_{camera}_SD_{instrument}_scene01{suffix}"
                write(root / "attack" / name)
    return root


# --- Replay-Mobile: bob.db.replaymobile db.sql3 --------------------------------------------------

RM_CLIENTS = {  # table client: set -> ids
    "train": (1, 3, 8, 11, 12, 16, 18, 20, 26, 34, 37, 38),
    "devel": (5, 6, 13, 14, 15, 23, 24, 25, 28, 29, 31, 32, 35, 36, 39, 40),
    "test": (2, 4, 7, 9, 10, 17, 19, 21, 22, 27, 30, 33),
}
RM_NO_REAL = (9,)  # the file table holds no authenticate video of client 9
RM_REAL_LIGHTS = ("controlled", "adverse", "direct", "lateral", "diffuse")
RM_DEVICES = ("mobile", "tablet")
RM_ATTACK_LIGHTS = ("lighton", "lightoff")
# (species, support, sample type): 8 attacks per client each for print and mattescreen
RM_ATTACKS = tuple(("print", support, "photo") for support in ("fixed", "hand")) + tuple(
    ("mattescreen", "fixed", kind) for kind in ("photo", "video")
)


def replay_mobile_tree(root: Path, clients: tuple[int, ...], write: Writer = placeholder) -> Path:
    """Replay-Mobile's videos of each client (1-40) in its group's folder (train, devel, test):
    10 bona fide ``real/client<NNN>_session02_authenticate_<device>_<light>.mov`` (none for
    client 9, as in the release), 16 ``attack/attack_client<NNN>_session01_<print|mattescreen>_
    <support>_<device>_<photo|video>_<lighton|lightoff>.mov`` and 4 enrolment videos
    ``enroll/<group>/client<NNN>_session01_enroll_<device>_<lighton|lightoff>.mov``."""
    group = {n: g for g, numbers in RM_CLIENTS.items() for n in numbers}
    for n in clients:
        if n not in group:
            raise ValueError(f"Replay-Mobile has clients 1-40, got {n}")
        folder, client = root / group[n], f"client{n:03d}"
        for device in RM_DEVICES:
            if n not in RM_NO_REAL:
                for light in RM_REAL_LIGHTS:
                    write(folder / "real" / f"{client}_session02_authenticate_{device}_{light}.mov")
            for light in RM_ATTACK_LIGHTS:
                write(
                    root / "enroll" / group[n] / f"{client}_session01_enroll_{device}_{light}.mov"
                )
                for species, support, kind in RM_ATTACKS:
                    name = f"attack_{client}_session01_{species}_{support}_{device}_{kind}_{light}"
                    write(folder / "attack" / f"{name}.mov")
    return root


# a protocol of each layout that the registry knows by a database's name
LAYOUTS = {
    "replay-attack": "replay-attack",
    "oulu": "oulu-p1",
    "casia": "casia",
    "msu": "msu",
    "replay-mobile": "replay-mobile",
}


def recognised_by(root: Path) -> set[str]:
    """Which of the five database layouts recognise the videos under ``root``."""
    videos = sorted(p for p in root.rglob("*") if p.suffix in VIDEO_SUFFIXES)
    return {name for name, p in LAYOUTS.items() if get_protocol(p)[0].recognise(root, videos)}


def subjects(data: Dataset, split: str) -> set[int]:
    return {int(c.subject) for c in data.split(split)}


def species_counts(data: Dataset, split: str) -> Counter:
    return Counter(c.attack_type for c in data.split(split))


# --- MSU-MFSD ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def msu(tmp_path_factory) -> Path:
    """Every subject of MSU-MFSD, with a face-box file beside one video."""
    root = msu_tree(tmp_path_factory.mktemp("msu") / "MSU-MFSD", MSU_SUBJECTS)
    (root / "real" / "real_client005_android_SD_scene01.face").write_text("0,10,10,60,60\n")
    return root


def test_msu_lists_are_bobs() -> None:
    assert len(MSU_SUBJECTS) == len(set(MSU_SUBJECTS)) == 35
    for fold, (train, dev) in MSU_FOLDS.items():
        assert len(train) == len(dev) == 10, fold
        assert sorted(train | dev | set(MSU_FOLD_TEST)) == list(MSU_SUBJECTS), fold
    assert folds("msu-folds") == (1, 2, 3, 4, 5) and folds("msu") == ()


def test_the_boxed_clips_of_a_study_of_every_fold_are_read(msu: Path) -> None:
    """predict and the crop check read a study's boxed clips from its tags: a trial of every fold
    is tagged fold "all", which int() ended in a traceback (review)."""
    from experiments.serving.crop_check import _boxed

    tags = {"fold": "all", "folds": "1,2,3,4,5", "protocol": "msu-folds", "data": str(msu)}
    (boxed,) = _boxed(tags, [msu]).values()  # the one clip with a .face file beside it
    assert boxed.path.name == "real_client005_android_SD_scene01.mp4"
    assert _boxed({**tags, "fold": "2"}, [msu]).keys() == _boxed(tags, [msu]).keys()


def test_msu_reading_and_auto(msu: Path) -> None:
    data = load_dataset(msu)
    assert (data.protocol, data.layout, data.fold) == ("msu", "msu", None)
    assert data.skipped == []  # the .face file is data, not a stray
    assert len(data.source_clips) == 280  # the paper's 70 bona fide and 210 attack videos
    assert Counter(c.label for c in data.source_clips) == {"bonafide": 70, "attack": 210}
    assert data.column_names == ["device", "instrument"]
    by_id = {c.clip_id: c for c in data.clips}
    real = by_id["real/real_client005_android_SD_scene01"]
    assert (real.label, real.attack_type, real.subject, real.columns) == (
        "bonafide",
        "bonafide",
        "5",
        {"device": "android"},
    )
    boxes = msu / "real" / "real_client005_android_SD_scene01.face"  # beside the video
    assert real.face_boxes == FaceBoxes(boxes, "corners", verify=True)
    assert sum(c.face_boxes is not None for c in data.source_clips) == 1
    expected = {"ipad_video": "replay", "iphone_video": "replay", "printed_photo": "print"}
    for instrument, species in expected.items():
        clip = by_id[f"attack/attack_client055_laptop_SD_{instrument}_scene01"]
        assert (clip.label, clip.attack_type, clip.subject) == ("attack", species, "55")
        assert clip.columns == {"device": "laptop", "instrument": instrument}
        assert clip.path.suffix == ".mov"


def test_msu_protocol_is_the_databases_split_with_a_fixed_dev(msu: Path) -> None:
    data = load_dataset(msu, protocol="msu")
    assert subjects(data, "train") == set(MSU_TRAIN) - set(MSU_DEV)
    assert subjects(data, "dev") == set(MSU_DEV)
    assert subjects(data, "test") == set(MSU_TEST)
    assert counts(data) == {"train": 80, "dev": 40, "test": 160}  # 8 videos per subject
    assert species_counts(data, "train") == {"bonafide": 20, "print": 20, "replay": 40}
    assert species_counts(data, "dev") == {"bonafide": 10, "print": 10, "replay": 20}
    assert species_counts(data, "test") == {"bonafide": 40, "print": 40, "replay": 80}
    assert all(values(data.split(s), "device") == {"android", "laptop"} for s in SPLITS)
    assert_subject_disjoint(data)


@pytest.mark.parametrize("fold", range(1, 6))
def test_msu_folds_are_bobs(msu: Path, fold: int) -> None:
    data = load_dataset(msu, protocol="msu-folds", fold=fold)
    assert (data.protocol, data.fold) == ("msu-folds", fold)
    train, dev = MSU_FOLDS[fold]
    assert subjects(data, "train") == train and subjects(data, "dev") == dev
    assert subjects(data, "test") == set(MSU_FOLD_TEST)
    assert counts(data) == {"train": 80, "dev": 80, "test": 120}
    assert species_counts(data, "test") == {"bonafide": 30, "print": 30, "replay": 60}
    assert_subject_disjoint(data)
    assert data.source_clips == load_dataset(msu).source_clips
    assert f"msu-folds fold {fold}" in data.summary()


def test_msu_folds_needs_a_fold(msu: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(msu, protocol="msu-folds")
    assert str(info.value) == "protocol msu-folds has folds 1-5: choose one with --fold K"


def test_a_partial_copy_is_refused_not_split_at_random(tmp_path: Path) -> None:
    """Three subjects that fold 4 all puts in train: its dev and test were carved from them at
    random (said at INFO only), so a named protocol quietly became a random split."""
    root = msu_tree(tmp_path / "msu", (1, 2, 22))
    assert {1, 2, 22} <= set(MSU_FOLDS[4][0])  # fold 4's train subjects, none of its dev or test
    with pytest.raises(DataError) as info:
        load_dataset(root, protocol="msu-folds", fold=4)
    assert str(info.value) == (
        f"{root}: protocol msu-folds fold 4 has no dev or test clip among the 24 found: a "
        "partial copy of the msu database? Its splits are the database's lists, never drawn at "
        "random (subjects by MSU-MFSD's lists (msu) or Bob's folds (msu-folds); msu-folds: "
        "MSU-MFSD, Bob's 5 folds: 15 fixed test subjects, 10 train / 10 dev)"
    )


def test_a_class_folder_given_for_the_database_is_said(tmp_path: Path) -> None:
    """--db msu=.../MSU-MFSD/real said only "add attack clips there" (probe)."""
    root = msu_tree(tmp_path / "MSU-MFSD", (2, 22, 1))
    with pytest.raises(DataError) as refused:
        load_dataset(root / "real", protocol="msu")
    assert str(refused.value).endswith(
        f"add attack clips there (every clip bona fide: is the database's folder {root}?)"
    )


def test_msu_under_the_release_folder_with_frame_folders_and_videos(tmp_path: Path) -> None:
    """The release's ``scene01/`` above real/ and attack/; real tiny videos work the same."""
    root = msu_tree(tmp_path / "MSU" / "scene01", (2, 22, 1), write=tiny_video).parent
    data = load_dataset(root)
    assert data.layout == "msu" and counts(data) == {"train": 8, "dev": 8, "test": 8}
    assert all(c.path.stat().st_size > 0 for c in data.clips)
    frames = msu_tree(tmp_path / "frames", (2, 22, 1), write=frame_folder)
    data = load_dataset(frames)
    assert data.layout == "msu" and {c.path.is_dir() for c in data.clips} == {True}
    assert all(frames / clip.file == clip.path for clip in data.clips)  # a folder: its id


def test_msu_release_lists_are_data_checked_against_the_databases(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The release's train_sub_list.txt and test_sub_list.txt beside scene01/ were warned of as
    unsupported files and counted as a skipped clip on every run (probe); a list that names
    other subjects than the database's is warned of, and the database's split kept."""
    root = msu_tree(tmp_path / "MSU-MFSD" / "scene01", (2, 22, 1)).parent
    (root / "train_sub_list.txt").write_text("".join(f"{n:03d}\n" for n in MSU_TRAIN))
    (root / "test_sub_list.txt").write_text("".join(f"{n:03d}\n" for n in MSU_TEST))
    with caplog.at_level("WARNING"):
        data = load_dataset(root, protocol="msu")
    assert data.skipped == [] and caplog.text == ""
    (root / "train_sub_list.txt").write_text("001\n002\n")  # edited: not the database's
    with caplog.at_level("WARNING"):
        data = load_dataset(root, protocol="msu")
    assert data.skipped == [] and counts(data) == {"train": 8, "dev": 8, "test": 8}
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith(f"{root / 'train_sub_list.txt'} lists subjects 001 002, MSU-MFSD's ")
    assert said.endswith("the protocol keeps the database's; the file is not read")


def test_msu_names_that_do_not_parse_are_counted_skips(tmp_path: Path) -> None:
    root = msu_tree(tmp_path / "msu", (2, 22, 1))
    bad = {
        "real/real_client002_iphone_SD_scene01.mp4": "not an MSU-MFSD clip",
        "attack/real_client002_android_SD_scene01.mp4": "not an MSU-MFSD clip",
        "real/real_client002_android_SD_printed_photo_scene01.mp4": "not an MSU-MFSD clip",
        "attack/attack_client002_android_SD_scene01.mp4": "not an MSU-MFSD clip",
        "real/real_client004_android_SD_scene01.mp4": "MSU-MFSD has no client 004",
        "scene02/real/real_client002_android_SD_scene01.mp4": "found twice",
    }
    for name in bad:
        placeholder(root / name)
    assert recognised_by(root) == set()  # not every clip is MSU-MFSD's
    data = load_dataset(root, protocol="msu")
    assert len(data.skipped) == len(bad) and len(data.clips) == 24
    reasons = {p.relative_to(root).as_posix(): r for p, r in data.skipped}
    for name, reason in bad.items():
        assert reason in reasons[name], (name, reasons[name])


# --- Replay-Mobile -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replay_mobile(tmp_path_factory) -> Path:
    """Every client of Replay-Mobile, with face-location files for one video."""
    root = replay_mobile_tree(tmp_path_factory.mktemp("rm") / "replaymobile", tuple(range(1, 41)))
    face = root / "faceloc" / "rect" / "train" / "real"
    face.mkdir(parents=True)
    (face / "client001_session02_authenticate_mobile_adverse.face").write_text("0 1 2 30 40\n")
    return root


# bob.db.replaymobile db.sql3 per protocol and group: (bona fide, print, mattescreen) videos; the
# grandtest totals 312 / 416 / 302, 1030 in all (bob.pad.face's Replay-Mobile config: 1030 clips)
RM_SIZES = {"train": (120, 96, 96), "dev": (160, 128, 128), "test": (110, 96, 96)}


def test_replay_mobile_grandtest(replay_mobile: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = load_dataset(replay_mobile)
    assert (data.protocol, data.layout, data.fold) == ("replay-mobile", "replay-mobile", None)
    assert counts(data) == {"train": 312, "dev": 416, "test": 302}
    for split, folder in (("train", "train"), ("dev", "devel"), ("test", "test")):
        assert subjects(data, split) == set(RM_CLIENTS[folder])
        real, printed, matte = RM_SIZES[split]
        assert species_counts(data, split) == {
            "bonafide": real,
            "print": printed,
            "mattescreen": matte,
        }
    assert_subject_disjoint(data)
    # the 160 enrolment videos are set aside, counted once: not 160 warnings a run, not skips;
    # the .face files are data, not strays
    assert data.skipped == []
    assert data.aside == "160 enrolment videos (face recognition, not PAD) in enroll/"
    assert "enroll" not in caplog.text
    assert data.column_names == ["light", "device", "support", "sample_type"]
    reals = [c for c in data.clips if c.label == "bonafide"]
    assert values(reals, "light") == {"controlled", "adverse", "direct", "lateral", "diffuse"}
    attacks = [c for c in data.clips if c.label == "attack"]
    assert values(attacks, "light") == {"lighton", "lightoff"}
    assert values(data.clips, "device") == {"mobile", "tablet"}
    assert values(attacks, "support") == {"fixed", "hand"}
    assert values(attacks, "sample_type") == {"photo", "video"}
    by_id = {c.clip_id: c for c in data.clips}
    attack = by_id[
        "devel/attack/attack_client005_session01_mattescreen_fixed_mobile_photo_lightoff"
    ]
    assert (attack.split, attack.subject, attack.attack_type, attack.columns) == (
        "dev",
        "5",
        "mattescreen",
        {"light": "lightoff", "device": "mobile", "support": "fixed", "sample_type": "photo"},
    )
    real = by_id["train/real/client001_session02_authenticate_mobile_adverse"]
    boxes = replay_mobile / "faceloc" / "rect" / f"{real.clip_id}.face"
    assert (real.label, real.columns, real.face_boxes) == (
        "bonafide",
        {"light": "adverse", "device": "mobile"},
        FaceBoxes(boxes, "xywh", verify=True),  # drawn on frames Bob's reader reorients
    )
    assert sum(c.face_boxes is not None for c in data.source_clips) == 1


@pytest.mark.parametrize(("species", "index"), [("print", 1), ("mattescreen", 2)])
def test_replay_mobile_species_protocols(replay_mobile: Path, species: str, index: int) -> None:
    """bob.db.replaymobile's print and mattescreen protocols: every real access, one species."""
    data = load_dataset(replay_mobile, protocol=f"replay-mobile-{species}")
    for split in SPLITS:
        real, attacks = RM_SIZES[split][0], RM_SIZES[split][index]
        assert species_counts(data, split) == {"bonafide": real, species: attacks}
    assert counts(data) == {"train": 216, "dev": 288, "test": 206}
    attacks = [c for c in data.clips if c.label == "attack"]
    supports = {"fixed", "hand"} if species == "print" else {"fixed"}
    assert values(attacks, "support") == supports
    assert data.source_clips == load_dataset(replay_mobile).source_clips
    assert_subject_disjoint(data)


def test_replay_mobile_names_that_do_not_parse_are_counted_skips(tmp_path: Path) -> None:
    root = replay_mobile_tree(tmp_path / "rm", (1, 5, 2))
    bad = {
        "train/real/client001_session02_authenticate_laptop_adverse.mov": "not a Replay-Mobile",
        "train/attack/attack_client001_session01_print_hand_mobile_photo_adverse.mov": (
            "not a Replay-Mobile"
        ),
        "train/attack/fixed/attack_client001_session01_print_fixed_mobile_photo_lighton.mov": (
            "not a Replay-Mobile"
        ),
        "test/real/client001_session02_authenticate_mobile_adverse.mov": (
            "client 1 is a train client (bob.db.replaymobile), found under test/"
        ),
        "devel/real/client041_session02_authenticate_mobile_adverse.mov": (
            "client 41 is not one of clients 1-40"
        ),
    }
    for name in bad:
        placeholder(root / name)
    assert recognised_by(root) == set()
    data = load_dataset(root, protocol="replay-mobile")
    assert len(data.clips) == 3 * 26 and len(data.skipped) == len(bad)  # enrolment: set aside
    reasons = {p.relative_to(root).as_posix(): r for p, r in data.skipped}
    for name, reason in bad.items():
        assert reason in reasons[name], (name, reasons[name])


# --- both: unreadable trees, auto detection, --list -----------------------------------------------


@pytest.mark.parametrize("protocol", ["msu", "msu-folds", "replay-mobile-print"])
def test_a_tree_the_layout_cannot_read_is_one_line(
    tmp_path: Path, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One line, naming the database the files are (it logged a warning per file first)."""
    root = oulu_tree(tmp_path / "oulu", (1,))
    with pytest.raises(DataError) as info:
        load_dataset(root, protocol=protocol, fold=1 if protocol == "msu-folds" else None)
    message = str(info.value)
    layout = get_protocol(protocol)[0]
    assert message.startswith(
        f"{root}: no usable clip ({layout.name} layout, 90 entries skipped, e.g. "
        "Train_files/1_1_01_1.avi); they are oulu's clips (protocol auto or oulu-p1 reads them); "
    )
    assert "skipped" not in caplog.text
    assert message.endswith(f"where the layout expects them: {layout.summary}")  # its own names
    assert layout.summary.startswith(("MSU-MFSD:", "Replay-Mobile:"))
    assert "\n" not in message


@pytest.fixture(scope="module")
def five_trees(tmp_path_factory) -> dict[str, Path]:
    """A small tree of each database the registry knows by name, keyed by its layout."""
    base = tmp_path_factory.mktemp("five")
    return {
        "replay-attack": replay_tree(base / "ra", {"train": (1,), "devel": (2,), "test": (3,)}),
        "oulu": oulu_tree(base / "oulu", (1, 21, 36)),
        "casia": casia_tree(base / "casia", train=(1, 16), test=(1,)),
        "msu": msu_tree(base / "msu", (2, 22, 1)),
        "replay-mobile": replay_mobile_tree(base / "rm", (1, 5, 2)),
    }


def test_auto_tells_the_five_databases_apart(five_trees: dict[str, Path]) -> None:
    """Each tree is recognised by its own layout and by none of the four others."""
    assert set(five_trees) == set(LAYOUTS)
    for owner, root in five_trees.items():
        assert recognised_by(root) == {owner}
        data = load_dataset(root)
        assert data.layout == owner
        # scores.csv's file column: the clip's path in the folder given (ids have no suffix)
        assert all(root / clip.file == clip.path for clip in data.clips), owner
        assert {Path(clip.file).suffix for clip in data.clips} != {""}, owner


def test_a_folder_of_databases_is_refused_naming_them(five_trees: dict[str, Path]) -> None:
    """--data at the folder holding them read one database (the highest layout that recognised
    the whole) and called the others' clips strays, or failed on one of them (probe). Each
    alone still loads (test_auto_tells_the_five_databases_apart): its folders hold one layout."""
    base = five_trees["oulu"].parent
    for protocol, first in (("auto", "casia"), ("oulu-p2", "oulu")):
        with pytest.raises(DataError) as refused:
            load_dataset(base, protocol=protocol)
        said = str(refused.value)
        assert said.startswith(f"{base} holds 5 databases: casia (casia), msu (msu), oulu (oulu)")
        assert f"--data takes one (--data {base / first}), a cross-domain study names" in said
        assert f"(--db {first}={base / first} ...;" in said
        assert said.endswith("; --protocol generic reads a folder of your own")
    with pytest.raises(DataError) as generic:  # a folder of one's own: not refused for its names
        load_dataset(base, protocol="generic")
    assert "databases" not in str(generic.value)


def test_a_databases_own_folders_beside_another_are_one_database(tmp_path: Path) -> None:
    """OULU-NPU's Train_files, Dev_files and Test_files with MSU-MFSD's scene01 in one folder
    read as four databases, and the fix suggested --data .../Dev_files, which was then refused
    as a partial copy (probe W): OULU-NPU is this folder's own, the fix names scene01."""
    oulu_tree(tmp_path, (1, 21, 36))
    msu_tree(tmp_path / "scene01", (2, 22, 1))
    for protocol in ("auto", "oulu-p1"):  # the fix named scene01 for --protocol oulu-p1 (review)
        with pytest.raises(DataError) as refused:
            load_dataset(tmp_path, protocol=protocol)
        assert str(refused.value).startswith(
            f"{tmp_path} holds 2 databases: Dev_files, Test_files, Train_files (oulu, this "
            "folder's), scene01 (msu); move scene01 out of it (a folder each: "
        ), refused.value
    with pytest.raises(DataError) as refused:  # the protocol's database not there: said
        load_dataset(tmp_path, protocol="replay-attack")
    assert "scene01 (msu), none replay-attack; move scene01 out of it" in str(refused.value)
    # two databases' own folders mixed in one: nothing to move out, each needs its own (review)
    mixed = tmp_path / "mixed"
    oulu_tree(mixed, (1, 21, 36))
    msu_tree(mixed, (2, 22, 1))  # MSU-MFSD's real/ and attack/ beside OULU-NPU's folders
    with pytest.raises(DataError) as refused:
        load_dataset(mixed)
    assert "(msu, this folder's)" in str(refused.value)
    assert "; give each database a folder of its own (" in str(refused.value), refused.value
    # two copies of one database beside another: each a database of its own, not "this folder"
    for copy in ("oulu_v1", "oulu_v2"):
        oulu_tree(tmp_path / "copies" / copy, (1, 21, 36))
    msu_tree(tmp_path / "copies" / "msu" / "scene01", (2, 22, 1))
    with pytest.raises(DataError) as refused:
        load_dataset(tmp_path / "copies")
    assert str(refused.value).startswith(
        f"{tmp_path / 'copies'} holds 3 databases: msu (msu), oulu_v1 (oulu), oulu_v2 (oulu); "
    ), refused.value


def test_a_folder_of_databases_without_the_protocols_says_so(tmp_path: Path) -> None:
    """--protocol replay-mobile at a folder of CASIA-FASD and MSU-MFSD suggested --data
    .../casia, which it would refuse next (review)."""
    casia_tree(tmp_path / "casia", train=(1, 16), test=(1,))
    msu_tree(tmp_path / "msu", (2, 22, 1))
    with pytest.raises(DataError) as refused:
        load_dataset(tmp_path, protocol="replay-mobile")
    said = str(refused.value)
    assert said.startswith(
        f"{tmp_path} holds 2 databases: casia (casia), msu (msu), none "
        "replay-mobile; --data takes one"
    )


def test_a_stray_copy_among_a_databases_clips_is_no_reason_to_split_it_at_random(
    tmp_path: Path, five_trees: dict[str, Path]
) -> None:
    """``name (1).mp4`` beside a database's videos: auto read the folder as a generic set (random
    subject splits, species merged into "attack") without a word. Now one line names the layout
    and the flag; the layout's own protocol reads it, skipping the copy."""
    for owner, tree in five_trees.items():
        root = tmp_path / owner
        shutil.copytree(tree, root)
        first = sorted(p for p in root.rglob("*") if p.suffix in VIDEO_SUFFIXES)[-1]
        stray = first.with_name(f"{first.stem} (1){first.suffix}")
        shutil.copy(first, stray)
        protocol = LAYOUTS[owner]  # the protocol auto runs
        if owner == "casia":  # recognised by its release folders: the copy is a skip
            assert load_dataset(root).layout == "casia"
            continue
        with pytest.raises(DataError) as info:
            load_dataset(root)
        total = len([p for p in root.rglob("*") if p.suffix in VIDEO_SUFFIXES])
        assert str(info.value) == (
            f"{root}: {total - 1} of {total} clips are named as {owner}'s and 1 not (e.g. "
            f"{stray.relative_to(root)}): name it as {owner} names its clips, or move it out; "
            f"or --protocol {protocol} reads it as {owner}, skipping the others with a warning; "
            "--protocol generic reads a folder of your own"
        )
        data = load_dataset(root, protocol=protocol)
        assert data.layout == owner and [p for p, _ in data.skipped] == [stray]
        # a cross-domain database: --protocol, which the line had named, chooses --data's
        with pytest.raises(DataError) as info:
            check_database(NamedData(owner, FeatureOptions(data=root)))
        how = f'--db {owner}={root}:{protocol} (in a --databases file: protocol = "{protocol}")'
        assert str(info.value).endswith(
            f"; or {how} reads it as {owner}, skipping the others with a warning"
        )
    intact = load_dataset(five_trees["replay-attack"])  # its enrolment videos are no strays
    assert intact.layout == "replay-attack"


def test_list_prints_their_clips(tmp_path: Path, five_trees: dict[str, Path]) -> None:
    cache = str(tmp_path / "cache")
    result = list_clips("--data", str(five_trees["msu"]), "--protocol", "msu", "--cache-dir", cache)
    assert result.returncode == 0, result.stderr[-2000:]
    # each clip's box file, where the database ships them: none here (seen before extraction)
    header = "clip,split,label,species,subject,device,instrument,face_boxes"
    assert result.stdout.splitlines()[0] == header
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert Counter(r["split"] for r in rows) == {"train": 8, "dev": 8, "test": 8}
    clip = "attack/attack_client022_android_SD_ipad_video_scene01"
    assert next(r for r in rows if r["clip"] == clip) == {
        "clip": clip,
        "split": "dev",
        "label": "attack",
        "species": "replay",
        "subject": "22",
        "device": "android",
        "instrument": "ipad_video",
        "face_boxes": "",
    }

    args = ["--data", str(five_trees["replay-mobile"]), "--protocol", "replay-mobile-print"]
    result = list_clips(*args, "--cache-dir", cache)
    assert result.returncode == 0, result.stderr[-2000:]
    header = "clip,split,label,species,subject,light,device,support,sample_type,face_boxes"
    assert result.stdout.splitlines()[0] == header
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert Counter((r["split"], r["species"]) for r in rows) == {
        (split, species): n for split in SPLITS for species, n in (("bonafide", 10), ("print", 8))
    }
    assert "replay-mobile-print" in result.stderr  # the summary, off the CSV
    assert not (tmp_path / "cache" / "features").exists()


def test_list_prints_a_settings_databases_as_one_table(
    tmp_path: Path, five_trees: dict[str, Path]
) -> None:
    """A cross-domain setting's ``--list`` was refused ("give --data"): each database's clips,
    a database column first, their own columns side by side, face_boxes last."""
    named = [f"--db=msu={five_trees['msu']}", f"--db=rm={five_trees['replay-mobile']}"]
    result = list_clips(*named, "--sources", "msu", "--target", "rm", "--cache-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0])[:4] == ["database", "role", "clip", "split"]
    assert list(rows[0])[-1] == "face_boxes"
    for name, layout in (("msu", "msu"), ("rm", "replay-mobile")):
        listed = [r["clip"] for r in rows if r["database"] == name]
        assert listed == [c.clip_id for c in load_dataset(five_trees[layout]).clips]
    # what the study does with each clip: the source's train and dev, the target's test split
    # (the splits alone did not say it, nor which clips --target-clips all tests: probe BB)
    roles = {(r["database"], r["split"], r["role"]) for r in rows}
    assert roles == {
        ("msu", "train", "train"),
        ("msu", "dev", "dev"),
        ("msu", "test", "unused"),
        ("rm", "train", "unused"),
        ("rm", "dev", "unused"),
        ("rm", "test", "test"),
    }
    flags = ("--sources", "msu", "--target", "rm", "--target-clips", "all")
    result = list_clips(*named, *flags, "--cache-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    tested = {r["clip"] for r in rows if r["database"] == "rm" and r["role"] == "test"}
    every = load_dataset(five_trees["replay-mobile"]).clips  # SSDG's all: but its devel
    assert tested == {c.clip_id for c in every if c.split != "dev"} != set()
    assert {r["role"] for r in rows if r["database"] == "rm" and r["split"] == "dev"} == {"unused"}
    # sources trained on every clip but dev (--source-clips all): their test splits train too
    result = list_clips(*named, *flags, "--source-clips", "all", "--cache-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    roles = {(r["split"], r["role"]) for r in rows if r["database"] == "msu"}
    assert roles == {("train", "train"), ("dev", "dev"), ("test", "train")}
    assert {r["instrument"] for r in rows if r["database"] == "rm"} == {""}  # MSU's column
    assert {r["light"] for r in rows if r["database"] == "msu"} == {""}  # Replay-Mobile's
    assert f"== rm: {five_trees['replay-mobile']}" in result.stderr
    assert not (tmp_path / "features").exists()
    # a group that takes OULU-NPU whole as one setting's target and by Protocol 1 as a source of
    # the others: its every clip, once (it was listed twice, both as oulu: review)
    dbs = [f"--db={name}={five_trees[name]}" for name in ("oulu", "casia", "replay-attack", "msu")]
    group = list_clips(
        *dbs, "--protocol", "ocim", "--target-clips", "all", "--cache-dir", str(tmp_path)
    )
    assert group.returncode == 0, group.stderr[-2000:]
    rows = list(csv.DictReader(io.StringIO(group.stdout)))
    listed = [r["clip"] for r in rows if r["database"] == "oulu"]
    assert listed == [c.clip_id for c in load_dataset(five_trees["oulu"], "oulu-all").clips]
    assert group.stderr.count(f"== oulu: {five_trees['oulu']}") == 1
    assert "role" not in rows[0]  # said, not dropped without a word (probe DD)
    assert "no role column: a clip's role depends on the setting; list one of ocim-" in group.stderr
