"""The study's RDB storage as the workers open it: heartbeats that outlive a database restart,
finished trials read from a cache, and which errors are the database's.
"""

from __future__ import annotations

import copy
import logging
import math
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState

from experiments.stores.said import causes, first_line

FINISHED_FRESH_SECONDS = 5.0  # how old the finished trials the pruner and TPE read may be
log = logging.getLogger("sweep")

StorageErrors = (optuna.exceptions.StorageInternalError, sqlalchemy.exc.OperationalError)


def database_error(err: BaseException | None) -> BaseException | None:
    """The database's own error behind ``err`` (the driver's, else Optuna's), if there is one.

    Optuna's own clean-up after a failed ``tell`` can fail too (optuna 5.0: an UnboundLocalError
    in ``_run_trial``); the exception chain says why.
    """
    found = None
    for cause in causes(err):
        if isinstance(cause, StorageErrors):
            found = cause  # the deepest is the driver's: "connection refused", ...
    return found


# what PostgreSQL (and MySQL) say when every connection slot is taken: not an outage to wait
# out (a role's or database's own limit: LIMITED, checked first)
FULL = ("too many clients", "remaining connection slots are reserved", "too many connections")
LIMITED = re.compile(r"too many connections for (role|database) \"([^\"]+)\"")  # its own limit


def full(err: BaseException) -> str:
    """The fix, as a clause to add to a line saying ``err``, when the database refused the
    connection because its connections are all taken (it read as the database down: probe):
    the server's ``max_connections``, or a role's or database's own ``CONNECTION LIMIT``;
    else ''."""
    said = str(err)
    if limited := LIMITED.search(said):
        kind, name = limited.groups()
        return (
            f"; the {kind} {name!r} has all its connections: raise its limit (ALTER "
            f'{kind.upper()} "{name}" CONNECTION LIMIT ...), or run fewer workers'
        )
    if not any(words in said.lower() for words in FULL):
        return ""
    return (
        "; its connections are all taken: raise max_connections in postgresql.conf, or run "
        "fewer workers (README, Sizing)"
    )


def back(outage: float | None) -> None:
    """After a call to the study's database answered: says it is back where it had not answered
    (``outage``: since when; None: it had), and returns None, the outage over
    (``outage = back(outage)``). Said at the first answer, not at the next try: that had ended
    the outage before the database answered, so a worker waited for it for ever (probe)."""
    if outage is not None:
        print(f"database back {time.monotonic() - outage:.0f}s later", flush=True)
    return None


def say_outage(err: BaseException, lost: int | None, seconds: float) -> None:
    """The line of a worker whose call to the study's database failed (``err``), found at its
    trial's reports and end, or by its heartbeat: the trial ``lost`` with it, if any."""
    what = f"trial {lost} is lost and will be queued again" if lost is not None else "no trial"
    print(
        f"database unreachable at this worker's next call ({first_line(err)}{full(err)}): "
        f"{what}; waiting for it up to {seconds:.0f}s",
        file=sys.stderr,
        flush=True,
    )


class StorageUnavailable(RuntimeError):
    """The study's database did not answer for ``workers.RECONNECT_SECONDS``."""


class SteadyHeartbeatStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage whose trial heartbeats outlive a database restart.

    Optuna records a trial's heartbeat from a thread that ends at the first error (optuna 5.0:
    the exception's traceback on the console, no heartbeat afterwards): a database restart in
    the middle of a long trial stopped it, and the other workers would then fail the trial, still
    running, as lost. Here a heartbeat that cannot be recorded is one logged line; the next one
    is tried a heartbeat later.
    """

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except StorageErrors as err:
            cause = database_error(err) or err
            log.warning("heartbeat not recorded, database unreachable: %s", first_line(cause))


class FinishedTrialsCache(optuna.storages._CachedStorage):
    """Optuna's cache of an RDB study (what ``create_study`` wraps an ``RDBStorage`` in), reading
    the database less often for finished trials.

    Optuna's cache reads every unfinished trial again, with its parameters, attributes and
    intermediate values (about ten queries, rows in proportion to the workers), on every read of
    the trials. The pruner reads the complete trials every epoch and TPE the finished ones, and
    a finished trial never changes: a read that asks only for finished states is answered from
    the cache while its last read is younger than :data:`FINISHED_FRESH_SECONDS` (a trial that
    finished since is seen a few seconds later). Every other read (the trial budget, the queue
    of waiting trials, the progress line) goes to the database and refreshes the cache; a
    worker reads it so at the start of each trial. ``bench/scale.py``: 20-30 reads a trial
    become 5-8.
    """

    def __init__(self, backend: optuna.storages.RDBStorage) -> None:
        super().__init__(backend)
        self._read_at: dict[int, float] = {}  # study id: when its trials were last read
        # the id of the trial this process's last ``ask`` made RUNNING: a database that goes in
        # the rest of ``ask`` leaves it RUNNING with no worker, waited on for ever (review); the
        # worker queues it again once the database answers
        self.asked: int | None = None

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        trial_id = super().create_new_trial(study_id, template_trial)
        if template_trial is None or template_trial.state == TrialState.RUNNING:  # not enqueued
            self._taken(trial_id)
        return trial_id

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        taken = super().set_trial_state_values(trial_id, state, values)
        if taken and state == TrialState.RUNNING:  # a queued trial taken: not where it failed,
            self._taken(trial_id)  # which another worker may have taken since
        return taken

    def _taken(self, trial_id: int) -> None:
        """A trial this process's ``ask`` made RUNNING: remembered, and its first heartbeat
        recorded at once. Optuna records one from the trial's thread, which starts after
        ``ask``: a worker killed, interrupted or stopped by an outage longer than its wait in
        between left a trial that no worker would find stale (none without a heartbeat is)."""
        self.asked = trial_id
        if self._backend.heartbeat_interval is not None:
            self._backend.record_heartbeat(trial_id)  # SteadyHeartbeatStorage: a line if it fails

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Any = None
    ) -> list[FrozenTrial]:
        finished = isinstance(states, tuple | list | set | frozenset) and all(
            TrialState(s).is_finished() for s in states
        )
        age = time.monotonic() - self._read_at.get(study_id, -math.inf)
        if finished and age < FINISHED_FRESH_SECONDS:
            with self._lock:
                cached = [t for t in self._studies[study_id].trials.values() if t.state in states]
            cached.sort(key=lambda t: t.number)
            return copy.deepcopy(cached) if deepcopy else cached
        read_at = time.monotonic()
        trials = super().get_all_trials(study_id, deepcopy=deepcopy, states=states)
        self._read_at[study_id] = read_at
        return trials
