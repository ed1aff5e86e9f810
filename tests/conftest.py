"""Fixtures several test modules share, so that what they extract is extracted once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers import MlflowServer, Postgres
from tests.trees import write_databases


@pytest.fixture(scope="session")
def database_trees(tmp_path_factory) -> Path:
    """Replay-Attack, OULU-NPU, CASIA-FASD and MSU-MFSD trees of tiny videos in one folder,
    which also holds the feature cache and the Optuna and MLflow stores of the tests using it."""
    return write_databases(tmp_path_factory.mktemp("databases"))


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL cluster for study databases (one per test: ``create_database``); a test
    may stop and start it, and must leave it running."""
    server = Postgres()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def mlflow_server():
    """On a PostgreSQL cluster of its own: a test may stop the study's database alone. Shared
    by the session (each start costs ~15 s); a test that stops it starts it again."""
    database = Postgres()
    try:
        server = MlflowServer(database.create_database("mlflow"))
        try:
            yield server
        finally:
            server.close()
    finally:
        database.close()
