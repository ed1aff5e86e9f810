"""VGG-Face (Parkhi et al., BMVC 2015) in Keras 3, layer for layer as the MatConvNet original.

Layers carry the MatConvNet names (``conv1_1`` ... ``conv5_3``, ``fc6``, ``fc7``, ``fc8``) so that
the weights are copied by name. Only ``keras`` and ``keras.ops`` are used, so the model runs on
every Keras backend (TensorFlow by default, JAX too). :func:`core.build_vggface` builds it with
weights; this module only lays out the layers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import keras

from core.backbone.spec import BLOCKS, NUM_IDENTITIES
from core.constants import FEATURE_SIZE, INPUT_SHAPE, PRECISIONS, RANDOM_INIT


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
