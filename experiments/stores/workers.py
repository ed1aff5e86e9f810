"""Many workers on one study: create it once, share its trial budget, survive dead workers.

Any number of ``experiments/sweep.py`` processes, on any number of machines, join one Optuna
study in one RDB storage (PostgreSQL for many machines) and log to one MLflow tracking server.
Only Optuna and MLflow are used; this module adds what they leave to the caller:

* The schema, the study and its enqueued baselines are created by one worker at a time, under
  :class:`StorageLock` (a PostgreSQL advisory lock; ``flock`` for a SQLite file). Optuna's table
  creation races otherwise (optuna issue 1092) and concurrent ``enqueue_trial`` can queue one
  trial twice (optuna issue 4621).
* ``--trials N`` is the study's total: a worker reserves a trial (Optuna's ``ask``, inside
  ``study.optimize``) under the study's lock, only while fewer than N are finished or running.
  When N are but some still run, it waits (one may be lost and retried), reading the running
  trials without the lock, the budget under it once one ends.
* A worker killed in a trial stops its Optuna heartbeat; any other worker then fails the trial and
  Optuna's retry callback queues it again (``failed_trial``/``retry_history`` system attributes).
  A worker that starts or finishes a trial, at most once a heartbeat, and every worker as it
  stops, closes the dead trial's MLflow run, and its worker's parent run, as FAILED; a retry's
  run is tagged with the trial it retries. Once a heartbeat, not once a trial: a trial is lost
  only after :data:`~experiments.config.GRACE_FACTOR` silent heartbeats, and these searches
  cost the tracking server in proportion to the workers (``bench/scale.py``).
* A database that goes away (restart, network, every connection taken) costs the trial in
  flight (or the one its ``ask`` was taking), queued again once it answers (the worker waits
  up to :data:`RECONNECT_SECONDS`); so does a tracking store away past MLflow's own retries, up
  to :data:`MAX_RETRY` times (the worker then waits for it, two minutes at most).
* The pruner (every epoch) and TPE read the finished trials from a cache at most
  :data:`~experiments.stores.storage.FINISHED_FRESH_SECONDS` old (``FinishedTrialsCache``); the
  trial budget and the queue are always read from the database.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
import sqlalchemy
from mlflow.exceptions import MlflowException
from optuna.trial import FrozenTrial, TrialState

from core.interrupts import ctrl_c_noticed, first_ctrl_c_only
from experiments.config import GRACE_FACTOR, HEARTBEAT_SECONDS, WAIT_POLL_SECONDS
from experiments.stores import liveness, tracking, wal
from experiments.stores.disk import database_full
from experiments.stores.identity import check_heartbeat, check_identity, check_search_space
from experiments.stores.locks import StorageLock
from experiments.stores.retries import (
    RETRY_ARGUMENT,
    STORE_FAILED_ATTR,
    WORKER_ATTR,
    dead_here,
    fail_stale_trials,
    finished_count,
    queue_again,
    retried_numbers,
    retry_callback,
    retry_history,
    running_count,
    stale_trial_callback,
    taken_over,
    this_process,
    worker_of,
)
from experiments.stores.said import causes, first_line, hide_passwords, store_cause
from experiments.stores.storage import (
    FinishedTrialsCache,
    SteadyHeartbeatStorage,
    StorageErrors,
    StorageUnavailable,
    back,
    database_error,
    full,
    say_outage,
)

WORKERS_ATTR = "workers_joined"  # a study user attribute: how many worker invocations joined it
RECONNECT_SECONDS = 120.0  # how long a worker waits for its database before giving up
log = logging.getLogger("sweep")


def worker_name() -> str:
    """``host:pid``, tagged on the worker's parent run."""
    return f"{socket.gethostname()}:{os.getpid()}"


