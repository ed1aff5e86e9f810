"""The frozen bottom of VGG-Face on every clip, computed once: what a fine-tuned trial reads.

A fine-tuned trial trains fc6 and fc7 (``fc``), or conv5_1..conv5_3 as well (``conv5``), with its
head. Nothing before the first trainable layer changes while it trains, so that layer's input
(pool5 for ``fc``, pool4 for ``conv5``) is the same in every epoch of every trial: it is computed
once per clip and stored, and trials train on it. This is exact, not an approximation: it is
end-to-end training with the bottom frozen, minus recomputing the bottom (conv1_1..conv4_3 are
~90% of VGG-Face's multiply-adds, conv1_1..conv5_3 ~99%) every step.

The bottom is computed from the stored uint8 frames (:mod:`core.features.frame_store`, decoded
as the extraction decoded them) through exactly the backbone the features were extracted with:
the same weights file (checked by its fingerprint) or the same seeded random backbone, the same
mean and precision. The layers a trial trains start from that backbone's weights, stored once per
backbone. Before an entry is used the first time, the starting top on it must give back the cached
fc7 of its first clips; if not (another Keras backend with a random backbone, another decoder),
nothing is kept and the error says so.

Layout, in the feature cache's folder:

* ``bottom/<key>/{features.npy,manifest.json}``: (clips, frames, side, side, 512) float32 and the
  clip of each row, written, validated and locked by :mod:`core.features.store`. The key hashes
  the feature cache key, the layer and the set of clips. pool5 is 100 KB a frame, pool4 400 KB.
* ``backbone_top/<key>.h5``: conv5_1..fc7 of the backbone
  (:func:`core.backbone.network.save_top_weights`), keyed by the weights' fingerprint (and the
  Keras backend for a random backbone, whose initial values differ between backends).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.backbone.matconvnet import PortError
from core.backbone.spec import FROZEN_OUTPUT, preprocess_input
from core.constants import FEATURE_SIZE
from core.data.clips import Clip, DataError
from core.features import frame_store, pipeline, store
from core.features.extract import _load_backbone, weights_fingerprint
from core.features.featureset import FeatureSet

BOTTOM_DIR = "bottom"
TOP_DIR = "backbone_top"
FORMAT_VERSION = 1
CHECKED_CLIPS = 2  # clips whose fc7 the starting top must give back before an entry is used
# Relative L2 distance allowed between that fc7 and the cached one: the same operations on the
# same backend differ only by summation order (float32), or by the half type's rounding.
TOLERANCE = {"float32": 1e-3, "bfloat16": 3e-2, "float16": 3e-2}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BottomInputs:
    """The frozen bottom's output for some clips, memory-mapped, and the top's start."""

    entry: np.ndarray  # (clips, frames, side, side, 512) float32, read-only memmap
    clip_ids: tuple[str, ...]  # the clip of each row of ``entry``
    top_weights: Path  # the backbone's conv5_1..fc7 (load_top_weights)
    computed: bool  # False: reused from the store
    decoded: int  # clips whose frames this call decoded

    def rows(self, clips: Sequence[Clip]) -> np.ndarray:
        """Row in :attr:`entry` of each of ``clips``."""
        row_of = {clip_id: row for row, clip_id in enumerate(self.clip_ids)}
        try:
            return np.array([row_of[clip.clip_id] for clip in clips], dtype=np.intp)
        except KeyError as err:
            raise DataError(f"clip {err.args[0]!r} is not in the stored bottom outputs") from None


def bottom_key(features: FeatureSet, layer: str, clip_ids: Sequence[str]) -> tuple[str, dict]:
    """The store key of ``layer``'s output on ``clip_ids`` of ``features``, and its parts."""
    clips = hashlib.sha256("\n".join(sorted(clip_ids)).encode()).hexdigest()
    parts = {"features": features.fingerprint, "layer": layer, "clips": clips}
    parts["format"] = FORMAT_VERSION
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32], parts


def top_weights_path(features: FeatureSet) -> Path:
    """Where the backbone's conv5_1..fc7 are stored for ``features``' weights."""
    import keras

    identity = features.weights_fingerprint
    if features.random_weights:
        identity += f":{keras.backend.backend()}"
    name = hashlib.sha256(identity.encode()).hexdigest()[:32]
    return features.path.parent.parent / TOP_DIR / f"{name}.h5"


