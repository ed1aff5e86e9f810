"""What a fine-tuned trial trains on and as: the backbone's top on the frozen bottom's outputs.

A fine-tuned trial (``fine_tune`` "fc" or "conv5") trains the head with VGG-Face's top
(:func:`core.backbone.network.vggface_top`) on the stored outputs of the layer below it
(:mod:`core.features.bottom`: pool5 or pool4), which nothing in training changes.

:class:`StoredRows` reads a split's inputs from that memory-mapped store a batch at a time and
:class:`Batches` feeds them to ``fit``, shuffled every epoch. :func:`tuned_model` puts a head's
training model (standardised fc7 in, logits out) on the top, per frame for sequence heads.

Standardised, the top trains soundly. Its layers read ReLU outputs of scale ~100 through large
fan-ins (25,088 per fc6 unit, 4,096 per fc7 unit), and Adam moves every weight by about the
learning rate whatever its input's scale: on the random backbone one Adam step of 1e-5 on raw
fc6 moved fc7 by several of its train standard deviations, and the head's scores saturated
(exactly 0 or 1) within two steps. With ``standardize`` each trained layer's input is standardised
per channel with statistics of the train split under the starting weights
(:func:`layer_statistics`), and the layer starts on it computing the same function
(:func:`start_standardized`): a fixed reparametrisation, so the network's output at the start is
unchanged (to float32 rounding) and only the optimiser's steps are scaled to the inputs. Once
trained, the statistics are folded back (:func:`fold_standardized`): the top holds plain VGG-Face
layers again, as the head does with fc7. fc6 and fc7 take mean and scale (their window covers
their whole input); conv5_* only the scale (their "same" padding adds zeros, which stay zeros
when only scaled). Measured on the tiny test set (random backbone, Adam 1e-4, fc): raw, dev
scores saturated at 0 from the first epoch; standardised, train loss fell and dev ACER reached 0.
"""

from __future__ import annotations

from collections.abc import Iterator

import keras
import numpy as np

import heads
from heads.fitting import SCALE_FLOOR, Standardization

STATISTICS_BATCH = 64  # inputs read at a time for the statistics


class StoredRows:
    """A split's inputs read on demand from an on-disk (clips, frames, ...) array.

    One input per frame (``kind`` "frame") or per clip (its frames in order, "sequence"), in the
    order of ``rows``; indexing with a slice or an index array reads only those inputs, so a split
    of pool4 outputs never sits in memory whole.
    """

    def __init__(self, entry: np.ndarray, rows: np.ndarray, kind: str) -> None:
        self.entry, self.rows, self.kind = entry, np.asarray(rows, dtype=np.intp), kind
        self.frames = entry.shape[1]
        per_input = entry.shape[2:] if kind == "frame" else entry.shape[1:]
        self.shape = (len(self), *per_input)
        self.dtype = entry.dtype

    def __len__(self) -> int:
        return len(self.rows) * (self.frames if self.kind == "frame" else 1)

    def __getitem__(self, index: slice | np.ndarray | list[int]) -> np.ndarray:
        positions = np.arange(len(self))[index]
        if self.kind == "sequence":
            return np.asarray(self.entry[self.rows[positions]], dtype=np.float32)
        flat = self.entry.reshape(-1, *self.entry.shape[2:])
        frame = self.rows[positions // self.frames] * self.frames + positions % self.frames
        return np.asarray(flat[frame], dtype=np.float32)

    def blocks(self, size: int = STATISTICS_BATCH) -> Iterator[np.ndarray]:
        """Every input in order, ``size`` at a time."""
        for start in range(0, len(self), size):
            yield self[start : start + size]


class Batches(keras.utils.PyDataset):
    """Shuffled batches of (inputs, labels) read from a split's stored inputs, epoch by epoch.

    A batch's inputs are read in file order (the same set, so the same step), which keeps the
    reads from the memory map sequential.
    """

    def __init__(self, x: StoredRows, y: np.ndarray, batch_size: int, seed: int) -> None:
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(y))

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        return self.x[chosen], self.y[chosen]

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.y))


def _trained_layers(top: keras.Model) -> list[keras.layers.Layer]:
    """The top's layers with weights, in order: conv5_1..conv5_3, fc6, fc7."""
    return [layer for layer in top.layers if layer.weights]


