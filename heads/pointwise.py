"""The write-up's 1x1 convolutions over the 1x1 fc7 map, computed as the matrix products they are.

VGG-Face ends in a (1, 1, 4096) fc7 map, so the write-up's ``Conv2D(F, 1)`` and
``ConvLSTM2D(F, 1)`` heads never convolve anything: each is a matrix product over the channels.
Keras computes them as convolutions all the same, and on a CPU a 1x1 convolution's gradient costs
several times a Dense layer's. These two layers hold exactly the write-up layer's weights but
compute with matrix products; :meth:`writeup_layer` gives the stock Keras layer back (same
config, same weights), which is what :func:`heads.assemble` puts in the end-to-end model.

- :class:`PointwiseConv2D` *is* a ``Conv2D`` (kernel (1, 1, C, F)); only its convolution is a
  ``matmul`` over the last axis, which is a 1x1, stride 1 convolution on any map size.
- :class:`PointwiseConvLSTM2D` is an ``LSTM`` over the frames' channels, with the ConvLSTM2D's gate
  maths: Keras' ``ConvLSTMCell`` and ``LSTMCell`` both order the gates i, f, c, o, use
  ``recurrent_activation`` for i, f, o and ``activation`` for the candidate and the output, and add
  1 to the forget bias at initialisation. Its kernels are the ConvLSTM2D's without the two 1x1
  axes: (C, 4F) and (F, 4F) for (1, 1, C, 4F) and (1, 1, F, 4F); same initialisers, same counts.
  It holds an ``LSTM`` for those weights but computes the gates itself, with the input kernel's
  product of every frame done as one matrix product before the frame loop (the LSTM computes one
  per frame inside it: 7 products of a batch's rows instead of one of 7 times as many, which on a
  CPU made convlstm2049's epoch 1.5x slower; bench/RESULTS.md, "Training epochs"). Its
  recurrent kernel starts as Keras' ``Orthogonal`` would start it, found without a QR
  (:class:`CholeskyOrthogonal`).
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

PACKAGE = "vggface_heads"  # registered name prefix: saved head models load (see heads/__init__)


def _one(name: str, value: Any) -> None:
    if tuple(np.atleast_1d(value)) not in ((1,), (1, 1)):
        raise ValueError(f"a pointwise layer needs {name}=1, got {value!r}")


@keras.saving.register_keras_serializable(package=PACKAGE)
class PointwiseConv2D(keras.layers.Conv2D):
    """``Conv2D(filters, 1)`` (stride 1, channels last) computed as a matmul over the channels."""

    def __init__(self, filters: int, kernel_size: int | tuple[int, int] = 1, **kwargs: Any):
        for name in ("strides", "dilation_rate", "groups"):
            _one(name, kwargs.get(name, 1))
        _one("kernel_size", kernel_size)
        if kwargs.get("data_format") not in (None, "channels_last"):
            raise ValueError(f"a pointwise layer reads channels last, got {kwargs['data_format']}")
        super().__init__(filters, kernel_size, **kwargs)

    def convolution_op(self, inputs: Any, kernel: Any) -> Any:
        return ops.matmul(inputs, ops.reshape(kernel, tuple(kernel.shape[-2:])))

    def writeup_layer(self) -> keras.layers.Conv2D:
        """A stock ``Conv2D`` with this layer's config (weights: :meth:`writeup_weights`)."""
        return keras.layers.Conv2D.from_config(self.get_config())

    def writeup_weights(self) -> list[np.ndarray]:
        return self.get_weights()


