"""The test harness itself (tests/conftest.py): what it makes of a full disk."""

from __future__ import annotations

import pytest

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
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=2, failed=1)  # a fixture's failure is an error
    out = result.stdout.str()
    for where in ("fixture", "test", "teardown"):
        said = f"no space left on the device (/mlartifacts) as the {where} wrote: free space and"
        assert said in out
    assert "GiB free in " in out and "KeyboardInterrupt" not in out
