"""A real sweep: real Optuna (SQLite), real MLflow (SQLite + local artifacts), the real backbone.

The data set is tiny (16 clips of 3 frames, given splits) so the whole module runs in a couple of
minutes on 2 cores; the feature cache is shared by every sweep in the module.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.metadata
import io
import itertools
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest.mock import Mock
from urllib.parse import urlparse

import cv2
import h5py
import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service.utils import _get_default_tracking_uri
from sklearn.metrics import roc_auc_score, roc_curve

import heads
from core.features import FeatureOptions
from core.features.request import resolve_precision
from experiments.commands import compare, replay, sweep
from experiments.commands import study as sweep_study
from experiments.commands.study import run_sweep
from experiments.commands.sweep import SweepConfig
from experiments.config import EvaluationOptions
from experiments.results import parent_run
from experiments.stores import retries, runs_table, tracking
from experiments.trial import objective, training
from experiments.trial.search import baselines
from tests.reference import auc_agrees, bob_measure
from tests.test_evaluation import bob_report
from tests.test_extract_cli import BACKENDS, NATIVE_LOG, REPO, run_reading_modules

FRAMES = 3
SWEEP = Path(__file__).resolve().parents[1] / "experiments" / "sweep.py"
WRITE_UP = {name: heads.get_spec(name).paper_total_params for name in heads.list_heads()}
WRITE_UP = {name: count for name, count in WRITE_UP.items() if count is not None}


def write_tiny_set(root, seed: int = 0) -> None:  # seed 1: another set, subjects 11-14
    """Given splits, disjoint subjects; bona fide frames move, print is still, replay striped.

    Dev and test hold two attacks of each species: Bob's far_threshold (BPCER20) needs two.
    """
    rng = np.random.default_rng(seed)
    subjects = {"train": (1, 2), "dev": (3,), "test": (4,)}
    subjects = {split: tuple(10 * seed + i for i in ids) for split, ids in subjects.items()}
    kinds = ["real", "real", "attack/print", "attack/replay"]
    for split, ids in subjects.items():
        more = [] if split == "train" else ["attack/print", "attack/replay"]
        for n, kind in enumerate(kinds + more):
            subject = ids[n % len(ids)]
            folder = root / split / kind / f"client{subject:03d}_{n}"
            folder.mkdir(parents=True)
            base = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            for f in range(FRAMES + 1):
                frame = base.copy()
                if kind == "real":
                    frame = np.roll(frame, 4 * f, axis=1)
                elif kind == "attack/replay":
                    frame[::4] = 255
                cv2.imwrite(str(folder / f"{f:03d}.png"), frame)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    write_tiny_set(root / "data")
    return root


def config(workspace, study: str, **overrides) -> SweepConfig:
    values = dict(
        features=FeatureOptions(
            data=workspace / "data", cache_dir=workspace / "cache", frames=FRAMES
        ),
        storage=f"sqlite:///{workspace}/optuna.db",
        tracking_uri=f"sqlite:///{workspace}/mlflow.db",
        study=study,
    )
    values.update(overrides)
    return SweepConfig(**values)


@pytest.fixture(scope="module")
def first_sweep(workspace):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workspace)  # MLflow puts artifacts under ./mlruns, as for a user
        # No pruning: every run of this sweep must finish to have its figures checked.
        return run_sweep(config(workspace, "main", trials=7), pruner=optuna.pruners.NopPruner())


def child_runs(result) -> pd.DataFrame:
    return mlflow.search_runs(
        [result.experiment_id], filter_string="tags.`vggface_heads.role` = 'trial'"
    )


def test_experiment_parent_and_one_child_run_per_trial(first_sweep, workspace):
    client = MlflowClient()
    experiment = client.get_experiment(first_sweep.experiment_id)
    assert experiment.name == "main"
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"

    parent = client.get_run(first_sweep.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["trials"] == "7" and parent.data.tags["synthetic"] == "false"
    assert parent.data.tags["random_weights"] == "true"  # no weights file: flagged on every run
    assert parent.data.tags["evaluation"] == "intra-dataset"
    assert parent.data.tags["test_data"] == "same as data" and parent.data.tags["folds"] == "none"

    runs = child_runs(first_sweep)
    trials = first_sweep.study.get_trials()
    assert len(trials) == len(runs) == 7
    numbers = runs["tags.optuna.trial_number"].astype(int)
    by_number = dict(zip(numbers, runs["run_id"], strict=True))
    assert sorted(by_number) == [t.number for t in trials]
    for trial in trials:
        run = client.get_run(by_number[trial.number])
        assert run.data.tags["mlflow.parentRunId"] == first_sweep.parent_run_id
        assert run.data.tags["optuna.study_name"] == "main"
        # the detector is named on every run: user data is face-cropped by default
        assert run.data.tags["face_crop"] == first_sweep.features.face_crop_method != "none"
        assert run.info.run_name == f"{trial.number}-{run.data.params['head']}"
        assert run.info.status == "FINISHED" and trial.state == optuna.trial.TrialState.COMPLETE
        assert run.data.metrics["dev_acer"] == pytest.approx(trial.value)
        # README: each trial trains once, seeded --seed plus its trial number
        assert int(run.data.params["seed"]) == config(workspace, "main").seed + trial.number
        # the pruner reads the curve the run logs: dev ACER after each epoch, by epoch
        curve = client.get_metric_history(run.info.run_id, "epoch_dev_acer")
        assert {m.step: m.value for m in curve} == trial.intermediate_values != {}


def test_write_up_baselines_come_first_with_their_exact_counts(first_sweep):
    runs = child_runs(first_sweep).sort_values(
        "tags.optuna.trial_number", key=lambda s: s.astype(int)
    )
    first_five = runs.head(5)
    assert sorted(first_five["params.head"]) == sorted(WRITE_UP)
    for _, run in first_five.iterrows():
        assert run["metrics.params_total"] == WRITE_UP[run["params.head"]]
        assert run["tags.vggface_heads.baseline"] == run["params.head"]
        assert run["params.output"] == "softmax" and run["params.dropout"] == "0.2"
        assert run["params.optimizer"] == "adam"
    for _, run in runs.iterrows():  # the backbone is frozen: only the head trains
        assert run["metrics.params_trainable"] == run["metrics.params_head"]
        assert run["metrics.params_total"] == 134_260_544 + run["metrics.params_head"]


def logged_scores(run, tmp_path) -> pd.DataFrame:
    path = mlflow.artifacts.download_artifacts(
        run_id=run["run_id"], artifact_path="scores.csv", dst_path=str(tmp_path / run["run_id"])
    )
    return pd.read_csv(path, keep_default_na=False)


def test_logged_threshold_free_figures_equal_scikit_learn_on_scores_csv(first_sweep, tmp_path):
    """AUC and TPR at FPR 1 % / 0.1 % (bona fide positive) by scikit-learn, accuracy by hand at
    the logged dev threshold; the figures Bob computes are checked against Bob below."""
    runs = child_runs(first_sweep)
    assert len(runs) == 7  # every trial's, checked (an empty search passed: review)
    for _, run in runs.iterrows():
        scores = logged_scores(run, tmp_path)
        assert list(scores.columns[:3]) == ["split", "clip", "file"]
        assert list(scores.columns[3:6]) == ["subject", "label", "attack_type"]
        assert list(scores.columns[-3:]) == ["fold", "repeat", "score"]
        # a clip's file, after the data folder, is the clip (here folders of frames: the id)
        assert all((Path(run["tags.data"]) / name).is_dir() for name in scores["file"])
        assert scores["file"].equals(scores["clip"])
        assert sorted(scores["split"].unique()) == ["dev", "test"]
        assert len(scores) == 12  # one row per dev and test clip, frames averaged
        assert set(scores["label"]) == {"bonafide", "attack"}
        test = scores[scores["split"] == "test"]
        labels = (test["label"] == "bonafide").to_numpy(int)
        values = test["score"].to_numpy(np.float64)
        fpr, tpr, _ = roc_curve(labels, values)
        assert auc_agrees(run["metrics.test_auc"], roc_auc_score(labels, values))
        assert run["metrics.test_tpr_fpr1"] == tpr[fpr <= 0.01][-1]
        assert run["metrics.test_tpr_fpr01"] == tpr[fpr <= 0.001][-1]
        accepted = values >= run["metrics.dev_threshold"]
        assert run["metrics.test_accuracy"] == np.mean(accepted == labels.astype(bool))


def stored_values(path) -> int:
    """Number of values in an HDF5 weights file."""
    sizes: list[int] = []
    with h5py.File(path) as weights:
        weights.visititems(lambda _, item: sizes.append(getattr(item, "size", 0)))
    return sum(sizes)


def test_only_each_familys_improvements_keep_their_head_weights(first_sweep, tmp_path):
    """--keep-weights best (the default): a trial logs its head weights, without optimizer
    state, only when it beats every earlier finished trial of its family: on dev ACER, a tie
    broken by dev EER, then by fewer parameters (README, "best")."""
    client = MlflowClient()
    runs = child_runs(first_sweep)
    runs = runs[runs["status"] == "FINISHED"]
    runs = runs.assign(trial=runs["tags.optuna.trial_number"].astype(int)).sort_values("trial")
    best: dict[str, tuple[float, float, float]] = {}
    kept = 0
    for _, run in runs.iterrows():
        family = run["params.family"]
        key = tuple(run[f"metrics.{m}"] for m in ("dev_acer", "dev_eer", "params_total"))
        expected = family not in best or key < best[family]
        best[family] = min(key, best.get(family, key))
        names = {a.path for a in client.list_artifacts(run["run_id"])}
        assert ("head.weights.h5" in names) == expected, (run["trial"], family, key)
        if expected:
            kept += 1
            path = client.download_artifacts(run["run_id"], "head.weights.h5", str(tmp_path))
            assert stored_values(path) == run["metrics.params_head"]  # no optimizer slots
            Path(path).unlink()
    assert 0 < kept <= len(runs)


def test_every_test_figure_equals_bob_measure_on_scores_csv(first_sweep, tmp_path):
    """EER threshold, APCER per species, BPCER, ACER, HTER, BPCER20/100, test EER, intervals."""
    bob = bob_measure()
    runs = child_runs(first_sweep)
    assert len(runs) == 7  # every trial's, checked (an empty search passed: review)
    for _, run in runs.iterrows():
        by_bob = bob_report(logged_scores(run, tmp_path), bob)
        assert {"test_apcer_print", "test_apcer_replay", "test_bpcer100"} <= set(by_bob)
        assert {key: run[f"metrics.{key}"] for key in by_bob} == by_bob


def test_both_stores_are_in_write_ahead_log_mode(first_sweep, workspace):
    for name in ("optuna.db", "mlflow.db"):
        with sqlite3.connect(workspace / name) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal", name
        connection.close()


def test_trial_artifacts_and_epoch_curves(first_sweep):
    client = MlflowClient()
    runs = child_runs(first_sweep)
    run_id = runs["run_id"].iloc[0]
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"scores.csv", "model_summary.txt", "roc_det.png", "confusion.png"} <= names
    history = client.get_metric_history(run_id, "epoch_dev_acer")
    assert [m.step for m in history] == list(range(1, len(history) + 1))
    assert len(client.get_metric_history(run_id, "epoch_train_loss")) == len(history)
    for metric in (
        "train_seconds",
        "test_accuracy",
        "test_auc",
        "test_apcer",
        "test_bpcer",
        "test_hter",
        "dev_eer",
        "dev_threshold",
    ):
        assert math.isfinite(client.get_run(run_id).data.metrics[metric])


def test_parent_run_holds_the_comparison(first_sweep, tmp_path):
    client = MlflowClient()
    names = {a.path for a in client.list_artifacts(first_sweep.parent_run_id)}
    assert {
        "comparison.csv",
        "comparison.json",
        "report.html",
        "best_per_family.csv",
        "best_per_family.json",
    } <= names
    assert not any(name.startswith("optuna_") for name in names)  # Optuna's plots: in the report
    table = pd.read_csv(
        mlflow.artifacts.download_artifacts(
            run_id=first_sweep.parent_run_id, artifact_path="comparison.csv", dst_path=str(tmp_path)
        )
    )
    groups = set(table["group"])
    assert {f"write-up {name}" for name in WRITE_UP} <= groups
    text = (tmp_path / "comparison.csv").read_text()
    for count in table["params_total"]:  # counts as counts: 184637260, not 184637260.0
        assert f",{count}," in text and f",{count}.0," not in text
    assert "params_trainable" not in table  # a frozen study's: its head's, not repeated
    assert {g for g in groups if g.startswith("best ")} == {
        "best " + family for family in child_runs(first_sweep)["params.family"].unique()
    }
    # Best of a family is its lowest dev ACER: chosen on dev, never on test.
    runs = child_runs(first_sweep)
    for _, row in runs_table.family_bests(table).iterrows():
        family = runs[runs["params.family"] == row["group"][5:]]
        assert row["dev_acer"] == pytest.approx(family["metrics.dev_acer"].min())
    html = (tmp_path / "report.html").read_text() if (tmp_path / "report.html").exists() else ""
    html = (
        html
        or open(
            mlflow.artifacts.download_artifacts(
                run_id=first_sweep.parent_run_id,
                artifact_path="report.html",
                dst_path=str(tmp_path),
            )
        ).read()
    )
    assert "Pareto front" in html and "Test ROC" in html
    assert "test_apcer_print" in html and "test_hter 95% CI" in html  # every figure in the report
    assert "test data: same as data" in html


def test_compare_prints_the_comparison_as_markdown(first_sweep, capsys):
    assert compare.main(["--study", "main", "--tracking-uri", mlflow.get_tracking_uri()]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Study main")
    assert "| group | head | trial |" in out and "| write-up conv4096 | conv4096 |" in out
    assert "151,050,050" in out
    assert compare.main(["--study", "absent", "--tracking-uri", mlflow.get_tracking_uri()]) == 2


def test_compare_lists_studies_and_defaults_to_the_one_that_ran_last(first_sweep, capsys):
    uri = mlflow.get_tracking_uri()
    runs = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.`vggface_heads.role` = 'trial'"
    )
    last = pd.concat([runs["start_time"], runs["end_time"]]).groupby(level=0).max()
    newest = runs.loc[last.idxmax(), "tags.optuna.study_name"]

    assert compare.main(["--list", "--tracking-uri", uri]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["study", "complete", "trials"]
    assert lines[1].split()[0] == newest  # newest first
    finished = (runs["tags.optuna.study_name"] == "main") & (runs["status"] == "FINISHED")
    main_row = next(line.split() for line in lines[1:] if line.split()[0] == "main")
    assert int(main_row[1]) == int(finished.sum())

    assert compare.main(["--tracking-uri", uri]) == 0
    assert capsys.readouterr().out.startswith(f"# Study {newest}\n")


STORE_LIBRARIES = ("mlflow", "optuna", "sqlalchemy")


def sweep_as_a_user(workspace, flags: list[str]) -> tuple[str, list[str]]:
    """``python experiments/sweep.py flags`` in ``workspace``: what it printed, and which of the
    backends and the stores' libraries it imported."""
    done = run_reading_modules(SWEEP, *flags, cwd=workspace, modules=BACKENDS + STORE_LIBRARIES)
    assert done.returncode == 0, done.stderr[-3000:]
    *printed, imported = done.stdout.rstrip("\n").split("\n")
    assert imported.startswith("imported: "), done.stdout[-300:]
    return "\n".join(printed), ast.literal_eval(imported.removeprefix("imported: "))