def bottom_inputs(
    features: FeatureSet, fine_tune: str, batch_size: int | None = None
) -> BottomInputs:
    """The output of the layer below ``fine_tune``'s first trainable one, for every clip of
    ``features``: reused from the store, else computed from the stored frames and checked.

    ``batch_size`` (frames per forward pass) defaults to the device's, as for extraction
    (:func:`core.device.extraction_batch_size`).

    Raises:
        DataError: a clip's frames cannot be decoded as for the features, or the backbone built
            here does not give back the cached fc7.
        PortError: the features' weights file is gone or changed.
    """
    ids, key, parts, root, top = _where(features, fine_tune)
    found = _try_load(root, key, ids)
    computed, decoded = False, 0
    if found is None or not top.is_file():
        with store.locked(root, key):
            found = _try_load(root, key, ids)
            if found is None or not top.is_file():
                decoded = _compute(features, fine_tune, root, key, parts, top, found, batch_size)
                found, computed = _try_load(root, key, ids), True
    if found is None:
        raise DataError(f"{root / key}: the bottom outputs just written cannot be read back")
    array, manifest = found
    return BottomInputs(
        entry=array,
        clip_ids=tuple(manifest["clip_ids"]),
        top_weights=top,
        computed=computed,
        decoded=decoded,
    )


def bottom_ready(features: FeatureSet, fine_tune: str) -> bool:
    """Whether :func:`bottom_inputs` would find everything stored: nothing to compute."""
    ids, key, _, root, top = _where(features, fine_tune)
    return top.is_file() and _try_load(root, key, ids) is not None


def _where(features: FeatureSet, fine_tune: str) -> tuple[list[str], str, dict, Path, Path]:
    """The clip ids, the entry's key and parts, the store's folder and the top's start file."""
    if fine_tune not in FROZEN_OUTPUT:
        raise ValueError(f"fine_tune must be one of {', '.join(FROZEN_OUTPUT)}, got {fine_tune!r}")
    ids = [clip.clip_id for clip in features.clips]
    key, parts = bottom_key(features, FROZEN_OUTPUT[fine_tune], ids)
    return ids, key, parts, features.path.parent.parent / BOTTOM_DIR, top_weights_path(features)


def _try_load(root: Path, key: str, ids: list[str]) -> tuple[np.ndarray, dict[str, Any]] | None:
    try:
        array, manifest = store.load_entry(root, key)
    except FileNotFoundError:
        return None
    except store.CacheEntryInvalid as err:
        log.warning("not using bottom outputs %s: %s; computing them again", root / key, err)
        return None
    stored = manifest.get("clip_ids")
    if not isinstance(stored, list) or len(stored) != len(array) or set(stored) != set(ids):
        log.warning("not using bottom outputs %s: other clips; computing them again", root / key)
        return None
    return array, manifest


def _compute(
    features: FeatureSet,
    fine_tune: str,
    root: Path,
    key: str,
    parts: dict[str, Any],
    top: Path,
    found: tuple[np.ndarray, dict[str, Any]] | None,
    batch_size: int | None,
) -> int:
    """Store what is missing (the top's start, the entry), check it, return clips decoded."""
    from core import device
    from core.backbone.network import FINE_TUNE_LAYERS, frozen_bottom, save_top_weights

    model, average = _backbone(features)
    batch_size = batch_size or device.extraction_batch_size()  # after the backbone: Keras loaded
    wrote_top = not top.is_file()
    if wrote_top:
        top.parent.mkdir(parents=True, exist_ok=True)
        save_top_weights(model, FINE_TUNE_LAYERS["conv5"], top)
    decoded = 0
    if found is None:
        frames = frame_store.stored_frames(features)
        decoded = frames.decoded
        _write_entry(
            features, frozen_bottom(model, fine_tune), average, frames, root, key, parts, batch_size
        )
    del model
    loaded = _try_load(root, key, [clip.clip_id for clip in features.clips])
    try:
        if loaded is None:
            raise DataError(f"{root / key}: the bottom outputs just written cannot be read back")
        _check_reproduces_fc7(features, fine_tune, loaded, top)
    except DataError:
        store.remove_leftovers(root, key)  # an entry that fails the check is never used
        if wrote_top:
            top.unlink(missing_ok=True)
        raise
    return decoded


