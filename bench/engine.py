"""Seconds per training epoch of each write-up head: the engine, Keras fit, and a roofline.

For each write-up head, on the demo's sizes (560 training frames for frame heads, 80 clips of 7
frames for sequence heads), as the sweep's baselines train (standardised fc7-like features,
``heads.training_model``, logits loss, Adam 1e-3, batch 32, balanced class weights, the heads'
dropouts), in one run:

- engine: ``heads.Engine.train_epoch`` (shuffled), each call timed whole (shuffling on the host,
  the copy in, the epoch, the loss back), TensorFlow in this process and JAX in a child;
- fit: plain ``model.fit(x, y, batch_size=32, epochs=1, class_weight=..., shuffle=True)`` of a
  second copy of the head with its own Adam, the epoch timed by a callback (``on_epoch_begin`` to
  ``on_epoch_end``: the epoch's steps, not ``fit``'s setup), TensorFlow here and JAX in the child
  (``KERAS_BACKEND=jax``);
- roofline: the head's matrix products (forward and backward, counted below) at the machine's
  float32 matmul rate, plus Adam's memory traffic (per parameter and step: read the weight, its
  gradient and both moments, write the weight and both moments, 7 x 4 bytes) at the machine's
  copy rate, both measured in this run (:func:`matmul_rate`, :func:`copy_rate`).

Every timed epoch follows a warm-up epoch (tracing and compiling are not counted). Engine and fit
epochs alternate, one of each at a time (``--epochs`` of each), and the table gives the fastest
epoch of each (median in brackets): the machine is shared, and the fastest is the one least
disturbed. Everything is float32 (Keras' default policy): no bfloat16 unit (AMX, AVX512-BF16) is
used; ``--policy mixed_bfloat16`` trains every head (engine and ``fit``) in that policy instead,
against the same float32 roofline.

    python bench/engine.py [--heads conv4096,...] [--epochs 6] [--quick] [--policy float32]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # heads, from a checkout without an install

WRITEUP = ["conv4096", "conv2048", "dense2048", "convlstm2049", "lstm30"]
LARGE = {"conv4096", "conv2048", "dense2048", "convlstm2049"}  # the 2x-of-roofline goal
FRAMES, CLIPS, CLIP_FRAMES = 560, 80, 7  # the demo set's training split
BATCH, LEARNING_RATE = 32, 1e-3
ADAM_BYTES = 7 * 4  # per parameter and step: read w, g, m, v; write w, m, v (float32)


# --- the machine ---------------------------------------------------------------------------


def best_of(function, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``function`` (after one untimed call)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_rate(size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """float32 FLOP/s of a (size x size) @ (size x size) product: NumPy's BLAS and TensorFlow's
    (oneDNN), all cores each; the roofline takes the faster."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    flops = 2.0 * size**3
    ta, tb = tf.constant(a), tf.constant(b)
    return {
        "numpy": flops / best_of(lambda: a @ b, repeats),
        "tensorflow": flops / best_of(lambda: tf.matmul(ta, tb).numpy(), repeats),
    }


def batch_product_rate(rows: int = BATCH, size: int = 4096, repeats: int = 10) -> dict[str, float]:
    """float32 FLOP/s of a batch's product through a wide layer, (``rows`` x ``size``) @ (``size``
    x ``size``), as a head's first layer does each step: NumPy's BLAS and TensorFlow's. At batch
    32 it reads the whole kernel for few operations: not the large products' rate."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, size), dtype=np.float32)
    w = rng.standard_normal((size, size), dtype=np.float32)
    flops = 2.0 * rows * size * size
    ta, tw = tf.constant(a), tf.Variable(w)
    product = tf.function(lambda: tf.matmul(ta, tw))
    return {
        "numpy": flops / best_of(lambda: a @ w, repeats),
        "tensorflow": flops / best_of(lambda: product().numpy(), repeats),
    }


def copy_rate(mib: int = 256, repeats: int = 5) -> float:
    """Bytes read plus bytes written per second by ``np.copyto`` of a ``mib`` MiB float32 array
    into another (both touched beforehand), split across as many threads as cores."""
    source = np.ones(mib * 2**20 // 4, dtype=np.float32)
    target = np.zeros_like(source)
    parts = np.array_split(np.arange(len(source)), os.cpu_count() or 1)
    bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts if len(p)]

    def copy() -> None:
        threads = [
            threading.Thread(target=np.copyto, args=(target[lo:hi], source[lo:hi]))
            for lo, hi in bounds
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return 2 * source.nbytes / best_of(copy, repeats)


def cpu() -> dict[str, str]:
    """/proc/cpuinfo's model name, family/model/stepping and its vector and matrix flags."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return {"model": platform.processor() or platform.machine()}
    flags = fields.get("flags", "").split()
    wide = sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma")))
    return {
        "model": fields.get("model name", "?"),
        "id": f"family {fields.get('cpu family')} model {fields.get('model')} stepping "
        f"{fields.get('stepping')}",
        "flags": " ".join(wide),
    }


