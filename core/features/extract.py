"""fc7 features of every clip of a database, extracted once and cached on disk (SPEC §5).

With a frozen backbone every head trains on the same fc7 features, so
:func:`extract_features` runs VGG-Face once per (weights, database, frame settings) and stores
the result as a memory-mapped ``.npy`` plus a JSON manifest; later calls reuse it in well under a
second (plus Python's imports).

One entry covers the whole database, not one protocol's selection: every clip the layout found
(``Dataset.source_clips``) is extracted, and the returned :class:`FeatureSet` holds the clips the
protocol chose (``Dataset.clips``, with their splits) as rows of that one entry. Every protocol,
fold and split seed of a database therefore reuses one extraction.

Where things live:

* cache folder, :func:`default_cache_dir`: ``$VGGFACE_HEADS_CACHE``, else
  ``$XDG_CACHE_HOME/vggface-heads``, else ``~/.cache/vggface-heads``. Entries are
  ``<cache>/features/<key>/{features.npy,manifest.json}`` (see :mod:`core.features.store`).
* default weights, :func:`default_weights_path`: ``$VGGFACE_WEIGHTS``, else
  ``<cache>/vgg_face.weights.h5`` (write it once with
  ``python -m core.port vgg_face.mat --out <cache>/vgg_face.weights.h5``). With no weights file
  the backbone is random (seeded, so its features are reproducible), a loud warning is logged and
  ``FeatureSet.random_weights`` is True so every result can be marked as meaningless.

Face crop (:mod:`core.features.faces`): on by default for a user's data (VGG-Face was trained on
face crops; a whole 4:3 frame squashed to 224x224 teaches the background), off by default for the
synthetic demonstration set (its faces are drawn, and its attacks carry their evidence in the
whole frame: paper border, screen bezel). Boxes come from the database's own files where a clip
has one, else from the detector (``auto``: MTCNN, else OpenCV's Haar cascade). Frames where no
face is found are counted per clip (``FeatureSet.no_face``, the manifest) and cropped like the
nearest frame of their clip that has one (:func:`core.data.frames.prepare_frames`).

The cache key hashes the weights file's content (not its name or date), the database's content
fingerprint (its clips' ids and file stamps, not their splits), ``frames_per_clip``, the face
crop (detector and its version, and the stamps of the database's box files),
:data:`PREPROCESSING_VERSION`, the feature layer and the precision. Anything else (batch size,
progress bar) does not change the features; the batch size, when not given, is the device's
(:func:`core.device.extraction_batch_size`: 16 frames on CPU, more on a GPU by its memory), and
the manifest records it with the device. Entries are written atomically, validated when opened
(their SHA-256 checksum included, :mod:`core.features.store`) and rebuilt when damaged, with one
WARNING line that names the entry; concurrent processes on one key take turns (one extracts, the
others wait and reuse). Reusing an entry imports neither Keras nor TensorFlow from this module.

Extraction is resumable (:mod:`core.features.resume`, :mod:`core.features.pipeline`): it fills
``<cache>/features/.pending-<key>/`` and commits finished chunks of clips there as it goes (on a
CPU with 7 frames a clip and batches of 16, every 16 clips). On Ctrl-C, :func:`extract_features`
raises :class:`ExtractionInterrupted` (a KeyboardInterrupt) that says how many clips were kept;
after a Ctrl-C or a kill, the next extraction of the same key (the same data, weights and
options) extracts only the clips not kept and publishes the entry one uninterrupted run would:
the same array byte for byte when the batch size is the same (any batch size gives valid rows),
the same manifest but for its timings (``extract_seconds`` is the time of the chunks kept plus
that of the last run, and ``resumed_clips`` counts the clips kept). Other data or options are
another key, and the pending folder of the old key stays until that key is extracted or it is
deleted; a folder whose files changed takes the rows of its unchanged clips from the entry of its
earlier state (:mod:`core.features.changed`; ``reused_clips`` counts them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.backbone.matconvnet import PortError, check_weights_path
from core.constants import (
    ATTACK_LABEL,
    BONAFIDE_LABEL,
    FEATURE_LAYER,
    FEATURE_SIZE,
    FRAMES_PER_CLIP,
    PRECISIONS,
    RANDOM_INIT,
    RANDOM_SEED,
    SPLITS,
)
from core.data.clips import Clip, DataError, frame_files
from core.data.dataset import Dataset
from core.data.frames import UNREADABLE, frames_of_short_clip
from core.device import keras_backend
from core.features import changed, faces, pipeline, store
from core.features.featureset import FeatureSet, NoFace, no_face_by_species
from core.features.resume import ExtractionInterrupted, ResumableEntry, say_others_kept
from core.features.skips import SkipWarnings
from core.quiet import set_random_seed

__all__ = [
    "ExtractionInterrupted",
    "FeatureSet",
    "NoFace",
    "cache_key",
    "default_cache_dir",
    "default_weights_path",
    "extract_features",
    "no_face_by_species",
    "weights_fingerprint",
]

log = logging.getLogger(__name__)
_SAID_RANDOM: set[Path] = set()  # cache folders whose random backbone this process warned of

# Bump when core.data.frames / core.preprocess_input change what reaches the network: every cache
# made before is then rebuilt. 1: evenly spaced segment-centre frames, whole-frame (or Haar face
# with 0.2 margin) resize to 224x224, RGB minus the weights' averageImage. 2: entries cover every
# clip of a database; face crop from database boxes, MTCNN or Haar, a frame without a face
# cropped like the nearest frame of its clip with one.
PREPROCESSING_VERSION = 2
WEIGHTS_FILE = "vgg_face.weights.h5"


def default_cache_dir() -> Path:
    """``$VGGFACE_HEADS_CACHE``, else ``$XDG_CACHE_HOME/vggface-heads``, else ``~/.cache/...``;
    a ValueError (one line, naming the variable) where the variable names no folder: blank (a
    folder " " was made in the working one), or a file ("<file>/features: Not a directory":
    probe FF)."""
    given = os.environ.get("VGGFACE_HEADS_CACHE")
    if given and not given.strip():
        raise ValueError(f"$VGGFACE_HEADS_CACHE is {given!r}: name a folder, or unset it")
    if given:
        if (folder := Path(given).expanduser()).exists() and not folder.is_dir():
            raise ValueError(f"$VGGFACE_HEADS_CACHE={given}: a file; it names the cache's folder")
        return folder
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "vggface-heads"


def default_weights_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """``$VGGFACE_WEIGHTS``, else ``<cache_dir or default_cache_dir()>/vgg_face.weights.h5``."""
    if os.environ.get("VGGFACE_WEIGHTS"):
        return Path(os.environ["VGGFACE_WEIGHTS"]).expanduser()
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / WEIGHTS_FILE


def weights_fingerprint(path: str | os.PathLike | None) -> str:
    """sha256 of a weights file's bytes (streamed), or ``random:<init>:<seed>`` for no file.

    The seeded random backbone is drawn by the Keras backend's own generator, so JAX draws other
    weights than TensorFlow: under any backend but TensorFlow the fingerprint names it
    (``random:he_normal:0:jax``), so its features are cached, and its studies served, apart."""
    if path is None:
        backend = keras_backend()
        return f"random:{RANDOM_INIT}:{RANDOM_SEED}" + (
            "" if backend == "tensorflow" else f":{backend}"
        )
    path = Path(path)
    try:
        with open(path, "rb") as weights:
            return "sha256:" + hashlib.file_digest(weights, "sha256").hexdigest()
    except OSError as err:
        reason = "no such file" if isinstance(err, FileNotFoundError) else err.strerror
        raise PortError(f"{path}: {reason}") from None


def random_backend(fingerprint: str) -> str | None:
    """The Keras backend that drew a random backbone, from its :func:`weights_fingerprint`
    (``random:<init>:<seed>[:<backend>]``; none named: TensorFlow); None for a weights file."""
    if not fingerprint.startswith("random:"):
        return None
    parts = fingerprint.split(":")
    return parts[3] if len(parts) > 3 else "tensorflow"


def cache_key(
    weights_fp: str,
    data_fp: str,
    frames_per_clip: int,
    detector: str | None = None,
    face_boxes: str | None = None,
    precision: str = "float32",
    backend: str = "tensorflow",
) -> tuple[str, dict[str, Any]]:
    """The cache key and the parts it hashes (stored in the manifest).

    ``data_fp`` is the database's content fingerprint; ``detector`` the face detector and its
    version (:func:`core.features.faces.detector_version`), None without a face crop;
    ``face_boxes`` the fingerprint of the database's box files used instead of detecting;
    ``backend`` the Keras backend that extracts: another than TensorFlow is a part of its own
    with a weights file (a JAX study had scored TensorFlow's features, and predict under JAX
    then differed from its scores.csv: probe AA); a random backbone's fingerprint names it.
    """
    parts = {
        "weights": weights_fp,
        "data": data_fp,
        "frames_per_clip": frames_per_clip,
        "face_crop": detector is not None,
        "detector": detector,
        "face_boxes": face_boxes if detector is not None else None,
        "preprocessing": PREPROCESSING_VERSION,
        "layer": FEATURE_LAYER,
        "precision": precision,
    }
    if backend != "tensorflow" and random_backend(weights_fp) is None:  # TF's keys unchanged
        parts["backend"] = backend
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return digest[:32], parts


def extract_features(
    dataset: Dataset,
    weights: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    frames_per_clip: int = FRAMES_PER_CLIP,
    face_crop: bool | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    *,
    detector: str = faces.AUTO,
    database_boxes: bool = True,
    precision: str = "float32",
    before_extract: Callable[[str, dict[str, Any]], None] | None = None,
) -> FeatureSet:
    """fc7 features of the clips of ``dataset``: reused from the cache, else extracted into it.

    Every clip of the database (``dataset.source_clips``) is extracted once; the result holds the
    protocol's clips (``dataset.clips``) with their splits.

    Args:
        dataset: a :class:`core.data.dataset.Dataset` with its splits assigned.
        weights: a MatConvNet ``.mat`` or a converted ``.weights.h5``; None: the file at
            :func:`default_weights_path` if there is one, else a random backbone (warned;
            building it seeds Keras' global generators with :data:`RANDOM_SEED`).
        cache_dir: None: :func:`default_cache_dir`.
        frames_per_clip: evenly spaced frames per clip (:func:`core.data.frames.read_frames`).
        face_crop: crop each frame to its face first; None: on for a user's data, off for the
            synthetic set.
        batch_size: frames per forward pass; None: the device's
            (:func:`core.device.extraction_batch_size`).
        progress: show a tqdm bar on stderr while extracting.
        detector: ``auto`` (MTCNN where it can run here, else Haar), ``mtcnn`` or ``haar``: finds
            the faces of clips without database boxes.
        database_boxes: crop with the face boxes a database ships (``Clip.face_boxes``) where a
            clip has them; False: detect in every clip (e.g. to crop two databases alike).
        before_extract: called with the entry's key and parts once the cache is found to lack it,
            before the face detector or the backbone is loaded (``experiments/extract.py``
            imports the Keras backend there, quietly: a rerun on cached features loads none; the
            sweep checks that a named study was run on these features).

    Raises:
        DataError: no usable clip, a split without both classes (named), or a detector that
            cannot run here.
        PortError: the weights file is missing or is not VGG-Face.
        ExtractionInterrupted: a KeyboardInterrupt while extracting; the chunks of clips
            finished are kept, and the next call with the same key extracts only the others.

    Concurrent calls on one key are safe: one process extracts, the others wait and reuse (or
    resume, when the extracting one was interrupted).
    """
    start = time.perf_counter()
    if frames_per_clip < 1:
        raise DataError(f"frames_per_clip must be >= 1, got {frames_per_clip}")
    if batch_size is not None and batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    if face_crop is None:
        face_crop = not dataset.synthetic
    source, data_fp = _source(dataset)
    resolved = faces.resolve_detector(detector) if face_crop else None
    box_fp = _boxes_fingerprint(source, dataset.root) if face_crop and database_boxes else None
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    weights_path = _resolve_weights(weights, cache_dir)
    if weights_path is None and cache_dir not in _SAID_RANDOM:  # once: not for each fold
        _SAID_RANDOM.add(cache_dir)
        log.warning(
            "no VGG-Face weights given: using a RANDOM backbone (seed %d), a demonstration whose "
            "numbers mean nothing; convert them once to the default place, read without "
            "--weights (python -m core.port vgg_face.mat --out %s), or pass --weights FILE",
            RANDOM_SEED,
            default_weights_path(cache_dir),
        )
    _check_splits(dataset.clips, dataset.clips)

    weights_fp = weights_fingerprint(weights_path)
    detector_name = faces.detector_version(resolved) if resolved is not None else None
    if precision not in PRECISIONS:
        raise DataError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    key, parts = cache_key(
        weights_fp,
        data_fp,
        frames_per_clip,
        detector_name,
        box_fp,
        precision=precision,
        backend=keras_backend(),
    )
    root = cache_dir / "features"

    warned: set[str] = set()  # one warning for an invalid entry, though it is opened twice
    found = _try_load(root, key, dataset, warned)
    extracted = False
    if found is None:
        with store.locked(root, key):
            # another process may have just written it
            found = _try_load(root, key, dataset, warned)
            if found is None:
                if before_extract is not None:
                    before_extract(key, parts)
                earlier = changed.earlier_entry(root, key, parts, dataset)
                reused = changed.reusable(earlier, dataset) if earlier else {}
                if earlier:
                    changed.say_data_changed(root, key, earlier, dataset, len(reused))
                finder = faces.FaceFinder(resolved, database_boxes) if resolved else None
                _extract(
                    dataset,
                    source,
                    weights_path,
                    root,
                    key,
                    parts,
                    finder,
                    batch_size,
                    progress,
                    reused,
                )
                found, extracted = store.load_entry(root, key), True
    array, manifest = found
    if not extracted:
        log.info("reusing fc7 features %s", root / key)

    selection = _rows(manifest, dataset)
    if not extracted:  # extraction warned them as it met them
        say_skip = SkipWarnings(log)
        for path, reason in selection.decode_skips:
            say_skip(path, reason)
    if not selection.clips:
        raise DataError(
            f"{dataset.root}: no usable clip ({len(dataset.skipped) + len(selection.decode_skips)} "
            "skipped, see the warnings)" + _fewer_frames(selection.decode_skips, frames_per_clip)
        )
    _check_splits(selection.clips, dataset.clips)
    features = FeatureSet(
        entry=array,
        rows=selection.rows,
        clips=selection.clips,
        skipped=[*dataset.skipped, *selection.decode_skips],
        fingerprint=key,
        weights_fingerprint=weights_fp,
        dataset_fingerprint=dataset.fingerprint,
        content_fingerprint=data_fp,
        random_weights=weights_path is None,
        synthetic=bool(dataset.synthetic),
        frames_per_clip=frames_per_clip,
        face_crop=face_crop,
        detector=resolved,
        path=root / key,
        extracted=extracted,
        seconds=time.perf_counter() - start,
        no_face=selection.no_face if face_crop else {},
        database_boxes=selection.database_boxes,
        boxes_set_aside=selection.boxes_set_aside,
        manifest=manifest,
        protocol=dataset.protocol,
        fold=dataset.fold,
        layout=dataset.layout,
        test_split_given=dataset.test_split_given,
        boxes_looked_for=face_crop and database_boxes,
    )
    log.info("%s", features.face_summary())
    return features


def _source(dataset: Dataset) -> tuple[list[Clip], str]:
    """The clips to extract (every clip of the database) and the fingerprint that keys them.

    A Dataset made without source clips (built by hand) falls back to its own clips.
    """
    if not dataset.source_clips:
        return list(dataset.clips), dataset.fingerprint
    known = {clip.clip_id for clip in dataset.source_clips}
    strays = [clip.clip_id for clip in dataset.clips if clip.clip_id not in known]
    if strays:
        raise DataError(
            f"{dataset.root}: clip {strays[0]!r} of protocol {dataset.protocol} is not among the "
            "clips the layout found (Dataset.source_clips)"
        )
    return list(dataset.source_clips), dataset.content_fingerprint or dataset.fingerprint


def _boxes_fingerprint(clips: list[Clip], root: Path) -> str | None:
    """Stamps (name, size, mtime, how its lines read, whether the detector checks them) of the
    database's face-box files, None when no clip has one."""
    stamps = []
    for clip in clips:
        boxes = clip.face_boxes
        if boxes is None:
            continue
        try:
            stat = boxes.path.stat()
            stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            stamp = "missing"  # decoding skips the clip and says why
        check = ["verify"] if boxes.verify else []
        stamps.append([clip.clip_id, _relative(boxes.path, root), stamp, boxes.format, *check])
    if not stamps:
        return None
    return hashlib.sha256(json.dumps(stamps).encode()).hexdigest()


def _resolve_weights(weights: str | os.PathLike | None, cache_dir: Path) -> Path | None:
    if weights is not None:
        path = Path(weights).expanduser()
        check_weights_path(path)
        return path
    default = default_weights_path(cache_dir)
    if default.is_file():
        log.info("using the weights at %s", default)
        return default
    if os.environ.get("VGGFACE_WEIGHTS"):  # the user named a file: do not quietly go random
        what = "a folder, not a" if default.is_dir() else "no such"
        raise PortError(f"{default}: {what} weights file ($VGGFACE_WEIGHTS)")
    return None


def _load_backbone(
    weights_path: Path | None, precision: str = "float32"
) -> tuple[Any, np.ndarray | None]:
    """The fc7 extractor of VGG-Face with the given weights (random, seeded, when None) and the
    weights' mean RGB (None: the default of :func:`core.preprocess_input`). With ``precision``
    "bfloat16" or "float16" it computes in Keras' mixed policy (float32 weights); the features
    are stored as float32 either way."""

    from core.backbone.network import dense_fc7, dtype_policy, vggface_network
    from core.backbone.vggface import load_weights

    with dtype_policy(precision):
        if weights_path is None:
            # Seeded, so a random backbone's features are reproducible and its cache reusable.
            # This seeds Python's, numpy's and the backend's global generators, as Keras does.
            set_random_seed(RANDOM_SEED)
            return dense_fc7(vggface_network(include_top=False)), None
        model = vggface_network(include_top=False)
        ported = load_weights(model, weights_path)
        return dense_fc7(model), ported.average_image


def _try_load(
    root: Path, key: str, dataset: Dataset, warned: set[str]
) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The entry of ``key`` if it is valid and holds ``dataset``; else None, warned once per
    reason (``warned`` keeps the reasons already said)."""
    try:
        array, manifest = store.load_entry(root, key)
        if foreign := changed.foreign_backend(manifest):
            raise store.CacheEntryInvalid(foreign)
        _read_now(_rows(manifest, dataset))
    except FileNotFoundError:
        return None
    except (store.CacheEntryInvalid, KeyError, TypeError, ValueError) as err:
        why = str(err)
        if isinstance(err, KeyError):  # a manifest edited, or of another version
            why = f"its manifest has no {err.args[0]!r} field"
        elif isinstance(err, TypeError):
            why = f"its manifest holds a field of another kind ({err})"
        if why not in warned:
            warned.add(why)
            log.warning("not using cache entry %s: %s", root / key, why)  # what follows says
        return None
    return array, manifest


@dataclass
class _Selection:
    """The dataset's usable clips found in an entry: their rows and what the entry says of them."""

    clips: list[Clip]
    rows: np.ndarray
    decode_skips: list[tuple[Path, str]]
    no_face: dict[str, int]
    database_boxes: int
    boxes_set_aside: int


def _rows(manifest: dict[str, Any], dataset: Dataset) -> _Selection:
    """The dataset's clips found in the entry (splits as the dataset assigns them now), their rows
    and the clips that failed to decode; CacheEntryInvalid if the manifest does not fit."""
    records = manifest["clips"]
    if len(records) != manifest["shape"][0]:
        raise store.CacheEntryInvalid(f"{len(records)} clips for {manifest['shape'][0]} rows")
    row_of = {record["clip_id"]: row for row, record in enumerate(records)}
    skips = {s["clip_id"]: s for s in manifest["skipped"]}
    missing = [c.clip_id for c in dataset.clips if c.clip_id not in row_of | skips]
    if missing:
        raise store.CacheEntryInvalid(f"clips of the dataset not in the entry: {missing[:3]}")
    clips = [clip for clip in dataset.clips if clip.clip_id in row_of]
    rows = np.array([row_of[clip.clip_id] for clip in clips], dtype=np.intp)
    no_face = {clip.clip_id: int(records[row_of[clip.clip_id]]["no_face"]) for clip in clips}
    decode_skips = [
        (_absolute(dataset.root, skips[c.clip_id]["path"]), str(skips[c.clip_id]["reason"]))
        for c in dataset.clips
        if c.clip_id in skips
    ]
    database_boxes = sum(bool(records[row_of[c.clip_id]]["database_boxes"]) for c in clips)
    set_aside = sum("boxes_set_aside" in records[row_of[c.clip_id]] for c in clips)
    return _Selection(clips, rows, decode_skips, no_face, database_boxes, set_aside)


def _read_now(selection: _Selection) -> None:
    """CacheEntryInvalid when a clip the entry skipped because the system would not read it
    (permissions, I/O: not the clip's fault) can be read now: a permission fixed since, or a
    ``cp -p`` copy of the data, which shares the entry, made readable. So too a clip skipped for
    a line of its face-box file, which earlier versions did: it is cropped by the detector now,
    and one key would otherwise hold other clips on another machine (review)."""
    for path, reason in selection.decode_skips:
        if faces.NOT_A_BOX in reason:
            raise store.CacheEntryInvalid(f"{path} was skipped for its face-box file ({reason})")
        if UNREADABLE in reason and _readable(path):
            raise store.CacheEntryInvalid(
                f"{path} could not be read when it was extracted ({reason}) and can be now"
            )


def _readable(clip: Path) -> bool:
    """Whether the system reads a clip's files now (a video, or a folder's frames), to their
    end: an I/O error met while reading (a bad sector) would otherwise have an entry extracted
    again on every run (review)."""
    try:
        for file in frame_files(clip) if clip.is_dir() else [clip]:
            with open(file, "rb") as read:
                while read.read(1 << 24):
                    pass
    except OSError:
        return False
    return True


def _check_splits(clips: list[Clip], all_clips: list[Clip]) -> None:
    """Each split that the dataset uses must keep both classes among ``clips``."""
    for split in SPLITS:
        if not any(clip.split == split for clip in all_clips):
            continue
        labels = {clip.label for clip in clips if clip.split == split}
        if labels != {BONAFIDE_LABEL, ATTACK_LABEL}:
            missing = sorted({BONAFIDE_LABEL, ATTACK_LABEL} - labels)
            raise DataError(
                f"split {split!r} has no usable {' or '.join(missing)} clip: "
                "each split needs both classes"
            )


def _extract(
    dataset: Dataset,
    source: list[Clip],
    weights_path: Path | None,
    root: Path,
    key: str,
    parts: dict[str, Any],
    finder: faces.FaceFinder | None,
    batch_size: int | None,
    progress: bool,
    reused: dict[str, tuple[np.ndarray, dict[str, Any]]] | None = None,
) -> None:
    """Extract ``source`` into the key's pending entry, resuming its committed chunks, and
    publish it; the clips of ``reused`` (:func:`changed.reusable`) take their features from the
    entry of the data's earlier state. Call it holding the key's lock. A KeyboardInterrupt
    becomes :class:`ExtractionInterrupted`, the chunks committed kept."""
    from core import device

    store.remove_leftovers(root, key)
    data = Path(dataset.root).resolve()
    say_others_kept(root, key, parts, data)
    frames_per_clip = parts["frames_per_clip"]
    shape = (len(source), frames_per_clip, FEATURE_SIZE)
    about = {"key_parts": parts, "data_folder": str(data)}
    with ResumableEntry(root, key, shape, about) as pending:
        try:
            model, average = _load_backbone(weights_path, parts["precision"])
            here = device.current_device()  # after the backbone: Keras and its backend loaded
            batch_size = batch_size or device.extraction_batch_size(here)
            log.info("extracting on %s, %d frames per batch", here.describe(), batch_size)
            if parts["precision"] == "bfloat16" and not (
                here.accelerator or device.cpu_has_bfloat16()
            ):
                log.warning(
                    "extracting in bfloat16 on a CPU without bfloat16 units (%s): emulated, "
                    "slower than float32 (--precision float32)",
                    here.describe(),
                )
            if finder is not None:
                finder.load()  # here, not in a decoding thread: a few seconds for MTCNN
            # one decoding thread with a face detector (OpenCV does not promise that a cascade
            # is thread-safe; MTCNN's models are shared); else a few, which a fast GPU needs
            workers = 1 if finder is not None else min(4, os.cpu_count() or 1)
            decode = pipeline.decoder(frames_per_clip, finder)
            if reused:
                decode = pipeline.reusing(decode, reused)
            run = pipeline.run_backbone(
                model, average, source, decode, pending, batch_size, progress, workers
            )
        except KeyboardInterrupt as err:
            done, skipped = pending.committed()
            raise ExtractionInterrupted(done, len(source), pending.folder, skipped) from err
        if not run.usable:  # nothing worth caching; the next run tries again
            pending.discard()
            raise DataError(
                f"{dataset.root}: no usable clip ({len(dataset.skipped)} skipped while loading, "
                f"{len(run.skipped)} while decoding; see the warnings)"
                + _fewer_frames(run.skipped, frames_per_clip)
            )
        if run.set_aside:
            first, why = next(iter(run.set_aside.items()))
            log.warning(
                "the face boxes %s ships were set aside on %d of %d clips, cropped with %s "
                "instead: they miss the face the detector finds, or their file does not read "
                "(first, %s: %s)",
                dataset.layout or "the database",
                len(run.set_aside),
                len(run.usable),
                parts["detector"],
                first,
                why,
            )
        manifest = _manifest(dataset, run, parts, weights_path)
        manifest.update(batch_size=batch_size, device=here.describe())  # speed, not features
        pending.commit(manifest, rows=len(run.usable))


def _manifest(
    dataset: Dataset, run: pipeline.Run, parts: dict[str, Any], weights_path: Path | None
) -> dict[str, Any]:
    frames = (len(run.usable) - run.reused) * run.frames_per_clip  # run through the network
    return {
        "key_parts": parts,
        "dtype": "float32",
        "feature_layer": FEATURE_LAYER,
        "frames_per_clip": run.frames_per_clip,
        "face_crop": parts["face_crop"],
        "detector": parts["detector"],
        "dataset_root": str(dataset.root),
        **changed.recorded(dataset),
        "clips": [
            {
                **_clip_record(clip, dataset.root),
                "no_face": run.no_face.get(clip.clip_id, 0),
                "database_boxes": clip.clip_id in run.shipped_boxes,
                **_set_aside(run, clip),
            }
            for clip in run.usable
        ],
        "skipped": [
            {"clip_id": clip.clip_id, "path": _relative(clip.path, dataset.root), "reason": reason}
            for clip, reason in run.skipped
        ],
        "no_face_frames": sum(run.no_face.values()),
        "random_weights": weights_path is None,
        "weights_file": str(weights_path) if weights_path is not None else None,
        "synthetic": bool(dataset.synthetic),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "extract_seconds": round(run.seconds, 3),
        "frames_per_second": round(frames / run.seconds, 3) if run.seconds > 0 else None,
        "resumed_clips": run.resumed,  # kept from an interrupted run (in extract_seconds)
        "reused_clips": run.reused,  # from the entry of the data's earlier state (unchanged)
    }


def _set_aside(run: pipeline.Run, clip: Clip) -> dict[str, str]:
    """The record's ``boxes_set_aside`` (why the database's boxes were not used), if any."""
    why = run.set_aside.get(clip.clip_id)
    return {"boxes_set_aside": why} if why else {}


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _absolute(root: Path, stored: str) -> Path:
    path = Path(stored)
    return path if path.is_absolute() else Path(root) / path


def _clip_record(clip: Clip, root: Path) -> dict[str, Any]:
    """What the entry keeps of a clip (its split belongs to a protocol, not to the database)."""
    return {
        "clip_id": clip.clip_id,
        "path": _relative(clip.path, root),
        "subject": clip.subject,
        "label": clip.label,
        "attack_type": clip.attack_type,
    }


def _fewer_frames(skipped: Sequence[tuple[Any, str]], frames: int) -> str:
    """What a run whose every clip was too short for ``--frames`` adds to its error: the fix."""
    had = [frames_of_short_clip(reason) for _, reason in skipped]
    if not had or None in had:
        return ""
    return f": every clip has fewer frames than --frames {frames} (at most {max(had)}), lower it"
