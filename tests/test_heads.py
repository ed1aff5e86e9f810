"""Heads: the write-up's counts, both outputs, every family, assemble equivalence, clear errors.

The 134M-parameter backbone is built sparingly (CI runs on two shared CPU cores): one
module-scoped backbone for the assemble tests and two end-to-end models for the whole counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import core
import heads
from core.constants import BONAFIDE, FRAMES_PER_CLIP
from heads.registry import _natural_key

# Write-up tables, softmax output (sections 3 and 4): kind, head params, whole model params.
WRITEUP = {
    "conv4096": ("frame", 16_789_506, 151_050_050),
    "conv2048": ("frame", 8_394_754, 142_655_298),
    "dense2048": ("frame", 8_394_754, 142_655_298),
    "convlstm2049": ("sequence", 50_376_716, 184_637_260),
    "lstm30": ("sequence", 495_302, 134_755_846),
}
FAMILIES = {"conv": "frame", "dense": "frame", "convlstm": "sequence", "lstm": "sequence"}
FEATURES = 4096


def expected_head_params(family: str, size: int, classes: int = 2) -> int:
    """Closed-form count of a head of ``family`` with hidden size ``size`` plus Dense(classes)."""
    hidden = {
        "conv": (FEATURES + 1) * size,  # 1x1 conv = dense on the 4096 channels
        "dense": (FEATURES + 1) * size,
        # 4 gates, each input kernel + recurrent kernel + bias (1x1 kernels for the ConvLSTM)
        "convlstm": 4 * (FEATURES * size + size * size + size),
        "lstm": 4 * (FEATURES * size + size * size + size),
    }[family]
    return hidden + (size + 1) * classes


def random_features(model: keras.Model, n: int, seed: int = 0) -> np.ndarray:
    """Non-negative features like fc7 after ReLU, in the shape ``model`` reads."""
    shape = (n, *model.inputs[0].shape[1:])
    return np.random.default_rng(seed).uniform(0.0, 2.0, shape).astype(np.float32)


def dropout_rates(model: keras.Model) -> dict[str, float]:
    return {
        layer.name: layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)
    }


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


@pytest.fixture(scope="module")
def backbone() -> keras.Model:
    keras.utils.set_random_seed(0)
    return core.build_vggface(include_top=False)


# --- registry -----------------------------------------------------------------------------------


def test_registry_holds_writeup_heads_and_families_in_natural_order():
    names = heads.list_heads()
    assert set(WRITEUP) | set(FAMILIES) <= set(names)
    assert names == sorted(names, key=_natural_key)
    assert heads.list_heads("conv*") == ["conv", "conv2048", "conv4096", "convlstm", "convlstm2049"]
    assert heads.list_heads("*lstm*") == ["convlstm", "convlstm2049", "lstm", "lstm30"]
    assert heads.list_heads("nothing*") == []
    # several patterns joined by commas (a user wrote 'lstm,dense' and read "matches no head")
    assert heads.list_heads("lstm*, dense*,lstm30") == ["dense", "dense2048", "lstm", "lstm30"]
    assert heads.matching_families("lstm,dense") == ["dense", "lstm"]
    with pytest.raises(ValueError, match=r"--heads 'lstm\*,dnese\*' \(dnese\*\) matches no head"):
        heads.matching_families("lstm*,dnese*")  # a typo in one part: said, not dropped
    assert sorted(["conv4096", "conv512", "conv64"], key=_natural_key) == [
        "conv64",
        "conv512",
        "conv4096",
    ]


@pytest.mark.parametrize("name", WRITEUP)
def test_writeup_specs_carry_kind_counts_and_writeup_settings(name):
    kind, head_params, total_params = WRITEUP[name]
    spec = heads.get_spec(name)
    assert (spec.name, spec.kind) == (name, kind)
    assert spec.family in FAMILIES and FAMILIES[spec.family] == kind
    assert (spec.paper_head_params, spec.paper_total_params) == (head_params, total_params)
    assert spec.defaults["dropout"] == 0.2  # write-up: Dropout(0.2) / LSTM(dropout=0.2)
    assert heads.get_spec(spec.family).defaults.keys() == spec.defaults.keys()


def test_family_specs_have_no_writeup_count_and_search_hparams():
    expected = {
        "conv": {"width", "dropout"},
        "dense": {"width", "dropout", "activation"},
        "convlstm": {"filters", "dropout"},
        "lstm": {"units", "dropout"},
    }
    for family, hparams in expected.items():
        spec = heads.get_spec(family)
        assert (spec.family, spec.kind) == (family, FAMILIES[family])
        assert set(spec.defaults) == hparams
        assert spec.paper_head_params is None and spec.paper_total_params is None
    assert heads.get_spec("dense").defaults["activation"] == "relu"
    assert heads.get_spec("dense2048").defaults["activation"] == "relu"


def test_families_list_in_registration_order_and_constants_come_from_core():
    assert heads.list_families() == list(FAMILIES)
    assert heads.FRAMES == FRAMES_PER_CLIP == 7  # write-up §3: 7 frames per sequence
    assert heads.BONAFIDE == BONAFIDE == 1


def test_get_spec_returns_a_copy_that_cannot_change_the_registry():
    spec = heads.get_spec("conv2048")
    spec.defaults["width"] = 7
    assert heads.get_spec("conv2048").defaults["width"] == 2048
    assert heads.build_head_model("conv2048").get_layer("fc8").filters == 2048


def test_unknown_head_names_raise_listing_the_available_heads():
    for call in (
        lambda: heads.get_spec("conv1234"),
        lambda: heads.build_head_model("resnet"),
        lambda: heads.build_full_model("resnet"),
    ):
        with pytest.raises(KeyError) as caught:
            call()
        message = str(caught.value)
        assert isinstance(caught.value, ValueError)
        assert "unknown head" in message and "\n" not in message
        assert all(name in message for name in heads.list_heads())


# --- the write-up's counts ----------------------------------------------------------------------


@pytest.mark.parametrize("name", WRITEUP)
def test_head_counts_reproduce_the_writeup(name):
    kind, head_params, total_params = WRITEUP[name]
    model = heads.build_head_model(name)
    assert model.count_params() == head_params
    assert core.PARAMS_TO_FC7 + model.count_params() == total_params
    expected_input = core.FEATURE_SHAPE if kind == "frame" else (heads.FRAMES, *core.FEATURE_SHAPE)
    assert tuple(model.inputs[0].shape[1:]) == tuple(expected_input)
    assert tuple(model.outputs[0].shape) == (None, 2)
    keras.backend.clear_session()


def test_backbone_count_is_the_constant_that_whole_counts_add(backbone):
    assert backbone.count_params() == core.PARAMS_TO_FC7


@pytest.mark.parametrize("name", ["dense2048", "lstm30"])
def test_full_models_reproduce_the_writeup_whole_counts(name):
    kind, _, total_params = WRITEUP[name]
    model = heads.build_full_model(name)
    assert model.count_params() == total_params
    image = tuple(core.INPUT_SHAPE)
    expected_input = image if kind == "frame" else (heads.FRAMES, *image)
    assert tuple(model.inputs[0].shape[1:]) == expected_input
    assert tuple(model.outputs[0].shape) == (None, 2)
    # the backbone ends in fc7's dropout; the head's replay of it is not stacked on top
    assert "feature_dropout" not in [layer.name for layer in model.layers]
    del model
    keras.backend.clear_session()


# --- outputs ------------------------------------------------------------------------------------


def test_losses_match_outputs():
    assert heads.loss_for("softmax") == "sparse_categorical_crossentropy"
    assert heads.loss_for("sigmoid") == "binary_crossentropy"
    with pytest.raises(ValueError, match="output must be one of 'softmax', 'sigmoid', got 'tanh'"):
        heads.loss_for("tanh")


@pytest.mark.parametrize("name", ["conv4096", "lstm30"])
def test_sigmoid_output_is_one_unit_on_the_same_head(name):
    _, head_params, _ = WRITEUP[name]
    model = heads.build_head_model(name, output="sigmoid")
    hidden = model.get_layer("prediction").input.shape[-1]
    assert tuple(model.outputs[0].shape) == (None, 1)
    assert model.count_params() == head_params - (hidden + 1)  # one output unit fewer
    keras.backend.clear_session()


@pytest.mark.parametrize(("name", "hparams"), [("dense", {"width": 16}), ("lstm", {"units": 8})])
@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_each_output_trains_with_its_loss_and_scores_bona_fide_as_class_one(name, hparams, output):
    """Labels 1 = bona fide: after training on separable features, bona fide scores are higher."""
    keras.utils.set_random_seed(1)
    model = heads.build_head_model(name, output=output, feature_dropout=0.0, frames=3, **hparams)
    labels = np.tile([0, 1], 32)
    features = random_features(model, len(labels), seed=1) * 0.1
    features[labels == 1, ..., : FEATURES // 2] += 1.0  # bona fide: first half of fc7 lit up
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=heads.loss_for(output))
    history = model.fit(features, labels, epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]

    predictions = model.predict(features, verbose=0)
    assert predictions.shape == ((len(labels), 2) if output == "softmax" else (len(labels), 1))
    if output == "softmax":
        np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)
    scores = heads.bonafide_score(predictions, output)
    assert scores.shape == (len(labels),)
    assert np.all((scores >= 0) & (scores <= 1))
    assert scores[labels == 1].min() > scores[labels == 0].max()


def test_bonafide_score_reads_class_one_and_rejects_wrong_shapes():
    np.testing.assert_allclose(
        heads.bonafide_score([[0.25, 0.75], [0.9, 0.1]], "softmax"), [0.75, 0.1]
    )
    np.testing.assert_allclose(heads.bonafide_score([[0.8], [0.3]], "sigmoid"), [0.8, 0.3])
    np.testing.assert_allclose(heads.bonafide_score([0.8, 0.3], "sigmoid"), [0.8, 0.3])
    with pytest.raises(ValueError, match=r"softmax predictions must have shape \(N, 2\)"):
        heads.bonafide_score([[0.8], [0.3]], "softmax")
    with pytest.raises(ValueError, match=r"sigmoid predictions must have shape \(N, 1\)"):
        heads.bonafide_score([[0.25, 0.75]], "sigmoid")


# --- families -----------------------------------------------------------------------------------

FAMILY_CASES = [
    ("conv", {"width": 1}, 1),
    ("conv", {"width": 64, "dropout": 0.0}, 64),
    ("conv", {"width": 300, "dropout": 0.5}, 300),
    ("dense", {"width": 8}, 8),
    ("dense", {"width": 64, "dropout": 0.0, "activation": "softmax"}, 64),
    ("dense", {"width": 500, "dropout": 0.9, "activation": "relu"}, 500),
    ("convlstm", {"filters": 1}, 1),
    ("convlstm", {"filters": 16, "dropout": 0.0}, 16),
    ("convlstm", {"filters": 33, "dropout": 0.5}, 33),
    ("lstm", {"units": 1}, 1),
    ("lstm", {"units": 64, "dropout": 0.0}, 64),
    ("lstm", {"units": 128, "dropout": 0.5}, 128),
]


@pytest.mark.parametrize(("family", "hparams", "size"), FAMILY_CASES)
def test_every_family_builds_with_its_hyper_parameters(family, hparams, size):
    model = heads.build_head_model(family, frames=3, **hparams)
    assert model.count_params() == expected_head_params(family, size)

    dropout = hparams.get("dropout", 0.2)
    rates = dropout_rates(model)
    assert rates.pop("feature_dropout") == 0.5  # the backbone's fc7 dropout, replayed
    if family == "lstm":
        assert rates == {} and model.get_layer("lstm").dropout == dropout
    else:
        assert rates == ({"dropout8": dropout} if dropout > 0 else {})  # 0 = no Dropout layer
    if family == "dense":
        activation = model.get_layer("fc8").activation.__name__
        assert activation == hparams.get("activation", "relu")

    output = model.predict(random_features(model, 2), verbose=0)
    assert output.shape == (2, 2) and np.all(np.isfinite(output))


def test_writeup_heads_take_overrides_like_their_family():
    """ "Try without dropout": a write-up head with dropout=0 loses its Dropout, keeps its width."""
    model = heads.build_head_model("conv2048", dropout=0, feature_dropout=0)
    assert dropout_rates(model) == {}
    assert model.count_params() == WRITEUP["conv2048"][1]
    literal = heads.build_head_model("dense2048", activation="softmax")  # the write-up's slip
    assert literal.get_layer("fc8").activation.__name__ == "softmax"


def test_feature_dropout_acts_in_training_only():
    model = heads.build_head_model("dense", width=8, feature_dropout=0.5)
    features = random_features(model, 4)
    inference = [np.asarray(model(features, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    training = np.asarray(model(features, training=True))
    assert not np.allclose(training, inference[0])
    assert "feature_dropout" not in dropout_rates(
        heads.build_head_model("dense", width=8, feature_dropout=0.0)
    )


def test_frames_set_the_sequence_length_and_frame_heads_ignore_it():
    assert tuple(heads.build_head_model("lstm30", frames=3).inputs[0].shape) == (
        None,
        3,
        1,
        1,
        4096,
    )
    assert heads.feature_input_shape("convlstm", 5) == (5, 1, 1, 4096)
    assert heads.feature_input_shape("conv2048", 5) == (1, 1, 4096)


# --- invalid hyper-parameters -------------------------------------------------------------------

INVALID = [
    ("conv", {"width": -1}, "width must be a positive integer, got -1"),
    ("conv", {"width": 0}, "width must be a positive integer, got 0"),
    ("dense", {"width": 2.5}, "width must be a positive integer, got 2.5"),
    ("dense", {"width": True}, "width must be a positive integer, got True"),
    ("convlstm", {"filters": -8}, "filters must be a positive integer, got -8"),
    ("lstm", {"units": "30"}, "units must be a positive integer, got '30'"),
    ("conv2048", {"dropout": 1.0}, r"dropout must be a dropout rate in \[0, 1\), got 1.0"),
    ("lstm30", {"dropout": -0.1}, r"dropout must be a dropout rate in \[0, 1\), got -0.1"),
    ("dense", {"dropout": float("nan")}, r"dropout must be a dropout rate in \[0, 1\), got nan"),
    ("dense", {"activation": "tanh"}, "activation must be one of 'relu', 'softmax', got 'tanh'"),
    ("conv", {"depth": 3}, "head 'conv' got unknown hyper-parameter.s. depth; allowed: width"),
    ("lstm30", {"width": 3}, "head 'lstm30' got unknown .* width; allowed: units, dropout"),
    ("conv", {"output": "linear"}, "output must be one of 'softmax', 'sigmoid', got 'linear'"),
    ("conv", {"feature_dropout": 1.5}, r"feature_dropout must be a dropout rate in \[0, 1\)"),
    ("lstm", {"frames": 0}, "frames must be a positive integer, got 0"),
]


@pytest.mark.parametrize(("name", "hparams", "message"), INVALID)
def test_invalid_hyper_parameters_raise_one_clear_line(name, hparams, message):
    with pytest.raises(ValueError, match=message) as caught:
        heads.build_head_model(name, **hparams)
    assert "\n" not in str(caught.value)


def test_full_model_checks_the_head_before_building_the_backbone(monkeypatch):
    def no_backbone(*args, **kwargs):
        raise AssertionError("the backbone was built before the head's arguments were checked")

    monkeypatch.setattr("heads.build.build_vggface", no_backbone)
    with pytest.raises(ValueError, match="width must be a positive integer, got -5"):
        heads.build_full_model("conv", width=-5)


# --- assemble -----------------------------------------------------------------------------------


def test_assembled_frame_head_equals_head_on_backbone_features(backbone):
    keras.utils.set_random_seed(2)
    head = heads.build_head_model("conv2048")  # with the default feature dropout
    images = core.preprocess_input(np.random.default_rng(2).uniform(0, 255, (2, 224, 224, 3)))
    features = backbone.predict(images, verbose=0)
    assert features.std() > 0  # a dead backbone would make the comparison empty

    model = heads.assemble(head, backbone)
    expected = head.predict(features, verbose=0)
    actual = model.predict(images, verbose=0)
    assert actual.shape == (2, 2)
    assert relative_error(actual, expected) < 1e-5
    assert model.count_params() == core.PARAMS_TO_FC7 + WRITEUP["conv2048"][1]
    assert "feature_dropout" not in [layer.name for layer in model.layers]
    # the head computes fc8 as a matmul; the assembled model has the write-up's stock Conv2D,
    # with the trained weights carried over; the output layer is shared
    assert type(model.get_layer("fc8")) is keras.layers.Conv2D
    for a, b in zip(model.get_layer("fc8").weights, head.get_layer("fc8").weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert model.get_layer("prediction") is head.get_layer("prediction")


@pytest.mark.parametrize(
    ("name", "hparams", "output"),
    [("lstm30", {}, "sigmoid"), ("convlstm", {"filters": 8}, "softmax")],
)
def test_assembled_sequence_head_equals_head_on_per_frame_features(backbone, name, hparams, output):
    frames = 3
    keras.utils.set_random_seed(3)
    head = heads.build_head_model(name, output=output, frames=frames, **hparams)
    clip = np.random.default_rng(3).uniform(0, 255, (1, frames, 224, 224, 3))
    clip = core.preprocess_input(clip)
    features = backbone.predict(clip[0], verbose=0)[np.newaxis]  # (1, frames, 1, 1, 4096)
    assert features.std() > 0

    model = heads.assemble(head, backbone)
    assert tuple(model.inputs[0].shape[1:]) == (frames, *core.INPUT_SHAPE)
    expected = head.predict(features, verbose=0)
    actual = model.predict(clip, verbose=0)
    assert actual.shape == expected.shape
    assert relative_error(actual, expected) < 1e-5


def tiny_backbone() -> keras.Model:
    """A stand-in with VGG-Face's interface ((H, W, 3) -> fc7 map -> dropout), 0.8M params."""
    image = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(FEATURES, 8, activation="relu", name="fc7")(image)
    x = keras.layers.Dropout(0.5, name="dropout7")(x)
    return keras.Model(image, x, name="tiny")