def test_a_rerun_of_a_finished_study_loads_no_backend_then_replays_its_closing(
    first_sweep, workspace
):
    """The command again on a finished study prints the comparison and imports no deep-learning
    backend (TensorFlow's import was 13 of the 20 s such a rerun of the default study took): the
    script run as ``python`` runs it, its modules read after it ends. It records what it printed;
    the next rerun prints the same without importing MLflow, Optuna or SQLAlchemy, until a
    store's bytes change (a tag set on a run) or the record is unreadable: then the full path
    runs again, prints the same and records again."""
    flags = ["--data", "data", "--frames", str(FRAMES), "--cache-dir", "cache", "--study", "main"]
    flags += ["--trials", "7", "--storage", f"sqlite:///{workspace}/optuna.db"]
    tracking_uri = f"sqlite:///{workspace}/mlflow.db"
    flags += ["--tracking-uri", tracking_uri]

    def rerun() -> tuple[str, list[str]]:
        return sweep_as_a_user(workspace, flags)

    out, imported = rerun()
    assert "features: 16 clips x 3 frames, reused" in out, out[-3000:]
    assert "study main: " in out and "nothing left to run" in out
    write_up = [line.split() for line in out.splitlines() if line.startswith("write-up ")]
    assert {row[1] for row in write_up} == set(WRITE_UP)  # the comparison, every write-up head
    assert "best head by dev ACER: " in out
    assert imported == sorted(STORE_LIBRARIES), imported  # the stores, no backend

    assert rerun() == (out, [])  # replayed: the same lines, neither store opened
    run_id = (
        MlflowClient(tracking_uri)
        .search_runs([first_sweep.experiment_id], "tags.`vggface_heads.role` = 'trial'")[0]
        .info.run_id
    )
    MlflowClient(tracking_uri).set_tag(run_id, "seen", "yes")  # the tracking store's bytes change
    assert rerun() == (out, sorted(STORE_LIBRARIES))  # the full path, and a new record
    assert rerun() == (out, [])
    (record,) = (workspace / "cache" / "closings").glob("*.json")
    record.write_text('{"files": ')  # cut short
    assert rerun() == (out, sorted(STORE_LIBRARIES))
    assert rerun() == (out, [])
    # a figure changed in a record that still parses: its checksum refuses it (a probe's edit
    # was printed as the study's figures)
    edited = json.loads(record.read_text())
    at = next(i for i, line in enumerate(edited["lines"]) if "best head by dev ACER" in line)
    edited["lines"][at] = re.sub(r"dev ACER [\d.]+%", "dev ACER 1.4%", edited["lines"][at])
    assert edited["lines"][at] not in out.splitlines()
    record.write_text(json.dumps(edited))
    assert rerun() == (out, sorted(STORE_LIBRARIES))  # the full path's figures, recorded again
    assert rerun() == (out, [])
    # its report deleted by hand: the full path writes it again (the replay named a file gone)
    (named,) = [line for line in out.splitlines() if line.startswith("report: ")]
    report = Path(named.removeprefix("report: "))
    report.unlink()
    again, imported = rerun()
    assert imported == sorted(STORE_LIBRARIES) and report.is_file(), again[-2000:]
    assert "missing from its newest parent run, written on run" in again
    assert rerun() == (out, [])  # and recorded again
    # its features gone from the cache: not extracted again (it was, before the same closing)
    entry = first_sweep.features.path
    aside = entry.with_name(f"{entry.name}.aside")
    entry.rename(aside)
    try:
        missing, imported = rerun()
    finally:
        aside.rename(entry)
    assert imported == [], missing[-2000:]  # neither a backend nor a store
    said = (
        f"features: cache entry {entry.name[:12]} is not in the cache (or not usable), and not "
        "extracted: the study is finished (a trial to run would extract them)"
    )
    assert said in missing.splitlines(), missing[-2000:]
    (record,) = (workspace / "cache" / "closings").glob("*.json")
    closing = "\n".join(json.loads(record.read_text())["lines"])
    assert missing.endswith(closing) and out.endswith(closing)
    assert not any(p.name.startswith(".pending") for p in entry.parent.iterdir())
    # ... nor after a write to the stores (another study's, a tag in the UI): read from them
    MlflowClient(tracking_uri).set_tag(run_id, "seen", "again")
    entry.rename(aside)
    try:
        missing, imported = rerun()
    finally:
        aside.rename(entry)
    assert "keras" not in imported and "mlflow" in imported, imported  # no backend: no extraction
    assert said in missing.splitlines() and missing.endswith(closing), missing[-2000:]
    assert not any(p.name.startswith(".pending") for p in entry.parent.iterdir())


