"""A trial's head back on the backbone its study used, rebuilt from what the trial's run logged.

What a trial run holds (:mod:`experiments.objective`, :mod:`experiments.sweep`): its
:class:`~experiments.search.TrialConfig` as parameters (head, family, output, the family's
hyper-parameters flat beside them, precision); tags naming the backbone (``weights``,
``weights_fingerprint``) and the face crop (``face_crop``); the ``dev_threshold`` metric (with
several folds or repeats it is their mean, and the head kept is the first setting's, so its own
threshold is the first row of ``settings.csv``); ``head.weights.h5`` when its weights were kept.
Frames per clip are the parent run's ``frames_per_clip`` parameter.

:class:`Scorer` then scores a clip exactly as the sweep did: the same evenly spaced frames, face
crop, resize and mean subtraction (:mod:`core.features.pipeline`), the same backbone
(:func:`core.features.extract._load_backbone`: the weights file, or the seeded random one), the
head's logits read as in :func:`experiments.training.predict_scores`, frame scores averaged per
clip for frame heads, the clip's frames in order for sequence heads. A clip of the study scores
what the run's ``scores.csv`` says, to float rounding.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import heads
from core.backbone.matconvnet import PortError
from core.backbone.network import dtype_policy
from core.backbone.spec import preprocess_input
from core.constants import FEATURE_SIZE
from core.data.clips import DataError
from core.data.frames import prepare_frames, read_clip
from core.features import default_weights_path, faces, weights_fingerprint
from experiments import comparison, tracking
from experiments.metrics import clip_scores
from experiments.search import TrialConfig
from experiments.training import predict_scores

log = logging.getLogger(__name__)

HEAD_WEIGHTS = tracking.HEAD_WEIGHTS  # experiments.tracking.log_trial_artifacts
TOP_WEIGHTS = tracking.TOP_WEIGHTS  # a fine-tuned trial's backbone layers (experiments.objective)
SETTINGS_CSV = "settings.csv"
NO_CROP = "none"
DEFAULT_WEIGHTS = "default"  # the sweep's ``weights`` tag when no --weights was given
BATCH = 16  # frames per backbone pass, as extraction's default --batch-size


class ScoringError(ValueError):
    """A run, study or weights file that cannot score; the message is one line."""


@dataclass(frozen=True)
class TrialModel:
    """What scoring with one trial's head needs, all of it JSON-able (a pyfunc model's config)."""

    run_id: str
    study: str
    trial: int
    config: TrialConfig
    frames_per_clip: int
    threshold: float  # the dev EER threshold: a score at or above it is bona fide
    weights_fingerprint: str  # of the backbone weights: sha256:..., or random:<init>:<seed>
    weights: str  # the run's ``weights`` tag: the path the sweep was given, or "default"
    face_crop: str  # none, mtcnn, haar, database boxes, database boxes + <detector>

    @property
    def fine_tune(self) -> str:
        """The backbone layers the trial trained with its head: none, fc or conv5."""
        return getattr(self.config, "fine_tune", "none")

    @property
    def random_backbone(self) -> bool:
        return self.weights_fingerprint.startswith("random:")

    def describe(self) -> str:
        backbone = "random backbone (a demo)" if self.random_backbone else self.weights_fingerprint
        return (
            f"run {self.run_id}: study {self.study}, trial {self.trial}, {self.config.head} "
            f"({self.config.output}), dev threshold {self.threshold:.6g}, {backbone}, "
            f"face crop {self.face_crop}, {self.frames_per_clip} frames per clip, "
            f"{self.config.precision}"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialModel:
        values = dict(values)
        known = {field.name for field in dataclasses.fields(TrialConfig)}
        config = {k: v for k, v in values.pop("config").items() if k in known}  # newer fields
        config["hparams"] = dict(config.get("hparams") or {})
        return cls(config=TrialConfig(**config), **values)


# --------------------------------------------------------------------------- runs


def trial_model(run_id: str, client: MlflowClient | None = None) -> TrialModel:
    """The :class:`TrialModel` of trial run ``run_id`` in the current tracking store."""
    client = client or MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ScoringError(
            f"run {run_id!r}: no such MLflow run in {mlflow.get_tracking_uri()} (--tracking-uri?)"
        ) from None
    tags, params = run.data.tags, run.data.params
    if tags.get(tracking.ROLE_TAG) != "trial":
        role = tags.get(tracking.ROLE_TAG)
        what = f"a {role} run" if role else "not a run of the sweep"
        raise ScoringError(f"run {run_id}: not a trial run of a study ({what})")
    trial = int(tags.get(tracking.TRIAL_TAG, -1))
    if run.info.status != "FINISHED":
        raise ScoringError(
            f"run {run_id} (trial {trial}) ended {run.info.status}: only a finished trial has a "
            "trained head"
        )
    missing = [tag for tag in ("weights_fingerprint", "face_crop") if tag not in tags]
    if missing:
        raise ScoringError(f"run {run_id}: lacks tag(s) {', '.join(missing)} (an older sweep?)")
    return TrialModel(
        run_id=run_id,
        study=tags.get(tracking.STUDY_TAG, ""),
        trial=trial,
        config=config_from_params(params, run_id),
        frames_per_clip=_frames_per_clip(run, client),
        threshold=_dev_threshold(run, client),
        weights_fingerprint=tags["weights_fingerprint"],
        weights=tags.get("weights", DEFAULT_WEIGHTS),
        face_crop=tags["face_crop"],
    )


def config_from_params(params: dict[str, str], run_id: str = "") -> TrialConfig:
    """The :class:`TrialConfig` that :meth:`TrialConfig.params` logged, typed again.

    The family's hyper-parameters are the logged names among its builder's keywords, each typed
    as its default is.
    """
    try:
        spec = heads.get_spec(params["family"])
    except KeyError as err:  # no family logged, or one no longer registered
        raise ScoringError(f"run {run_id}: {err.args[0] if err.args else err}") from None
    hparams = {
        name: _typed(params[name], default)
        for name, default in spec.defaults.items()
        if name in params
    }
    values: dict[str, Any] = {"hparams": hparams}
    for field in dataclasses.fields(TrialConfig):
        if field.name == "hparams" or field.name not in params:
            continue
        default = field.default
        values[field.name] = _typed(params[field.name], default, field.name == "jit_compile")
    try:
        return TrialConfig(**values)
    except TypeError as err:
        raise ScoringError(f"run {run_id}: its parameters are not a trial's ({err})") from None


def _typed(text: str, default: Any, auto_or_bool: bool = False) -> Any:
    if auto_or_bool or isinstance(default, bool):
        return {"True": True, "False": False}.get(text, text)
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return text


def _frames_per_clip(run, client: MlflowClient) -> int:
    """A ``frames_per_clip`` tag on the run, else its parent run's parameter."""
    value = run.data.tags.get("frames_per_clip")
    parent = run.data.tags.get(tracking.PARENT_TAG)
    if value is None and parent:
        value = client.get_run(parent).data.params.get("frames_per_clip")
    if value is None:
        raise ScoringError(f"run {run.info.run_id}: frames per clip not logged on it or its parent")
    return int(value)