def layer_statistics(top: keras.Model, x: StoredRows) -> dict[str, Standardization]:
    """Per-channel statistics of the input of each of ``top``'s trained layers, on ``x`` (the
    train split's bottom outputs) with the starting weights, for :func:`standardized_top`.

    Mean and standard deviation where the layer's window covers its whole input ("valid": fc6,
    fc7); a zero mean and the root mean square under "same" padding (conv5_*), whose zeros must
    stay zeros for the fold to be exact.
    """
    layers = _trained_layers(top)
    probe = keras.Model(top.inputs, [layer.input for layer in layers])
    running = [heads.RunningStatistics() for _ in layers]
    for block in x.blocks():
        block = block.reshape(-1, *top.inputs[0].shape[1:])  # a sequence's frames, one by one
        for statistics, values in zip(running, probe.predict_on_batch(block), strict=True):
            statistics.add(np.asarray(values))
    result = {}
    for layer, statistics in zip(layers, running, strict=True):
        found = statistics.result()
        if layer.padding != "valid":
            rms = np.sqrt(np.square(found.mean) + np.square(found.scale))
            typical = rms.mean()
            scale = np.maximum(rms, SCALE_FLOOR * typical) if typical > 0 else np.ones_like(rms)
            found = Standardization(np.zeros_like(found.mean), scale)
        result[layer.name] = found
    return result


def standardized_top(top: keras.Model, statistics: dict[str, Standardization]) -> keras.Model:
    """``top``'s layers (shared) with each trained layer's input standardised by ``statistics``.

    Start its layers with :func:`start_standardized` so that it computes what ``top`` did, and
    :func:`fold_standardized` them after training so that ``top`` computes what it learned.
    """
    inputs = keras.Input(shape=tuple(top.inputs[0].shape[1:]), name=top.inputs[0].name)
    x = inputs
    for layer in top.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer.name in statistics:
            x = heads.standardization_layer(statistics[layer.name], f"standardize_{layer.name}")(x)
        x = layer(x)
    return keras.Model(inputs, x, name=f"{top.name}_standardized")


def start_standardized(top: keras.Model, statistics: dict[str, Standardization]) -> None:
    """Each standardised layer computes on standardised inputs what it computed on raw ones:
    ``K' = K * scale`` (per input channel), ``b' = b + mean . K``."""
    for name, found in statistics.items():
        layer = top.get_layer(name)
        kernel, bias = layer.get_weights()
        shift = _input_dot(kernel, found.mean)
        kernel = kernel * found.scale.astype(np.float32)[:, np.newaxis]
        layer.set_weights([kernel, (bias + shift).astype(np.float32)])


def fold_standardized(top: keras.Model, statistics: dict[str, Standardization]) -> None:
    """The inverse of :func:`start_standardized`: each layer reads raw inputs again."""
    for name, found in statistics.items():
        layer = top.get_layer(name)
        kernel, bias = layer.get_weights()
        kernel = kernel / found.scale.astype(np.float32)[:, np.newaxis]
        shift = _input_dot(kernel, found.mean)
        layer.set_weights([kernel, (bias - shift).astype(np.float32)])


def _input_dot(kernel: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``sum over h, w, c of values[c] * kernel[h, w, c, :]``, accumulated in float64, without a
    float64 copy of the kernel (fc6's is 411 MB in float32)."""
    total = np.zeros(kernel.shape[-1])
    for row in kernel.reshape(-1, *kernel.shape[-2:]):  # (c, f) at each window position
        total += values @ row.astype(np.float64)
    return total


def tuned_model(top: keras.Model, head: keras.Model, kind: str, frames: int) -> keras.Model:
    """``head`` (any model reading fc7) on ``top``, layers shared, reading the bottom's outputs.

    A frame head reads one frame's output; a sequence head reads ``frames`` of them, the top
    applied to each under TimeDistributed as the write-up applies VGG-Face.
    """
    per_frame = tuple(top.inputs[0].shape[1:])
    layer = top.inputs[0].name  # the frozen layer it reads: pool5 or pool4
    if kind == "sequence":
        inputs = keras.Input(shape=(frames, *per_frame), name=f"{layer}_clip")
        x = keras.layers.TimeDistributed(top, name=f"{top.name}_per_frame")(inputs)
    else:
        inputs = keras.Input(shape=per_frame, name=layer)
        x = top(inputs)
    return keras.Model(inputs, head(x), name=f"{top.name}_{head.name}")
