"""The test harness itself (tests/conftest.py, tests/servers.py): what it makes of a full disk,
of Ctrl-C, of the folders and stores a test leaves, and the ports its servers take."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytest_plugins = ["pytester"]


def test_a_full_disk_fails_its_test_and_the_session_goes_on(pytester: pytest.Pytester) -> None:
    """A sweep stops on a full disk as at Ctrl-C: in CI that ended the session, a pytest-xdist
    worker "down: keyboard-interrupt", no cause named. Raised in a fixture, a test or a teardown,
    it now fails that test, saying so, and the next tests run."""
    pytester.makeconftest("from tests.conftest import *  # noqa: F403 (its hooks)\n")
    pytester.makepyfile(
        """
        import errno

        import pytest

        from experiments.stores.disk import disk_full

        def full(where):
            err = OSError(errno.ENOSPC, "No space left on device", "/mlartifacts")
            raise disk_full(err, where, "(finished trials are kept)")

        @pytest.fixture
        def setup():
            full("as the fixture wrote")

        @pytest.fixture
        def teardown():
            yield
            full("as the teardown wrote")

        def test_fixture(setup):
            pass

        def test_call():
            full("as the test wrote")

        def test_teardown(teardown):
            pass

        def test_after():
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:benchmark")
    result.assert_outcomes(passed=2, errors=2, failed=1)  # a fixture's failure is an error
    out = result.stdout.str()
    for where in ("fixture", "test", "teardown"):
        said = f"no space left on the device (/mlartifacts) as the {where} wrote: free space and"
        assert said in out
    assert "GiB free in " in out and "KeyboardInterrupt" not in out


