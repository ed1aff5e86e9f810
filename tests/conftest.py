"""Fixtures several test modules share, so that what they extract is extracted once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trees import write_databases


@pytest.fixture(scope="session")
def database_trees(tmp_path_factory) -> Path:
    """Replay-Attack, OULU-NPU, CASIA-FASD and MSU-MFSD trees of tiny videos in one folder,
    which also holds the feature cache and the Optuna and MLflow stores of the tests using it."""
    return write_databases(tmp_path_factory.mktemp("databases"))
