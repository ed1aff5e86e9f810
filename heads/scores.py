"""A head's bona fide scores on many inputs, and its weights on disk without optimizer state.

Shared by training (dev scoring after every epoch) and serving (new clips): both read a head's
output the same way, so a clip scores what the study's ``scores.csv`` says.
"""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np

from heads.fitting import LOGITS_LAYER
from heads.outputs import bonafide_score, bonafide_score_from_logits

PREDICT_BATCH = 256  # inputs per forward pass when scoring
PREDICT_BYTES = 64 * 2**20  # ... at most this much input (a batch of pool4 clips is large)


def predict_scores(model: keras.Model, x: Any, output: str, batch: int | None = None) -> np.ndarray:
    """Bona fide probability of every input, batch by batch, with dropout off.

    ``model`` is a head (probabilities out) or its :func:`heads.training_model` (logits out, read
    in float64: no score is rounded to 0, nor to 1 below a logit margin of about 37, where the
    probability is 1 - 1e-16), possibly behind fine-tuned backbone
    layers. ``x`` is an array or anything sliceable with a ``shape`` (rows read from disk). By
    default a batch is :data:`PREDICT_BATCH` inputs, fewer when they are large.
    """
    if batch is None:
        per_input = int(np.prod(x.shape[1:])) * 4
        batch = max(1, min(PREDICT_BATCH, PREDICT_BYTES // per_input))
    outputs = np.concatenate(
        [model.predict_on_batch(x[i : i + batch]) for i in range(0, len(x), batch)]
    )
    if _last_layer(model).name == LOGITS_LAYER:
        return bonafide_score_from_logits(outputs, output)
    return bonafide_score(outputs, output)


def _last_layer(model: keras.Model) -> keras.layers.Layer:
    """The layer that makes ``model``'s output, inside nested models too."""
    last = model.layers[-1]
    return _last_layer(last) if isinstance(last, keras.Model) else last


def save_head_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """Write ``model``'s weights alone, without any optimizer state, to ``path`` (``.weights.h5``).

    The file is Keras' own ``.weights.h5`` (HDF5, one group per layer, in the model's layer
    order); ``model.load_weights(path)`` reads it into a freshly built head of the same name and
    hyper-parameters (``heads.build_head_model``). A compiled model's optimizer is skipped.
    """
    from keras.src.saving import saving_lib  # the one save that can skip the optimizer

    optimizer = getattr(model, "optimizer", None)
    skip = [optimizer] if optimizer is not None else None
    saving_lib.save_weights_only(model, os.fspath(path), objects_to_skip=skip)
