"""The study's parent run: its comparison as artifacts (CSV, JSON, the HTML report), its
description (Markdown, as MLflow shows it) and where the report is.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
import optuna
import pandas as pd
from mlflow.exceptions import MlflowException
from optuna.trial import TrialState

from core.words import counted
from experiments.metrics import SETTING_COLUMNS, ScoreSet
from experiments.results import report
from experiments.results.tables import (
    BEST_COLUMNS,
    BEST_NAMES,
    RATES_NOTE,
    best_per_family,
    comparison,
    demo_banner,
    evaluation_notes,
    front,
    front_text,
    missed_species,
    readable,
)
from experiments.stores import dashboard, tracking
from experiments.stores.runs_table import PARAMS, TRAINABLE, WORST_RATE, trial_table

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
NOTE_TAG = "mlflow.note.content"  # MLflow shows it as the run's description (Markdown)
REPORT = "report.html"
GONE = "RESOURCE_DOES_NOT_EXIST"  # MLflow's error code for an artifact that is not there

log = logging.getLogger(__name__)


def description(
    table: pd.DataFrame, study_name: str, states: dict[str, int], pareto: pd.DataFrame
) -> str:
    """The parent run's description (Markdown): the demonstration banner, each family's best
    trial with its dev and test figures and sizes, the Pareto front, where the report is."""
    banner = demo_banner(table)
    best = best_per_family(table)
    columns = [c for c in BEST_COLUMNS if c not in ("run_id", WORST_RATE)]  # rate: in WORST's cell
    shown = readable(best, columns).rename(columns=BEST_NAMES)
    lines = [f"**{banner}**", ""] if banner else []
    lines += [
        f"Study `{study_name}` ({_counts(states)}): the best trial of each head family, chosen "
        "on dev ACER; test figures at the dev EER threshold, APCER of the worst species.",
        "",
        "| " + " | ".join(shown.columns) + " |",
        "|" + "---|" * len(shown.columns),
        *("| " + " | ".join(row) + " |" for _, row in shown.iterrows()),
        "",
        f"Pareto front (dev ACER vs parameters): {front_text(pareto)}.",
        "",
        *(f"{line}." for line in missed_species(table)),
        f"Every figure (per-species APCER, 95 % intervals, run ids) and the plots: `{REPORT}` "
        "in this run's artifacts; the table as `best_per_family.csv`.",
    ]
    return "\n".join(lines)


def _counts(states: dict[str, int]) -> str:
    """ "10 complete, 1 pruned, 1 failed" from Optuna's state names."""
    words = {"complete": "complete", "pruned": "pruned", "fail": "failed"}
    return ", ".join(f"{n} {words.get(state, state)}" for state, n in states.items())


def report_location(run_id: str) -> str:
    """Where a run's report is: a path in a local artifact store, the MLflow UI's page of the
    artifact with a tracking server, else the artifact URI."""
    run = mlflow.get_run(run_id)
    base = run.info.artifact_uri.rstrip("/")
    if (folder := _local_folder(base)) is not None:
        return str(folder / REPORT)
    if mlflow.get_tracking_uri().startswith(("http://", "https://")):
        return dashboard.report_url(run.info.experiment_id, run_id, REPORT)
    return f"{base}/{REPORT}"


def artifacts_reachable(artifact_uri: str, experiment_location: str) -> bool:
    """Whether a run's artifacts can be written where it says: with a local store, where its
    folder or its experiment's is there (a run's own folder is made with its first artifact: a
    parent run whose closing met a full disk has none; a store moved has neither, and MLflow
    would make them again at its old place); with a server, as it answers."""
    folder = _local_folder(artifact_uri)
    if folder is None or folder.is_dir():
        return True
    experiment = _local_folder(experiment_location)
    return experiment is not None and experiment.is_dir()


def _local_folder(artifact_uri: str) -> Path | None:
    """The folder of a local artifact store's URI (a path, or ``file://``); None for a server."""
    parsed = urlparse(artifact_uri)
    return Path(url2pathname(parsed.path)) if parsed.scheme in ("", "file") else None


def _counts_as_integers(table: pd.DataFrame) -> pd.DataFrame:
    """Counts as a CSV shows them, 184637260 and 2, not 184637260.0 (MLflow logs floats)."""
    counts = [c for c in ("trial", *PARAMS, TRAINABLE, "settings") if c in table.columns]
    return table.astype(dict.fromkeys(counts, "Int64"))


