"""The device Keras computes on, its default batch sizes, and extraction using them; what
``--precision auto`` means here, decided without importing a backend.

The device is asked of the real backend (TensorFlow here; JAX in a subprocess, where TensorFlow
must not be imported). Extraction runs the real pipeline on 6 tiny PNG clips with a small real
Keras network in place of VGG-Face (handed in through ``_load_backbone``, as tests/test_features.py
hands in its backbone), so the test sees every batch the pipeline forms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

import core.features.extract as extraction
from core import device
from core.constants import FEATURE_SIZE, INPUT_SHAPE
from core.device import Device, extraction_batch_size
from core.features import FeatureOptions, cached_features
from experiments.commands.options import add_feature_arguments, feature_options

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30


def gpu(memory_gib: float | None) -> Device:
    memory = None if memory_gib is None else int(memory_gib * GIB)
    return Device("jax", "gpu", "test GPU", 1, memory)


def test_this_machine_is_described_as_its_backend_sees_it():
    here = device.current_device()
    assert here.backend == keras.backend.backend()
    if here.backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        assert here.accelerator == bool(gpus)
        assert here.count == (len(gpus) if gpus else os.cpu_count())
    assert here.name and here.platform in here.describe() and here.backend in here.describe()


def test_under_jax_the_device_comes_from_jax_without_importing_tensorflow():
    code = (
        "import json, sys; from core.device import current_device; d = current_device(); "
        "print(json.dumps({'backend': d.backend, 'platform': d.platform, "
        "'tensorflow': 'tensorflow' in sys.modules}))"
    )
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {"backend": "jax", "platform": "cpu", "tensorflow": False}


def test_cpu_batches_are_small_and_gpu_batches_grow_with_memory():
    cpu = Device("tensorflow", "cpu", "a CPU", 2)
    assert extraction_batch_size(cpu) == 16
    # half the memory at 64 MiB a frame, a power of two from 16 to 256
    assert [extraction_batch_size(gpu(m)) for m in (1, 4, 8, 16, 24, 80)] == [
        16,
        32,
        64,
        128,
        128,
        256,
    ]
    # memory not reported: sized for a small (16 GiB) GPU, never below the CPU's
    assert extraction_batch_size(gpu(None)) == 128


@pytest.fixture(scope="module")
def small_network() -> keras.Model:
    """A real network from 224x224 frames to 4096 features, cheap enough to run at once."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.AveragePooling2D(32)(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(FEATURE_SIZE, activation="relu")(x))


class Recording:
    """``model`` as extraction calls it, keeping the size of every batch it is given."""

    def __init__(self, model: keras.Model) -> None:
        self.model, self.batches = model, []

    def predict_on_batch(self, x):
        self.batches.append(len(x))
        return self.model.predict_on_batch(x)


def write_dataset(root: Path, frames: int = 3) -> Path:
    """train/dev/test x real/attack: 6 clips of ``frames`` 32x32 PNG frames."""
    rng = np.random.default_rng(0)
    for subject, split in enumerate(("train", "dev", "test"), start=1):
        for label in ("real", "attack"):
            folder = root / split / label / f"client{subject:03d}_{label}"
            folder.mkdir(parents=True)
            for i in range(frames):
                image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                cv2.imwrite(str(folder / f"{i:02d}.png"), image)
    return root


