"""The MLflow pyfunc model of a trial's head on its backbone, logged as code.

MLflow's "models from code": :func:`experiments.models.log_best_models` logs this file as the
model; loading runs it, so nothing is unpickled. The model holds the head's weights (artifact
``head_weights``) and its config (``model_config["trial"]``: the trial's head configuration,
frames per clip, dev threshold, face crop and the backbone's weights path and fingerprint). The
backbone is rebuilt when the model loads, from the file with that fingerprint (the path the study
was given, else ``$VGGFACE_WEIGHTS`` or the cache's converted file), or, for the demo's random
backbone, from its seed; a fine-tuned trial's backbone layers are fetched from its run. Another
weights file, or another face detector, can be named when loading::

    mlflow.pyfunc.load_model(uri, model_config={"weights_path": "/data/vgg_face.weights.h5"})

(a study that cropped with its database's own face boxes is cropped with ``auto``, MTCNN where it
runs, unless ``face_detector`` says otherwise).

``predict(frames)`` takes uint8 RGB frames (N, H, W, 3) and gives each one's probability of being
bona fide (a sequence head: one per clip of T consecutive frames), preprocessed as the sweep's
features were (:meth:`experiments.scoring.Scorer.score_frames`), except that a frame where the
detector finds no face is not filled from a neighbour of its clip: each frame is cropped on its
own. It needs this project installed.
"""

from __future__ import annotations

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
        from experiments import scoring

        config = context.model_config or {}
        model = scoring.TrialModel.from_dict(config["trial"])
        weights = scoring.backbone_weights(
            model, config.get("weights_path") or None, flag="model_config weights_path"
        )
        detector = scoring.crop_detector(
            model.face_crop, config.get("face_detector") or None, fallback=faces.AUTO
        )
        with tempfile.TemporaryDirectory() as folder:  # a fine-tuned top, from its trial's run
            top = scoring.fetch_top_weights(model, Path(folder))
            self.scorer = scoring.Scorer(
                model, context.artifacts["head_weights"], weights, detector, top
            )

    # np.ndarray: a type hint MLflow infers no schema from; the model's tensor signature is
    # given when it is logged (experiments.models.SIGNATURE).
    def predict(
        self, context, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        return self.scorer.score_frames(np.asarray(model_input))


mlflow.models.set_model(HeadOnBackbone())
