"""fc7 extraction in float32 against mixed bfloat16 / float16, side by side in one run.

    python bench/precision.py [--frames 48] [--batch 16] [--repeats 2]

Runs the network the feature cache runs (VGG-Face to fc7, fc6/fc7 as matrix products) on real
frames of the synthetic set, once per precision, alternating (ABBA) and keeping each one's best
frames/s, and reports the ratio to float32 and how far the fc7 features are from float32's
(cosine similarity per frame: minimum and mean). Prints one table.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def frames_of_synthetic_set(count: int) -> np.ndarray:
    from core.backbone.spec import preprocess_input
    from core.data.dataset import load_dataset
    from core.data.frames import prepare_frames, read_frames
    from core.data.synthetic import synthetic_dataset

    root = synthetic_dataset(Path(tempfile.gettempdir()) / "vggface-heads-bench" / "synthetic")
    frames = []
    for clip in load_dataset(root).clips:
        frames.append(prepare_frames(read_frames(clip.path, 7)))
        if sum(len(f) for f in frames) >= count:
            break
    return preprocess_input(np.concatenate(frames)[:count])


def build(precision: str):
    import keras

    from core.backbone.network import dense_fc7, dtype_policy, vggface_network
    from core.constants import RANDOM_SEED

    keras.backend.clear_session()
    with dtype_policy(precision):
        keras.utils.set_random_seed(RANDOM_SEED)
        return dense_fc7(vggface_network(include_top=False))


def run(model, x: np.ndarray, batch: int) -> tuple[np.ndarray, float]:
    model.predict_on_batch(x[:batch])  # warm-up: compile and allocate
    start = time.perf_counter()
    out = [np.asarray(model.predict_on_batch(x[i : i + batch])) for i in range(0, len(x), batch)]
    return np.concatenate(out).astype(np.float32), len(x) / (time.perf_counter() - start)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precisions", default="float32,bfloat16")
    args = parser.parse_args()
    import keras

    precisions = args.precisions.split(",")
    x = frames_of_synthetic_set(args.frames)
    models = {p: build(p) for p in precisions}
    rates: dict[str, float] = {p: 0.0 for p in precisions}
    features: dict[str, np.ndarray] = {}
    order = precisions + precisions[::-1]  # ABBA: drift on a shared machine hits both alike
    for _ in range(args.repeats):
        for precision in order:
            features[precision], rate = run(models[precision], x, args.batch)
            rates[precision] = max(rates[precision], rate)
    print(
        f"fc7 extraction by precision: {len(x)} frames of the synthetic set, batch {args.batch}, "
        f"backend {keras.backend.backend()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; best of {2 * args.repeats} runs each"
    )
    print(f"{'precision':<10} {'frames/s':>9} {'x float32':>10} {'cos min':>9} {'cos mean':>9}")
    base = features["float32"]
    for precision in precisions:
        cos, rate = cosine(features[precision], base), rates[precision]
        print(
            f"{precision:<10} {rate:>9.2f} {rate / rates['float32']:>10.2f} "
            f"{cos.min():>9.5f} {cos.mean():>9.5f}"
        )


if __name__ == "__main__":
    main()