def test_the_run_that_finishes_a_study_records_the_closing_its_rerun_prints(
    first_sweep, workspace, monkeypatch
):
    """A new study's one trial (the write-up lstm30), run as a user runs it: the rerun replays
    the record that run left, and prints what the full path prints once the record is gone. In
    a shell without MLFLOW_TRACKING_URI: MLflow sets it once the store is open, and the record
    was written under a key no rerun looked up."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    flags = ["--data", "data", "--frames", str(FRAMES), "--cache-dir", "cache"]
    flags += ["--study", "one", "--heads", "lstm30", "--trials", "1"]
    flags += ["--storage", f"sqlite:///{workspace}/optuna.db"]
    flags += ["--tracking-uri", f"sqlite:///{workspace}/mlflow.db"]

    cold, imported = sweep_as_a_user(workspace, flags)
    assert "new study one: 1 trial, the write-up head first" in cold and "keras" in imported
    replayed, imported = sweep_as_a_user(workspace, flags)
    assert imported == [], replayed[-2000:]
    assert "study one: 1 of 1 trials done, nothing left to run" in replayed
    for record in (workspace / "cache" / "closings").glob("*.json"):
        record.unlink()
    full, imported = sweep_as_a_user(workspace, flags)
    assert full == replayed and "mlflow" in imported


def test_a_rerun_names_a_report_that_exists(first_sweep, workspace, monkeypatch):
    """A worker stopped before its closing (Ctrl-C while it waited) leaves the newest parent run,
    with no report: a finished study's rerun named that run's report.html, which is not there."""
    monkeypatch.chdir(workspace)
    mlflow.set_tracking_uri(f"sqlite:///{workspace}/mlflow.db")
    client = MlflowClient()
    tags = {tracking.STUDY_TAG: "main", tracking.ROLE_TAG: "study"}
    stopped = client.create_run(first_sweep.experiment_id, tags=tags).info.run_id
    client.set_terminated(stopped, "KILLED")
    try:
        table = sweep_study.standing_comparison(first_sweep.experiment_id, "main")
        assert tracking.study_parents(first_sweep.experiment_id, "main")[0] == stopped
        assert stopped not in table.attrs["report"] and Path(table.attrs["report"]).is_file()
    finally:
        client.delete_run(stopped)  # the module's other tests count the study's parent runs


def test_a_write_while_the_closing_is_read_records_nothing(first_sweep, workspace, monkeypatch):
    """Another writer between the two stamps of the stores (here: a tag set on a trial's run
    while the comparison is read) leaves no record, so no rerun replays a stale closing; the
    same command without it records, and the record replays."""
    monkeypatch.chdir(workspace)
    command = config(workspace, "main", trials=7)
    client = MlflowClient(command.tracking_uri)
    run_id = client.search_runs([first_sweep.experiment_id])[0].info.run_id
    standing = sweep_study.standing_comparison
    writes = iter(range(10))  # a new value each time: the same one may leave the bytes as they were

    def read_while_another_writes(experiment_id, name):
        table = standing(experiment_id, name)
        client.set_tag(run_id, "written", f"meanwhile {next(writes)}")
        return table

    monkeypatch.setattr(sweep_study, "standing_comparison", read_while_another_writes)
    assert sweep_study.run_command(command) == 0
    features = first_sweep.features.fingerprint, first_sweep.features.dataset_fingerprint
    assert not replay.replay(command, *features)
    monkeypatch.setattr(sweep_study, "standing_comparison", standing)
    assert sweep_study.run_command(command) == 0
    assert replay.replay(command, *features)


def test_a_study_on_a_database_server_leaves_no_record(
    first_sweep, workspace, postgres, monkeypatch, caplog
):
    """Only SQLite files can be stamped: a study whose Optuna storage is a PostgreSQL server
    finishes as ever, records nothing and warns of nothing, so each rerun reads the server."""
    monkeypatch.chdir(workspace)
    closings = workspace / "cache" / "closings"
    before = {p.name for p in closings.glob("*.json")}
    storage = postgres.create_database("replay_server")
    command = config(workspace, "on-a-server", trials=1, heads="lstm30", storage=storage)
    assert sweep_study.run_command(command) == 0
    assert {p.name for p in closings.glob("*.json")} == before
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert not [message for message in warned if "record" in message], warned


def test_a_record_that_cannot_be_made_leaves_the_sweep_done(
    first_sweep, workspace, monkeypatch, caplog
):
    """Recording comes after the closing is printed: a failure there is one warning, exit 0."""
    monkeypatch.chdir(workspace)

    def unreadable() -> list[str]:
        raise FileNotFoundError("experiments/commands/.#study.py")

    monkeypatch.setattr(replay, "_code_stamp", unreadable)
    assert sweep_study.run_command(config(workspace, "main", trials=7)) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("not recorded for a fast rerun" in message for message in warned), warned


def test_the_default_tracking_store_is_found_as_mlflow_finds_it(tmp_path, monkeypatch):
    """Without --tracking-uri or MLFLOW_TRACKING_URI, MLflow 3 opens ./mlruns once it holds a
    file store's experiment, else mlflow.db: the record's key reads the same rule."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    plain = SweepConfig()
    seen = []
    for folder in (
        "",
        "mlruns",
        "mlruns/abc",
        "mlruns/7",
        "mlruns/abc/meta.yaml",
        "mlruns/7/meta.yaml",
    ):
        if folder.endswith(".yaml"):
            (tmp_path / folder).write_text("name: x\n")
        elif folder:
            (tmp_path / folder).mkdir()
        ours = replay._default_tracking_store(plain)
        mlflows = "mlflow.db" if _get_default_tracking_uri().startswith("sqlite") else "mlruns"
        assert ours == mlflows, folder
        seen.append(ours)
    assert seen[-1] == "mlruns" and seen[0] == "mlflow.db"
    assert replay._default_tracking_store(dataclasses.replace(plain, tracking_uri="x")) == ""


