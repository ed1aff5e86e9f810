"""The engine trains a head to what ``model.fit`` trains it to, an epoch per compiled call.

Real Keras computations, no mocks: each write-up head at a small width (the same family and
layers, fewer units), as the sweep trains it (standardised fc7-like inputs, logits loss, the
write-up's dropouts and the fc7 dropout on), two copies built from one seed: one trained an epoch
by ``model.fit(shuffle=False)``, the other by ``Engine.train_epoch(shuffle=False)``, both with
class weights and with a batch size that leaves a partial last batch (or none, or only one).
Dropout is on: the engine draws it from the layers' own seed generators, as ``fit`` does, so the
masks are the same ones. On TensorFlow, Adam runs on every head, SGD (momentum 0.9) on conv2048,
RMSprop on dense2048 and convlstm2049, mixed float16 (with its loss scale) on dense2048; on JAX,
RMSprop on dense2048, SGD on convlstm2049 and float16 on dense2048. Not the whole cross product:
the optimizer's update does not depend on the head, and every comparison traces ``fit`` and the
engine anew (about 3 s each here, twice that for the recurrent heads).

Tolerance. On TensorFlow the engine runs ``fit``'s own graph kernels forward and backward and the
optimizer's update compiled by XLA, whose fused arithmetic rounds differently from the graph's
op-by-op kernels; on JAX both are one XLA program. Measured on this machine (AVX-512) when the
test was written, after one epoch: losses within 1.3e-7 of ``fit``'s (relative), and every weight
array within 2.1e-6 of its largest weight on TensorFlow (RMSprop; 6.4e-6 in an earlier run of
RMSprop on lstm30), equal bit for bit on JAX. Allowed: ``LOSS_RTOL`` = 1e-5 and ``WEIGHT_RTOL`` =
3e-5, room for other CPUs' vector widths (CI's AVX2); a wrong batch, weight or mask is far
outside it (measured on the dense head, one epoch: no class weights, the order shuffled, batches
of 7 instead of 8 or other dropout masks each put a weight array 0.85-2.0 of its largest weight
away from ``fit``'s).

The JAX part runs in a subprocess (``KERAS_BACKEND=jax``), started with the first test of this
file so that it runs beside the TensorFlow tests, as ``tests/test_backends.py`` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import heads

ROOT = Path(__file__).resolve().parents[1]
LOSS_RTOL = 1e-5
WEIGHT_RTOL = 3e-5
FRAMES = 3  # frames per clip of the sequence heads here
CHANNELS = 4096
# The write-up heads, small: same family and layers, fewer units.
SMALL = {
    "conv4096": ("conv", {"width": 16}),
    "conv2048": ("conv", {"width": 8}),
    "dense2048": ("dense", {"width": 16}),
    "convlstm2049": ("convlstm", {"filters": 8}),
    "lstm30": ("lstm", {"units": 30}),
}
# (head, optimizer, inputs, batch size[, dtype policy]): a partial last batch, none (21 = 3 x 7),
# or only one; float16 trains with a loss scale (LossScaleOptimizer), as model.compile adds.
CASES = [
    ("conv4096", "adam", 21, 8),
    ("conv2048", "adam", 21, 7),
    ("conv2048", "sgd", 21, 8),
    ("dense2048", "adam", 21, 8),
    ("dense2048", "rmsprop", 21, 8),
    ("dense2048", "adam", 21, 8, "mixed_float16"),
    ("convlstm2049", "adam", 13, 4),
    ("convlstm2049", "rmsprop", 13, 4),
    ("lstm30", "adam", 13, 16),
]
JAX_CASES = [
    ("dense2048", "rmsprop", 21, 8),
    ("dense2048", "adam", 21, 8, "mixed_float16"),
    ("convlstm2049", "sgd", 13, 4),
]
CLASS_WEIGHT = {0: 0.7, 1: 1.9}


def optimizer(name: str) -> keras.optimizers.Optimizer:
    """The sweep's three optimizers (``experiments.training.make_optimizer``)."""
    if name == "adam":
        return keras.optimizers.Adam(1e-3)
    if name == "sgd":
        return keras.optimizers.SGD(1e-2, momentum=0.9)
    return keras.optimizers.RMSprop(1e-3)


