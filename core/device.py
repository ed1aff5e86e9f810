"""Which device Keras computes on, and the extraction batch size that fills it when the user
gives none.

:func:`current_device` asks the backend Keras runs on (``KERAS_BACKEND``): JAX for its devices
(``jax.devices()``), TensorFlow for its GPUs (``tf.config``), torch for CUDA. It imports only that
backend: under JAX, TensorFlow is never imported (a GPU machine may have JAX and no TensorFlow).
The answer is cached for the process. :func:`cpu_has_bfloat16` and :func:`nvidia_gpu_visible`
answer without any backend, from the kernel's files, for ``--precision auto``.

Batch sizes change speed and memory only, never the features or a trial's figures: extraction
runs the backbone at inference and every head scores with dropout off. They are therefore the
device's business, not the user's: on CPU small batches are as fast as large ones and keep memory
flat; a GPU needs large ones to be kept busy. A training batch is a searched hyper-parameter that
changes what a head learns, so it is not chosen here.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MIB = 2**20
GIB = 2**30

# CPU: frames per VGG-Face forward pass. bench/extract.py: on 2 cores batches of 16 run as fast
# as the plain keras.applications script, and the prefetch window stays a few MiB.
CPU_EXTRACTION_BATCH = 16
# GPU, VGG-Face to fc7 at 224x224 in float32: 15.2M activations (60 MB) per frame if every layer's
# output were kept, the largest two (conv1_x, 12.8 MB each) live at once; 64 MiB per frame
# leaves room for convolution workspaces. Half the device's memory goes to the batch.
EXTRACTION_FRAME_BYTES = 64 * MIB
MAX_EXTRACTION_BATCH = 256  # past this a GPU is already saturated; memory only grows
UNKNOWN_MEMORY = 16 * GIB  # a GPU whose memory the backend does not report: assume a small one
# Where the NVIDIA kernel driver lists its GPUs (one folder per PCI address) and its device nodes
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")
DEVICES = Path("/dev")


@dataclass(frozen=True)
class Device:
    """The device Keras computes on: its backend, platform and the memory of one device."""

    backend: str  # "tensorflow", "jax", "torch" or "numpy"
    platform: str  # "cpu", "gpu" or "tpu"
    name: str  # e.g. "NVIDIA H100 80GB HBM3", or the CPU's model name
    count: int = 1  # devices of that platform visible to the backend
    memory_bytes: int | None = None  # of one accelerator; None on CPU or where not reported

    @property
    def accelerator(self) -> bool:
        return self.platform != "cpu"

    def describe(self) -> str:
        """One line: ``gpu: 1 x NVIDIA H100 80GB HBM3 (79.1 GiB), Keras on jax``."""
        memory = f" ({self.memory_bytes / GIB:.1f} GiB)" if self.memory_bytes else ""
        return f"{self.platform}: {self.count} x {self.name}{memory}, Keras on {self.backend}"


@functools.cache
def current_device() -> Device:
    """The device of the backend Keras runs on (the first one where there are several)."""
    import keras  # under JAX, importing Keras does not import TensorFlow

    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_device()
    if backend == "tensorflow":
        return _tensorflow_device()
    if backend == "torch":
        return _torch_device()
    return Device(backend, "cpu", _cpu_name(), os.cpu_count() or 1)


def extraction_batch_size(device: Device | None = None) -> int:
    """Frames per VGG-Face forward pass: 16 on CPU, on an accelerator as many as half its memory
    holds (a power of two, 16 to 256)."""
    device = device or current_device()
    if not device.accelerator:
        return CPU_EXTRACTION_BATCH
    fits = (device.memory_bytes or UNKNOWN_MEMORY) // 2 // EXTRACTION_FRAME_BYTES
    return _power_of_two(fits, CPU_EXTRACTION_BATCH, MAX_EXTRACTION_BATCH)


def _power_of_two(fits: int, low: int, high: int) -> int:
    """The largest power of two <= ``fits``, within [low, high]."""
    return max(low, min(high, 1 << max(0, int(fits).bit_length() - 1)))


def _jax_device() -> Device:
    import jax

    devices = jax.devices()  # the default platform's: GPUs or TPUs where present, else the CPU
    first = devices[0]
    if first.platform == "cpu":
        return Device("jax", "cpu", _cpu_name(), os.cpu_count() or 1)
    try:
        stats = first.memory_stats() or {}
    except Exception:  # not every PJRT plugin reports memory
        stats = {}
    memory = stats.get("bytes_limit")
    return Device("jax", first.platform, first.device_kind, len(devices), memory)


def _tensorflow_device() -> Device:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return Device("tensorflow", "cpu", _cpu_name(), os.cpu_count() or 1)
    details = tf.config.experimental.get_device_details(gpus[0])
    name = details.get("device_name", gpus[0].name)
    # TensorFlow reports a GPU's memory only once it is in use; nvidia-smi knows it before.
    return Device("tensorflow", "gpu", name, len(gpus), _nvidia_memory())


def _torch_device() -> Device:
    import torch

    if not torch.cuda.is_available():
        return Device("torch", "cpu", _cpu_name(), os.cpu_count() or 1)
    gpu = torch.cuda.get_device_properties(0)
    return Device("torch", "gpu", gpu.name, torch.cuda.device_count(), gpu.total_memory)


def _nvidia_memory() -> int | None:
    """Total memory of the first visible NVIDIA GPU, from nvidia-smi; None where it cannot say."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    command = [smi, "--query-gpu=memory.total", "--format=csv,noheader,nounits"]
    if visible.isdigit():
        command.append(f"--id={visible}")
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=True)
        return int(out.stdout.split()[0]) * MIB
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def nvidia_gpu_visible() -> bool:
    """Whether Keras' backend would find an NVIDIA GPU here, asked of the kernel, not of a
    backend (no import, a few file lookups).

    True when the NVIDIA driver lists a GPU (``/proc/driver/nvidia/gpus/<pci address>``) or a GPU
    device node exists (``/dev/nvidia0``, ...; containers may have those without the /proc
    folder), unless ``CUDA_VISIBLE_DEVICES`` hides every GPU (empty, or starting with ``-1``) or,
    under the JAX backend, ``JAX_PLATFORMS`` leaves out ``cuda``/``gpu``. Not seen: a backend
    built without CUDA (it then computes on the CPU); GPUs of other makers.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and (not visible.strip() or visible.strip().startswith("-")):
        return False
    platforms = os.environ.get("JAX_PLATFORMS", "").strip()
    if platforms and keras_backend() == "jax":
        if not {"cuda", "gpu"} & {p.strip() for p in platforms.lower().split(",")}:
            return False
    try:
        if NVIDIA_GPUS.is_dir() and any(NVIDIA_GPUS.iterdir()):
            return True
        return any(re.fullmatch(r"nvidia\d+", node.name) for node in DEVICES.iterdir())
    except OSError:
        return False


def keras_backend() -> str:
    """The backend Keras runs on, or will load, as Keras decides it (``KERAS_BACKEND``, else the
    ``backend`` of ``keras.json``, else TensorFlow), without importing Keras."""
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME")
    if home is None:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    try:
        with open(os.path.join(os.path.expanduser(home), "keras.json")) as config:
            backend = json.load(config).get("backend")
    except (OSError, ValueError, AttributeError):
        backend = None
    return backend if isinstance(backend, str) else "tensorflow"


SUPPORTED_BACKENDS = ("tensorflow", "jax")  # what the tests run; others fail mid-trial


def supported_backend() -> str:
    """:func:`keras_backend`, or a ValueError (one line) for a backend this tool does not run on,
    said before anything is created (a study, a run, a cache entry)."""
    backend = keras_backend()
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(
            f"Keras backend {backend!r} (KERAS_BACKEND, or keras.json): this tool runs on "
            f"{' or '.join(SUPPORTED_BACKENDS)}, e.g. KERAS_BACKEND=jax"
        )
    return backend


def refuse_unsupported_backend(parser: argparse.ArgumentParser) -> None:
    """``parser.error`` (one line, exit status 2) for a backend this tool does not run on
    (:func:`supported_backend`), before Keras' own traceback could say it."""
    try:
        supported_backend()
    except ValueError as err:
        parser.error(str(err))


@functools.cache
def cpu_has_bfloat16() -> bool:
    """Whether the CPU computes bfloat16 natively (AMX or AVX512-BF16 units, Linux's flags)."""
    return bool({"amx_bf16", "avx512_bf16"} & set((_cpuinfo("flags") or "").split()))


def _cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine() or "cpu"


def _cpuinfo(field: str) -> str | None:
    """The value of the first ``field`` line of /proc/cpuinfo; None where there is none."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