def test_only_a_closing_that_depends_on_one_feature_set_and_no_library_line_is_replayed(
    workspace,
):
    """--verbose shows the libraries' own lines, which a replay would not; test data, folds and
    a group of studies print more than one feature set and study: none of these is recorded."""
    plain = config(workspace, "main")
    assert replay.eligible(plain)
    fold = dataclasses.replace(plain.features, protocol="oulu-p3")
    assert not replay.eligible(dataclasses.replace(plain, features=fold))
    assert replay.eligible(dataclasses.replace(plain, features=dataclasses.replace(fold, fold=2)))
    assert not replay.eligible(dataclasses.replace(plain, verbose=True))
    assert not replay.eligible(dataclasses.replace(plain, then=(plain,)))
    tested = EvaluationOptions(test_data=workspace / "data")
    assert not replay.eligible(dataclasses.replace(plain, evaluation=tested))


def test_resume_runs_only_the_missing_trials(first_sweep, workspace, monkeypatch):
    """Only the missing trials run, sampled with the seed of the second worker to join: the
    full-path reruns that found the study finished (this one's first, others' before) ran
    nothing and joined no worker."""
    monkeypatch.chdir(workspace)
    assert run_sweep(config(workspace, "main", trials=7)).study is not None  # nothing to run
    again = run_sweep(config(workspace, "main", trials=8))
    trials = again.study.get_trials()
    assert len(trials) == 8  # the baselines were not enqueued a second time
    assert [t.params["head"] for t in trials[:5]] == [p["head"] for p in baselines()]
    runs = child_runs(again)
    assert len(runs) == 8
    assert (runs["tags.mlflow.parentRunId"] == again.parent_run_id).sum() == 1
    parents = mlflow.search_runs([again.experiment_id], "tags.`vggface_heads.role` = 'study'")
    assert len(parents) == 2 and set(parents["status"]) == {"FINISHED"}
    resumed = parents[parents["run_id"] == again.parent_run_id]
    assert resumed["params.sampler_seed"].tolist() == ["1"]  # seed 0, one worker before it
    # the 8th trial ran under the sweep's own pruner: pruned exactly where the median rule says
    # (a sweep without one passed where the rule prunes nothing: its name is checked too, review)
    assert resumed["params.pruner"].tolist() == ["MedianPruner"]
    pruned = trials[7].state == optuna.trial.TrialState.PRUNED
    assert pruned == median_prunes(trials[7], trials[:7]), trials[7].intermediate_values


def median_prunes(trial: optuna.trial.FrozenTrial, before: list) -> bool:
    """Whether Optuna's MedianPruner(n_startup_trials=5, n_warmup_steps=3), as its documentation
    states the rule, stops ``trial`` given the trials ``before`` it: once five of them completed,
    at an epoch from the 3rd on, the trial's best dev ACER so far is worse than the median of
    the completed ones' at that epoch."""
    done = [t for t in before if t.state == optuna.trial.TrialState.COMPLETE]
    best = math.inf
    for step, value in sorted(trial.intermediate_values.items()):
        best = min(best, value)
        theirs = [t.intermediate_values[step] for t in done if step in t.intermediate_values]
        if len(done) >= 5 and step >= 3 and theirs and best > np.median(theirs):
            return True
    return False


