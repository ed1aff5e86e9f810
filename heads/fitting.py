"""What a head trains as: standardised features in, the prediction layer's logits out.

:func:`training_model` replays a head's layers (shared, so training changes the head) after an
optional :class:`Standardization` of its input and ends at the prediction layer's logits, for
:func:`heads.logits_loss`. Once trained, :func:`fold_standardization` moves the statistics into
the head's first layer: ``x @ K + b`` on ``(x - mean) / scale`` is ``x @ K' + b'`` with
``K' = K / scale`` (per input channel) and ``b' = b - (mean / scale) @ K``. The head then reads raw
fc7 again and *is* a write-up head, with the write-up's layers and parameter counts: its
``predict``, :func:`heads.assemble` and its saved weights all apply the standardisation, with
nothing to store beside it.

Why standardise: fc7 after ReLU is about 100 with the random backbone and of another scale with
VGG-Face's weights; a head's first layer then starts with logits in the hundreds, and its learning
rate means something different per backbone. On standardised features it does not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from heads.assembly import FEATURE_DROPOUT, head_layers

# A channel (nearly) constant on train is scaled as if its spread were this fraction of a typical
# channel's: if it moves at test, its standardised value stays bounded (sklearn's StandardScaler
# uses 1 for exactly constant features; fc7's scale is not 1).
SCALE_FLOOR = 0.01
# Layers that only reshape, or act only in training, may sit between the input and the first layer
# with a kernel: the statistics pass through them unchanged.
_SHAPE_ONLY = (keras.layers.Dropout, keras.layers.Flatten, keras.layers.Reshape)
LOGITS_LAYER = "prediction_logits"  # the last layer of a training model
_BLOCK = 2048  # rows of features summed at a time (2048 x 4096 float64: 64 MiB)
FOLD_ROWS = 256  # input channels per float64 block in fold_standardization (256 x 8196: 16 MiB)


@dataclass(frozen=True)
class Standardization:
    """Per-channel ``mean`` and ``scale`` (both shape (C,)) of a head's training features."""

    mean: np.ndarray
    scale: np.ndarray


def feature_statistics(features: np.ndarray) -> Standardization:
    """Mean and standard deviation per channel (last axis) of ``features``, in float64.

    Summed in blocks of rows, so a large cached split is never copied whole in float64.
    """
    channels = np.asarray(features).reshape(-1, np.shape(features)[-1])
    return running_statistics(
        channels[start : start + _BLOCK] for start in range(0, len(channels), _BLOCK)
    )


def running_statistics(blocks: Iterable[np.ndarray]) -> Standardization:
    """:func:`feature_statistics` of the rows of every block together, one block at a time (the
    last axis is the channel), e.g. of inputs read from disk a batch at a time."""
    running = RunningStatistics()
    for block in blocks:
        running.add(block)
    return running.result()


class RunningStatistics:
    """Per-channel sums of blocks of rows (the last axis is the channel), added one at a time."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.squares: np.ndarray | None = None
        self.count = 0

    def add(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float64).reshape(-1, np.shape(block)[-1])
        if self.total is None:
            self.total, self.squares = np.zeros(block.shape[1]), np.zeros(block.shape[1])
        self.total += block.sum(axis=0)
        self.squares += np.square(block).sum(axis=0)
        self.count += len(block)

    def result(self) -> Standardization:
        """Mean and standard deviation (floored at :data:`SCALE_FLOOR` of the typical one)."""
        if self.total is None or self.count == 0:
            raise ValueError("statistics of no rows")
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.squares / self.count - np.square(mean), 0.0))
        typical = std.mean()
        scale = np.maximum(std, SCALE_FLOOR * typical) if typical > 0 else np.ones_like(std)
        return Standardization(mean, scale)


def standardization_layer(statistics: Standardization, name: str) -> keras.layers.Layer:
    """A layer computing ``(x - mean) / scale`` over the last axis in float32, not trainable."""
    return _Standardize(statistics, name)


class _Standardize(keras.layers.Layer):
    """``(x - mean) / scale`` over the last axis, in float32; training-only, never saved."""

    def __init__(self, statistics: Standardization, name: str = "standardize") -> None:
        super().__init__(name=name, dtype="float32", trainable=False)
        self.mean = statistics.mean.astype(np.float32)
        self.inverse_scale = (1.0 / statistics.scale).astype(np.float32)

    def call(self, x):
        return ops.multiply(ops.subtract(x, self.mean), self.inverse_scale)


class _Logits(keras.layers.Layer):
    """The prediction layer's affine part without its activation, on the same variables."""

    def __init__(self, prediction: keras.layers.Dense) -> None:
        super().__init__(name=LOGITS_LAYER, dtype="float32")
        self.prediction = prediction

    def call(self, x):
        return ops.add(ops.matmul(x, self.prediction.kernel), self.prediction.bias)


