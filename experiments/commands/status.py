"""The exit status of a sweep that stopped, its one line said: 2 for what the user can correct,
3 for a store that did not answer (a scheduler may retry), 130 for Ctrl-C (143 for SIGTERM, by
:func:`core.interrupts.stopped_by_ctrl_c`)."""

from __future__ import annotations

import sys

from mlflow.exceptions import MlflowException

from core.backbone.matconvnet import PortError
from core.data.clips import DataError
from core.features import ExtractionInterrupted
from experiments.commands.quiet import say_error
from experiments.commands.sweep import INTERRUPTED
from experiments.stores import disk, reach, workers
from experiments.stores.said import store_cause

ONE_LINE = (DataError, PortError, ValueError, workers.StorageUnavailable, disk.DiskFull)  # a stop


def failure_status(err: BaseException) -> int:
    """The exit status of a sweep stopped by ``err``, its one line printed; ``err`` raised again
    when it is none of the expected ones."""
    if not isinstance(err, ONE_LINE):  # a one-line error says its own cause (a read-only cache)
        closing = "as the study's closing wrote"
        err = disk.disk_full(err, closing, "(finished trials are kept)") or err
    if isinstance(err, ONE_LINE):
        say_error(str(err))
        unreachable = (workers.StorageUnavailable, reach.StoreUnreachable)
        return 3 if isinstance(err, unreachable) else 2
    if isinstance(err, MlflowException):  # outside a trial (its start, its end): MLflow retried
        say_error(
            f"the tracking store did not answer ({store_cause(err, 160)}): finished "
            "trials are kept; rerun the same command to resume once it answers"
        )
        return 3
    if isinstance(err, ExtractionInterrupted):  # before any trial: say what extraction kept
        print(err, file=sys.stderr)
        return 130
    if isinstance(err, KeyboardInterrupt):
        print(INTERRUPTED, file=sys.stderr)
        return 130
    raise err
