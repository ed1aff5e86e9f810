"""Fixtures several test modules share, so that what they extract is extracted once."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from experiments.stores.disk import DiskFull
from tests.servers import MlflowServer, Postgres
from tests.trees import write_databases

# Modules heavy on memory: several sweep or worker processes at once (1.2-2.6 GB each), or
# VGG-Face's 119.5M-parameter top trained in two processes at once (test_finetune). The README runs
# them in one process (``-m heavy``) after the rest has run in two pytest-xdist workers (``-m "not
# heavy" -n 2 --dist loadgroup``): two pytest processes (up to 8 GB each) beside one of them came
# within 1 GB of the 24 GB CI has.
HEAVY = {"test_workers.py", "test_robustness.py", "test_scale.py", "test_finetune.py"}


@pytest.hookimpl(tryfirst=True)  # before xdist's hook and ``-m`` read the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the heavy modules ``heavy``; keep each module's tests in one xdist worker
    (``--dist loadgroup``), so that its module fixtures run once."""
    for item in items:
        if item.path.name in HEAVY:
            item.add_marker(pytest.mark.heavy)
        item.add_marker(pytest.mark.xdist_group(item.path.name))


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as Python sets it, however the tests were started: a shell without job control
    (``pytest ... &`` in a script, ``nohup``) starts them with SIGINT ignored, which the workers
    and their children inherit, and the tests that press Ctrl-C saw nothing (five failed)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Where a pytest-xdist worker was interrupted, on its stderr (CI's log): the controller says
    only "node down: keyboard-interrupt", whatever raised it."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        said = (
            f"{os.environ['PYTEST_XDIST_WORKER']} interrupted:\n{excinfo.getrepr(style='short')}\n"
        )
        os.write(2, said.encode(errors="replace"))


def _a_full_disk_fails_the_test(item: pytest.Item) -> Generator[None, object, object]:
    """A sweep stops on a full disk as at Ctrl-C (:class:`DiskFull` is a KeyboardInterrupt, so
    Optuna lets it through): in a test that ended the whole session, a pytest-xdist worker "down:
    keyboard-interrupt", no cause named (CI). Here it fails the test, saying it and what is free."""
    try:
        return (yield)
    except DiskFull as err:
        free = shutil.disk_usage(tempfile.gettempdir()).free
        pytest.fail(f"{err} ({free / 2**30:.1f} GiB free in {tempfile.gettempdir()})", False)


pytest_runtest_setup = pytest.hookimpl(wrapper=True)(_a_full_disk_fails_the_test)
pytest_runtest_call = pytest.hookimpl(wrapper=True)(_a_full_disk_fails_the_test)
pytest_runtest_teardown = pytest.hookimpl(wrapper=True)(_a_full_disk_fails_the_test)


PASSED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, object]:
    report = yield
    if report.when == "call":
        item.stash[PASSED] = report.passed
    return report


@pytest.fixture
def tmp_path(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """pytest's, emptied once its test passed: the suite wrote 4.6 GB (VGG-Face's weights four
    times among it), on machines seen with less free. The folder stays, so no later test gets
    its name, and a store or model cached by its path (MLflow's, the scorer's) with it: pytest's
    own ``tmp_path_retention_policy = "failed"`` deletes it, and a test's next parameter read
    the store its first had written."""
    yield tmp_path
    if request.node.stash.get(PASSED, False):
        for inside in tmp_path.iterdir():
            if inside.is_dir() and not inside.is_symlink():
                shutil.rmtree(inside, ignore_errors=True)
            else:
                inside.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _working_folder_and_tracking_uri_as_they_were() -> Iterator[None]:
    """A test's ``os.chdir`` and ``mlflow.set_tracking_uri`` (which also sets
    ``MLFLOW_TRACKING_URI``, for every later child process) undone after it: a passed test's
    ``tmp_path`` is emptied as it ends, and the tests after it ran in its folder against its
    emptied store (deleted, under pytest's retention policy: initdb "could not identify current
    directory"). What module fixtures set is kept for the module's tests: they are set up before
    this."""
    yield from _as_they_were()


@pytest.fixture(scope="module", autouse=True)
def _modules_working_folder_and_tracking_uri_as_they_were() -> Iterator[None]:
    """The same after each module, for what its fixtures set: a module's folder deleted with it
    (test_finetune's) left the next module's sweeps reading a store in a deleted folder (before,
    reading that module's store without a word)."""
    yield from _as_they_were()


def _as_they_were() -> Iterator[None]:
    folder = os.getcwd()
    uri = _set_tracking_uri()
    yield
    os.chdir(folder)
    if (tracking := sys.modules.get(_MLFLOW_URI)) is not None and _set_tracking_uri() != uri:
        tracking.set_tracking_uri(uri)  # None: unset, the environment variable too


_MLFLOW_URI = "mlflow.tracking._tracking_service.utils"  # holds the URI set_tracking_uri set


def _set_tracking_uri() -> str | None:
    tracking = sys.modules.get(_MLFLOW_URI)
    return None if tracking is None else tracking._tracking_uri


@pytest.fixture(scope="module", autouse=True)
def _release_memory():
    """After each module: Keras' graphs dropped and freed memory handed back to the system, so a
    pytest process does not carry every module's peak (12.4 GB -> 7.8 GB after three modules)."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
    gc.collect()
    if libc := ctypes.util.find_library("c"):
        trim = getattr(ctypes.CDLL(libc), "malloc_trim", None)  # glibc only
        if trim is not None:
            trim(0)


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
