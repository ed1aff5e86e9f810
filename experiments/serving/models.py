"""The best trial of each head family as a registered MLflow model, scoring frames.

:func:`log_best_models` logs one pyfunc model per "best <family>" row of the comparison in
that trial's own run (as its artifacts ``model/``, so a version's source run is the trial) and
registers it as ``<study>-<family>``; the alias ``best`` follows the study's current best of that
family::

    model = mlflow.pyfunc.load_model("models:/<study>-<family>@best")   # or .../<version>
    probabilities = model.predict(frames)   # uint8 RGB (N, H, W, 3) -> bona fide, float64

The model is :mod:`experiments.serving.pyfunc_model` logged as code (nothing pickled) with its
config: a few kilobytes. Nothing large is copied: the head's weights stay in the trial's run,
where the model fetches them when loaded (as it fetches a fine-tuned trial's backbone layers), and
the ~500 MB backbone is found by path and fingerprint and rebuilt. So loading needs the tracking
store the study logged to. A study rerun with the same best trial logs nothing new.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models.signature import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import Schema, TensorSpec

from core.words import percent
from experiments.serving import trial_model
from experiments.serving.trial_model import ScoringError, TrialModel
from experiments.stores import tracking
from experiments.stores.runs_table import family_bests

log = logging.getLogger(__name__)

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
ALIAS = "best"
RUN_TAG = "vggface_heads.trial_run_id"  # on each model version: the trial run it was made from
SIGNATURE = ModelSignature(
    inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))]),  # frames, RGB
    outputs=Schema([TensorSpec(np.dtype(np.float64), (-1,))]),  # bona fide probabilities
)
# Given, not inferred: inferring loads the model (the backbone) in a subprocess. The project
# itself (vggface-heads) must be installed where the model is loaded.
REQUIREMENTS = ("mlflow", "keras", "tensorflow", "numpy", "h5py", "opencv-python-headless")


def registered_name(study_name: str, family: str) -> str:
    """``<study>-<family>``, the registered model of that family's best trial in the study."""
    return f"{study_name}-{family}"


def log_best_models(study_name: str, table: pd.DataFrame) -> list[str]:
    """Mark (:func:`~experiments.stores.tracking.mark_family_bests`), log and register the best
    trial of each head family; returns ``models:/<name>/<version>``.

    ``table`` is :func:`experiments.results.tables.comparison`'s (its rows of each family's best,
    :func:`~experiments.stores.runs_table.family_bests`). A family's best trial without head weights
    (``--keep-weights none``) is warned and skipped; one already registered keeps its version,
    which ``@best`` points at.
    """
    client = MlflowClient()
    best = family_bests(table)
    tracking.mark_family_bests(study_name, list(best["run_id"]))
    uris = []
    for run_id in best["run_id"]:
        model = trial_model.trial_model(run_id, client)
        name = registered_name(study_name, model.config.family)
        version = _registered_version(client, name, run_id)
        if version is None:
            try:
                version = _log_model(client, model, name)
            except ScoringError as err:
                log.warning("no model for %s: %s", name, err)
                continue
        client.set_registered_model_alias(name, ALIAS, version)
        uris.append(f"models:/{name}/{version}")
    return uris


def unregistered(study_name: str, table: pd.DataFrame) -> list[str]:
    """The families whose best trial in ``table`` (with head weights) is not what their
    registered model's ``@best`` points at, or is not marked as the family's best: a sweep
    stopped between its last trial and :func:`log_best_models`. Reads only."""
    client = MlflowClient()
    best = family_bests(table)
    missing = []
    for group, run_id in zip(best["group"], best["run_id"], strict=True):
        family = str(group).removeprefix("best ")
        try:
            version = client.get_model_version_by_alias(registered_name(study_name, family), ALIAS)
            pointed = version.tags.get(RUN_TAG)
        except MlflowException:  # no such model or alias
            pointed = None
        if pointed != run_id and tracking.has_artifact(run_id, tracking.HEAD_WEIGHTS):
            missing.append(family)
        elif client.get_run(run_id).data.tags.get(tracking.FAMILY_BEST_TAG) != "true":
            missing.append(family)  # registered, not marked: a study made before the mark
    return missing


def _registered_version(client: MlflowClient, name: str, run_id: str) -> str | None:
    """The version of ``name`` already made from trial run ``run_id``, if any."""
    for version in client.search_model_versions(f"name = '{name}'"):
        if version.tags.get(RUN_TAG) == run_id:
            return str(version.version)
    return None


