"""Locks every process of one store sees: one worker at a time creates or migrates a schema.

PostgreSQL: a session advisory lock on a connection of its own (the server drops it when the
connection or the worker dies). SQLite: ``flock`` on a file in the temporary folder, named after
the database path (one machine). Other stores (an MLflow server over HTTP): no lock; the server
migrates its own schema.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy

from experiments.stores import wal


class StorageLock:
    """An exclusive lock every worker of one storage sees, held by one worker at a time.

    PostgreSQL: a session advisory lock on a connection of its own (the server drops it when the
    connection or the worker dies). SQLite: ``flock`` on a file in the temporary folder, named
    after the database path (one machine). Other databases: no lock.
    """

    def __init__(self, url: str, name: str) -> None:
        try:
            self.url = sqlalchemy.engine.make_url(url)
        except sqlalchemy.exc.ArgumentError:  # not a database URL (a folder, http://...): no lock
            self.url = None
        digest = hashlib.sha256(f"vggface-heads:{name}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)
        self._held: Any = None
        self._engine = None
        self._sqlite = wal.sqlite_file(url)  # the database file; None for other databases
        if self.url is not None and self.url.get_backend_name() == "postgresql":
            self._engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)

    def acquire(self) -> None:
        if self._engine is not None:
            connection = self._engine.connect()
            try:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
            except BaseException:
                connection.close()
                raise
            self._held = connection
        elif self._sqlite is not None:
            database = str(Path(self._sqlite).resolve())
            digest = hashlib.sha256(f"{database}:{self.key}".encode()).hexdigest()[:16]
            path = Path(tempfile.gettempdir()) / f"vggface-heads-{digest}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._held = fd

    def release(self) -> None:
        """Release the lock if held (closing the connection or descriptor releases it)."""
        held, self._held = self._held, None
        if held is None:
            return
        with contextlib.suppress(Exception):  # a dead connection holds no lock any more
            held.close() if self._engine is not None else os.close(held)

    def __enter__(self) -> StorageLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def closing_lock(url: str) -> StorageLock:
    """Held by a worker of the study storage ``url`` while it writes what the workers share in
    the tracking store: the registered models and their ``best`` aliases, the study's view, the
    cross-domain table. MLflow's SQL stores insert-or-update these rows (SQLAlchemy's
    ``merge``: a read, then an insert) without a lock of their own, so two workers ending
    together collided on a primary key and the second exited 3."""
    return StorageLock(url, "closing")
