"""Run a sweep: one worker's share of a study, from the features to the closing comparison.

This is where the rooms meet: the features (:mod:`core.features`), the evaluation settings and
the objective (:mod:`experiments.trial`), the Optuna study and the MLflow runs
(:mod:`experiments.stores`), the comparison (:mod:`experiments.results`) and the registered
models (:mod:`experiments.serving`). Every option arrives resolved in a
:class:`~experiments.commands.sweep.SweepConfig`; what was resolved is recorded on every run
(the protocol and fold that ran, each precision under its own name, the face crop as values).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import mlflow
import optuna
import pandas as pd
from mlflow.exceptions import MlflowException

from core.features import FeatureOptions, FeatureSet
from core.words import counted
from experiments.commands import replay
from experiments.commands import study_identity as ids
from experiments.commands.features import load_features
from experiments.commands.quiet import console_logging, one_line_failures, quiet_backend, say_error
from experiments.commands.status import failure_status
from experiments.commands.sweep import SweepConfig
from experiments.config import KeepWeights
from experiments.results import console, cross_table, parent_run, tables
from experiments.stores import (
    dashboard,
    identity,
    liveness,
    locks,
    retries,
    runs_table,
    tracking,
    wal,
    workers,
)
from experiments.stores.said import first_line, hide_passwords
from experiments.stores.storage import StorageErrors
from experiments.trial import search
from experiments.trial.errors import TrainingDiverged
from experiments.trial.evaluation import (
    clips_read,
    prepare_settings,
    protocol_folds,
)

log = logging.getLogger("sweep")
REPORTED = (TrainingDiverged, MlflowException)  # said in one line: the trial fails, not the worker


@dataclass
class SweepResult:
    study: optuna.Study
    experiment_id: str
    parent_run_id: str
    comparison: pd.DataFrame
    features: FeatureSet


def run_sweep(
    config: SweepConfig,
    pruner: optuna.pruners.BasePruner | None = None,
    loaded: FeatureSet | None = None,
    summarised: set[FeatureOptions] | None = None,
    later: bool = False,
) -> SweepResult:
    """Run (or resume) the study as one of its workers; each trial it runs is a child run of
    this invocation's parent run. ``loaded``: the features of ``config.features``, if loaded;
    ``summarised``: the data whose summary this command printed (a group's earlier settings);
    ``later``: a group's later setting, whose new study is compared with its own setting's only."""
    summarised = set() if summarised is None else summarised
    check_stores(config)

    first_fold = protocol_folds(config.features)[0]  # later folds: their split counts in a line

    def load(options: FeatureOptions) -> FeatureSet:
        # a later fold, or a database another setting of this command summarised: its splits'
        # counts in a line (--protocol ocim had printed 16 summaries of 4 databases: probe W)
        brief = options.fold not in (None, first_fold) or options in summarised
        summarised.add(options)
        if loaded is not None and options == config.features:
            return loaded
        check = partial(ids.check_study, config, options)
        return load_features(options, config.verbose, check, brief=brief)

    settings = prepare_settings(config.features, config.evaluation, load=load)
    features = settings[0].features
    tested = settings[0].test_features
    if tested is not features and not tested.test_split_given:  # its summary showed a split
        name = settings[0].names[-1]  # a database's name, or "test data"
        name = "the test data" if name == "test data" else name
        print(
            f"tested: every clip of {name} ({len(tested.clips)}; it has no test split of its own)"
        )
    allowed = search.families(config.heads)
    study_name = config.study or ids.default_study_name(config, settings[0], allowed)
    directions = ["minimize", "minimize"] if config.multi_objective else ["minimize"]
    baselines = search.baselines(config.heads, config.fine_tune)
    searched = {"head": allowed}
    if len(config.fine_tune) > 1:
        searched["fine_tune"] = config.fine_tune
    study, joined = workers.open_study(
        study_name,
        config.storage,
        directions=directions,
        seed=config.seed,
        pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
        # the first --trials of them: a retry queued behind the others would never run
        baselines=baselines[: config.trials],
        heartbeat=config.heartbeat,
        searched=searched,
        identity=ids.study_identity(config, settings),
        target=config.trials,
    )
    beat = identity.study_heartbeat(study)  # the study's, where --heartbeat was not given
    trials = study.get_trials(deepcopy=False)
    states = [t.state.name for t in trials]
    fresh = set(states) <= {"WAITING"}  # a database that ran nothing: only queued baselines
    try:
        experiment_id = tracking.use_experiment(study_name, states.count("COMPLETE"), fresh)
    except ValueError:  # refused: a study this worker made is not left behind (probe)
        if fresh and joined == 0:
            optuna.delete_study(study_name=study_name, storage=config.storage)
        raise
    done = retries.finished_count(trials)
    running = retries.running_count(trials) - len(retries.dead_here(trials))  # live workers'
    starting = not done and joined > 0 and not identity.maker_gone(study, workers.worker_name())
    line = console.study_line(
        study_name, done, config.trials, joined, len(baselines), running, starting
    )
    if not (done or joined or config.study):  # a new default name: what made it new (of a
        # group's later setting, a study of its own setting: it differs from the one before, as
        # asked: probe W)
        closest = identity.closest_other(config.storage, study, same_setting=later)
        line = "\n".join(filter(None, [line, closest]))
    print(line, flush=True)
    context = ids.run_context(config, features, settings)
    parents = tracking.study_parents(experiment_id, study_name)
    if done >= config.trials:  # no new parent run: the comparison as it stands
        table = _settle_finished(
            config, study, experiment_id, standing_comparison(experiment_id, study_name)
        )
        return SweepResult(study, experiment_id, parents[0] if parents else "", table, features)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    worker = workers.worker_name()
    tags = {tracking.STUDY_TAG: study_name, tracking.WORKER_TAG: worker, **context}
    if parents:  # each invocation (worker) has its own parent run; it names the one before
        tags[tracking.CONTINUES_TAG] = parents[0]
        earlier = counted(len(parents), "parent run")
        print(
            f"the study has {earlier} already (one per worker or invocation); this worker opens "
            "its own"
        )
    quiet_backend(config.verbose)  # trials to run: Keras and its backend, without their noise
    from experiments.trial import memory
    from experiments.trial.objective import Objective

    with tracking.run(f"study {study_name} @ {started} ({worker})", "study", tags) as parent:
        mlflow.log_params(
            {
                "study": study_name,
                "trials": config.trials,
                "timeout": config.timeout,
                "storage": hide_passwords(config.storage),  # run readers: no password
                "heads": config.heads,
                "fine_tune": ",".join(config.fine_tune),
                "seed": config.seed,
                "multi_objective": config.multi_objective,
                "heartbeat": beat,
                "sampler": "TPESampler",
                "sampler_seed": workers.sampler_seed(config.seed, joined),  # worker k: seed + k
                "pruner": type(study.pruner).__name__,
                "frames_per_clip": features.frames_per_clip,
                "protocol": context["protocol"],
                "face_crop": context["face_crop"],  # every source's, as the tag (review)
                "extraction_precision": context["extraction_precision"],
                "training_precision": config.training_precision,
                "keep_weights": config.keep_weights.value,
                "clips": clips_read(settings),
                "repeats": config.evaluation.repeats,
                "settings": len(settings),
            }
        )
        objective = Objective(
            study_name,
            allowed,
            settings,
            context,
            config.seed,
            config.multi_objective,
            training_precision=config.training_precision,
            jit_compile=config.jit_compile,
            keep_weights=config.keep_weights,
            fine_tune=config.fine_tune,
            on_result=console.trial_line,
        )
        if len(settings) > 1:
            print(
                f"each trial trains on {len(settings)} settings and keeps the first one's head "
                f"({settings[0].name}): its dev threshold is the one served"
            )
        share = workers.Worker(study, config.storage, experiment_id, beat, parent.info.run_id)
        progress = console.Progress(config.trials, study_name, lambda: objective.setup_seconds)
        if said := console.evaluation_line(context):
            print(said)
        objective.header = console.TRIAL_HEADER
        with memory.settled():  # the C heap and the collector, for the trial loop
            ran = share.optimize(
                objective,
                config.trials,
                timeout=config.timeout,
                catch=REPORTED,  # the trial fails, not the worker
                on_trial=progress,
            )
        objective.check_output("(finished trials are kept)")  # the last trial's line lost
        done = retries.finished_count(study.get_trials(deepcopy=False))
        if done < config.trials and config.timeout is not None:  # ended by its deadline
            print(
                f"stopped by --timeout {config.timeout:g}: {done} of {config.trials} trials "
                "finished; the same command goes on from there"
            )
        elif not ran:
            print("the other workers finished the study's trials: nothing left to run here")
        table = parent_run.log_comparison(study, experiment_id, study_name)
        registered = register_best(config, experiment_id, study_name)
        if registered:
            print("registered models: " + ", ".join(registered))
        elif config.keep_weights == KeepWeights.NONE:  # nothing registered, unsaid (probe V)
            print("registered models: none (--keep-weights none keeps no head's weights)")
        share.close_lost_runs(force=True)  # a parent closed as lost meanwhile: opened again
    return SweepResult(study, experiment_id, parent.info.run_id, table, features)


def check_stores(config: SweepConfig) -> str:
    """Both stores checked before anything long runs, by reads (and, of a SQLite store, a
    file made and removed beside it): the study's database is not MLflow's, the tracking store
    not Optuna's, not one database for both, each a database that can be written;
    MLflow is then pointed at the tracking store (the one place a sweep sets it). Returns its
    URI; a ValueError (one line) for a store of the wrong kind."""
    uri = tracking.use_store(config.tracking_uri)
    wal.check_folder(uri, "--tracking-uri")  # a read-only command says "no tracking store at"
    if wal.same_database(config.storage, uri):
        raise ValueError(
            f"--storage and --tracking-uri name one database ({uri}): Optuna and MLflow each "
            "need their own, e.g. sqlite:///optuna.db and sqlite:///mlflow.db"
        )
    wal.check_writable(config.storage, "--storage")  # a sweep writes both; before it is read
    workers.check_storage(config.storage)  # (reading made an empty file on a full disk: probe)
    wal.check_writable(uri, "--tracking-uri")
    tracking.open_existing_file()
    return uri


def _settle_finished(
    config: SweepConfig, study: optuna.Study, experiment_id: str, table: pd.DataFrame
) -> pd.DataFrame:
    """What a finished study's rerun does before its closing (``table``: its comparison, which
    it returns): the parent runs of workers killed as they closed are closed, the family bests
    of a sweep stopped before it registered them are registered, and the report of a closing
    stopped before it wrote one (the tracking store away, artifacts moved: probe) is written on
    the newest parent run, as "rerun the same command" promised."""
    name = study.study_name
    for reason in liveness.close_dead_parents(experiment_id, name).values():
        print(f"a parent run closed: {reason}", flush=True)
    from experiments.serving import models

    if models.unregistered(name, table):
        print("registered models: " + ", ".join(register_best(config, experiment_id, name)))
    return _report_once(config, study, experiment_id, table)


def _report_once(
    config: SweepConfig, study: optuna.Study, experiment_id: str, table: pd.DataFrame
) -> pd.DataFrame:
    """``table`` with the report no closing wrote (stopped before it: the tracking store away, a
    full disk, artifacts moved) written on the study's newest parent run, under the closing lock,
    where that run has ended and its artifacts can be where it says (a moved store's are written
    nowhere new: said); the run keeps its status."""
    name = study.study_name
    parents = tracking.study_parents(experiment_id, name)
    if "report" in table.attrs or table.empty or not parents:
        return table
    client = mlflow.MlflowClient()
    with locks.closing_lock(config.storage):
        standing = standing_comparison(experiment_id, name)  # another rerun may have written it
        run = client.get_run(parents[0]).info
        if "report" in standing.attrs or run.status == "RUNNING":  # a live worker's closing
            return standing
        where = client.get_experiment(experiment_id).artifact_location
        if not parent_run.artifacts_reachable(run.artifact_uri, where):
            print(
                f"no report: the study's newest parent run has none, and its artifact folder "
                f"{run.artifact_uri} is not there (a store moved without them? "
                f"{tracking.move_command(run.artifact_uri)})"
            )
            return standing
        with mlflow.start_run(run_id=run.run_id):
            table = parent_run.log_comparison(study, experiment_id, name)
        client.set_terminated(run.run_id, run.status, run.end_time)  # as it ended
    print(f"the study's report, missing from its newest parent run, written on run {run.run_id}")
    return table


def register_best(config: SweepConfig, experiment_id: str, study_name: str) -> list[str]:
    """Each family's best trial registered (``@best``) as the tracking store holds the study
    when this worker holds the closing lock: a table read before it could be older than the one
    a worker ending later registered, and moved the aliases and marks back."""
    from experiments.serving import models

    with locks.closing_lock(config.storage):
        return models.log_best_models(study_name, standing_comparison(experiment_id, study_name))


def standing_comparison(experiment_id: str, study_name: str) -> pd.DataFrame:
    """The study's comparison as the tracking store holds it, with where the newest report of
    its parent runs is (a worker stopped before its closing wrote none); reads only."""
    table = tables.comparison(
        runs_table.trial_table(tracking.study_runs(experiment_id, study_name))
    )
    client = mlflow.MlflowClient()
    parents = tracking.study_parents(experiment_id, study_name)
    for parent in parents:
        try:
            listed = {item.path for item in client.list_artifacts(parent)}
        except Exception:  # noqa: BLE001 - artifacts this client cannot read: where it would be
            listed = {parent_run.REPORT}
        if parent_run.REPORT in listed:
            table.attrs["report"] = parent_run.report_location(parent)
            break
    return table


def closing_lines(result: SweepResult, share_views: bool = True) -> list[str]:
    """The lines a sweep ends with: the comparison, the verdict, the MLflow UI's views and links
    (``share_views``: write the views first, else only read the stores)."""
    table, name = result.comparison, result.study.study_name
    return [
        "",
        console.console_table(table),
        "",
        *console.verdict(table, result.study, table.attrs.get("report")),
        "",
        *dashboard.closing_lines(result.experiment_id, name, share=share_views),
    ]


def no_finished_trial(result: SweepResult) -> tuple[str, int]:
    """Why a study has no finished trial (its trials' states and the first failed run's error),
    and the exit status: 2 when its trials finished but were tracked in another store (bad
    input: the wrong ``--tracking-uri``), else 1."""
    states: dict[str, int] = {}
    for trial in result.study.get_trials(deepcopy=False):
        state = trial.state.name.lower()
        states[state] = states.get(state, 0) + 1
    runs = tracking.study_runs(result.experiment_id, result.study.study_name)
    errors = runs.get(f"tags.{tracking.ERROR_TAG}", pd.Series(dtype=object)).dropna()
    counts = ", ".join(f"{n} {state}" for state, n in states.items()) or "no trial ran"
    reason = f"; a failed trial's error: {str(errors.iloc[-1])[:200]}" if len(errors) else ""
    name = result.study.study_name
    if states.get("complete"):  # finished in the study's database, tracked in another store
        return (
            f"study {name}'s trials ({counts}) finished in its database, but the tracking store "
            f"{tracking.store_shown()} holds no finished run of them: they were tracked in "
            f"another store (pass the --tracking-uri they ran with) or deleted from this one"
            f"{reason}",
            2,
        )
    return f"no trial of study {name} finished ({counts}){reason}", 1


def run_command(config: SweepConfig, features: FeatureSet | None = None) -> int:
    """The command: logging as ``--verbose`` says, the sweep, its closing lines; the exit status
    (0 done, 2 bad input or a full disk, 3 a store unreachable, 130 interrupted, 143 stopped by
    SIGTERM: core.interrupts)."""
    level = logging.INFO if config.verbose else logging.WARNING
    console_logging(config.verbose)
    optuna.logging.set_verbosity(level)
    # what a worker says in one line itself: a lost database, a trial another worker took over
    said = (*REPORTED, *StorageErrors, optuna.exceptions.UpdateFinishedTrialError)
    one_line_failures(said, config.verbose)
    logging.getLogger("mlflow").setLevel(level)  # its database migrations, run links
    first, ran = None, []
    summarised = set() if features is None else {config.features}  # sweep.main summarised it
    try:
        for study in (config, *config.then):  # a group of cross-domain settings: in turn
            loaded = features if study is config else None
            code, result = _run_and_close(study, loaded, summarised, later=study is not config)
            if code:
                return code
            first = first or result
            ran.append(result.study.study_name)
        if config.evaluation.cross_domain:
            with locks.closing_lock(config.storage):
                try:  # its own studies in their settings' columns, whichever ran last
                    lines = cross_table.log_cross_table(preferred=ran)
                except LookupError as err:  # no trial finished: no column to show
                    lines = [str(err)]
            print("\n".join(lines))
    finally:  # the stores' files hold every commit, however the sweep ended
        wal.checkpoint(config.storage)
        wal.checkpoint(mlflow.get_tracking_uri())
    try:
        record_rerun(config, first)
    except KeyboardInterrupt as err:
        return failure_status(err)
    except Exception as err:  # the sweep is done; only its next rerun will take longer
        log.warning("the closing is not recorded for a fast rerun: %s", first_line(err))
    return 0


def record_rerun(config: SweepConfig, result: SweepResult) -> None:
    """Record what the same command will print after the data summary, if the study is finished
    and the stores are SQLite files (:mod:`experiments.commands.replay`). Both stores are stamped
    before and after the lines are rendered from them, with reads only: a write in between
    (another worker, the UI) records nothing."""
    if not replay.eligible(config):
        return
    stores = [wal.sqlite_file(config.storage), wal.sqlite_file(mlflow.get_tracking_uri())]
    if None in stores:
        return
    files = [str(Path(store).resolve()) for store in stores]
    before = replay.stores_stamp(files)
    trials = result.study.get_trials(deepcopy=False)
    done = retries.finished_count(trials)
    if before is None or done < config.trials:
        return
    if any(trial.state == optuna.trial.TrialState.RUNNING for trial in trials):
        return
    name = result.study.study_name
    standing = dataclasses.replace(
        result, comparison=standing_comparison(result.experiment_id, name)
    )
    if standing.comparison.empty:
        return
    # the full path's study line once done >= target, however many workers joined
    lines = [console.study_line(name, done, config.trials, 1, 0), *closing_lines(standing, False)]
    replay.remember(config, result.features, files, lines, before, name)


def finished_closing(config: SweepConfig, name: str, said: str) -> bool:
    """The closing of study ``name`` from the stores alone, ``said`` first, where its features
    are missing from the cache and the record of its closing is stale (a store written since,
    by another study or the UI): True when printed; False, nothing printed, when the study has
    trials left to run (or is not there), which the features are extracted for."""
    try:
        study = optuna.load_study(study_name=name, storage=config.storage)
    except KeyError:
        return False
    trials = study.get_trials(deepcopy=False)
    done = retries.finished_count(trials)
    running = any(trial.state == optuna.trial.TrialState.RUNNING for trial in trials)
    experiment_id = tracking.study_experiment(name)
    if done < config.trials or running or experiment_id is None:
        return False
    table = standing_comparison(experiment_id, name)
    if table.empty:
        return False
    print(said)
    print(console.study_line(name, done, config.trials, 1, 0), flush=True)
    table = _settle_finished(config, study, experiment_id, table)  # as the full path does
    _print_closing(config, SweepResult(study, experiment_id, "", table, None))
    return True


def _run_and_close(
    config: SweepConfig, features: FeatureSet | None, summarised: set[FeatureOptions], later: bool
) -> tuple[int, SweepResult | None]:
    try:
        result = run_sweep(config, loaded=features, summarised=summarised, later=later)
    except (Exception, KeyboardInterrupt) as err:
        return failure_status(err), None
    table = result.comparison
    if table.empty:  # not one trial finished: say why, and fail
        said, code = no_finished_trial(result)
        say_error(said)
        return code, result
    _print_closing(config, result)
    return 0, result


def _print_closing(config: SweepConfig, result: SweepResult) -> None:
    with locks.closing_lock(config.storage):  # its views, shared with the other workers
        lines = closing_lines(result)
    print("\n".join(lines))
