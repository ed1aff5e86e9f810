"""A trial's head back on the backbone its study used: scores clips and frames as the sweep did.

:class:`Scorer` takes a clip exactly as the sweep's extraction did: the same evenly spaced frames,
face crop, resize and mean subtraction (:mod:`core.features.pipeline`), the same backbone
(:func:`core.features.extract._load_backbone`: the weights file, or the seeded random one) in the
precision the study extracted in, a fine-tuned trial's own backbone layers, and the head in its
training precision, its logits read as training read them (:func:`heads.predict_scores`); frame
scores averaged per clip for frame heads, the clip's frames in order for sequence heads. A clip of
the study scores what the run's ``scores.csv`` says, to float rounding.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import heads
from core.backbone.matconvnet import PortError
from core.backbone.spec import preprocess_input
from core.constants import FEATURE_SIZE
from core.data.clips import Clip, DataError
from core.data.frames import TooFewFrames, prepare_frames, read_clip
from core.device import keras_backend
from core.features import default_weights_path, faces, random_backend, weights_fingerprint
from core.features.crop import FaceCrop
from core.features.extract import PREPROCESSING_VERSION
from core.quiet import import_backend_quietly
from experiments.metrics import clip_scores
from experiments.serving.trial_model import DEFAULT_WEIGHTS, ScoringError, TrialModel
from experiments.stores.tracking import TOP_WEIGHTS

log = logging.getLogger(__name__)

BATCH = 16  # frames per backbone pass, as extraction's default --batch-size on a CPU


def backbone_weights(
    model: TrialModel, given: str | os.PathLike | None = None, flag: str = "--weights"
) -> Path | None:
    """The weights file to build the trial's backbone from (None: the seeded random backbone),
    checked against the run's fingerprint.

    ``given`` (the user's ``flag``) is used when set. Else a run on the random backbone gets it
    again, and a run on a file gets the first file with its fingerprint among the path the run
    names and the sweep's default (``$VGGFACE_WEIGHTS``, else the cache's converted file).
    """
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_file():
            what = "a folder, not a weights file" if path.is_dir() else "no such file"
            raise ScoringError(
                f"{flag} {path}: {what}; run {model.run_id} used {_used(model)}: "
                f"{_remedy(model, flag)}"
            )
        return _checked(model, path, flag)
    if model.random_backbone:
        return _checked(model, None, flag)
    named = [] if model.weights == DEFAULT_WEIGHTS else [Path(model.weights).expanduser()]
    candidates = list(dict.fromkeys([*named, default_weights_path()]))
    found = [path for path in candidates if path.is_file()]
    if not found:
        raise ScoringError(
            f"run {model.run_id} used {_used(model)}; no such file at "
            f"{' or '.join(map(str, candidates))}: pass it with {flag}"
        )
    for path in found[:-1]:
        if weights_fingerprint(path) == model.weights_fingerprint:
            return path
    return _checked(model, found[-1], flag)


def _checked(model: TrialModel, path: Path | None, flag: str) -> Path | None:
    """``path`` if its fingerprint is the run's, else a ScoringError naming both."""
    try:
        found = weights_fingerprint(path)
    except PortError as err:
        raise ScoringError(
            f"{err}; run {model.run_id} used {_used(model)}: {_remedy(model, flag)}"
        ) from None
    if found != model.weights_fingerprint:
        what = f"weights {path} ({found}) are" if path else f"the random backbone ({found}) is"
        raise ScoringError(
            f"{what} not the backbone run {model.run_id} used: {_used(model)}; "
            f"{_remedy(model, flag, given=path is not None)}"
        )
    return path


def _remedy(model: TrialModel, flag: str, given: bool = True) -> str:
    """What to do when the weights (``given`` with ``flag``, else the random backbone) are not
    the run's."""
    if not model.random_backbone:
        return f"pass that file with {flag}"
    if weights_fingerprint(None) != model.weights_fingerprint:  # another backend's draw
        without = f"without {flag}, " if given else ""
        return (
            f"the random backbone is drawn by the Keras backend: run {without}under "
            f"KERAS_BACKEND={random_backend(model.weights_fingerprint)}"
        )
    return f"drop {flag}"