def _log_model(client: MlflowClient, model: TrialModel, name: str) -> str:
    """Save the model, log it under its trial run's ``model/`` and register it from there.

    Saved, then logged as artifacts, not ``mlflow.pyfunc.log_model``: that logs the model's
    config as the active run's parameters. The head's weights are not copied in: the model
    names its trial's run, which holds them; a run that kept none is refused here.
    """
    artifact_path = "model"
    with tempfile.TemporaryDirectory() as folder, tracking.quiet_artifacts():
        if not tracking.has_artifact(model.run_id, tracking.HEAD_WEIGHTS):
            trial_model.fetch_head_weights(model, Path(folder))  # says why, as a ScoringError
        saved = Path(folder) / "model"
        # Keys a loader may override: mlflow.pyfunc.load_model(uri, model_config={...}).
        config = {
            "trial": model.to_dict(),
            "weights_path": None,
            "face_detector": None,
            "score_faceless": False,
        }
        with warnings.catch_warnings():  # "no input example": one would run the backbone
            warnings.simplefilter("ignore", UserWarning)
            mlflow.pyfunc.save_model(
                path=str(saved),
                python_model=str(MODEL_CODE),
                model_config=config,
                signature=SIGNATURE,
                pip_requirements=_requirements(),
                metadata=input_metadata(model),
            )
        client.log_artifacts(model.run_id, str(saved), artifact_path)
        # MLflow prints "Successfully registered model ..." itself; the sweep says it once
        with contextlib.redirect_stderr(open(os.devnull, "w")) as sink, sink:
            tags = _version_tags(model) | kept_head_tags(client.get_run(model.run_id))
            version = mlflow.register_model(
                f"runs:/{model.run_id}/{artifact_path}", name, tags=tags
            )
    return str(version.version)


def kept_head_tags(run) -> dict[str, str]:
    """Of a trial of several settings, whose run logs their means, the tags naming the setting
    whose head the version is and that head's own figures (probe: a table row's means described
    a head other than the one served)."""
    kept = trial_model.kept_setting(run)
    if kept is None:
        return {}
    named = (("dev_acer", "dev ACER"), ("test_acer", "test ACER"), ("test_hter", "test HTER"))
    own = ", ".join(f"{label} {percent(kept[key])}%" for key, label in named if key in kept)
    settings = int(run.data.metrics["settings"])
    return {
        "kept_setting": str(kept["setting"]),
        "figures": f"this head's own ({kept['setting']}): {own}; its trial run's figures are "
        f"means over {settings} settings",
    }


def input_metadata(model: TrialModel) -> dict[str, Any]:
    """What the model reads, as a loaded model says it (``model.metadata.metadata``): a sequence
    head's score depends on which frames it is given (a user passed first, middle and last; the
    study read segment centres, and the decision flipped), so the frames are named, and the
    threshold their score is decided at, a frame head's on the mean of a clip's frames."""
    count = model.frames_per_clip
    sequence = model.config.kind == "sequence"
    demo = "a random backbone: a demonstration, whose scores mean nothing about VGG-Face"
    return {
        "reads": f"clips of {count} frames, in order" if sequence else "frames, one by one",
        # OpenCV reads BGR: a user's own reader's frames scored otherwise without a word (probe)
        "input": "uint8 RGB frames (N, H, W, 3); OpenCV's are BGR: cv2.cvtColor(frame, "
        "cv2.COLOR_BGR2RGB)",
        **({"backbone": demo} if model.random_backbone else {}),
        "frames_per_clip": count,
        "frames": f"core.data.frames.read_frames(clip, {count}): the centres of {count} equal "
        "segments of the clip, as the study read them",
        "dev_threshold": model.threshold,
        # the threshold was set on clips: a frame head's on the mean of a clip's frames (review)
        "decision": (
            f"a clip of {count} frames is bona fide where its probability is at or above "
            "dev_threshold"
            if sequence
            else f"a clip is bona fide where the mean of its {count} frames' probabilities is "
            "at or above dev_threshold (the threshold was set on clips; one frame's own "
            "probability was not calibrated)"
        ),
        # load it under this backend: a random demonstration backbone is each backend's own
        **({"keras_backend": model.keras_backend} if model.keras_backend else {}),
    }


def _version_tags(model: TrialModel) -> dict[str, str]:
    return {
        RUN_TAG: model.run_id,
        "trial": str(model.trial),
        "head": model.config.head,
        "output": model.config.output,
        "dev_threshold": repr(model.threshold),
        "frames_per_clip": str(model.frames_per_clip),
        **model.face_crop.tags(),
        "extraction_precision": model.extraction_precision,
        "weights": model.weights,
        "weights_fingerprint": model.weights_fingerprint,
    }


def _requirements() -> list[str]:
    pins = []
    for package in REQUIREMENTS:
        try:
            pins.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(package)
    return pins