def log_comparison(study: optuna.Study, experiment_id: str, study_name: str) -> pd.DataFrame:
    """Log the comparison to the active (parent) run: comparison.csv/.json, best_per_family.csv/
    .json, the HTML report (tables, study and Optuna figures) and the run's description.

    Returns the comparison table; ``table.attrs["report"]`` is where the report is
    (:func:`report_location`), for the console's :func:`verdict`.
    """
    runs = tracking.study_runs(experiment_id, study_name)
    trials = trial_table(runs)
    table = comparison(trials)
    states = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,))) for s in FINISHED}
    mlflow.log_metrics({f"trials_{k}": v for k, v in states.items()})
    if table.empty:
        mlflow.set_tag(NOTE_TAG, f"Study `{study_name}`: no finished trial yet.")
        return table
    mlflow.log_metric("best_dev_acer", float(trials["dev_acer"].min()))
    best = best_per_family(table)
    client = mlflow.MlflowClient()
    logged = {item.path for item in client.list_artifacts(mlflow.active_run().info.run_id)}
    for frame, name in ((table, "comparison.json"), (best, "best_per_family.json")):
        if name not in logged:  # MLflow appends to a table logged before (a closing resumed)
            mlflow.log_table(frame, name)
    pareto = front(trials)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        _counts_as_integers(table).to_csv(folder / "comparison.csv", index=False)
        _counts_as_integers(best).to_csv(folder / "best_per_family.csv", index=False)
        test_scores, missing = {}, []
        for run_id in table["run_id"].unique():  # a family's best is often a baseline too
            try:
                path = tracking.fetch_artifact(run_id, tracking.SCORES_CSV, folder / run_id)
            except (MlflowException, FileNotFoundError) as err:  # moved or deleted (probe);
                if getattr(err, "error_code", GONE) != GONE:  # a full disk, a server's error:
                    raise  # those stop the closing
                missing.append(run_id)
                continue
            frame = pd.read_csv(path, keep_default_na=False)
            test_scores[run_id] = ScoreSet.from_frame(_first_setting(frame, "test"))
        gone = _missing_scores(missing)
        report.write_html(
            folder / REPORT,
            f"Study {study_name}",
            {
                "Best trial per head family": readable(best).rename(columns=BEST_NAMES),
                "Every family's best (each --fine-tune choice's, where searched) and the write-up "
                "baselines": readable(table),
            },
            {**report.study_figures(trials, table, test_scores), **report.optuna_figures(study)},
            [
                # "6 finished trial runs (6 complete, 6 pruned ...)" read as a contradiction
                f"{counted(sum(states.values()), 'trial')} ended ({_counts(states)}); the "
                f"tables rank the {counted(len(trials), 'complete one')}.",
                f"Pareto front (dev ACER vs parameters): {front_text(pareto, limit=20)}.",
                *(f"{line}." for line in missed_species(table)),
                *evaluation_notes(runs),
                RATES_NOTE,
                *([gone] if gone else []),
            ],
            banner=demo_banner(table),
        )
        for name in ("comparison.csv", "best_per_family.csv", REPORT):
            mlflow.log_artifact(str(folder / name))
    active = mlflow.active_run()
    mlflow.set_tag(NOTE_TAG, description(table, study_name, states, pareto))
    table.attrs["report"] = report_location(active.info.run_id)
    return table


def _missing_scores(run_ids: list[str]) -> str | None:
    """Warn of the compared trial runs whose ``scores.csv`` their artifact store no longer holds
    (a store moved or copied without its artifacts folder: the runs keep the old folder's path),
    and say it in the report; their test ROC curves are left out of it."""
    if not run_ids:
        return None
    where = mlflow.MlflowClient().get_run(run_ids[0]).info.artifact_uri
    said = (
        f"test ROC curves left out for {counted(len(run_ids), 'trial run')} "
        f"({', '.join(run_ids)}) whose scores.csv its artifact store no longer holds (the "
        f"first's: {where}): the artifacts were moved or deleted; put them back there, or "
        f"point a moved store at them ({tracking.move_command(where)})"
    )
    log.warning("report: %s", said)
    return said


def _first_setting(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of ``split`` from the first (fold, repeat) setting of a scores.csv frame."""
    rows = frame[frame["split"] == split]
    for column in SETTING_COLUMNS:
        if column in rows.columns and not rows.empty:
            rows = rows[rows[column] == rows[column].iloc[0]]
    return rows
