"""Put a head trained on cached fc7 features back onto VGG-Face as one end-to-end model.

The head model starts with an optional ``feature_dropout`` layer that replays the backbone's fc7
dropout on cached features. The backbone (``include_top=False``) already ends with that dropout,
so the assembled model skips it: inference is unchanged (dropout is inactive there) and
fine-tuning end to end does not drop fc7 twice. Head layers are shared, not copied, except the
pointwise layers (:mod:`heads.pointwise`), which compute the write-up's 1x1 Conv2D / ConvLSTM2D as
matrix products: each becomes the stock Keras layer of the same name with the same weights, so the
assembled model is exactly the write-up's network. Either way the assembled model carries the
trained weights, and its output equals the head model's on the backbone's features.
"""

from __future__ import annotations

import keras

from core import build_vggface
from core.constants import FEATURE_SHAPE

FEATURE_DROPOUT = "feature_dropout"  # name of the head model's input dropout layer


def head_layers(head_model: keras.Model) -> list[keras.layers.Layer]:
    """The head's layers after its input, in order; only a single chain can be replayed."""
    layers = [
        layer for layer in head_model.layers if not isinstance(layer, keras.layers.InputLayer)
    ]
    previous = head_model.inputs[0] if len(head_model.inputs) == 1 else None
    for layer in layers:
        if previous is None or layer.input is not previous:
            raise ValueError(
                f"assemble needs a head model that is a single chain of layers from one "
                f"(1, 1, 4096) input, as heads.build_head_model makes; {head_model.name!r} is not "
                f"(at layer {layer.name!r})"
            )
        previous = layer.output
    return layers


def _writeup_call(layer: keras.layers.Layer, x: keras.KerasTensor) -> keras.KerasTensor:
    """``layer(x)``, or for a pointwise layer its stock write-up layer with the same weights."""
    if not hasattr(layer, "writeup_layer"):
        return layer(x)
    writeup = layer.writeup_layer()
    y = writeup(x)
    writeup.set_weights(layer.writeup_weights())
    return y


def assemble(
    head_model: keras.Model, backbone: keras.Model | None = None, *, name: str | None = None
) -> keras.Model:
    """``backbone`` (default: a new ``core.build_vggface(include_top=False)``) then ``head_model``.

    A frame head reads one image; a sequence head of T frames reads (T, H, W, 3) clips, the
    backbone applied per frame under TimeDistributed, as in the write-up.
    """
    feature_shape = tuple(head_model.inputs[0].shape[1:]) if head_model.inputs else ()
    if feature_shape == tuple(FEATURE_SHAPE):
        frames = None
    elif len(feature_shape) == 4 and feature_shape[1:] == tuple(FEATURE_SHAPE):
        frames = feature_shape[0]
        if frames is None:
            raise ValueError("assemble needs a sequence head with a fixed number of frames")
    else:
        raise ValueError(
            f"head model input must be (1, 1, 4096) or (frames, 1, 1, 4096) fc7 features, "
            f"got {feature_shape}"
        )
    layers = head_layers(head_model)  # checked before a default backbone is built

    if backbone is None:
        backbone = build_vggface(include_top=False)
    outputs = [tuple(tensor.shape[1:]) for tensor in backbone.outputs]
    if outputs != [tuple(FEATURE_SHAPE)]:
        raise ValueError(f"backbone must output one (1, 1, 4096) fc7 map, got {outputs}")

    image_shape = tuple(backbone.inputs[0].shape[1:])
    if frames is None:
        inputs = keras.Input(shape=image_shape, name="image")
        x = backbone(inputs)
    else:
        inputs = keras.Input(shape=(frames, *image_shape), name="clip")
        x = keras.layers.TimeDistributed(backbone, name=f"{backbone.name}_per_frame")(inputs)
    for layer in layers:
        if layer.name != FEATURE_DROPOUT:
            x = _writeup_call(layer, x)
    return keras.Model(inputs, x, name=name or f"{backbone.name}_{head_model.name}")
