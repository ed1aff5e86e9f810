"""The synthetic PAD set: contents, what each attack looks like over time, determinism, reuse.

The full set (160 clips) is generated once for the module; determinism and concurrency use a
four-subject set, since each generation of the full set costs seconds.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from core.constants import FRAMES_PER_CLIP, SPLITS
from core.data import synthetic
from core.data.clips import SYNTHETIC_MARKER, DataError
from core.data.dataset import load_dataset
from core.data.frames import frame_indices, read_frames
from core.data.synthetic import (
    FRAMES,
    PHOTO_FRAME,
    SIZE,
    SUBJECTS,
    VERSION,
    clip_path,
    split_of,
    synthetic_dataset,
)


@pytest.fixture(scope="module")
def full_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default set, seed 0 (its generation time: bench/default_sweep.py)."""
    return synthetic_dataset(tmp_path_factory.mktemp("synthetic"), seed=0)


@pytest.fixture
def three_subjects(monkeypatch: pytest.MonkeyPatch) -> None:
    """A smaller set for tests that generate several times."""
    monkeypatch.setattr(synthetic, "SUBJECTS", 4)  # two in train, one each in dev and test


def files_of(folder: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file in ``folder``."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_composition_and_loader(full_set: Path) -> None:
    assert full_set.name == f"synthetic-pad-v{VERSION}-seed0"
    data = load_dataset(full_set)
    assert data.synthetic and data.protocol == "generic" and data.skipped == []
    assert len(data.clips) == SUBJECTS * 5 == 160
    counts = {
        t: sum(c.attack_type == t for c in data.clips)
        for t in ("bonafide", "print", "replay", "photo")
    }
    assert counts == {"bonafide": 64, "print": 32, "replay": 32, "photo": 32}
    assert data.subjects == sorted(str(s) for s in range(1, SUBJECTS + 1))
    assert data.layout == "generic" and data.fold is None and data.column_names == []
    # its own split folders: 16 subjects to train on, 8 each in dev and test, every species
    for split, subjects in zip(SPLITS, (16, 8, 8), strict=True):
        clips = data.split(split)
        assert {c.subject for c in clips} == {
            str(s) for s in range(1, SUBJECTS + 1) if split_of(s) == split
        }
        assert len({c.subject for c in clips}) == subjects
        species = [c.attack_type for c in clips]
        assert {t: species.count(t) for t in set(species)} == {
            "bonafide": 2 * subjects,
            "print": subjects,
            "replay": subjects,
            "photo": subjects,
        }
    assert "synthetic demonstration set" in data.summary()
    manifest = json.loads((full_set / SYNTHETIC_MARKER).read_text())
    assert manifest["version"] == VERSION and manifest["seed"] == 0
    assert sorted(manifest["files"]) == sorted(
        c.path.relative_to(full_set).as_posix() for c in data.clips
    )


def test_every_clip_decodes_to_the_promised_frames(full_set: Path) -> None:
    paths = sorted(full_set.rglob("*.avi"))
    assert len(paths) == 5 * SUBJECTS  # two bona fide clips and three attacks a subject (review)
    for path in paths:
        frames = read_frames(path, FRAMES)
        assert frames.shape == (FRAMES, SIZE, SIZE, 3), path


def motion(frames: np.ndarray, lag: int = 3) -> float:
    """Mean absolute change between frames ``lag`` apart (7 of 20 frames are ~3 apart)."""
    frames = frames.astype(np.float32)
    return float(np.abs(frames[lag:] - frames[:-lag]).mean())


def test_photo_attack_is_a_frozen_bona_fide_frame(full_set: Path) -> None:
    for s in range(1, SUBJECTS + 1):
        photo = read_frames(full_set / clip_path(s, "photo"), FRAMES)
        live = read_frames(full_set / clip_path(s, "session1"), FRAMES)
        assert (photo == photo[0]).all()  # nothing moves, not even the noise
        # every frame of it is a frame of the bona fide clip: no single frame can tell them apart
        assert np.array_equal(photo[0], live[PHOTO_FRAME])


def mouth_cavity(frame: np.ndarray) -> int:
    """Pixels of an open mouth's dark inside (drawn RGB 45, 12, 15, then lit, shaded, noised)."""
    r, g, _ = (frame[..., i].astype(np.int32) for i in range(3))
    return int(((r < 75) & (g < 25) & (r > 2.8 * g)).sum())


def test_live_subject_speaks_the_photo_does_not(full_set: Path) -> None:
    """The cue the photo attack lacks: in the frames a clip is read by, the live subject speaks,
    mouth open wide, except when pausing on the frame the photo froze (closed mouth)."""
    sampled = frame_indices(FRAMES, FRAMES_PER_CLIP)
    assert PHOTO_FRAME in sampled  # the photo's own frame is among a bona fide clip's samples
    speaking = [t for t in sampled if t != PHOTO_FRAME]
    for s in range(1, SUBJECTS + 1):
        closed = mouth_cavity(read_frames(full_set / clip_path(s, "photo"), 1)[0])
        for session in ("session1", "session2"):
            live = read_frames(full_set / clip_path(s, session), FRAMES)
            opened = [mouth_cavity(live[t]) for t in speaking]
            assert np.mean(opened) > 5 * closed + 50, (s, session, closed, opened)
            assert sum(n > 30 for n in opened) >= len(speaking) - 1, (s, session, opened)


def test_motion_pauses_on_the_photo_frame() -> None:
    for seed in range(20):
        motion = synthetic.Motion.random(np.random.default_rng(seed), PHOTO_FRAME)
        assert motion.talking[PHOTO_FRAME] == 0 and motion.yaw[PHOTO_FRAME] == 0
        assert PHOTO_FRAME not in motion.blinks
        others = np.delete(np.arange(FRAMES), PHOTO_FRAME)
        assert (motion.talking[others] > 0.3).all()  # speaking throughout: never shut
        assert np.abs(motion.yaw).max() > 0.3  # and the head turns


def test_bona_fide_moves_print_is_still_replay_moves(full_set: Path) -> None:
    for s in range(1, SUBJECTS + 1):
        clips = {
            kind: read_frames(full_set / clip_path(s, kind), FRAMES)
            for kind in ("session1", "session2", "print", "replay")
        }
        still = motion(clips["print"])  # camera noise only
        assert 0.5 < still < 4, s
        for kind in ("session1", "session2", "replay"):
            assert motion(clips[kind]) > still + 1.5, (s, kind)
        # the head really moves: first and middle frames differ well beyond noise
        live = clips["session1"].astype(np.float32)
        assert np.abs(live[0] - live[FRAMES // 2]).mean() > 2 * still, s


def test_print_and_replay_frames_carry_their_artefacts(full_set: Path) -> None:
    """Halftone dots and moire add fine texture that a bona fide frame does not have."""

    def fine_texture(frame: np.ndarray) -> float:
        grey = frame.astype(np.float32).mean(axis=2)
        return float(np.abs(np.diff(grey, axis=1)).mean() + np.abs(np.diff(grey, axis=0)).mean())

    for s in range(1, SUBJECTS + 1):
        live = fine_texture(read_frames(full_set / clip_path(s, "session1"), 1)[0])
        printed = fine_texture(read_frames(full_set / clip_path(s, "print"), 1)[0])
        replay = fine_texture(read_frames(full_set / clip_path(s, "replay"), 1)[0])
        assert printed > live and replay > live, (s, live, printed, replay)


def test_reuse_does_not_rewrite(full_set: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in full_set.rglob("*")}
    assert synthetic_dataset(full_set.parent, seed=0) == full_set
    assert {p: p.stat().st_mtime_ns for p in full_set.rglob("*")} == before
    assert [p.name for p in full_set.parent.iterdir()] == [full_set.name]  # no temp folder left


def test_a_disk_without_room_for_the_set_is_said_before_it_is_written(
    full_set: Path, tmp_path: Path, monkeypatch
) -> None:
    """On a full disk OpenCV wrote clips short without a word, said as "wrote 20 frames but 0
    decode back" under a temporary folder (probe). The room a set takes is checked first; the
    figure it checks is the set's real size, within 10 %."""
    size = sum(p.stat().st_size for p in full_set.rglob("*") if p.is_file())
    needed = SUBJECTS * synthetic.SUBJECT_BYTES
    assert 0.9 * needed <= size <= needed, (size, needed)
    real = shutil.disk_usage

    def short(path):
        return real(path)._replace(free=needed - 1)

    monkeypatch.setattr(synthetic.shutil, "disk_usage", short)
    with pytest.raises(DataError) as said:
        synthetic_dataset(tmp_path / "cache", seed=0)
    assert str(said.value) == (
        f"{tmp_path / 'cache'}: the synthetic set needs {needed / 1e6:.0f} MB, and its disk has "
        f"{(needed - 1) / 1e6:.1f} MB free: free some room, or give --cache-dir on a larger disk"
    )
    assert list((tmp_path / "cache").iterdir()) == []  # nothing begun


@pytest.mark.usefixtures("three_subjects")
def test_same_seed_same_bytes_other_seed_other_set(tmp_path: Path) -> None:
    a = synthetic_dataset(tmp_path / "a", seed=1)
    b = synthetic_dataset(tmp_path / "b", seed=1)
    c = synthetic_dataset(tmp_path / "a", seed=2)
    assert files_of(a) == files_of(b)
    assert load_dataset(a).fingerprint == load_dataset(b).fingerprint  # content, not place
    assert c != a and c.name.endswith("seed2") and a.is_dir()  # seeds live side by side
    differing = [n for n, data in files_of(a).items() if files_of(c).get(n) != data]
    assert len(differing) == len(files_of(a))  # every file, manifest included
    assert load_dataset(c).fingerprint != load_dataset(a).fingerprint


@pytest.mark.usefixtures("three_subjects")
def test_damaged_or_foreign_copy_is_rebuilt(tmp_path: Path) -> None:
    folder = synthetic_dataset(tmp_path, seed=0)
    good = files_of(folder)
    victim = folder / clip_path(1, "replay")
    victim.write_bytes(victim.read_bytes()[:100])  # truncated by a crash or a user
    assert synthetic_dataset(tmp_path, seed=0) == folder
    assert files_of(folder) == good
    (folder / SYNTHETIC_MARKER).unlink()  # a half-written copy has no manifest
    assert synthetic_dataset(tmp_path, seed=0) == folder
    assert files_of(folder) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]


@pytest.mark.usefixtures("three_subjects")
def test_concurrent_callers_get_one_complete_copy(tmp_path: Path) -> None:
    results: list[Path] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(synthetic_dataset(tmp_path, seed=4))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(results)) == 1
    assert synthetic.is_complete(results[0], 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == [results[0].name]


def test_bad_seed_is_an_error(tmp_path: Path) -> None:
    for seed in (-1, 1.5, "0", True):
        with pytest.raises(DataError, match="seed must be an integer"):
            synthetic_dataset(tmp_path, seed=seed)  # type: ignore[arg-type]