def _backbone(features: FeatureSet) -> tuple[Any, np.ndarray | None]:
    """The VGG-Face (to fc7) that ``features`` were extracted with, and its weights' mean RGB.

    Built by extraction's own builder (:func:`core.features.extract._load_backbone`): the
    weights file, or the random backbone seeded with :data:`core.constants.RANDOM_SEED`, in the
    features' precision.
    """
    precision = features.manifest["key_parts"]["precision"]
    if features.random_weights:
        return _load_backbone(None, precision)
    stored = features.manifest.get("weights_file")
    if not stored:
        raise PortError(f"{features.path}: its manifest names no weights file")
    path = Path(stored)
    if weights_fingerprint(path) != features.weights_fingerprint:
        raise PortError(
            f"{path}: not the weights file these features were extracted with (its content "
            f"changed): extract again, then fine-tune"
        )
    return _load_backbone(path, precision)


def _write_entry(
    features: FeatureSet,
    bottom: Any,
    average: np.ndarray | None,
    frames: frame_store.StoredFrames,
    root: Path,
    key: str,
    parts: dict[str, Any],
    batch_size: int,
) -> None:
    """Run ``bottom`` over every clip's stored frames, a few clips a batch, into a new entry."""
    started = time.perf_counter()
    per_frame = tuple(int(n) for n in bottom.output.shape[1:])
    frames_per_clip = features.frames_per_clip
    clips = features.clips
    shape = (len(clips), frames_per_clip, *per_frame)
    vectors_per_frame = int(np.prod(per_frame[:-1]))
    chunk = max(1, batch_size // frames_per_clip)  # whole clips per forward pass
    store.remove_leftovers(root, key)
    log.info("computing %s outputs of %d clips into %s", bottom.name, len(clips), root / key)
    tick = pipeline.ticker(f"{parts['layer']} outputs", len(clips))
    with store.PendingEntry(root, key, shape) as pending:
        for first in range(0, len(clips), chunk):
            batch = np.concatenate(
                [frames.frames(clip.clip_id) for clip in clips[first : first + chunk]]
            )
            out = np.asarray(bottom.predict_on_batch(preprocess_input(batch, average)))
            pending.write(
                first * frames_per_clip * vectors_per_frame,
                out.astype(np.float32).reshape(-1, per_frame[-1]),
            )
            tick(min(first + chunk, len(clips)))
        manifest = {
            "key_parts": parts,
            "layer": parts["layer"],
            "feature_cache": str(features.path),
            "frames": str(frames.folder),
            "clip_ids": [clip.clip_id for clip in clips],
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 3),
        }
        pending.commit(manifest, rows=len(clips))


def _check_reproduces_fc7(
    features: FeatureSet,
    fine_tune: str,
    loaded: tuple[np.ndarray, dict[str, Any]],
    top: Path,
) -> None:
    """The starting top on the stored bottom outputs must give the cached fc7 of the first clips."""
    from core.backbone.network import FINE_TUNE_LAYERS, dtype_policy, load_top_weights, vggface_top

    array, manifest = loaded
    count = min(CHECKED_CLIPS, len(array))
    precision = features.manifest["key_parts"]["precision"]
    with dtype_policy(precision):
        model = vggface_top(fine_tune)
    load_top_weights(model, top, FINE_TUNE_LAYERS[fine_tune])
    x = np.asarray(array[:count]).reshape(-1, *array.shape[2:])
    fc7 = np.asarray(model.predict_on_batch(x), dtype=np.float64).reshape(-1, FEATURE_SIZE)
    positions = {clip.clip_id: i for i, clip in enumerate(features.clips)}
    wanted = [positions[clip_id] for clip_id in manifest["clip_ids"][:count]]
    cached = features.clip_features(wanted).astype(np.float64).reshape(-1, FEATURE_SIZE)
    distance = np.linalg.norm(fc7 - cached) / max(np.linalg.norm(cached), 1e-12)
    if not distance <= TOLERANCE[precision]:
        raise DataError(
            f"{features.path}: fc7 recomputed from the decoded frames is {distance:.2g} (relative) "
            f"from the cached fc7, above {TOLERANCE[precision]:g}: these features were made by "
            f"another backbone or decoder (e.g. a random backbone on another Keras backend); "
            f"extract them again here before fine-tuning"
        )