def _dev_threshold(run, client: MlflowClient) -> float:
    """The dev EER threshold of the setting whose head was kept (the first one)."""
    metrics = run.data.metrics
    if int(metrics.get("settings", 1)) == 1:
        if "dev_threshold" not in metrics:
            raise ScoringError(f"run {run.info.run_id}: no dev_threshold metric")
        return float(metrics["dev_threshold"])
    with tempfile.TemporaryDirectory() as folder:
        path = fetch_artifact(run.info.run_id, SETTINGS_CSV, Path(folder))
        table = pd.read_csv(path, float_precision="round_trip")
    return float(table["dev_threshold"].iloc[0])


def fetch_artifact(run_id: str, name: str, folder: Path) -> Path:
    """A run's artifact copied into ``folder`` (no progress bar); ScoringError if it is absent."""
    try:
        return Path(tracking.fetch_artifact(run_id, name, folder))
    except (MlflowException, OSError):
        raise ScoringError(f"run {run_id}: has no artifact {name}") from None


def fetch_head_weights(model: TrialModel, folder: Path) -> Path:
    """The run's ``head.weights.h5`` in ``folder``; a run that kept none is a ScoringError."""
    names = {item.path for item in MlflowClient().list_artifacts(model.run_id)}
    if HEAD_WEIGHTS not in names:
        raise ScoringError(
            f"run {model.run_id} (trial {model.trial}, {model.config.head}) has no head weights: "
            "the sweep logged none for it (--keep-weights best keeps only each family's "
            "improvements, none keeps none); rerun that configuration with --keep-weights all"
        )
    return fetch_artifact(model.run_id, HEAD_WEIGHTS, folder)


