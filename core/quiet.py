"""The Keras backend imported without TensorFlow's start-up lines.

TensorFlow's C++ side writes its start-up lines (absl's "All log messages before ...", oneDNN and
CPU-feature notices, CUDA probes and the cuInit error on a machine without a GPU) straight to
file descriptor 2, before and below Python's logging, and ``TF_CPP_MIN_LOG_LEVEL`` no longer
stops them all. So the backend is imported, and its devices listed (which is when the CUDA probes
run), with descriptor 2 pointed at a temporary file; if that fails, what it wrote is replayed
before the error. Under JAX, :func:`set_random_seed` keeps Keras from importing TensorFlow.
The commands' console (``experiments.commands.quiet``) and ``python -m core.port`` use it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def _stderr_to_file() -> Iterator[None]:
    """Descriptor 2 into a temporary file for the block; replayed if the block raises an error
    (not an interrupt)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException as err:
            os.dup2(saved, 2)
            if isinstance(err, Exception):  # an error: what it wrote may say why; not Ctrl-C's
                sink.seek(0)  # or SIGTERM's stop (TensorFlow's start-up lines then: probe V)
                sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_backend_quietly() -> None:
    """Import Keras and its TensorFlow backend (listing its devices) with descriptor 2 hidden;
    nothing under another backend, or once TensorFlow is imported."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend != "tensorflow" or "tensorflow" in sys.modules:
        return
    with _stderr_to_file():
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probes happen here
        import keras  # noqa: F401
    # each model a process loads traces its own functions once: TensorFlow's hint that "5 out
    # of the last 6 calls triggered tf.function retracing" was the one line a session scoring
    # with two registered models printed (probe V)
    logging.getLogger("tensorflow").addFilter(_not_retracing)


def _not_retracing(record: logging.LogRecord) -> bool:
    return "triggered tf.function retracing" not in record.getMessage()


def set_random_seed(seed: int) -> None:
    """``keras.utils.set_random_seed``: Python's, NumPy's and the backend's generators seeded.
    Keras would import TensorFlow there, only to seed it, under any backend where it is
    installed (about 5 s and 0.9 GB a process under JAX); under another backend than
    TensorFlow it is told TensorFlow is not installed instead (``sys.modules`` holding None:
    Python's import raises ImportError at once), which nothing here needs under that backend.
    Keras remembers that answer in the process; a TensorFlow imported before is seeded."""
    import keras

    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
        return
    sys.modules["tensorflow"] = None  # type: ignore[assignment]
    try:
        keras.utils.set_random_seed(seed)
    finally:
        del sys.modules["tensorflow"]