def open_study(
    name: str,
    url: str,
    *,
    directions: Sequence[str],
    pruner: optuna.pruners.BasePruner,
    seed: int = 0,
    baselines: Sequence[dict[str, Any]] = (),
    heartbeat: int | None = None,
    searched: dict[str, Sequence[str]] | None = None,
    identity: dict[str, Any] | None = None,
    target: int | None = None,
) -> tuple[optuna.Study, int]:
    """Create or load the study with heartbeats and retries; enqueue each baseline once.

    ``searched`` (categorical parameter: its choices) is checked against what the study's
    trials searched, and ``identity`` against what its figures depend on, before anything is
    enqueued (:func:`check_search_space`, :func:`check_identity`).

    Safe when many workers start at once on an empty database: the schema, the study and the
    queue are written by one worker at a time. The k-th worker to join (from 0) samples with a TPE
    sampler seeded ``seed + k`` (:func:`sampler_seed`), not the points of another; one that finds
    ``target`` trials finished is not counted, so a later extension samples the same trials
    however often it was rerun in between; ``heartbeat`` None beats at the study's, and one given
    is checked against the study's only where trials are left to run. Returns the study and k.
    """
    check_storage(url)  # before Optuna adds its tables
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            given = (baselines, heartbeat, searched or {}, identity or {}, target)
            return _open_study(name, url, directions, pruner, seed, *given)
    except ImportError as err:  # sqlalchemy re-raises a missing driver as ImportError
        shown = hide_passwords(url)
        raise ValueError(
            f"--storage {shown}: its database driver is not installed ({err.__cause__ or err}); "
            "for PostgreSQL: pip install -e '.[postgres]'"
        ) from err
    except RuntimeError as err:  # Optuna's schema check, on another program's tables too
        if "table schema" not in str(err):
            raise
        shown = hide_passwords(url)
        raise ValueError(
            f"--storage {shown}: Optuna cannot use its tables, another program's (MLflow's?) or "
            f"another Optuna version's: {first_line(err)}"
        ) from None
    except StorageErrors as err:
        for cause in causes(err):  # a file damaged inside: Optuna's words on its commit (probe)
            wal.check_damaged(cause, "--storage", url, "studies")
        shown = hide_passwords(url)
        cause = database_error(err) or err
        said = f"--storage {shown}: cannot open the study: {first_line(cause)}{full(cause)}"
        raise StorageUnavailable(said) from err
    except sqlalchemy.exc.DatabaseError as err:  # a SQLite file cut short or overwritten
        wal.check_damaged(err, "--storage", url, "studies")
        raise


def check_storage(url: str) -> None:
    """A ValueError (one line) when ``url`` names a database Optuna must not open: an MLflow
    tracking store, a file that is not SQLite, or one in a folder that is not there. Reads
    only."""
    wal.check_folder(url, "--storage")
    try:  # a URL, before anything long runs (it was said after the extraction: probe FF)
        sqlalchemy.engine.make_url(url).get_dialect()
    except (sqlalchemy.exc.NoSuchModuleError, sqlalchemy.exc.ArgumentError, ValueError) as err:
        raise ValueError(
            f"--storage {hide_passwords(url)}: not a database URL SQLAlchemy knows "
            f"({first_line(err)}); e.g. sqlite:///optuna.db or postgresql://user@host/optuna"
        ) from None
    tables = wal.table_names(url, "--storage")
    if {"experiments", "runs"} <= tables:
        raise ValueError(
            f"--storage {url}: an MLflow tracking store; Optuna needs its own database"
        )
    wal.check_not_foreign(url, "--storage", tables)


def _open_study(
    name: str,
    url: str,
    directions: Sequence[str],
    pruner: optuna.pruners.BasePruner,
    seed: int,
    baselines: Sequence[dict[str, Any]],
    heartbeat: int | None,
    searched: dict[str, Sequence[str]],
    identity: dict[str, Any],
    target: int | None,
) -> tuple[optuna.Study, int]:
    with StorageLock(url, "schema"):
        backend = SteadyHeartbeatStorage(
            url,
            engine_kwargs={"pool_pre_ping": True},  # reconnect after a database restart
            heartbeat_interval=(beat := heartbeat or HEARTBEAT_SECONDS),  # until the study's
            grace_period=GRACE_FACTOR * beat,
            **{RETRY_ARGUMENT: stale_trial_callback},
        )
        study = optuna.create_study(
            study_name=name,
            storage=FinishedTrialsCache(backend),
            pruner=pruner,
            directions=list(directions),
            load_if_exists=True,
        )
        wal.write_ahead_log(url)  # once the schema exists; later opens find it set
        check_search_space(study, searched)  # before a trial of another space is enqueued
        check_identity(study, identity, directions, worker_name())
        done = target is not None and finished_count(study.get_trials(deepcopy=False)) >= target
        beat = check_heartbeat(study, None if done else heartbeat)  # finished: none to beat for
        backend.heartbeat_interval, backend.grace_period = beat, GRACE_FACTOR * beat
        for params in baselines:
            study.enqueue_trial(params, skip_if_exists=True)
        joined = int(study.user_attrs.get(WORKERS_ATTR, 0))
        if not done:
            study.set_user_attr(WORKERS_ATTR, joined + 1)
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed(seed, joined))
    return study, joined


