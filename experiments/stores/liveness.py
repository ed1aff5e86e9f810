"""Which workers live: their parent runs say when they were last seen, and the runs a lost worker
left RUNNING are closed by the next worker that looks, with the reason as their error tag.

A worker found lost may only have been frozen or cut off: when it comes back, its parent run is
opened again (:func:`come_back`), so that a run never ends FINISHED with a loss in its error tag.
"""

from __future__ import annotations

import os
import socket
import time

from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient

from experiments.config import GRACE_FACTOR, HEARTBEAT_SECONDS
from experiments.stores.tracking import (
    ERROR_TAG,
    PARENT_TAG,
    ROLE_TAG,
    STUDY_TAG,
    TRIAL_TAG,
    WORKER_TAG,
    trial_filter,
)

RUN_NAME = "mlflow.runName"  # the tag MLflow's stores keep a run's name in, and set it by
LOST_SUFFIX = " (lost)"  # a lost trial's run name: a retry's run, if any, holds its figures


def close_lost_runs(
    experiment_id: str, study_name: str, lost: dict[int, str], own: str | None = None
) -> list[str]:
    """End as FAILED the RUNNING runs of trials in ``lost`` (number: reason), and their parents
    but ``own`` (the caller's parent run: its worker lives).

    A worker killed in a trial leaves its trial run and its parent run RUNNING; once Optuna has
    failed the trial (no heartbeat), they are closed with the reason as their error tag, and the
    trial run's name ends in ``(lost)``: killed after it logged its figures, it was a second row
    of its retry's figures in the view sorted by dev ACER, unmarked (probe CC). Returns the ids
    of the runs closed.
    """
    client = MlflowClient()
    running = client.search_runs(
        [experiment_id], trial_filter(study_name) + " and attributes.status = 'RUNNING'"
    )
    closed = []
    for found in running:
        reason = lost.get(int(found.data.tags.get(TRIAL_TAG, -1)))
        if reason is None:  # a trial still running in a live worker
            continue
        run_ids = [found.info.run_id]
        parent = found.data.tags.get(PARENT_TAG)
        if parent and parent != own and client.get_run(parent).info.status == "RUNNING":
            run_ids.append(parent)
        name = found.info.run_name or ""
        lost = [] if name.endswith(LOST_SUFFIX) else [RunTag(RUN_NAME, f"{name}{LOST_SUFFIX}")]
        for run_id in run_ids:  # the trial run's name with its error, before either is closed
            tags = [RunTag(ERROR_TAG, reason), *(lost if run_id == found.info.run_id else [])]
            client.log_batch(run_id, tags=tags)
            client.set_terminated(run_id, "FAILED")
            closed.append(run_id)
    return closed


LAST_SEEN_TAG = "vggface_heads.last_seen"  # on a parent run: when its worker last said it lives


def seen(run_id: str) -> None:
    """Say, on a worker's parent run, that the worker is alive now (epoch seconds)."""
    MlflowClient().set_tag(run_id, LAST_SEEN_TAG, f"{time.time():.0f}")


def close_dead_parents(
    experiment_id: str, study_name: str, own: str | None = None
) -> dict[str, str]:
    """End the RUNNING parent runs of workers that died between trials, as FAILED with the
    reason in their error tag: a worker on this machine whose process is gone, or any worker not
    seen for :data:`~experiments.config.GRACE_FACTOR` of its heartbeats (its ``last_seen`` tag,
    else its start) that has no trial running. ``own`` (the caller's parent run) is never
    closed. Returns the runs closed: id, reason.

    One search for the parents, then, per parent that looks dead, a search for its latest trial
    (running, or ended within the grace: not dead) and a read of the parent as it is now (its
    worker may have said it lives, or opened it again, since the search), so a study of W live
    workers costs one search here, not W (bench/scale.py: W searches per call made the tracking
    server the first limit of a study from 16 workers)."""
    client = MlflowClient()
    study = study_name.replace("'", "\\'")
    where = f"tags.`{STUDY_TAG}` = '{study}' and tags.`{ROLE_TAG}` = 'study'"
    where += " and attributes.status = 'RUNNING'"
    closed = {}
    for parent in client.search_runs([experiment_id], where, max_results=1000):
        run_id = parent.info.run_id
        if run_id == own:
            continue
        worker = parent.data.tags.get(WORKER_TAG, "")
        last = float(parent.data.tags.get(LAST_SEEN_TAG, parent.info.start_time / 1000))
        silent = time.time() - last
        heartbeat = float(parent.data.params.get("heartbeat", HEARTBEAT_SECONDS))
        silent_after = GRACE_FACTOR * heartbeat
        gone = process_gone(worker)
        if gone:
            reason = (
                f"worker {worker} ended between trials, its run left open (its process is gone)"
            )
        elif silent > silent_after:
            reason = f"worker {worker} silent for {silent:.0f}s between trials: lost"
        else:
            continue
        if _busy(client, experiment_id, run_id, 0 if gone else silent_after):
            continue  # in a (long) trial, or one just ended: it says it lives in a moment
        again = client.get_run(run_id)  # as it is now: its worker may have said it lives since
        if again.info.status != "RUNNING" or again.data.tags.get(LAST_SEEN_TAG) != (
            parent.data.tags.get(LAST_SEEN_TAG)
        ):
            continue
        client.set_tag(run_id, ERROR_TAG, reason)
        client.set_terminated(run_id, "FAILED")
        closed[run_id] = reason
    return closed


def come_back(run_id: str) -> str | None:
    """Open again a live worker's parent run that another worker closed as lost (it was frozen or
    cut off longer than its heartbeat's grace): RUNNING, its error tag deleted, so that it ends as
    what happens from now on. Returns the reason it had been closed with; None if it was open."""
    client = MlflowClient()
    run = client.get_run(run_id)
    if run.info.status == "RUNNING":
        return None
    reason = run.data.tags.get(ERROR_TAG, "closed")
    seen(run_id)  # first: open again with an old last_seen, it would be found lost again
    client.update_run(run_id, status="RUNNING")
    if ERROR_TAG in run.data.tags:
        client.delete_tag(run_id, ERROR_TAG)
    return reason


def _busy(client: MlflowClient, experiment_id: str, parent: str, within: float) -> bool:
    """Whether the parent's latest trial run is RUNNING, or ended less than ``within`` seconds
    ago: a worker says it lives after its trial's run ends, so a long trial's end is no silence."""
    where = f"tags.`{PARENT_TAG}` = '{parent}'"
    latest = client.search_runs(
        [experiment_id], where, order_by=["attributes.start_time DESC"], max_results=1
    )
    if not latest:
        return False
    run = latest[0].info
    return run.status == "RUNNING" or not run.end_time or run.end_time / 1000 > time.time() - within


def process_gone(worker: str) -> bool:
    """Whether ``host:pid`` names a process of this machine that no longer exists."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's worker: only silence tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's live process
        return False
    return False
