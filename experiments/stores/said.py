"""A store's URL and error as one line says them: the URL's password hidden, the error's first
line. Every store module says them so (tracking, workers, storage)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

_PASSWORD = re.compile(r"(://[^/\s:@]+):[^@\s/]+@")
QUOTES = "'\" "  # around a cause's message, as urllib3's repr quotes it


def hide_passwords(text: str) -> str:
    """``text`` with the password of every URL in it shown as ``***`` (``user:***@host``), as
    a line may print or a run may log it: a store's URL carries its database's password."""
    return _PASSWORD.sub(r"\1:***@", text)


def causes(err: BaseException | None) -> Iterator[BaseException]:
    """``err`` and the exceptions it was raised from, outermost first, as a traceback shows them:
    its ``__cause__``, else its ``__context__`` unless it was raised ``from None`` (our one-line
    errors replace an OSError's words with their own so)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)


def first_line(err: BaseException, limit: int = 200) -> str:
    """An error's first line (its type's name when it says nothing), for one-line messages."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:limit]


def store_cause(err: BaseException, limit: int = 120) -> str:
    """Why a call to a tracking server failed, for a one-line message: urllib3's cause
    (``NewConnectionError: ... Connection refused``, an SSL error, a timeout), which MLflow's
    message gives after the URL and the retries, past a first line's cut (it showed in urllib3's
    retry lines alone, which a quiet console leaves out: review); else the first line."""
    text = str(err)
    found = re.search(r"\(Caused by (\w+)\((.*)\)\)", text, re.S)
    if not found:  # MLflow's own words and the URL first: the cause past a line's cut (review)
        return first_line(
            re.sub(r"^API request to \S+ failed with (\w+ )?exception ", "", text), limit
        )
    kind, said = found.groups()
    # the connection's repr first, "conn: message" or "conn, 'message'" (a connect timeout's)
    said = re.sub(r"^['\"]?(<[^>]*>|\w+\([^)]*\))(: |, ['\"])", "", said)
    return f"{kind}: {said.strip(QUOTES)}"[:limit]


def tracking_named(uri: str) -> str:
    """How the user named the tracking store ``uri``, for a line about it: ``--tracking-uri URI``,
    or ``MLFLOW_TRACKING_URI=URI`` when the command took it from that variable
    (:func:`tracking_set_by`; a store set there was blamed on a flag never given: probe)."""
    return f"{TRACKING_ENV}={uri}" if uri in _FROM_ENV else f"--tracking-uri {uri}"


def store_named(flag: str, url: str) -> str:
    """A store as a line names it: ``--storage URL``, or the tracking store as
    :func:`tracking_named` does (``MLFLOW_TRACKING_URI=URL`` where the command took it there)."""
    return tracking_named(url) if flag == "--tracking-uri" else f"{flag} {url}"


def tracking_set_by(flag: str | None) -> None:
    """Note, before MLflow is pointed anywhere (MLflow then sets the variable itself), whether
    the tracking store is the variable's: no ``--tracking-uri`` given, the variable set."""
    _FROM_ENV.clear()
    if not flag and os.environ.get(TRACKING_ENV):
        _FROM_ENV.add(os.environ[TRACKING_ENV])


TRACKING_ENV = "MLFLOW_TRACKING_URI"
_FROM_ENV: set[str] = set()  # the store this command took from the variable, if any
