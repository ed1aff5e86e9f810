"""A head trial on cached fc7 vs one end-to-end epoch, and pointwise heads vs dense, side by side.

Part 1, for each write-up head: one whole trial as the sweep runs it (``train_head`` with the
baseline settings: build, compile, up to 30 epochs with early stopping, dev scoring every epoch,
final scoring) on the cached fc7 features of ``--clips`` clips, against one epoch of the
write-up's end-to-end model (``heads.build_full_model``: VGG-Face, all trainable, then the head)
on the same clips' 224x224 frames, batch 1 clip (7 frames) for sequence heads and 7 frames for
frame heads. The end-to-end epoch is timed after a warm-up ``fit`` of one batch (its tracing is
not counted: the warm-up used to be ``train_on_batch``, whose trace ``fit`` does not reuse); the
trial is timed whole, compilation included. Frames are random pixels: the cost of a convolution
does not depend on what it sees. Ratio = end-to-end epoch / cached trial; the
per-epoch ratio divides by the trial's median epoch (training plus its dev scoring) instead.

Each end-to-end epoch runs in a fresh process (this file's ``--end-to-end`` mode, reading the
frames this process saved), so every head starts from the same clean state and its peak RSS is
its own (``os.wait4``): in one process, TensorFlow kept the memory of each 134M-parameter model
in turn (17.6 GB RSS). The cached trials run here, one after the other, as a sweep runs them.
What a cached trial does not pay is the one-off extraction of the features (a forward pass of
every frame, about a third of an end-to-end epoch's work), shared by every trial of a study.

Part 2: seconds per epoch on cached features (``--samples`` inputs, batch 16, after a warm-up
epoch) of the conv heads before this change (stock Conv2D / ConvLSTM2D over the 1x1 map), after
it (the pointwise layers, same weights) and of the plain layer of the same size (Dense /
LSTM), as the sweep trains them (standardised features, logits loss).

    python bench/trial.py [--clips 32] [--samples 448] [--parts 1,2] [--heads conv4096,...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
import optuna

import core
import heads
from core.constants import FRAMES_PER_CLIP
from core.data.clips import Clip
from experiments.trial import search
from experiments.trial.splits import SplitData
from experiments.trial.training import train_head

WRITEUP = ["conv4096", "conv2048", "dense2048", "convlstm2049", "lstm30"]


def clips_meta(n: int) -> list[Clip]:
    kinds = [("attack", "print"), ("bonafide", "bonafide")]
    return [Clip(Path(f"c{i}"), f"c{i}", f"s{i}", *kinds[i % 2]) for i in range(n)]


def split(features: np.ndarray, kind: str, meta: list[Clip]) -> SplitData:
    """All clips, for a frame head (one frame each) or a sequence head (one clip each)."""
    n, frames = features.shape[:2]
    y = np.array([int(c.label == "bonafide") for c in meta], dtype=np.int32)
    if kind == "sequence":
        return SplitData(features.reshape(n, frames, 1, 1, -1), y, np.arange(n), meta)
    rows = features.reshape(n * frames, 1, 1, -1)
    return SplitData(rows, np.repeat(y, frames), np.repeat(np.arange(n), frames), meta)


def cached_trial(name: str, features: np.ndarray, meta: list[Clip]) -> tuple[float, int, float]:
    """Seconds of one baseline trial of ``name``, its epochs run, and its median epoch's seconds."""
    params = next(p for p in search.baselines(name) if search.baseline_name(p) == name)
    config = search.suggest(optuna.trial.FixedTrial(params), search.families())
    data = {s: split(features, config.kind, meta) for s in ("train", "dev", "test")}
    ends = []
    keras.backend.clear_session()
    start = time.perf_counter()
    train_head(config, data, FRAMES_PER_CLIP, on_epoch=lambda *_: ends.append(time.perf_counter()))
    seconds = time.perf_counter() - start
    epoch = float(np.median(np.diff(ends))) if len(ends) > 1 else float("nan")
    return seconds, len(ends), epoch


