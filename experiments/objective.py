"""One trial of the study: suggest a head, train it on every evaluation setting, score, log.

A trial trains once per setting (:mod:`experiments.evaluation`: the protocol's folds times
``--repeats`` seeds); with one setting its figures are logged as they are, with several the mean
of each under its plain name and the standard deviation as ``<name>_std``. The dev ACER (mean over
settings; multi-objective, with the parameter count) is what Optuna minimises; test figures are
logged but never used for choosing. Keras' global state is cleared before each trial, so a long
study does not grow.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import mlflow
import optuna
import pandas as pd

from core.backbone.spec import PARAMS_TO_FC7
from experiments import search, tracking
from experiments.evaluation import (
    Setting,
    no_face_metrics,
    scores_frame,
    settings_table,
)
from experiments.metrics import pad_report, summarise
from experiments.training import TrainingDiverged, train_head

KEEP_WEIGHTS = ("all", "best", "none")


class Objective:
    """One trial: suggest, train on each setting, score, log, return the dev objective."""

    def __init__(
        self,
        study_name: str,
        allowed: list[str],
        settings: Sequence[Setting],
        context: dict[str, str],
        seed: int = 0,
        multi_objective: bool = False,
        precision: str = "float32",
        jit_compile: bool | str = "auto",
        keep_weights: str = "best",
    ) -> None:
        if not settings:
            raise ValueError("a trial needs at least one evaluation setting")
        if keep_weights not in KEEP_WEIGHTS:
            raise ValueError(f"keep_weights must be one of {KEEP_WEIGHTS}, got {keep_weights!r}")
        self.study_name, self.allowed, self.settings = study_name, allowed, list(settings)
        self.context, self.seed, self.multi_objective = context, seed, multi_objective
        self.precision, self.jit_compile, self.keep_weights = precision, jit_compile, keep_weights

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        keras.backend.clear_session()  # the previous trial's graphs and layer names
        config = search.suggest(trial, self.allowed, self.precision, self.jit_compile)
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
        several = len(self.settings) > 1
        reports, frames, seconds = [], [], 0.0
        first = None
        for index, setting in enumerate(self.settings):
            data = setting.data(config.kind)
            result = train_head(
                config,
                data,
                setting.features.frames_per_clip,
                seed=setting.seed(self.seed + trial.number),
                on_epoch=self._on_epoch(trial, setting.name if several else "", prune=index == 0),
            )
            report = pad_report(result.dev, result.test)
            reports.append({**report, "best_epoch": result.best_epoch})
            frames.append(scores_frame(setting, data, result.dev, result.test))
            seconds += result.seconds
            if first is None:  # its head and plots are the trial's artifacts
                first = result
        params_head = first.model.count_params()
        metrics = {
            "params_total": PARAMS_TO_FC7 + params_head,  # frozen backbone + head, as the write-up
            "params_trainable": params_head,
            "params_head": params_head,
            **summarise(reports),
            "train_seconds": seconds,
            "settings": len(self.settings),
            **no_face_metrics(self.settings[0]),
        }
        mlflow.log_metrics(metrics)
        scores = pd.concat(frames, ignore_index=True)
        keep = self._keeps_weights(trial, config.family, metrics["dev_acer"])
        tracking.log_trial_artifacts(
            scores, first.dev, first.test, reports[0]["dev_threshold"], first.model, keep
        )
        if several:
            _log_frame(settings_table(self.settings, reports), "settings.csv")
        for key in ("params_total", "dev_eer", "test_acer", "test_hter", "test_auc"):
            trial.set_user_attr(key, metrics[key])
        trial.set_user_attr("head", config.head)
        trial.set_user_attr("family", config.family)
        self._print(trial.number, config, metrics, None, seconds)
        if self.multi_objective:
            return metrics["dev_acer"], float(metrics["params_total"])
        return metrics["dev_acer"]

    def _keeps_weights(self, trial: optuna.Trial, family: str, dev_acer: float) -> bool:
        """``best``: only a trial that is its family's best so far (dev ACER) logs its weights,
        so a family keeps its few improvements, the last one its best, not every trial's."""
        if self.keep_weights != "best":
            return self.keep_weights == "all"
        done = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        same = [t.values[0] for t in done if t.user_attrs.get("family") == family and t.values]
        return not same or dev_acer < min(same)

    def _on_epoch(self, trial: optuna.Trial, prefix: str, prune: bool):
        """Log the epoch curves (under ``<setting>/`` when several); prune on the first setting.

        Every trial's first setting is the same fold and repeat, so its curves compare.
        """
        name = f"{prefix}/epoch_{{}}" if prefix else "epoch_{}"

        def on_epoch(epoch: int, values: dict[str, float]) -> None:
            mlflow.log_metrics({name.format(k): v for k, v in values.items()}, step=epoch)
            if prune and not self.multi_objective:
                trial.report(values["dev_acer"], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        return on_epoch

    def _print(self, number, config, outcome, start, seconds=None) -> None:
        seconds = seconds if seconds is not None else time.perf_counter() - start
        head = f"#{number:<3} {config.head:<13} {config.output:<7}"
        if isinstance(outcome, dict):
            m = outcome
            spread = f" ±{m['test_acer_std']:.3f}" if "test_acer_std" in m else ""
            line = (
                f"{head} params {m['params_total']:>11,}  dev EER {m['dev_eer']:.3f} "
                f"ACER {m['dev_acer']:.3f} | test ACC {m['test_accuracy']:.3f} "
                f"AUC {m['test_auc']:.3f} APCER {m['test_apcer']:.3f} "
                f"BPCER {m['test_bpcer']:.3f} ACER {m['test_acer']:.3f}{spread} "
                f"HTER {m['test_hter']:.3f}  {seconds:5.1f}s"
            )
        else:
            line = f"{head} {outcome}  {seconds:5.1f}s"
        print(line, flush=True)


def _log_frame(frame: pd.DataFrame, name: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path))
