"""Ctrl-C that is not lost: Python drops a KeyboardInterrupt raised in a finalizer.

Python raises KeyboardInterrupt in whatever the main thread runs when SIGINT is handled; in a
finalizer (``__del__``, a weakref callback) or a garbage-collector callback (JAX registers one) it
is printed as "Exception ignored" with a traceback and dropped. A long loop would then run on to
its end and exit 0 as if no one had pressed Ctrl-C (CI saw the extract command do so).
:func:`ctrl_c_noticed` also records the signal, and the loops (extraction between clips, a worker
between trials) check; the dropped KeyboardInterrupt is not printed (``sys.unraisablehook``), since
the check raises it.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from core.stdout import named_stdout, say_stdout_failed, stdout_failed

_seen: list[int] | None = None  # the Ctrl-Cs recorded by the outermost ctrl_c_noticed in force
_terminated = False  # a SIGTERM arrived in terminate_as_ctrl_c's block, handled as a Ctrl-C


@contextlib.contextmanager
def ctrl_c_noticed() -> Iterator[Callable[[], None]]:
    """A check that raises KeyboardInterrupt once a Ctrl-C arrived in the block, wherever it
    landed: the SIGINT handler in place records it, then runs as before; one dropped in a finalizer
    is not printed. Outside the main thread, or where SIGINT is ignored or kills the process, the
    check does nothing."""
    global _seen
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield lambda: None
        return
    enclosing = _seen
    seen = enclosing if enclosing is not None else []  # one dropped before: still seen

    def record_then_handle(signum: int, frame: Any) -> None:
        seen.append(signum)
        previous(signum, frame)

    def check() -> None:
        if seen:
            raise KeyboardInterrupt

    unraisable = sys.unraisablehook

    def quiet_if_recorded(dropped: Any) -> None:
        if not (seen and dropped.exc_type is KeyboardInterrupt):
            unraisable(dropped)

    try:
        _seen = seen
        signal.signal(signal.SIGINT, record_then_handle)
        sys.unraisablehook = quiet_if_recorded
        yield check
    except KeyboardInterrupt:  # raised, and handled above: not raised again by a later check
        seen.clear()
        raise
    finally:
        sys.unraisablehook = unraisable
        signal.signal(signal.SIGINT, previous)
        _seen = enclosing


def stopped_by_ctrl_c(said: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """A command's ``main`` that says ``said`` on stderr and returns 130 (143 where a SIGTERM in
    :func:`terminate_as_ctrl_c`'s block stopped it) on a Ctrl-C it did not handle itself (in its
    imports, before its own handling: it was a traceback), or that Python dropped in a finalizer
    where it has no check (a successful exit would hide it), and whose own checks
    (:func:`ctrl_c_noticed`) see one dropped before them; its stdout's failures name it
    (:func:`~core.stdout.named_stdout`), and one it did not handle is one line and status 2."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(*args: Any, **kwargs: Any) -> int:
            try:
                with ctrl_c_noticed() as check, named_stdout() as stdout_check:
                    try:
                        code = main(*args, **kwargs)
                    except SystemExit as done:  # argparse's --help
                        if done.code in (0, None):
                            stdout_check()
                        raise
                    if code == 0:  # one dropped where the command had no check of its own
                        check()
                        stdout_check()
            except KeyboardInterrupt:
                print(said, file=sys.stderr)
                code = 130
            except OSError as err:  # stdout's, the command's own handling past (python -m heads)
                if not stdout_failed(err):
                    raise
                # a reader gone (| head) has what it wanted
                code = 0 if isinstance(err, BrokenPipeError) else say_stdout_failed(err)
            # stopped by SIGTERM: 143, as a scheduler reads it (it was 130, Ctrl-C's: probe Y)
            return 128 + signal.SIGTERM if code == 130 and _terminated else code

        return run

    return wrap


@contextlib.contextmanager
def first_ctrl_c_only() -> Iterator[None]:
    """In the block, the first Ctrl-C is raised as ever (through the handler in place) and the
    next ones do nothing: what the first sets off (a trial's runs closed, the trial failed and
    queued again) must not be cut short by the next. Holding Ctrl-C down sends them 30 ms apart;
    the second one lost the trial in flight, or left it RUNNING (probe). Outside the main
    thread, or where SIGINT is ignored or kills the process, it does nothing."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return
    fired = False

    def first(signum: int, frame: Any) -> None:
        nonlocal fired
        if not fired:  # the handler an inner block puts back is this one: still only once
            fired = True
            previous(signum, frame)

    signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def exit_with(code: int) -> NoReturn:
    """A command's exit with ``code``, a Ctrl-C from now on ignored: its work is done, and one
    pressed while Python shuts down (seconds after compare's table or predict's scores were
    printed) made it exit 130 saying nothing, which a script reads as a failure (probe). Python
    leaves an ignored SIGINT so to its very end (a handler of its own is put back to the default
    there, where the backends' teardown still runs); a shutdown that hangs ends with Ctrl-\\."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


@contextlib.contextmanager
def terminate_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (``docker stop``, a batch scheduler's time limit, ``kill``) handled as a Ctrl-C in
    the block: the command stops as it does then, what it finished kept and said, instead of
    dying at once with nothing said. The SIGINT handler in place runs (KeyboardInterrupt where
    SIGINT is ignored, as in a background job); the previous SIGTERM handler is put back after.
    Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def as_ctrl_c(signum: int, frame: Any) -> None:
        global _terminated
        _terminated = True
        handler = signal.getsignal(signal.SIGINT)
        if not callable(handler):
            raise KeyboardInterrupt
        handler(signal.SIGINT, frame)

    global _terminated
    outer = _terminated  # a block inside another leaves the outer's as it found it (review)
    previous = signal.signal(signal.SIGTERM, as_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _terminated = outer


def stopped_by(err: BaseException) -> str:
    """What stopped a run that ended with ``err``, as its record says it: ``SIGTERM`` where one
    arrived in :func:`terminate_as_ctrl_c`'s block (it raises a KeyboardInterrupt: a run stopped by
    ``docker stop`` had said it was Ctrl-C's), ``Ctrl-C`` for another KeyboardInterrupt, or the
    exception's name (``SystemExit``)."""
    if isinstance(err, KeyboardInterrupt):
        return "SIGTERM" if _terminated else "Ctrl-C"
    return type(err).__name__
