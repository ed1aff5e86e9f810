"""The head families and the write-up's heads, each preset beside its family's builder.

Every head replaces what follows the fc7 dropout (the write-up's ``facemodel.layers[-4]``). A
builder takes that fc7 tensor and returns the tensor the output layer reads; the output layer
(softmax or sigmoid) is added by :func:`heads.build.build_head_model`. The hidden layer that
replaces VGG-Face's fc8 is named ``fc8``, as in the write-up.

Each family also declares the sweep's :class:`~heads.registry.SearchSpace` for it: adding a family
here is all it takes for ``experiments/search.py`` to search it. Registration order is the order
of the sweep's ``head`` choices, which a resumed Optuna study compares: append new families.

Counts in the presets are the write-up's ``model.summary()`` totals for the softmax output
(section 3 for the sequence heads, section 4 for the frame heads); ``python -m heads`` and the
tests check them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from heads.checks import dropout_rate, one_of, positive_int
from heads.registry import Preset, SearchSpace, register_family

if TYPE_CHECKING:  # Keras only when a head is built: listing the registry loads no backend
    import keras

HIDDEN_ACTIVATIONS = ("relu", "softmax")  # softmax only to reproduce the write-up's dense head
WRITEUP_DROPOUT = 0.2  # write-up §3 and §4: Dropout(0.2) / LSTM(dropout=0.2) in every head


def _dropout(x: keras.KerasTensor, rate: float, name: str) -> keras.KerasTensor:
    """Dropout, or nothing at rate 0 (the write-up's "try without dropout")."""
    import keras

    return keras.layers.Dropout(rate, name=name)(x) if rate > 0 else x


@register_family(
    "conv",
    kind="frame",
    search=SearchSpace("width", 64, 4096),
    presets={
        # write-up §4(1), "4096输出": fc8 16,781,312 + dense 8,194; Total params: 151,050,050
        "conv4096": Preset({"width": 4096}, head_params=16_789_506, total_params=151_050_050),
        # write-up §4(1), "2048输出": fc8 8,390,656 + dense 4,098; Total params: 142,655,298
        "conv2048": Preset({"width": 2048}, head_params=8_394_754, total_params=142_655_298),
    },
)
def conv_head(
    features: keras.KerasTensor, *, width: int = 4096, dropout: float = WRITEUP_DROPOUT
) -> keras.KerasTensor:
    """Conv2D(width, 1x1, ReLU) -> Dropout -> Flatten: a new fc8 as VGG-Face's own conv fc.

    Computed as a matmul (:class:`~heads.pointwise.PointwiseConv2D`); ``heads.assemble`` puts the
    stock ``Conv2D`` with the same weights in the end-to-end model.
    """
    import keras

    from heads.pointwise import PointwiseConv2D

    width = positive_int("width", width)
    dropout = dropout_rate("dropout", dropout)
    x = PointwiseConv2D(width, 1, activation="relu", name="fc8")(features)
    x = _dropout(x, dropout, "dropout8")
    return keras.layers.Flatten(name="flatten")(x)


@register_family(
    "dense",
    kind="frame",
    # The write-up's hidden softmax stays a choice of the sweep; ReLU is the sensible default.
    search=SearchSpace("width", 64, 4096, choices={"activation": HIDDEN_ACTIVATIONS}),
    presets={
        # write-up §4(2): dense 8,390,656 + dense 4,098; Total params: 142,655,298. The write-up's
        # hidden layer is softmax, almost surely a slip (SPEC §3): ReLU here, softmax on request.
        "dense2048": Preset({"width": 2048}, head_params=8_394_754, total_params=142_655_298),
    },
)
def dense_head(
    features: keras.KerasTensor,
    *,
    width: int = 2048,
    dropout: float = WRITEUP_DROPOUT,
    activation: str = "relu",
) -> keras.KerasTensor:
    """Flatten -> Dense(width, activation) -> Dropout: a fully connected fc8."""
    import keras

    width = positive_int("width", width)
    dropout = dropout_rate("dropout", dropout)
    activation = one_of("activation", activation, HIDDEN_ACTIVATIONS)
    x = keras.layers.Flatten(name="flatten")(features)
    x = keras.layers.Dense(width, activation=activation, name="fc8")(x)
    return _dropout(x, dropout, "dropout8")


@register_family(
    "convlstm",
    kind="sequence",
    search=SearchSpace("filters", 16, 2049),  # up to the write-up's 2049
    presets={
        # write-up §3, first model: fc8 (ConvLSTM2D) 50,372,616 + dense 4,100;
        # Total params: 184,637,260
        "convlstm2049": Preset({"filters": 2049}, head_params=50_376_716, total_params=184_637_260),
    },
)
def convlstm_head(
    features: keras.KerasTensor, *, filters: int = 2049, dropout: float = WRITEUP_DROPOUT
) -> keras.KerasTensor:
    """ConvLSTM2D(filters, 1x1, ReLU) over the frames -> Dropout -> Flatten.

    Computed as an LSTM with the same gate maths (:class:`~heads.pointwise.PointwiseConvLSTM2D`);
    ``heads.assemble`` puts the stock ``ConvLSTM2D`` with the same weights in the end-to-end model.
    """
    import keras

    from heads.pointwise import PointwiseConvLSTM2D

    filters = positive_int("filters", filters)
    dropout = dropout_rate("dropout", dropout)
    # ReLU as the cell activation, as the write-up has it (Keras' default would be tanh).
    x = PointwiseConvLSTM2D(filters, activation="relu", name="fc8")(features)
    x = _dropout(x, dropout, "dropout8")
    return keras.layers.Flatten(name="flatten")(x)


@register_family(
    "lstm",
    kind="sequence",
    search=SearchSpace("units", 8, 512),
    presets={
        # write-up §3, second model: lstm_1 495,240 + dense 62; Total params: 134,755,846
        "lstm30": Preset({"units": 30}, head_params=495_302, total_params=134_755_846),
    },
)
def lstm_head(
    features: keras.KerasTensor, *, units: int = 30, dropout: float = WRITEUP_DROPOUT
) -> keras.KerasTensor:
    """TimeDistributed(Flatten) -> LSTM(units, input dropout): a small recurrent summary."""
    import keras

    units = positive_int("units", units)
    dropout = dropout_rate("dropout", dropout)
    x = keras.layers.TimeDistributed(keras.layers.Flatten(), name="frame_flatten")(features)
    # The write-up's dropout sits on the LSTM's inputs, not in a separate layer.
    return keras.layers.LSTM(units, dropout=dropout, name="lstm")(x)