def end_to_end_epoch(name: str, frames: np.ndarray, labels: np.ndarray) -> float:
    """Seconds of one epoch of the write-up's end-to-end model on ``frames`` (n, 7, 224, 224, 3)."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = heads.build_full_model(name)
    model.compile(optimizer="adam", loss=heads.loss_for("softmax"))
    if heads.get_spec(name).kind == "sequence":
        x, y, batch = frames, labels, 1
    else:
        x, y, batch = frames.reshape(-1, *frames.shape[2:]), np.repeat(labels, frames.shape[1]), 7
    # Warm-up through fit itself: train_on_batch traces another signature, and fit then traced
    # its own train step again inside the timed epoch (one step: 22 s with that trace, 10 s after).
    model.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, shuffle=False, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    seconds = time.perf_counter() - start
    del model
    keras.backend.clear_session()
    return seconds


def end_to_end_in_child(name: str, frames_file: Path, labels: np.ndarray) -> tuple[float, float]:
    """:func:`end_to_end_epoch` in a fresh process: (seconds, the process's peak RSS in MiB)."""
    command = [sys.executable, __file__, "--end-to-end", name, "--frames-file", str(frames_file)]
    command += ["--labels", ",".join(map(str, labels))]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"end-to-end epoch of {name} failed with status {child.returncode}")
    return json.loads(out.strip().splitlines()[-1])["seconds"], usage.ru_maxrss / 1024


def frame_head(layer: keras.layers.Layer, flatten_first: bool) -> keras.Model:
    inputs = keras.Input((1, 1, 4096))
    x = keras.layers.Flatten()(inputs) if flatten_first else inputs
    x = keras.layers.Flatten()(layer(x))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="prediction")(x))


def sequence_head(layer: keras.layers.Layer, flatten_first: bool) -> keras.Model:
    inputs = keras.Input((FRAMES_PER_CLIP, 1, 1, 4096))
    x = inputs
    if flatten_first:
        x = keras.layers.TimeDistributed(keras.layers.Flatten())(x)
    x = keras.layers.Flatten()(layer(x))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="prediction")(x))


VARIANTS = {
    "conv4096": [
        (
            "before: Conv2D",
            lambda: frame_head(keras.layers.Conv2D(4096, 1, activation="relu"), False),
        ),
        (
            "after: PointwiseConv2D",
            lambda: frame_head(heads.PointwiseConv2D(4096, activation="relu"), False),
        ),
        ("Dense(4096)", lambda: frame_head(keras.layers.Dense(4096, activation="relu"), True)),
    ],
    "convlstm2049": [
        (
            "before: ConvLSTM2D",
            lambda: sequence_head(keras.layers.ConvLSTM2D(2049, 1, activation="relu"), False),
        ),
        (
            "after: PointwiseConvLSTM2D",
            lambda: sequence_head(heads.PointwiseConvLSTM2D(2049, activation="relu"), False),
        ),
        ("LSTM(2049)", lambda: sequence_head(keras.layers.LSTM(2049, activation="relu"), True)),
    ],
}