def fetch_top_weights(model: TrialModel, folder: Path) -> Path | None:
    """A fine-tuned trial's ``backbone_top.h5`` in ``folder``; None for a frozen backbone."""
    if model.fine_tune == "none":
        return None
    names = {item.path for item in MlflowClient().list_artifacts(model.run_id)}
    if TOP_WEIGHTS not in names:
        raise ScoringError(
            f"run {model.run_id} (trial {model.trial}) fine-tuned its backbone "
            f"({model.fine_tune}) but has no {TOP_WEIGHTS}: its backbone cannot be rebuilt"
        )
    return fetch_artifact(model.run_id, TOP_WEIGHTS, folder)


def best_trial_run(study: str, family: str | None = None) -> str:
    """Run id of the study's best finished trial (of ``family``), as the comparison orders them:
    dev ACER, then dev EER, then fewer parameters, then the earlier trial."""
    found = mlflow.search_experiments(filter_string=f"tags.`{tracking.STUDY_TAG}` = '{study}'")
    if not found:
        raise ScoringError(
            f"--study {study!r}: no such study in {mlflow.get_tracking_uri()} "
            "(python experiments/compare.py --list shows them)"
        )
    trials = comparison.trial_table(tracking.study_runs(found[0].experiment_id, study))
    if trials.empty:
        raise ScoringError(f"study {study}: no finished trial yet")
    if family is not None:
        present = sorted(trials["family"].unique())
        trials = trials[trials["family"] == family]
        if trials.empty:
            raise ScoringError(
                f"study {study}: no finished trial of head family {family!r}; it has "
                f"{', '.join(present)}"
            )
    return str(trials["run_id"].iloc[0])