def training_model(
    head_model: keras.Model, standardization: Standardization | None = None
) -> keras.Model:
    """``head_model``'s layers (shared), standardised input, the prediction layer's logits out.

    The standardisation sits after the head's ``feature_dropout``, so a dropped fc7 unit is a raw
    0, as it would be in the backbone.
    """
    layers = head_layers(head_model)
    prediction = layers[-1]
    if not isinstance(prediction, keras.layers.Dense) or prediction.name != "prediction":
        raise ValueError(f"head {head_model.name!r} must end in its Dense 'prediction' layer")
    inputs = keras.Input(shape=tuple(head_model.inputs[0].shape[1:]), name="fc7_features")
    x = inputs
    rest = list(layers[:-1])
    if rest and rest[0].name == FEATURE_DROPOUT:
        x = rest.pop(0)(x)
    if standardization is not None:
        x = _Standardize(standardization)(x)
    for layer in rest:
        x = layer(x)
    return keras.Model(inputs, _Logits(prediction)(x), name=f"{head_model.name}_training")


def _input_kernel(head_model: keras.Model) -> tuple[keras.Variable, keras.Variable | None, str]:
    """The first layer's kernel and bias that read the input channels, and the layer's name."""
    for layer in head_layers(head_model):
        inner = layer.layer if isinstance(layer, keras.layers.TimeDistributed) else layer
        if not layer.weights and isinstance(inner, _SHAPE_ONLY):
            continue
        owner = getattr(layer, "cell", layer)  # LSTM, ConvLSTM2D: the cell holds the kernels
        kernel = getattr(owner, "kernel", None)
        if kernel is None:
            break
        return kernel, getattr(owner, "bias", None), layer.name
    raise ValueError(
        f"head {head_model.name!r}: standardisation folds into the first layer with a kernel "
        f"after the input, with only dropout/flatten/reshape before it; this head has none"
    )


def check_foldable(head_model: keras.Model) -> None:
    """Raise a one-line ``ValueError`` now if :func:`fold_standardization` would fail later."""
    kernel, bias, name = _input_kernel(head_model)
    channels = head_model.inputs[0].shape[-1]
    if int(np.prod(kernel.shape[:-1])) != channels:
        raise ValueError(
            f"head {head_model.name!r}: layer {name!r} has kernel {tuple(kernel.shape)}; "
            f"standardisation folds only into a kernel over the {channels} input channels"
        )
    if bias is None:
        raise ValueError(
            f"head {head_model.name!r}: layer {name!r} has no bias to take the feature mean; "
            f"train it without standardisation"
        )


def fold_standardization(
    head_model: keras.Model,
    standardization: Standardization,
    weights: list[np.ndarray] | None = None,
) -> None:
    """Fold ``standardization`` into ``head_model``'s first kernel and bias, in place.

    Kernel rows become ``kernel / scale`` and the bias ``bias - (mean / scale) @ kernel``, both
    computed in float64 and rounded once to the variables' type. The float64 work runs over
    :data:`FOLD_ROWS` input channels at a time in one reused block (each division is the same
    float64 operation, rounded the same way): a whole float64 copy of convlstm2049's 134 MB
    kernel, and of its quotient, cost more in fresh memory than in arithmetic.

    ``weights``, arrays in the order of ``head_model.get_weights()`` (e.g. the kept best epoch's,
    about to be set), are folded in place instead of the variables: reading the kernel out of its
    variable and assigning it back were two more copies of it, fresh memory in a sweep.
    """
    check_foldable(head_model)
    kernel_variable, bias_variable, _ = _input_kernel(head_model)
    if weights is None:
        kernel = kernel_variable.numpy()  # Keras' own copy (np.array): divided in place below
        bias = np.array(bias_variable.numpy())
    else:
        position = {id(variable): i for i, variable in enumerate(head_model.weights)}
        kernel, bias = (weights[position[id(v)]] for v in (kernel_variable, bias_variable))
    channels_by_out = kernel.reshape(len(standardization.scale), -1)
    ratio = standardization.mean / standardization.scale
    block = np.empty((min(FOLD_ROWS, len(ratio)), channels_by_out.shape[1]), np.float64)
    shift = np.zeros(channels_by_out.shape[1], np.float64)
    for start in range(0, len(ratio), FOLD_ROWS):
        rows = channels_by_out[start : start + FOLD_ROWS]
        part = block[: len(rows)]
        np.copyto(part, rows)
        shift += ratio[start : start + FOLD_ROWS] @ part
        np.divide(part, standardization.scale[start : start + FOLD_ROWS, np.newaxis], out=part)
        np.copyto(rows, part, casting="same_kind")  # float64 -> the kernel's type, rounded once
    shifted = np.array(bias, dtype=np.float64)
    if shifted.ndim == 2:  # GRU(reset_after=True): row 0 is the input's bias
        shifted[0] -= shift
    else:
        shifted -= shift
    np.copyto(bias, shifted, casting="same_kind")
    if weights is None:
        kernel_variable.assign(kernel)
        bias_variable.assign(bias)
