"""What VGG-Face is, without Keras: its layers, their shapes, parameter counts, input normalisation.

Everything here is numpy, so the MatConvNet reader and the feature cache can use it without
loading Keras. The network itself is built by :mod:`core.backbone.network`.
"""

from __future__ import annotations

import numpy as np

from core.constants import AVERAGE_RGB, FEATURE_SIZE

NUM_IDENTITIES = 2622  # VGG-Face training identities (fc8 width)
# (block, number of convs, filters) from the VGG-Face paper / MatConvNet file.
BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
CONV_LAYERS = tuple(f"conv{b}_{i}" for b, n, _ in BLOCKS for i in range(1, n + 1)) + (
    "fc6",
    "fc7",
    "fc8",
)
# Parameter counts from the write-up's model.summary() tables.
PARAMS_TO_FC7 = 134_260_544
PARAMS_WITH_TOP = 145_002_878


def expected_shapes() -> dict[str, tuple[int, int, int, int]]:
    """Filter shape (H, W, Cin, Cout) of every VGG-Face conv layer, by MatConvNet name."""
    shapes: dict[str, tuple[int, int, int, int]] = {}
    channels = 3
    for block, convs, filters in BLOCKS:
        for i in range(1, convs + 1):
            shapes[f"conv{block}_{i}"] = (3, 3, channels, filters)
            channels = filters
    shapes["fc6"] = (7, 7, channels, FEATURE_SIZE)
    shapes["fc7"] = (1, 1, FEATURE_SIZE, FEATURE_SIZE)
    shapes["fc8"] = (1, 1, FEATURE_SIZE, NUM_IDENTITIES)
    return shapes


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


# Fine-tuning the top of the backbone (the write-up's "all trainable" models, SPEC §5): the layers
# each choice unfreezes, and the frozen layer whose output feeds them (nothing before it changes).
FINE_TUNE_LAYERS = {
    "none": (),
    "fc": ("fc6", "fc7"),
    "conv5": ("conv5_1", "conv5_2", "conv5_3", "fc6", "fc7"),
}
FINE_TUNE = tuple(FINE_TUNE_LAYERS)
FROZEN_OUTPUT = {"fc": "pool5", "conv5": "pool4"}