class CholeskyOrthogonal(keras.initializers.Orthogonal):
    """Keras' ``Orthogonal`` for a tall flattened kernel (F, 4F), through a Cholesky factor.

    ``Orthogonal`` draws a normal A (4F, F), takes Q of its QR and flips Q's columns so that R's
    diagonal is positive. That Q is A R^-1 with R the Cholesky factor of A^T A (R^T R = A^T A, R's
    diagonal positive): the same draw, the same seed use, the same matrix to float32 rounding
    (2e-7 for F = 2049, where the QR's own orthogonality error is 5e-6). Two matrix products and
    an F x F inverse instead of a Householder QR: convlstm2049's (2049, 8196) recurrent kernel in
    1.4 s instead of 10 s on TensorFlow's CPU (the build was most of such a trial's overhead).
    A^T A's condition number is that of A squared, about 9 for a Gaussian 4F x F matrix: safe in
    float32. Only for this layer's recurrent kernel; not serialized (its layer's config holds
    neither the LSTM nor its initialisers).
    """

    def __call__(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = keras.random.normal((max(rows, cols), min(rows, cols)), seed=self.seed, dtype=dtype)
        lower = ops.linalg.cholesky(ops.matmul(ops.transpose(a), a))  # A^T A = L L^T, R = L^T
        inverse = ops.linalg.solve_triangular(lower, ops.eye(a.shape[1], dtype=a.dtype), lower=True)
        q = ops.matmul(a, ops.transpose(inverse))  # A R^-1 = A (L^-1)^T
        if rows < cols:
            q = ops.transpose(q)
        return self.gain * ops.reshape(q, shape)


@keras.saving.register_keras_serializable(package=PACKAGE)
class PointwiseConvLSTM2D(keras.layers.Layer):
    """``ConvLSTM2D(filters, 1)`` over (frames, 1, 1, C) computed as an LSTM over the channels.

    Reads (batch, frames, 1, 1, C) and returns the last step's (batch, 1, 1, filters), as the
    ConvLSTM2D does with ``return_sequences=False``.
    """

    def __init__(
        self,
        filters: int,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.lstm = keras.layers.LSTM(
            self.filters,
            activation=activation,
            recurrent_activation=recurrent_activation,
            dtype=self.dtype_policy,
            name="lstm",
        )
        stock = self.lstm.cell.recurrent_initializer  # its seed, drawn where the LSTM draws it
        self.lstm.cell.recurrent_initializer = CholeskyOrthogonal(stock.gain, seed=stock.seed)

    @property
    def cell(self) -> keras.layers.LSTMCell:
        """The LSTM cell, whose ``kernel`` and ``bias`` read the C input channels."""
        return self.lstm.cell

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) != 5 or tuple(input_shape[2:4]) != (1, 1):
            raise ValueError(
                f"PointwiseConvLSTM2D reads (batch, frames, 1, 1, channels), got {input_shape}"
            )
        self.lstm.build((input_shape[0], input_shape[1], input_shape[-1]))

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        frames, channels = inputs.shape[1], inputs.shape[-1]
        if frames is None:  # an unknown number of frames: the LSTM's own loop
            h = self.lstm(ops.squeeze(inputs, axis=(2, 3)), training=training)
            return ops.reshape(h, (-1, 1, 1, self.filters))
        cell = self.cell
        activation = keras.activations.get(self.activation)
        gate = keras.activations.get(self.recurrent_activation)
        projected = ops.matmul(ops.reshape(inputs, (-1, channels)), cell.kernel) + cell.bias
        projected = ops.reshape(projected, (-1, frames, 4 * self.filters))
        h = c = None  # both start at zero, so the first frame needs no recurrent product
        for t in range(frames):
            z = projected[:, t]
            if h is not None:
                z = z + ops.matmul(h, cell.recurrent_kernel)
            i, f, g, o = ops.split(z, 4, axis=-1)
            candidate = gate(i) * activation(g)
            c = candidate if c is None else gate(f) * c + candidate
            h = gate(o) * activation(c)
        return ops.reshape(h, (-1, 1, 1, self.filters))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], 1, 1, self.filters)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "activation": self.activation,
            "recurrent_activation": self.recurrent_activation,
        }

    def writeup_layer(self) -> keras.layers.ConvLSTM2D:
        """The stock ``ConvLSTM2D(filters, 1)`` (weights: :meth:`writeup_weights`)."""
        return keras.layers.ConvLSTM2D(
            self.filters,
            1,
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            name=self.name,
            dtype=self.dtype_policy,
        )

    def writeup_weights(self) -> list[np.ndarray]:
        """Kernel (1, 1, C, 4F), recurrent kernel (1, 1, F, 4F), bias (4F,): the ConvLSTM2D's."""
        kernel, recurrent, bias = self.get_weights()
        return [kernel[np.newaxis, np.newaxis], recurrent[np.newaxis, np.newaxis], bias]
