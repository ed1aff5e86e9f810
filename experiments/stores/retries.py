"""Which of a study's trials count, and which are retries of lost ones.

A trial lost with its worker (no heartbeat), to a database outage or to Ctrl-C is failed and queued
again with its parameters by Optuna's retry callback, which records the trials it retries
(``failed_trial``/``retry_history`` system attributes). The retry counts towards ``--trials``, the
lost trial does not, and the retry trains with the lost trial's seed: the epochs the lost trial
would have trained (the pruner judges it against the trials finished by then, which may differ).
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from experiments.stores.liveness import process_gone
from experiments.stores.said import causes

try:  # Optuna >= 4.9 renamed the callback and its storage argument
    from optuna.storages import RetryHeartbeatStaleTrialCallback as RetryCallback

    RETRY_ARGUMENT = "heartbeat_stale_trial_callback"
except ImportError:  # pragma: no cover - older Optuna
    from optuna.storages import RetryFailedTrialCallback as RetryCallback

    RETRY_ARGUMENT = "failed_trial_callback"

MAX_RETRY = 3  # a trial that kills its worker every time is not retried forever
# a trial's user attribute while it runs: its worker process, "host:pid:boot id:pid namespace"
WORKER_ATTR = "worker_process"
# a trial's user attribute when the tracking store failed it: the store's error, one line
STORE_FAILED_ATTR = "tracking_store_failed"


def this_process() -> str:
    """This process as :data:`WORKER_ATTR` names it: the boot and the PID namespace say whether
    a PID read on this machine is the same process's (not another boot's, nor a container's)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            boot_id = boot.read().strip()
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:  # not Linux: only silence tells a dead worker
        return ""
    return f"{socket.gethostname()}:{os.getpid()}:{boot_id}:{namespace}"


def worker_of(trial: FrozenTrial) -> str:
    """``host:pid`` of the trial's worker, from :data:`WORKER_ATTR` ("?" when it has none)."""
    return ":".join(str(trial.user_attrs.get(WORKER_ATTR, "")).split(":")[:2]) or "?"


def dead_here(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The running trials whose worker was a process of this machine, boot and PID namespace
    that is gone (killed): found now, not after their heartbeat's grace of minutes."""
    here = this_process().split(":")
    dead = []
    for trial in trials:
        owner = str(trial.user_attrs.get(WORKER_ATTR, "")).split(":")
        if trial.state != TrialState.RUNNING or len(owner) != 4 or len(here) != 4:
            continue
        if owner[0] == here[0] and owner[2:] == here[2:] and process_gone(":".join(owner[:2])):
            dead.append(trial)
    return dead


def retry_history(trial: FrozenTrial) -> list[int]:
    """The lost trials that ``trial`` retries, first the original; what ``RetryCallback`` writes.

    Read here rather than with ``RetryCallback.retry_history``, which warns (experimental) on
    every call.
    """
    return list(trial.system_attrs.get("retry_history", []))


def retried_numbers(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of lost trials that were queued again: their retries count instead."""
    return {n for t in trials for n in retry_history(t)}


def retry_callback(max_retry: int | None = MAX_RETRY) -> RetryCallback:
    """Optuna's retry: a failed trial queued again with its parameters (``None``: however often
    it was)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryCallback(max_retry=max_retry)


def queue_again(study: optuna.Study, trial: FrozenTrial) -> None:
    """A failed trial queued again with its parameters, up to :data:`MAX_RETRY` times, as
    Optuna's retry of a lost trial does; said in one line either way."""
    if len(retry_history(trial)) < MAX_RETRY:
        retry_callback()(study, trial)
        print(f"trial {trial.number} queued again", flush=True)
    else:  # it counts as one failed trial
        tried = [*retry_history(trial), trial.number]
        print(
            f"trial {trial.number} is not queued again: its parameters were tried "
            f"{len(tried)} times (trials {', '.join(map(str, tried))}); they count as one "
            "failed trial",
            flush=True,
        )


def stale_trial_callback(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna's callback for a trial whose worker stopped beating (failed by any worker's look):
    it is said, and queued again."""
    owner = worker_of(trial)  # none recorded: stopped in Optuna's ask, or not told (review)
    print(
        f"trial {trial.number}'s worker {owner} stopped beating (killed, frozen or cut off)"
        if owner != "?"
        else f"trial {trial.number} stopped beating, its worker not recorded (killed, frozen or "
        "cut off, or stopped in Optuna's ask)",
        flush=True,
    )
    queue_again(study, trial)


def retry_line(trials: Sequence[FrozenTrial], number: int) -> str | None:
    """What is said before trial ``number``'s line where it retries a lost trial: the same
    parameters and seed, or, of one lost in Optuna's ``ask`` before it drew any (a database gone
    then: neither its parameters nor a queued baseline's), that it takes its place (it had said
    "same parameters" of a trial with none: probe X). None for a trial of its own."""
    lost = retry_history(trials[number])
    if not lost:
        return None
    drawn = [n for n in lost if trials[n].params or "fixed_params" in trials[n].system_attrs]
    if lost[-1] not in drawn:
        return (
            f"trial {number} takes the place of trial {lost[-1]}, lost before its parameters "
            "were drawn"
        )
    # the first that had them: one lost in ask before it had none (review)
    first = f" (first tried as trial {drawn[0]})" if drawn[0] != lost[-1] else ""
    # "lost" read as a dead worker where Ctrl-C had stopped it (probe)
    return (
        f"trial {number} retries trial {lost[-1]}, which did not finish: same parameters, same "
        f"seed{first}"
    )


def finished_count(trials: Sequence[FrozenTrial]) -> int:
    """Trials that count towards ``--trials``: complete, pruned or failed, and not retried.

    A trial that failed on its own (a diverged training) counts; one lost with its worker
    and queued again does not, its retry does; nor does one the tracking store failed
    (:data:`STORE_FAILED_ATTR`) that its worker is about to queue again (Optuna fails it before
    the worker's callback queues it: another worker looking between the two counted it finished,
    and ended: review). Where that worker dies between the two, the trial is never counted and
    the study runs one trial more than ``--trials``.
    """
    retried = retried_numbers(trials)
    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sum(t.state in done and t.number not in retried and not _to_be_queued(t) for t in trials)


def _to_be_queued(trial: FrozenTrial) -> bool:
    """A trial the tracking store failed, with retries left (:func:`queue_again` queues it)."""
    return (
        trial.state == TrialState.FAIL
        and STORE_FAILED_ATTR in trial.user_attrs
        and len(retry_history(trial)) < MAX_RETRY
    )


def running_count(trials: Sequence[FrozenTrial]) -> int:
    return sum(t.state == TrialState.RUNNING for t in trials)


def taken_over(err: BaseException | None) -> bool:
    """Whether ``err`` says this worker's trial was finished before it told its result: another
    worker found it lost (silent for longer than that worker's grace) and queued it again."""
    return any(
        isinstance(cause, optuna.exceptions.UpdateFinishedTrialError)
        # Optuna's tell of a trial already failed
        or (isinstance(cause, ValueError) and str(cause).startswith("Cannot tell a "))
        for cause in causes(err)
    )


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail the study's trials whose worker stopped beating (Optuna's check, without its
    experimental warning); the retry callback queues them again."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