def inputs(head: str, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """fc7-like ReLU features of scale ~100 with a weak class direction; labels 0/1 (~40% 1)."""
    rng = np.random.default_rng(seed)
    frames = (FRAMES,) if heads.get_spec(SMALL[head][0]).kind == "sequence" else ()
    y = (rng.uniform(size=count) < 0.4).astype(np.int32)
    direction = rng.normal(size=CHANNELS)
    shift = (2 * y - 1).reshape(-1, *[1] * (len(frames) + 3)) * 0.5 * direction
    x = np.maximum(0.0, rng.normal(0.5, 1.0, (count, *frames, 1, 1, CHANNELS)) + shift)
    return (x * 100).astype(np.float32), y


def build(
    head: str, x: np.ndarray, seed: int = 0, dropout: bool = True
) -> tuple[keras.Model, keras.Model]:
    """The small head (write-up dropouts, fc7 dropout 0.5; or none) and its standardised
    training model."""
    family, hparams = SMALL[head]
    rates = {} if dropout else {"feature_dropout": 0.0, "dropout": 0.0}
    keras.utils.set_random_seed(seed)
    model = heads.build_head_model(family, frames=FRAMES, **hparams, **rates)
    return model, heads.training_model(model, heads.feature_statistics(x))


def relative_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The largest ``max |a - b| / max |a|`` over the weight arrays."""
    return max(
        float(np.max(np.abs(u - v)) / max(np.max(np.abs(u)), 1e-30))
        for u, v in zip(a, b, strict=True)
    )


def engine_against_fit(
    head: str, opt: str, count: int, batch: int, policy: str = "float32"
) -> dict[str, float]:
    """One epoch of ``fit`` and of the engine on two copies of a head, in the same order."""
    x, y = inputs(head, count)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        fitted, fitted_training = build(head, x)
        trained, training = build(head, x)
    finally:
        keras.config.set_dtype_policy(previous)
    fitted_training.compile(optimizer=optimizer(opt), loss=heads.logits_loss("softmax"))
    history = fitted_training.fit(
        x, y, batch_size=batch, epochs=1, shuffle=False, class_weight=CLASS_WEIGHT, verbose=0
    )
    engine = heads.Engine(
        training, optimizer(opt), heads.logits_loss("softmax"), batch, CLASS_WEIGHT
    )
    initial = trained.get_weights()
    loss = engine.train_epoch(x, y, shuffle=False)
    after = trained.get_weights()
    return {
        "fit_loss": history.history["loss"][0],
        "engine_loss": loss,
        "weights": relative_difference(fitted.get_weights(), after),
        "moved": max(float(np.max(np.abs(a - b))) for a, b in zip(initial, after, strict=True)),
    }


class StopAfter(keras.callbacks.Callback):
    """Sets ``model.stop_training`` at the end of epoch ``epochs`` (1-based); counts epochs."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs, self.seen = epochs, 0

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.seen += 1
        if epoch + 1 >= self.epochs:
            self.model.stop_training = True


def seeded_epochs(seed: int, epochs: int = 3) -> tuple[list[float], list[np.ndarray]]:
    """Shuffled epochs of the small dense2048 (dropout on), engine seeded ``seed``: ``fit`` for
    up to 10, stopped by a callback after ``epochs``."""
    x, y = inputs("dense2048", 45, seed=1)
    head, training = build("dense2048", x)
    engine = heads.Engine(
        training, optimizer("adam"), heads.logits_loss("softmax"), 8, CLASS_WEIGHT, seed=seed
    )
    stop = StopAfter(epochs)
    losses = engine.fit(x, y, epochs=10, callbacks=[stop])
    assert len(losses) == stop.seen == epochs
    return losses, head.get_weights()


def epoch_after_set_weights() -> float:
    """Train an epoch, put the first weights back with ``set_weights``, train the same epoch
    again (no dropout, plain SGD: nothing else changes): the difference of the two results."""
    x, y = inputs("dense2048", 21)
    head, training = build("dense2048", x, dropout=False)
    engine = heads.Engine(training, keras.optimizers.SGD(0.05), heads.logits_loss("softmax"), 8)
    start = head.get_weights()
    engine.train_epoch(x, y, shuffle=False)
    first = head.get_weights()
    head.set_weights(start)
    engine.train_epoch(x, y, shuffle=False)
    return relative_difference(first, head.get_weights())


def check_against_fit(result: dict[str, float]) -> None:
    assert result["moved"] > 1e-4, result  # training moved the weights
    assert result["engine_loss"] == pytest.approx(result["fit_loss"], rel=LOSS_RTOL), result
    assert result["weights"] <= WEIGHT_RTOL, result


# --- JAX, in a subprocess started with the first test --------------------------------------

CHILD = r"""
import json, sys
import numpy as np
from tests.test_engine import JAX_CASES, engine_against_fit, epoch_after_set_weights, seeded_epochs

out = {"backend": __import__("keras").backend.backend()}
out["cases"] = [engine_against_fit(*case) for case in JAX_CASES]
first, again = seeded_epochs(0), seeded_epochs(0)
out["losses"] = first[0]
out["same_seed_equal"] = all(np.array_equal(a, b) for a, b in zip(first[1], again[1]))
out["after_set_weights"] = epoch_after_set_weights()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def jax_child():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate()


@pytest.fixture(autouse=True, scope="module")
def _start_jax_early(request):
    """Start the JAX subprocess now if its test is selected, so it runs beside the others."""
    if any(item.name.startswith("test_jax") for item in request.session.items):
        request.getfixturevalue("jax_child")


# --- TensorFlow (the process's backend) ----------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda case: "-".join(map(str, case)))
def test_an_engine_epoch_equals_a_fit_epoch(case):
    check_against_fit(engine_against_fit(*case))


def test_shuffled_epochs_lower_the_loss_repeat_for_a_seed_and_stop_when_a_callback_says():
    first, again = seeded_epochs(0), seeded_epochs(0)
    assert first[0][-1] < 0.8 * first[0][0], first[0]
    assert first[0] == again[0]
    for a, b in zip(first[1], again[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_first_shuffled_epoch_takes_the_seeds_permutation():
    """Shuffled, the first epoch's order is ``np.random.default_rng(seed).permutation(n)``."""
    x, y = inputs("dense2048", 21)
    order = np.random.default_rng(5).permutation(len(x))
    _, shuffled = build("dense2048", x)
    _, in_order = build("dense2048", x)
    engine = heads.Engine(shuffled, optimizer("sgd"), heads.logits_loss("softmax"), 8, seed=5)
    loss = engine.train_epoch(x, y)
    reference = heads.Engine(in_order, optimizer("sgd"), heads.logits_loss("softmax"), 8)
    assert reference.train_epoch(x[order], y[order], shuffle=False) == pytest.approx(loss, 1e-6)
    assert relative_difference(in_order.get_weights(), shuffled.get_weights()) <= WEIGHT_RTOL


def test_the_models_variables_are_the_state_between_epochs():
    assert epoch_after_set_weights() <= WEIGHT_RTOL


def test_predict_logits_is_the_model_without_dropout_in_padded_batches():
    x, y = inputs("convlstm2049", 11)
    _, training = build("convlstm2049", x)
    engine = heads.Engine(training, optimizer("adam"), heads.logits_loss("softmax"), 4)
    engine.train_epoch(x, y)
    logits = engine.predict_logits(x, batch_size=4)  # batches of 4, 4 and 3 (padded)
    assert logits.shape == (11, 2)
    expected = keras.ops.convert_to_numpy(training(x, training=False))
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_class_weights_follow_keras_and_bad_arguments_are_one_clear_line():
    x, y = inputs("dense2048", 5)
    _, training = build("dense2048", x)
    engine = heads.Engine(training, optimizer("sgd"), heads.logits_loss("softmax"), 2, {1: 3.0})
    weights = engine.sample_weights(np.array([0, 1, 1, 0]))
    np.testing.assert_array_equal(weights, [1.0, 3.0, 3.0, 1.0])  # an absent class weighs 1
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        heads.Engine(training, optimizer("sgd"), heads.logits_loss("softmax"), 0)
    with pytest.raises(ValueError, match="same number of inputs"):
        engine.train_epoch(x, y[:3])


# --- JAX -----------------------------------------------------------------------------------


def test_jax_engine_equals_fit_and_repeats_for_a_seed(jax_child):
    out, err = jax_child.communicate(timeout=600)
    assert jax_child.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    for case in result["cases"]:
        check_against_fit(case)
    assert result["losses"][-1] < 0.8 * result["losses"][0], result["losses"]
    assert result["same_seed_equal"]
    assert result["after_set_weights"] <= WEIGHT_RTOL
