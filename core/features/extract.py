"""fc7 features of every clip's frames, extracted once and cached on disk (SPEC §5).

With a frozen backbone every head trains on the same fc7 features, so
:func:`extract_features` runs VGG-Face once per (weights, data, frame settings) and stores the
result as a memory-mapped ``.npy`` plus a JSON manifest; later calls reuse it in well under a
second (plus Python's imports).

Where things live:

* cache folder, :func:`default_cache_dir`: ``$VGGFACE_HEADS_CACHE``, else
  ``$XDG_CACHE_HOME/vggface-heads``, else ``~/.cache/vggface-heads``. Entries are
  ``<cache>/features/<key>/{features.npy,manifest.json}`` (see :mod:`core.features.store`).
* default weights, :func:`default_weights_path`: ``$VGGFACE_WEIGHTS``, else
  ``<cache>/vgg_face.weights.h5`` (write it once with
  ``python -m core.port vgg_face.mat --out <cache>/vgg_face.weights.h5``). With no weights file
  the backbone is random (seeded, so its features are reproducible), a loud warning is logged and
  ``FeatureSet.random_weights`` is True so every result can be marked as meaningless.

The cache key hashes the weights file's content (not its name or date), the dataset's
fingerprint, ``frames_per_clip``, ``face_crop``, :data:`PREPROCESSING_VERSION` and the feature
layer. Anything else (batch size, progress bar) does not change the features. Entries are
written atomically, validated when opened and rebuilt when damaged; concurrent processes on one
key take turns (one extracts, the others wait and reuse). Reusing an entry imports neither Keras
nor TensorFlow from this module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.backbone.matconvnet import PortError
from core.constants import (
    ATTACK_LABEL,
    BONAFIDE_LABEL,
    FEATURE_LAYER,
    FEATURE_SIZE,
    FRAMES_PER_CLIP,
    RANDOM_INIT,
    RANDOM_SEED,
    SPLITS,
)
from core.data.clips import Clip, DataError
from core.data.dataset import Dataset
from core.features import pipeline, store

log = logging.getLogger(__name__)

# Bump when core.data.frames / core.preprocess_input change what reaches the network: every cache
# made before is then rebuilt. 1: evenly spaced segment-centre frames, whole-frame (or Haar face
# with 0.2 margin) resize to 224x224, RGB minus the weights' averageImage.
PREPROCESSING_VERSION = 1
WEIGHTS_FILE = "vgg_face.weights.h5"


@dataclass
class FeatureSet:
    """fc7 features of the usable clips, memory-mapped read-only from the store.

    ``features[i, j]`` is the fc7 vector of frame ``j`` of ``clips[i]``; the frames of a row come
    from that one clip, in time order.
    """

    features: np.ndarray  # (n_clips, frames_per_clip, 4096) float32, read-only memory map
    clips: list[Clip]
    skipped: list[tuple[Path, str]]  # the dataset's skips, then clips that failed to decode
    fingerprint: str  # the cache key
    weights_fingerprint: str  # sha256 of the weights file, or "random:<init>:<seed>"
    dataset_fingerprint: str
    random_weights: bool
    synthetic: bool
    frames_per_clip: int
    face_crop: bool
    path: Path  # the cache entry's folder
    extracted: bool  # False when an existing cache entry was reused
    seconds: float  # wall time of this call
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)

    def indices(self, split: str) -> np.ndarray:
        """Rows of ``features`` whose clip is in ``split`` ("train", "dev" or "test")."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return np.flatnonzero([clip.split == split for clip in self.clips])

    @property
    def frames(self) -> int:
        """Number of frames whose features are stored."""
        return len(self.clips) * self.frames_per_clip


