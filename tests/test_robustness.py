"""Nothing breaks, nothing is silently wrong: concurrent starts on the default stores, a store an
interrupted migration left half-done, a search space changed under a study, bad storage URLs, a
sweep where no trial finished, library telemetry. Real stores, real processes.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import http.server
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient

import core.features.extract as extraction
import heads
from core.features import FeatureOptions, cached_features
from core.features.request import resolve_precision
from experiments.commands import compare, predict, sweep
from experiments.config import HEARTBEAT_SECONDS
from experiments.results import studies
from experiments.stores import identity, locks, reach, retries, tracking, wal
from experiments.trial import training
from tests.disks import read_only, tmpfs
from tests.test_sweep import FRAMES, write_tiny_set

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The tiny set, its features extracted once into a cache the sweeps below share."""
    root = tmp_path_factory.mktemp("robust")
    write_tiny_set(root / "data")
    cached_features(
        FeatureOptions(data=root / "data", cache_dir=root / "cache", frames=FRAMES, progress=False)
    )
    return root


def argv(data: Path, *more: str, heads: str = "lstm30") -> list[str]:
    return [
        *("--data", str(data / "data"), "--cache-dir", str(data / "cache")),
        *("--frames", str(FRAMES), "--heads", heads, *more),
    ]


def test_four_sweeps_started_together_in_a_fresh_folder_all_finish(data, tmp_path) -> None:
    """The default stores (./optuna.db, ./mlflow.db) created at once by four processes: MLflow's
    schema is made under a lock, so none dies in its migration, and the total is exact. The
    workers left waiting for the others' trials end soon after the last one, not a heartbeat
    (a minute) later."""
    script = str(REPO / "experiments" / "sweep.py")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the default store
    processes = [
        subprocess.Popen(
            [sys.executable, script, *argv(data, "--trials", "4", "--study", "together")],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [process.communicate(timeout=900) for process in processes]
    all_ended = datetime.datetime.now()
    for process, (_, err) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, err[-3000:]
        assert "Traceback" not in err
    study = optuna.load_study(study_name="together", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert study.metric_names == ["dev_acer"]  # named by the workers, warned by none
    assert not any("ExperimentalWarning" in err for _, err in outcomes)
    states = [t.state for t in study.get_trials()]
    assert states == [optuna.trial.TrialState.COMPLETE] * 4
    last_trial = max(t.datetime_complete for t in study.get_trials())
    assert (all_ended - last_trial).total_seconds() < HEARTBEAT_SECONDS / 2
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = MlflowClient().get_experiment_by_name("together")
    runs = tracking.study_runs(experiment.experiment_id, "together")
    assert len(runs) == 4 and set(runs["status"]) == {"FINISHED"}
    with sqlite3.connect(tmp_path / "mlflow.db") as db:  # nothing half-migrated left behind
        names = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
    assert not [name for name in names if name.startswith(wal.ALEMBIC_TMP)]


def test_two_sweeps_started_together_with_other_heads_refuse_one_in_a_line(data, tmp_path):
    """Started at once on one new --study with --heads lstm30 and dense2048: the second joined
    before any trial asked for a head, failed a trial with Optuna's traceback ("Categorical
    Distribution does not support dynamic value space") and left the study a trial short for
    good (probe). The families searched are recorded with the study, so one is refused."""
    script = str(REPO / "experiments" / "sweep.py")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    processes = [
        subprocess.Popen(
            [sys.executable, script, *argv(data, "--trials", "2", "--study", "mixed", heads=heads)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for heads in ("lstm30", "dense2048")
    ]
    outcomes = [process.communicate(timeout=900) for process in processes]
    codes = sorted(process.returncode for process in processes)
    assert codes == [0, 2], outcomes
    (refused,) = [err for p, (_, err) in zip(processes, outcomes, strict=True) if p.returncode]
    said = [line for line in refused.splitlines() if not line.startswith("WARNING: no VGG-Face")]
    assert len(said) == 1 and said[0].startswith("error: study mixed "), refused[-3000:]
    assert "--heads" in said[0], said  # the record, or the trials already searched: no traceback
    study = optuna.load_study(study_name="mixed", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.COMPLETE] * 2


def test_a_worker_registers_its_models_only_under_the_closing_lock(data, tmp_path) -> None:
    """Two workers ending together both set a family's ``best`` alias and the study's view, rows
    MLflow's SQL stores insert-or-update without a lock: one died on PostgreSQL's unique
    constraint. Held here, the closing lock keeps a worker whose trial has ended from writing
    either until it is released; then the worker finishes."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    tracking_db = tmp_path / "mlflow.db"
    stores = ("--storage", storage, "--tracking-uri", f"sqlite:///{tracking_db}")
    command = [
        sys.executable,
        str(REPO / "experiments" / "sweep.py"),
        *argv(data, "--trials", "1", "--study", "closing", *stores),
    ]
    lock = locks.closing_lock(storage)
    with lock:
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seen = []
        for line in process.stdout:  # up to the trial's own line
            seen.append(line)
            if line.startswith("#0 "):
                break
        time.sleep(3.0)
        assert process.poll() is None, "".join(seen)
        mlflow.set_tracking_uri(f"sqlite:///{tracking_db}")
        assert MlflowClient().search_registered_models() == []
    rest, _ = process.communicate(timeout=300)
    assert process.returncode == 0, "".join(seen) + rest
    (model,) = MlflowClient().search_registered_models()
    assert model.name == "closing-lstm" and model.aliases == {"best": 1}
    experiment = MlflowClient().get_experiment_by_name("closing")
    assert any(tag.startswith("mlflow.sharedViewState.") for tag in experiment.tags)


def test_a_store_left_half_migrated_is_repaired(tmp_path, caplog) -> None:
    """What two racing migrations left: a copy beside its table, and a copy whose table was
    already dropped. The copy is dropped, the orphan renamed back, and the store opens."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    MlflowClient().create_experiment("kept")
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        db.execute("CREATE TABLE _alembic_tmp_tags AS SELECT * FROM tags")  # a copy
        db.execute("ALTER TABLE experiments RENAME TO _alembic_tmp_experiments")  # an orphan
    assert sorted(wal.repair_interrupted_migration(uri)) == ["experiments", "tags"]
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "experiments" in names and not {n for n in names if n.startswith("_alembic_tmp_")}
    tracking.open_store()
    assert MlflowClient().get_experiment_by_name("kept") is not None


def test_changing_heads_under_a_study_is_refused_in_one_line(data, tmp_path, capsys) -> None:
    os.chdir(tmp_path)
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db")
    stores += ("--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")
    assert sweep.main(argv(data, *stores, "--study", "heads", "--trials", "1")) == 0
    capsys.readouterr()
    code = sweep.main(argv(data, *stores, "--study", "heads", "--trials", "3", heads="*"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(
        "error: study heads searches head over lstm; this run's --heads (whose default is every "
        "family registered) asks for"
    )
    assert "--study" in err[0]
    study = optuna.load_study(study_name="heads", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.COMPLETE]


def test_a_study_rerun_with_options_its_figures_depend_on_changed_is_refused(
    data, tmp_path, capsys
) -> None:
    """Its new trials would have been ranked against trials of other settings, without a word;
    a finished study showed its comparison under flags it never ran with."""
    os.chdir(tmp_path)
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db")
    stores += ("--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--study", "fixed")
    assert sweep.main(argv(data, *stores, "--trials", "1")) == 0
    capsys.readouterr()
    changed = {
        "--repeats": (("--repeats", "2"), "--repeats 1; this run's is 2"),
        "objectives": (("--multi-objective",), "has 1 objective, this run asks for 2"),
        "fine-tune": (("--fine-tune", "fc"), "--fine-tune none; this run's is fc"),
        "training": (("--train-precision", "float16"), "float32; this run's is float16"),
        # a worker per --seed (the Slurm script did it) trained each trial with its own seed
        "seed": (("--seed", "7"), "--seed (each trial's training seed) 0; this run's is 7"),
    }
    for flags, said in changed.values():
        code = sweep.main(argv(data, *stores, "--trials", "2", *flags))
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert err[0].startswith("error: study fixed ") and said in err[0]
        assert err[0].endswith("start another study with --study")
    assert sweep.main(argv(data, *stores, "--trials", "2", "--heartbeat", "30")) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: study fixed's workers beat every 60 s, this one every 30 s, and would find their "
        "trials lost: rerun with --heartbeat 60 (or without --heartbeat)"
    ]
    # one begun with --heartbeat 5 goes on without it, at its own (it was refused: probe CC)
    beating = (*stores[:-1], "beating")
    assert sweep.main(argv(data, *beating, "--trials", "1", "--heartbeat", "5")) == 0
    assert sweep.main(argv(data, *beating, "--trials", "2")) == 0
    capsys.readouterr()
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("beating").experiment_id
    parents = client.search_runs([experiment], f"tags.`{tracking.ROLE_TAG}` = 'study'")
    assert [p.data.params["heartbeat"] for p in parents] == ["5", "5"]
    entries = sorted(p for p in (data / "cache" / "features").iterdir() if p.is_dir())
    code = sweep.main(argv(data, *stores, "--trials", "2", "--frames", str(FRAMES + 1)))
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [  # what differs, named (the study's entry is in this cache)
        f"error: study fixed was run with other features: --frames {FRAMES}; this run's "
        f"{FRAMES + 1}: rerun with the study's flags, or start another study with --study"
    ]
    with pytest.MonkeyPatch.context() as patch:  # features this version of the code extracts
        patch.setattr(extraction, "PREPROCESSING_VERSION", extraction.PREPROCESSING_VERSION + 1)
        assert sweep.main(argv(data, *stores, "--trials", "2")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other features: preprocessing " in err[0], err
    assert err[0].endswith("this version extracts other features: start another study with --study")
    other = "float32" if resolve_precision("auto") != "float32" else "bfloat16"
    assert sweep.main(argv(data, *stores, "--trials", "2", "--precision", other)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"other features: --precision {resolve_precision('auto')}; " in err[0]
    write_tiny_set(tmp_path / "other", seed=1)  # tested on other data: refused before extracting
    code = sweep.main(argv(data, *stores, "--trials", "2", "--test-data", str(tmp_path / "other")))
    assert code == 2 and capsys.readouterr().err.strip().splitlines() == [  # not as data files
        "error: study fixed was tested on --data's own test split; this run's --test-data: "  # that
        "rerun with the study's flags, or start another study with --study"  # differ (review)
    ]
    (data / "cache" / "features" / "elsewhere").mkdir()  # the study's entry in another cache
    for entry in entries:
        entry.rename(data / "cache" / "features" / "elsewhere" / entry.name)
    assert sweep.main(argv(data, *stores, "--trials", "2", "--frames", str(FRAMES + 1))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [  # named from the parts the study recorded (it said two cache entries' hashes)
        f"error: study fixed was run with other features: --frames {FRAMES}; this run's "
        f"{FRAMES + 1}: rerun with the study's flags, or start another study with --study"
    ]
    study = optuna.load_study(study_name="fixed", storage=f"sqlite:///{tmp_path}/optuna.db")
    recorded = study.user_attrs[identity.IDENTITY_ATTR]
    older = {what: value for what, value in recorded.items() if what != identity.KEY_PARTS}
    study.set_user_attr(identity.IDENTITY_ATTR, older)  # a study recorded before its parts were
    assert sweep.main(argv(data, *stores, "--trials", "2", "--frames", str(FRAMES + 1))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: study fixed was run with features (data files, weights, ")
    study.set_user_attr(identity.IDENTITY_ATTR, recorded)
    for entry in entries:
        (data / "cache" / "features" / "elsewhere" / entry.name).rename(entry)
    (data / "cache" / "features" / "elsewhere").rmdir()
    now = sorted(p for p in (data / "cache" / "features").iterdir() if p.is_dir())
    assert now == entries  # refused before anything was extracted
    study = optuna.load_study(study_name="fixed", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.COMPLETE]
    assert sweep.main(argv(data, *stores, "--trials", "2")) == 0  # the same flags: it goes on
    assert len(study.get_trials()) == 2


def running_with_its_worker(database: Path) -> bool:
    """Whether a trial in the Optuna SQLite ``database`` is RUNNING and names its worker."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            found = db.execute(
                "SELECT 1 FROM trials JOIN trial_user_attributes USING (trial_id) "
                "WHERE trials.state = 'RUNNING' AND trial_user_attributes.key = ?",
                (retries.WORKER_ATTR,),
            ).fetchall()
    except sqlite3.Error:  # not there yet
        return False
    return bool(found)


def test_a_sweep_killed_in_a_trial_is_rerun_at_once_on_the_same_machine(data, tmp_path) -> None:
    """kill -9 in a trial, then the same command: the rerun waited three heartbeats (3 min by
    default) for the dead worker's trial; on the same machine it sees the process gone, queues
    the trial again with its parameters and runs it."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    stores = ("--storage", storage, "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")
    command = [sys.executable, str(REPO / "experiments" / "sweep.py")]
    command += argv(data, "--trials", "1", "--study", "killed", *stores)
    log = tmp_path / "killed.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not running_with_its_worker(tmp_path / "optuna.db"):  # read only: Optuna's
            assert process.poll() is None, log.read_text()[-3000:]  # storage would stamp the
            assert time.monotonic() < deadline  # schema the sweep is making (a test's race)
            time.sleep(0.1)
    finally:
        process.kill()
        process.wait()
    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    said = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, said[-3000:]
    assert f"trial 0's worker {socket.gethostname()}:{process.pid} is gone" in said, said[-3000:]
    assert "resuming study killed: 0 of 1 trials done" in rerun.stdout, said[-3000:]
    # the killed worker's parent run held no trial: it said 'its trials so far are under 1 ...'
    assert "the study has 1 parent run already (one per worker or" in rerun.stdout, said[-3000:]
    assert "waiting:" not in rerun.stdout, said[-3000:]  # for the dead worker's heartbeats
    study = optuna.load_study(study_name="killed", storage=storage)
    (lost, retry) = study.get_trials()  # and nothing else
    assert (lost.state, retry.state) == (
        optuna.trial.TrialState.FAIL,
        optuna.trial.TrialState.COMPLETE,
    )
    assert retries.retry_history(retry) == [0]
    # killed before, while or after its parameters were suggested: the retry keeps those it had
    assert lost.params.items() <= retry.params.items() and retry.params.keys() > {"head"}


def test_a_study_whose_database_was_lost_is_refused_not_run_again(data, tmp_path, capsys):
    """optuna.db deleted after a finished study: the rerun made a new study of the same name and
    ran its trials again beside the finished runs, two runs per trial number (probe)."""
    os.chdir(tmp_path)
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db", "--study", "lost")
    stores += ("--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--trials", "1")
    assert sweep.main(argv(data, *stores)) == 0
    (tmp_path / "optuna.db").unlink()
    capsys.readouterr()
    assert sweep.main(argv(data, *stores)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: study lost has run no trial in its database, but the tracking store sqlite:///"
        f"{tmp_path}/mlflow.db holds finished trial runs of it: they ran with another --storage "
        "(pass it), or the study's database was lost (choose another --study)"
    ]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("lost").experiment_id
    runs = client.search_runs([experiment], "tags.`vggface_heads.role` = 'trial'")
    assert len(runs) == 1  # nothing ran again
    # nor was a study made: its baselines queued in it (probe)
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path}/optuna.db") == []


@pytest.mark.parametrize(
    ("store", "flag", "damage"),
    [
        ("optuna", "--storage", "cut"),
        ("mlflow", "--tracking-uri", "cut"),
        ("optuna", "--storage", "overwritten"),
    ],
)
def test_a_damaged_sqlite_store_is_one_line(data, tmp_path, capsys, store, flag, damage) -> None:
    """A store cut short inside (not at its header) gave a traceback ending in "database disk
    image is malformed" (probe: truncate -s 50000 optuna.db); one overwritten inside was said
    in Optuna's words on its commit, "invalid data in the commit, e.g. exceeding max length",
    status 3 as a database away (probe: 8 kB written at its middle)."""
    os.chdir(tmp_path)
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db", "--study", "cut")
    stores += ("--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--trials", "1")
    assert sweep.main(argv(data, *stores)) == 0
    path = tmp_path / f"{store}.db"
    with sqlite3.connect(path) as db:  # the file as it stands, write-ahead log folded in
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if damage == "cut":
        os.truncate(path, path.stat().st_size // 2)
    else:
        with open(path, "r+b") as file:
            file.seek(path.stat().st_size // 2)
            file.write(b"\xa5" * 8192)
    capsys.readouterr()
    assert sweep.main(argv(data, *stores)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"error: {flag} sqlite:///{path}: a damaged SQLite database (database disk image is "
        f"malformed): restore it from a copy, or move it aside and rerun (its "
        f"{'studies' if store == 'optuna' else 'runs'} are lost)"
    ), err
    assert not [line for line in err if "Traceback" in line]
    if store == "mlflow" and damage == "cut":  # the commands that only read it: a traceback
        # each (probe)
        from experiments.commands import compare, predict

        # a new study: refused before its database is written (it had been made, baselines
        # queued, and then refused: probe)
        assert sweep.main(argv(data, *stores[:3], "new", *stores[4:])) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == err[-1]
        names = {s.study_name for s in optuna.get_all_study_summaries(stores[1])}
        assert names == {"cut"}

        uri = f"sqlite:///{path}"
        for command, args in (
            (compare.main, ["--list"]),
            (compare.main, []),
            (predict.main, ["--study", "cut", "--best", str(tmp_path / "x.mp4")]),
        ):
            assert command([*args, "--tracking-uri", uri]) == 2
            said = capsys.readouterr().err.strip().splitlines()
            assert said == [err[-1]], (args, said[-3:])


def test_a_trial_whose_run_was_deleted_is_said_left_out(data, tmp_path, capsys) -> None:
    """A complete trial's run deleted in MLflow vanished from the tables without a word, while
    the Pareto front, read from the study, still listed it (probe)."""
    os.chdir(tmp_path)
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db", "--study", "deleted")
    stores += ("--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--trials", "2")
    assert sweep.main(argv(data, *stores, heads="lstm30,dense2048")) == 0
    out = capsys.readouterr().out
    assert "#0 " in out[out.index("Pareto front") :] and "left out:" not in out, out[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (experiment,) = [e for e in client.search_experiments() if e.name == "deleted"]
    runs = client.search_runs([experiment.experiment_id], "tags.`optuna.trial_number` = '0'")
    client.delete_run(runs[0].info.run_id)
    assert sweep.main(argv(data, *stores, heads="lstm30,dense2048")) == 0
    out = capsys.readouterr().out
    said = [line for line in out.splitlines() if "left out:" in line]
    assert said == [
        "left out: 1 complete trial of the study (#0) without a finished run in this tracking store"
    ], out[-3000:]
    front = out[out.index("Pareto front") : out.index("left out:")]
    assert "#0 " not in front and "#1 " in front
    head = runs[0].data.params["head"]  # its write-up row gone from the table too
    assert head not in out[out.index("study deleted") : out.index("best head")]


def test_a_study_stopped_before_it_registered_its_models_registers_them_when_rerun(
    data, tmp_path, capsys
) -> None:
    """A Ctrl-C after the last trial and before the registration left the study without its
    models for good: the rerun found the study finished and only printed the comparison."""
    from experiments.serving.models import RUN_TAG

    os.chdir(tmp_path)
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db", "--study", "unregistered")
    stores += ("--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")
    assert sweep.main(argv(data, *stores, "--trials", "1")) == 0
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (model,) = client.search_registered_models()
    trial_run = client.get_model_version_by_alias(model.name, "best").tags[RUN_TAG]
    client.delete_registered_model(model.name)  # as a sweep stopped before registering left it
    capsys.readouterr()
    assert sweep.main(argv(data, *stores, "--trials", "1")) == 0
    out = capsys.readouterr().out
    assert "nothing left to run" in out and f"registered models: models:/{model.name}/1" in out
    assert client.get_model_version_by_alias(model.name, "best").tags[RUN_TAG] == trial_run
    assert sweep.main(argv(data, *stores, "--trials", "1")) == 0
    assert "registered models" not in capsys.readouterr().out  # nothing missing: nothing done
    # the same, its features gone from the cache too: registered without extracting them
    client.delete_registered_model(model.name)
    features = data / "cache" / "features"
    entries = [p for p in features.iterdir() if p.is_dir() and not p.name.startswith(".")]
    for entry in entries:
        entry.rename(entry.with_name(f".aside-{entry.name}"))
    try:
        assert sweep.main(argv(data, *stores, "--trials", "1")) == 0
    finally:
        for entry in entries:
            entry.with_name(f".aside-{entry.name}").rename(entry)
    out = capsys.readouterr().out
    assert "is not in the cache (or not usable), and not extracted" in out, out[-2000:]
    assert f"registered models: models:/{model.name}/1" in out
    assert client.get_model_version_by_alias(model.name, "best").tags[RUN_TAG] == trial_run


def test_the_best_models_registered_are_the_studys_as_it_stands_when_the_worker_closes(
    data, tmp_path, monkeypatch
) -> None:
    """A worker registered each family's best from the table it read before the closing lock,
    so one that read its table before another worker's better trial ended, and closed after it,
    moved ``@best`` and the family-best mark back to an older trial (the review's note)."""
    from experiments.commands import study as study_command
    from experiments.serving.models import RUN_TAG
    from experiments.stores.tracking import FAMILY_BEST_TAG

    os.chdir(tmp_path)
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db", "--study", "older")
    stores += ("--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")
    logged = study_command.parent_run.log_comparison

    def read_earlier(*args):  # its table, as read before the family's best trial ended
        table = logged(*args).copy()
        row = table.index[table["group"] == "best lstm"][0]
        trials = study_command.tracking.study_runs(args[1], args[2])["run_id"]
        table.loc[row, "run_id"] = next(r for r in trials if r != table.loc[row, "run_id"])
        return table

    monkeypatch.setattr(study_command.parent_run, "log_comparison", read_earlier)
    assert sweep.main(argv(data, *stores, "--trials", "2")) == 0
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("older").experiment_id
    best = study_command.standing_comparison(experiment, "older")
    best = best.loc[best["group"] == "best lstm", "run_id"].item()
    (model,) = client.search_registered_models()
    assert client.get_model_version_by_alias(model.name, "best").tags[RUN_TAG] == best
    marked = client.search_runs([experiment], f"tags.`{FAMILY_BEST_TAG}` = 'true'")
    assert [run.info.run_id for run in marked] == [best]


def test_a_store_given_for_the_other_library_is_refused_and_left_as_it_is(
    data, tmp_path, capsys
) -> None:
    """Optuna's schema check and MLflow's migration each wrote into the other's database first,
    then died with a traceback (Optuna: 'no longer compatible with the table schema'; MLflow:
    alembic's "Can't locate revision"). A file that is no database at all was a traceback; a
    SQLite file in a folder that is not there was made, folder and all, by MLflow."""
    os.chdir(tmp_path)
    mlflow_db, optuna_db = tmp_path / "mlflow.db", tmp_path / "optuna.db"
    MlflowClient(f"sqlite:///{mlflow_db}").search_experiments()
    optuna.create_study(study_name="kept", storage=f"sqlite:///{optuna_db}")
    notes = tmp_path / "databases.toml"
    notes.write_text('oulu = "/data/OULU-NPU"\n')
    empty = tmp_path / "empty.db"  # compare --list made an MLflow store in it (probe)
    empty.touch()
    own = tmp_path / "own.db"  # a user's database: the stores wrote their tables into it (probe)
    with contextlib.closing(sqlite3.connect(own)) as db:
        db.execute("CREATE TABLE foo (x)")
    before = {path: path.read_bytes() for path in (mlflow_db, optuna_db, notes, empty, own)}
    capsys.readouterr()  # MLflow's lines as it made its tables
    one = f"sqlite:///{tmp_path / 'one.db'}"
    typo = tmp_path / "studys"  # a mistyped folder: MLflow made it and an empty store in it
    cases = [
        (sweep, ["--storage", one, "--tracking-uri", one], "name one database"),
        (
            sweep,
            ["--storage", f"sqlite:///{mlflow_db}", "--tracking-uri", f"sqlite:///{tmp_path}/x"],
            "an MLflow tracking store; Optuna needs its own database",
        ),
        (sweep, ["--tracking-uri", f"sqlite:///{optuna_db}"], "an Optuna study database"),
        (compare, ["--tracking-uri", f"sqlite:///{optuna_db}"], "an Optuna study database"),
        (predict, ["--run", "r", "--tracking-uri", f"sqlite:///{optuna_db}", "c.mp4"], "Optuna"),
        (sweep, ["--storage", f"sqlite:///{notes}"], f"--storage sqlite:///{notes}: not a SQLite"),
        (sweep, ["--tracking-uri", f"sqlite:///{notes}"], "not a SQLite database"),
        (compare, ["--tracking-uri", f"sqlite:///{notes}"], "not a SQLite database"),
        (predict, ["--run", "r", "--tracking-uri", f"sqlite:///{notes}", "c.mp4"], "not a SQLite"),
        (compare, ["--tracking-uri", str(tmp_path)], f"--tracking-uri {tmp_path}: a folder"),
        (compare, ["--tracking-uri", str(typo)], f"{typo}: nothing there; a path names a folder"),
        (  # a server's address without its scheme (it read as a path: "nothing there")
            compare,
            ["--tracking-uri", "127.0.0.1:5088"],
            "--tracking-uri 127.0.0.1:5088: no scheme; a tracking server is http://127.0.0.1:5088",
        ),
        (sweep, ["--tracking-uri", "localhost:5000"], "a tracking server is http://localhost:5000"),
        (compare, ["--tracking-uri", str(mlflow_db)], f"given as sqlite:///{mlflow_db}"),
        (sweep, ["--tracking-uri", tmp_path.as_uri()], "(MLflow's file store, which MLflow 3"),
        (sweep, ["--storage", f"sqlite:///{typo}/optuna.db"], f"there is no folder {typo}"),
        (sweep, ["--tracking-uri", f"sqlite:///{typo}/mlflow.db"], f"there is no folder {typo}"),
        (compare, ["--tracking-uri", f"sqlite:///{typo}/mlflow.db"], "no tracking store at"),
        (compare, ["--list", "--tracking-uri", f"sqlite:///{empty}"], f"at {empty} (an empty"),
        (sweep, ["--storage", f"sqlite:///{own}"], "of other tables (foo), neither MLflow's nor"),
        (  # a folder: SQLite's "unable to open", exit 3 as a server down (probe)
            sweep,
            ["--storage", f"sqlite:///{tmp_path}"],
            f"--storage sqlite:///{tmp_path}: a folder; a SQLite store is a file, e.g. sqlite:///",
        ),
        (compare, ["--tracking-uri", f"sqlite:///{tmp_path}"], "a folder; a SQLite store is a"),
        (sweep, ["--tracking-uri", f"sqlite:///{own}"], "of other tables (foo), neither MLflow"),
        (  # a folder SQLite cannot write in, root or not (Linux's sysfs makes no file): said
            sweep,  # after MLflow's retries (100 s), with advice to move the store aside (probe FF)
            ["--tracking-uri", "sqlite:////sys/kernel/mlflow.db"],
            "--tracking-uri sqlite:////sys/kernel/mlflow.db: /sys/kernel cannot be written (",
        ),
        (sweep, ["--storage", "sqlite:////sys/kernel/optuna.db"], "/sys/kernel cannot be written"),
        (sweep, ["--storage", "notaurl"], "--storage notaurl: not a database URL SQLAlchemy"),
    ]
    for command, flags, said in cases:
        code = command.main(argv(data, *flags) if command is sweep else flags)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and said in err[0], err
    assert {path: path.read_bytes() for path in before} == before
    names = [notes.name, empty.name, "mlflow.db", "optuna.db", own.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    # a store set in the environment, no flag: named as set (a flag never given was blamed: probe)
    env = {**os.environ, "MLFLOW_TRACKING_URI": str(typo)}
    script = [sys.executable, str(REPO / "experiments" / "compare.py"), "--list"]
    done = subprocess.run(script, env=env, capture_output=True, text=True, timeout=300)
    said = f"error: MLFLOW_TRACKING_URI={typo}: nothing there; a path names a folder"
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith(said)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{typo}/mlflow.db"  # the folder checks say it too
    script = [sys.executable, str(REPO / "experiments" / "sweep.py"), "--trials", "1"]
    done = subprocess.run(
        script, env=env, capture_output=True, text=True, timeout=300, cwd=typo.parent
    )
    said = f"error: MLFLOW_TRACKING_URI=sqlite:///{typo}/mlflow.db: there is no folder {typo}"
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith(said)


def test_a_store_of_the_wrong_kind_is_said_before_features_are_extracted(
    data, tmp_path, capsys
) -> None:
    """Features not cached yet (other --frames): the stores are checked first, so the mistake is
    not said after hours of extraction; nothing is extracted."""
    os.chdir(tmp_path)
    mlflow_db = tmp_path / "mlflow.db"
    MlflowClient(f"sqlite:///{mlflow_db}").search_experiments()
    capsys.readouterr()

    def entries() -> list[Path]:  # without the lock files an extraction's check leaves
        return sorted(p for p in (data / "cache" / "features").iterdir() if p.suffix != ".lock")

    before = entries()
    stores = ("--storage", f"sqlite:///{mlflow_db}", "--tracking-uri", f"sqlite:///{tmp_path}/o")
    assert sweep.main(argv(data, "--frames", str(FRAMES - 1), *stores)) == 2
    said = f"error: --storage sqlite:///{mlflow_db}: an MLflow tracking store; Optuna needs its "
    assert capsys.readouterr().err.strip().splitlines() == [said + "own database"]
    # no URL at all: it was said after the extraction (probe FF)
    assert sweep.main(argv(data, "--frames", str(FRAMES - 1), "--storage", "notaurl")) == 2
    said = "error: --storage notaurl: not a database URL SQLAlchemy knows (Could not parse"
    assert capsys.readouterr().err.strip().startswith(said)
    assert entries() == before


@pytest.mark.parametrize("url", ["notaurl://x", "not a url"])
def test_a_storage_that_is_no_database_is_one_line(data, tmp_path, url, capsys) -> None:
    os.chdir(tmp_path)
    code = sweep.main(argv(data, "--storage", url, "--study", "x"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: --storage {url}")


def test_a_tracking_server_that_does_not_answer_is_one_line(
    data, tmp_path, monkeypatch, capsys
) -> None:
    """Said after the server's grace (a few seconds), not after MLflow's client has retried
    for about four minutes; then the read-only commands say the same."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(reach, "SERVER_WAIT_SECONDS", 2.0)
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db", "--tracking-uri", url)
    start = time.monotonic()
    code = sweep.main(argv(data, *stores, "--study", "away"))
    assert time.monotonic() - start < 60
    err = capsys.readouterr().err.strip().splitlines()
    said = f"error: the tracking server {url} does not answer (Connection refused): start it "
    said += "(README, 'Many machines') or correct --tracking-uri"
    assert code == 3 and err[-1] == said
    assert not any("Traceback" in line for line in err)
    assert compare.main(["--tracking-uri", url]) == 3
    assert capsys.readouterr().err.strip().splitlines() == [said]
    assert predict.main(["--study", "away", "--best", "--tracking-uri", url, "clip.avi"]) == 3
    assert capsys.readouterr().err.strip().splitlines()[-1] == said
    # a server behind basic auth: its password hidden, as every error line hides it (say_error)
    authed = url.replace("http://", "http://me:pw@")
    assert compare.main(["--tracking-uri", authed]) == 3
    hidden = said.replace("http://", "http://me:***@")
    assert capsys.readouterr().err.strip().splitlines() == [hidden]
    # a database server's store: MLflow's engine retried for ~2 min, then ~190 lines; and the
    # password was printed
    port = url.rsplit(":", 1)[1]
    database = f"postgresql://postgres:pw@127.0.0.1:{port}/mlflow"
    start = time.monotonic()
    assert compare.main(["--tracking-uri", database, "--list"]) == 3
    said = capsys.readouterr().err.strip().splitlines()  # the driver's words in the middle
    assert len(said) == 1 and "Connection refused" in said[0] and ":pw@" not in said[0]
    said = said[0]
    assert said.startswith(
        f"error: the tracking store postgresql://postgres:***@127.0.0.1:{port}/mlflow cannot be "
    ) and said.endswith("): start it or correct --tracking-uri")
    assert predict.main(["--study", "away", "--best", "--tracking-uri", database, "c.avi"]) == 3
    assert capsys.readouterr().err.strip().splitlines()[-1] == said
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db", "--tracking-uri", database)
    assert sweep.main(argv(data, *stores, "--study", "away")) == 3
    assert capsys.readouterr().err.strip().splitlines()[-1] == said
    assert time.monotonic() - start < 60
    bad = f"http://127.0.0.1:{url.rsplit(':', 1)[1]}x"  # a port that is no number
    assert compare.main(["--tracking-uri", bad]) == 2
    said = f"error: --tracking-uri {bad} is not a URL (Failed to parse: {bad}/health)"
    assert capsys.readouterr().err.strip().splitlines() == [said]
    assert compare.main(["--tracking-uri", "http://me:pw@"]) == 2  # and in requests' words
    said = "error: --tracking-uri http://me:***@ is not a URL (Invalid URL 'http://me:***@/health'"
    assert capsys.readouterr().err.strip().splitlines()[0].startswith(said)
    # an unknown scheme is not "a database driver not installed" (probe); a missing one is
    assert compare.main(["--tracking-uri", "bogus://x"]) == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert said == [
        "error: --tracking-uri bogus://x: not a tracking store MLflow knows (scheme 'bogus'); "
        "e.g. sqlite:///mlflow.db, postgresql://user@host/mlflow or http://host:5000"
    ]
    assert compare.main(["--tracking-uri", "postgres://u@127.0.0.1/mlflow"]) == 2  # SQLAlchemy's
    assert "(scheme 'postgres'); e.g." in capsys.readouterr().err  # old name: no dialect now
    reach.check_server("databricks://profile")  # a store MLflow knows: its own checks
    assert compare.main(["--tracking-uri", "mysql+pymysql://u@127.0.0.1/mlflow"]) == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "its database driver is not installed (No module named" in said[0]


def test_a_read_only_command_on_a_store_that_is_not_there_creates_none(
    tmp_path, capsys, monkeypatch
) -> None:
    """compare and predict at a mistyped SQLite path: one line, and no empty store made there
    (MLflow would create one)."""
    monkeypatch.chdir(tmp_path)  # MLflow makes the URI form's folder (file:/...) in the cwd
    typo = tmp_path / "studies" / "mlflw.db"
    said = [
        f"error: no tracking store at {typo}: a sweep writes it there; pass the --tracking-uri "
        "the sweep used, or run the command in the sweep's folder"
    ]
    assert compare.main(["--tracking-uri", f"sqlite:///{typo}"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == said
    flags = ["--study", "x", "--best", "--tracking-uri", f"sqlite:///{typo}", "clip.avi"]
    assert predict.main(flags) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == said[0]
    assert not (tmp_path / "studies").exists()
    absent = f"sqlite:///file:{typo}?mode=ro&uri=true"  # SQLite's URI form names a file too
    assert compare.main(["--tracking-uri", absent, "--list"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == said
    tracking.use_store(f"sqlite:///{tmp_path}/mlflow.db")
    tracking.use_experiment("kept")
    uri = f"sqlite:///file:{tmp_path}/mlflow.db?mode=ro&uri=true"
    assert compare.main(["--tracking-uri", uri, "--list"]) == 0
    # no trial run: its backend and extraction not known
    listed = capsys.readouterr().out.split()[-9:]
    assert listed == ["kept", "0", "0", "0", "-", "?", "?", "?", "1"]


class Answers(http.server.BaseHTTPRequestHandler):
    """Every request answered with the server's ``status``, as no MLflow server would."""

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        self.send_error(self.server.status)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def answering(status: int):
    """A loopback HTTP server that answers ``status`` to everything; yields its URL."""
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers) as server:
        server.status = status
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


def test_a_server_that_is_not_mlflow_is_one_line(data, tmp_path, capsys) -> None:
    """Something answers HTTP at --tracking-uri, but not as MLflow: each command says so in a
    line, exit 3."""
    os.chdir(tmp_path)
    with answering(404) as url:
        assert compare.main(["--tracking-uri", url]) == 3
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "404" in err[0]
        assert err[0].startswith(f"error: the tracking store {url} failed: API request to ")
        assert predict.main(["--study", "x", "--best", "--tracking-uri", url, "clip.avi"]) == 3
        assert capsys.readouterr().err.strip().splitlines()[-1] == err[0]
        stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db", "--tracking-uri", url)
        assert sweep.main(argv(data, *stores, "--study", "x")) == 3
        said = capsys.readouterr().err.strip().splitlines()[-1]
        assert said.startswith(f"error: the tracking server {url} did not answer as MLflow does (")


def test_a_gateway_whose_server_is_away_is_waited_for_then_one_line(monkeypatch, capsys) -> None:
    """A proxy in front of the server answers 502 while MLflow is down: that is no answer."""
    monkeypatch.setattr(reach, "SERVER_WAIT_SECONDS", 2.0)
    with answering(502) as url:
        assert compare.main(["--tracking-uri", url]) == 3
    said = f"error: the tracking server {url} does not answer (its gateway answers 502 Bad "
    said += "Gateway): start it (README, 'Many machines') or correct --tracking-uri"
    assert capsys.readouterr().err.strip().splitlines() == [said]


def test_https_to_plain_http_or_a_certificate_that_does_not_verify_is_said_at_once(
    tmp_path, capsys, monkeypatch
) -> None:
    """https to a server that speaks plain HTTP: MLflow's client retried for four minutes, then
    cut its line before the reason, and compare printed nothing for as long (probe). Now one line
    at once, naming http. So is a certificate that does not verify under MLflow's own settings,
    which its client would have retried as long; with them, it answers."""
    import ssl

    with answering(404) as url:
        secure = url.replace("http://", "https://")
        start = time.monotonic()
        assert compare.main(["--tracking-uri", secure]) == 3
        assert time.monotonic() - start < 30
        assert capsys.readouterr().err.strip().splitlines() == [
            f"error: --tracking-uri {secure}: the server answers in plain HTTP, not TLS: give "
            f"{url}, or put TLS in front of it"
        ]
    # a port that takes the connection and closes it (a proxy before its server is up): waited
    monkeypatch.setattr(reach, "SERVER_WAIT_SECONDS", 2.0)
    with socket.socket() as closing:
        closing.bind(("127.0.0.1", 0))
        closing.listen()

        def close_each() -> None:
            with contextlib.suppress(OSError):
                while True:
                    closing.accept()[0].close()

        threading.Thread(target=close_each, daemon=True).start()
        start = time.monotonic()
        with pytest.raises(reach.StoreUnreachable, match="does not answer"):
            reach.check_server(f"https://127.0.0.1:{closing.getsockname()[1]}")
        assert time.monotonic() - start >= 2
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        + ["-keyout", str(key), "-out", str(certificate)],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers) as server:
        server.status = 200
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"https://127.0.0.1:{server.server_address[1]}"
        try:  # its certificate signed by no CA known here: what MLflow's client would meet
            with pytest.raises(reach.StoreUnreachable) as said:
                reach.check_server(url)
            assert str(said.value) == (
                f"the tracking server {url} fails TLS (certificate verify failed: self-signed "
                "certificate): set MLFLOW_TRACKING_SERVER_CERT_PATH to the file of the CA that "
                "signed its certificate, or MLFLOW_TRACKING_INSECURE_TLS=true"
            )
            for setting, value in (
                ("MLFLOW_TRACKING_SERVER_CERT_PATH", str(certificate)),
                ("MLFLOW_TRACKING_INSECURE_TLS", "true"),
            ):  # MLflow's own settings: its client would answer, so does the probe
                with pytest.MonkeyPatch.context() as patch:
                    patch.setenv(setting, value)
                    reach.check_server(url)
        finally:
            server.shutdown()


def test_a_sweep_where_no_trial_finished_fails_and_says_why(
    data, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    real = training.make_optimizer
    monkeypatch.setattr(
        training, "make_optimizer", lambda name, rate: real(name, float("nan"))
    )  # every trial's weights turn NaN after their first update
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db")
    stores += ("--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")
    code = sweep.main(argv(data, *stores, "--study", "diverges", "--trials", "2"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("error: no trial of study diverges finished (2 fail)")
    assert "TrainingDiverged:" in err[-1] and "NaN" in err[-1].replace("nan", "NaN")


def test_no_library_telemetry_unless_the_user_turns_it_on(tmp_path) -> None:
    """MLflow's telemetry (MLflow 3 keeps a session id in the environment, and a worker once
    died of it) is off in every process that imports this project, unless asked for."""
    probe = (
        "import sys, os\n"
        "if sys.argv[1] == 'project': import experiments\n"
        "import mlflow\n"
        "from mlflow.telemetry.utils import is_telemetry_disabled\n"
        "print(is_telemetry_disabled(), '_MLFLOW_TELEMETRY_SESSION_ID' in os.environ)\n"
    )
    # a machine that is not CI (MLflow turns telemetry off in CI by itself)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}

    def last_line(code: str, *args: str, **more: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            env={**env, **more},
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
        )
        return done.stdout.splitlines()[-1]

    answer = partial(last_line, probe)
    # MLflow alone reports usage here, and keeps its session id in the environment (where a
    # worker's request once read it as another thread changed it); this project turns it off,
    # so the variable is never set; a user who wants it says so.
    assert answer("mlflow alone") == "False True"
    assert answer("project") == "True False"
    assert answer("project", MLFLOW_DISABLE_TELEMETRY="false") == "False True"

    # the `mlflow ui` the sweep prints for a user to paste, run by MLflow alone (probe Y)
    printed = partial(
        last_line, "import experiments.stores.dashboard as d; print(d.ui_address()[1])"
    )
    settings, _ = printed().split(" mlflow ui ", 1)
    assert answer("mlflow alone", **dict(v.split("=", 1) for v in settings.split())) == "True False"
    for on in ("false", "0", "False"):  # the user's: telemetry on, as MLflow reads them
        assert printed(MLFLOW_DISABLE_TELEMETRY=on).startswith("mlflow ui "), on


def test_a_folder_with_spaces_gets_no_stray_percent_encoded_folder(tmp_path, monkeypatch) -> None:
    """MLflow's default store URI percent-encodes the folder, then makes that path a folder."""
    here = tmp_path / "my study"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    uri = tracking.use_store(None)
    tracking.open_store()
    assert uri == f"sqlite:///{here}/mlflow.db" and (here / "mlflow.db").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my study"]


def test_a_store_elsewhere_keeps_its_artifacts_beside_it(tmp_path, monkeypatch) -> None:
    """A SQLite store given by path outside the working folder keeps the study's artifacts in its
    own folder (MLflow would put them in the working folder's ./mlruns); a store in the working
    folder keeps MLflow's own layout."""
    records, elsewhere = tmp_path / "records", tmp_path / "elsewhere"
    records.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    tracking.use_store(f"sqlite:///{records}/mlflow.db")
    experiment_id = tracking.use_experiment("study a/b")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_text("kept", "note.txt")
    kept = records / "mlruns" / "study_a_b" / run.info.run_id / "artifacts" / "note.txt"
    assert kept.read_text() == "kept"
    assert list(elsewhere.iterdir()) == []
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/note.txt") == "kept"
    with mlflow.start_run(experiment_id=tracking.use_experiment("..")) as run:  # not a way out
        mlflow.log_text("kept", "note.txt")
    assert (records / "mlruns" / "_" / run.info.run_id / "artifacts" / "note.txt").is_file()

    monkeypatch.chdir(records)  # a store in the working folder: MLflow's own layout
    tracking.use_store(f"sqlite:///{records}/here.db")
    experiment_id = tracking.use_experiment("here")
    location = MlflowClient().get_experiment(experiment_id).artifact_location
    assert location == str(records / "mlruns" / experiment_id)


@pytest.mark.parametrize(
    ("more", "message"),
    [
        (["--timeout", "0"], "--timeout must be more than 0 seconds, got 0.0"),
        (["--timeout", "nan"], "--timeout must be more than 0 seconds, got nan"),
        (["--study", " "], "argument --study: an empty name: name one, or leave the flag out"),
        (
            ["--tracking-uri", ""],
            "argument --tracking-uri: an empty name: name one, or leave the flag out",
        ),
        (["--study", "a b!"], "--study 'a b!': use letters, digits, '_', '-' and '.' only"),
        (
            ["--heads", "nomatch*"],
            "--heads 'nomatch*' matches no head (a shell pattern, or several joined by commas: "
            "'lstm*,dense*'); available: ",
        ),
        (["--seed", "-1"], "--seed must be between 0 and 2**32 - 1, got -1"),
    ],
)
def test_a_bad_search_flag_is_one_line(data, more, message, capsys) -> None:
    """Refused as the flags are read: before any data is read or features extracted."""
    if message.endswith("available: "):
        message += ", ".join(heads.list_heads())
    with pytest.raises(SystemExit) as stop:
        sweep.parse_args(argv(data, *more))
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"error: {message}")


def test_a_cache_folder_that_cannot_be_made_is_one_line(data, tmp_path, capsys) -> None:
    os.chdir(tmp_path)
    (tmp_path / "taken").write_text("a file where the cache folder should be")
    flags = argv(data, "--study", "x")
    flags[flags.index("--cache-dir") + 1] = str(tmp_path / "taken" / "cache")
    assert sweep.main(flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'taken' / 'cache' / 'features'}: Not a directory"]


def test_a_study_tracked_in_another_store_says_so(data, tmp_path, capsys) -> None:
    """The study's trials finished, but this --tracking-uri holds no experiment of it: refused
    in one line before this store is written (not even created), whether it resumes the study
    or only shows it; a store whose runs of it were deleted says so at the end."""
    os.chdir(tmp_path)
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db")
    flags = ("--study", "elsewhere", "--trials", "1")
    first = f"sqlite:///{tmp_path}/a.db"
    assert sweep.main(argv(data, *stores, "--tracking-uri", first, *flags)) == 0
    capsys.readouterr()
    other = f"sqlite:///{tmp_path}/b.db"
    for trials in ("1", "2"):  # shown as it stands, or resumed
        more = ("--study", "elsewhere", "--trials", trials)
        assert sweep.main(argv(data, *stores, "--tracking-uri", other, *more)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == (
            f"error: study elsewhere has 1 complete trial in its database, but the tracking "
            f"store {other} holds no experiment of it: they were tracked in another store (pass "
            f"the --tracking-uri they ran with), or choose another --study"
        )
        assert not (tmp_path / "b.db").exists()
    mlflow.set_tracking_uri(first)
    for run in MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("elsewhere").experiment_id]
    ):
        MlflowClient().delete_run(run.info.run_id)
    assert sweep.main(argv(data, *stores, "--tracking-uri", first, *flags)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"error: study elsewhere's trials (1 complete) finished in its database, but the tracking "
        f"store {first} holds no finished run of them: they were tracked in another store (pass "
        f"the --tracking-uri they ran with) or deleted from this one"
    )


def sqlite_full() -> Exception:
    """SQLite's own "database or disk is full" (SQLITE_FULL), from a database held to its page
    count, as SQLAlchemy raises it."""
    import sqlalchemy

    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE TABLE t (x BLOB)")
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {pages}")
        connection.execute("INSERT INTO t VALUES (zeroblob(100000))")
    except sqlite3.OperationalError as err:
        return sqlalchemy.exc.OperationalError("UPDATE trials SET state=?", (), err)
    finally:
        connection.close()
    raise AssertionError("SQLite took a row past its database's size")


def test_a_full_disk_under_the_studys_database_is_one_line_not_an_outage(
    data, tmp_path, capsys, monkeypatch
) -> None:
    """SQLite's "database or disk is full" as a trial ended read as the database not answering:
    "database unreachable ... waiting for it up to 120s", then status 3 (probe: optuna.db on a
    full tmpfs). One line at once now, status 2; the trial stays RUNNING, for the rerun to find
    its worker gone and run it again."""
    os.chdir(tmp_path)
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db", "--study", "full-db")
    stores += ("--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--trials", "1")
    real = optuna.storages.RDBStorage.set_trial_state_values

    def full(self, trial_id, state, values=None):
        if state == optuna.trial.TrialState.COMPLETE:  # the trial's end: the disk is full
            raise sqlite_full()
        return real(self, trial_id, state, values)

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_state_values", full)
    capsys.readouterr()
    assert sweep.main(argv(data, *stores, heads="lstm30")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    said = (
        "no space left on the device (database or disk is full) as trial 0 was recorded in the "
        "study's database: free space and rerun the same command (the trial runs again)"
    )
    assert err[-1] == f"error: {said}", err[-5:]
    assert not [line for line in err if "unreachable" in line or "Traceback" in line]
    monkeypatch.undo()
    study = optuna.load_study(study_name="full-db", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state.name for t in study.trials] == ["RUNNING"]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (experiment,) = [e for e in client.search_experiments() if e.name == "full-db"]
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags[tracking.ROLE_TAG] == "study")
    assert (parent.info.status, parent.data.tags[tracking.ERROR_TAG]) == ("FAILED", said)


def test_a_disk_that_fills_as_a_sweep_extracts_is_said_as_extractions(
    data, tmp_path, capsys, monkeypatch
) -> None:
    """The sweep's last word on a full disk read the database's words for it in any error: the
    extraction's own line, which quotes "No space left on device", was said again as if the
    study's closing had written (review)."""

    from core.features import store

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    os.chdir(tmp_path)
    monkeypatch.setattr(store.os, "pwrite", full)
    capsys.readouterr()
    code = sweep.main(argv(data, "--cache-dir", str(tmp_path / "cache"), "--study", "x"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith(f"error: {tmp_path / 'cache' / 'features'}/.pending-")
    assert err[-1].endswith(
        ": no space left on the device as the features were written (No space left on device): "
        "free space and run the same command again (it resumes after the last chunk finished)"
    )


def test_a_sweep_begun_on_a_full_disk_is_one_line_and_makes_nothing(
    data, tmp_path, capsys, monkeypatch
) -> None:
    """It said "no space left on the device ... as the study's closing wrote" of a study it had
    not begun, and left an empty optuna.db (probe: a full tmpfs). The stores' disk is looked at
    before either is opened."""
    import shutil

    real = shutil.disk_usage

    def full(path):  # the disk under tmp_path, as a full one reports itself
        usage = real(path)
        return usage._replace(free=500) if Path(path).is_relative_to(tmp_path) else usage

    monkeypatch.setattr(wal.shutil, "disk_usage", full)
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db")
    stores += ("--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")
    capsys.readouterr()
    assert sweep.main(argv(data, *stores)) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --storage sqlite:///{tmp_path}/optuna.db: no space left on the device of "
        f"{tmp_path} (0 kB free): free space and rerun the same command"
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_on_a_read_only_feature_cache_says_so(data, tmp_path, capsys) -> None:
    """A read-only cache's line was said as the study's closing (review): the worker's stop on a
    read-only place is for a trial's files; a one-line error keeps its own words."""
    os.chdir(tmp_path)
    with tmpfs(tmp_path / "disk", 1) as disk:
        read_only(disk)
        flags = argv(data, "--storage", f"sqlite:///{tmp_path}/optuna.db")
        flags[flags.index("--cache-dir") + 1] = str(disk)
        capsys.readouterr()
        assert sweep.main([*flags, "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]) == 2
        (said,) = capsys.readouterr().err.strip().splitlines()
        assert said.startswith(f"error: {disk}") and said.endswith(
            f": Read-only file system; the feature cache {disk} must be writable: give "
            "--cache-dir one that is"
        ), said


def test_a_sweep_whose_reader_stops_keeps_the_trial_it_finished(data, tmp_path) -> None:
    """``sweep.py | head``: a BrokenPipeError raised by the trial line of a trial that had
    trained failed it in Optuna's hands (never run again) and ended in a traceback (probe). The
    trial's result is kept, the sweep stops at the next in one line, that trial queued again."""
    os.chdir(tmp_path)
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db", "--study", "piped")
    stores += ("--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")
    command = [sys.executable, str(REPO / "experiments" / "sweep.py")]
    command += argv(data, *stores, "--trials", "2", heads="lstm30,dense2048")
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")  # each line as printed
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path, text=True
    )
    for line in child.stdout:
        if line.startswith("trial head"):  # the header: the first trial is training now
            break
    child.stdout.close()  # as head does once it has its lines
    err = child.stderr.read()
    assert child.wait(timeout=600) == 2, err
    assert err.splitlines()[-1] == (
        "error: the output's reader stopped (broken pipe): rerun the same command to go on (the "
        "trial runs again)"
    )
    assert "Traceback" not in err, err
    study = optuna.load_study(study_name="piped", storage=stores[1])
    states = [t.state.name for t in study.trials]
    assert states[0] == "COMPLETE" and "FAIL" not in states[2:], states
    assert sweep.main(argv(data, *stores, "--trials", "2", heads="lstm30,dense2048")) == 0
    done = [t for t in optuna.load_study(study_name="piped", storage=stores[1]).trials]
    assert sorted(t.params["head"] for t in done if t.state.name == "COMPLETE") == [
        "dense",
        "lstm",
    ]  # the first kept, not run again; the second queued and run


def test_a_sweep_whose_stdout_fills_says_so_and_keeps_its_study(
    data, tmp_path, capsys, monkeypatch
) -> None:
    """Redirected to a file on a full disk, the sweep said "no space left on the device as the
    study's closing wrote", of a study it had not begun (probe). /dev/full: ENOSPC every write."""
    os.chdir(tmp_path)
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db", "--study", "said")
    stores += ("--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")
    assert sweep.main(argv(data, *stores, "--trials", "1")) == 0
    capsys.readouterr()
    for trials in ("1", "2"):  # the finished study's comparison; a study with a trial to run
        with open("/dev/full", "w") as full:
            with monkeypatch.context() as patch:
                patch.setattr(sys, "stdout", full)
                code = sweep.main(argv(data, *stores, "--trials", trials))
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and err == ["error: stdout cannot be written (No space left on device)"]
        assert not [line for line in err if "Traceback" in line]
    study = optuna.load_study(study_name="said", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
    assert sweep.main(argv(data, *stores, "--trials", "2")) == 0  # and the next run goes on


@pytest.mark.parametrize(
    "code, said",
    [
        (errno.ENOSPC, "no space left on the device ({}) as trial 1 saved its files: free space"),
        (errno.EROFS, "Read-only file system ({}) as trial 1 saved its files: make it writable"),
    ],
    ids=["full", "read-only"],
)
def test_a_disk_full_as_a_trial_saves_its_files_stops_the_worker_and_queues_it(
    data, tmp_path, capsys, monkeypatch, code, said
) -> None:
    """The trial failed with Optuna's traceback and another, was never run again, and the study
    ended a trial short (probe: a 3 MB tmpfs; a read-only artifact folder the same: probe). One
    line now; the rerun runs it."""
    from experiments.trial import artifacts

    os.chdir(tmp_path)
    stores = ("--storage", f"sqlite:///{tmp_path}/optuna.db", "--study", "full")
    stores += ("--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--trials", "2")
    real = artifacts.log_trial_artifacts
    calls = []

    def full(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second trial's files
            raise OSError(code, os.strerror(code), str(tmp_path / "mlartifacts"))
        return real(*args, **kwargs)

    monkeypatch.setattr(artifacts, "log_trial_artifacts", full)
    capsys.readouterr()
    assert sweep.main(argv(data, *stores, heads="lstm30,dense2048")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"error: {said.format(tmp_path / 'mlartifacts')} and rerun the same command (the trial "
        "runs again)"
    ), err[-5:]
    assert not [line for line in err if "Traceback" in line]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (experiment,) = [e for e in client.search_experiments() if e.name == "full"]
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags[tracking.ROLE_TAG] == "study")
    said = err[-1].removeprefix("error: ")  # not "interrupted (Ctrl-C)" (review)
    assert (parent.info.status, parent.data.tags[tracking.ERROR_TAG]) == ("FAILED", said)
    stopped = next(
        r for r in runs if r.data.tags[tracking.ROLE_TAG] == "trial" and r.info.status != "FINISHED"
    )
    assert (stopped.info.status, stopped.data.tags[tracking.ERROR_TAG]) == (
        "KILLED",
        f"stopped: {said}",
    )
    monkeypatch.setattr(artifacts, "log_trial_artifacts", real)
    assert sweep.main(argv(data, *stores, heads="lstm30,dense2048")) == 0
    study = optuna.load_study(study_name="full", storage=f"sqlite:///{tmp_path}/optuna.db")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["head"] for t in complete) == ["dense", "lstm"]  # both ran
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")  # the list counts it stopped,
    (listed,) = studies.studies().to_dict("records")  # not failed beside its rerun (probe)
    counts = [listed[said] for _, said in studies.COUNTED]
    assert counts == [2, 1, 0], listed
    if code != errno.ENOSPC:
        return
    # a quota (EDQUOT) as the study's closing writes its report: the same one line (review)
    from experiments.results import parent_run

    def quota(*args, **kwargs):
        raise OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp_path / "report.html"))

    monkeypatch.setattr(parent_run, "log_comparison", quota)
    more = ("--storage", f"sqlite:///{tmp_path}/optuna.db", "--study", "closing")
    more += ("--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--trials", "1")
    capsys.readouterr()
    assert sweep.main(argv(data, *more)) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: no space left on the device ({tmp_path / 'report.html'}) as the study's closing "
        "wrote: free space and rerun the same command (finished trials are kept)"
    )
