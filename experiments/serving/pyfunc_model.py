"""The MLflow pyfunc model of a trial's head on its backbone, logged as code.

MLflow's "models from code": :func:`experiments.serving.models.log_best_models` logs this file as
the model; loading runs it, so nothing is unpickled. The model holds its config
(``model_config["trial"]``: the trial's head configuration, frames per clip, dev threshold, face
crop, extraction precision and the backbone's weights path and fingerprint) and nothing large:
when it loads, it fetches the head's weights (and a fine-tuned trial's backbone layers) from the
trial's run in the tracking store, and rebuilds the backbone from the file with that fingerprint
(the path the study was given, else ``$VGGFACE_WEIGHTS`` or the cache's converted file), or, for
the demo's random backbone, from its seed. Another weights file or face detector can be named::

    mlflow.pyfunc.load_model(uri, model_config={"weights_path": "/data/vgg_face.weights.h5"})

A study that cropped with its database's own face boxes is cropped with ``auto`` (MTCNN where it
runs) unless ``face_detector`` says otherwise, with a warning.

``predict(frames)`` takes uint8 RGB frames (N, H, W, 3) and gives each one's probability of being
bona fide (a sequence head: one per clip of T consecutive frames), preprocessed as the sweep's
features were (:meth:`experiments.serving.scorer.Scorer.score_frames`), each frame cropped on its
own: a frame where the detector finds no face (a clip with none, for a sequence head) scores NaN,
with a warning, unless ``model_config={"score_faceless": True}``. Loading imports neither Optuna
nor plotly; it needs this project installed.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class HeadOnBackbone(PythonModel):
    """A trial's head on VGG-Face; the heavy parts are built in :meth:`load_context`."""

    def load_context(self, context) -> None:
        from core.features import faces
        from experiments.serving import scorer, trial_model

        config = context.model_config or {}
        try:
            model = trial_model.TrialModel.from_dict(config["trial"])
        except (KeyError, TypeError) as err:  # a part of it given: a bare KeyError (probe)
            raise trial_model.ScoringError(
                f"model_config trial: the whole trial as the model logged it, or none (its "
                f"{err} is missing or wrong): override weights_path, face_detector or "
                "score_faceless instead"
            ) from None
        weights = scorer.backbone_weights(
            model, config.get("weights_path") or None, flag="model_config weights_path"
        )
        detector = scorer.crop_detector(
            model.face_crop,
            config.get("face_detector") or None,
            fallback=faces.AUTO,
            flag="model_config face_detector",
        )
        if model.face_crop.used_database_boxes:
            logging.getLogger(__name__).warning(
                "the study cropped %d of its %d clips with its database's own face boxes; frames "
                "are cropped with %s (predict.py measures how that changes the study's scores)",
                model.face_crop.database_boxes,
                model.face_crop.clips,
                detector,
            )
        for said in scorer.drift(model, detector):  # as predict.py says them (review)
            logging.getLogger(__name__).warning(said)
        self.score_faceless = scorer.check_score_faceless(
            model.face_crop, _switch(config.get("score_faceless")), "model_config score_faceless"
        )
        with tempfile.TemporaryDirectory() as folder:  # the head and a fine-tuned top, from the run
            head = trial_model.fetch_head_weights(model, Path(folder))
            top = trial_model.fetch_top_weights(model, Path(folder))
            self.scorer = scorer.Scorer(model, head, weights, detector, top)

    # np.ndarray: a type hint MLflow infers no schema from; the model's tensor signature is
    # given when it is logged (experiments.serving.models.SIGNATURE).
    def predict(
        self, context, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        return self.scorer.score_frames(np.asarray(model_input), self.score_faceless)


def _switch(value: object) -> bool:
    """A model_config switch: a bool, or its text as JSON and command lines give it ("false" had
    been read as True: review); anything else is a ScoringError."""
    from experiments.serving.trial_model import ScoringError

    if value is None or isinstance(value, bool):
        return bool(value)
    said = str(value).strip().lower()
    if said in ("true", "false", "1", "0"):
        return said in ("true", "1")
    raise ScoringError(f"model_config score_faceless takes true or false, got {value!r}")


mlflow.models.set_model(HeadOnBackbone())
