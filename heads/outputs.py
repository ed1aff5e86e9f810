"""The classifier's last layer, its matching loss, and reading a bona fide score back out.

Class convention, everywhere in the project: 1 = bona fide, 0 = attack. With ``"softmax"`` the
head ends in Dense(2, softmax) as in the write-up and trains on integer labels; with ``"sigmoid"``
it ends in Dense(1, sigmoid), the write-up's "try sigmoid, it suits binary classification" done
properly for two classes (a sigmoid over two units would not be a distribution).

Training reads the prediction layer's logits (:func:`logits_loss`, ``heads.training_model``):
Keras' cross-entropy on probabilities clips them to [1e-7, 1 - 1e-7] and so has no gradient once a
head saturates. The TensorFlow backend avoids that by finding the logits behind a softmax/sigmoid
output; JAX has no such path, which is why heads on raw fc7 (scale ~100) froze at scores of exactly
0 or 1 there. The output layer always computes in float32 (mixed precision: float32 outputs).
"""

from __future__ import annotations

import keras
import numpy as np
from scipy import special

from core.constants import BONAFIDE
from heads.checks import one_of

OUTPUTS = ("softmax", "sigmoid")
_LOSSES = {"softmax": "sparse_categorical_crossentropy", "sigmoid": "binary_crossentropy"}


def check_output(output: object) -> str:
    """``output`` if it is ``"softmax"`` or ``"sigmoid"``, else a one-line ``ValueError``."""
    return one_of("output", output, OUTPUTS)


def output_layer(output: str) -> keras.layers.Dense:
    """The head's last layer, named ``prediction`` whichever the output."""
    if check_output(output) == "softmax":
        return keras.layers.Dense(2, activation="softmax", name="prediction", dtype="float32")
    return keras.layers.Dense(1, activation="sigmoid", name="prediction", dtype="float32")


def loss_for(output: str) -> str:
    """The Keras loss that matches ``output``: labels are integers 0 (attack) / 1 (bona fide)."""
    return _LOSSES[check_output(output)]


def logits_loss(output: str) -> keras.losses.Loss:
    """The loss of ``output`` on the prediction layer's logits (``from_logits=True``)."""
    if check_output(output) == "softmax":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return keras.losses.BinaryCrossentropy(from_logits=True)


def bonafide_score_from_logits(logits: object, output: str) -> np.ndarray:
    """Probability of bona fide, shape (N,), from the prediction layer's logits, in float64.

    The same probability as :func:`bonafide_score`, without float32 rounding it to 0 or 1: an
    attack scored 1e-30 is not tied with one scored 1e-20 (float64 holds down to 5e-324).
    """
    output = check_output(output)
    array = np.asarray(logits, dtype=np.float64)
    if output == "softmax":
        if array.ndim != 2 or array.shape[1] != 2:
            raise ValueError(f"softmax logits must have shape (N, 2), got {array.shape}")
        margin = array[:, BONAFIDE] - array[:, 1 - BONAFIDE]
    elif array.ndim == 2 and array.shape[1] == 1 or array.ndim == 1:
        margin = array.reshape(-1)
    else:
        raise ValueError(f"sigmoid logits must have shape (N, 1) or (N,), got {array.shape}")
    # the logistic function: 0.5 * (1 + tanh(margin / 2)) was exactly 0 below a margin of -38
    return special.expit(margin)  # 0 only below -745; 1 above about 37 (1 - 1e-17 is 1)


def bonafide_score(predictions: object, output: str) -> np.ndarray:
    """Probability of bona fide, shape (N,), from a head's ``predict`` output."""
    output = check_output(output)
    array = np.asarray(predictions, dtype=np.float64)
    if output == "softmax":
        if array.ndim != 2 or array.shape[1] != 2:
            raise ValueError(f"softmax predictions must have shape (N, 2), got {array.shape}")
        return array[:, BONAFIDE]
    if array.ndim == 2 and array.shape[1] == 1 or array.ndim == 1:
        return array.reshape(-1)
    raise ValueError(f"sigmoid predictions must have shape (N, 1) or (N,), got {array.shape}")