@pytest.mark.parametrize("name", ["dense", "lstm"])
def test_assembled_and_head_models_save_and_load_as_normal_keras_models(tmp_path, name):
    keras.utils.set_random_seed(4)
    head = heads.build_head_model(name, frames=2, **({"width": 8} if name == "dense" else {}))
    backbone = tiny_backbone()
    model = heads.assemble(head, backbone)
    images = np.random.default_rng(4).normal(size=(3, *model.inputs[0].shape[1:]))
    path = tmp_path / "assembled.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, rtol=1e-6)

    # the other way round: a head saved after training, loaded, then assembled
    head.save(tmp_path / "head.keras")
    reassembled = heads.assemble(keras.models.load_model(tmp_path / "head.keras"), backbone)
    np.testing.assert_allclose(reassembled.predict(images, verbose=0), expected, rtol=1e-6)


def test_assemble_rejects_what_it_cannot_join():
    head = heads.build_head_model("dense", width=8)
    wrong = keras.Model(inp := keras.Input((8, 8, 3)), keras.layers.Conv2D(16, 8)(inp))
    with pytest.raises(ValueError, match=r"backbone must output one \(1, 1, 4096\) fc7 map"):
        heads.assemble(head, wrong)

    features = keras.Input((1, 1, 4096))
    branch = keras.layers.Flatten()(features)
    joined = keras.layers.Add()([branch, keras.layers.Dense(4096)(branch)])
    not_a_chain = keras.Model(features, keras.layers.Dense(2)(joined))
    with pytest.raises(ValueError, match="single chain of layers"):
        heads.assemble(not_a_chain, tiny_backbone())

    with pytest.raises(ValueError, match=r"head model input must be \(1, 1, 4096\)"):
        heads.assemble(keras.Model(x := keras.Input((10,)), keras.layers.Dense(2)(x)))


