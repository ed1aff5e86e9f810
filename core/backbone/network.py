"""VGG-Face (Parkhi et al., BMVC 2015) in Keras 3, layer for layer as the MatConvNet original.

Layers carry the MatConvNet names (``conv1_1`` ... ``conv5_3``, ``fc6``, ``fc7``, ``fc8``) so that
the weights are copied by name. Only ``keras`` and ``keras.ops`` are used, so the model runs on
every Keras backend (TensorFlow by default, JAX too). :func:`core.build_vggface` builds it with
weights; this module only lays out the layers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import numpy as np

from core.backbone.spec import (  # noqa: F401  (FINE_TUNE*: re-exported for older imports)
    BLOCKS,
    FINE_TUNE,
    FINE_TUNE_LAYERS,
    FROZEN_OUTPUT,
    NUM_IDENTITIES,
)
from core.constants import FEATURE_SIZE, INPUT_SHAPE, PRECISIONS, RANDOM_INIT

_POOLED_SIDE = {"pool4": INPUT_SHAPE[0] // 16, "pool5": INPUT_SHAPE[0] // 32}  # 14, 7


@contextmanager
def dtype_policy(precision: str) -> Iterator[None]:
    """Keras' global dtype policy for ``precision`` (:data:`core.constants.PRECISIONS`) while
    models are built inside the block, restored after."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32" if precision == "float32" else f"mixed_{precision}")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def vggface_network(include_top: bool = True) -> keras.Model:
    """The VGG-Face layers, randomly initialised with :data:`core.constants.RANDOM_INIT`.

    With the top, the model ends in fc8 (2622 identities) and a softmax; without it, it stops
    after fc7's dropout and outputs the (1, 1, 4096) fc7 map that every head consumes.
    """
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
        FEATURE_SIZE, 7, padding="valid", activation="relu", kernel_initializer=init, name="fc6"
    )(x)
    x = keras.layers.Dropout(0.5, name="dropout6")(x)
    x = keras.layers.Conv2D(
        FEATURE_SIZE, 1, activation="relu", kernel_initializer=init, name="fc7"
    )(x)
    x = keras.layers.Dropout(0.5, name="dropout7")(x)
    if include_top:
        # fc8 is linear. The write-up's Keras code puts a ReLU here; that is a slip: the original
        # network feeds raw fc8 scores to the softmax.
        x = keras.layers.Conv2D(NUM_IDENTITIES, 1, activation=None, name="fc8")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Activation("softmax", name="prob")(x)
    return keras.Model(inputs, x, name="vggface" if include_top else "vggface_fc7")


def dense_fc7(model: keras.Model) -> keras.Model:
    """VGG-Face to fc7 as (n, 4096), with fc6 and fc7 as Dense layers on the flattened pool5.

    The same function as ``model`` (its dropouts are inactive at inference): fc6, a 7x7 "valid"
    convolution over the 7x7 pool5 map, is a matrix product with its filters reshaped to
    (7*7*512, 4096) (C order, as Flatten orders (h, w, c)), and the 1x1 fc7 is one too. On CPU,
    TensorFlow runs the 7x7 convolution several times slower than the product (0.55 s against
    0.09 s per 16 frames on 2 cores): a fifth of the whole forward pass saved. The convolution
    trunk is shared with ``model``.
    """

    x = keras.layers.Flatten(name="pool5_flat")(model.get_layer("pool5").output)
    for name in ("fc6", "fc7"):
        conv = model.get_layer(name)
        dense = keras.layers.Dense(
            conv.filters, activation="relu", kernel_initializer="zeros", name=name
        )
        x = dense(x)
        dense.kernel.assign(keras.ops.reshape(conv.kernel, (-1, conv.filters)))
        dense.bias.assign(conv.bias)
    return keras.Model(model.input, x, name="vggface_fc7_dense")


@keras.saving.register_keras_serializable(package="vggface_heads")
class WholeMapConv2D(keras.layers.Conv2D):
    """A "valid" ``Conv2D`` whose kernel covers its whole input map, computed as a matmul.

    fc6 (7x7 over the 7x7 pool5 map) and fc7 (1x1 over the 1x1 fc6 map) are such layers: the
    convolution is one matrix product of the flattened map (C order, as (h, w, c)) with the
    kernel reshaped to (h * w * c, filters), the same product :func:`dense_fc7` computes. The
    layer *is* a ``Conv2D``: same config, same (h, w, c, filters) kernel, so its weights are
    VGG-Face's; only the computation differs, which on CPU makes fc6 several times faster to
    train (a 7x7 convolution's gradient costs TensorFlow far more than a matmul's).
    """

    def __init__(self, filters: int, kernel_size: int | tuple[int, int], **kwargs: Any):
        for name in ("strides", "dilation_rate", "groups"):
            if tuple(np.atleast_1d(kwargs.get(name, 1))) not in ((1,), (1, 1)):
                raise ValueError(f"a whole-map convolution needs {name}=1, got {kwargs[name]!r}")
        if kwargs.get("padding", "valid") != "valid":
            raise ValueError(f"a whole-map convolution is 'valid', got {kwargs['padding']!r}")
        data_format = kwargs.get("data_format")
        if data_format not in (None, "channels_last"):
            raise ValueError(f"a whole-map convolution reads channels last, got {data_format!r}")
        super().__init__(filters, kernel_size, **kwargs)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if tuple(input_shape[1:3]) != tuple(self.kernel_size):
            raise ValueError(
                f"{self.name}: a whole-map convolution needs a {self.kernel_size} input map, "
                f"got {tuple(input_shape[1:3])}"
            )
        super().build(input_shape)

    def convolution_op(self, inputs: Any, kernel: Any) -> Any:
        h, w, c, filters = kernel.shape
        flat = keras.ops.reshape(inputs, (-1, h * w * c))
        product = keras.ops.matmul(flat, keras.ops.reshape(kernel, (h * w * c, filters)))
        return keras.ops.reshape(product, (-1, 1, 1, filters))


