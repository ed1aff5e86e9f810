"""The VGG-Face backbone: topology, parameter counts, preprocessing, and the JAX backend."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import core
from core.backbone.spec import CONV_LAYERS


@pytest.fixture(scope="module")
def full_model():
    return core.build_vggface()


def test_parameter_counts_match_the_write_up(full_model):
    assert full_model.count_params() == 145_002_878
    trunk = core.build_vggface(include_top=False)
    assert trunk.count_params() == 134_260_544
    assert trunk.output_shape == (None, 1, 1, 4096)
    assert trunk.layers[-1].name == "dropout7"


def test_layers_carry_matconvnet_names(full_model):
    convs = [layer.name for layer in full_model.layers if layer.__class__.__name__ == "Conv2D"]
    assert convs == list(CONV_LAYERS)
    fc8 = full_model.get_layer("fc8")
    assert fc8.get_config()["activation"] == "linear"  # the write-up's ReLU on fc8 is a slip
    assert full_model.get_layer("fc6").get_config()["kernel_size"] == (7, 7)
    dropouts = [layer.rate for layer in full_model.layers if layer.name.startswith("dropout")]
    assert dropouts == [0.5, 0.5]
    assert full_model.output_shape == (None, 2622)


def test_top_is_the_softmax_of_a_linear_fc8_on_fc7(full_model):
    """Its output is NumPy's softmax of fc7 times fc8's weights plus its bias: fc8 linear (a
    ReLU there, the write-up's slip, would zero the negative logits), then a softmax (the sum of
    1 this test checked holds for any softmax: review)."""
    import keras

    rng = np.random.default_rng(0)
    x = core.preprocess_input(rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8))
    fc7 = keras.Model(full_model.input, full_model.get_layer("fc7").output)
    features = fc7.predict_on_batch(x).reshape(2, -1).astype(np.float64)
    fc8 = full_model.get_layer("fc8")
    drawn = fc8.get_weights()
    # the random fc8's logits spread by hundreds: a softmax of them is one-hot, a ReLU unseen
    kernel, bias = drawn[0] * (3 / np.std(features @ drawn[0].reshape(4096, -1))), drawn[1]
    try:
        fc8.set_weights([kernel, bias])
        output = full_model.predict_on_batch(x)
    finally:
        fc8.set_weights(drawn)
    logits = features @ kernel.reshape(-1, kernel.shape[-1]) + bias
    assert (logits < 0).mean() > 0.3 and (logits > 0).mean() > 0.3
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    assert expected.max() < 0.5  # a distribution, not one class
    np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-9)


def test_preprocess_subtracts_rgb_average_image():
    image = np.zeros((2, 2, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 255, 100, 0
    out = core.preprocess_input(image)
    assert out.dtype == np.float32 and out.shape == (2, 2, 3)
    np.testing.assert_allclose(out[0, 0], [255 - 129.1863, 100 - 104.7624, -93.5940], rtol=1e-6)
    np.testing.assert_array_equal(core.preprocess_input(image.astype(np.float64)), out)
    custom = core.preprocess_input(image, average_image=[[[10, 20, 30]]])
    np.testing.assert_allclose(custom[1, 1], [245, 80, -30])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"shape \(\.\.\., H, W, 3\)"):
        core.preprocess_input(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="averageImage must have 3 values"):
        core.preprocess_input(np.zeros((4, 4, 3)), average_image=[1, 2])
    with pytest.raises(ValueError, match="include_top must be True or False"):
        core.build_vggface(include_top="yes")
    with pytest.raises(ValueError, match="weights must be None or a path"):
        core.build_vggface(weights=3)


JAX_CHECK = """
import numpy as np, keras, core
assert keras.backend.backend() == "jax"
model = core.build_vggface(weights=None, include_top=False)
model.set_weights([np.load(f"{folder}/w{i}.npy") for i in range(len(model.weights))])
np.save(f"{folder}/jax.npy", np.asarray(model.predict_on_batch(np.load(f"{folder}/x.npy"))))
"""


def test_same_fc7_under_the_jax_backend(tmp_path):
    trunk = core.build_vggface(include_top=False)
    for i, value in enumerate(trunk.get_weights()):
        np.save(tmp_path / f"w{i}.npy", value)
    x = core.preprocess_input(np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3)))
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    script = f"folder = {str(tmp_path)!r}\n" + JAX_CHECK
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = trunk.predict_on_batch(x)
    # Same function, different kernels: compare relative to the feature scale (float32 sums).
    error = np.abs(np.load(tmp_path / "jax.npy") - expected).max() / np.abs(expected).max()
    assert error < 1e-4 and np.abs(expected).max() > 1  # He init keeps features away from 0