def epoch_seconds(build, samples: int, sequence: bool) -> float:
    """Seconds of one epoch (after a warm-up one) on ``samples`` standardised fc7-like inputs."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    shape = (samples, FRAMES_PER_CLIP, 1, 1, 4096) if sequence else (samples, 1, 1, 4096)
    x = np.maximum(0, np.random.default_rng(0).normal(0.5, 1, shape)).astype(np.float32) * 100
    y = np.tile([0, 1], samples // 2)
    head = build()
    model = heads.training_model(head, heads.feature_statistics(x))
    model.compile(optimizer="adam", loss=heads.logits_loss("softmax"))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # warm-up: compiles the train step
    start = time.perf_counter()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32, help="clips of 7 frames (part 1)")
    parser.add_argument("--samples", type=int, default=448, help="inputs per epoch (part 2)")
    parser.add_argument("--heads", default=",".join(WRITEUP), help="write-up heads of part 1")
    parser.add_argument("--rounds", type=int, default=1, help="part 2 rounds (best of each)")
    parser.add_argument("--parts", default="1,2", help="which parts to run: 1, 2 or 1,2")
    parser.add_argument("--end-to-end", help=argparse.SUPPRESS)
    parser.add_argument("--frames-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--labels", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.end_to_end:  # the child of end_to_end_in_child
        frames = np.load(args.frames_file, mmap_mode="r")
        labels = np.array([int(v) for v in args.labels.split(",")], dtype=np.int32)
        seconds = end_to_end_epoch(args.end_to_end, np.asarray(frames), labels)
        print(json.dumps({"seconds": seconds}))
        return
    parts = set(args.parts.split(","))
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    begun = time.perf_counter()

    rows = []
    if "1" in parts:
        rng = np.random.default_rng(0)
        meta = clips_meta(args.clips)
        labels = np.array([int(c.label == "bonafide") for c in meta], dtype=np.int32)
        pixels = rng.uniform(0, 255, (args.clips, FRAMES_PER_CLIP, *core.INPUT_SHAPE))
        frames = core.preprocess_input(pixels).astype(np.float32)
        del pixels
        keras.utils.set_random_seed(0)
        backbone = core.build_vggface(include_top=False)
        flat = frames.reshape(-1, *core.INPUT_SHAPE)
        features = backbone.predict(flat, batch_size=7, verbose=0).reshape(args.clips, 7, -1)
        del backbone, flat
        keras.backend.clear_session()
        with tempfile.TemporaryDirectory(prefix="bench-trial-") as folder:
            frames_file = Path(folder) / "frames.npy"
            np.save(frames_file, frames)
            del frames
            for name in args.heads.split(","):
                trial, epochs, cached_epoch = cached_trial(name, features, meta)
                epoch, rss = end_to_end_in_child(name, frames_file, labels)
                rows.append((name, epoch, rss, trial, epochs, cached_epoch))
                print(
                    f"  {name}: end-to-end epoch {epoch:.1f} s ({rss:.0f} MiB), cached trial "
                    f"{trial:.2f} s",
                    flush=True,
                )

    # Rounds of alternating variants, best of each: the machine is shared. One process holds
    # every model in turn and TensorFlow does not return all of its memory: a second round of
    # part 2 reached 17.6 GB RSS here (OOM on 23 GB), so one round is the default.
    timings: dict[tuple[str, str, int], list[float]] = {}
    for _ in range(args.rounds if "2" in parts else 0):
        for name, variants in VARIANTS.items():
            sequence = heads.get_spec(name).kind == "sequence"
            samples = args.samples // FRAMES_PER_CLIP if sequence else args.samples
            for label, build in variants:
                seconds = epoch_seconds(build, samples, sequence)
                timings.setdefault((name, label, samples), []).append(seconds)
                print(f"  {name} {label}: {seconds:.2f} s/epoch", flush=True)
    speed = [(*key, min(values)) for key, values in timings.items()]

    print(
        f"\nbench/trial.py, {started}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at "
        f"the end, Keras {keras.__version__} ({keras.backend.backend()}); "
        f"{time.perf_counter() - begun:.0f} s in all"
    )
    if rows:
        frames = args.clips * FRAMES_PER_CLIP
        print(
            f"\n| head | end-to-end epoch s ({args.clips} clips, {frames} frames) | its peak RSS "
            "MiB | cached trial s (epochs) | ratio (goal >= 100x) | cached epoch s | ratio per "
            "epoch |"
        )
        print("|---|---|---|---|---|---|---|")
    for name, epoch, rss, trial, epochs, cached in rows:
        print(
            f"| {name} | {epoch:.1f} | {rss:.0f} | {trial:.2f} ({epochs}) | {epoch / trial:.1f}x "
            f"| {cached:.3f} | {epoch / cached:.0f}x |"
        )
    if not speed:
        return
    print("\n| head | layer | inputs | s/epoch | vs plain layer |")
    print("|---|---|---|---|---|")
    for name, label, samples, seconds in speed:
        plain = next(s for n, lab, _, s in speed if n == name and not lab.startswith(("b", "a")))
        print(f"| {name} | {label} | {samples} | {seconds:.2f} | {seconds / plain:.2f}x |")


if __name__ == "__main__":
    main()
