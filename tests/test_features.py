"""fc7 feature cache: exact features, reuse, invalidation, checksums, concurrency and bad clips;
one entry per database shared by its selections; the face crop's part in the key and its counts
(interrupted and killed extractions: tests/test_resume.py).

The backbone is the real VGG-Face (random, seeded) but the data are tiny (6 clips of 3 PNG
frames, 1-2 frames used), since a forward pass costs ~0.3 s per frame on two CPU cores. The
backbone is built once for the module and handed to extraction through ``_load_backbone``.
Tests of the cache itself extract whole frames (``face_crop=False``); the face-crop tests say so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

import core.features.extract as extraction
from core.backbone.matconvnet import PortError
from core.backbone.network import dense_fc7
from core.backbone.spec import preprocess_input
from core.backbone.vggface import build_vggface
from core.constants import FEATURE_SHAPE, INPUT_SHAPE, RANDOM_INIT, RANDOM_SEED
from core.data.clips import DataError, FaceBoxes
from core.data.dataset import Dataset, load_dataset
from core.data.frames import prepare_frames, read_clip, read_frames
from core.features import FeatureSet, cache_key, changed, extract_features, faces, store
from core.features.skips import SHORT_NAMED, SkipWarnings

REPO = Path(__file__).resolve().parents[1]
SUBJECTS = {"train": "client001", "dev": "client002", "test": "client003"}


def write_clip(folder: Path, frames: int = 3, seed: int = 0, size: int = 40) -> Path:
    """A folder of ``frames`` PNG frames of seeded noise over a gradient."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, size, dtype=np.float32)[None, :, None]
    for i in range(frames):
        image = np.clip(ramp + rng.integers(0, 55, (size, size, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"frame{i:02d}.png"), image)
    return folder


def write_dataset(root: Path) -> Path:
    """train/dev/test x real/attack, one subject per split: 6 clips of 3 frames."""
    seed = 0
    for split, subject in SUBJECTS.items():
        for label in ("real", "attack"):
            write_clip(root / split / label / f"{subject}_{label}", seed=seed)
            seed += 1
    return root


@pytest.fixture(scope="module")
def backbone() -> keras.Model:
    """The random VGG-Face extraction builds (same seed), built once for the module."""
    keras.utils.set_random_seed(RANDOM_SEED)
    return build_vggface(include_top=False)


@pytest.fixture(scope="module")
def extractor(backbone) -> keras.Model:
    """What extraction runs: the same network with fc6/fc7 as Dense layers."""
    return dense_fc7(backbone)


@pytest.fixture
def model_calls(monkeypatch, extractor) -> list:
    """Hands the module's extractor to extraction and records each time one is asked for."""
    calls: list = []
    load_backbone = extraction._load_backbone

    def load(weights_path, precision="float32"):
        calls.append(weights_path)
        if weights_path is None and precision == "float32":
            return extractor, None
        return load_backbone(weights_path, precision)

    monkeypatch.setattr(extraction, "_load_backbone", load)
    monkeypatch.delenv("VGGFACE_WEIGHTS", raising=False)
    return calls


@pytest.fixture
def data(tmp_path) -> Path:
    return write_dataset(tmp_path / "data")


def extract(data: Path | Dataset, cache_dir: Path, **kwargs) -> FeatureSet:
    kwargs = {"frames_per_clip": 2, "progress": False, "face_crop": False, **kwargs}
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    return extract_features(dataset, cache_dir=cache_dir, **kwargs)


def assert_same_features(actual, expected) -> None:
    """Equal up to float32 summation order (fc6 sums 25,088 products, in another order when it
    runs as a matrix product, and batches differ): 1e-5 of the largest activation."""
    expected = np.asarray(expected)
    scale = float(np.abs(expected).max())
    assert scale > 0
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-4, atol=1e-5 * scale)


def direct_features(model, clip_path: Path, frames: int, average=None) -> np.ndarray:
    x = preprocess_input(prepare_frames(read_frames(clip_path, frames)), average)
    return np.asarray(model.predict(x, verbose=0)).reshape(frames, -1)


def test_features_equal_a_direct_forward_pass(data, tmp_path, model_calls, backbone):
    # batch_size 3 with 2 frames per clip: batches straddle clips
    fs = extract(data, tmp_path / "cache", batch_size=3)
    assert fs.extracted and model_calls == [None]
    assert fs.features.shape == (6, 2, 4096) and fs.features.dtype == np.float32
    assert isinstance(fs.features, np.memmap) and not fs.features.flags.writeable
    frames = np.concatenate([prepare_frames(read_frames(c.path, 2)) for c in fs.clips])
    expected = np.asarray(backbone.predict(preprocess_input(frames), verbose=0))
    assert_same_features(fs.features, expected.reshape(6, 2, 4096))
    assert float(np.abs(fs.features).sum()) > 0
    assert [fs.clips[i].split for i in fs.indices("dev")] == ["dev", "dev"]
    assert sorted(np.concatenate([fs.indices(s) for s in ("train", "dev", "test")])) == list(
        range(6)
    )
    assert fs.random_weights and fs.weights_fingerprint == "random:he_normal:0" and not fs.synthetic
    assert fs.frames_per_clip == 2 and not fs.face_crop and fs.skipped == []
    assert fs.detector is None and fs.no_face == {} and fs.face_crop_method == "none"
    assert fs.path == tmp_path / "cache" / "features" / fs.fingerprint

    manifest = json.loads((fs.path / "manifest.json").read_text())
    assert manifest["key"] == fs.fingerprint and manifest["shape"] == [6, 2, 4096]
    assert manifest["random_weights"] is True and manifest["synthetic"] is False
    first = manifest["clips"][0]
    assert set(first) == {
        "clip_id",
        "path",
        "subject",
        "label",
        "attack_type",
        "no_face",
        "database_boxes",
    }
    assert not Path(first["path"]).is_absolute()
    assert manifest["key_parts"]["layer"] == "fc7"
    assert not list(fs.path.parent.glob(".tmp-*"))


def test_second_call_reuses_the_cache_without_the_model(data, tmp_path, model_calls):
    first = extract(data, tmp_path / "cache")
    second = extract(data, tmp_path / "cache")
    assert first.extracted and not second.extracted
    assert model_calls == [None]  # the second call never asked for the backbone
    assert second.fingerprint == first.fingerprint and second.path == first.path
    np.testing.assert_array_equal(second.features, first.features)
    assert [c.clip_id for c in second.clips] == [c.clip_id for c in first.clips]


