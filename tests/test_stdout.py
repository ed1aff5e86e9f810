"""stdout that fails names itself (core/stdout.py): a redirect on a full disk was said as the file
a command was writing, or as a study's closing (probe)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.stdout import STDOUT, named_stdout, stdout_failed
from experiments.stores.disk import disk_full

REPO = Path(__file__).resolve().parents[1]


def test_a_write_to_a_full_stdout_names_it_and_what_follows_goes_nowhere(monkeypatch) -> None:
    with open("/dev/full", "w") as full:  # every write: ENOSPC
        monkeypatch.setattr(sys, "stdout", full)
        with named_stdout():
            with pytest.raises(OSError) as failed:
                print("a line", flush=True)
            print("the next", flush=True)  # and Python's flush at exit: no second error
        assert sys.stdout is full  # put back
    assert failed.value.errno == errno.ENOSPC and failed.value.filename == STDOUT
    assert stdout_failed(failed.value) and not stdout_failed(OSError(errno.ENOSPC, "full"))
    said = disk_full(failed.value, "as the study's closing wrote", "(finished trials are kept)")
    assert str(said) == (
        "stdout cannot be written (No space left on device): rerun the same command with its "
        "output where it can be written (finished trials are kept)"
    )


def test_a_reader_gone_is_still_a_broken_pipe(monkeypatch) -> None:
    read, write = os.pipe()
    os.close(read)
    pipe = os.fdopen(write, "w")
    monkeypatch.setattr(sys, "stdout", pipe)
    with named_stdout(), pytest.raises(BrokenPipeError) as gone:  # compare, predict end quietly
        print("a line", flush=True)
    monkeypatch.undo()
    assert stdout_failed(gone.value)  # named, so a sweep tells it from a socket's (disk_full)
    with contextlib.suppress(BrokenPipeError):  # what the buffer still holds
        pipe.close()


def test_a_command_whose_last_lines_meet_a_full_stdout_at_its_end_says_so() -> None:
    """Lines still buffered as a command ended were written by Python at its exit: "Exception
    ignored ... OSError: [Errno 28]", status 120; and python -m heads, which handles no OSError,
    ended in a traceback (review). They are written, and said, before the command ends."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as a shell has it
    env["PYTHONPATH"] = str(REPO)
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "heads", "lstm30"],
            stdout=full,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            timeout=600,
        )
    assert (done.returncode, done.stderr.splitlines()) == (
        2,
        ["error: stdout cannot be written (No space left on device)"],
    )


@pytest.mark.parametrize(
    "command", [["-m", "heads"], ["experiments/compare.py"], ["scripts/move_store.py"]]
)
def test_help_to_a_full_stdout_says_so(command) -> None:
    """argparse drops the error of its help's write: ``--help > /dev/full`` ended 0 with nothing
    written (probe). A failure let pass is said as the command ends well; a reader gone is not
    one (``--help | head`` ends 0)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    read, write = os.pipe()
    os.close(read)  # the reader gone before the first line
    ended = []
    with open("/dev/full", "w") as full, os.fdopen(write, "w") as gone:
        for stdout in (full, gone):
            done = subprocess.run(
                [sys.executable, *command, "--help"],
                stdout=stdout,
                stderr=subprocess.PIPE,
                env=env,
                text=True,
                cwd=REPO,
                timeout=120,
            )
            ended.append((done.returncode, done.stderr.splitlines()))
    assert ended == [(2, ["error: stdout cannot be written (No space left on device)"]), (0, [])]