def _used(model: TrialModel) -> str:
    if model.random_backbone:
        return f"the random backbone ({model.weights_fingerprint}), i.e. no weights file"
    named = "" if model.weights == DEFAULT_WEIGHTS else f"{model.weights}, "
    return f"{named}{model.weights_fingerprint}"


@functools.lru_cache(maxsize=1)
def _backbone(path: str | None, fingerprint: str, precision: str) -> tuple[Any, np.ndarray | None]:
    """VGG-Face to fc7 and its mean colour, built once per process for a file and precision:
    extraction's own builder, so the features are the cache's (``fingerprint`` keys the cache)."""
    from core.features.extract import _load_backbone

    return _load_backbone(Path(path) if path is not None else None, precision)


def _tuned_top(model: TrialModel, top_weights: str | os.PathLike) -> Any:
    """A fine-tuned trial's trained layers (conv5_1.. or fc6 to fc7) as it trained them: in its
    training precision, on the frozen bottom's outputs (``core.backbone.network.vggface_top``)."""
    from core.backbone.network import FINE_TUNE_LAYERS, dtype_policy, load_top_weights, vggface_top

    with dtype_policy(model.config.training_precision):
        top = vggface_top(model.fine_tune, dropout=model.config.feature_dropout)
    load_top_weights(top, top_weights, FINE_TUNE_LAYERS[model.fine_tune])
    return top


def check_score_faceless(face_crop: FaceCrop, asked: bool, flag: str = "--score-faceless") -> bool:
    """``asked``, or a ScoringError where the study cropped no face: no clip is left unscored
    for want of one (predict.py refused it; the registered model's ``model_config`` took it
    without a word: probe AA)."""
    if asked and not face_crop.enabled:
        raise ScoringError(
            f"{flag}: the study cropped no face (--no-face-crop), so no clip of these is left "
            f"unscored for want of one: drop {flag}"
        )
    return asked


def crop_detector(
    face_crop: FaceCrop,
    override: str | None = None,
    fallback: str = faces.AUTO,
    flag: str = "--face-detector",
) -> str | None:
    """The face detector that crops new clips as the study's clips were (None: no crop).

    ``override`` (``mtcnn``, ``haar`` or ``auto``; set by ``flag``) replaces the study's detector
    (warned), and is a ScoringError for a study that cropped nothing. New clips have no database
    boxes: a study that cropped some of its clips with its database's own boxes crops them with
    its detector, one that cropped every clip so with ``override``, else ``fallback`` (``auto``:
    MTCNN where it runs, else Haar); both are said, since the crops then differ from the study's
    (``predict.py`` measures by how much on the study's own dev clips, and crops the study's own
    clips with their boxes).
    """
    if not face_crop.enabled:
        if override:  # it was dropped without a word, an unknown detector too
            raise ScoringError(
                f"{flag} {override}: the study did not crop faces (its heads read whole frames), "
                f"so neither are these clips: drop {flag}"
            )
        return None
    detector = override or face_crop.detector or fallback
    if face_crop.used_database_boxes:  # predict.py measures the change (serving.crop_check)
        log.info("the study cropped with its database's own face boxes; these with %s", detector)
    elif override and override != face_crop.detector:
        log.warning("the study cropped faces with %s; these with %s", face_crop.detector, override)
    try:
        return faces.resolve_detector(detector)
    except DataError as err:
        raise ScoringError(str(err)) from None


@dataclass(frozen=True)
class ClipScore:
    path: Path
    score: float  # probability of bona fide
    bonafide: bool  # score >= the dev threshold
    frame_scores: np.ndarray | None  # frame heads: each frame's score (the clip's is their mean)
    no_face: int  # frames where the detector found no face
    frames: int  # frames read: the study's per clip, or all a short clip has (a frame head)