# --- python -m heads ----------------------------------------------------------------------------


def test_command_line_table_shows_the_writeup_heads_matching():
    result = subprocess.run(
        [sys.executable, "-m", "heads"], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["name", "kind"] and lines[0].split()[-1] == "match"
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == set(heads.list_heads())
    for name, (kind, head_params, total_params) in WRITEUP.items():
        assert rows[name] == [
            name,
            kind,
            f"{head_params:,}",
            f"{total_params:,}",
            f"{head_params:,}",
            f"{total_params:,}",
            "yes",
        ]
    for family in FAMILIES:
        assert rows[family][-1] == "-"


def test_command_line_takes_several_patterns_apart_or_joined(capsys):
    """``python -m heads lstm30 dense`` was refused ("unrecognized arguments"): only the comma
    form was taken (probe)."""
    from heads.__main__ import main

    for argv in (["lstm30", "dense2*"], ["lstm30,dense2*"]):
        assert main(argv) == 0
        rows = capsys.readouterr().out.splitlines()[1:]
        assert [row.split()[0] for row in rows] == ["dense2048", "lstm30"]


def test_command_line_refuses_a_backend_it_cannot_run_in_one_line():
    """KERAS_BACKEND=torch (not installed here) or a typo gave Keras' traceback (probe)."""
    env = {**os.environ, "KERAS_BACKEND": "bogus"}
    result = subprocess.run(
        [sys.executable, "-m", "heads"], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("this tool runs on tensorflow or jax, e.g. KERAS_BACKEND=jax")
    )


SIZES = {
    "conv": {"width": 8},
    "dense": {"width": 8},
    "convlstm": {"filters": 4},
    "lstm": {"units": 4},
}
JAX_HEADS = """
import json, sys
from pathlib import Path
import numpy as np, keras, heads
assert keras.backend.backend() == "jax"
# heads saved by another process (TensorFlow), loaded before any model function of heads ran:
# the conv head's PointwiseConv2D is registered by `import heads` after `import keras`
saved = sorted(Path(sys.argv[1]).glob("*.keras"))
assert len(saved) == 2 * len(heads.OUTPUTS) * 4, saved
for path in saved:
    model = keras.models.load_model(path)
    x = np.load(path.with_suffix(".x.npy"), allow_pickle=False)
    expected = np.load(path.with_suffix(".expected.npy"), allow_pickle=False)
    got = model.predict_on_batch(x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=path.name)
sizes = json.loads(sys.argv[2])
for family, hparams in sizes.items():
    for output in heads.OUTPUTS:
        model = heads.build_head_model(family, output, frames=3, **hparams)
        x = np.random.default_rng(0).random((2, *model.input_shape[1:]), dtype=np.float32)
        model.compile(optimizer="adam", loss=heads.loss_for(output))
        model.fit(x, np.array([0, 1]), epochs=1, verbose=0)
        scores = heads.bonafide_score(model.predict_on_batch(x), output)
        assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1)), (family, output)
print("ok")
"""


def test_every_family_builds_trains_and_predicts_under_jax(tmp_path):
    """Each family and output, drawn and trained a step under TensorFlow, predicts the same under
    JAX (only the conv head was compared: the others' scores were checked to lie in [0, 1],
    which any softmax does: review); and each builds and trains under JAX."""
    keras.utils.set_random_seed(5)
    for family, hparams in SIZES.items():
        for output in heads.OUTPUTS:
            for trained in (False, True):
                model = heads.build_head_model(family, output, frames=3, **hparams)
                x = np.random.default_rng(5).random((3, *model.input_shape[1:]), dtype=np.float32)
                if trained:  # weights moved off their draw, biases too
                    model.compile(optimizer="adam", loss=heads.loss_for(output))
                    model.fit(x, np.array([0, 1, 0]), epochs=3, verbose=0)
                name = tmp_path / f"{family}-{output}-{'trained' if trained else 'drawn'}"
                model.save(name.with_suffix(".keras"))
                np.save(name.with_suffix(".x.npy"), x)
                np.save(name.with_suffix(".expected.npy"), model.predict_on_batch(x))
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", JAX_HEADS, str(tmp_path), json.dumps(SIZES)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
