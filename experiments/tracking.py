"""MLflow tracking: one experiment per study, a parent run per invocation, a child run per trial.

Run status tells the truth: a finished trial ends FINISHED, a pruned one KILLED, a failed one
FAILED with its error as a tag, and an interrupted sweep leaves no run RUNNING. Optuna's own MLflow
callback is not used: it is deprecated and logs no parent run.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pandas as pd

from experiments import plots
from experiments.metrics import ScoreSet

STUDY_TAG = "optuna.study_name"
TRIAL_TAG = "optuna.trial_number"
ROLE_TAG = "vggface_heads.role"  # "study" for parent runs, "trial" for child runs
ERROR_TAG = "error"


def use_experiment(study_name: str, tracking_uri: str | None = None) -> str:
    """Point MLflow at ``tracking_uri`` (None: MLflow's default store) and the study's experiment.

    The experiment is tagged as model development, else MLflow 3's UI opens a GenAI overview.
    """
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.set_experiment(study_name)
    mlflow.set_experiment_tags(
        {"mlflow.experimentKind": "custom_model_development", STUDY_TAG: study_name}
    )
    return experiment.experiment_id


@contextlib.contextmanager
def run(name: str, role: str, tags: dict[str, Any], nested: bool = False) -> Iterator[Any]:
    """A run whose end status follows what happened inside it, whatever happened."""
    active = mlflow.start_run(run_name=name, nested=nested, tags={ROLE_TAG: role, **tags})
    try:
        yield active
    except optuna.TrialPruned:
        mlflow.end_run("KILLED")
        raise
    except (KeyboardInterrupt, SystemExit) as err:
        mlflow.set_tag(ERROR_TAG, f"interrupted ({type(err).__name__})")
        mlflow.end_run("KILLED")
        raise
    except BaseException as err:
        mlflow.set_tag(ERROR_TAG, f"{type(err).__name__}: {err}"[:5000])
        mlflow.end_run("FAILED")
        raise
    else:
        mlflow.end_run("FINISHED")


def log_trial_artifacts(
    scores: pd.DataFrame, dev: ScoreSet, test: ScoreSet, threshold: float, model
) -> None:
    """scores.csv, the model summary, ROC/DET and confusion plots, and the head's weights."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        scores.to_csv(folder / "scores.csv", index=False)
        lines: list[str] = []
        model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
        (folder / "model_summary.txt").write_text("\n".join(lines) + "\n")
        model.save_weights(folder / "head.weights.h5")
        for name in ("scores.csv", "model_summary.txt", "head.weights.h5"):
            mlflow.log_artifact(str(folder / name))
    mlflow.log_figure(plots.roc_det_figure(dev, test, threshold), "roc_det.png")
    mlflow.log_figure(plots.confusion_figure(test, threshold), "confusion.png")


def study_runs(experiment_id: str, study_name: str) -> pd.DataFrame:
    """Every trial run of the study (all invocations), newest first, as MLflow's DataFrame."""
    return mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"tags.`{STUDY_TAG}` = '{study_name}' and tags.`{ROLE_TAG}` = 'trial'",
        output_format="pandas",
    )
