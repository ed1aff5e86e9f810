"""One trial of the study: suggest a head, train it on every evaluation setting, score, log.

A trial trains once per setting (:mod:`experiments.evaluation`: the protocol's folds times
``--repeats`` seeds); with one setting its figures are logged as they are, with several the mean
of each under its plain name and the standard deviation as ``<name>_std``. The dev ACER (mean over
settings; multi-objective, with the parameter count) is what Optuna minimises; test figures are
logged but never used for choosing. Each trial runs in :func:`experiments.memory.trial_scope`, so
a long study does not grow. The per-epoch curves are kept in memory and logged in one batch when
the trial ends (finished, pruned or failed): one database transaction a trial, not one an epoch.

A fine-tuned trial (``fine_tune`` "fc" or "conv5", :mod:`experiments.training`) also trains the
backbone's top: ``params_trainable`` counts those layers with the head, and with the head's weights
it logs ``backbone_top.h5``, the fine-tuned layers' weights alone
(:func:`core.backbone.network.save_top_weights`; :func:`core.backbone.network.load_top_weights`
puts them into a VGG-Face, and ``heads.assemble`` the head on it).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import mlflow
import optuna
import pandas as pd
from mlflow.entities import Metric

from core.backbone.network import FINE_TUNE_LAYERS, save_top_weights
from core.backbone.spec import PARAMS_TO_FC7
from experiments import comparison, console, memory, search, tracking
from experiments.evaluation import (
    Setting,
    no_face_metrics,
    scores_frame,
    settings_table,
)
from experiments.metrics import pad_report, summarise
from experiments.training import TrainingDiverged, train_head

KEEP_WEIGHTS = ("all", "best", "none")
TOP_WEIGHTS_FILE = tracking.TOP_WEIGHTS  # a fine-tuned trial's backbone layers, weights only


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
        fine_tune: Sequence[str] = ("none",),
    ) -> None:
        if not settings:
            raise ValueError("a trial needs at least one evaluation setting")
        if keep_weights not in KEEP_WEIGHTS:
            raise ValueError(f"keep_weights must be one of {KEEP_WEIGHTS}, got {keep_weights!r}")
        self.study_name, self.allowed, self.settings = study_name, allowed, list(settings)
        self.context, self.seed, self.multi_objective = context, seed, multi_objective
        self.precision, self.jit_compile, self.keep_weights = precision, jit_compile, keep_weights
        self.fine_tune = search.fine_tune_choices(fine_tune)
        self._curves: list[Metric] = []  # the trial's per-epoch values, logged when it ends

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        with memory.trial_scope():
            return self._trial(trial)

    def _trial(self, trial: optuna.Trial) -> float | tuple[float, float]:
        config = search.suggest(
            trial, self.allowed, self.precision, self.jit_compile, fine_tune=self.fine_tune
        )
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
            with tracking.run(f"{trial.number}-{config.head}", "trial", tags, nested=True) as run:
                self._curves = []
                try:
                    result = self._train_and_log(trial, config)
                finally:
                    mlflow.MlflowClient().log_batch(run.info.run_id, metrics=self._curves)
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
            inputs = setting.inputs(config.kind, config.fine_tune)
            data = inputs.data
            result = train_head(
                config,
                data,
                setting.features.frames_per_clip,
                seed=setting.seed(self.seed + trial.number),
                on_epoch=self._on_epoch(trial, setting.name if several else "", prune=index == 0),
                top_weights=inputs.top_weights,
            )
            report = pad_report(result.dev, result.test)
            reports.append({**report, "best_epoch": result.best_epoch})
            frames.append(scores_frame(setting, data, result.dev, result.test))
            seconds += result.seconds
            if first is None:  # its head and plots are the trial's artifacts
                first = result
        params_head = first.model.count_params()
        metrics = {
            "params_total": PARAMS_TO_FC7 + params_head,  # backbone + head, as the write-up
            "params_trainable": first.params_trainable,  # head + fine-tuned backbone layers
            "params_head": params_head,
            **summarise(reports),
            "train_seconds": seconds,
            "settings": len(self.settings),
            **no_face_metrics(self.settings[0]),
        }
        mlflow.log_metrics(metrics)
        scores = pd.concat(frames, ignore_index=True)
        keep = self._keeps_weights(trial, config.family, metrics)
        tracking.log_trial_artifacts(
            scores, first.dev, first.test, reports[0]["dev_threshold"], first.model, keep
        )
        if keep and first.top is not None:
            _log_top_weights(first.top, config.fine_tune)
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

    def _keeps_weights(self, trial: optuna.Trial, family: str, metrics: dict) -> bool:
        """``best``: only a trial that is its family's best so far logs its weights, so a family
        keeps its few improvements, the last one its best, not every trial's. Best as the
        comparison ranks (dev ACER, then dev EER, then fewer parameters), so the family's best in
        the report and the registered model always have weights."""
        if self.keep_weights != "best":
            return self.keep_weights == "all"
        done = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        key = tuple(metrics[name] for name in comparison.RANKING)
        same = [  # the objective is the first, the others are user attributes
            (t.values[0], *(t.user_attrs.get(name, math.inf) for name in comparison.RANKING[1:]))
            for t in done
            if t.user_attrs.get("family") == family and t.values
        ]
        return not same or key < min(same)

    def _on_epoch(self, trial: optuna.Trial, prefix: str, prune: bool):
        """Log the epoch curves (under ``<setting>/`` when several); prune on the first setting.

        Every trial's first setting is the same fold and repeat, so its curves compare.
        """
        name = f"{prefix}/epoch_{{}}" if prefix else "epoch_{}"

        def on_epoch(epoch: int, values: dict[str, float]) -> None:
            now = int(time.time() * 1000)
            self._curves += [Metric(name.format(k), v, now, epoch) for k, v in values.items()]
            if prune and not self.multi_objective:
                trial.report(values["dev_acer"], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        return on_epoch

    def _print(self, number, config, outcome, start, seconds=None) -> None:
        seconds = seconds if seconds is not None else time.perf_counter() - start
        console.trial_line(number, config, outcome, seconds)


def _log_top_weights(top: keras.Model, fine_tune: str) -> None:
    """The fine-tuned backbone layers' weights alone, as :data:`TOP_WEIGHTS_FILE`."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / TOP_WEIGHTS_FILE
        save_top_weights(top, FINE_TUNE_LAYERS[fine_tune], path)
        mlflow.log_artifact(str(path))


def _log_frame(frame: pd.DataFrame, name: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path))
