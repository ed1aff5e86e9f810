"""Data + weights + options -> cached fc7 features: the one way every command gets its features.

``experiments/extract.py`` and ``experiments/sweep.py`` both call :func:`cached_features` with the
same :class:`FeatureOptions` (the same command-line flags), so a cache written by one is reused by
the other.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.constants import AUTO_PRECISION, FRAMES_PER_CLIP
from core.data.dataset import Dataset, load_dataset
from core.data.layouts import AUTO
from core.features.extract import FeatureSet, default_cache_dir, extract_features


@dataclass(frozen=True)
class FeatureOptions:
    """Which clips, which backbone, and how frames are taken. ``data=None``: the synthetic set."""

    data: Path | None = None
    weights: Path | None = None  # None: the converted default file if present, else random
    cache_dir: Path | None = None  # None: core.features.default_cache_dir()
    protocol: str = AUTO
    fold: int | None = None  # the protocol's fold (core.data.layouts.folds), e.g. oulu-p3's 1-6
    subject_pattern: str | None = None
    split_seed: int = 0  # seeds the subject split (and the synthetic set's content)
    frames: int = FRAMES_PER_CLIP
    face_crop: bool | None = None  # None: on for the user's data, off for the synthetic set
    face_detector: str = "auto"  # "auto" (MTCNN where it runs, else Haar), "mtcnn" or "haar"
    database_boxes: bool = True  # use the face boxes a database ships instead of detecting
    # of extraction (a cache key part); "auto": :func:`resolve_precision`. The sweep's heads
    # train in --train-precision (float32 unless given)
    precision: str = AUTO_PRECISION
    batch_size: int | None = None  # frames per forward pass, None: the device's; same features
    progress: bool = True

    @property
    def cache_root(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir is not None else default_cache_dir()


def resolve_precision(precision: str) -> str:
    """The extraction precision ``precision`` means here: ``auto`` is bfloat16 where the backend
    computes it natively (TensorFlow on a CPU with AMX or AVX512-BF16 units, or an NVIDIA GPU),
    else float32.

    On such CPUs bfloat16 extraction under TensorFlow (oneDNN) is 4.7x float32 with fc7 within
    cosine 0.99997 of it (bench/RESULTS.md, "Extraction precision"); elsewhere it would be
    emulated, slower, and JAX's CPU kernels ran it no faster than float32 on an AVX512-BF16 CPU
    (the same section): bfloat16's rounding for nothing. The
    precision is part of the cache key, so features of either kind are never mixed. ``auto`` is
    decided from the kernel's files (/proc/cpuinfo, :func:`core.device.nvidia_gpu_visible`)
    without importing a backend, so a rerun whose features are cached loads none.
    """
    if precision != AUTO_PRECISION:
        return precision
    from core import device  # reads /proc and /dev; imports no backend

    cpu = device.cpu_has_bfloat16() and device.keras_backend() == "tensorflow"
    native = cpu or device.nvidia_gpu_visible()
    return "bfloat16" if native else "float32"


_read: dict[tuple[Any, ...], Dataset] | None = None  # in read_once's block: what was read


class _Once(logging.Filter):
    """A record passed once: the same warning again (the same file skipped) is dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.said: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.said:
            return False
        self.said.add(message)
        return True


@contextlib.contextmanager
def read_once() -> Iterator[None]:
    """In the block, :func:`load_data` reads a folder once for the same options, and gives the
    same :class:`Dataset` again: a study checks its databases before it loads each, and each
    read warned of every stray file anew (probe: each skip said twice; OULU-NPU's 5,000 files
    walked twice). A protocol's folds are read each (their splits differ): what reading the
    folder warns of is said once all the same (it was said once a fold, probe)."""
    global _read
    outer = _read
    _read = {} if outer is None else outer
    once = _Once()
    readers = [logging.getLogger(f"core.data.{name}") for name in ("dataset", "layouts.generic")]
    for reader in readers:
        reader.addFilter(once)
    try:
        yield
    finally:
        _read = outer
        for reader in readers:
            reader.removeFilter(once)


def load_data(options: FeatureOptions) -> Dataset:
    """The dataset the options name: the user's folder, or the synthetic set (made on first use)."""
    key = (options.data or options.cache_root, options.protocol, options.subject_pattern)
    key += (options.split_seed, options.fold)
    if _read is not None and key in _read:
        return _read[key]
    if options.data is None:
        from core.data.synthetic import synthetic_dataset

        root = synthetic_dataset(options.cache_root / "synthetic", seed=options.split_seed)
    else:
        root = options.data
    dataset = load_dataset(
        root,
        protocol=options.protocol,
        subject_pattern=options.subject_pattern,
        seed=options.split_seed,
        fold=options.fold,
    )
    if _read is not None:
        _read[key] = dataset
    return dataset


def cached_features(
    options: FeatureOptions,
    on_dataset: Callable[[Dataset], None] | None = None,
    before_extract: Callable[[str, dict[str, Any]], None] | None = None,
) -> FeatureSet:
    """Load the data, then reuse its cached fc7 features or extract them.

    ``on_dataset`` is called with the loaded dataset before any extraction starts
    (``experiments/extract.py`` prints its summary there, so a wrong split shows before hours of
    work; the sweep prints it after decoding, with the skips); ``before_extract`` (with the
    cache key and the parts it hashes) only when the features are not cached, before the
    backbone is loaded (:func:`extract_features`).
    """
    dataset = load_data(options)
    if on_dataset is not None:
        on_dataset(dataset)
    return extract_features(
        dataset,
        weights=options.weights,
        cache_dir=options.cache_root,
        frames_per_clip=options.frames,
        face_crop=options.face_crop,
        detector=options.face_detector,
        database_boxes=options.database_boxes,
        precision=resolve_precision(options.precision),
        batch_size=options.batch_size,
        progress=options.progress,
        before_extract=before_extract,
    )