def test_a_sweep_stopped_by_its_timeout_says_so(workspace, monkeypatch, capsys):
    """It printed the comparison as if the study were done."""
    monkeypatch.chdir(workspace)
    result = run_sweep(config(workspace, "timed", trials=3, heads="lstm30", timeout=0.5))
    assert retries.finished_count(result.study.get_trials()) == 1  # the deadline, once it began
    said = "stopped by --timeout 0.5: 1 of 3 trials finished; the same command goes on from there"
    assert said in capsys.readouterr().out.splitlines()


def test_a_finished_study_whose_closing_wrote_no_report_gets_it_on_its_rerun(
    workspace, monkeypatch, capsys
):
    """Its closing stopped before the report (the tracking store away; probe: its artifacts
    moved, "rerun the same command to resume" said, and the rerun printed no report at all)."""
    monkeypatch.chdir(workspace)
    first = run_sweep(config(workspace, "unreported", trials=1, heads="lstm30"))
    client = MlflowClient()
    folder = Path(urlparse(client.get_run(first.parent_run_id).info.artifact_uri).path)
    (folder / "report.html").unlink()
    client.set_terminated(first.parent_run_id, "FAILED")  # as a closing stopped by an error
    capsys.readouterr()
    again = run_sweep(config(workspace, "unreported", trials=1, heads="lstm30"))
    said = capsys.readouterr().out.splitlines()
    assert (
        f"the study's report, missing from its newest parent run, written on run "
        f"{first.parent_run_id}"
    ) in said
    assert (folder / "report.html").is_file()
    assert again.comparison.attrs["report"] == parent_run.report_location(first.parent_run_id)
    assert client.get_run(first.parent_run_id).info.status == "FAILED"  # as it ended (review)
    best = client.load_table(first.experiment_id, "best_per_family.json", [first.parent_run_id])
    assert len(best) == len(again.comparison[again.comparison["group"].str.startswith("best ")])
    run_sweep(config(workspace, "unreported", trials=1, heads="lstm30"))
    assert "missing from its newest parent run" not in capsys.readouterr().out  # once
    # a parent run whose closing wrote nothing (its disk full as it began): it has no folder of
    # its own, where the rerun writes the report; it was read as a store moved (probe)
    shutil.rmtree(folder.parent)
    run_sweep(config(workspace, "unreported", trials=1, heads="lstm30"))
    assert "missing from its newest parent run, written on run" in capsys.readouterr().out
    assert (folder / "report.html").is_file()
    # a store moved without its artifacts: said, and no folder made at the old place (review)
    (folder / "report.html").unlink()
    artifacts = Path(urlparse(client.get_experiment(first.experiment_id).artifact_location).path)
    assert folder.is_relative_to(artifacts)
    artifacts.rename(artifacts.with_name("away"))
    try:
        run_sweep(config(workspace, "unreported", trials=1, heads="lstm30"))
        said = capsys.readouterr().out
        assert "no report: the study's newest parent run has none, and its artifact folder " in said
        moving = f"python scripts/move_store.py {workspace / 'mlflow.db'} --from {workspace})"
        assert moving in said, said  # the folder it was in, not OLD_FOLDER to find
        assert not artifacts.exists()
    finally:
        artifacts.with_name("away").rename(artifacts)


