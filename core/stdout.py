"""stdout whose failure names it.

Redirected to a file on a full disk (or to ``/dev/full``), a command's print raised an OSError
that names no file: compare said it as ``--out None``, the sweep as its study's closing, with no
word of stdout (probe). In :func:`named_stdout`'s block a write or flush of ``sys.stdout`` that
fails raises the OSError with :data:`STDOUT` as its file name, and what is written after it goes
nowhere (Python's flush at exit included, which said the error again); a reader gone (``| head``)
is still a BrokenPipeError, named so too.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

STDOUT = "<stdout>"  # the file name of an OSError met writing stdout


class _Named:
    """``sys.stdout`` whose write and flush errors name it; anything else is the stream's."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.failed: OSError | None = None  # its first failure, raised or not beyond

    def write(self, text: str) -> int:
        return self._named(self.stream.write, text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._named(self.stream.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def _named(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except BlockingIOError:  # a pipe full for now
            raise
        except OSError as err:
            if err.filename is not None:
                raise
            _discard(self.stream)
            named = type(err)(err.errno, err.strerror, STDOUT)  # a BrokenPipeError still
            self.failed = self.failed or named
            raise named from err


def _discard(stream: TextIO) -> None:
    """What ``stream`` is yet to write goes nowhere, Python's flush at exit included."""
    with contextlib.suppress(OSError, ValueError):  # a stream without a descriptor
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


@contextlib.contextmanager
def named_stdout() -> Iterator[Callable[[], None]]:
    """``sys.stdout`` for the block a stream whose write errors name it (:data:`STDOUT`), and
    what it still buffers at the block's end written in it, so that its failure is named too (at
    Python's exit it was "Exception ignored", status 120: review); a reader gone by then (``|
    head``) is let go. The stream in place before is put back after. Yields a check that raises
    a failure someone let pass (argparse's ``--help`` drops its write error: it ended 0 with
    nothing written), for a command about to end well; a reader gone is not one."""
    stream = sys.stdout
    if isinstance(stream, _Named) or stream is None:
        yield lambda: None
        return
    named = _Named(stream)

    def check() -> None:
        if named.failed is not None and not isinstance(named.failed, BrokenPipeError):
            raise named.failed

    sys.stdout = named  # type: ignore[assignment]
    try:
        yield check
        try:
            named.flush()
        except BrokenPipeError:  # it has what it wanted
            _discard(stream)
    finally:
        sys.stdout = stream


def stdout_failed(err: BaseException) -> bool:
    """Whether ``err`` is an error met writing stdout (in :func:`named_stdout`'s block)."""
    return isinstance(err, OSError) and err.filename == STDOUT


def stdout_said(err: OSError) -> str:
    """The error ``err`` met writing stdout, as every command's line says it."""
    return f"stdout cannot be written ({err.strerror})"


def say_stdout_failed(err: OSError) -> int:
    """A command's one line on the error ``err`` met writing stdout, on stderr; its status, 2."""
    print(f"error: {stdout_said(err)}", file=sys.stderr)
    return 2
