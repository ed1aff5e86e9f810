"""The GPU benchmark: run by bench/gpu.sh on a lent GPU machine (JAX, no TensorFlow).

Prints the device, its measured bfloat16 matrix-multiply rate, fc7 extraction frames/s in
float32 and mixed bfloat16 with the fraction of that rate they reach (VGG-Face to fc7 is
~30.9 GFLOP per 224x224 frame), how far bfloat16 fc7 is from float32 (cosine), the time of one
cached-feature trial per write-up head (trained by ``heads.Engine``, as the sweep trains), the
engine's and plain ``model.fit``'s seconds per epoch for each write-up head (``bench/engine.py``'s
measurement, under JAX), and the wall time of a short sweep. One table per part.

    KERAS_BACKEND=jax python bench/gpu.py [--frames 1024] [--batch 128] [--trials 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from precision import build, cosine, frames_of_synthetic_set, run  # bench/precision.py

ROOT = Path(__file__).resolve().parents[1]
GFLOP_PER_FRAME = 30.9  # VGG-Face to fc7, multiply-adds counted as two operations


def matmul_rate(size: int = 8192, repeats: int = 10) -> float:
    """Measured bfloat16 matrix-multiply rate of the default device, FLOP/s."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((size, size), jnp.bfloat16)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    start = time.perf_counter()
    for _ in range(repeats):
        out = f(a)
    out.block_until_ready()
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def extraction(frames: int, batch: int, peak: float) -> None:
    real = frames_of_synthetic_set(min(frames, 280))
    x = np.concatenate([real] * -(-frames // len(real)))[:frames]
    print(f"\nfc7 extraction, {len(x)} frames (synthetic set, tiled), batch {batch}")
    print(
        f"{'precision':<10} {'frames/s':>9} {'of bf16 matmul':>15} {'cos min':>9} {'cos mean':>9}"
    )
    base = None
    for precision in ("float32", "bfloat16"):
        model = build(precision)
        run(model, x, batch)  # compile at this batch size
        features, rate = run(model, x, batch)
        base = features if base is None else base
        cos = cosine(features, base)
        share = rate * GFLOP_PER_FRAME * 1e9 / peak
        print(f"{precision:<10} {rate:>9.1f} {share:>14.1%} {cos.min():>9.5f} {cos.mean():>9.5f}")


def trials(cache: Path) -> None:
    import optuna

    from core.features import FeatureOptions, cached_features
    from experiments.trial import search
    from experiments.trial.splits import split_data
    from experiments.trial.training import train_head

    features = cached_features(FeatureOptions(cache_dir=cache, progress=False))
    print(f"\none cached-feature trial per write-up head ({len(features.clips)} clips)")
    print(f"{'head':<14} {'seconds':>8} {'epochs':>7}")
    for params in search.baselines():
        trial = optuna.trial.FixedTrial(params)
        config = search.suggest(trial, search.families())
        data = {s: split_data(features, s, config.kind) for s in ("train", "dev", "test")}
        start = time.perf_counter()
        result = train_head(config, data, features.frames_per_clip, seed=0)
        name = search.baseline_name(params) or config.head
        print(f"{name:<14} {time.perf_counter() - start:>8.2f} {result.best_epoch:>7}")


def epochs() -> None:
    from engine import WRITEUP, measure  # bench/engine.py

    print("\nseconds per training epoch, fastest of 3: heads.Engine and plain model.fit (JAX)")
    print(f"{'head':<14} {'engine':>8} {'fit':>8} {'fit/engine':>11}")
    for name, result in measure(WRITEUP, 3).items():
        engine, fit = min(result["engine"]), min(result["fit"])
        print(f"{name:<14} {engine:>8.3f} {fit:>8.3f} {fit / engine:>10.1f}x")


def sweep(cache: Path, trials_count: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        env = dict(os.environ, VGGFACE_HEADS_CACHE=str(cache))
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(ROOT / "experiments" / "sweep.py"), "--trials", str(trials_count)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - start
    tail = "\n".join(done.stdout.splitlines()[-3:] + done.stderr.splitlines()[-3:])
    print(f"\nshort sweep: {trials_count} trials on cached features, {seconds:.1f} s wall")
    if done.returncode:
        print(f"sweep failed with status {done.returncode}:\n{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    import jax
    import keras

    device = jax.devices()[0]
    peak = matmul_rate()
    print(
        f"device: {device.device_kind} ({device.platform}), keras backend {keras.backend.backend()}"
    )
    print(f"measured bfloat16 matmul: {peak / 1e12:.1f} TFLOP/s")
    extraction(args.frames, args.batch, peak)
    with tempfile.TemporaryDirectory() as cache:
        trials(Path(cache))
        epochs()
        sweep(Path(cache), args.trials)


if __name__ == "__main__":
    main()
