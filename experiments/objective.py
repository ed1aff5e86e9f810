"""One trial of the study: suggest a head, train it on cached features, score, log to MLflow.

The dev ACER (and, multi-objective, the parameter count) is what Optuna minimises; test figures
are logged but never used for choosing. Keras' global state is cleared before each trial, so a
long study does not grow.
"""

from __future__ import annotations

import time
from typing import Any

import keras
import mlflow
import optuna
import pandas as pd

from core.backbone.spec import PARAMS_TO_FC7
from core.features import FeatureSet
from experiments import search, tracking
from experiments.metrics import pad_report
from experiments.training import SplitData, TrainingDiverged, TrainResult, train_head


class Objective:
    """One trial: suggest, train on cached features, score, log, return the dev objective."""

    def __init__(
        self,
        study_name: str,
        allowed: list[str],
        data: dict[str, dict[str, SplitData]],
        features: FeatureSet,
        context: dict[str, str],
        seed: int = 0,
        multi_objective: bool = False,
    ) -> None:
        self.study_name, self.allowed, self.data = study_name, allowed, data
        self.features, self.context = features, context
        self.seed, self.multi_objective = seed, multi_objective

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        keras.backend.clear_session()  # the previous trial's graphs and layer names
        config = search.suggest(trial, self.allowed)
        baseline = search.baseline_name(trial.params)
        tags = {
            tracking.STUDY_TAG: self.study_name,
            tracking.TRIAL_TAG: str(trial.number),
            **self.context,
        }
        if baseline:
            tags["vggface_heads.baseline"] = baseline
        start = time.perf_counter()
        try:
            with tracking.run(f"{trial.number}-{config.head}", "trial", tags, nested=True):
                result = self._train_and_log(trial, config)
        except optuna.TrialPruned:
            self._print(trial.number, config, "pruned", start)
            raise
        except TrainingDiverged as err:
            self._print(trial.number, config, f"failed: {err}", start)
            raise
        return result

    def _train_and_log(self, trial, config: search.TrialConfig):
        mlflow.log_params(config.params())
        data = self.data[config.kind]
        multi = self.multi_objective

        def on_epoch(epoch: int, values: dict[str, float]) -> None:
            mlflow.log_metrics({f"epoch_{k}": v for k, v in values.items()}, step=epoch)
            if not multi:
                trial.report(values["dev_acer"], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        result = train_head(
            config,
            data,
            self.features.frames_per_clip,
            seed=self.seed + trial.number,
            on_epoch=on_epoch,
        )
        params_head = result.model.count_params()
        metrics = {
            "params_total": PARAMS_TO_FC7 + params_head,  # frozen backbone + head, as the write-up
            "params_trainable": params_head,
            "params_head": params_head,
            **pad_report(result.dev, result.test),
            "train_seconds": result.seconds,
            "best_epoch": result.best_epoch,
        }
        mlflow.log_metrics(metrics)
        scores = _scores_frame(data, result)
        tracking.log_trial_artifacts(
            scores, result.dev, result.test, metrics["dev_threshold"], result.model
        )
        for key in ("params_total", "dev_eer", "test_acer", "test_hter", "test_auc"):
            trial.set_user_attr(key, metrics[key])
        trial.set_user_attr("head", config.head)
        self._print(trial.number, config, metrics, None, result.seconds)
        if multi:
            return metrics["dev_acer"], float(metrics["params_total"])
        return metrics["dev_acer"]

    def _print(self, number, config, outcome, start, seconds=None) -> None:
        seconds = seconds if seconds is not None else time.perf_counter() - start
        head = f"#{number:<3} {config.head:<13} {config.output:<7}"
        if isinstance(outcome, dict):
            m = outcome
            line = (
                f"{head} params {m['params_total']:>11,}  dev EER {m['dev_eer']:.3f} "
                f"ACER {m['dev_acer']:.3f} | test ACC {m['test_accuracy']:.3f} "
                f"AUC {m['test_auc']:.3f} APCER {m['test_apcer']:.3f} "
                f"BPCER {m['test_bpcer']:.3f} ACER {m['test_acer']:.3f} "
                f"HTER {m['test_hter']:.3f}  {seconds:5.1f}s"
            )
        else:
            line = f"{head} {outcome}  {seconds:5.1f}s"
        print(line, flush=True)


def _scores_frame(data: dict[str, SplitData], result: TrainResult) -> pd.DataFrame:
    """scores.csv: one row per dev and test clip, score = probability of bona fide."""
    rows: list[dict[str, Any]] = []
    for split, scores in (("dev", result.dev), ("test", result.test)):
        for clip, score in zip(data[split].clips, scores.scores, strict=True):
            rows.append(
                {
                    "split": split,
                    "clip": clip.clip_id,
                    "subject": clip.subject,
                    "label": clip.label,
                    "attack_type": clip.attack_type,
                    "score": score,
                }
            )
    return pd.DataFrame(rows)