def sampler_seed(seed: int, joined: int) -> int:
    """The TPE seed of the ``joined``-th worker of a study seeded ``seed``: seed + k, wrapped
    into the 0..2**32-1 that NumPy's generators take (``--seed 4294967295``'s second worker: 0)."""
    return (seed + joined) % 2**32


class Worker:
    """One worker's share of the study: reserve a trial, run it, keep MLflow truthful."""

    def __init__(
        self,
        study: optuna.Study,
        url: str,
        experiment_id: str,
        heartbeat: int = HEARTBEAT_SECONDS,
        parent_run_id: str | None = None,
    ) -> None:
        self.study, self.experiment_id, self.heartbeat = study, experiment_id, heartbeat
        self.parent_run_id = parent_run_id  # this worker's parent run: it says it lives there
        self.lock = StorageLock(url, f"study:{study.study_name}")
        self.ran = 0  # trials this worker started
        self._current: int | None = None  # the trial number in flight
        self._checked: float | None = None  # when close_lost_runs last looked (monotonic)
        self._store_lost: int | None = None  # our trial failed because MLflow did not answer
        self._said = time.time()  # when it last said it lives: the wall clock others judge by

    def optimize(
        self,
        objective: Callable[[optuna.Trial], Any],
        trials: int,
        *,
        timeout: float | None = None,
        catch: tuple[type[Exception], ...] = (),
        on_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    ) -> int:
        """Run trials until the study has ``trials`` finished ones (or ``timeout`` s passed).

        ``on_trial(study, trial)`` is called after each trial this worker ran. Returns how many
        trials this worker started. Before it returns, the runs of lost trials and dead workers
        are closed whenever this worker last looked: none is left RUNNING by the heartbeat's
        pacing of :meth:`close_lost_runs`.
        """
        with ctrl_c_noticed() as interrupted, first_ctrl_c_only():  # core.interrupts says why
            ran = self._optimize(objective, trials, timeout, catch, on_trial, interrupted)
        self.close_lost_runs(force=True)
        return ran

    def _optimize(
        self,
        objective: Callable[[optuna.Trial], Any],
        trials: int,
        timeout: float | None,
        catch: tuple[type[Exception], ...],
        on_trial: Callable[[optuna.Study, FrozenTrial], None] | None,
        interrupted: Callable[[], None],
    ) -> int:
        callbacks = [self._after_trial] + ([on_trial] if on_trial is not None else [])
        deadline = None if timeout is None else time.monotonic() + timeout
        outage: float | None = None  # when the database stopped answering
        lost: int | None = None  # our trial in flight when it did
        asked: int | None = None  # the id of a trial our ask made RUNNING as it did
        waiting_said = False
        waited_on: set[int] | None = None  # the running trials a locked look found the budget in
        said_alive = -math.inf  # when this worker, waiting, last said it lives (under the lock)
        while deadline is None or time.monotonic() < deadline:
            interrupted()
            try:
                if asked is not None:  # its number, once the database answers
                    lost, asked = self.study._storage.get_trial_number_from_id(asked), None
                if lost is not None:  # under the lock: failed, not yet queued, it read as done
                    self.lock.acquire()  # to another worker's look, which then ended (probe)
                    self._requeue(lost)
                    self.lock.release()
                    lost = None
                if waited_on is not None and time.monotonic() - said_alive < self.heartbeat:
                    # Waiting: a look without the lock at the running trials; the budget is read
                    # under the lock again once one of them ends (or a heartbeat passed).
                    running = self._running()
                    outage = back(outage)
                    if running == waited_on:
                        time.sleep(min(self.heartbeat, WAIT_POLL_SECONDS))
                        continue
                all_trials = self._look()
                outage = back(outage)
                finished = finished_count(all_trials)
                if finished >= trials:
                    return self.ran
                if finished + running_count(all_trials) >= trials:
                    self.lock.release()
                    if not waiting_said:
                        print(
                            f"waiting: {finished} of {trials} trials finished, the others are "
                            "running in other workers (a lost one is retried here)",
                            flush=True,
                        )
                        waiting_said = True
                    if time.monotonic() - said_alive >= self.heartbeat:
                        self._seen()
                        said_alive = time.monotonic()
                    waited_on = {t.number for t in all_trials if t.state == TrialState.RUNNING}
                    time.sleep(min(self.heartbeat, WAIT_POLL_SECONDS))
                    continue
                waited_on = None
                self.study.optimize(
                    self._reserved(objective),
                    n_trials=1,
                    catch=catch,
                    callbacks=callbacks,
                )
            except KeyboardInterrupt:
                if self._current is not None:
                    self._queue_interrupted(self._current)
                raise
            except Exception as err:
                if self._current is not None and taken_over(err):
                    self._dropped(self._current)
                    continue
                cause = database_error(err)
                if cause is None:
                    raise
                if (stop := database_full(cause, self._current)) is not None:  # not an outage
                    raise stop from err
                lost = self._current if self._current is not None else lost
                if self.study._storage.asked is not None:  # taken by our ask, as the database
                    asked = self.study._storage.asked  # went (its id, kept till it answers)
                if outage is None:
                    outage = time.monotonic()
                    say_outage(cause, lost, RECONNECT_SECONDS)
                elif time.monotonic() - outage > RECONNECT_SECONDS:
                    raise StorageUnavailable(
                        f"the study's database did not answer for {RECONNECT_SECONDS:.0f}s "
                        f"({first_line(cause)}{full(cause)}): this worker stops; finished "
                        "trials are kept, start it again to go on"
                    ) from err
                time.sleep(min(5.0, self.heartbeat))
            finally:
                self.lock.release()
                self._current = self.study._storage.asked = None
        return self.ran

    def _look(self) -> list[FrozenTrial]:
        """The study lock taken (the caller releases it), stale trials failed and those of
        workers killed on this machine queued again: all the trials."""
        self.lock.acquire()
        fail_stale_trials(self.study)
        for trial in dead_here(self.study.get_trials(deepcopy=False)):
            owner = worker_of(trial)
            print(f"trial {trial.number}'s worker {owner} is gone (its process ended)", flush=True)
            self._requeue(trial.number)
        return self.study.get_trials(deepcopy=False)

    def _running(self) -> set[int]:
        """The study's running trials, read without the lock."""
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        return {t.number for t in running}

    def _reserved(self, objective: Callable[[optuna.Trial], Any]) -> Callable[[optuna.Trial], Any]:
        def run(trial: optuna.Trial) -> Any:
            # ``ask`` has committed this RUNNING trial: the budget is ours, let the others ask,
            # once it says whose it is (a retry carries its lost trial's worker until then)
            self._current = trial.number  # an outage at the next write: this trial is lost
            trial.set_user_attr(WORKER_ATTR, this_process())
            self.lock.release()
            self.ran += 1
            self.close_lost_runs()
            try:
                return objective(trial)
            except MlflowException as err:  # the tracking store's failure, not the configuration's
                self._store_lost = trial.number
                with contextlib.suppress(Exception):  # said on its run once the store is back
                    trial.set_user_attr(STORE_FAILED_ATTR, store_cause(err, 200))
                raise

        return run

    def _dropped(self, number: int) -> None:
        """Our trial, found lost by another worker and queued again: its result is dropped, its
        run closed as FAILED saying so, and this worker goes on."""
        reason = (
            f"trial {number} was found lost by another worker (no heartbeat from this one for its "
            f"{GRACE_FACTOR} heartbeats) and queued again; this worker drops its result"
        )
        print(reason, file=sys.stderr, flush=True)
        with contextlib.suppress(Exception):  # housekeeping: never the reason a worker stops
            run = {tracking.ERROR_TAG: reason}
            tracking.tag_trial_run(self.experiment_id, self.study.study_name, number, run, "FAILED")
        self._seen(lost=True)  # found lost: its parent run may have been closed as well

    def _requeue(self, number: int) -> None:
        """Fail a lost trial (ours, to a database outage; a worker's killed on this machine) and
        queue it again, as Optuna's retry does."""
        trial = self.study.get_trials(deepcopy=False)[number]
        if trial.state == TrialState.RUNNING:
            with contextlib.suppress(ValueError):  # another worker failed it first
                self.study.tell(number, state=TrialState.FAIL)
        trials = self.study.get_trials(deepcopy=False)
        if trials[number].state == TrialState.FAIL and number not in retried_numbers(trials):
            queue_again(self.study, trials[number])

    def _queue_interrupted(self, number: int) -> None:
        """Our trial stopped by Ctrl-C (Optuna failed it) queued again with its parameters, however
        often it was: it is not the configuration's failure, so it must not count towards
        ``--trials``, and an interrupted write-up baseline must still run."""
        trials = self.study.get_trials(deepcopy=False)
        if trials[number].state == TrialState.FAIL and number not in retried_numbers(trials):
            retry_callback(max_retry=None)(self.study, trials[number])

    def _after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Queue again a trial the tracking store failed (up to :data:`MAX_RETRY` times, as a
        lost trial); tag a retry's MLflow run with the trial it retries; close the runs of lost
        trials."""
        if self._store_lost == trial.number and trial.state == TrialState.FAIL:
            self._store_lost = None
            queue_again(self.study, trial)
        history = retry_history(trial)
        if history:
            tags = {
                tracking.RETRY_TAG: str(history[0]),
                tracking.RETRY_HISTORY_TAG: ",".join(map(str, history)),
            }
            try:
                tracking.tag_trial_run(self.experiment_id, study.study_name, trial.number, tags)
            except Exception as err:  # housekeeping: never the reason a worker stops
                log.warning("could not tag trial %d as a retry: %s", trial.number, err)
        self.close_lost_runs()

    def _seen(self, lost: bool = False) -> None:
        """Say on the parent run that this worker lives. After a silence long enough to be found
        lost (frozen, cut off, or a long trial), after a trial taken over, and as it stops, it
        first opens its parent run again if another worker closed it as lost."""
        if self.parent_run_id is None:
            return
        silent = time.time() - self._said  # a suspend counts, as it does for the others
        try:
            if lost or silent > (GRACE_FACTOR - 1) * self.heartbeat:
                reason = liveness.come_back(self.parent_run_id)
                if reason is not None:
                    print(
                        f"this worker was found lost after {silent:.0f}s without a word "
                        f"({reason}); its parent run is open again",
                        file=sys.stderr,
                        flush=True,
                    )
            liveness.seen(self.parent_run_id)
            self._said = time.time()
        except Exception as err:  # housekeeping: never the reason a worker stops
            log.warning("could not say this worker lives: %s", err)

    def close_lost_runs(self, force: bool = False) -> None:
        """End as FAILED the RUNNING MLflow runs of trials Optuna has finished (lost workers),
        and the parent runs of workers that died between trials; say this worker lives.

        At most once a heartbeat unless ``force``: it costs the tracking server three searches
        whose answers grow with the workers, and nothing is found lost sooner than
        :data:`~experiments.config.GRACE_FACTOR` heartbeats after it went silent.
        """
        now = time.monotonic()
        if not force and self._checked is not None and now - self._checked < self.heartbeat:
            return
        self._checked = now
        self._seen(lost=force)
        try:
            closed = liveness.close_dead_parents(
                self.experiment_id, self.study.study_name, own=self.parent_run_id
            )
            for reason in closed.values():
                print(f"a parent run closed: {reason}", flush=True)
        except Exception as err:  # housekeeping: never the reason a trial fails
            log.warning("could not close the runs of dead workers: %s", err)
        try:
            trials = self.study.get_trials(deepcopy=False)
            retries = {retry_history(t)[-1]: t.number for t in trials if retry_history(t)}
            reasons = {}
            for t in trials:
                if t.state.is_finished():
                    again = f"; retried as trial {retries[t.number]}" if t.number in retries else ""
                    store = t.user_attrs.get(STORE_FAILED_ATTR)
                    lost = f"worker lost in trial {t.number} (its process gone, or no heartbeat)"
                    if store:  # its worker lived; its run could not be ended then
                        lost = f"the tracking store did not answer in trial {t.number} ({store})"
                    reasons[t.number] = lost + again
            name = self.study.study_name
            liveness.close_lost_runs(self.experiment_id, name, reasons, own=self.parent_run_id)
        except Exception as err:  # housekeeping: never the reason a trial fails
            log.warning("could not close the runs of lost trials: %s", err)