class Scorer:
    """A trial's head on its backbone: scores clips (as the sweep did) and batches of frames."""

    def __init__(
        self,
        model: TrialModel,
        head_weights: str | os.PathLike,
        weights: Path | None,
        detector: str | None = None,
        top_weights: str | os.PathLike | None = None,
    ) -> None:
        """``weights`` as :func:`backbone_weights` returns it; ``detector`` as
        :func:`crop_detector` returns it for the model's face crop; ``top_weights`` as
        :func:`fetch_top_weights` (a fine-tuned trial's backbone layers)."""
        if (top_weights is None) != (model.fine_tune == "none"):
            raise ScoringError(
                f"run {model.run_id} fine-tuned {model.fine_tune}: its {TOP_WEIGHTS} is "
                "needed exactly when it fine-tuned"
            )
        # every registered model's code (earlier versions' too) builds this: the backend first,
        # without TensorFlow's start-up lines (``predict.py --verbose`` imported it, lines and all)
        import_backend_quietly()
        from core.backbone.network import dtype_policy

        self.model, self.detector = model, detector
        config = model.config
        self.kind = config.kind
        self.backbone, self.average = _backbone(
            str(weights) if weights is not None else None,
            model.weights_fingerprint,
            model.extraction_precision,
        )
        self.top = None  # a fine-tuned trial: the frozen bottom, then its own trained layers
        if top_weights is not None:
            from core.backbone.network import frozen_bottom

            self.backbone = frozen_bottom(self.backbone, model.fine_tune)
            self.top = _tuned_top(model, top_weights)
        with dtype_policy(config.training_precision):  # as train_head builds it
            head = heads.build_head_model(
                config.family,
                config.output,
                feature_dropout=config.feature_dropout,
                frames=model.frames_per_clip,
                **config.hparams,
            )
        try:
            head.load_weights(os.fspath(head_weights))
        except Exception as err:  # Keras raises ValueError, KeyError, OSError... on a bad file
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ScoringError(
                f"{head_weights}: not the weights of run {model.run_id}'s {config.head}: {reason}"
            ) from None
        self.head = head
        self.scorer = heads.training_model(head)  # the head's logits, as train_head scores

    def features(self, frames: np.ndarray) -> np.ndarray:
        """fc7 (n, 4096) float32 of network-ready uint8 frames (n, 224, 224, 3)."""
        out = []
        for start in range(0, len(frames), BATCH):
            batch = preprocess_input(frames[start : start + BATCH], self.average)
            fc7 = self.backbone.predict_on_batch(batch)
            if self.top is not None:
                fc7 = self.top.predict_on_batch(np.asarray(fc7, dtype=np.float32))
            fc7 = np.asarray(fc7, dtype=np.float32)
            out.append(fc7.reshape(-1, FEATURE_SIZE))
        return np.concatenate(out) if out else np.empty((0, FEATURE_SIZE), np.float32)

    def _scores(self, x: np.ndarray) -> np.ndarray:
        return heads.predict_scores(self.scorer, x, self.model.config.output)

    def score_clip(
        self, path: str | os.PathLike, shorter: bool = False, clip: Clip | None = None
    ) -> ClipScore:
        """Score one video or frame folder. Raises ClipError (a DataError) when it is unusable.
        ``shorter``: a frame head scores a clip of fewer frames than the study's (or one image)
        on every frame it has (a sequence head still refuses it). ``clip``: the study's own clip
        at ``path``, whose database's face boxes crop it as extraction did (checked against the
        detector where they are marked ``verify``)."""
        path = Path(path)
        frames_per_clip = self.model.frames_per_clip
        try:
            raw, indices = read_clip(path, frames_per_clip)
        except TooFewFrames as err:  # a frame head scores what there is (one image: a selfie)
            if self.kind == "sequence" or not shorter:
                raise
            raw, indices = read_clip(path, err.frames)
            frames_per_clip = err.frames
        if self.detector and clip is not None and clip.face_boxes is not None:
            boxes = faces.FaceFinder(self.detector).boxes(clip, raw, indices).boxes
        else:
            boxes = faces.detect_faces(raw, self.detector) if self.detector else None
        frames = prepare_frames(raw, boxes)
        no_face = sum(box is None for box in boxes) if boxes is not None else 0
        fc7 = self.features(frames)
        if self.kind == "sequence":
            frame_scores = None
            score = float(self._scores(fc7.reshape(1, frames_per_clip, 1, 1, -1))[0])
        else:
            frame_scores = self._scores(fc7.reshape(frames_per_clip, 1, 1, -1))
            score = float(clip_scores(frame_scores, np.zeros(frames_per_clip, dtype=int), 1)[0])
        bonafide = score >= self.model.threshold
        return ClipScore(path, score, bonafide, frame_scores, no_face, frames_per_clip)

    def score_frames(self, frames: np.ndarray, score_faceless: bool = False) -> np.ndarray:
        """Bona fide probabilities of a batch of uint8 RGB frames (N, H, W, 3), float64.

        Each frame is cropped to its own face when the study cropped faces (for a sequence head,
        a frame without one to its clip's nearest face, as extraction and :meth:`score_clip` crop
        it), resized to 224x224 and mean-subtracted as in extraction. A frame head gives one
        probability per frame; a sequence head reads the batch as N / T consecutive clips of its
        T frames per clip and gives one per clip. Where the detector finds no face (a frame; for
        a sequence head, every frame of a clip) the score is NaN and a warning counts them, unless
        ``score_faceless``: then such a frame is cropped to its centre square and scored. No
        frame gives no score.
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"frames must be uint8 RGB of shape (N, H, W, 3), got {frames.dtype} {frames.shape}"
            )
        count = self.model.frames_per_clip
        if self.kind == "sequence" and len(frames) % count:
            raise ValueError(
                f"{self.model.config.head} reads clips of {count} frames: got {len(frames)} "
                f"frames, not a multiple of {count}"
            )
        if not len(frames):  # nothing to score: no clip, no frame
            return np.empty(0)
        faceless = np.zeros(len(frames), dtype=bool)
        if self.detector is None:
            prepared = prepare_frames(frames)
        else:
            boxes = faces.detect_faces(frames, self.detector)
            faceless = np.array([box is None for box in boxes], dtype=bool)
            step = count if self.kind == "sequence" else 1  # a clip's frames share their faces
            prepared = np.concatenate(
                [
                    prepare_frames(frames[i : i + step], boxes[i : i + step])
                    for i in range(0, len(frames), step)
                ]
            )
        fc7 = self.features(prepared)
        if self.kind == "sequence":
            scores = self._scores(fc7.reshape(len(frames) // count, count, 1, 1, -1))
            faceless = faceless.reshape(-1, count).all(axis=1)
        else:
            scores = self._scores(fc7.reshape(len(frames), 1, 1, -1))
        if faceless.any():
            what = "clips" if self.kind == "sequence" else "frames"
            log.warning(
                "%d of %d %s have no face the detector (%s) finds: %s",
                int(faceless.sum()),
                len(faceless),
                what,
                self.detector,
                "scored on their centre square" if score_faceless else "their score is NaN",
            )
            if not score_faceless:
                scores[faceless] = np.nan
        return scores


def drift(model: TrialModel, detector: str | None) -> list[str]:
    """What scoring ``model`` here changes from how its study scored, as warnings: another Keras
    backend, another version of the face detector (``detector``, the one that crops here) or
    of the frames' preprocessing; none where the study did not record them."""
    said = []
    if model.keras_backend and model.keras_backend != keras_backend():
        said.append(
            f"the study ran under KERAS_BACKEND={model.keras_backend}, this process under "
            f"{keras_backend()}: the backbone's kernels differ, so scores can differ from the "
            f"study's (by percents in bfloat16, about 1e-4 in float32); run under "
            f"KERAS_BACKEND={model.keras_backend} for the study's own"
        )
    here = faces.detector_version(detector) if detector else "none"
    was = model.face_detector_version
    if was and was != "none" and detector == was.split()[0] and here != was:
        said.append(
            f"the study's faces were found by {was}, this process's by {here}: its boxes, and "
            f"so the scores, can differ from the study's; install {was.replace(' ', '==')} for "
            "the study's own"
        )
    if model.preprocessing and model.preprocessing != str(PREPROCESSING_VERSION):
        said.append(
            f"the study's frames were prepared by preprocessing version {model.preprocessing}, "
            f"this version's by {PREPROCESSING_VERSION}: scores can differ from the study's"
        )
    return said
