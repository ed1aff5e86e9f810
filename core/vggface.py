"""VGG-Face (Parkhi et al., BMVC 2015) in Keras 3, layer for layer as the MatConvNet original.

Layers carry the MatConvNet names (``conv1_1`` ... ``conv5_3``, ``fc6``, ``fc7``, ``fc8``) so that
:mod:`core.port` can copy weights by name. Only ``keras`` and ``keras.ops`` are used, so the model
runs on every Keras backend (TensorFlow by default, JAX too).
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np

INPUT_SHAPE = (224, 224, 3)
FEATURE_SHAPE = (1, 1, 4096)  # fc7 map that every head consumes
NUM_IDENTITIES = 2622  # VGG-Face training identities (fc8 width)
# averageImage of the released vgg_face.mat, RGB order (SPEC §2). Caffe ports use BGR: not these.
AVERAGE_RGB = np.array([129.1863, 104.7624, 93.5940], dtype=np.float32)

# (block, number of convs, filters) from the VGG-Face paper / MatConvNet file.
BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
CONV_LAYERS = tuple(f"conv{b}_{i}" for b, n, _ in BLOCKS for i in range(1, n + 1)) + (
    "fc6",
    "fc7",
    "fc8",
)
# Initialiser of a backbone built without weights: He keeps the image's signal through 15 ReLU
# layers (Glorot's default shrinks it ~2x per layer, leaving fc7 near 0.02, which no head learns
# from in a demonstration run). Part of a random backbone's identity in the feature cache.
RANDOM_INIT = "he_normal"
# Parameter counts from the write-up's model.summary() tables.
PARAMS_TO_FC7 = 134_260_544
PARAMS_WITH_TOP = 145_002_878


def build_vggface(
    weights: str | os.PathLike | None = None, include_top: bool = True
) -> keras.Model:
    """Build VGG-Face.

    Args:
        weights: ``None`` (random initialisation), a MatConvNet ``.mat`` file (either layout of
            SPEC §2) or a converted Keras weights file written by ``python -m core.port --out``.
        include_top: with the top, the model ends in fc8 (2622 identities) and a softmax;
            without it, the model stops after fc7's dropout and outputs the (1, 1, 4096) fc7 map
            that every head consumes.

    Returns:
        A functional ``keras.Model`` taking (224, 224, 3) images preprocessed by
        :func:`preprocess_input`.
    """
    if not isinstance(include_top, bool):
        raise ValueError(f"include_top must be True or False, got {include_top!r}")
    if weights is not None and not isinstance(weights, str | os.PathLike):
        raise ValueError(
            f"weights must be None or a path to a .mat or .weights.h5 file, "
            f"got {type(weights).__name__}"
        )

    init = RANDOM_INIT
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = inputs
    for block, convs, filters in BLOCKS:
        for i in range(1, convs + 1):
            x = keras.layers.Conv2D(
                filters,
                3,
                padding="same",
                activation="relu",
                kernel_initializer=init,
                name=f"conv{block}_{i}",
            )(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"pool{block}")(x)

    # The fully connected layers are convolutions, as in MatConvNet (fc6 is 7x7 over pool5).
    x = keras.layers.Conv2D(
        4096, 7, padding="valid", activation="relu", kernel_initializer=init, name="fc6"
    )(x)
    x = keras.layers.Dropout(0.5, name="dropout6")(x)
    x = keras.layers.Conv2D(4096, 1, activation="relu", kernel_initializer=init, name="fc7")(x)
    x = keras.layers.Dropout(0.5, name="dropout7")(x)
    if include_top:
        # fc8 is linear. The write-up's Keras code puts a ReLU here; that is a slip: the original
        # network feeds raw fc8 scores to the softmax.
        x = keras.layers.Conv2D(NUM_IDENTITIES, 1, activation=None, name="fc8")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Activation("softmax", name="prob")(x)
    model = keras.Model(inputs, x, name="vggface" if include_top else "vggface_fc7")

    if weights is not None:
        from core.port import load_weights  # local import: port imports this module

        load_weights(model, Path(weights))
    return model


def preprocess_input(images, average_image=None) -> np.ndarray:
    """Images for VGG-Face: RGB in 0..255 (uint8 or float), minus the mean colour.

    The MatConvNet VGG-Face takes RGB (not BGR) and subtracts ``averageImage``, by default the
    released file's (129.1863, 104.7624, 93.5940). ``average_image`` may be given in any layout a
    MatConvNet file stores it in ((3,), (3, 1), (1, 3), (1, 1, 3) or a whole HxWx3 image, of which
    the per-channel mean is used).

    Returns float32 of the same shape as ``images``.
    """
    array = np.asarray(images)
    if array.ndim < 3 or array.shape[-1] != 3:
        raise ValueError(f"images must have shape (..., H, W, 3) in RGB order, got {array.shape}")
    mean = AVERAGE_RGB if average_image is None else mean_rgb(average_image)
    return array.astype(np.float32) - mean


def mean_rgb(average_image) -> np.ndarray:
    """Per-channel mean (3,) of an averageImage stored as (3,), (3,1), (1,3), (1,1,3) or HxWx3."""
    array = np.asarray(average_image, dtype=np.float64)
    if array.size == 3:
        return array.reshape(3).astype(np.float32)
    if array.ndim == 3 and array.shape[-1] == 3:
        return array.reshape(-1, 3).mean(axis=0).astype(np.float32)
    raise ValueError(f"averageImage must have 3 values or shape (H, W, 3), got shape {array.shape}")
