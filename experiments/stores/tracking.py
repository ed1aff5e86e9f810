"""MLflow tracking: one experiment per study, a parent run per invocation, a child run per trial.

Run status tells the truth: a finished trial ends FINISHED, a pruned one KILLED, a failed one
FAILED with its error as a tag, and an interrupted sweep leaves no run RUNNING. A worker killed
outright cannot end its runs: the next worker closes them (:mod:`experiments.stores.liveness`).
Optuna's own MLflow callback is not used: it is deprecated and logs no parent run.

Many workers share one experiment, each with its own parent run (tagged with its host and
process): a run's status then says what happened to that worker, and no two processes ever end
the same run.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import re
import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import sqlalchemy
from mlflow.environment_variables import MLFLOW_ALLOW_FILE_STORE
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from core.interrupts import stopped_by
from core.words import counted
from experiments.config import safe_name
from experiments.stores import wal
from experiments.stores.disk import DiskFull
from experiments.stores.locks import StorageLock
from experiments.stores.reach import StoreUnreachable, absent_file, check_server, is_server
from experiments.stores.said import first_line, hide_passwords, tracking_named, tracking_set_by

log = logging.getLogger(__name__)

STUDY_TAG = "optuna.study_name"
TRIAL_TAG = "optuna.trial_number"
ROLE_TAG = "vggface_heads.role"  # "study" for parent runs, "trial" for child runs
ERROR_TAG = "error"
WORKER_TAG = "vggface_heads.worker"  # host:pid of the worker that owns a parent run
RETRY_TAG = "optuna.retry_of"  # on a retried trial's run: the number of the trial it retries
RETRY_HISTORY_TAG = "optuna.retry_history"  # every earlier attempt, first the original
PARENT_TAG = "mlflow.parentRunId"
CONTINUES_TAG = "vggface_heads.continues"  # on a parent run: the study's parent run before it
# on a trial run: "true" while it is its head family's best (chosen on dev, as the comparison)
FAMILY_BEST_TAG = "vggface_heads.family_best"
# on every run: a digest of what its study's figures depend on but the heads searched and the
# seed (experiments.commands.study_identity.comparable): the cross-domain table pools studies
CONTEXT_TAG = "vggface_heads.context"
HEAD_WEIGHTS = "head.weights.h5"  # a trial's head, weights only (no optimizer state)
TOP_WEIGHTS = "backbone_top.h5"  # a fine-tuned trial's backbone layers, weights only
# a weights artifact's SHA-256, tagged on its run when logged: a file damaged or replaced in the
# artifact store since is refused where it is read (predict, the registered models)
CHECKSUM_TAGS = {HEAD_WEIGHTS: "head_weights_sha256", TOP_WEIGHTS: "top_weights_sha256"}
SCORES_CSV = "scores.csv"  # a trial's dev and test scores, one row per clip and setting
SETTINGS_CSV = "settings.csv"  # with several folds or repeats: each setting's figures


def store_shown() -> str:
    """The tracking store in use as a line says it: its password hidden."""
    return hide_passwords(mlflow.get_tracking_uri())


def use_store(uri: str | None) -> str:
    """Point MLflow at ``uri`` (``--tracking-uri``), else at its own default store, once per
    command; returns the store's URI. MLflow writes its default SQLite URI with the working
    folder percent-encoded, then creates that encoded path as a folder (``my%20study/`` beside
    ``my study/``); the default is used with its path decoded instead. An Optuna database is
    refused (ValueError) before MLflow's migration would write its tables into it, and MLflow
    is not pointed at it."""
    tracking_set_by(uri)  # before MLflow sets MLFLOW_TRACKING_URI itself
    default = mlflow.get_tracking_uri()
    store = uri or default
    if re.fullmatch(r"[\w.-]+:\d+(/\S*)?", store):  # 127.0.0.1:5000: a server without its scheme
        raise ValueError(f"{tracking_named(store)}: no scheme; a tracking server is http://{store}")
    if not uri and store.startswith("sqlite:") and "%" in store:
        store = urllib.parse.unquote(store)
    parsed = urllib.parse.urlparse(store)
    if parsed.scheme in ("", "file") and not MLFLOW_ALLOW_FILE_STORE.get():
        path = Path(urllib.parse.unquote(parsed.path))
        if path.is_file():  # a database given as a path
            raise ValueError(
                f"{tracking_named(store)}: a path, which MLflow reads as a file store's folder; "
                f"a SQLite database is given as sqlite:///{path.resolve()}"
            )
        what = "a folder" if path.is_dir() else "nothing there; a path names a folder"
        raise ValueError(
            f"{tracking_named(store)}: {what} (MLflow's file store, which MLflow 3 opens only "
            "with MLFLOW_ALLOW_FILE_STORE=true); give a database, e.g. sqlite:///mlflow.db, the "
            "sweep's default in its folder"
        )
    # before MLflow's migration writes it
    tables = wal.table_names(store, "--tracking-uri")
    if {"studies", "trials"} <= tables:
        raise ValueError(f"{tracking_named(store)}: an Optuna study database; MLflow needs its own")
    wal.check_not_foreign(store, "--tracking-uri", tables)
    if uri or store != default:  # set even when equal: MLflow's default follows the cwd
        mlflow.set_tracking_uri(store)
    return mlflow.get_tracking_uri()


def use_experiment(study_name: str, complete: int = 0, fresh: bool = False) -> str:
    """Point MLflow at the study's experiment in the current tracking store (the command sets the
    store: ``--tracking-uri``, else MLflow's default).

    ``complete``: the study's complete trials. With some, the experiment must be there already:
    else they were tracked in another store, and going on would split the study's record (new
    trials here, the earlier ones there), so it is a ValueError, said before this store is
    written (a SQLite file not even created). ``fresh``: the study's database ran none of its
    trials; finished trial runs of it here are then a ValueError too (its database was lost, or
    is another's), since its trials would run again beside them under the same numbers.

    Create-or-get, safe when many workers start at once: the loser of the creation race gets
    the winner's experiment. It is tagged as model development, else MLflow 3's UI opens a GenAI
    overview.
    """
    tags = {"mlflow.experimentKind": "custom_model_development", STUDY_TAG: study_name}
    if complete and absent_file(mlflow.get_tracking_uri()):
        raise ValueError(_tracked_elsewhere(study_name, complete))
    open_store()
    client = MlflowClient()
    try:
        experiment = client.get_experiment_by_name(study_name)
    except sqlalchemy.exc.DatabaseError as err:  # a SQLite file cut short or overwritten
        wal.check_damaged(err, "--tracking-uri", mlflow.get_tracking_uri(), "runs")
        raise
    if experiment is None and complete:
        raise ValueError(_tracked_elsewhere(study_name, complete))
    if experiment is None:
        try:
            client.create_experiment(
                study_name, artifact_location=artifact_location(study_name), tags=tags
            )
        except MlflowException as err:  # another worker created it first
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        experiment = client.get_experiment_by_name(study_name)
    if fresh and _finished_runs(experiment.experiment_id, study_name):
        raise ValueError(
            f"study {study_name} has run no trial in its database, but the tracking store "
            f"{store_shown()} holds finished trial runs of it: they "
            "ran with another --storage (pass it), or the study's database was lost (choose "
            "another --study)"
        )
    if experiment.lifecycle_stage != "active":
        raise ValueError(
            f"MLflow experiment {study_name!r} is deleted: restore it (`mlflow experiments "
            f"restore --experiment-id {experiment.experiment_id}`) or choose another --study"
        )
    for key, value in tags.items():  # experiments made before these tags existed
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)
    wal.write_ahead_log(mlflow.get_tracking_uri())  # the store exists by now
    mlflow.set_experiment(experiment_id=experiment.experiment_id)
    return experiment.experiment_id


def _finished_runs(experiment_id: str, study_name: str) -> bool:
    """Whether the experiment holds a finished trial run of the study."""
    found = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"{trial_filter(study_name)} and attributes.status = 'FINISHED'",
        max_results=1,
        output_format="list",
    )
    return bool(found)


def _tracked_elsewhere(study_name: str, complete: int) -> str:
    return (
        f"study {study_name} has {counted(complete, 'complete trial')} in its database, but "
        f"the tracking store {store_shown()} holds no experiment of it: they "
        "were tracked in another store (pass the --tracking-uri they ran with), or choose another "
        "--study"
    )


def artifact_location(name: str) -> str | None:
    """Where a new experiment named ``name`` keeps its artifacts: beside a SQLite store that is
    not in the working folder (``<its folder>/mlruns/<name>``, characters other than letters,
    digits, ``_.-`` made ``_``), where MLflow would put them in the working folder's ``./mlruns``
    and split one study's record between folders; None (MLflow's own ``./mlruns/<experiment
    id>``) for a store in the working folder, or one that is not a SQLite file (a server decides
    for itself). Two names made alike share a folder harmlessly: each run has its own."""
    database = wal.sqlite_file(mlflow.get_tracking_uri())
    if database is None or database.startswith("file:"):  # SQLite's URI form: left to MLflow
        return None
    folder = Path(database).resolve().parent
    if folder == Path.cwd().resolve():
        return None
    readable = safe_name(name)
    return str(folder / "mlruns" / ("_" if set(readable) <= {"."} else readable))


def read_failed(err: BaseException) -> tuple[str, int] | None:
    """The line and exit status of a command that reads the tracking store and met ``err``: a
    damaged SQLite file (2; it had ended in MLflow's traceback where the sweep said it: probe),
    a store that answered, but not as MLflow does (3, with MLflow's own words); None for others."""
    try:
        wal.check_damaged(err, "--tracking-uri", mlflow.get_tracking_uri(), "runs")
    except ValueError as said:
        return str(said), 2
    if isinstance(err, MlflowException):
        return f"the tracking store {store_shown()} failed: {first_line(err, 500)}", 3
    return None


def open_store() -> None:
    """Create or migrate the tracking store's schema, one process at a time (MLflow's own
    migration races when sweeps start together on a fresh ``mlflow.db``: two processes each run
    it and leave it half-migrated), after repairing what such a race left behind. A store that
    still cannot be opened is a ValueError naming the fix."""
    uri = mlflow.get_tracking_uri()
    check_server(uri)
    with StorageLock(uri, "mlflow-schema"):
        try:
            wal.repair_interrupted_migration(uri)
        except sqlite3.DatabaseError as err:  # a SQLite file cut short or overwritten
            wal.check_damaged(err, "--tracking-uri", uri, "runs")
            raise
        try:
            MlflowClient().search_experiments(max_results=1)
        except (MlflowException, sqlalchemy.exc.SQLAlchemyError, RuntimeError) as err:
            first = first_line(err)
            cause = re.search(r"\(Caused by (.+)\)", str(err))  # the client's reason, at its end
            first = first_line(RuntimeError(cause.group(1))) if cause else first
            if is_server(uri):  # a server, not a schema to mend
                raise StoreUnreachable(
                    f"the tracking server {uri} did not answer as MLflow does ({first}): correct "
                    "--tracking-uri, or see its log (README, 'Many machines')"
                ) from None
            raise ValueError(
                f"the MLflow store {uri} cannot be opened ({first}): move it aside and rerun, or "
                f"upgrade it with `mlflow db upgrade {uri}`"
            ) from None


def open_existing_file() -> None:
    """The tracking store opened now where it is a SQLite file that exists: a damaged one is
    said before a sweep writes its study's database (a new study had been left there: probe)."""
    uri = mlflow.get_tracking_uri()
    if wal.sqlite_file(uri) and not absent_file(uri):
        open_store()


@contextlib.contextmanager
def run(name: str, role: str, tags: dict[str, Any], nested: bool = False) -> Iterator[Any]:
    """A run whose end status follows what happened inside it, whatever happened: FINISHED,
    KILLED when Optuna pruned it or Ctrl-C stopped it (a trial's run stopped by a full disk too:
    it runs again), FAILED with the error as a tag."""
    from optuna import TrialPruned  # here: reading runs (serving, compare) needs no Optuna

    active = mlflow.start_run(run_name=name, nested=nested, tags={ROLE_TAG: role, **tags})
    try:
        yield active
    except TrialPruned:
        _end("KILLED")
        raise
    except (KeyboardInterrupt, SystemExit) as err:
        if isinstance(err, DiskFull) and role == "trial":  # it runs again: the list counted it
            _end("KILLED", f"stopped: {err}")  # failed beside its rerun's complete one (probe)
        elif isinstance(err, DiskFull):  # the worker's run: its command ended in this error
            _end("FAILED", str(err))
        else:
            _end("KILLED", f"interrupted ({stopped_by(err)})")
        raise
    except BaseException as err:
        _end("FAILED", failure(err)[:5000])
        raise
    else:
        mlflow.end_run("FINISHED")


def failure(err: BaseException) -> str:
    """A failed run's error tag: the error's type and message, or the database's own error where
    one is behind it. Optuna's wrapper of a database that went away says "An exception is raised
    during the commit. This typically happens due to invalid data in the commit, e.g. exceeding
    max length", which is not why."""
    from experiments.stores.storage import database_error  # Optuna: only for a failure

    cause = database_error(err)
    if cause is None or cause is err:
        return f"{type(err).__name__}: {err}"
    return f"database error: {first_line(cause, 1000)} (raised as {type(err).__name__})"


def _end(status: str, error: str | None = None) -> None:
    """End the active run as ``status`` (with its ``error`` tag) on the way out of a failure: a
    store that does not answer then must not hide the failure itself (the run is closed later,
    as a lost one)."""
    try:
        if error is not None:
            mlflow.set_tag(ERROR_TAG, error)
        mlflow.end_run(status)
    except MlflowException as err:
        log.warning("could not end the run as %s: %s", status, first_line(err))
        with contextlib.suppress(Exception):
            mlflow.end_run(status)  # forget it locally at least: the next run is not nested in it


def tag_trial_run(
    experiment_id: str,
    study_name: str,
    number: int,
    tags: dict[str, str],
    status: str | None = None,
) -> None:
    """Set ``tags`` on the run of trial ``number`` of the study (and end it as ``status``)."""
    client = MlflowClient()
    for found in client.search_runs([experiment_id], trial_filter(study_name, number)):
        for key, value in tags.items():
            client.set_tag(found.info.run_id, key, value)
        if status is not None:
            client.set_terminated(found.info.run_id, status)


def trial_filter(study_name: str, number: int | None = None) -> str:
    where = f"tags.`{STUDY_TAG}` = '{study_name}' and tags.`{ROLE_TAG}` = 'trial'"
    return where if number is None else where + f" and tags.`{TRIAL_TAG}` = '{number}'"


def study_parents(experiment_id: str, study_name: str) -> list[str]:
    """Ids of the study's parent runs (one per sweep invocation that ran trials), newest first."""
    study = study_name.replace("'", "\\'")
    where = f"tags.`{STUDY_TAG}` = '{study}' and tags.`{ROLE_TAG}` = 'study'"
    found = MlflowClient().search_runs(
        [experiment_id], where, order_by=["attributes.start_time DESC"], max_results=1000
    )
    return [run.info.run_id for run in found]


def mark_family_bests(study_name: str, best: list[str]) -> None:
    """Tag the trial runs ``best`` (each head family's best) with :data:`FAMILY_BEST_TAG`, and
    untag those that no longer are: the runs view "Best of each head family" lists them, each
    with its own figures."""
    experiment_id = study_experiment(study_name)
    if experiment_id is None:
        return
    client = MlflowClient()
    where = trial_filter(study_name) + f" and tags.`{FAMILY_BEST_TAG}` = 'true'"
    marked = {run.info.run_id for run in client.search_runs([experiment_id], where)}
    for run_id in marked - set(best):
        client.delete_tag(run_id, FAMILY_BEST_TAG)
    for run_id in set(best) - marked:
        client.set_tag(run_id, FAMILY_BEST_TAG, "true")


def study_experiments() -> list[Any]:
    """Every experiment of the tracking store that holds a study (tagged with its name)."""
    return mlflow.search_experiments(filter_string=f"tags.`{STUDY_TAG}` LIKE '%'")


def study_experiment(study_name: str) -> str | None:
    """The id of the experiment that holds the study's runs, None when there is none."""
    name = study_name.replace("'", "\\'")
    found = mlflow.search_experiments(filter_string=f"tags.`{STUDY_TAG}` = '{name}'")
    return found[0].experiment_id if found else None


def study_runs(experiment_id: str, study_name: str) -> pd.DataFrame:
    """Every trial run of the study (all invocations), newest first, as MLflow's DataFrame;
    ``attrs["read_at"]``: the local time just before they were read (Optuna's clock)."""
    read_at = datetime.datetime.now()  # noqa: DTZ005 - Optuna dates its trials in local time
    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=trial_filter(study_name),
        output_format="pandas",
    )
    runs.attrs["read_at"] = read_at
    return runs


def has_artifact(run_id: str, name: str) -> bool:
    """Whether the run logged the artifact ``name`` (at the top of its artifacts)."""
    return name in {item.path for item in MlflowClient().list_artifacts(run_id)}


@contextlib.contextmanager
def quiet_artifacts() -> Iterator[None]:
    """No "Downloading artifacts" progress bar while artifacts are copied within the store."""
    variable = mlflow.environment_variables.MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name
    before = os.environ.get(variable)
    os.environ[variable] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = before


def fetch_artifact(run_id: str, artifact: str, folder: Path) -> str:
    """Fetch a run's artifact from the tracking store into ``folder`` (a copy from the local
    store or the server: nothing from the internet) without MLflow's progress bar."""
    with quiet_artifacts():
        return mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact, dst_path=str(folder)
        )


def move_command(artifact_uri: str) -> str:
    """The command that points this SQLite tracking store, moved, at a run's artifacts: its own
    database, and the folder the run's artifact URI was logged under, where MLflow's default
    layout (``FOLDER/mlruns/EXPERIMENT/RUN/artifacts``) tells it (it said ``--from OLD_FOLDER``,
    which the user had to find in the URI: probe)."""
    database = wal.sqlite_file(mlflow.get_tracking_uri()) or "mlflow.db"
    path = urllib.parse.urlparse(artifact_uri).path if "://" in artifact_uri else artifact_uri
    parts = Path(urllib.parse.unquote(path)).parts
    at = len(parts) - 1 - parts[::-1].index("mlruns") if "mlruns" in parts else 0
    old = str(Path(*parts[:at])) if at > 1 and parts[0] == "/" else "OLD_FOLDER"
    return f"python scripts/move_store.py {database} --from {old}"