def vggface_top(fine_tune: str, dropout: float = 0.5) -> keras.Model:
    """The layers a fine-tuned trial trains, from the frozen bottom's output to fc7.

    ``"fc"``: pool5 (7, 7, 512) -> fc6 -> dropout6 -> fc7; ``"conv5"``: pool4 (14, 14, 512) ->
    conv5_1..conv5_3 -> pool5 -> fc6 -> dropout6 -> fc7. Layers carry VGG-Face's names and
    shapes (fc6 and fc7 as :class:`WholeMapConv2D`), initialised to zeros (drawing 127M random
    values only to overwrite them costs seconds): load the starting weights with
    :func:`load_top_weights`. The output is the (1, 1, 4096) fc7 map *before*
    fc7's dropout, which the head's ``feature_dropout`` plays, as on cached features.
    ``dropout`` is fc6's dropout rate (VGG-Face's: 0.5; 0: none), active only in training.
    """
    if fine_tune not in FROZEN_OUTPUT:
        raise ValueError(f"fine_tune must be one of {', '.join(FROZEN_OUTPUT)}, got {fine_tune!r}")
    frozen = FROZEN_OUTPUT[fine_tune]
    side = _POOLED_SIDE[frozen]
    inputs = keras.Input(shape=(side, side, BLOCKS[-1][2]), name=frozen)
    x = inputs
    if fine_tune == "conv5":
        block, convs, filters = BLOCKS[-1]
        for i in range(1, convs + 1):
            x = keras.layers.Conv2D(
                filters,
                3,
                padding="same",
                activation="relu",
                kernel_initializer="zeros",
                name=f"conv{block}_{i}",
            )(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"pool{block}")(x)
    x = WholeMapConv2D(FEATURE_SIZE, 7, activation="relu", kernel_initializer="zeros", name="fc6")(
        x
    )
    if dropout > 0:  # VGG-Face's own rate is 0.5; 0: none
        x = keras.layers.Dropout(dropout, name="dropout6")(x)
    x = WholeMapConv2D(FEATURE_SIZE, 1, activation="relu", kernel_initializer="zeros", name="fc7")(
        x
    )
    return keras.Model(inputs, x, name=f"vggface_top_{fine_tune}")


def frozen_bottom(model: keras.Model, fine_tune: str) -> keras.Model:
    """``model`` (VGG-Face) from its input to the output that :func:`vggface_top` reads."""
    if fine_tune not in FROZEN_OUTPUT:
        raise ValueError(f"fine_tune must be one of {', '.join(FROZEN_OUTPUT)}, got {fine_tune!r}")
    layer = FROZEN_OUTPUT[fine_tune]
    return keras.Model(model.input, model.get_layer(layer).output, name=f"vggface_to_{layer}")


def save_top_weights(model: keras.Model, names: tuple[str, ...], path: str | os.PathLike) -> None:
    """Write layers ``names`` of ``model`` to ``path`` (HDF5), atomically, weights only.

    One group per layer, by its VGG-Face name, holding ``kernel`` (H, W, Cin, Cout: the
    MatConvNet and Keras ``Conv2D`` layout, also for a Dense fc6/fc7) and ``bias`` (Cout,) as
    float32: nothing else, no optimizer state. :func:`load_top_weights` reads it into any model
    with layers of those names (a whole VGG-Face, :func:`vggface_top`).
    """
    import h5py

    from core.backbone.spec import expected_shapes

    path = Path(path)
    shapes = expected_shapes()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as out:
            out.attrs["format"] = "vggface-heads layer weights 1"
            for name in names:
                kernel, bias = model.get_layer(name).get_weights()
                group = out.create_group(name)
                group.create_dataset("kernel", data=np.reshape(kernel, shapes[name]), dtype="f4")
                group.create_dataset("bias", data=np.reshape(bias, -1), dtype="f4")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_top_weights(
    model: keras.Model, path: str | os.PathLike, names: tuple[str, ...] | None = None
) -> tuple[str, ...]:
    """Copy layers ``names`` (default: every layer stored) from ``path`` into ``model`` by name.

    ``path`` is a file of :func:`save_top_weights`. Kernels are reshaped to the target's layout
    (a Dense fc6 takes (25088, 4096)). Returns the names copied. A layer missing from the file or
    from ``model``, or of another size, is a one-line ``ValueError`` before anything is copied.
    """
    import h5py

    path = Path(path)
    layers = {layer.name: layer for layer in model.layers}
    with h5py.File(path, "r") as weights:
        names = tuple(weights) if names is None else tuple(names)
        absent = [name for name in names if name not in weights]
        if absent:
            raise ValueError(f"{path}: holds no weights for layer {absent[0]!r}")
        values = {name: (weights[name]["kernel"][()], weights[name]["bias"][()]) for name in names}
    for name, (kernel, bias) in values.items():
        if name not in layers or len(layers[name].weights) != 2:
            raise ValueError(f"{path}: layer {name!r} is not a layer with kernel and bias here")
        target = layers[name]
        if kernel.size != np.prod(target.kernel.shape) or bias.shape != tuple(target.bias.shape):
            raise ValueError(
                f"{path}: layer {name!r} holds {kernel.shape} and {bias.shape}, the model "
                f"expects {tuple(target.kernel.shape)} and {tuple(target.bias.shape)}"
            )
    for name, (kernel, bias) in values.items():
        target = layers[name]
        target.set_weights([kernel.reshape(tuple(target.kernel.shape)), bias])
    return names
