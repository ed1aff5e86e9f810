"""One trial of the study: suggest a head, train it on every evaluation setting, score, log.

A trial trains once per setting (:mod:`experiments.trial.evaluation`: the protocol's folds times
``--repeats`` seeds); with one setting its figures are logged as they are, with several the mean
of each under its plain name and the standard deviation as ``<name>_std``
(:func:`experiments.metrics.summarise`). The head a trial keeps, logs and is served with is the
first setting's (fold 1, repeat 0): its run's ``dev_threshold`` is that head's own threshold,
never a mean, and the tag ``kept_setting`` names it. The dev ACER (mean over settings;
multi-objective, with the parameter count) is what Optuna minimises; test figures are logged but
never used for choosing. Each trial runs in :func:`experiments.trial.memory.trial_scope`, so a
long study does not grow. The per-epoch curves are kept in memory and logged in one batch when
the trial ends (finished, pruned or failed): one database transaction a trial, not one an epoch.

A fine-tuned trial (``fine_tune`` "fc" or "conv5") also trains the backbone's top:
``params_trainable`` counts those layers with the head, and with the head's weights it logs
``backbone_top.h5`` (:mod:`experiments.trial.artifacts`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import mlflow
import optuna
import pandas as pd
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from core.backbone.spec import PARAMS_TO_FC7
from core.stdout import stdout_failed
from experiments.config import KeepWeights, TrialConfig
from experiments.metrics import database_figures, pad_report, summarise
from experiments.stores import reach, retries, runs_table, tracking
from experiments.stores.disk import DiskFull, disk_full
from experiments.stores.identity import OBJECTIVES
from experiments.stores.said import store_cause
from experiments.trial import artifacts, memory, search
from experiments.trial.errors import TrainingDiverged
from experiments.trial.evaluation import (
    Setting,
    no_face_metrics,
    prepare_fine_tuning,
    scores_frame,
)
from experiments.trial.training import resolved_jit_compile, train_head

log = logging.getLogger(__name__)
# (trial number, config, figures or what stopped it, seconds): the console's line per trial
OnResult = Callable[[int, TrialConfig, "dict[str, float] | str", float], None]
STORE_PAUSE, STORE_PAUSE_MAX = 5.0, 120.0  # s before the next trial after a store failure,
# doubling while the tracking store stays away
KEPT_SETTING_TAG = "kept_setting"  # the setting whose head the trial keeps (the first)


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
        training_precision: str = "float32",
        jit_compile: bool | str = "auto",
        keep_weights: KeepWeights = KeepWeights.BEST,
        fine_tune: Sequence[str] = ("none",),
        on_result: OnResult | None = None,
    ) -> None:
        if not settings:
            raise ValueError("a trial needs at least one evaluation setting")
        self.study_name, self.allowed, self.settings = study_name, allowed, list(settings)
        self.context, self.seed, self.multi_objective = context, seed, multi_objective
        self.training_precision, self.jit_compile = training_precision, jit_compile
        self.keep_weights = KeepWeights(keep_weights)
        self.fine_tune = tuple(fine_tune)  # checked: experiments.config.fine_tune_choices
        self.on_result = on_result
        self._curves: list[Metric] = []  # the trial's per-epoch values, logged when it ends
        self._store_failures = 0  # trials failed in a row because the tracking store was away
        self.setup_seconds = 0.0  # one-off work before trials (a fine-tuned bottom), not theirs
        # printed before this process's first trial: a worker that waited on others' trials
        # had printed it above its "waiting:" lines (probe)
        self.header: str | None = None
        self.output_lost: OSError | None = None  # a trial line's stdout failure (check_output)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        self.check_output("(the trial runs again)")
        try:
            with memory.trial_scope():
                return self._trial(trial)
        except OSError as err:  # its header line: the trial stops, queued again, as at Ctrl-C
            if not stdout_failed(err):
                raise
            raise disk_full(err, "", "(the trial runs again)") from err

    def check_output(self, then: str) -> None:
        """The :class:`DiskFull` of a trial line stdout did not take (a full disk, a reader gone:
        ``| head``), raised once that trial's result is kept (its line raised in Optuna's hands
        and failed it, never run again: probe); ``then``: what the rerun does."""
        if self.output_lost is not None:
            raise disk_full(self.output_lost, "", then) from self.output_lost

    def _trial(self, trial: optuna.Trial) -> float | tuple[float, float]:
        config = search.suggest(
            trial, self.allowed, self.training_precision, self.jit_compile, self.fine_tune
        )
        config = dataclasses.replace(config, jit_compile=resolved_jit_compile(config))
        # a fine-tuned choice's frozen bottom, computed once and said: not this trial's seconds
        self.setup_seconds += prepare_fine_tuning(self.settings, config.fine_tune, print)
        if self.header:  # below the bottom's lines, above the trials' (probe HH)
            print(self.header, flush=True)
            self.header = None
        baseline = search.baseline_name(trial.params)
        every = trial.study.get_trials(deepcopy=False)
        lost = retries.retry_history(every[trial.number])
        if said := retries.retry_line(every, trial.number):  # before its line: "#7" alone read
            print(said, flush=True)  # as a new configuration
        tags = {
            tracking.STUDY_TAG: self.study_name,
            tracking.TRIAL_TAG: str(trial.number),
            KEPT_SETTING_TAG: self.settings[0].name,
            **self.context,
        }
        if baseline:
            tags["vggface_heads.baseline"] = baseline
        start = time.perf_counter()
        try:
            # lstm30+fc: a fine-tuned trial read as a frozen one in MLflow's views (probe)
            name = f"{trial.number}-{config.shown}"
            with tracking.run(name, "trial", tags, nested=True) as run:
                self._curves = []
                try:
                    result, metrics, seconds = self._train_and_log(
                        trial, config, lost[0] if lost else trial.number
                    )
                except OSError as err:  # said inside its run, which ends as stopped, not failed
                    when = f"as trial {trial.number} saved its files"
                    if (full := disk_full(err, when, "(the trial runs again)")) is None:
                        raise
                    raise full from err
                finally:
                    self._log_curves(run.info.run_id)
        except optuna.TrialPruned:
            self._report(trial.number, config, "pruned", time.perf_counter() - start)
            raise
        except TrainingDiverged as err:
            self._report(trial.number, config, f"failed: {err}", time.perf_counter() - start)
            raise
        except DiskFull as full:
            self._report(
                trial.number, config, f"stopped: {full.short}", time.perf_counter() - start
            )
            raise
        except MlflowException as err:  # MLflow retried with backoff; the store stayed away
            pause = min(STORE_PAUSE_MAX, STORE_PAUSE * 2**self._store_failures)
            self._store_failures += 1
            what = f"failed: the tracking store did not answer ({store_cause(err)})"
            what += f"; next trial in {pause:.0f}s"
            uri = mlflow.get_tracking_uri()
            served = reach.is_server(uri)  # a database is not waited for
            what += ", once it answers (up to two minutes more)" if served else ""
            self._report(trial.number, config, what, time.perf_counter() - start)
            time.sleep(pause)  # a store that stays away costs a trial now and then, not a spin
            if served:  # nor its retries: a restart slower than the pauses (35 s), then than a
                with contextlib.suppress(reach.StoreUnreachable):  # minute, used them up (probes)
                    reach.check_server(uri, seconds=STORE_PAUSE_MAX)
            raise
        self._store_failures = 0
        # said once its run has ended: a store lost as it ended it had the trial said twice, its
        # figures, then failed (probe X)
        self._report(trial.number, config, metrics, seconds)
        return result

    def _log_curves(self, run_id: str) -> None:
        """The trial's per-epoch curves, in one batch; a store that does not answer costs them,
        not the trial's own error."""
        try:
            mlflow.MlflowClient().log_batch(run_id, metrics=self._curves)
        except MlflowException as err:
            log.warning("trial run %s lost its epoch curves: %s", run_id, str(err)[:200])

    def _train_and_log(
        self, trial: optuna.Trial, config: TrialConfig, seed_number: int
    ) -> tuple[float | tuple[float, float], dict[str, Any], float]:
        """The trial's value, its metrics and its training seconds. ``seed_number``: the trial
        whose seed it trains with (a retry: the lost original's, so it trains the epochs the lost
        trial would have trained)."""
        seed = self.seed + seed_number  # repeat 0's; repeat r's: Setting.seed
        mlflow.log_params({**config.params(), "seed": seed})
        several = len(self.settings) > 1
        reports, frames, seconds = [], [], 0.0
        kept = None  # the first setting's result: its head is the trial's
        for index, setting in enumerate(self.settings):
            inputs = setting.inputs(config.kind, config.fine_tune)
            result = train_head(
                config,
                inputs.data,
                setting.features.frames_per_clip,
                seed=setting.seed(seed),
                on_epoch=self._on_epoch(trial, setting.name if several else "", prune=index == 0),
                top_weights=inputs.top_weights,
            )
            report = pad_report(result.dev, result.test)
            if setting.more_sources:  # each source database's own dev figures
                databases = inputs.data["dev"].databases
                report |= database_figures(result.dev, databases, report["dev_threshold"])
            reports.append({**report, "best_epoch": result.best_epoch})
            frames.append(scores_frame(setting, inputs.data, result.dev, result.test))
            seconds += result.seconds
            kept = kept or result
        params_head = kept.model.count_params()
        metrics = {
            "params_total": PARAMS_TO_FC7 + params_head,  # backbone + head, as the write-up
            "params_trainable": kept.params_trainable,  # head + fine-tuned backbone layers
            "params_head": params_head,
            **summarise(reports, [setting.fold for setting in self.settings]),
            "train_seconds": seconds,
            "settings": len(self.settings),
            **no_face_metrics(self.settings[0]),
        }
        mlflow.log_metrics(metrics)
        scores = pd.concat(frames, ignore_index=True)
        keep = self._keeps_weights(trial, config.family, metrics)
        artifacts.log_trial_artifacts(
            scores, kept.dev, kept.test, reports[0]["dev_threshold"], kept.model, keep, kept.top
        )
        if keep and kept.top is not None:
            artifacts.log_top_weights(kept.top, config.fine_tune)
        if several:
            artifacts.log_settings(settings_table(self.settings, seed, reports))
        for key in ("params_total", "dev_eer", "test_acer", "test_hter", "test_auc"):
            trial.set_user_attr(key, metrics[key])
        trial.set_user_attr("head", config.shown)  # the progress line, the Pareto front
        trial.set_user_attr("family", config.family)
        values = tuple(float(metrics[name]) for name in OBJECTIVES)  # the names the study has
        return (values if self.multi_objective else values[0]), metrics, seconds

    def _keeps_weights(self, trial: optuna.Trial, family: str, metrics: dict) -> bool:
        """``best``: only a trial that is its family's best so far logs its weights, so a family
        keeps its few improvements, the last one its best, not every trial's. Best as every
        choice of a trial ranks (:data:`~experiments.stores.runs_table.RANKING`), so the family's
        best in the report and the registered model always have weights."""
        if self.keep_weights != KeepWeights.BEST:
            return self.keep_weights == KeepWeights.ALL
        done = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        same = [  # the objective is the first figure, the others are user attributes
            runs_table.ranking_key({**t.user_attrs, runs_table.RANKING[0]: t.values[0]})
            for t in done
            if t.user_attrs.get("family") == family and t.values
        ]
        return not same or runs_table.ranking_key(metrics) < min(same)

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

    def _report(self, number: int, config: TrialConfig, outcome, seconds: float) -> None:
        if self.on_result is None or self.output_lost is not None:
            return
        try:
            self.on_result(number, config, outcome, seconds)
        except OSError as err:  # said by check_output, the trial's result kept
            if not stdout_failed(err):
                raise
            self.output_lost = err


def settings_table(settings: Sequence[Setting], seed: int, reports: Sequence[dict]) -> pd.DataFrame:
    """One row per setting (its name, fold, repeat and training seed, of a trial whose own is
    ``seed``) with every figure it gave (the seed was in no store: probe)."""
    rows = [
        {"setting": s.name, "fold": s.fold, "repeat": s.repeat, "seed": s.seed(seed), **r}
        for s, r in zip(settings, reports, strict=True)
    ]
    return pd.DataFrame(rows)
