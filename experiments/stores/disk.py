"""A disk (or quota) that fills as a sweep writes, a place it writes that is read-only, or its
stdout that fails: one line, the worker stopped as at Ctrl-C, the trial queued again. The stores'
room, so the trial, the runs and the commands all name it."""

from __future__ import annotations

import errno
import re
import sqlite3

import sqlalchemy

from core.stdout import stdout_failed, stdout_said
from experiments.stores.said import causes, first_line

FULL = (errno.ENOSPC, errno.EDQUOT)  # the disk, or the user's quota on it (clusters)
# a place that cannot be written: a read-only mount (a trial that met one failed for good, its
# baseline's figures never run again: probe). Not a permission refused, which a read meets too.
UNWRITABLE = (errno.EROFS,)
# What a database says when its disk is full, where the driver raises no OSError: SQLite's
# SQLITE_FULL, PostgreSQL's class 53100 (disk_full) as its server words it.
DATABASE_FULL = ("database or disk is full", "could not extend file", "no space left on device")
# the drivers' errors, which carry those words (our own lines may quote an OSError's words)
DRIVER_ERRORS = (sqlite3.Error, sqlalchemy.exc.DBAPIError)
DRIVER_CLASS = re.compile(r"^\([\w.]+\) *")  # SQLAlchemy's "(sqlite3.OperationalError) " before it


def disk_full(err: BaseException, when: str, then: str) -> DiskFull | None:
    """The :class:`DiskFull` of ``err`` where it, or an exception it was raised from, is a full
    disk or quota: an OSError, or a database's words for it (SQLite's "database or disk is full",
    which read as the study's database not answering: a 120 s wait, status 3; probe), or an
    OSError of a place that cannot be written (:data:`UNWRITABLE`) or of stdout, else None;
    saying ``when`` it met it ("as trial 3 saved its files") and what the rerun does (``then``)."""
    for cause in causes(err):
        if isinstance(cause, DiskFull):
            return cause
        if stdout_failed(cause) and isinstance(cause, BrokenPipeError):  # | head (probe)
            return DiskFull(
                f"the output's reader stopped (broken pipe): rerun the same command to go on "
                f"{then}",
                "reader gone",
            )
        if stdout_failed(cause):  # a redirect on a full disk: not the study's closing (probe)
            return DiskFull(
                f"{stdout_said(cause)}: rerun the same command with its output where it can be "
                f"written {then}",
                "stdout failed",
            )
        # the file written: a copy's error names its source first, its destination second
        named = getattr(cause, "filename2", None) or getattr(cause, "filename", None)
        where = f" ({named})" if named else ""
        if isinstance(cause, OSError) and cause.errno in UNWRITABLE:
            return DiskFull(
                f"{cause.strerror or 'cannot be written'}{where} {when}: make it writable and "
                f"rerun the same command {then}",
                "read-only",
            )
        if isinstance(cause, DRIVER_ERRORS) and any(
            words in str(cause).lower() for words in DATABASE_FULL
        ):
            where = f" ({DRIVER_CLASS.sub('', first_line(cause))})"
        elif not (isinstance(cause, OSError) and cause.errno in FULL):
            continue
        return DiskFull(
            f"no space left on the device{where} {when}: free space and rerun the same command "
            f"{then}"
        )
    return None


def database_full(err: BaseException, trial: int | None) -> DiskFull | None:
    """The :class:`DiskFull` of ``err`` where the study's database found its disk full as a
    worker wrote ``trial`` to it (None: between trials): it read as the database not answering,
    a 120 s wait and status 3 (probe). The trial stays RUNNING; the rerun finds its worker gone
    and queues it again."""
    if trial is None:
        return disk_full(err, "as the study's database was written", "(finished trials are kept)")
    return disk_full(
        err, f"as trial {trial} was recorded in the study's database", "(the trial runs again)"
    )


class DiskFull(KeyboardInterrupt):
    """A trial's files did not fit on the disk (the tracking store's artifacts, a report, the
    study's database), or their place is read-only, or stdout failed: the worker stops as at
    Ctrl-C, its trial queued again, and says so in one line (it was a failed trial, never run
    again, and a traceback: probe). A KeyboardInterrupt, as Optuna fails such a trial and lets it
    through, and the worker queues it again. ``short``: the trial line's words for it."""

    def __init__(self, message: str, short: str = "no space left") -> None:
        super().__init__(message)
        self.short = short