# --- the roofline's arithmetic -------------------------------------------------------------


def head_flops(name: str, frames: int = FRAMES) -> float:
    """Floating-point operations of one epoch's matrix products, forward and backward.

    Multiply-adds count 2. Forward: every kernel's product over the ``frames`` inputs (a
    sequence head's LSTM: the input and the recurrent kernel at every frame). Backward: each
    kernel's gradient costs its forward product again, and so does the gradient of its input,
    except for the first layer, whose input is the data (no gradient is needed there).
    Elementwise work (activations, dropout, the loss) is left out.
    """
    import heads

    spec = heads.get_spec(name)
    width = spec.defaults.get("width") or spec.defaults.get("filters") or spec.defaults["units"]
    channels = 4096
    if spec.family in ("conv", "dense"):
        first = channels * width  # per frame
        rest = width * 2  # the prediction layer
        return 2.0 * frames * (2 * first + 3 * rest)
    gates = 4 * width  # LSTM: input kernel (C, 4F), recurrent kernel (F, 4F), at every frame
    first = channels * gates
    recurrent = width * gates
    clips = frames // CLIP_FRAMES
    return 2.0 * (frames * (2 * first + 3 * recurrent) + clips * 3 * width * 2)


def roofline(name: str, params: int, rate: float, bandwidth: float) -> tuple[float, float]:
    """Seconds per epoch: (:func:`head_flops` at ``rate``, Adam's bytes at ``bandwidth``)."""
    sequence = heads_kind(name) == "sequence"
    steps = -(-(CLIPS if sequence else FRAMES) // BATCH)
    return head_flops(name) / rate, ADAM_BYTES * params * steps / bandwidth


def heads_kind(name: str) -> str:
    import heads

    return heads.get_spec(name).kind


# --- one backend's measurements ------------------------------------------------------------


def inputs(name: str) -> tuple[np.ndarray, np.ndarray]:
    """fc7-like ReLU features of scale ~100 and balanced labels, the demo's training sizes."""
    sequence = heads_kind(name) == "sequence"
    shape = (CLIPS, CLIP_FRAMES, 1, 1, 4096) if sequence else (FRAMES, 1, 1, 4096)
    x = np.maximum(0.0, np.random.default_rng(0).normal(0.5, 1.0, shape)) * 100.0
    return x.astype(np.float32), np.tile([0, 1], len(x) // 2).astype(np.int32)


def training_model(name: str, x: np.ndarray):
    """The baseline's training model: head with its dropouts, standardised input, logits out."""
    import keras

    import heads

    keras.utils.set_random_seed(0)
    head = heads.build_head_model(name, frames=CLIP_FRAMES)
    return head, heads.training_model(head, heads.feature_statistics(x))


class EpochTimes:
    """A Keras callback's two hooks: the seconds of every epoch, begin to end."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def callback(self):
        import keras

        times = self

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None) -> None:
                times.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None) -> None:
                times.seconds.append(time.perf_counter() - times.start)

        return Timer()


def measure_head(name: str, epochs: int) -> dict:
    """Parameters, and every timed epoch's seconds of the engine and of ``fit``, for ``name``."""
    import keras

    import heads

    x, y = inputs(name)
    counts = np.bincount(y, minlength=2)
    class_weight = {c: len(y) / (2 * counts[c]) for c in (0, 1)}
    loss = heads.logits_loss("softmax")
    head, model = training_model(name, x)
    engine = heads.Engine(model, keras.optimizers.Adam(LEARNING_RATE), loss, BATCH, class_weight)
    _, fitted = training_model(name, x)
    fitted.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=loss)
    fit_times, engine_times = EpochTimes(), []
    timer = fit_times.callback()
    for timed in [False] + [True] * epochs:  # the first of each traces and compiles, untimed
        start = time.perf_counter()
        engine.train_epoch(x, y)
        if timed:
            engine_times.append(time.perf_counter() - start)
        fitted.fit(
            x,
            y,
            batch_size=BATCH,
            epochs=1,
            class_weight=class_weight,
            shuffle=True,
            verbose=0,
            callbacks=[timer] if timed else [],
        )
    return {"params": head.count_params(), "engine": engine_times, "fit": fit_times.seconds}


def measure(names: list[str], epochs: int) -> dict[str, dict]:
    """:func:`measure_head` of each head in turn, each in a fresh Keras session."""
    import keras

    results = {}
    for name in names:
        results[name] = measure_head(name, epochs)
        keras.backend.clear_session()
        print(
            f"  {keras.backend.backend()} {name}: engine {min(results[name]['engine']):.3f} s, "
            f"fit {min(results[name]['fit']):.3f} s",
            file=sys.stderr,
            flush=True,
        )
    return results


def keras_policy() -> str:
    import keras

    return keras.config.dtype_policy().name


def in_child(backend: str, names: list[str], epochs: int) -> dict[str, dict]:
    """:func:`measure` in a fresh process with ``KERAS_BACKEND=backend``."""
    command = [sys.executable, __file__, "--child", "--heads", ",".join(names)]
    command += ["--epochs", str(epochs), "--policy", keras_policy()]
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", default=",".join(WRITEUP))
    parser.add_argument("--epochs", type=int, default=6, help="timed epochs of each, alternating")
    parser.add_argument("--quick", action="store_true", help="one timed epoch of each")
    parser.add_argument(
        "--policy", default="float32", help="Keras dtype policy of every head, e.g. mixed_bfloat16"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = args.heads.split(",")
    if args.quick:
        args.epochs = 1
    import keras

    keras.config.set_dtype_policy(args.policy)
    if args.child:
        print(json.dumps(measure(names, args.epochs)))
        return

    began, load = datetime.now(UTC), os.getloadavg()[0]
    rates = matmul_rate()
    batch_rates = batch_product_rate()
    bandwidth = copy_rate()
    tensorflow = measure(names, args.epochs)
    jax = in_child("jax", names, args.epochs)
    rates_after = matmul_rate()  # the faster of before and after: the roofline is a bound
    rate = max(*rates.values(), *rates_after.values())
    bandwidth = max(bandwidth, copy_rate())

    machine = cpu()
    print(
        f"\nbench/engine.py, {began:%Y-%m-%d %H:%M} UTC, {machine['model']} ({machine['id']}), "
        f"{os.cpu_count()} cores, load average {load:.1f} at start, {os.getloadavg()[0]:.1f} "
        f"at the end, Keras {keras.__version__}; {(datetime.now(UTC) - began).seconds} s in all"
    )
    print(f"CPU flags: {machine['flags']}")
    print(
        f"float32 matmul (2048^3), GFLOP/s at start / end: NumPy {rates['numpy'] / 1e9:.0f} / "
        f"{rates_after['numpy'] / 1e9:.0f}, TensorFlow {rates['tensorflow'] / 1e9:.0f} / "
        f"{rates_after['tensorflow'] / 1e9:.0f}: roofline at {rate / 1e9:.0f}; copy "
        f"{bandwidth / 1e9:.1f} GB/s (read + written)"
    )
    print(
        f"a batch's product ({BATCH} x 4096) @ (4096 x 4096), GFLOP/s at start: NumPy "
        f"{batch_rates['numpy'] / 1e9:.0f}, TensorFlow {batch_rates['tensorflow'] / 1e9:.0f} "
        "(the roofline takes the large products' rate)"
    )
    print(
        f"seconds per epoch, fastest of {args.epochs} (median); batch {BATCH}, "
        f"Adam; {FRAMES} frames or {CLIPS} clips of {CLIP_FRAMES}; Keras policy {args.policy} "
        "(the roofline is float32's)\n"
    )
    print(
        "| head | params | engine TF | fit TF | engine JAX | fit JAX | roofline (matmul + Adam) "
        "| fit TF / engine TF | engine TF / roofline | fit JAX / engine JAX | engine JAX / "
        "roofline |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")

    def cell(seconds: list[float]) -> str:
        return f"{min(seconds):.3f} ({float(np.median(seconds)):.3f})"

    for name in names:
        tf_run, jax_run = tensorflow[name], jax[name]
        params = tf_run["params"]
        arithmetic, traffic = roofline(name, params, rate, bandwidth)
        bound = arithmetic + traffic
        print(
            f"| {name} | {params / 1e6:.2f}M | {cell(tf_run['engine'])} | {cell(tf_run['fit'])} "
            f"| {cell(jax_run['engine'])} | {cell(jax_run['fit'])} "
            f"| {bound:.3f} ({arithmetic:.3f} + {traffic:.3f}) "
            f"| {min(tf_run['fit']) / min(tf_run['engine']):.1f}x "
            f"| {min(tf_run['engine']) / bound:.2f}x "
            f"| {min(jax_run['fit']) / min(jax_run['engine']):.1f}x "
            f"| {min(jax_run['engine']) / bound:.2f}x |"
        )
    print(
        f"\ngoals: fit / engine >= 3x on every head; engine / roofline <= 2x on "
        f"{', '.join(sorted(LARGE & set(names)))}"
    )


if __name__ == "__main__":
    main()
