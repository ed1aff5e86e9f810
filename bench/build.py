"""Seconds to build each write-up head, its recurrent kernel initialised by Keras' QR or not.

A trial builds its head before its first epoch; for convlstm heads most of that build was Keras'
``Orthogonal`` initialiser of the (F, 4F) recurrent kernel: a Householder QR of a 4F x F normal
matrix (TensorFlow's CPU QR). ``heads.pointwise.CholeskyOrthogonal`` finds the same matrix from
a Cholesky factor (two matrix products and an F x F inverse). For each head in turn, alternating:
``build_head_model`` as the sweep calls it (this checkout), and the same with the
``PointwiseConvLSTM2D``'s initialiser swapped back to Keras' ``Orthogonal`` with the same seed;
fastest of ``--repeats`` each (median in brackets), and the largest difference between the two
recurrent kernels. Heads without a ConvLSTM build the same on both sides.

    python bench/build.py [--heads convlstm2049,lstm30] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # heads, from a checkout without an install

from bench.engine import cpu  # noqa: E402

HEADS = "conv4096,conv2048,dense2048,convlstm2049,lstm30"


def build(name: str, stock: bool) -> tuple[float, np.ndarray | None]:
    """Seconds to build head ``name`` (with its weights), and its recurrent kernel if any."""
    import keras

    from heads import pointwise
    from heads.build import build_head_model

    original = pointwise.CholeskyOrthogonal
    if stock:  # what the layer did before: Keras' own Orthogonal, the same seed and gain
        pointwise.CholeskyOrthogonal = keras.initializers.Orthogonal
    try:
        keras.utils.set_random_seed(0)
        start = time.perf_counter()
        model = build_head_model(name)
        seconds = time.perf_counter() - start
    finally:
        pointwise.CholeskyOrthogonal = original
    layers = [layer for layer in model.layers if isinstance(layer, pointwise.PointwiseConvLSTM2D)]
    kernel = np.asarray(layers[0].cell.recurrent_kernel) if layers else None
    return seconds, kernel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", default=HEADS)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import keras

    info = cpu()
    backend = f"Keras {keras.__version__} ({keras.backend.backend()})"
    print(f"{info['model']}; {info.get('flags', '')}; {backend}")
    print("| head | Keras Orthogonal (QR) s | CholeskyOrthogonal s | speed-up | max kernel diff |")
    print("|---|---|---|---|---|")
    for name in args.heads.split(","):
        build(name, stock=False)  # warm: first-use costs counted on neither side
        times: dict[bool, list[float]] = {True: [], False: []}
        kernels: dict[bool, np.ndarray | None] = {}
        for _ in range(args.repeats):
            for stock in (True, False):
                seconds, kernels[stock] = build(name, stock)
                times[stock].append(seconds)
        qr, ours = (min(times[s]) for s in (True, False))
        medians = [statistics.median(times[s]) for s in (True, False)]
        diff = (
            f"{np.abs(kernels[True] - kernels[False]).max():.1e}"
            if kernels[False] is not None
            else "-"
        )
        print(
            f"| {name} | {qr:.2f} ({medians[0]:.2f}) | {ours:.2f} ({medians[1]:.2f}) "
            f"| {qr / ours:.1f}x | {diff} |"
        )


if __name__ == "__main__":
    main()