@pytest.mark.parametrize("change", ["frames_per_clip", "touch a frame", "add a clip"])
def test_a_change_gives_a_new_cache(data, tmp_path, model_calls, change):
    first = extract(data, tmp_path / "cache", frames_per_clip=1)
    kwargs = {"frames_per_clip": 1}
    if change == "frames_per_clip":
        kwargs["frames_per_clip"] = 2
    elif change == "touch a frame":
        frame = data / "dev" / "real" / "client002_real" / "frame01.png"
        stat = frame.stat()
        os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    else:
        write_clip(data / "train" / "attack" / "client001_extra", seed=9)
    second = extract(data, tmp_path / "cache", **kwargs)
    assert second.extracted and second.fingerprint != first.fingerprint
    assert len(model_calls) == 2
    assert first.path.is_dir() and second.path.is_dir()  # the first entry is still valid
    assert len(second.clips) == (7 if change == "add a clip" else 6)
    assert second.features.shape[1] == kwargs["frames_per_clip"]


def test_the_backbone_has_the_shapes_the_cache_assumes(backbone, extractor):
    assert tuple(backbone.input_shape[1:]) == INPUT_SHAPE
    assert tuple(backbone.output_shape[1:]) == FEATURE_SHAPE
    assert tuple(extractor.output_shape[1:]) == (FEATURE_SHAPE[-1],)


def test_bfloat16_extraction_is_cached_apart_and_close_to_float32(data, tmp_path, model_calls):
    """Mixed bfloat16 (float32 weights, bfloat16 compute) is another cache entry, stored as
    float32, with fc7 features within cosine 0.999 of float32's on real clips."""
    single = extract(data, tmp_path / "cache", frames_per_clip=1)
    half = extract(data, tmp_path / "cache", frames_per_clip=1, precision="bfloat16")
    assert half.extracted and half.fingerprint != single.fingerprint
    assert half.manifest["key_parts"]["precision"] == "bfloat16"
    assert half.features.dtype == np.float32
    a = np.asarray(single.features, np.float64).reshape(-1, 4096)
    b = np.asarray(half.features, np.float64).reshape(-1, 4096)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.min() >= 0.999
    assert not np.array_equal(a, b)  # it did compute in bfloat16
    with pytest.raises(DataError, match="precision"):
        extract(data, tmp_path / "cache", precision="float8")


def test_a_weights_files_features_under_jax_have_an_entry_of_their_own():
    """A JAX study given a weights file reused TensorFlow's features, so predict under JAX (the
    study's backend) differed from its scores.csv by a percent in bfloat16 (probe AA)."""
    weights, data = "sha256:" + "0" * 64, "d" * 64
    assert cache_key(weights, data, 7, backend="jax")[0] != cache_key(weights, data, 7)[0]
    assert cache_key(weights, data, 7, backend="tensorflow") == cache_key(weights, data, 7)
    drawn = "random:he_normal:0:jax"  # a random backbone's fingerprint names its backend
    assert cache_key(drawn, data, 7, backend="jax") == cache_key(drawn, data, 7)
    # an entry extracted under JAX into TensorFlow's key before: extracted again, and no
    # changed folder's new entry takes rows from it (review)
    made = {"device": "cpu: 2 x AMD EPYC, Keras on jax", "key_parts": {"weights": weights}}
    assert "KERAS_BACKEND=jax into TensorFlow's entry" in changed.foreign_backend(made)
    for fine in (
        {**made, "device": "cpu: 2 x AMD EPYC, Keras on tensorflow"},
        {**made, "key_parts": {"weights": weights, "backend": "jax"}},  # JAX's own
        {**made, "key_parts": {"weights": drawn}},
        {"key_parts": {"weights": weights}},  # no device recorded
    ):
        assert changed.foreign_backend(fine) is None


def test_a_changed_folder_takes_no_rows_from_another_backends_entry(tmp_path) -> None:
    """A folder that changed took its unchanged clips' rows from its earlier entry, one JAX had
    written under TensorFlow's key before the backend was a part of it (review)."""
    root, folder = tmp_path / "features", tmp_path / "data"
    folder.mkdir()
    weights = "sha256:" + "0" * 64
    old_key, old_parts = cache_key(weights, "old", 1)
    new_key, new_parts = cache_key(weights, "new", 1)
    dataset = types.SimpleNamespace(
        synthetic=False, root=folder, layout="x", signatures={"c1": "s", "c2": "t"}
    )

    def earlier(device: str) -> changed.Earlier | None:
        with store.PendingEntry(root, old_key, (1, 4)) as pending:
            pending.write(0, np.full((1, 4), 7, np.float32))
            manifest = {"key_parts": old_parts, "dataset_folder": str(folder.resolve())}
            manifest |= {"layout": "x", "signatures": {"c1": "s"}, "clips": [{"clip_id": "c1"}]}
            pending.commit({**manifest, "device": device}, rows=1)
        return changed.earlier_entry(root, new_key, new_parts, dataset)

    assert earlier("cpu: 1 x X, Keras on tensorflow").entry.name == old_key  # TensorFlow's own
    shutil.rmtree(root / old_key)
    assert earlier("cpu: 1 x X, Keras on jax") is None


def test_the_key_covers_every_setting():
    base = cache_key("random:0", "d" * 64, 7)[0]
    assert cache_key("random:0", "d" * 64, 7, precision="bfloat16")[0] != base
    assert cache_key("random:0", "d" * 64, 7, "haar")[0] != base  # face crop
    assert (
        cache_key("random:0", "d" * 64, 7, "mtcnn 1.0.0")[0]
        != cache_key("random:0", "d" * 64, 7, "haar")[0]
    )  # the detector
    assert (
        cache_key("random:0", "d" * 64, 7, "mtcnn 1.0.0")[0]
        != cache_key("random:0", "d" * 64, 7, "mtcnn 1.0.1")[0]
    )  # its version
    assert (
        cache_key("random:0", "d" * 64, 7, "haar", "b" * 64)[0]
        != cache_key("random:0", "d" * 64, 7, "haar")[0]
    )  # the database's box files
    assert cache_key("random:0", "d" * 64, 7, None, "b" * 64)[0] == base  # boxes unused
    assert cache_key("random:0", "d" * 64, 6)[0] != base
    assert cache_key("random:0", "e" * 64, 7)[0] != base
    assert cache_key("sha256:00", "d" * 64, 7)[0] != base
    assert cache_key("random:0", "d" * 64, 7, None)[0] == base