# --------------------------------------------------------------------------- backbone


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
            raise ScoringError(
                f"{flag} {path}: no such file; run {model.run_id} used {_used(model)}"
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
        raise ScoringError(f"{err}; run {model.run_id} used {_used(model)}") from None
    if found != model.weights_fingerprint:
        what = f"weights {path} ({found})" if path is not None else f"the random backbone ({found})"
        raise ScoringError(
            f"{what} are not the backbone run {model.run_id} used: {_used(model)}; "
            f"pass that file with {flag}"
        )
    return path


def _used(model: TrialModel) -> str:
    if model.random_backbone:
        return f"the random backbone ({model.weights_fingerprint}), i.e. no weights file"
    named = "" if model.weights == DEFAULT_WEIGHTS else f"{model.weights}, "
    return f"{named}{model.weights_fingerprint}"


@functools.lru_cache(maxsize=1)
def _backbone(
    path: str | None,
    fingerprint: str,
    precision: str,
    top: str | None = None,
    fine_tune: str = "none",
) -> tuple[Any, np.ndarray | None]:
    """VGG-Face to fc7 and its mean colour, built once per process for a file and precision:
    extraction's own builder, so the features are the cache's (``fingerprint`` keys the cache).
    A fine-tuned trial's layers (``top``, a ``backbone_top.h5``) replace the backbone's."""
    from core.features.extract import _load_backbone

    model, average = _load_backbone(Path(path) if path is not None else None, precision)
    if top is not None:
        from core.backbone.network import FINE_TUNE_LAYERS, load_top_weights

        load_top_weights(model, top, FINE_TUNE_LAYERS[fine_tune])
    return model, average


def crop_detector(
    face_crop: str, override: str | None = None, fallback: str | None = None
) -> str | None:
    """The face detector that crops new clips as the study's clips were (None: no crop).

    ``override`` (``mtcnn``, ``haar`` or ``auto``) replaces the study's detector. A study cropped
    with its database's own boxes alone, which other clips do not have, takes ``override``, else
    ``fallback``, else is a ScoringError.
    """
    if face_crop == NO_CROP:
        return None
    method = face_crop.split(" + ")[-1].strip()
    if method in (faces.MTCNN, faces.HAAR):
        detector = override or method
        if detector != method:
            log.warning("the study cropped faces with %s; these clips with %s", method, detector)
    elif override or fallback:
        detector = override or fallback
        log.warning("the study cropped with its database's face boxes; these with %s", detector)
    else:
        raise ScoringError(
            f"the study cropped faces with {face_crop!r}, boxes other clips do not have: pass "
            "--face-detector mtcnn or haar to crop these clips with a detector"
        )
    try:
        return faces.resolve_detector(detector)
    except DataError as err:
        raise ScoringError(str(err)) from None


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class ClipScore:
    path: Path
    score: float  # probability of bona fide
    bonafide: bool  # score >= the dev threshold
    frame_scores: np.ndarray | None  # frame heads: each frame's score (the clip's is their mean)
    no_face: int  # frames where the detector found no face


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
                f"run {model.run_id} fine-tuned {model.fine_tune}: its {TOP_WEIGHTS} is needed "
                "exactly when it fine-tuned"
            )
        self.model, self.detector = model, detector
        config = model.config
        self.kind = config.kind
        self.backbone, self.average = _backbone(
            str(weights) if weights is not None else None,
            model.weights_fingerprint,
            config.precision,
            os.fspath(top_weights) if top_weights is not None else None,
            model.fine_tune,
        )
        with dtype_policy(config.precision):  # as experiments.training.train_head builds it
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
            fc7 = np.asarray(self.backbone.predict_on_batch(batch), dtype=np.float32)
            out.append(fc7.reshape(-1, FEATURE_SIZE))
        return np.concatenate(out) if out else np.empty((0, FEATURE_SIZE), np.float32)

    def _scores(self, x: np.ndarray) -> np.ndarray:
        return predict_scores(self.scorer, x, self.model.config.output)

    def score_clip(self, path: str | os.PathLike) -> ClipScore:
        """Score one video or frame folder. Raises ClipError (a DataError) when it is unusable."""
        path = Path(path)
        frames_per_clip = self.model.frames_per_clip
        raw, _ = read_clip(path, frames_per_clip)
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
        return ClipScore(path, score, score >= self.model.threshold, frame_scores, no_face)

    def score_frames(self, frames: np.ndarray) -> np.ndarray:
        """Bona fide probabilities of a batch of uint8 RGB frames (N, H, W, 3), float64.

        Each frame is cropped to its own face (a frame without one to its centre square) when the
        study cropped faces, resized to 224x224 and mean-subtracted as in extraction. A frame head
        gives one probability per frame; a sequence head reads the batch as N / T consecutive
        clips of its T frames per clip and gives one per clip.
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
        if self.detector is None:
            prepared = prepare_frames(frames)
        else:
            boxes = faces.detect_faces(frames, self.detector)
            prepared = np.concatenate(
                [prepare_frames(f[None], [box]) for f, box in zip(frames, boxes, strict=True)]
            )
        fc7 = self.features(prepared)
        if self.kind == "sequence":
            return self._scores(fc7.reshape(len(frames) // count, count, 1, 1, -1))
        return self._scores(fc7.reshape(len(frames), 1, 1, -1))