def default_cache_dir() -> Path:
    """``$VGGFACE_HEADS_CACHE``, else ``$XDG_CACHE_HOME/vggface-heads``, else ``~/.cache/...``."""
    if os.environ.get("VGGFACE_HEADS_CACHE"):
        return Path(os.environ["VGGFACE_HEADS_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "vggface-heads"


def default_weights_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """``$VGGFACE_WEIGHTS``, else ``<cache_dir or default_cache_dir()>/vgg_face.weights.h5``."""
    if os.environ.get("VGGFACE_WEIGHTS"):
        return Path(os.environ["VGGFACE_WEIGHTS"]).expanduser()
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / WEIGHTS_FILE


def weights_fingerprint(path: str | os.PathLike | None) -> str:
    """sha256 of a weights file's bytes (streamed), or ``random:<init>:<seed>`` for no file."""
    if path is None:
        return f"random:{RANDOM_INIT}:{RANDOM_SEED}"
    path = Path(path)
    try:
        with open(path, "rb") as weights:
            return "sha256:" + hashlib.file_digest(weights, "sha256").hexdigest()
    except OSError as err:
        reason = "no such file" if isinstance(err, FileNotFoundError) else err.strerror
        raise PortError(f"{path}: {reason}") from None


def cache_key(
    weights_fp: str, dataset_fp: str, frames_per_clip: int, face_crop: bool
) -> tuple[str, dict[str, Any]]:
    """The cache key and the parts it hashes (stored in the manifest)."""
    parts = {
        "weights": weights_fp,
        "dataset": dataset_fp,
        "frames_per_clip": frames_per_clip,
        "face_crop": face_crop,
        "preprocessing": PREPROCESSING_VERSION,
        "layer": FEATURE_LAYER,
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return digest[:32], parts


def extract_features(
    dataset: Dataset,
    weights: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    frames_per_clip: int = FRAMES_PER_CLIP,
    face_crop: bool = False,
    batch_size: int = 16,
    progress: bool = True,
) -> FeatureSet:
    """fc7 features of every clip of ``dataset``: reused from the cache, else extracted into it.

    Args:
        dataset: a :class:`core.data.dataset.Dataset` with its splits assigned.
        weights: a MatConvNet ``.mat`` or a converted ``.weights.h5``; None: the file at
            :func:`default_weights_path` if there is one, else a random backbone (warned;
            building it seeds Keras' global generators with :data:`RANDOM_SEED`).
        cache_dir: None: :func:`default_cache_dir`.
        frames_per_clip: evenly spaced frames per clip (:func:`core.data.frames.read_frames`).
        face_crop: crop each frame to the largest Haar face first.
        batch_size: frames per forward pass.
        progress: show a tqdm bar on stderr while extracting.

    Raises:
        DataError: no usable clip, or a split without both classes (named).
        PortError: the weights file is missing or is not VGG-Face.

    Concurrent calls on one key are safe: one process extracts, the others wait and reuse.
    """
    start = time.perf_counter()
    if frames_per_clip < 1:
        raise DataError(f"frames_per_clip must be >= 1, got {frames_per_clip}")
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    if face_crop:
        from core.data.frames import face_crop_available

        if not face_crop_available():
            raise DataError(
                "face_crop needs OpenCV's Haar cascade (cv2.data.haarcascades), which this OpenCV "
                "does not ship; install opencv-python-headless<5 or extract without face crop"
            )
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    weights_path = _resolve_weights(weights, cache_dir)
    if weights_path is None:
        log.warning(
            "NO VGG-FACE WEIGHTS: using a RANDOM backbone (seed %d); its features and every result "
            "built on them are meaningless. Pass weights=... (--weights) or put the converted file "
            "at %s (python -m core.port vgg_face.mat --out %s).",
            RANDOM_SEED,
            default_weights_path(cache_dir),
            default_weights_path(cache_dir),
        )
    _check_splits(dataset.clips, dataset.clips)

    weights_fp = weights_fingerprint(weights_path)
    key, parts = cache_key(weights_fp, dataset.fingerprint, frames_per_clip, face_crop)
    root = cache_dir / "features"

    found = _try_load(root, key, dataset)
    extracted = False
    if found is None:
        with store.locked(root, key):
            found = _try_load(root, key, dataset)  # another process may have just written it
            if found is None:
                _extract(dataset, weights_path, root, key, parts, batch_size, progress)
                found, extracted = store.load_entry(root, key), True
    array, manifest = found
    if not extracted:
        log.info("reusing fc7 features %s", root / key)

    clips, decode_skips = _rows(manifest, dataset)
    if not extracted:  # extraction warned them as it met them
        for path, reason in decode_skips:
            log.warning("skipped clip %s: %s", path, reason)
    if not clips:
        raise DataError(
            f"{dataset.root}: no usable clip ({len(dataset.skipped) + len(decode_skips)} "
            "skipped, see the warnings)"
        )
    _check_splits(clips, dataset.clips)
    return FeatureSet(
        features=array,
        clips=clips,
        skipped=[*dataset.skipped, *decode_skips],
        fingerprint=key,
        weights_fingerprint=weights_fp,
        dataset_fingerprint=dataset.fingerprint,
        random_weights=weights_path is None,
        synthetic=bool(dataset.synthetic),
        frames_per_clip=frames_per_clip,
        face_crop=face_crop,
        path=root / key,
        extracted=extracted,
        seconds=time.perf_counter() - start,
        manifest=manifest,
    )


def _resolve_weights(weights: str | os.PathLike | None, cache_dir: Path) -> Path | None:
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise PortError(f"{path}: no such weights file (a .mat or a converted .weights.h5)")
        return path
    default = default_weights_path(cache_dir)
    if default.is_file():
        log.info("using the weights at %s", default)
        return default
    if os.environ.get("VGGFACE_WEIGHTS"):  # the user named a file: do not quietly go random
        raise PortError(f"{default}: no such weights file ($VGGFACE_WEIGHTS)")
    return None


def _load_backbone(weights_path: Path | None) -> tuple[Any, np.ndarray | None]:
    """The fc7 extractor of VGG-Face with the given weights (random, seeded, when None) and the
    weights' mean RGB (None: the default of :func:`core.preprocess_input`)."""
    import keras

    from core.backbone.network import dense_fc7, vggface_network
    from core.backbone.vggface import load_weights

    if weights_path is None:
        # Seeded, so a random backbone's features are reproducible and its cache reusable. This
        # seeds Python's, numpy's and the backend's global generators, as Keras does.
        keras.utils.set_random_seed(RANDOM_SEED)
        return dense_fc7(vggface_network(include_top=False)), None
    model = vggface_network(include_top=False)
    ported = load_weights(model, weights_path)
    return dense_fc7(model), ported.average_image


def _try_load(root: Path, key: str, dataset: Dataset) -> tuple[np.ndarray, dict[str, Any]] | None:
    try:
        array, manifest = store.load_entry(root, key)
        _rows(manifest, dataset)
    except FileNotFoundError:
        return None
    except (store.CacheEntryInvalid, KeyError, TypeError, ValueError) as err:
        log.warning("not using cache entry %s: %s; extracting again", root / key, err)
        return None
    return array, manifest


def _rows(manifest: dict[str, Any], dataset: Dataset) -> tuple[list[Clip], list[tuple[Path, str]]]:
    """The dataset's clips in the entry's row order (splits as the dataset assigns them now) and
    the clips that failed to decode; CacheEntryInvalid if the manifest does not fit the dataset."""
    by_id = {clip.clip_id: clip for clip in dataset.clips}
    rows = manifest["clips"]
    if len(rows) != manifest["shape"][0]:
        raise store.CacheEntryInvalid(f"{len(rows)} clips for {manifest['shape'][0]} rows")
    missing = [row["clip_id"] for row in rows if row["clip_id"] not in by_id]
    if missing:
        raise store.CacheEntryInvalid(f"clips not in the dataset: {missing[:3]}")
    skips = [(_absolute(dataset.root, s["path"]), str(s["reason"])) for s in manifest["skipped"]]
    return [by_id[row["clip_id"]] for row in rows], skips


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
    weights_path: Path | None,
    root: Path,
    key: str,
    parts: dict[str, Any],
    batch_size: int,
    progress: bool,
) -> None:
    """Extract into a new cache entry and publish it. Call it holding the key's lock."""
    store.remove_leftovers(root, key)
    frames_per_clip, face_crop = parts["frames_per_clip"], parts["face_crop"]
    model, average = _load_backbone(weights_path)
    # one decoding thread with the face detector (OpenCV does not promise that a cascade is
    # thread-safe); else a few, which a fast GPU needs to be kept fed
    workers = 1 if face_crop else min(4, os.cpu_count() or 1)
    shape = (len(dataset.clips), frames_per_clip, FEATURE_SIZE)
    with store.PendingEntry(root, key, shape) as pending:
        decode = pipeline.decoder(frames_per_clip, face_crop)
        run = pipeline.run_backbone(
            model, average, dataset.clips, decode, pending, batch_size, progress, workers
        )
        if not run.usable:  # nothing worth caching; the next run tries again
            raise DataError(
                f"{dataset.root}: no usable clip ({len(dataset.skipped)} skipped while loading, "
                f"{len(run.skipped)} while decoding; see the warnings)"
            )
        pending.commit(_manifest(dataset, run, parts, weights_path), rows=len(run.usable))


def _manifest(
    dataset: Dataset, run: pipeline.Run, parts: dict[str, Any], weights_path: Path | None
) -> dict[str, Any]:
    frames = len(run.usable) * run.frames_per_clip
    return {
        "key_parts": parts,
        "dtype": "float32",
        "feature_layer": FEATURE_LAYER,
        "frames_per_clip": run.frames_per_clip,
        "face_crop": parts["face_crop"],
        "dataset_root": str(dataset.root),
        "clips": [_clip_record(clip, dataset.root) for clip in run.usable],
        "skipped": [
            {"path": _relative(clip.path, dataset.root), "reason": reason}
            for clip, reason in run.skipped
        ],
        "random_weights": weights_path is None,
        "weights_file": str(weights_path) if weights_path is not None else None,
        "synthetic": bool(dataset.synthetic),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "extract_seconds": round(run.seconds, 3),
        "frames_per_second": round(frames / run.seconds, 3) if run.seconds > 0 else None,
    }


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _absolute(root: Path, stored: str) -> Path:
    path = Path(stored)
    return path if path.is_absolute() else Path(root) / path


def _clip_record(clip: Clip, root: Path) -> dict[str, Any]:
    return {
        "clip_id": clip.clip_id,
        "path": _relative(clip.path, root),
        "subject": clip.subject,
        "label": clip.label,
        "attack_type": clip.attack_type,
        "split": clip.split,
    }