def test_weights_fingerprint_hashes_content_not_name(tmp_path):
    a, b, c = tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "c.bin"
    a.write_bytes(b"weights" * 1000)
    b.write_bytes(a.read_bytes())
    c.write_bytes(b"weightz" * 1000)
    assert extraction.weights_fingerprint(a) == extraction.weights_fingerprint(b)
    assert extraction.weights_fingerprint(a) != extraction.weights_fingerprint(c)
    os.utime(a, (0, 0))
    assert extraction.weights_fingerprint(a) == extraction.weights_fingerprint(b)
    assert extraction.weights_fingerprint(None) == "random:he_normal:0"  # under TensorFlow
    jax = subprocess.run(  # JAX draws other random weights: another fingerprint, cache entry
        [
            sys.executable,
            "-c",
            "from core.features import weights_fingerprint as w; print(w(None))",
        ],
        env=dict(os.environ, KERAS_BACKEND="jax"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert jax.stdout.strip() == "random:he_normal:0:jax"
    assert extraction.RANDOM_INIT == RANDOM_INIT  # a new initialiser is a new cache key
    with pytest.raises(PortError, match="no such file"):
        extraction.weights_fingerprint(tmp_path / "missing.weights.h5")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Iterator[Path]:
    """A converted VGG-Face weights file (~580 MB) with seeded random weights."""
    keras.utils.set_random_seed(1)
    path = tmp_path_factory.mktemp("weights") / "vgg.weights.h5"
    build_vggface(include_top=True).save_weights(path)
    yield path
    path.unlink()


def test_weights_file_is_used_and_keyed_by_content(data, tmp_path, model_calls, weights_file):
    random = extract(data, tmp_path / "cache", frames_per_clip=1)
    ported = extract(data, tmp_path / "cache", frames_per_clip=1, weights=weights_file)
    assert ported.extracted and not ported.random_weights
    assert ported.weights_fingerprint.startswith("sha256:")
    assert ported.fingerprint != random.fingerprint
    assert not np.allclose(ported.features, random.features)
    model = build_vggface(include_top=False, weights=weights_file)
    clip = ported.clips[0]
    assert_same_features(ported.features[0], direct_features(model, clip.path, 1))
    # the same bytes under another name, found at the default location: reused
    cache_dir = tmp_path / "cache"
    os.link(weights_file, cache_dir / extraction.WEIGHTS_FILE)
    again = extract(data, cache_dir, frames_per_clip=1)
    assert not again.extracted and not again.random_weights
    assert again.fingerprint == ported.fingerprint


def test_default_locations(monkeypatch, tmp_path):
    for name in ("VGGFACE_HEADS_CACHE", "XDG_CACHE_HOME", "VGGFACE_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert extraction.default_cache_dir() == tmp_path / "home" / ".cache" / "vggface-heads"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert extraction.default_cache_dir() == tmp_path / "xdg" / "vggface-heads"
    monkeypatch.setenv("VGGFACE_HEADS_CACHE", str(tmp_path / "mine"))
    assert extraction.default_cache_dir() == tmp_path / "mine"
    assert extraction.default_weights_path() == tmp_path / "mine" / "vgg_face.weights.h5"
    monkeypatch.setenv("VGGFACE_WEIGHTS", str(tmp_path / "w.mat"))
    assert extraction.default_weights_path() == tmp_path / "w.mat"
    # a variable that names no folder: one line naming it (probe FF: a folder " " made in the
    # working one; "<file>/features: Not a directory")
    for value, said in ((" ", "is ' ': name a folder"), (str(tmp_path / "w.mat"), "a file")):
        (tmp_path / "w.mat").write_text("")
        monkeypatch.setenv("VGGFACE_HEADS_CACHE", value)
        with pytest.raises(ValueError, match=f"VGGFACE_HEADS_CACHE.*{said}"):
            extraction.default_cache_dir()
    monkeypatch.setenv("VGGFACE_HEADS_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("VGGFACE_WEIGHTS", str(tmp_path))  # a folder: not "no such file"
    with pytest.raises(PortError, match=r"a folder, not a weights file \(\$VGGFACE_WEIGHTS\)"):
        extraction._resolve_weights(None, tmp_path / "mine")


def test_without_a_bar_extraction_says_how_far_it_is_in_plain_lines(
    data, tmp_path, model_calls, monkeypatch, capsys
):
    """Without a progress bar (--no-progress, a job's log) extraction said nothing until it
    ended: five minutes of silence in a user probe. A plain line now, at most once a minute
    (here at every clip)."""
    from core.features import pipeline

    monkeypatch.setattr(pipeline, "PLAIN_PROGRESS_SECONDS", 0.0)
    fs = extract(data, tmp_path / "cache")
    said = re.findall(
        r"^fc7 features: (\d+) of (\d+) clips, \d+\.\d\d frames/s$", capsys.readouterr().err, re.M
    )
    done = [int(n) for n, _ in said]
    assert (
        done == sorted(done)
        and done[-1] == len(fs.clips)
        and {t for _, t in said} == {str(len(fs.clips))}
    )


def test_random_weights_are_flagged_loudly_and_seeded(data, tmp_path, caplog, backbone):
    caplog.set_level(logging.WARNING, logger="core.features")
    model, average = extraction._load_backbone(None)  # seeded: the same as the module's backbone
    assert average is None
    x = np.random.default_rng(0).uniform(-120, 130, (2, 224, 224, 3)).astype(np.float32)
    expected = np.asarray(backbone.predict_on_batch(x)).reshape(2, 4096)
    assert_same_features(model.predict_on_batch(x), expected)
    assert float(np.abs(expected).max()) > 1
    del model
    fs = extract(data, tmp_path / "cache", frames_per_clip=1)
    assert fs.random_weights
    assert any("RANDOM backbone" in r.getMessage() for r in caplog.records)
    caplog.clear()  # once a process and cache folder: not again for each fold of a protocol
    extract(data, tmp_path / "cache", frames_per_clip=1)
    assert not any("RANDOM backbone" in r.getMessage() for r in caplog.records)
    extract(data, tmp_path / "other", frames_per_clip=1)
    assert any("RANDOM backbone" in r.getMessage() for r in caplog.records)


def test_missing_or_bad_weights_are_port_errors(data, tmp_path, monkeypatch):
    monkeypatch.delenv("VGGFACE_WEIGHTS", raising=False)
    with pytest.raises(PortError, match="no such weights file"):
        extract(data, tmp_path / "cache", weights=tmp_path / "nope.mat")
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(PortError, match="bad.weights.h5"):
        extract(data, tmp_path / "cache", weights=bad)
    root = tmp_path / "cache" / "features"
    assert not [p for p in root.iterdir() if not p.name.endswith(".lock")]
    monkeypatch.setenv("VGGFACE_WEIGHTS", str(tmp_path / "named.weights.h5"))
    with pytest.raises(PortError, match="VGGFACE_WEIGHTS"):
        extract(data, tmp_path / "cache")


def test_bad_clips_are_skipped_warned_by_name_and_counted(data, tmp_path, model_calls, caplog):
    corrupt = write_clip(data / "train" / "real" / "client001_corrupt", frames=2)
    for frame in corrupt.iterdir():
        frame.write_bytes(b"\x89PNG garbage")
    short = write_clip(data / "train" / "attack" / "client001_short", frames=1)
    (data / "notes.txt").write_text("not a clip")
    caplog.set_level(logging.WARNING)

    fs = extract(data, tmp_path / "cache")
    assert len(fs.clips) == 6 and fs.features.shape == (6, 2, 4096)
    skipped = {path: reason for path, reason in fs.skipped}
    assert set(skipped) == {corrupt, short, data / "notes.txt"}
    assert "needs 2" in skipped[short]
    decode_warnings = [r.getMessage() for r in caplog.records if r.name.startswith("core.features")]
    for path in (corrupt, short):
        assert sum(str(path) in m for m in decode_warnings) == 1
    manifest = json.loads((fs.path / "manifest.json").read_text())
    assert len(manifest["skipped"]) == 2

    caplog.clear()
    again = extract(data, tmp_path / "cache")  # reused: the skips are reported again
    assert not again.extracted and set(p for p, _ in again.skipped) == set(skipped)
    assert any(str(corrupt) in r.getMessage() for r in caplog.records)


def test_the_note_of_further_short_clips_comes_with_the_first_one_not_named(caplog):
    """Five clips too short were named, then "further clips ... skipped without a line each"
    followed of none (review): the note comes with the sixth."""
    for short, noted in ((SHORT_NAMED, 0), (SHORT_NAMED + 3, 1)):
        caplog.clear()
        say = SkipWarnings(logging.getLogger("core.features.pipeline"))
        for n in range(short):
            say(f"clip{n}", "has 3 frames, needs 7")
        say("broken", "cannot decode it")  # another reason: named, and not counted as short
        said = [r.getMessage() for r in caplog.records]
        assert sum(m.startswith("skipped clip") for m in said) == SHORT_NAMED + 1, said
        assert sum(m.startswith("further clips") for m in said) == noted, said


def test_no_usable_clip_is_a_data_error(data, tmp_path, model_calls, caplog):
    clips = {p.parent for p in data.rglob("*.png")}
    longest = max(len(list(clip.glob("*.png"))) for clip in clips)
    with pytest.raises(DataError) as short:  # the fix said, not only "see the warnings" (probe)
        extract(data, tmp_path / "cache", frames_per_clip=longest + 1)
    assert str(short.value).endswith(
        f": every clip has fewer frames than --frames {longest + 1} (at most {longest}), lower it"
    )
    # the first few named, then one line: not a warning for each of 160 clips (probe)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(clips) > SHORT_NAMED
    assert sum(m.startswith("skipped clip") for m in said) == SHORT_NAMED, said
    assert sum(m.startswith("further clips with fewer frames") for m in said) == 1, said
    for frame in data.rglob("*.png"):
        frame.write_bytes(b"garbage")
    with pytest.raises(DataError, match="no usable clip"):
        extract(data, tmp_path / "cache")


def test_a_split_left_without_a_class_is_named(data, tmp_path, model_calls):
    for frame in (data / "dev" / "real").rglob("*.png"):
        frame.write_bytes(b"garbage")
    with pytest.raises(DataError, match="split 'dev' has no usable bonafide"):
        extract(data, tmp_path / "cache")


DAMAGES = [
    "truncate npy",
    "pad npy",
    "empty npy",
    "garbage npy",
    "garbage manifest",
    "other key",
    "no manifest",
]


def damage_entry(folder: Path, damage: str) -> None:
    npy, manifest = folder / "features.npy", folder / "manifest.json"
    if damage == "truncate npy":
        os.truncate(npy, npy.stat().st_size - 4096)
    elif damage == "pad npy":
        with open(npy, "ab") as out:
            out.write(b"\0" * 16)
    elif damage == "empty npy":
        npy.write_bytes(b"")
    elif damage == "garbage npy":  # no .npy magic: NumPy would read it as a pickle
        npy.write_bytes(b"\x80\x04garbage" * 100)
    elif damage == "garbage manifest":
        manifest.write_text('{"format": 1, "key": ')
    elif damage == "other key":
        record = json.loads(manifest.read_text())
        record["key"] = "0" * 32
        manifest.write_text(json.dumps(record))
    else:
        manifest.unlink()


def test_a_damaged_entry_is_refused_and_rebuilt(data, tmp_path, model_calls):
    good = extract(data, tmp_path / "cache", frames_per_clip=1)
    expected = np.array(good.features)
    root, key = good.path.parent, good.path.name
    for n, damage in enumerate(DAMAGES):
        copy = tmp_path / f"copy-{n}"  # the entry under its own key in another store
        shutil.copytree(good.path, copy / key)
        store.load_entry(copy, key)
        damage_entry(copy / key, damage)
        with pytest.raises(store.CacheEntryInvalid) as refused:
            store.load_entry(copy, key)
        assert "allow_pickle" not in str(refused.value), damage  # never invite unsafe loading
    del good
    damage_entry(root / key, "truncate npy")
    rebuilt = extract(data, tmp_path / "cache", frames_per_clip=1)
    assert rebuilt.extracted and len(model_calls) == 2
    assert_same_features(rebuilt.features, expected)
    assert not list(root.glob(".t*"))  # no temp or trash folders left


def test_a_clip_the_system_would_not_read_is_extracted_once_it_can_be(
    data, tmp_path, model_calls, caplog
):
    """A clip skipped because it could not be read (a chmod 000, run without the override a
    root test run has: ``setpriv`` drops it) stayed skipped, for its old reason, once it could
    be read, and in every ``cp -p`` copy of the data, which shares the entry (probe)."""
    setpriv = shutil.which("setpriv")
    assert setpriv, "needs util-linux's setpriv (Debian's util-linux package)"
    locked = write_clip(data / "train" / "real" / "client001_more", seed=9) / "frame00.png"
    cache = tmp_path / "cache"
    script = (
        "from core.data.dataset import load_dataset\n"
        "from core.features import extract_features\n"
        f"fs = extract_features(load_dataset({str(data)!r}), cache_dir={str(cache)!r}, "
        "frames_per_clip=2, progress=False, face_crop=False)\n"
        "print(len(fs.clips), *(why for _, why in fs.skipped), sep=' | ')\n"
    )
    drop = "-dac_override,-dac_read_search"
    locked.chmod(0)
    try:
        done = subprocess.run(
            [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", sys.executable, "-c", script],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={k: v for k, v in os.environ.items() if k != "VGGFACE_WEIGHTS"},
        )
    finally:
        locked.chmod(0o644)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"6 | {locked}: cannot read this image (Permission denied)"]
    caplog.set_level(logging.WARNING)
    again = extract(data, cache)
    assert again.extracted and len(again.clips) == 7 and not again.skipped
    said = [r.getMessage() for r in caplog.records]
    assert any(f"{locked.parent} could not be read when it was extracted (" in m for m in said)
    assert not extract(data, cache).extracted  # and the new entry is reused


def test_features_the_disk_cannot_hold_are_refused_before_anything_is_made(
    data, tmp_path, model_calls
):
    """A huge --frames made a sparse array of 442 GB, or failed with "Invalid argument" or a
    traceback, each time leaving a pending folder behind (probe)."""
    cache = tmp_path / "cache"
    for frames in (2**31, 2**63):
        with pytest.raises(DataError) as refused:
            extract(data, cache, frames_per_clip=frames)
        said = str(refused.value)
        assert said.startswith(f"{cache / 'features'}: 6 clips x {frames} frames need ")
        assert said.endswith(
            "GB free: lower --frames, free some room, or give --cache-dir on a larger disk"
        )
    made = [p.name for p in (cache / "features").iterdir() if p.suffix != ".lock"]
    assert model_calls == [] and made == []  # no pending folder: nothing to resume
    # a resumed extraction needs only what its rows have not taken yet: a disk with less free
    # than the whole array, but room for the rest, is enough (review)
    array = tmp_path / "pending" / "features.npy"
    array.parent.mkdir()
    rows = np.lib.format.open_memmap(array, mode="w+", dtype=np.float32, shape=(4, 2, 4096))
    rows[:3] = 1.0  # three of four clips written: 96 KiB taken, 32 KiB to go
    rows.flush()
    del rows
    disk = shutil.disk_usage(tmp_path)
    room = disk._replace(free=64 * 1024)
    with pytest.MonkeyPatch.context() as patch:  # a disk this small cannot be made in a test
        patch.setattr(store.shutil, "disk_usage", lambda _: room)
        store._check_room(tmp_path, array, (4, 2, 4096))  # 32 KiB to go: room
        with pytest.raises(DataError, match="need 131 kB, and its disk has 66 kB free"):
            store._check_room(tmp_path, tmp_path / "none.npy", (4, 2, 4096))  # 128 KiB


class Counting:
    """The extractor as extraction calls it, counting the frames it computes."""

    def __init__(self, model) -> None:
        self.model, self.frames = model, 0

    def predict_on_batch(self, x):
        self.frames += len(x)
        return self.model.predict_on_batch(x)


def test_a_same_size_change_fails_the_checksum_is_warned_once_and_rebuilt(
    data, tmp_path, monkeypatch, extractor, caplog
):
    counted = Counting(extractor)
    monkeypatch.setattr(extraction, "_load_backbone", lambda *args: (counted, None))
    monkeypatch.delenv("VGGFACE_WEIGHTS", raising=False)
    good = extract(data, tmp_path / "cache", frames_per_clip=1)
    expected = np.array(good.features)
    npy = good.path / "features.npy"
    assert good.manifest["checksum"] == f"sha256:{hashlib.sha256(npy.read_bytes()).hexdigest()}"
    assert counted.frames == 6
    size, offset = npy.stat().st_size, good.entry.offset
    del good
    with open(npy, "r+b") as out:  # random bytes over part of clip 2's row, in place
        out.seek(offset + 2 * 4096 * 4 + 100)
        out.write(np.random.default_rng(1).bytes(256))
    # a real change comes later than the check that trusted the file: on this fast path it may
    # fall in the same tick of the kernel's file clock, so move mtime on as time would
    stat = npy.stat()
    os.utime(npy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert npy.stat().st_size == size
    with pytest.raises(store.CacheEntryInvalid, match="checksum"):
        store.load_entry(npy.parent.parent, npy.parent.name)

    caplog.set_level(logging.WARNING, logger="core.features")
    rebuilt = extract(data, tmp_path / "cache", frames_per_clip=1)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    about = [m for m in said if "cache entry" in m]
    assert len(about) == 1, said
    assert about[0].startswith(f"not using cache entry {npy.parent}: ")
    assert "checksum" in about[0]  # "rebuilding it" was said where a replay rebuilt nothing
    assert rebuilt.extracted and counted.frames == 12  # the backbone ran again
    np.testing.assert_array_equal(rebuilt.features, expected)
    again = extract(data, tmp_path / "cache", frames_per_clip=1)
    assert not again.extracted and counted.frames == 12
    # a manifest edited by hand: said in words (it was "'skipped'", a KeyError's text); one
    # written before manifests had a digest, whose edit only its fields can tell
    manifest = again.path / "manifest.json"
    fields = json.loads(manifest.read_text())
    del fields["skipped"], fields[store.MANIFEST_DIGEST]
    manifest.write_text(json.dumps(fields))
    caplog.clear()
    assert extract(data, tmp_path / "cache", frames_per_clip=1).extracted
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said == [f"not using cache entry {again.path}: its manifest has no 'skipped' field"]


def test_clips_swapped_in_a_manifest_by_hand_are_refused_and_extracted_again(
    data, tmp_path, monkeypatch, extractor, caplog
):
    """Two clips' places swapped in a manifest, the JSON valid: the rows were read as the other
    clip's, and a study's figures changed without a word (probe Y: dev ACER 0 % -> 50 %)."""
    monkeypatch.setattr(extraction, "_load_backbone", lambda *args: (extractor, None))
    monkeypatch.delenv("VGGFACE_WEIGHTS", raising=False)
    good = extract(data, tmp_path / "cache", frames_per_clip=1)
    by_clip = {c.clip_id: np.array(row) for c, row in zip(good.clips, good.features, strict=True)}
    manifest = good.path / "manifest.json"
    fields = json.loads(manifest.read_text())
    clips = fields["clips"]
    clips[0], clips[-1] = clips[-1], clips[0]
    manifest.write_text(json.dumps(fields, indent=1))
    with pytest.raises(store.CacheEntryInvalid, match="changed after it was written"):
        store.load_entry(good.path.parent, good.path.name)
    caplog.set_level(logging.WARNING, logger="core.features")
    rebuilt = extract(data, tmp_path / "cache", frames_per_clip=1)
    assert rebuilt.extracted and any("manifest_sha256" in m for m in caplog.messages)
    for clip, row in zip(rebuilt.clips, rebuilt.features, strict=True):  # each its own again
        np.testing.assert_array_equal(row, by_clip[clip.clip_id])


def test_a_manifest_with_a_folder_name_that_is_not_utf8_commits_and_loads(tmp_path) -> None:
    """A data folder named in another encoding reaches Python with a lone surrogate: the
    manifest's digest failed to encode it, after the whole extraction (review)."""
    folder = os.fsdecode(b"/data/donn\xe9es")
    with store.PendingEntry(tmp_path, "k", (1, 4)) as pending:
        pending.write(0, np.ones((1, 4), dtype=np.float32))
        pending.commit({"dataset_root": folder, "nan": math.nan, "label": "données"}, rows=1)
    _, manifest = store.load_entry(tmp_path, "k")
    assert manifest["dataset_root"] == folder and math.isnan(manifest["nan"])


def test_a_file_is_hashed_once_per_process_until_it_changes(tmp_path, monkeypatch, caplog):
    digests: list[str] = []
    file_digest = hashlib.file_digest

    def counting(data, name):
        digests.append(os.path.basename(data.name))
        return file_digest(data, name)

    monkeypatch.setattr(hashlib, "file_digest", counting)
    with store.PendingEntry(tmp_path, "k", (3, 4)) as pending:
        pending.write(0, np.arange(12, dtype=np.float32).reshape(3, 4))
        pending.commit({}, rows=3)
    assert digests == ["features.npy"]  # the commit's own checksum
    for _ in range(3):
        store.load_entry(tmp_path, "k")
    assert len(digests) == 1  # this process wrote it: trusted
    array, _ = store.load_entry(tmp_path, "k", verify=False)
    np.testing.assert_array_equal(array, np.arange(12).reshape(3, 4))

    npy = tmp_path / "k" / "features.npy"
    with open(npy, "r+b") as out:
        out.seek(-4, os.SEEK_END)
        out.write(np.float32(7).tobytes())
    stat = npy.stat()
    os.utime(npy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    for _ in range(2):
        with pytest.raises(store.CacheEntryInvalid, match="does not match"):
            store.load_entry(tmp_path, "k")
    assert len(digests) == 2  # read once more after the change, its verdict then kept

    manifest_path = tmp_path / "k" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    # an entry written before checksums (and manifest digests): used, unverified, said once
    del manifest["checksum"], manifest[store.MANIFEST_DIGEST]
    manifest_path.write_text(json.dumps(manifest))
    caplog.set_level(logging.INFO, logger="core.features.store")
    for _ in range(2):
        store.load_entry(tmp_path, "k")
    assert len(digests) == 2
    assert sum("no checksum" in r.getMessage() for r in caplog.records) == 1


def run_python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("VGGFACE_WEIGHTS", None)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


CONCURRENT_WRITER = """
    import json, sys
    import numpy as np
    from core.data.dataset import Dataset, load_dataset
    from core.features import extract_features

    fs = extract_features(load_dataset(sys.argv[1]), cache_dir=sys.argv[2], frames_per_clip=1,
                          face_crop=False, progress=False)
    print(json.dumps({"extracted": fs.extracted, "key": fs.fingerprint,
                      "sum": float(np.asarray(fs.features, dtype=np.float64).sum())}))
"""


def test_concurrent_writers_end_with_one_valid_entry(data, tmp_path):
    children = [run_python(CONCURRENT_WRITER, str(data), str(tmp_path / "cache")) for _ in "ab"]
    results = []
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["extracted"] for r in results) == [False, True]
    assert results[0]["key"] == results[1]["key"] and results[0]["sum"] == results[1]["sum"]
    root = tmp_path / "cache" / "features"
    assert [p.name for p in root.iterdir() if not p.name.endswith(".lock")] == [results[0]["key"]]
    array, manifest = store.load_entry(root, results[0]["key"])
    assert array.shape == (6, 1, 4096) and len(manifest["clips"]) == 6


def test_the_lock_makes_a_second_writer_wait(tmp_path, caplog):
    """And says so: a worker waiting for another's hours of extraction printed nothing."""
    order: list[str] = []
    held = threading.Event()

    def first():
        with store.locked(tmp_path, "k"):
            held.set()
            time.sleep(0.3)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait()
    with store.locked(tmp_path, "k"):  # another open file description: flock blocks here
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]
    said = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 1 and said[0].getMessage() == (
        f"another process is writing cache entry {tmp_path / 'k'} (extracting it): waiting for "
        "it, then using what it wrote"
    )


def test_pending_entry_shrinks_to_the_rows_written(tmp_path):
    with store.PendingEntry(tmp_path, "k", (5, 2, 3)) as pending:
        pending.write(0, np.arange(12, dtype=np.float32).reshape(4, 3) + 1)
        pending.commit({"note": "x"}, rows=2)
    array, manifest = store.load_entry(tmp_path, "k")
    assert array.shape == (2, 2, 3) and manifest["note"] == "x"
    np.testing.assert_array_equal(array.reshape(4, 3), np.arange(12).reshape(4, 3) + 1)
    with pytest.raises(FileNotFoundError):
        store.load_entry(tmp_path, "other")
    with store.PendingEntry(tmp_path, "j", (1, 3)) as pending, pytest.raises(ValueError):
        pending.write(1, np.zeros((1, 3), np.float32))
    assert not list(tmp_path.glob(".tmp-*"))


# --- one entry per database, face crop --------------------------------------------------------


def write_flat_dataset(root: Path, subjects: int = 6) -> Path:
    """real/ and attack/ without split folders: the split comes from the seed."""
    for n in range(1, subjects + 1):
        write_clip(root / "real" / f"client{n:03d}_real", seed=2 * n)
        write_clip(root / "attack" / f"client{n:03d}_print", seed=2 * n + 1)
    return root


def test_selections_of_one_database_share_one_extraction(tmp_path, model_calls):
    data = write_flat_dataset(tmp_path / "flat")
    one, other = load_dataset(data, seed=0), load_dataset(data, seed=1)
    assert [c.split for c in one.clips] != [c.split for c in other.clips]
    first = extract(one, tmp_path / "cache", frames_per_clip=1)
    second = extract(other, tmp_path / "cache", frames_per_clip=1)
    keep = [c for c in one.clips if c.split in ("train", "dev")]
    third = extract(one.subset(keep), tmp_path / "cache", frames_per_clip=1)
    assert model_calls == [None]  # one extraction for three selections
    assert first.extracted and not second.extracted and not third.extracted
    assert first.path == second.path == third.path
    assert first.content_fingerprint == third.content_fingerprint
    assert first.dataset_fingerprint != second.dataset_fingerprint
    assert [c.split for c in second.clips] == [c.split for c in other.clips]
    assert len(third.clips) == len(keep) and not len(third.indices("test"))

    # each clip reads its own row, whatever the selection
    by_id = {c.clip_id: i for i, c in enumerate(first.clips)}
    for fs in (second, third):
        assert isinstance(fs.entry, np.memmap) and fs.entry.shape == (12, 1, 4096)
        for i, clip in enumerate(fs.clips):
            np.testing.assert_array_equal(fs.features[i], first.features[by_id[clip.clip_id]])
        dev = fs.indices("dev")
        np.testing.assert_array_equal(fs.clip_features(dev), fs.features[dev])
    assert isinstance(first.features, np.memmap)  # the whole database: the map itself
    np.testing.assert_array_equal(third.features, third.entry[third.rows])
    assert third.features.shape == (len(keep), 1, 4096)


def test_the_default_face_crop_is_on_for_user_data_and_off_for_the_synthetic_set(
    data, tmp_path, model_calls
):
    dataset = load_dataset(data)
    user = extract(dataset, tmp_path / "cache", frames_per_clip=1, face_crop=None, detector="haar")
    assert user.face_crop and user.detector == "haar" and user.face_crop_method == "haar"
    assert user.manifest["key_parts"]["detector"] == "haar"
    demo = extract(
        dataclasses.replace(dataset, synthetic=True),
        tmp_path / "cache",
        frames_per_clip=1,
        face_crop=None,
    )
    assert not demo.face_crop and demo.detector is None and demo.fingerprint != user.fingerprint


def test_frames_without_a_face_are_counted_per_clip_and_species(data, tmp_path, model_calls):
    fs = extract(data, tmp_path / "cache", face_crop=True, detector="haar")  # noise: no face
    assert fs.no_face == {c.clip_id: 2 for c in fs.clips}
    records = {r["clip_id"]: r["no_face"] for r in fs.manifest["clips"]}
    assert records == fs.no_face and fs.manifest["no_face_frames"] == 12
    by_species = fs.no_face_by_species()
    assert list(by_species)[0] == "bonafide"
    assert sum(c.frames for c in by_species.values()) == 12
    assert all(c.missed == c.frames and c.rate == 1.0 for c in by_species.values())
    assert "frames without a face: bonafide 6/6 (100.0%)" in fs.face_summary()
    assert fs.face_warning() == (  # said loudly: the study would train on centre squares
        "warning: no face found in 12 of 12 frames (100%): they are centre squares, not faces, "
        "and predict.py refuses clips without one; check --face-detector, or pass "
        "--no-face-crop if the frames are faces already"
    )
    again = extract(data, tmp_path / "cache", face_crop=True, detector="haar")
    assert not again.extracted and again.no_face == fs.no_face
    some = dataclasses.replace(fs, no_face={c.clip_id: 1 for c in fs.clips[:5]})  # 5 of 12
    assert some.face_warning() is None
    # one clip without any face, below the rate warned of: named, as the figures count it
    # and predict refuses it (a sweep said only its species' rate: probe)
    one = dataclasses.replace(fs, no_face={fs.clips[0].clip_id: 2})  # 2 of 12 frames
    assert one.face_warning() == (
        f"warning: no face found in any frame of 1 of 6 clips ({fs.clips[0].clip_id}): the "
        "figures score their centre squares, and predict.py refuses such a clip"
    )
    # a face in one frame of each clip: the others take its box, not their centre squares
    assert dataclasses.replace(fs, no_face={c.clip_id: 1 for c in fs.clips}).face_warning() == (
        "warning: no face found in 6 of 12 frames (50%): every clip has a face in one frame at "
        "least, whose box the others take, and predict.py refuses clips without one; check "
        "--face-detector, or pass --no-face-crop if the frames are faces already"
    )
    # above the rate, the clips without any face are named as below it (probe Y: none were)
    ids = [c.clip_id for c in fs.clips]
    mixed = dataclasses.replace(fs, no_face={**dict.fromkeys(ids[:4], 2), ids[4]: 1})
    assert mixed.face_warning() == (
        "warning: no face found in 9 of 12 frames (75%): 8 of them, in the 4 clips without any "
        f"face ({', '.join(ids[:3])}, ...), are centre squares, the other 1 take their clip's "
        "nearest face, and predict.py refuses clips without one; check --face-detector, or pass "
        "--no-face-crop if the frames are faces already"
    )
    whole = dataclasses.replace(fs, no_face=dict.fromkeys(ids[:4], 2))  # 8 of 12, whole clips
    assert f"are centre squares, not faces, in the 4 clips without any face ({ids[0]}, " in (
        whole.face_warning() or ""
    )


@pytest.mark.skipif(faces.keras_backend() != "tensorflow", reason="MTCNN runs on TensorFlow")
def test_the_detector_changes_the_key(data, tmp_path, model_calls):
    haar = extract(data, tmp_path / "cache", frames_per_clip=1, face_crop=True, detector="haar")
    mtcnn = extract(data, tmp_path / "cache", frames_per_clip=1, face_crop=True, detector="mtcnn")
    assert haar.extracted and mtcnn.extracted and haar.fingerprint != mtcnn.fingerprint
    assert mtcnn.detector == "mtcnn" and mtcnn.manifest["detector"].startswith("mtcnn ")
    auto = extract(data, tmp_path / "cache", frames_per_clip=1, face_crop=True)
    assert not auto.extracted and auto.fingerprint == mtcnn.fingerprint  # auto is MTCNN here


def with_face_boxes(dataset: Dataset, clip_id: str, box_file: Path) -> Dataset:
    """The dataset with ``box_file`` as the boxes its database ships for one clip."""

    def give(clips):
        return [
            dataclasses.replace(c, face_boxes=FaceBoxes(box_file, "xywh"))
            if c.clip_id == clip_id
            else c
            for c in clips
        ]

    return dataclasses.replace(
        dataset, clips=give(dataset.clips), source_clips=give(dataset.source_clips)
    )


def test_database_boxes_are_used_instead_of_detecting(data, tmp_path, model_calls, backbone):
    dataset = load_dataset(data)
    clip = dataset.clips[0]
    box_file = tmp_path / "boxes" / "clip.face"  # Replay-Attack: frame x y width height
    box_file.parent.mkdir()
    box_file.write_text("0 4 6 20 18\n1 0 0 0 0\n2 0 0 0 0\n")  # no face in frames 1 and 2
    boxed = with_face_boxes(dataset, clip.clip_id, box_file)

    fs = extract(boxed, tmp_path / "cache", face_crop=True, detector="haar")
    assert fs.database_boxes == 1 and fs.face_crop_method == "database boxes + haar"
    assert fs.no_face[clip.clip_id] == 1  # frames 0 and 2 are read; 2 has no box
    raw, indices = read_clip(clip.path, 2)
    assert indices == [0, 2]
    cropped = prepare_frames(raw, [(4, 6, 20, 18), None])  # frame 2 cropped like frame 0
    expected = np.asarray(backbone.predict(preprocess_input(cropped), verbose=0))
    assert_same_features(fs.features[0], expected.reshape(2, 4096))
    detected = prepare_frames(raw, [None, None])  # what Haar gives this noise: the centre
    assert not np.array_equal(cropped, detected)

    ignored = extract(
        boxed, tmp_path / "cache", face_crop=True, detector="haar", database_boxes=False
    )
    assert ignored.fingerprint != fs.fingerprint and ignored.database_boxes == 0
    assert ignored.no_face[clip.clip_id] == 2
    stat = box_file.stat()  # an edited box file is a new entry
    os.utime(box_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    edited = extract(boxed, tmp_path / "cache", face_crop=True, detector="haar")
    assert edited.extracted and edited.fingerprint != fs.fingerprint


def test_boxes_that_miss_the_face_are_set_aside_counted_and_recorded(
    data, tmp_path, model_calls, backbone, caplog
):
    """MSU-MFSD's and Replay-Mobile's boxes are checked against the detector: a clip whose boxes
    are drawn for upside-down frames is cropped with the detector, counted, recorded and said."""
    from tests.test_faces import corners_file, face_in_a_corner, upside_down

    frame, haar = face_in_a_corner()
    dataset = load_dataset(data)
    good, bad = dataset.clips[0], dataset.clips[1]
    for clip in (good, bad):  # their frames become the face: 3 frames, frames 0 and 2 read
        for i in range(3):
            cv2.imwrite(
                str(clip.path / f"frame{i:02d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            )
    flipped = upside_down(haar, frame.shape[0])
    files = {
        good.clip_id: corners_file(tmp_path / "good.face", [(i, haar) for i in range(3)]),
        bad.clip_id: corners_file(tmp_path / "bad.face", [(i, flipped) for i in range(3)]),
    }

    def boxed(verify: bool) -> Dataset:
        def give(clips):
            return [
                dataclasses.replace(c, face_boxes=FaceBoxes(files[c.clip_id], "corners", verify))
                if c.clip_id in files
                else c
                for c in clips
            ]

        return dataclasses.replace(
            dataset, clips=give(dataset.clips), source_clips=give(dataset.source_clips)
        )

    caplog.set_level(logging.WARNING, logger="core.features")
    fs = extract(boxed(True), tmp_path / "cache", face_crop=True, detector="haar")
    assert (fs.database_boxes, fs.boxes_set_aside) == (1, 1)
    assert "database boxes set aside on 1 clip (they miss the face haar" in fs.face_summary()
    # the clips without boxes (a database's missing box file) are counted, not only named
    assert fs.face_summary().startswith("face crop: database boxes on 1 of 6 clips, haar on the")
    records = {r["clip_id"]: r for r in fs.manifest["clips"]}
    assert records[bad.clip_id]["boxes_set_aside"] == (
        f"frame 0: the database's box {flipped}, haar's {haar}"
    )
    assert "boxes_set_aside" not in records[good.clip_id]
    (warning,) = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert "on 1 of 6 clips" in warning and bad.clip_id in warning
    # both clips cropped to the face: one by its boxes, one by the detector, the same frames
    expected = backbone.predict(
        preprocess_input(prepare_frames(np.stack([frame] * 2), [haar] * 2)), verbose=0
    )
    for clip in (good, bad):
        row = fs.clips.index(next(c for c in fs.clips if c.clip_id == clip.clip_id))
        assert_same_features(fs.features[row], np.asarray(expected).reshape(2, 4096))
    again = extract(boxed(True), tmp_path / "cache", face_crop=True, detector="haar")
    assert not again.extracted and (again.database_boxes, again.boxes_set_aside) == (1, 1)
    trusted = extract(boxed(False), tmp_path / "cache", face_crop=True, detector="haar")
    assert trusted.extracted and trusted.fingerprint != fs.fingerprint
    assert (trusted.database_boxes, trusted.boxes_set_aside) == (2, 0)


def test_a_malformed_box_file_has_its_clip_cropped_by_the_detector(data, tmp_path, model_calls):
    """The clip had been skipped, and a database that lost its one bona fide test clip so was
    refused (probe): its boxes are set aside, as boxes that miss the face are, saying why."""
    dataset = load_dataset(data)
    clip = next(c for c in dataset.clips if c.split == "train" and c.label == "attack")
    write_clip(data / "train" / "attack" / "client001_extra", seed=7)  # the split keeps one
    dataset = load_dataset(data)
    bad = tmp_path / "bad.face"
    bad.write_text("0 1 2 three 4\n")
    boxed = with_face_boxes(dataset, clip.clip_id, bad)
    real = faces.FaceFinder.boxes

    def as_earlier_versions(finder, clip, frames, indices):  # the clip skipped
        if finder.shipped and clip.face_boxes is not None:
            faces.read_box_file(clip.face_boxes.path, clip.face_boxes.format)
        return real(finder, clip, frames, indices)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(faces.FaceFinder, "boxes", as_earlier_versions)
        earlier = extract(boxed, tmp_path / "cache", face_crop=True, detector="haar")
    assert [path for path, _ in earlier.skipped] == [clip.path]
    # its entry is not reused: the same key would hold other clips on another machine (review)
    fs = extract(boxed, tmp_path / "cache", face_crop=True, detector="haar")
    assert fs.extracted and fs.fingerprint == earlier.fingerprint
    assert not fs.skipped and clip.clip_id in [c.clip_id for c in fs.clips]
    assert (fs.database_boxes, fs.boxes_set_aside) == (0, 1)
    records = {r["clip_id"]: r for r in fs.manifest["clips"]}
    said = f"{bad}: line 1 is not 'frame and 4 numbers': '0 1 2 three 4'"
    assert records[clip.clip_id]["boxes_set_aside"] == said
    assert "database boxes set aside on 1 clip (they miss the face haar finds, or do not read)" in (
        fs.face_summary()
    )


REUSE_WITH_CROP = """
    import json, sys
    from core.data.dataset import load_dataset
    from core.features import extract_features

    fs = extract_features(load_dataset(sys.argv[1]), cache_dir=sys.argv[2], frames_per_clip=1,
                          detector="haar", progress=False)
    heavy = [m for m in ("keras", "tensorflow", "mtcnn") if m in sys.modules]
    print(json.dumps({"extracted": fs.extracted, "crop": fs.face_crop, "heavy": heavy}))
"""


def test_reusing_a_cropped_entry_imports_no_keras(data, tmp_path, model_calls):
    extract(data, tmp_path / "cache", frames_per_clip=1, face_crop=None, detector="haar")
    child = run_python(REUSE_WITH_CROP, str(data), str(tmp_path / "cache"))
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err[-2000:]
    assert json.loads(out.strip().splitlines()[-1]) == {
        "extracted": False,
        "crop": True,
        "heavy": [],
    }


def test_auto_precision_is_bfloat16_only_where_the_hardware_has_it():
    from core.device import current_device, keras_backend
    from core.features.request import resolve_precision

    for explicit in ("float32", "bfloat16", "float16"):
        assert resolve_precision(explicit) == explicit
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
    tensorflow = keras_backend() == "tensorflow"  # JAX's CPU kernels: no faster in bfloat16
    native = (
        bool({"amx_bf16", "avx512_bf16"} & flags) and tensorflow or current_device().accelerator
    )
    assert resolve_precision("auto") == ("bfloat16" if native else "float32")


def test_clips_without_their_databases_box_file_are_named_with_where_it_is_read(
    tmp_path, model_calls
):
    """Replay-Attack's face-locations ship as an archive of their own: unpacked beside the
    database rather than in it, every clip was cropped by the detector and nothing said where
    the boxes were looked for; one missing file was counted, not named (probe)."""
    from tests.test_predict import boxed_replay_tree

    root = tmp_path / "replay"
    clips = boxed_replay_tree(root)
    missing = root / "face-locations" / clips[0].relative_to(root).with_suffix(".face")
    missing.unlink()
    fs = extract(root, tmp_path / "cache", frames_per_clip=3, face_crop=True, detector="haar")
    clip_id = clips[0].relative_to(root).with_suffix("").as_posix()
    said = (
        f"; no box file for 1 of 6 clips ({clip_id}): {root}/face-locations/<the clip's path>.face"
    )
    assert said in fs.face_summary()
    shutil.move(root / "face-locations", tmp_path / "face-locations")  # unpacked beside it
    fs = extract(root, tmp_path / "cache", frames_per_clip=3, face_crop=True, detector="haar")
    assert fs.face_summary().startswith("face crop: haar; no box file for 6 of 6 clips (")
    assert f", ...): {root}/face-locations/<the clip's path>.face (Idiap" in fs.face_summary()
    off = extract(
        root,
        tmp_path / "cache",
        frames_per_clip=3,
        face_crop=True,
        detector="haar",
        database_boxes=False,
    )
    assert "no box file" not in off.face_summary()  # not looked for: nothing to say
