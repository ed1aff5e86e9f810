"""A long study's process stays the size of its largest trial, and its bookkeeping cheap.

Three things grow with every trial otherwise (measured in bench/RESULTS.md, "Peak memory" and
"Bookkeeping per trial"):

- TensorFlow's global gradient registry. Keras' TensorFlow train step sums gradients through a
  ``tf.custom_gradient``; every trace registers its gradient function under a new name
  (``CustomGradient-<n>``) and nothing removes it. Its closure holds the traced step's graph,
  whose captures hold the resource handles of the model's and the optimizer's variables: the
  whole head and Adam's two moments stay allocated after ``clear_session()`` (keras-team/keras
  #17458, tensorflow/tensorflow#61791; +106 MiB a trial in a dense study). :func:`trial_scope`
  removes the names a trial registered when it ends. JAX has no such registry.
- The C heap. glibc serves a freed block's size from its heap next time instead of mmap once it
  has freed a large mmapped block (its dynamic mmap threshold climbs to 32 MiB), and a heap does
  not shrink past blocks still in use: each trial's tensors of new shapes left ~3 MiB the next
  could not reuse. With the threshold pinned at 1 MiB, blocks that large are mapped and unmapped
  (bench/RESULTS.md: 0.2 MiB a trial).
- The garbage collector's work. ``clear_session()`` runs ``gc.collect()``, which walks every
  object the process holds: ~600k with TensorFlow, MLflow, Optuna and pandas loaded, 0.5-1 s a
  trial. Freezing what exists before the first trial takes it out of the collector's sight.

And one thing is slow on virtual machines: NumPy advises the kernel to back its arrays of 4 MiB
and more with huge pages. Where the host takes freed memory back (free page reporting) and the
kernel compacts memory for a huge page on demand, a fresh or long-freed 200 MiB then took 0.7-1.5 s
to fill, against 0.07-0.08 s without the advice (bench/pages.py); a trial's large arrays (the
best epoch's weights, the fold, the scores) paid it. Without it, and with the fold on the kept
arrays (:func:`heads.fold_standardization`), the default study's trials ran 1.22x faster
(bench/RESULTS.md, "The default study's trial phase").

:func:`settled` does the last three around the trial loop; :func:`trial_scope` wraps each trial.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
from collections.abc import Iterator

import keras

from core.interrupts import ctrl_c_noticed

CUSTOM_GRADIENT_PREFIX = "CustomGradient-"
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 1 << 20


@contextlib.contextmanager
def settled() -> Iterator[None]:
    """Around the trial loop: pin glibc's mmap threshold (:func:`map_large_blocks`), turn
    NumPy's huge-page advice off (:func:`huge_pages`), collect, and exempt every surviving
    object from the collections inside (``gc.freeze``): the modules, the cached features and the
    stores outlive the loop, and each trial's own garbage is still collected. After the loop they
    are the collector's again (``gc.unfreeze``) and the advice is as it was, so a process that
    runs several sweeps (a notebook, the tests) does not keep their cycles for good. A Ctrl-C
    that a finalizer dropped while collecting is raised here, not lost before the loop."""
    map_large_blocks()
    advised = huge_pages(False)
    try:
        with ctrl_c_noticed() as interrupted:
            gc.collect()
            interrupted()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
    finally:
        huge_pages(advised)


def huge_pages(advise: bool) -> bool:
    """Whether NumPy advises the kernel to back its large arrays with huge pages; sets it to
    ``advise`` and returns what it was (False where this NumPy has no such setting)."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:
        return False
    return bool(_set_madvise_hugepage(advise))


def map_large_blocks(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Have glibc's malloc serve blocks of ``threshold`` bytes and more from mmap, given back to
    the system when freed (``mallopt(M_MMAP_THRESHOLD)``, which also stops the threshold from
    climbing). False where the C library has no ``mallopt`` (musl, macOS): nothing changes."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, threshold) == 1


def custom_gradient_names() -> set[str]:
    """The ``CustomGradient-*`` names in TensorFlow's gradient registry (empty under JAX, or
    where TensorFlow no longer keeps such a registry)."""
    registry = _gradient_registry()
    if registry is None:
        return set()
    return {name for name in registry if name.startswith(CUSTOM_GRADIENT_PREFIX)}


@contextlib.contextmanager
def trial_scope() -> Iterator[None]:
    """Run one trial: a fresh Keras session before it; when it ends (finished, pruned, failed or
    interrupted), the gradient functions it registered are dropped, so its graphs and its
    variables' memory go with its models."""
    keras.backend.clear_session()  # the previous trial's graphs and layer names
    before = custom_gradient_names()
    try:
        yield
    finally:
        registry = _gradient_registry()
        if registry is not None:
            for name in custom_gradient_names() - before:
                registry.pop(name, None)


def _gradient_registry() -> dict | None:
    """TensorFlow's name -> gradient function dict, when Keras runs on TensorFlow."""
    if keras.backend.backend() != "tensorflow":
        return None
    try:
        from tensorflow.python.framework import ops
    except ImportError:
        return None
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None
