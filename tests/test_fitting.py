"""How heads train: pointwise layers equal the write-up's, standardisation folds in, logits loss.

Real Keras computations on small arrays: the pointwise layers against the stock Conv2D and
ConvLSTM2D with the same weights, folded standardisation against the standardised training
model, trained heads read back from their weights file, and mixed precision on a tiny head.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

import heads
from core.data.clips import Clip
from experiments.config import TrialConfig
from experiments.trial.splits import SplitData
from experiments.trial.training import cross_entropy, train_head
from heads import save_head_weights
from heads.fitting import Standardization, _input_kernel
from heads.pointwise import CholeskyOrthogonal, PointwiseConv2D, PointwiseConvLSTM2D

CHANNELS = 4096


def fc7_like(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """ReLU features of raw scale ~100, as the random backbone's fc7."""
    rng = np.random.default_rng(seed)
    return (np.maximum(0.0, rng.normal(0.5, 1.0, shape)) * 100.0).astype(np.float32)


def max_relative_error(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def tiny_backbone() -> keras.Model:
    """VGG-Face's interface ((H, W, 3) -> (1, 1, 4096) fc7 map -> dropout), 0.8M params."""
    image = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(CHANNELS, 8, activation="relu", name="fc7")(image)
    x = keras.layers.Dropout(0.5, name="dropout7")(x)
    return keras.Model(image, x, name="tiny")


# --- pointwise layers: the write-up's layers computed as matrix products ------------------------


@pytest.mark.parametrize("spatial", [(1, 1), (3, 2)])
def test_pointwise_conv_equals_stock_conv2d_with_the_same_weights(spatial):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(4, *spatial, 32)).astype(np.float32)
    pointwise = PointwiseConv2D(8, 1, activation="relu", name="fc8")
    expected_shape = (4, *spatial, 8)
    assert tuple(pointwise(x).shape) == expected_shape
    stock = pointwise.writeup_layer()
    assert type(stock) is keras.layers.Conv2D and stock.get_config() == pointwise.get_config()
    stock.build(x.shape)
    stock.set_weights(pointwise.writeup_weights())
    assert stock.kernel.shape == (1, 1, 32, 8)  # Conv2D kernel (1, 1, C, F), as the write-up's
    np.testing.assert_allclose(pointwise(x), stock(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_pointwise_convlstm_equals_stock_convlstm2d_with_mapped_weights(activation):
    """Same gates (i, f, c, o), activations and forget-bias init as Keras' ConvLSTM2D."""
    keras.utils.set_random_seed(1)
    x = np.random.default_rng(1).normal(size=(3, 5, 1, 1, 24)).astype(np.float32)
    pointwise = PointwiseConvLSTM2D(6, activation=activation, name="fc8")
    y = pointwise(x)
    assert tuple(y.shape) == (3, 1, 1, 6)
    stock = pointwise.writeup_layer()
    assert type(stock) is keras.layers.ConvLSTM2D
    assert stock.cell.activation.__name__ == activation and stock.cell.unit_forget_bias
    stock.build(x.shape)
    stock.set_weights(pointwise.writeup_weights())
    assert [tuple(w.shape) for w in stock.weights] == [(1, 1, 24, 24), (1, 1, 6, 24), (24,)]
    assert stock.count_params() == pointwise.count_params()
    np.testing.assert_allclose(y, stock(x), rtol=1e-5, atol=1e-6)
    # frames unknown when the model is built: the LSTM's own loop, the same numbers
    inputs = keras.Input((None, 1, 1, 24))
    np.testing.assert_allclose(keras.Model(inputs, pointwise(inputs))(x), y, rtol=1e-6, atol=1e-7)
    # a fresh pair: the forget gate's bias starts at 1 in both
    fresh = PointwiseConvLSTM2D(6, name="fresh")
    fresh.build(x.shape)
    np.testing.assert_array_equal(fresh.cell.bias.numpy()[6:12], np.ones(6))


@pytest.mark.parametrize("shape", [(300, 1200), (1, 1, 16, 64), (200, 50)])
def test_cholesky_orthogonal_is_keras_orthogonal_without_the_qr(shape):
    seeded = [keras.initializers.Orthogonal(seed=5), CholeskyOrthogonal(seed=5)]
    stock, ours = (np.asarray(keras.ops.convert_to_numpy(init(shape))) for init in seeded)
    assert ours.shape == shape
    np.testing.assert_allclose(ours, stock, rtol=0, atol=2e-6)
    flat = ours.reshape(-1, shape[-1])
    flat = flat if flat.shape[0] >= flat.shape[1] else flat.T
    np.testing.assert_allclose(flat.T @ flat, np.eye(flat.shape[1]), rtol=0, atol=2e-6)


def test_pointwise_convlstm_starts_where_a_stock_lstm_starts():
    """The same global seed: the same kernel and bias as the stock LSTM it computes with, and
    the recurrent kernel of Keras' Orthogonal to float32 rounding."""
    keras.utils.set_random_seed(9)
    pointwise = PointwiseConvLSTM2D(40, name="fc8")
    pointwise.build((None, 3, 1, 1, 24))
    keras.utils.set_random_seed(9)
    stock = keras.layers.LSTM(40, name="lstm")
    stock.build((None, 3, 24))
    (kernel, recurrent, bias), stock_weights = pointwise.get_weights(), stock.get_weights()
    np.testing.assert_array_equal(kernel, stock_weights[0])
    np.testing.assert_allclose(recurrent, stock_weights[1], rtol=0, atol=2e-6)
    np.testing.assert_array_equal(bias, stock_weights[2])


def test_pointwise_layers_refuse_what_is_not_a_1x1_stride_1_convolution():
    with pytest.raises(ValueError, match="a pointwise layer needs kernel_size=1, got 3"):
        PointwiseConv2D(8, 3)
    with pytest.raises(ValueError, match=r"a pointwise layer needs strides=1, got \(2, 2\)"):
        PointwiseConv2D(8, 1, strides=(2, 2))
    with pytest.raises(ValueError, match=r"reads \(batch, frames, 1, 1, channels\)"):
        PointwiseConvLSTM2D(4).build((None, 3, 2, 2, 8))


@pytest.mark.parametrize(
    ("name", "hparams", "stock"),
    [("conv", {"width": 16}, keras.layers.Conv2D), ("convlstm", {"filters": 8}, None)],
)
def test_assembled_pointwise_head_is_the_writeup_network_with_the_same_outputs(
    name, hparams, stock
):
    stock = stock or keras.layers.ConvLSTM2D
    frames = 3
    keras.utils.set_random_seed(2)
    head = heads.build_head_model(name, frames=frames, **hparams)
    backbone = tiny_backbone()
    model = heads.assemble(head, backbone)
    fc8 = model.get_layer("fc8")
    assert type(fc8) is stock  # the stock Keras layer, not the pointwise one
    assert model.count_params() == backbone.count_params() + head.count_params()
    for a, b in zip(fc8.get_weights(), head.get_layer("fc8").writeup_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    shape = (2, *model.inputs[0].shape[1:])
    images = np.random.default_rng(2).uniform(0, 1, shape).astype(np.float32)
    if heads.get_spec(name).kind == "sequence":
        features = np.stack([backbone.predict(clip, verbose=0) for clip in images])
    else:
        features = backbone.predict(images, verbose=0)
    expected = head.predict(features, verbose=0)
    assert max_relative_error(model.predict(images, verbose=0), expected) < 1e-5


def test_full_model_of_a_conv_head_uses_stock_layers_and_the_writeup_count():
    with keras.StatelessScope(initialize_variables=False):  # shapes only: no 134M allocation
        model = heads.build_full_model("conv4096")
        assert type(model.get_layer("fc8")) is keras.layers.Conv2D
        assert model.count_params() == 151_050_050  # write-up §4(1)
    keras.backend.clear_session()


# --- standardisation: fitted on train, folded into the head ------------------------------------

FOLD_CASES = [
    ("conv", {"width": 8}, "softmax"),
    ("dense", {"width": 8}, "sigmoid"),
    ("convlstm", {"filters": 4}, "softmax"),
    ("lstm", {"units": 4}, "sigmoid"),
]


def test_feature_statistics_per_channel_with_a_floor_for_constant_channels():
    x = fc7_like((50, 3, 1, 1, 8))
    x[..., 0] = 0.0  # a dead unit
    stats = heads.feature_statistics(x)
    flat = x.reshape(-1, 8).astype(np.float64)
    np.testing.assert_allclose(stats.mean, flat.mean(axis=0))
    np.testing.assert_allclose(stats.scale[1:], flat.std(axis=0)[1:])
    assert stats.scale[0] == pytest.approx(0.01 * flat.std(axis=0).mean())
    zeros = heads.feature_statistics(np.zeros((4, 3)))
    np.testing.assert_array_equal(zeros.scale, np.ones(3))


@pytest.mark.parametrize(("name", "hparams", "output"), FOLD_CASES)
def test_folded_head_on_raw_features_equals_training_model_on_standardised(name, hparams, output):
    keras.utils.set_random_seed(3)
    head = heads.build_head_model(name, output, frames=3, **hparams)
    x = fc7_like((6, *head.inputs[0].shape[1:]), seed=3)
    stats = heads.feature_statistics(fc7_like((40, *head.inputs[0].shape[1:]), seed=4))
    standardised = heads.training_model(head, stats)
    expected = standardised.predict(x, verbose=0)  # logits, standardisation in the graph
    count = head.count_params()

    heads.fold_standardization(head, stats)
    assert head.count_params() == count  # nothing stored beside the head's own weights
    raw = heads.training_model(head)
    assert [layer.name for layer in raw.layers].count("standardize") == 0
    assert max_relative_error(raw.predict(x, verbose=0), expected) < 1e-4
    probabilities = head.predict(x, verbose=0)
    np.testing.assert_allclose(
        heads.bonafide_score(probabilities, output),
        heads.bonafide_score_from_logits(expected, output),
        rtol=1e-4,
        atol=1e-6,
    )


def test_standardisation_needs_a_first_layer_with_a_bias():
    features = keras.Input((1, 1, CHANNELS))
    x = keras.layers.Flatten()(features)
    x = keras.layers.Dense(4, use_bias=False, name="fc8")(x)
    head = keras.Model(features, keras.layers.Dense(2, name="prediction")(x), name="nobias")
    with pytest.raises(ValueError, match="layer 'fc8' has no bias to take the feature mean"):
        heads.check_foldable(head)
    x = keras.layers.Activation("relu")(keras.layers.Flatten()(features))
    head = keras.Model(features, keras.layers.Dense(2, name="prediction")(x), name="act")
    with pytest.raises(ValueError, match="folds into the first layer with a kernel"):
        heads.check_foldable(head)


def test_logits_give_the_same_scores_as_probabilities_without_rounding_to_0_or_1():
    logits = np.array([[0.0, 2.0], [3.0, -1.0], [0.0, 30.0]])
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scores = heads.bonafide_score_from_logits(logits, "softmax")
    np.testing.assert_allclose(scores, softmax[:, 1], rtol=1e-12)
    assert scores[2] < 1.0 and np.float32(softmax[2, 1]) == 1.0  # float32 would round it
    np.testing.assert_allclose(
        heads.bonafide_score_from_logits([[0.5], [-2.0]], "sigmoid"), 1 / (1 + np.exp([-0.5, 2.0]))
    )
    with pytest.raises(ValueError, match=r"softmax logits must have shape \(N, 2\)"):
        heads.bonafide_score_from_logits([[1.0]], "softmax")
    # far in the attack tail: each its own probability, not 0 (0.5 * (1 + tanh) was 0 below -38,
    # and tied clips a head told apart; a user probe found 22 clips of a trial scored 0.0)
    margins = np.array([-40.0, -69.0, -300.0, -700.0])
    scores = heads.bonafide_score_from_logits(margins[:, None], "sigmoid")
    reference = [math.exp(m) / (1.0 + math.exp(m)) for m in margins]  # no cancellation here
    np.testing.assert_allclose(scores, reference, rtol=1e-12)
    assert (scores > 0).all() and (np.diff(scores) < 0).all()


# --- train_head: the head it returns ------------------------------------------------------------


def split_data(kind: str, clips: int, seed: int, frames: int = 2) -> SplitData:
    rng = np.random.default_rng(seed)
    y = np.tile([0, 1], clips // 2).astype(np.int32)
    x = fc7_like((clips, frames, CHANNELS), seed)
    x[y == 1, :, : CHANNELS // 4] += 40.0  # bona fide: a quarter of fc7 brighter
    x += rng.normal(0, 1, x.shape).astype(np.float32)
    kinds = [("attack", "print"), ("bonafide", "bonafide")]
    meta = [
        Clip(Path(f"c{seed}_{i}"), f"c{seed}_{i}", f"s{i}", *kinds[label])
        for i, label in enumerate(y)
    ]
    if kind == "sequence":
        return SplitData(x.reshape(clips, frames, 1, 1, CHANNELS), y, np.arange(clips), meta)
    return SplitData(
        x.reshape(clips * frames, 1, 1, CHANNELS),
        np.repeat(y, frames),
        np.repeat(np.arange(clips), frames),
        meta,
    )


def data_for(kind: str) -> dict[str, SplitData]:
    return {s: split_data(kind, 8, seed) for s, seed in (("train", 1), ("dev", 2), ("test", 3))}


@pytest.mark.parametrize(
    ("name", "hparams"), [("conv", {"width": 8}), ("convlstm", {"filters": 4})]
)
def test_trained_head_applies_its_standardisation_in_predict_and_saves_without_optimizer(
    tmp_path, name, hparams
):
    kind = heads.get_spec(name).kind
    data = data_for(kind)
    config = TrialConfig(head=name, family=name, output="softmax", hparams=hparams, epochs=3)
    assert config.standardize and config.training_precision == "float32"
    result = train_head(config, data, frames=2, seed=0)
    head = result.model
    assert head.count_params() == heads.build_head_model(name, frames=2, **hparams).count_params()
    assert getattr(head, "optimizer", None) is None  # the optimizer stayed with the training model

    probabilities = head.predict(data["dev"].x, verbose=0)  # raw features in
    dev = data["dev"].scores(heads.bonafide_score(probabilities, "softmax"))
    np.testing.assert_allclose(dev.scores, result.dev.scores, rtol=1e-4, atol=1e-6)

    path = tmp_path / "head.weights.h5"
    save_head_weights(head, path)
    fresh = heads.build_head_model(name, frames=2, **hparams)
    fresh.load_weights(path)
    np.testing.assert_allclose(fresh.predict(data["dev"].x, verbose=0), probabilities, rtol=1e-6)
    backbone = tiny_backbone()
    assembled = heads.assemble(fresh, backbone)  # the standardisation is in the weights
    images = np.random.default_rng(5).uniform(0, 1, (2, *assembled.inputs[0].shape[1:]))
    features = (
        np.stack([backbone.predict(clip, verbose=0) for clip in images])
        if kind == "sequence"
        else backbone.predict(images, verbose=0)
    )
    assert (
        max_relative_error(assembled.predict(images, verbose=0), head.predict(features, verbose=0))
        < 1e-5
    )


def test_save_head_weights_leaves_out_a_compiled_models_optimizer_state(tmp_path):
    keras.utils.set_random_seed(6)
    head = heads.build_head_model("dense", width=32)
    head.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = fc7_like((8, 1, 1, CHANNELS))
    head.fit(x, np.tile([0, 1], 4), epochs=1, verbose=0)  # Adam now holds two slots per weight
    head.save_weights(tmp_path / "with.weights.h5")
    save_head_weights(head, tmp_path / "alone.weights.h5")

    def stored(path: Path) -> int:
        sizes = []

        def add(_: str, item: object) -> None:  # h5py stops at the first call returning a value
            if isinstance(item, h5py.Dataset):
                sizes.append(item.size)

        with h5py.File(path) as f:
            f.visititems(add)
        return sum(sizes)

    assert stored(tmp_path / "alone.weights.h5") == head.count_params()
    assert stored(tmp_path / "with.weights.h5") > 2 * head.count_params()
    fresh = heads.build_head_model("dense", width=32)
    fresh.load_weights(tmp_path / "alone.weights.h5")
    np.testing.assert_allclose(fresh.predict(x, verbose=0), head.predict(x, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_train_head_in_each_precision_keeps_float32_outputs(precision):
    config = TrialConfig(
        head="dense8",
        family="dense",
        output="sigmoid",
        hparams={"width": 8},
        epochs=2,
        training_precision=precision,
        jit_compile=False,
    )
    result = train_head(config, data_for("frame"), frames=2, seed=0)
    fc8, prediction = result.model.get_layer("fc8"), result.model.get_layer("prediction")
    assert fc8.compute_dtype == ("float32" if precision == "float32" else "bfloat16")
    assert fc8.variable_dtype == prediction.compute_dtype == "float32"
    assert result.model.outputs[0].dtype == "float32"
    assert np.all(np.isfinite(result.dev.scores)) and np.all(np.isfinite(result.test.scores))
    assert keras.config.dtype_policy().name == "float32"  # restored for the next trial


def test_unknown_precision_is_one_clear_line():
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16, float16"):
        TrialConfig(head="dense8", family="dense", output="softmax", training_precision="int8")


def test_fold_into_a_gru_puts_the_mean_in_its_input_bias():
    """GRU(reset_after=True) has an input bias and a recurrent bias: the shift goes to the first."""
    keras.utils.set_random_seed(7)
    features = keras.Input((3, 1, 1, CHANNELS))
    x = keras.layers.TimeDistributed(keras.layers.Flatten(), name="frame_flatten")(features)
    x = keras.layers.GRU(4, name="gru")(x)
    prediction = keras.layers.Dense(2, activation="softmax", name="prediction")(x)
    head = keras.Model(features, prediction, name="gru4")
    stats = heads.feature_statistics(fc7_like((20, 3, 1, 1, CHANNELS), seed=8))
    x = fc7_like((5, 3, 1, 1, CHANNELS), seed=9)
    expected = heads.training_model(head, stats).predict(x, verbose=0)
    heads.fold_standardization(head, stats)
    assert max_relative_error(heads.training_model(head).predict(x, verbose=0), expected) < 1e-4


def test_the_head_returned_holds_the_best_dev_epochs_weights_after_several_better_epochs():
    """The kept weights are overwritten in place at each better epoch: the head returned must
    score dev as its best epoch did, not as the better epoch before it or the last epoch did.
    The first learning rate whose curve has that shape is used (curves differ by backend)."""
    data = data_for("frame")
    for rate in (0.1, 0.05, 0.03):
        curve: list[tuple[float, float]] = []
        config = TrialConfig(
            "dense8",
            "dense",
            "softmax",
            {"width": 8},
            learning_rate=rate,
            epochs=12,
            optimizer="sgd",
        )
        result = train_head(
            config,
            data,
            frames=2,
            on_epoch=lambda _, v, curve=curve: curve.append((v["dev_acer"], v["dev_loss"])),
        )
        better = [i for i, key in enumerate(curve) if all(key < earlier for earlier in curve[:i])]
        losses = [curve[i][1] for i in (better[-1], better[-2], -1)] if len(better) > 2 else []
        if (  # several better epochs, the best before the last, three distinct dev losses
            losses
            and result.best_epoch == better[-1] + 1 < len(curve)
            and min(abs(losses[0] - other) for other in losses[1:]) > 0.01
        ):
            break
    else:
        pytest.fail("no learning rate gave several better epochs with the best before the last")
    frames = heads.predict_scores(heads.training_model(result.model), data["dev"].x, "softmax")
    assert cross_entropy(frames, data["dev"].y) == pytest.approx(losses[0], rel=1e-4)


@pytest.mark.parametrize("into", ["variables", "weights"])
@pytest.mark.parametrize("rows", [256, 300, 5000])  # whole blocks, a remainder, one short block
@pytest.mark.parametrize(
    ("name", "hparams"), [("convlstm", {"filters": 3}), ("conv", {"width": 5})]
)
def test_fold_is_the_float64_formula_rounded_once(monkeypatch, name, hparams, rows, into):
    """Folded in blocks of input channels, the kernel is ``kernel / scale`` computed in float64
    and rounded once, bit for bit, and the bias ``bias - (mean / scale) @ kernel`` to an ulp;
    the same folded into arrays of the head's weights (the kept best epoch's), then set."""
    keras.utils.set_random_seed(4)
    head = heads.build_head_model(name, "softmax", frames=3, **hparams)
    rng = np.random.default_rng(4)
    stats = Standardization(rng.normal(0, 3, CHANNELS), rng.uniform(0.05, 5, CHANNELS))
    kernel_variable, bias_variable, _ = _input_kernel(head)
    kernel = np.asarray(kernel_variable.numpy(), np.float64).reshape(CHANNELS, -1)
    bias = np.asarray(bias_variable.numpy(), np.float64)
    expected_kernel = (kernel / stats.scale[:, None]).astype(np.float32)
    expected_bias = (bias - (stats.mean / stats.scale) @ kernel).astype(np.float32)
    monkeypatch.setattr(heads.fitting, "FOLD_ROWS", rows)
    if into == "variables":
        heads.fold_standardization(head, stats)
    else:
        weights = head.get_weights()
        others = [w.copy() for w in weights]
        heads.fold_standardization(head, stats, weights)
        changed = [not np.array_equal(w, o) for w, o in zip(weights, others, strict=True)]
        assert sum(changed) == 2  # the kernel and the bias; the variables untouched:
        assert np.array_equal(kernel_variable.numpy().reshape(CHANNELS, -1), kernel)
        head.set_weights(weights)
    folded = kernel_variable.numpy().reshape(CHANNELS, -1)
    np.testing.assert_array_equal(folded, expected_kernel)
    ulps = np.abs(
        bias_variable.numpy().view(np.int32).astype(np.int64) - expected_bias.view(np.int32)
    )
    assert ulps.max() <= 1


def test_a_diverging_trial_raises_training_diverged():
    from experiments.trial.errors import TrainingDiverged

    nan = float("nan")  # the weights turn NaN after the first update
    config = TrialConfig("dense8", "dense", "softmax", {"width": 8}, learning_rate=nan)
    with pytest.raises(TrainingDiverged, match="(?i)became nan at epoch 1"):
        train_head(config, data_for("frame"), frames=2)