def test_pruned_trial_ends_killed(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    # ThresholdPruner(lower=2) prunes any ACER (always <= 1) at the first report.
    result = run_sweep(
        config(workspace, "pruned", trials=2, heads="lstm*"),
        pruner=optuna.pruners.ThresholdPruner(lower=2.0),
    )
    states = [t.state for t in result.study.get_trials()]
    assert states == [optuna.trial.TrialState.PRUNED] * 2
    runs = child_runs(result)
    assert list(runs["status"]) == ["KILLED", "KILLED"]
    assert mlflow.get_run(result.parent_run_id).info.status == "FINISHED"
    for run_id in runs["run_id"]:  # the curve up to the pruning epoch is logged all the same
        assert [m.step for m in MlflowClient().get_metric_history(run_id, "epoch_dev_acer")] == [1]


def test_nan_loss_fails_the_trial_and_the_study_goes_on(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    real = training.make_optimizer
    calls = []

    def first_diverges(name, learning_rate):
        calls.append(name)  # the first trial's weights turn NaN after its first update
        return real(name, float("nan") if len(calls) == 1 else learning_rate)

    monkeypatch.setattr(training, "make_optimizer", first_diverges)
    result = run_sweep(config(workspace, "nan", trials=2, heads="lstm30"))
    failed, finished = result.study.get_trials()
    assert failed.state == optuna.trial.TrialState.FAIL
    assert finished.state == optuna.trial.TrialState.COMPLETE
    runs = child_runs(result).set_index("tags.optuna.trial_number")
    assert runs.loc["0", "status"] == "FAILED"
    assert "became nan at epoch 1" in runs.loc["0", "tags.error"].lower()
    assert runs.loc["1", "status"] == "FINISHED"


def test_paths_given_relative_are_recorded_absolute(workspace, monkeypatch):
    """A relative --data (or --weights) was recorded as typed: predict and the registered model,
    run from another folder, found no weights file and no clips to check the crop on."""
    monkeypatch.chdir(workspace)
    relative = FeatureOptions(data=Path("data"), cache_dir=Path("cache"), frames=FRAMES)
    result = run_sweep(config(workspace, "relative", features=relative, trials=1, heads="lstm30"))
    (tags,) = [run.filter(like="tags.") for _, run in child_runs(result).iterrows()]
    assert tags["tags.data"] == str(workspace / "data")
    assert tags["tags.weights"] == "default"  # the random backbone: no file


def test_weights_found_in_the_studys_cache_folder_are_named_for_serving(
    workspace, tmp_path, monkeypatch
):
    """No --weights, the converted file in the study's --cache-dir: the runs were tagged
    ``weights: default``, and serving, which knows no cache folder, looked in the default place
    only and refused the run until given --weights (review). The tag now names the file."""
    import keras

    from core.backbone.vggface import build_vggface
    from core.features.extract import WEIGHTS_FILE
    from experiments.serving.scorer import backbone_weights
    from experiments.serving.trial_model import trial_model

    cache = tmp_path / "cache"
    cache.mkdir()
    keras.utils.set_random_seed(1)
    build_vggface(include_top=True).save_weights(cache / WEIGHTS_FILE)  # seeded, ~580 MB
    monkeypatch.delenv("VGGFACE_WEIGHTS", raising=False)
    monkeypatch.chdir(workspace)
    options = FeatureOptions(data=workspace / "data", cache_dir=cache, frames=FRAMES)
    result = run_sweep(config(workspace, "cached", features=options, trials=1, heads="lstm30"))
    (run_id,) = child_runs(result)["run_id"]
    model = trial_model(run_id)
    assert model.weights == str(cache / WEIGHTS_FILE) and not model.random_backbone
    monkeypatch.setenv("VGGFACE_HEADS_CACHE", str(tmp_path / "elsewhere"))  # serving's default
    assert backbone_weights(model) == cache / WEIGHTS_FILE


def test_interrupted_sweep_leaves_no_run_running_and_resumes_its_trial(
    workspace, monkeypatch, capsys
):
    """Ctrl-C in a trial: its runs are KILLED, the trial failed and queued again with its
    parameters, so the same command runs it (a write-up baseline too) and ``--trials`` counts
    only the trials that ended on their own; the retry trains with the trial's seed (it drew
    from its own number, so an interrupted study's figures differed from an uninterrupted one's)."""
    monkeypatch.chdir(workspace)
    seeds = []
    train_head = objective.train_head

    def interrupt(*args, **kwargs):
        seeds.append(kwargs["seed"])
        raise KeyboardInterrupt

    def trained(*args, **kwargs):
        seeds.append(kwargs["seed"])
        return train_head(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(objective, "train_head", interrupt)
        with pytest.raises(KeyboardInterrupt):
            run_sweep(config(workspace, "interrupted", trials=2, heads="lstm30"))
    runs = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.`optuna.study_name` = 'interrupted'"
    )
    assert len(runs) == 2 and set(runs["status"]) == {"KILLED"}
    assert set(runs["tags.error"]) == {"interrupted (Ctrl-C)"}  # child and parent
    storage = optuna.load_study(
        study_name="interrupted", storage=f"sqlite:///{workspace}/optuna.db"
    )
    states = [t.state for t in storage.get_trials()]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
    capsys.readouterr()
    with monkeypatch.context() as patch:  # the retry interrupted too
        patch.setattr(objective, "train_head", interrupt)
        with pytest.raises(KeyboardInterrupt):
            run_sweep(config(workspace, "interrupted", trials=2, heads="lstm30"))
    assert (
        "trial 1 retries trial 0, which did not finish: same parameters, same seed"
        in capsys.readouterr().out
    )
    monkeypatch.setattr(objective, "train_head", trained)
    resumed = run_sweep(config(workspace, "interrupted", trials=2, heads="lstm30"))
    said = capsys.readouterr().out.splitlines()
    first = (
        "trial 2 retries trial 1, which did not finish: same parameters, same seed (first tried "
        "as trial 0)"
    )
    assert said[said.index(first) + 1].startswith("#2 ")  # its line follows
    trials = resumed.study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[2].params == trials[1].params == trials[0].params == baselines("lstm30")[0]
    assert seeds[2] == seeds[1] == seeds[0] != seeds[3]  # trial 0's seed for its retries


def test_a_second_ctrl_c_does_not_cut_the_interrupted_trials_requeue_short(workspace, monkeypatch):
    """Ctrl-C held down sends SIGINTs 30 ms apart: the second, landing while the stopped trial
    was queued again, lost it (failed, no retry: the rerun never ran its configuration) or left
    it RUNNING (probe). Here a real second SIGINT lands in the requeue."""
    from experiments.stores import workers

    monkeypatch.chdir(workspace)
    retry = workers.retry_callback

    def interrupted_again(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)  # handled at once, in this thread
        return retry(*args, **kwargs)

    def interrupt(*args, **kwargs):  # the first Ctrl-C, a real one too
        signal.raise_signal(signal.SIGINT)

    with monkeypatch.context() as patch:
        patch.setattr(objective, "train_head", interrupt)
        patch.setattr(workers, "retry_callback", interrupted_again)
        with pytest.raises(KeyboardInterrupt):
            run_sweep(config(workspace, "held", trials=2, heads="lstm30"))
    stored = optuna.load_study(study_name="held", storage=f"sqlite:///{workspace}/optuna.db")
    states = [t.state for t in stored.get_trials()]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_a_finished_studys_rerun_closes_the_parent_run_of_a_worker_killed_as_it_closed(
    workspace, monkeypatch, capsys
):
    """A sweep killed after its last trial (writing its report): the rerun of the finished study
    printed the comparison and left that parent run RUNNING (a user probe)."""
    import subprocess
    import sys

    monkeypatch.chdir(workspace)
    done = run_sweep(config(workspace, "killed-closing", trials=1, heads="lstm30"))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    client = MlflowClient()
    parent = done.parent_run_id
    client.set_tag(parent, tracking.WORKER_TAG, f"{socket.gethostname()}:{gone.pid}")
    client.update_run(parent, status="RUNNING")  # as its killed worker left it
    capsys.readouterr()
    run_sweep(config(workspace, "killed-closing", trials=1, heads="lstm30"))
    assert client.get_run(parent).info.status == "FAILED"
    assert "a parent run closed: " in capsys.readouterr().out


def test_a_stopped_baseline_runs_again_in_a_study_of_fewer_trials_than_baselines(
    workspace, monkeypatch
):
    """--trials below the write-up heads' count, the first trial stopped: the retry is the
    rerun's trial (it was queued behind every write-up head, so the rerun trained the next one
    instead and ended with the retry still waiting; a user probe)."""
    monkeypatch.chdir(workspace)
    train_head = objective.train_head
    with monkeypatch.context() as patch:
        patch.setattr(objective, "train_head", Mock(side_effect=KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            run_sweep(config(workspace, "few", trials=1, heads="dense*,lstm*"))
    monkeypatch.setattr(objective, "train_head", train_head)
    trials = run_sweep(config(workspace, "few", trials=1, heads="dense*,lstm*")).study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].params == trials[0].params == baselines("dense*,lstm*")[0]


@pytest.mark.parametrize(
    ("verbose", "stop"),
    [(False, None), (True, None), (False, signal.SIGINT), (False, signal.SIGTERM)],
    ids=["raised", "raised-verbose", "sigint", "sigterm"],  # SIGTERM: docker stop, Slurm
)
def test_ctrl_c_in_a_trial_is_said_in_the_sweeps_one_line(
    workspace, monkeypatch, capsys, verbose, stop
):
    """Ctrl-C in a trial: the sweep's ``interrupted: ...`` line says it; Optuna's two warnings
    about the trial ('Trial 0 failed with parameters: {...} because of the following error:
    KeyboardInterrupt().', 'Trial 0 failed with value None.') came before it. With --verbose,
    Optuna's first line stays, without its traceback. A real SIGINT does the same, and so does
    SIGTERM, which killed the sweep at once saying nothing (probe); the trial is queued again."""
    monkeypatch.chdir(workspace)
    said = logging.StreamHandler(io.StringIO())  # beside Optuna's own handler, filtered alike
    logging.getLogger("optuna").addHandler(said)
    terminate = signal.getsignal(signal.SIGTERM)

    def interrupt(*args, **kwargs):
        if stop is None:
            raise KeyboardInterrupt
        if stop == signal.SIGTERM:  # its default would end this test process: the sweep's own
            assert callable(signal.getsignal(stop)) and signal.getsignal(stop) != terminate
        signal.pthread_kill(threading.get_ident(), stop)
        time.sleep(5)  # the handler raises here, at once
        raise AssertionError(f"signal {stop} did not stop the trial")

    monkeypatch.setattr(objective, "train_head", interrupt)
    study = f"ctrl-c-{verbose}-{stop or 'raised'}".lower()
    argv = ["--data", str(workspace / "data"), "--cache-dir", str(workspace / "cache")]
    argv += ["--storage", f"sqlite:///{workspace}/optuna.db", "--frames", str(FRAMES)]
    argv += ["--tracking-uri", f"sqlite:///{workspace}/mlflow.db", "--heads", "lstm30"]
    argv += ["--trials", "1", "--study", study] + ["--verbose"] * verbose
    try:
        assert sweep.main(argv) == (143 if stop == signal.SIGTERM else 130)  # it was 130
    finally:
        logging.getLogger("optuna").removeHandler(said)
    out, err = capsys.readouterr()
    assert "interrupted: finished trials are kept" in out + err
    assert signal.getsignal(signal.SIGTERM) == terminate  # put back
    states = [
        t.state.name
        for t in optuna.load_study(
            study_name=study, storage=f"sqlite:///{workspace}/optuna.db"
        ).get_trials()
    ]
    assert states == ["FAIL", "WAITING"]  # queued again, for the rerun
    mlflow.set_tracking_uri(f"sqlite:///{workspace}/mlflow.db")
    runs = mlflow.search_runs(
        search_all_experiments=True, filter_string=f"tags.`optuna.study_name` = '{study}'"
    )
    cause = "SIGTERM" if stop == signal.SIGTERM else "Ctrl-C"  # SIGTERM had read Ctrl-C's words
    assert len(runs) == 2 and set(runs["tags.error"]) == {f"interrupted ({cause})"}
    logged = said.stream.getvalue()
    lines = [line for line in logged.splitlines() if line.startswith("Trial 0 ")]
    if verbose:
        assert len(lines) == 2 and lines[0].startswith("Trial 0 failed with parameters: {")
        assert lines[0].endswith("KeyboardInterrupt().") and "Traceback" not in logged
    else:
        assert logged == ""


def test_a_jax_sweep_prints_no_tensorflow_start_up_lines_and_records_jax(
    workspace, tmp_path, capsys
):
    """Under KERAS_BACKEND=jax, Keras imported TensorFlow to seed it (keras.utils.set_random_seed)
    before extraction and each trial: its C++ start-up lines (absl, oneDNN, CUDA probes) came
    twice on the console, which hides them under TensorFlow; then hidden, the import still cost
    each process about 5 s and 0.9 GB. Nothing imports it now (``-X importtime`` lists every
    module imported)."""
    command = [sys.executable, "-X", "importtime", str(REPO / "experiments" / "sweep.py")]
    command += ["--data", str(workspace / "data"), "--cache-dir", str(tmp_path / "cache")]
    command += ["--frames", str(FRAMES), "--heads", "lstm30", "--trials", "1", "--study", "jax"]
    command += ["--storage", f"sqlite:///{tmp_path}/optuna.db"]
    command += ["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"^#0 +lstm30 ", done.stdout, re.M), done.stdout[-2000:]
    native = [line for line in done.stderr.splitlines() if NATIVE_LOG.match(line)]
    assert native == [], native
    imported = re.findall(r"^import time: .*\| +(\S+)$", done.stderr, re.M)
    assert "keras" in imported and "jax" in imported and "tensorflow" not in imported
    # the backend is recorded, on every run and in the study's identity: a TensorFlow run of the
    # study is refused in one line (it joined a JAX study without a word)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, "tags.`optuna.study_name` = 'jax'")
    assert len(runs) == 2 and {r.data.tags["keras_backend"] for r in runs} == {"jax"}
    study = optuna.load_study(study_name="jax", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert study.user_attrs["numbers_depend_on"]["Keras backend (KERAS_BACKEND)"] == "jax"
    capsys.readouterr()  # what this test's reads of the stores logged
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        code = sweep.main([*command[4:], "--trials", "2"])
    assert code == 2
    # --precision auto: float32 on a CPU under JAX, whose CPU kernels run bfloat16 no faster;
    # bfloat16 under TensorFlow where the CPU has bfloat16 units
    precision = resolve_precision("auto")
    other = "" if precision == "float32" else f", --precision float32; this run's {precision}"
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: study jax was run with other features: the random backbone drawn by "
        "KERAS_BACKEND=jax; this run's by tensorflow, the face detector haar; this run's mtcnn "
        f"{importlib.metadata.version('mtcnn')}{other}: rerun with the study's flags under "
        "KERAS_BACKEND=jax, or start another study with --study"  # no flag gives it (probe EE)
    ]


@pytest.mark.parametrize("script", ["sweep.py", "extract.py", "predict.py"])
def test_a_backend_this_tool_does_not_run_on_is_one_line_before_anything_is_made(
    workspace, tmp_path, script
):
    """KERAS_BACKEND=torch (not installed) was a traceback after the study was created; numpy
    failed in a trial, 119 lines, the parent run FAILED."""
    command = [sys.executable, str(REPO / "experiments" / script)]
    if script == "predict.py":
        command += ["--run", "0123", str(workspace / "data")]
    else:
        command += ["--data", str(workspace / "data"), "--cache-dir", str(tmp_path / "cache")]
    if script == "sweep.py":
        command += ["--storage", f"sqlite:///{tmp_path}/optuna.db"]
    env = dict(os.environ, KERAS_BACKEND="numpy", PYTHONPATH=str(REPO))
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and done.stdout == "", done.stderr  # argparse's usage, then:
    assert lines[-1].endswith(
        "Keras backend 'numpy' (KERAS_BACKEND, or keras.json): this tool runs on tensorflow or "
        "jax, e.g. KERAS_BACKEND=jax"
    )
    assert list(tmp_path.iterdir()) == []  # no study, no cache, no MLflow store


def test_multi_objective_reports_a_pareto_front(workspace, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    code = sweep.main(
        [
            "--data",
            str(workspace / "data"),
            "--cache-dir",
            str(workspace / "cache"),
            "--storage",
            f"sqlite:///{workspace}/optuna.db",
            "--tracking-uri",
            f"sqlite:///{workspace}/mlflow.db",
            "--frames",
            str(FRAMES),
            "--trials",
            "3",
            "--heads",
            "lstm*",
            "--multi-objective",
        ]
    )
    assert code == 0
    for name in ("optuna.db", "mlflow.db"):  # on exit every commit is in the database file
        log = workspace / f"{name}-wal"
        assert not log.exists() or log.stat().st_size == 0, name
    out = capsys.readouterr().out
    assert "Pareto front (dev ACER vs parameters): #" in out
    assert sum(line.startswith("#") for line in out.splitlines()) == 3  # one line per trial
    assert "mlflow ui" in out and "#/experiments/" in out
    (name,) = re.findall(r"^new study (\S+):", out, re.M)
    assert name.endswith("-pareto")  # its own default name: one objective's study differs
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{workspace}/optuna.db")
    assert len(study.directions) == 2 and len(study.best_trials) >= 1
    # the front printed is the non-dominated (dev ACER, parameters) points, each once, found
    # here by hand (its heading alone was checked: review)
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Pareto front"))
    front = [lines[at], *itertools.takewhile(lambda line: line.startswith("  "), lines[at + 1 :])]
    printed = [int(n) for n in re.findall(r"#(\d+) ", " ".join(front))]
    done = {t.number: tuple(t.values) for t in study.trials if t.values is not None}
    points = {
        point
        for point in done.values()
        if not any(o[0] <= point[0] and o[1] <= point[1] and o != point for o in done.values())
    }
    assert sorted(done[n] for n in printed) == sorted(points), (printed, done)
    assert {done[t.number] for t in study.best_trials} == points  # Optuna's front, the same
    assert study.metric_names == ["dev_acer", "params_total"]  # optuna-dashboard: "Objective 0"
    frame = study.trials_dataframe()
    assert {"values_dev_acer", "values_params_total"} <= set(frame.columns)


def test_a_new_default_name_says_how_the_closest_study_differs(workspace, tmp_path, capsys):
    """A rerun whose flags changed the default name said only "new study NAME": not which flag
    made it new, nor that the study it meant to resume is still there (left from a probe). A
    named new study, and a store of one study, say nothing more."""
    stores = {"storage": f"sqlite:///{tmp_path}/optuna.db"}
    stores["tracking_uri"] = f"sqlite:///{tmp_path}/mlflow.db"
    first = run_sweep(config(workspace, None, trials=1, heads="lstm30", **stores))
    assert "differs from" not in capsys.readouterr().out
    run_sweep(
        config(workspace, None, trials=1, heads="lstm30", training_precision="bfloat16", **stores)
    )
    lines = capsys.readouterr().out.splitlines()
    new = next(i for i, line in enumerate(lines) if line.startswith("new study "))
    assert lines[new + 1] == (
        f"differs from study {first.study.study_name} (1 finished trial): "
        "training precision (--train-precision) float32; this run's bfloat16"
    )
    run_sweep(config(workspace, "named", trials=1, heads="lstm30", **stores))
    assert "differs from" not in capsys.readouterr().out


def test_a_write_up_head_of_a_family_of_two_is_a_study_of_its_own(workspace, tmp_path, capsys):
    """--heads conv2048 joined the study of --heads conv4096 (the conv family's), found it
    finished and showed conv4096 as its write-up head (probe): the write-up heads that run first
    are part of a study's name and record where --heads names a part of a family's."""
    stores = {"storage": f"sqlite:///{tmp_path}/optuna.db"}
    stores["tracking_uri"] = f"sqlite:///{tmp_path}/mlflow.db"
    names = []
    for head in ("conv4096", "conv2048"):
        result = run_sweep(config(workspace, None, trials=1, heads=head, **stores))
        assert [t.user_attrs.get("head") for t in result.study.get_trials()] == [head]
        names.append(result.study.study_name)
    lines = capsys.readouterr().out.splitlines()
    from experiments.commands.study_identity import default_study_name
    from experiments.trial.evaluation import prepare_settings

    family = config(workspace, None, trials=1, heads="conv", **stores)  # none first: its own
    settings = prepare_settings(family.features, family.evaluation)
    assert default_study_name(family, settings[0], ["conv"]) not in names
    assert names[0] != names[1]
    assert (
        f"differs from study {names[0]} (1 finished trial): write-up heads first (--heads) "
        "conv4096; this run's conv2048" in lines
    )


def test_cross_dataset_with_repeats_is_one_command(workspace, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(workspace)
    write_tiny_set(workspace / "other", seed=1)
    code = sweep.main(
        [
            *("--data", str(workspace / "data"), "--test-data", str(workspace / "other")),
            *("--cache-dir", str(workspace / "cache"), "--frames", str(FRAMES)),
            *("--storage", f"sqlite:///{workspace}/optuna.db"),
            *("--tracking-uri", f"sqlite:///{workspace}/mlflow.db"),
            *("--trials", "1", "--heads", "lstm30", "--repeats", "2"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert " ± " in out  # the comparison shows mean ± std over the repeats
    runs = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.`test_data` LIKE '%other'"
    )
    (run,) = [r for _, r in runs.iterrows() if r["tags.vggface_heads.role"] == "trial"]
    assert run["tags.evaluation"] == "cross-dataset" and run["tags.repeats"] == "2"
    assert run["tags.optuna.study_name"].endswith("-to-other-x2")
    scores = logged_scores(run, tmp_path)
    assert set(scores[scores["split"] == "test"]["clip"].str.split("/").str[-1]) == {
        f"client014_{n}" for n in range(6)
    }
    assert scores.groupby("repeat").size().tolist() == [12, 12]
    by_bob = bob_report(scores, bob_measure())
    assert {key: run[f"metrics.{key}"] for key in by_bob} == by_bob


def test_test_data_without_a_test_split_is_said_to_be_tested_whole(workspace, monkeypatch, capsys):
    """Its data summary shows the split the loader carves; every clip is tested, and the console
    says so (it said nothing)."""
    monkeypatch.chdir(workspace)
    write_tiny_set(workspace / "split", seed=1)
    flat = workspace / "flat"  # the same clips without split folders
    for clip in sorted((workspace / "split").glob("**/client*")):
        kind = Path(*clip.relative_to(workspace / "split").parts[1:-1])  # real, attack/print
        (flat / kind).mkdir(parents=True, exist_ok=True)
        clip.rename(flat / kind / clip.name)
    code = sweep.main(
        [
            *("--data", str(workspace / "data"), "--test-data", str(flat)),
            *("--cache-dir", str(workspace / "cache"), "--frames", str(FRAMES)),
            *("--storage", f"sqlite:///{workspace}/optuna.db"),
            *("--tracking-uri", f"sqlite:///{workspace}/mlflow.db"),
            *("--trials", "1", "--heads", "lstm30"),
        ]
    )
    assert code == 0
    clips = len(list(flat.glob("**/client*")))
    assert clips == 16
    out = capsys.readouterr().out
    assert f"tested: every clip of the test data ({clips}; it has no test split of its own)" in out
    runs = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.`test_data` LIKE '%flat'"
    )
    (run,) = [r for _, r in runs.iterrows() if r["tags.vggface_heads.role"] == "trial"]
    assert run["tags.test_clips"] == str(clips)
    # the same as a cross-domain target: said once, and recorded as tested (the console said
    # "its test split" under "every clip", and the runs target_clips 'test')
    code = sweep.main(
        [
            *("--db", f"data={workspace / 'data'}", "--db", f"mine={flat}"),
            *("--sources", "data", "--target", "mine"),
            *("--cache-dir", str(workspace / "cache"), "--frames", str(FRAMES)),
            *("--storage", f"sqlite:///{workspace}/optuna.db"),
            *("--tracking-uri", f"sqlite:///{workspace}/mlflow.db"),
            *("--trials", "1", "--heads", "lstm30"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert f"tested: every clip of mine ({clips}; it has no test split of its own)" in out
    assert f"test figures on mine (every clip, {clips} clips)" in out
    runs = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.`evaluation` = 'cross-domain'"
    )
    assert set(runs["tags.target_clips"]) == {"all"}


def test_bad_data_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = sweep.main(["--data", str(tmp_path / "absent"), "--cache-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "absent" in err[0]


def test_studies_pooled_by_the_cross_table_differ_only_in_their_search(first_sweep, workspace):
    """The runs' context digest (experiments.stores.tracking.CONTEXT_TAG): other --heads or
    --seed keep it, other fine-tuning or training precision change it (review: a fine-tuned
    study's trials were pooled with a plain one's); no path is in it."""
    from experiments.commands.study_identity import comparable
    from experiments.trial.evaluation import prepare_settings

    base = config(workspace, None)
    settings = prepare_settings(base.features, base.evaluation)
    digest = comparable(base, settings)
    assert comparable(dataclasses.replace(base, heads="lstm*", seed=7), settings) == digest
    for other in ({"fine_tune": ("none", "fc")}, {"training_precision": "bfloat16"}):
        assert comparable(dataclasses.replace(base, **other), settings) != digest, other
    client = MlflowClient(tracking_uri=base.tracking_uri)  # not the last test's store
    runs = client.search_runs(
        [first_sweep.experiment_id], "tags.`vggface_heads.role` = 'trial'", max_results=1000
    )
    assert runs and {r.data.tags["vggface_heads.context"] for r in runs} == {digest}