@pytest.mark.parametrize("given", [None, 4])
def test_extraction_batches_by_the_device_unless_told(tmp_path, monkeypatch, small_network, given):
    recording = Recording(small_network)
    monkeypatch.setattr(extraction, "_load_backbone", lambda *args: (recording, None))
    monkeypatch.setattr(device, "CPU_EXTRACTION_BATCH", 5)  # a device's own size, not the flag's
    monkeypatch.delenv("VGGFACE_WEIGHTS", raising=False)
    parser = argparse.ArgumentParser()
    add_feature_arguments(parser)
    flags = ["--data", str(write_dataset(tmp_path / "data")), "--cache-dir", str(tmp_path)]
    flags += ["--frames", "3", "--no-face-crop", "--precision", "float32"]
    flags += ["--batch-size", str(given)] if given else []
    features = cached_features(feature_options(parser.parse_args(flags), progress=False))
    batch = given or extraction_batch_size()
    total = 6 * 3
    expected = [batch] * (total // batch) + ([total % batch] if total % batch else [])
    assert recording.batches == expected
    assert features.manifest["batch_size"] == batch
    assert features.manifest["device"] == device.current_device().describe()
    assert features.clip_features(np.arange(6)).shape == (6, 3, FEATURE_SIZE)


AUTO_PRECISION = """
import json, os, sys
from pathlib import Path
from core import device
from core.features.request import resolve_precision

# a CPU without bfloat16 units, whatever this one has
device._cpuinfo = lambda field: "fpu sse sse2 avx2 avx512f" if field == "flags" else None
device.cpu_has_bfloat16.cache_clear()
answers = {"this machine": resolve_precision("auto")}
gpu_here = device.nvidia_gpu_visible()

fake = Path(sys.argv[1])
(fake / "gpus" / "0000:17:00.0").mkdir(parents=True)
(fake / "dev").mkdir()
(fake / "dev" / "nvidia0").touch()
(fake / "dev" / "nvidiactl").touch()
(fake / "none").mkdir()
(fake / "ctl only").mkdir()
(fake / "ctl only" / "nvidiactl").touch()

def auto(gpus, dev, **env):
    device.NVIDIA_GPUS, device.DEVICES = fake / gpus, fake / dev
    for name, value in env.items():
        os.environ[name] = value
    try:
        return resolve_precision("auto")
    finally:
        for name in env:
            del os.environ[name]

answers["driver lists a GPU"] = auto("gpus", "none")
answers["a /dev/nvidia0 node"] = auto("none", "dev")
answers["no GPU"] = auto("none", "ctl only")
answers["CUDA_VISIBLE_DEVICES empty"] = auto("gpus", "dev", CUDA_VISIBLE_DEVICES="")
answers["CUDA_VISIBLE_DEVICES -1"] = auto("gpus", "dev", CUDA_VISIBLE_DEVICES="-1")
answers["CUDA_VISIBLE_DEVICES 1"] = auto("gpus", "dev", CUDA_VISIBLE_DEVICES="1")
answers["JAX on cpu"] = auto("gpus", "dev", KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
answers["JAX on cuda"] = auto("gpus", "dev", KERAS_BACKEND="jax", JAX_PLATFORMS="cuda,cpu")
answers["TensorFlow, JAX_PLATFORMS cpu"] = auto("gpus", "dev", JAX_PLATFORMS="cpu")
# a CPU with bfloat16 units: TensorFlow's oneDNN computes it natively, JAX's CPU kernels do not
device._cpuinfo = lambda field: "fpu avx2 avx512f avx512_bf16" if field == "flags" else None
device.cpu_has_bfloat16.cache_clear()
answers["TensorFlow, a bfloat16 CPU"] = auto("none", "ctl only")
answers["JAX, a bfloat16 CPU"] = auto("none", "ctl only", KERAS_BACKEND="jax")
answers["JAX, a bfloat16 CPU and a GPU"] = auto("gpus", "dev", KERAS_BACKEND="jax")
loaded = [m for m in ("tensorflow", "keras", "jax") if m in sys.modules]
print(json.dumps({"answers": answers, "gpu_here": gpu_here, "loaded": loaded}))
"""


def test_auto_precision_looks_for_a_gpu_without_importing_a_backend(tmp_path):
    hiding = ("CUDA_VISIBLE_DEVICES", "JAX_PLATFORMS")
    env = {k: v for k, v in os.environ.items() if k not in hiding}
    env.update(PYTHONPATH=str(ROOT), KERAS_BACKEND="tensorflow")
    out = subprocess.run(
        [sys.executable, "-c", AUTO_PRECISION, str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["loaded"] == []
    assert found["answers"] == {
        "this machine": "bfloat16" if found["gpu_here"] else "float32",
        "driver lists a GPU": "bfloat16",
        "a /dev/nvidia0 node": "bfloat16",
        "no GPU": "float32",
        "CUDA_VISIBLE_DEVICES empty": "float32",
        "CUDA_VISIBLE_DEVICES -1": "float32",
        "CUDA_VISIBLE_DEVICES 1": "bfloat16",
        "JAX on cpu": "float32",
        "JAX on cuda": "bfloat16",
        "TensorFlow, JAX_PLATFORMS cpu": "bfloat16",
        "TensorFlow, a bfloat16 CPU": "bfloat16",
        "JAX, a bfloat16 CPU": "float32",  # it was bfloat16: no faster there (a user probe)
        "JAX, a bfloat16 CPU and a GPU": "bfloat16",
    }


WARM_RERUN = """
import json, sys
from pathlib import Path
from core import device
from core.features import FeatureOptions, cached_features

device._cpuinfo = lambda field: "fpu sse sse2 avx2" if field == "flags" else None
device.NVIDIA_GPUS, device.DEVICES = Path(sys.argv[3]), Path(sys.argv[3])  # no GPU either
options = FeatureOptions(data=Path(sys.argv[1]), cache_dir=Path(sys.argv[2]), frames=3,
                         face_crop=False, progress=False)
fs = cached_features(options)
loaded = [m for m in ("tensorflow", "keras", "jax") if m in sys.modules]
print(json.dumps({"extracted": fs.extracted, "key": fs.fingerprint, "loaded": loaded}))
"""


def test_a_warm_rerun_with_auto_precision_imports_no_backend(tmp_path, monkeypatch, small_network):
    monkeypatch.setattr(extraction, "_load_backbone", lambda *args: (small_network, None))
    monkeypatch.delenv("VGGFACE_WEIGHTS", raising=False)
    data, cache = write_dataset(tmp_path / "data"), tmp_path / "cache"
    options = FeatureOptions(
        data=data, cache_dir=cache, frames=3, face_crop=False, precision="float32", progress=False
    )
    cold = cached_features(options)  # what auto means on a CPU without bfloat16 and no GPU
    assert cold.extracted
    (tmp_path / "empty").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "VGGFACE_WEIGHTS"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", WARM_RERUN, str(data), str(cache), str(tmp_path / "empty")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {"extracted": False, "key": cold.fingerprint, "loaded": []}


@pytest.mark.parametrize(("stop", "replayed"), [(RuntimeError, True), (KeyboardInterrupt, False)])
def test_what_the_backend_wrote_is_replayed_for_an_error_not_an_interrupt(capfd, stop, replayed):
    """What the quiet import hid from descriptor 2 explains an error; a Ctrl-C or SIGTERM during
    it printed TensorFlow's start-up lines above "interrupted" (probe V)."""
    from core.quiet import _stderr_to_file

    with pytest.raises(stop), _stderr_to_file():
        os.write(2, b"oneDNN custom operations are on\n")  # as TensorFlow's C++ side writes
        raise stop("stopped")
    assert ("oneDNN custom operations" in capfd.readouterr().err) is replayed
