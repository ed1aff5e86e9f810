"""SQLite stores in write-ahead-log mode: a commit costs one sync, not two.

In SQLite's default rollback-journal mode every commit syncs the journal and the database; Optuna
reports and checks pruning every epoch and MLflow writes several times a trial, so on a plain disk
the syncs were most of a trial's bookkeeping (Optuna's report + prune: 17-25 ms an epoch, 6.7 ms in
WAL mode; bench/RESULTS.md, "Bookkeeping per trial"). WAL is a property of the database file: set
once, every later connection (other workers, ``mlflow ui``, ``optuna-dashboard``) uses it. Readers
no longer block the writer either. SQLite's WAL needs the processes on one machine (no network
file system), which is what a SQLite study is; many machines share a PostgreSQL server instead.

While a store is open its recent commits sit in ``<file>-wal`` next to it; :func:`checkpoint`
(the sweep calls it as it exits) folds them into the database file, so the file alone, copied or
backed up, holds everything.

Also here, as the SQLite file's own business: its URL read as a file (the URI form too), a folder
checked before MLflow would make it, the file and its folder tried for writing before a sweep
writes them (:func:`check_writable`), and MLflow's schema repaired after a migration another
process interrupted (:func:`repair_interrupted_migration`).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import tempfile
import urllib.parse
from pathlib import Path

import sqlalchemy

from experiments.stores.said import store_named

log = logging.getLogger(__name__)

BUSY_SECONDS = 30.0  # wait this long for another worker's write to finish
MIN_FREE = 1_000_000  # bytes a store's disk must have free for a sweep to begin writing it
DISK_FULL = "its disk is full"
# SQLite's words where its folder may be why: it could not make a file there, or write one
FOLDER_WORDS = ("unable to open", "disk I/O error", "readonly", "database or disk is full")
ALEMBIC_TMP = "_alembic_tmp_"  # Alembic's copy of a table it rebuilds (SQLite batch mode)


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite ``url``; None for other databases and in-memory SQLite."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):  # ValueError: a port that is no number
        return None  # e.g. a plain folder for MLflow's file store, or a server's URL
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    uri = str(parsed.query.get("uri", "")).lower() in ("true", "1")
    if uri and parsed.database.startswith("file:"):  # SQLite's URI form: its path part
        path = urllib.parse.unquote(urllib.parse.urlparse(parsed.database).path)
        return None if path in ("", ":memory:") else path
    return parsed.database


def check_folder(url: str, flag: str) -> None:
    """A ValueError (one line) when ``url`` is a SQLite file in a folder that is not there (MLflow
    would make the folder and an empty store in it, so a mistyped path started a new record), or
    names a folder."""
    database = sqlite_file(url)
    if database is not None and not Path(database).parent.is_dir():
        raise ValueError(
            f"{store_named(flag, url)}: there is no folder {Path(database).parent}; "
            "a SQLite store's folder must exist (create it first)"
        )
    check_not_a_folder(url, flag)


def check_writable(url: str, flag: str) -> None:
    """A ValueError (one line) when ``url``'s SQLite file, or the folder it is in, cannot be
    written (a read-only file system, another user's folder): for a store a command writes.
    SQLite said "unable to open database file" after MLflow's retries, 100 s later, with advice
    to move the store aside (probe FF). Tried, not judged by permissions, which root passes: a
    file made and removed in the folder, where SQLite writes its journal and write-ahead log
    too, and the file opened for writing (nothing written); and a disk with less than
    :data:`MIN_FREE` left (a sweep begun on a full disk said "as the study's closing wrote", with
    an empty optuna.db left behind: probe)."""
    database = sqlite_file(url)
    path = Path(database).resolve() if database is not None else None
    if path is None or not path.parent.is_dir():
        return  # check_folder says a folder that is not there
    where = path.parent  # the step that failed is named (review)
    try:
        tempfile.TemporaryFile(dir=where).close()
        if path.is_file():
            where = path
            path.open("r+b").close()
    except OSError as err:
        raise ValueError(
            f"{store_named(flag, url)}: {where} cannot be written ({err.strerror or err}); a "
            "SQLite store writes its file, journal and write-ahead log in its folder"
        ) from None
    if (free := _short_of_room(path.parent)) is not None:
        raise ValueError(
            f"{store_named(flag, url)}: no space left on the device of {path.parent} "
            f"({free // 1000} kB free): free space and rerun the same command"
        )


def check_readable(url: str, flag: str) -> None:
    """A ValueError (one line) when ``url``'s SQLite file cannot be read where it is: SQLite
    reads a store in WAL mode with a shared-memory file it makes beside it, which a read-only
    folder (an archived study) or a full disk refuses; compare and predict ended in MLflow's
    traceback, "unable to open database file" or "disk I/O error" (probe)."""
    database = sqlite_file(url)
    if database is None or not Path(database).is_file():
        return
    path = Path(database).resolve()
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as err:
        if not any(words in str(err) for words in FOLDER_WORDS):
            return  # a damaged file, say: the command's own reading says it
        why = folder_refuses(path.parent)
        if why is None:  # the folder is not why: left to the command's own reading (a read-only
            return  # probe beside a process's own writer met "disk I/O error": full test run)
        fix = "copy it, with its artifacts, where that can be written"
        if why == DISK_FULL:
            fix = "free space on its disk, or copy it with its artifacts"
        raise ValueError(
            f"{store_named(flag, url)}: cannot be read where it is ({why}); SQLite reads it with "
            f"a file it makes beside it: {fix} (scripts/move_store.py)"
        ) from None


def folder_refuses(folder: Path) -> str | None:
    """Why a SQLite store in ``folder`` cannot be written (nor, in WAL mode, read): the OS's words
    for a file made there (a read-only file system), or :data:`DISK_FULL`; None where neither."""
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as denied:
        return f"{folder}: {denied.strerror}"
    return DISK_FULL if _short_of_room(folder) is not None else None


def _short_of_room(folder: Path) -> int | None:
    """The bytes free on ``folder``'s disk where fewer than :data:`MIN_FREE`; else None."""
    free = shutil.disk_usage(folder).free
    return free if free < MIN_FREE else None


def check_not_a_folder(url: str, flag: str) -> None:
    """A ValueError (one line) when ``url``'s SQLite file is a folder: SQLite's "unable to open
    database file", said as the server not answering (probe)."""
    database = sqlite_file(url)
    if database is not None and Path(database).is_dir():
        name = "optuna.db" if flag == "--storage" else "mlflow.db"
        raise ValueError(
            f"{store_named(flag, url)}: a folder; a SQLite store is a file, e.g. "
            f"sqlite:///{Path(database) / name}"
        )


def same_database(first: str, second: str) -> bool:
    """Whether two database URLs (an Optuna storage, an MLflow tracking URI) name one database:
    the same SQLite file, or the same database on the same server."""
    files = [sqlite_file(url) for url in (first, second)]
    if None not in files:
        return Path(files[0]).resolve() == Path(files[1]).resolve()
    try:
        a, b = (sqlalchemy.engine.make_url(url) for url in (first, second))
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return False
    if "sqlite" in (a.get_backend_name(), b.get_backend_name()):
        return False  # a SQLite file and a server, or SQLite in memory
    ports = {"postgresql": 5432, "mysql": 3306}  # a URL without a port means the default one
    where = [
        (u.get_backend_name(), u.host, u.port or ports.get(u.get_backend_name()), u.database)
        for u in (a, b)
    ]
    return where[0] == where[1]


def table_names(url: str, flag: str) -> set[str]:
    """The tables of the SQLite database of ``url`` as it is now, read without writing (empty
    for other databases, a file not there yet, or one SQLite cannot open); a ValueError naming
    ``flag`` when the file is not a SQLite database (another file given by mistake)."""
    database = sqlite_file(url)
    if database is None or not Path(database).is_file():
        return set()
    try:
        connection = sqlite3.connect(f"{Path(database).resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            return {name for (name,) in rows}
        finally:
            connection.close()
    except sqlite3.DatabaseError as err:
        if "not a database" in str(err):
            raise ValueError(f"{store_named(flag, url)}: not a SQLite database ({err})") from None
        return set()
    except sqlite3.Error:
        return set()


# a table of MLflow's or Optuna's schema (alembic_version: both, and a first migration cut short)
STORE_TABLES = {"alembic_version", "experiments", "runs", "studies", "trials", "version_info"}


def check_not_foreign(url: str, flag: str, tables: set[str]) -> None:
    """A ValueError (one line) when ``tables`` (the SQLite database's of ``url``) are none of
    MLflow's or Optuna's: a user's own database given by mistake, into which the store would
    write its schema (it did: probe)."""
    if tables and tables.isdisjoint(STORE_TABLES):
        shown = ", ".join(sorted(tables)[:3]) + (", ..." if len(tables) > 3 else "")
        raise ValueError(
            f"{store_named(flag, url)}: a SQLite database of other tables ({shown}), neither "
            "MLflow's nor Optuna's: give the store's own file"
        )


def write_ahead_log(url: str) -> bool:
    """Put the SQLite database of ``url`` (a SQLAlchemy URL such as ``sqlite:///optuna.db``)
    in WAL mode; True when it is. Other databases and in-memory SQLite are left alone (False).
    """
    database = sqlite_file(url)
    if database is None:
        return False
    try:
        connection = sqlite3.connect(database, timeout=BUSY_SECONDS)
        try:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.Error as err:  # e.g. a read-only file: the store works as it is, only slower
        log.info("%s stays in its journal mode: %s", database, err)
        return False
    return mode == "wal"


def checkpoint(url: str) -> None:
    """Fold the write-ahead log of the SQLite database of ``url`` into the database file and
    empty it. Nothing happens for other databases or a file that does not exist."""
    database = sqlite_file(url)
    if database is None or not Path(database).is_file():
        return
    try:
        connection = sqlite3.connect(database, timeout=BUSY_SECONDS)
        try:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()
    except sqlite3.Error as err:  # the log stays and SQLite folds it in later: nothing is lost
        log.info("%s: write-ahead log not folded in now: %s", database, err)


def repair_interrupted_migration(uri: str) -> list[str]:
    """Undo what an interrupted SQLite migration of MLflow's schema left: Alembic rebuilds a
    table as ``_alembic_tmp_<table>``, copies it, drops the table and renames the copy. A copy
    whose table still exists is dropped; one whose table is gone becomes the table again. Then
    MLflow's migration runs again from the revision it recorded. Returns what was repaired."""
    database = sqlite_file(uri)
    if database is None or not Path(database).is_file():
        return []
    with contextlib.closing(sqlite3.connect(database, timeout=BUSY_SECONDS)) as connection:
        names = [row[0] for row in connection.execute("SELECT name FROM sqlite_master")]
        repaired = []
        for name in names:
            if not name.startswith(ALEMBIC_TMP):
                continue
            table = name.removeprefix(ALEMBIC_TMP)
            if table in names:
                connection.execute(f'DROP TABLE "{name}"')
            else:
                connection.execute(f'ALTER TABLE "{name}" RENAME TO "{table}"')
            repaired.append(table)
        connection.commit()
    if repaired:
        log.warning(
            "%s: repaired tables %s left half-migrated by an interrupted MLflow migration; "
            "migrating again",
            database,
            ", ".join(repaired),
        )
    return repaired


def check_damaged(err: BaseException, flag: str, url: str, held: str) -> None:
    """A ValueError (one line) when ``err`` is SQLite's word for a database file cut short or
    overwritten inside (one overwritten from its first byte is "not a database", said by
    :func:`tables`); ``held``: what is lost if it is moved aside."""
    if "database disk image is malformed" in str(err):
        raise ValueError(
            f"{store_named(flag, url)}: a damaged SQLite database (database disk image is "
            f"malformed): restore it from a copy, or move it aside and rerun (its {held} are lost)"
        ) from None
