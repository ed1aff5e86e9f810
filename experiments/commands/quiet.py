"""A quiet console: the libraries' start-up noise only with ``--verbose``.

TensorFlow's C++ start-up lines are hidden by importing the backend with descriptor 2 pointed
elsewhere (:mod:`core.quiet`). Python-side noise (tf.function retracing notices, absl warnings)
is turned down through logging. Under JAX, Keras imports TensorFlow only to seed it: hidden there.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from typing import Any, NoReturn

from core.quiet import import_backend_quietly
from core.words import meant

NOISY_LOGGERS = ("tensorflow", "absl", "h5py", "matplotlib", "PIL", "alembic", "mlflow", "urllib3")


def quiet_backend(verbose: bool = False) -> None:
    """Import the Keras backend without its start-up lines (all of them with ``verbose``), and
    :func:`quiet_console`."""
    quiet_console(verbose)
    if not verbose:
        import_backend_quietly()
    else:  # now, lines and all: a module that imports it quietly later finds it imported
        import keras  # noqa: F401


def quiet_console(verbose: bool = False) -> None:
    """Set the noisy libraries' loggers to WARNING (INFO with ``verbose``) and their native
    loggers' levels; imports nothing (the backend: :func:`quiet_backend`, when it is needed)."""
    if not verbose:  # FFmpeg's own lines ("moov atom not found"): the skip says it once
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        # TensorFlow's C++ lines, its ERRORs too: oneDNN's "supports DT_HALF only on platforms with
        # AVX-512" under float16 read as one (probe); a failure raises in Python all the same
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        # MLflow's "View run ... at: http://..." and "View experiment" after every run
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    level = logging.INFO if verbose else logging.WARNING
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level)
    if not verbose:
        # TensorFlow's retracing notices; urllib3's "Retrying (Retry(total=6, ...))" at each of
        # MLflow's retries while a tracking server is away, five a call around the worker's own
        # line on the outage (probe CC)
        for name in ("tensorflow", "urllib3"):
            logging.getLogger(name).setLevel(logging.ERROR)
    store = logging.getLogger("mlflow.store.db.utils")
    for old in [f for f in store.filters if isinstance(f, _RaisedAnyway)]:
        store.removeFilter(old)
    if not verbose:
        store.addFilter(_RaisedAnyway())


class _RaisedAnyway(logging.Filter):
    """MLflow logs each database error of its SQL tracking store with its traceback, then raises
    it: the command says it in one line where it is caught (a full disk, a database away), after
    some 360 lines of those tracebacks at a closing whose disk was full (probe). Its own lines
    without a traceback are kept, and ``--verbose`` keeps them all."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None


def console_logging(verbose: bool = False) -> None:
    """Log lines on the console: WARNING and above as ``WARNING: message`` (``--verbose``: INFO
    too, each with the logger that said it). Set once; later calls change nothing."""
    named = "%(levelname)s %(name)s: %(message)s"  # with --verbose, which library says it
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format=named if verbose else "%(levelname)s: %(message)s",
    )


class _OneLineFailures(logging.Filter):
    """Ctrl-C is an answer, not a crash: Optuna's lines about the trial it stopped are left to the
    sweep's own ``interrupted: ...`` line (with ``--verbose``: kept, without the traceback). A
    trial failure the console already said in one line (``reported``: a diverged head, a tracking
    store that stayed away) is not said again by Optuna with its traceback, unless ``verbose``;
    nor is Optuna's second line about any failed trial, ``Trial N failed with value None.``"""

    def __init__(self, reported: tuple[type[BaseException], ...], verbose: bool) -> None:
        super().__init__()
        self.reported, self.verbose = reported, verbose

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        from_optuna = record.name.startswith("optuna")
        if from_optuna and not self.verbose:
            if isinstance(error, (KeyboardInterrupt, *self.reported)):
                return False
            if re.fullmatch(r"Trial \d+ failed with values? .*", record.getMessage(), re.S):
                return False
        if isinstance(error, KeyboardInterrupt):
            record.exc_info, record.exc_text = None, None
        return True


def one_line_failures(reported: tuple[type[BaseException], ...], verbose: bool) -> None:
    """Optuna logs a failed or interrupted trial with its whole traceback, then its value: keep
    the one line that says why (:class:`_OneLineFailures`); a later call replaces the filter."""
    import optuna

    optuna.logging.get_logger("optuna")  # makes sure Optuna's handler exists
    quiet = _OneLineFailures(reported, verbose)
    for handler in logging.getLogger("optuna").handlers + logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, _OneLineFailures)]:
            handler.removeFilter(old)
        handler.addFilter(quiet)


def reader_gone() -> None:
    """stdout's reader stopped early (``| head``: it has what it wanted): the rest of the output,
    and Python's flush at exit, go nowhere, with no "Broken pipe" error (probe V)."""
    with contextlib.suppress(OSError, ValueError):  # a stdout without a descriptor: none
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def say_error(text: str) -> None:
    """A command's one error line, ``error: text`` on stderr, its URLs' passwords hidden (a
    store's URL carries its database's)."""
    from experiments.stores.said import hide_passwords  # the commands that say one load it

    with contextlib.suppress(BrokenPipeError):  # stderr in a pipe whose reader left (2>&1 | head)
        print(f"error: {hide_passwords(text)}", file=sys.stderr)


class OneLineParser(argparse.ArgumentParser):
    """A command's flags, refused in one line, ``error: ...`` as every other refusal says it
    (argparse prints its whole usage first, the sweep's 27 lines, a probe found the error under
    it; and it began the line with the command's name, which no other error line did: probe);
    ``--help`` still shows the usage."""

    def error(self, message: str) -> NoReturn:
        unknown = message.removeprefix("unrecognized arguments: ")
        if unknown != message:  # --trails: the flags meant, as a mistyped value has (probe)
            flags = [a for a in self._option_string_actions if a.startswith("--")]
            tokens = unknown.split()
            tokens = tokens[: tokens.index("--")] if "--" in tokens else tokens  # then: values
            close = [
                near
                for typed in tokens
                if typed.startswith("--") and len(typed) > 2  # "--" alone found "--db" (review)
                for near in meant(typed.split("=")[0], flags, n=1)
            ]
            if close:
                message += f"; did you mean {' or '.join(dict.fromkeys(close))}?"
        self.exit(2, f"error: {message}\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """A choice mistyped names the choices it is closest to, not the whole list (31 for
        ``--protocol``, where ``ocmi`` meant ``ocim``: probe)."""
        choices = action.choices
        if choices is None or value in choices or not isinstance(value, str):
            return super()._check_value(action, value)
        close = meant(value, choices)  # in any case: OULU-P1 (review)
        if not close:
            return super()._check_value(action, value)
        named = " or ".join(filter(None, (", ".join(close[:-1]), close[-1])))
        raise argparse.ArgumentError(
            action, f"invalid choice: {value!r}; did you mean {named}? (--help lists them all)"
        )