def run_child_pytest(folder: Path, *flags: str, ignore_sigint: bool) -> subprocess.CompletedProcess:
    """pytest on ``folder``'s tests in a process of its own, started with SIGINT ignored as a
    shell without job control starts a background job (or as it is)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:benchmark",
            *flags,
        ],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if ignore_sigint
        else None,
    )


def test_ctrl_c_reaches_the_tests_of_a_run_started_with_sigint_ignored(
    pytester: pytest.Pytester,
) -> None:
    """``pytest ... &`` in a script (no job control) starts pytest with SIGINT ignored, and the
    tests that press Ctrl-C on themselves saw nothing: five failed, two skipped."""
    pytester.makeconftest("from tests.conftest import *  # noqa: F403 (its hooks)\n")
    pytester.makepyfile(
        """
        import signal

        import pytest

        def test_ctrl_c():
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)
        """
    )
    for flags in ((), ("-n", "1")):  # the controller, and a pytest-xdist worker
        done = run_child_pytest(pytester.path, *flags, ignore_sigint=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_an_interrupted_worker_says_where(pytester: pytest.Pytester) -> None:
    """pytest-xdist's controller says only "node down: keyboard-interrupt"; the worker now puts
    where it was interrupted on its stderr (CI's log)."""
    pytester.makeconftest("from tests.conftest import *  # noqa: F403 (its hooks)\n")
    pytester.makepyfile(
        """
        def test_stopped():
            raise KeyboardInterrupt("raised by test_stopped")
        """
    )
    done = run_child_pytest(pytester.path, "-n", "1", ignore_sigint=False)
    assert "node down: keyboard-interrupt" in done.stdout
    assert "gw0 interrupted:" in done.stderr and "raised by test_stopped" in done.stderr


def test_a_passed_tests_folder_is_emptied_and_its_working_folder_and_store_undone(
    pytester: pytest.Pytester,
) -> None:
    """The suite wrote 4.6 GB: a passed test's tmp_path is emptied as it ends (a failed test's
    kept), its folder left so that no later test gets its name; a test that moved into it
    (``os.chdir``) or set MLflow's tracking URI there left every later test in it (with pytest's
    own retention policy, a deleted folder: 16 errors and 9 failures in the heavy part)."""
    pytester.makeconftest(
        "from tests.conftest import (  # noqa: F401 (its hooks and fixtures)\n"
        "    _working_folder_and_tracking_uri_as_they_were,\n"
        "    pytest_runtest_makereport,\n"
        "    tmp_path,\n"
        ")\n"
    )
    pytester.makepyfile(
        """
        import os
        from pathlib import Path

        import mlflow

        HERE = Path(__file__).parent

        def test_moves_in(tmp_path):
            (HERE / "passed.txt").write_text(str(tmp_path))
            (tmp_path / "weights").mkdir()
            (tmp_path / "weights" / "vgg_face.weights.h5").write_bytes(bytes(1000))
            os.chdir(tmp_path)
            mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")

        def test_fails(tmp_path):
            (HERE / "failed.txt").write_text(str(tmp_path))
            (tmp_path / "kept").write_text("")
            raise AssertionError("failed on purpose")

        def test_after(tmp_path):
            assert os.getcwd() == str(HERE)
            assert "MLFLOW_TRACKING_URI" not in os.environ
            assert mlflow.get_tracking_uri().startswith("sqlite:///")  # MLflow's default
            assert (HERE / "passed.txt").read_text() not in mlflow.get_tracking_uri()
        """
    )
    done = run_child_pytest(pytester.path, ignore_sigint=False)
    assert done.returncode == 1 and "1 failed, 2 passed" in done.stdout, done.stdout
    passed = Path((pytester.path / "passed.txt").read_text())
    assert passed.is_dir() and not any(passed.iterdir())
    assert (Path((pytester.path / "failed.txt").read_text()) / "kept").is_file()


def test_what_a_modules_fixtures_set_is_undone_after_the_module(pytester: pytest.Pytester) -> None:
    """A module fixture's sweep set MLflow's tracking URI in its folder, which the module then
    deleted (test_finetune's): the next module's sweeps, given no --tracking-uri, read a store
    in a deleted folder (and, before, that module's store without a word)."""
    pytester.makeconftest(
        "from tests.conftest import (  # noqa: F401 (its fixtures)\n"
        "    _modules_working_folder_and_tracking_uri_as_they_were,\n"
        "    _working_folder_and_tracking_uri_as_they_were,\n"
        ")\n"
    )
    pytester.makepyfile(
        test_a="""
        import os

        import mlflow
        import pytest

        @pytest.fixture(scope="module")
        def workspace(tmp_path_factory):
            folder = tmp_path_factory.mktemp("workspace")
            os.chdir(folder)
            mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
            return folder

        def test_in_it(workspace):
            assert os.getcwd() == str(workspace)
            assert str(workspace) in os.environ["MLFLOW_TRACKING_URI"]

        def test_still_in_it(workspace):  # kept for the module's tests
            assert os.getcwd() == str(workspace)
            assert str(workspace) in os.environ["MLFLOW_TRACKING_URI"]
        """,
        test_b="""
        import os

        def test_after():
            assert "MLFLOW_TRACKING_URI" not in os.environ and "workspace" not in os.getcwd()
        """,
    )
    done = run_child_pytest(pytester.path, ignore_sigint=False)
    assert done.returncode == 0 and "3 passed" in done.stdout, done.stdout


def test_a_servers_port_is_one_no_outgoing_connection_takes() -> None:
    """A port picked free with ``bind(0)`` comes from the ephemeral range, where every outgoing
    connection (the tests' psycopg2, HTTP) takes its own: one could take it before the server
    bound it. The servers' ports are drawn below that range."""
    from tests.servers import PORTS_FROM, ephemeral_low, free_port

    low = ephemeral_low()
    if low - PORTS_FROM < 1000:
        pytest.skip(f"no room below this kernel's ephemeral range (from {low}): bind(0) is used")
    ports = [free_port() for _ in range(20)]
    assert all(PORTS_FROM <= port < low for port in ports), (ports, low)
    assert len(set(ports)) > 15  # drawn, not one port each time
