"""Build a registered head alone (on cached fc7 features) or with VGG-Face in front of it.

Search trains heads on cached features, which is why :func:`build_head_model` exists; the
write-up's end-to-end model is :func:`build_full_model`, which is the same head assembled onto a
new backbone, so both paths share one definition of every head.
"""

from __future__ import annotations

import os
from typing import Any

import keras

from core import build_vggface
from core.constants import FEATURE_SHAPE, FRAMES_PER_CLIP
from heads.assembly import FEATURE_DROPOUT, assemble
from heads.checks import dropout_rate, positive_int
from heads.outputs import check_output, output_layer
from heads.registry import get_spec, resolve_hparams

FC7_DROPOUT = 0.5  # VGG-Face's dropout after fc7 (write-up: Dropout(0.5)), replayed on features


def feature_input_shape(name: str, frames: int = FRAMES_PER_CLIP) -> tuple[int, ...]:
    """What head ``name`` reads: (1, 1, 4096), or (frames, 1, 1, 4096) for a sequence head."""
    frames = positive_int("frames", frames)  # checked for frame heads too: a bad value is a bug
    if get_spec(name).kind == "sequence":
        return (frames, *FEATURE_SHAPE)
    return tuple(FEATURE_SHAPE)


def build_head_model(
    name: str,
    output: str = "softmax",
    feature_dropout: float = FC7_DROPOUT,
    frames: int = FRAMES_PER_CLIP,
    **hparams: Any,
) -> keras.Model:
    """Head ``name`` alone, reading fc7 features as cached by the feature extractor.

    Cached features are taken with the backbone at inference, so its fc7 dropout never acted on
    them; ``feature_dropout`` (a Dropout on the input, active only in training, 0 = none) puts it
    back so a head trained here sees what it would see trained end to end. ``frames`` is the
    sequence length of sequence heads and is ignored by frame heads. ``hparams`` override the
    head's defaults (``get_spec(name).defaults``).
    """
    spec = get_spec(name)
    output = check_output(output)
    feature_dropout = dropout_rate("feature_dropout", feature_dropout)
    params = resolve_hparams(spec, hparams)
    shape = feature_input_shape(name, frames)

    inputs = keras.Input(shape=shape, name="fc7_features")
    x = inputs
    if feature_dropout > 0:
        x = keras.layers.Dropout(feature_dropout, name=FEATURE_DROPOUT)(x)
    x = spec.builder(x, **params)
    return keras.Model(inputs, output_layer(output)(x), name=name)


def build_full_model(
    name: str,
    output: str = "softmax",
    backbone_weights: str | os.PathLike | None = None,
    frames: int = FRAMES_PER_CLIP,
    **hparams: Any,
) -> keras.Model:
    """The write-up's end-to-end model: VGG-Face up to fc7's dropout, then head ``name``.

    Sequence heads read (frames, 224, 224, 3) clips, VGG-Face applied to each frame under
    TimeDistributed. With ``output="softmax"`` and the defaults, ``count_params()`` is the
    write-up's whole-model count. ``backbone_weights`` is passed to :func:`core.build_vggface`.
    """
    # The head first: its arguments are checked before the 134M-parameter backbone is built.
    head = build_head_model(name, output, feature_dropout=0.0, frames=frames, **hparams)
    backbone = build_vggface(backbone_weights, include_top=False)
    return assemble(head, backbone, name=f"vggface_{name}")
