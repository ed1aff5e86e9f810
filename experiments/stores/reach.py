"""Whether a tracking store answers, said in one line before anything else uses it: MLflow's
client retries a server that accepts no connection for about four minutes, and its engine a
database server for minutes, then ends in tracebacks."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path
from typing import Any

import sqlalchemy
from mlflow.environment_variables import (
    MLFLOW_TRACKING_CLIENT_CERT_PATH,
    MLFLOW_TRACKING_INSECURE_TLS,
    MLFLOW_TRACKING_SERVER_CERT_PATH,
)

from experiments.stores import wal
from experiments.stores.said import first_line, hide_passwords, tracking_named

SERVER_WAIT_SECONDS = 60.0  # a tracking server that accepts no connection this long is down


class StoreUnreachable(ValueError):
    """The tracking server accepts no connection, or answers but not as MLflow does."""


def check_server(uri: str, seconds: float | None = None) -> None:
    """:class:`StoreUnreachable` naming the fix when ``uri`` is a tracking server that accepts no
    connection, or whose gateway says it is away (502, 503, 504), for ``seconds`` (default
    :data:`SERVER_WAIT_SECONDS`; one that is starting gets that long): MLflow's own client
    retries for about four minutes before it says so. Said at once: ``https://`` to a server
    that answers plain HTTP (four minutes of retries, then a line cut off before its reason:
    probe), and a certificate that does not verify under MLflow's own TLS settings
    (``MLFLOW_TRACKING_INSECURE_TLS``, ``MLFLOW_TRACKING_SERVER_CERT_PATH``,
    ``MLFLOW_TRACKING_CLIENT_CERT_PATH``); another TLS failure (a port that closes the
    connection while its server starts) is waited for. Any other answer is left to MLflow's
    client, which reads the server's errors."""
    if not is_server(uri):
        _check_database(uri)
        return
    import requests  # MLflow's own HTTP client

    deadline = time.monotonic() + (SERVER_WAIT_SECONDS if seconds is None else seconds)
    while True:
        try:
            left = max(0.5, deadline - time.monotonic())
            with warnings.catch_warnings():  # MLFLOW_TRACKING_INSECURE_TLS: MLflow's to say
                warnings.simplefilter("ignore", requests.urllib3.exceptions.InsecureRequestWarning)
                answer = requests.get(f"{uri.rstrip('/')}/health", timeout=left, **_tls())
            if answer.status_code not in (502, 503, 504):
                return
            reason = f"its gateway answers {answer.status_code} {answer.reason}"
        except requests.exceptions.SSLError as err:
            if "CERTIFICATE_VERIFY_FAILED" in str(err):  # as MLflow's client would meet it
                raise StoreUnreachable(_not_verified(uri, str(err))) from None
            if _plain_http(uri):  # OpenSSL words this otherwise from version to version
                plain = "http://" + uri.removeprefix("https://")
                raise StoreUnreachable(
                    f"{tracking_named(uri)}: the server answers in plain HTTP, not TLS: give "
                    f"{plain}, or put TLS in front of it"
                ) from None
            reason = first_line(err, 120)  # a port that closes the connection: not up yet
        except ValueError as err:  # requests' InvalidURL, InvalidSchema: no URL at all
            raise ValueError(f"{tracking_named(uri)} is not a URL ({first_line(err)})") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
            said = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(err))  # the socket's words
            reason = said.group(1) if said else first_line(err, 120)
        if time.monotonic() >= deadline:
            raise StoreUnreachable(_server_down(uri, reason))
        time.sleep(1.0)


def _tls() -> dict[str, Any]:
    """requests' TLS settings as MLflow's client takes them from its environment."""
    server = MLFLOW_TRACKING_SERVER_CERT_PATH.get()
    verify = server if server else not MLFLOW_TRACKING_INSECURE_TLS.get()
    return {"verify": verify, "cert": MLFLOW_TRACKING_CLIENT_CERT_PATH.get()}


def _not_verified(uri: str, error: str) -> str:
    said = re.search(r"certificate verify failed: ([^(]+?)\s*\(_ssl", error)
    reason = said.group(1) if said else "certificate verify failed"
    return (
        f"the tracking server {uri} fails TLS (certificate verify failed: {reason}): set "
        "MLFLOW_TRACKING_SERVER_CERT_PATH to the file of the CA that signed its certificate, or "
        "MLFLOW_TRACKING_INSECURE_TLS=true"
    )


def _plain_http(uri: str) -> bool:
    """Whether ``uri``, an https URL, answers when asked in plain HTTP."""
    import requests

    try:
        requests.get("http://" + uri.removeprefix("https://").rstrip("/") + "/health", timeout=5)
    except requests.exceptions.RequestException:
        return False
    return True


# MLflow's tracking stores by URI scheme: its databases (SQLAlchemy dialects), and the others
DATABASE_STORES = ("sqlite", "postgresql", "mysql", "mssql")
OTHER_STORES = ("file", "http", "https", "databricks", "databricks-uc", "uc")


def _check_database(uri: str) -> None:
    """:class:`StoreUnreachable` (one line, no password) when ``uri`` is a database server's
    store that accepts no connection: MLflow's engine retries for minutes, then ends in
    tracebacks. SQLite files and other URIs are left to their own checks."""
    try:
        url = sqlalchemy.engine.make_url(uri)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return
    backend = url.get_backend_name()
    if backend == "sqlite" or backend in OTHER_STORES:
        return
    if backend not in DATABASE_STORES:  # bogus://, postgres://: not a driver missing
        raise ValueError(
            f"{hide_passwords(tracking_named(uri))}: not a tracking store MLflow knows (scheme "
            f"{url.drivername!r}); e.g. sqlite:///mlflow.db, postgresql://user@host/mlflow or "
            "http://host:5000"
        )
    timeout = {"postgresql": {"connect_timeout": 10}, "mysql": {"connect_timeout": 10}}
    try:
        engine = sqlalchemy.create_engine(
            url,
            poolclass=sqlalchemy.pool.NullPool,
            connect_args=timeout.get(backend, {}),
        )
    except (sqlalchemy.exc.NoSuchModuleError, ImportError) as err:  # a driver not installed
        raise ValueError(
            f"{hide_passwords(tracking_named(uri))}: its database driver is not installed "
            f"({first_line(err)}); for PostgreSQL: pip install -e '.[postgres]'"
        ) from None
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as err:
        cause = err.orig if isinstance(err, sqlalchemy.exc.DBAPIError) and err.orig else err
        raise StoreUnreachable(
            f"the tracking store {hide_passwords(uri)} cannot be reached "
            f"({hide_passwords(first_line(cause, 160))}): start it or correct --tracking-uri"
        ) from None
    finally:
        engine.dispose()


def check_existing_store(uri: str) -> None:
    """For a command that only reads the tracking store: a ValueError when it is a SQLite file
    that does not exist (MLflow would create an empty store at a mistyped path), or that cannot
    be read where it is (:func:`~experiments.stores.wal.check_readable`), and
    :class:`StoreUnreachable` for a server that does not answer."""
    wal.check_not_a_folder(uri, "--tracking-uri")  # not "no tracking store at" (probe)
    database = absent_file(uri)
    if database is not None:
        empty = " (an empty file)" if Path(database).is_file() else ""
        raise ValueError(
            f"no tracking store at {database}{empty}: a sweep writes it there; pass the "
            "--tracking-uri the sweep used, or run the command in the sweep's folder"
        )
    wal.check_readable(uri, "--tracking-uri")  # a read-only folder, a full disk (probe)
    check_server(uri)


def absent_file(uri: str) -> str | None:
    """The SQLite file of ``uri`` (its URI form's too) when there is none yet, or it is empty
    (MLflow would make its store there); else None."""
    database = wal.sqlite_file(uri)
    if database is None or (Path(database).is_file() and Path(database).stat().st_size > 0):
        return None
    return database


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _server_down(uri: str, reason: str) -> str:
    fix = "start it (README, 'Many machines') or correct --tracking-uri"
    return f"the tracking server {uri} does not answer ({reason}): {fix}"
