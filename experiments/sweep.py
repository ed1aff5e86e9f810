"""Search the heads with Optuna, track every trial in MLflow, choose on dev PAD error rates.

    python experiments/sweep.py [--data DIR] [--weights PATH] [--trials N] [--timeout S]
        [--study NAME] [--storage URL] [--tracking-uri URI] [--heads PATTERN]
        [--multi-objective] [--seed K]

With no ``--data`` the embedded synthetic PAD set is generated (demonstration only, tagged as
such). fc7 features are extracted once into the cache; trials train heads on them. Then
``mlflow ui`` in this folder shows the study.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

if __package__ in (None, ""):  # run as a script: make the project importable from its root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mlflow  # noqa: E402
import pandas as pd  # noqa: E402

from core import PortError  # noqa: E402
from core.clips import DataError  # noqa: E402
from core.datasets import load_dataset  # noqa: E402
from core.features import FeatureSet, default_cache_dir, extract_features  # noqa: E402
from core.synthetic import synthetic_dataset  # noqa: E402
from core.vggface import PARAMS_TO_FC7  # noqa: E402
from experiments import report, search, tracking  # noqa: E402
from experiments.metrics import ScoreSet, pad_report  # noqa: E402
from experiments.training import SplitData, TrainingDiverged, split_data, train_head  # noqa: E402

DEFAULT_TRIALS = 12  # the five write-up baselines, then seven TPE trials: minutes on 2 cores
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
log = logging.getLogger("sweep")


@dataclass
class SweepConfig:
    data: Path | None = None  # None: the embedded synthetic set
    weights: Path | None = None
    trials: int = DEFAULT_TRIALS  # the study's total of finished trials
    timeout: float | None = None
    study: str | None = None  # None: named after data, weights and feature cache
    storage: str = "sqlite:///optuna.db"
    tracking_uri: str | None = None  # None: MLflow's default store (mlflow.db, mlruns/)
    heads: str = "*"
    multi_objective: bool = False
    seed: int = 0
    cache_dir: Path | None = None
    frames: int = 7
    face_crop: bool = False
    protocol: str = "auto"


@dataclass
class SweepResult:
    study: optuna.Study
    experiment_id: str
    parent_run_id: str
    comparison: pd.DataFrame
    features: FeatureSet


def load_features(config: SweepConfig) -> FeatureSet:
    """The clips (the user's or the synthetic set), split by subject, as cached fc7 features."""
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    root = config.data if config.data else synthetic_dataset(cache_dir / "synthetic")
    dataset = load_dataset(root, protocol=config.protocol)
    print(dataset.summary())
    features = extract_features(
        dataset,
        config.weights,
        cache_dir,
        frames_per_clip=config.frames,
        face_crop=config.face_crop,
    )
    if features.skipped:  # each was already logged by name where it was met
        print(f"skipped: {len(features.skipped)} entries (see the warnings above)")
    state = "reused" if not features.extracted else f"extracted in {features.seconds:.1f}s"
    print(
        f"features: {len(features.clips)} clips x {features.frames_per_clip} frames, "
        f"{state}, cache {features.path}"
    )
    return features


def default_study_name(config: SweepConfig, features: FeatureSet) -> str:
    data = "synthetic" if features.synthetic else Path(config.data or "data").resolve().name
    weights = "random" if features.random_weights else Path(str(config.weights or "vggface")).name
    weights = weights.removesuffix(".h5").removesuffix(".weights").removesuffix(".mat")
    return _safe(f"pad-{data}-{weights}-{features.fingerprint[:8]}")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def run_sweep(config: SweepConfig, pruner: optuna.pruners.BasePruner | None = None) -> SweepResult:
    """Run (or resume) the study; every trial is a child run of this invocation's parent run."""
    features = load_features(config)
    study_name = config.study or default_study_name(config, features)
    if _safe(study_name) != study_name:
        raise ValueError(f"--study {study_name!r}: use letters, digits, '_', '-' and '.' only")
    allowed = search.families(config.heads)
    directions = ["minimize", "minimize"] if config.multi_objective else ["minimize"]
    study = optuna.create_study(
        study_name=study_name,
        storage=config.storage,
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
        directions=directions,
        load_if_exists=True,
    )
    for params in search.baselines(config.heads):
        study.enqueue_trial(params, skip_if_exists=True)
    data = {
        kind: {split: split_data(features, split, kind) for split in ("train", "dev", "test")}
        for kind in ("frame", "sequence")
    }
    experiment_id = tracking.use_experiment(study_name, config.tracking_uri)
    context = {
        "data": str(config.data or "synthetic"),
        "data_fingerprint": features.dataset_fingerprint,
        "weights": str(config.weights or "default"),
        "weights_fingerprint": features.weights_fingerprint,
        "feature_cache": features.fingerprint,
        "random_weights": str(features.random_weights).lower(),
        "synthetic": str(features.synthetic).lower(),
    }
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    with tracking.run(
        f"study {study_name} @ {started}", "study", {tracking.STUDY_TAG: study_name, **context}
    ) as parent:
        mlflow.log_params(
            {
                "study": study_name,
                "trials": config.trials,
                "timeout": config.timeout,
                "storage": config.storage,
                "heads": config.heads,
                "seed": config.seed,
                "multi_objective": config.multi_objective,
                "sampler": "TPESampler",
                "pruner": type(study.pruner).__name__,
                "frames_per_clip": features.frames_per_clip,
                "face_crop": features.face_crop,
                "clips": len(features.clips),
            }
        )
        objective = _Objective(config, study_name, allowed, data, features, context)
        done = _finished(study)
        if done < config.trials:
            study.optimize(
                objective,
                timeout=config.timeout,
                catch=(TrainingDiverged,),
                callbacks=[optuna.study.MaxTrialsCallback(config.trials, states=FINISHED)],
            )
        else:
            print(
                f"study {study_name} already has {done} finished trials (--trials "
                f"{config.trials}): nothing to run"
            )
        table = _close_study(study, experiment_id, study_name)
    return SweepResult(study, experiment_id, parent.info.run_id, table, features)


def _finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


class _Objective:
    """One trial: suggest, train on cached features, score, log, return the dev objective."""

    def __init__(self, config, study_name, allowed, data, features, context) -> None:
        self.config, self.study_name, self.allowed = config, study_name, allowed
        self.data: dict[str, dict[str, SplitData]] = data
        self.features, self.context = features, context

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
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
        multi = self.config.multi_objective

        def report_epoch(epoch: int, values: dict[str, float]) -> None:
            mlflow.log_metrics({f"epoch_{k}": v for k, v in values.items()}, step=epoch)
            if not multi:
                trial.report(values["dev_acer"], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        result = train_head(
            config,
            data,
            self.features.frames_per_clip,
            seed=self.config.seed + trial.number,
            on_epoch=report_epoch,
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


def _scores_frame(data: dict[str, SplitData], result) -> pd.DataFrame:
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


def _close_study(study: optuna.Study, experiment_id: str, study_name: str) -> pd.DataFrame:
    """Log the comparison (CSV, MLflow table, HTML report, Optuna plots) to the parent run."""
    runs = tracking.study_runs(experiment_id, study_name)
    trials = report.trial_table(runs)
    table = report.comparison(runs)
    states = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,))) for s in FINISHED}
    mlflow.log_metrics({f"trials_{k}": v for k, v in states.items()})
    if table.empty:
        return table
    mlflow.log_metric("best_dev_acer", float(trials["dev_acer"].min()))
    mlflow.log_table(table, "comparison.json")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        table.to_csv(folder / "comparison.csv", index=False)
        test_scores = {}
        for run_id in table["run_id"].unique():  # a family's best is often a baseline too
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="scores.csv", dst_path=str(folder / run_id)
            )
            frame = pd.read_csv(path, keep_default_na=False)
            test_scores[run_id] = ScoreSet.from_frame(frame[frame["split"] == "test"])
        figures = report.report_figures(trials, table, test_scores)
        optuna_figures = report.optuna_figures(study)
        report.write_html(
            folder / "report.html",
            f"Study {study_name}",
            table,
            figures + list(optuna_figures.values()),
        )
        mlflow.log_artifact(str(folder / "comparison.csv"))
        mlflow.log_artifact(str(folder / "report.html"))
    for name, figure in optuna_figures.items():
        mlflow.log_figure(figure, f"{name}.html")
    return table


def parse_args(argv: list[str] | None = None) -> SweepConfig:
    parser = argparse.ArgumentParser(
        prog="python experiments/sweep.py",
        description="Optuna search over VGG-Face heads for face anti-spoofing, tracked in MLflow.",
    )
    parser.add_argument("--data", type=Path, help="clips folder (default: synthetic demo set)")
    parser.add_argument("--weights", type=Path, help="vgg_face.mat or converted .weights.h5")
    parser.add_argument(
        "--trials",
        type=int,
        default=DEFAULT_TRIALS,
        help="the study's total of finished trials (resumes count)",
    )
    parser.add_argument("--timeout", type=float, help="stop starting trials after S seconds")
    parser.add_argument("--study", help="study name (default: from data, weights and cache)")
    parser.add_argument("--storage", default="sqlite:///optuna.db", help="Optuna RDB storage URL")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLflow's own)")
    parser.add_argument("--heads", default="*", help="fnmatch pattern over head names")
    parser.add_argument(
        "--multi-objective",
        action="store_true",
        help="minimise (dev ACER, params_total) and report the Pareto front",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, help="feature cache folder")
    parser.add_argument("--frames", type=int, default=7, help="frames per clip")
    parser.add_argument("--face-crop", action="store_true", help="crop faces (Haar cascade)")
    parser.add_argument("--protocol", default="auto", choices=["auto", "generic", "casia", "oulu"])
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error(f"--trials must be at least 1, got {args.trials}")
    return SweepConfig(
        data=args.data,
        weights=args.weights,
        trials=args.trials,
        timeout=args.timeout,
        study=args.study,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        heads=args.heads,
        multi_objective=args.multi_objective,
        seed=args.seed,
        cache_dir=args.cache_dir,
        frames=args.frames,
        face_crop=args.face_crop,
        protocol=args.protocol,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = parse_args(argv)
    try:
        result = run_sweep(config)
    except (DataError, PortError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished trials are kept; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    study = result.study
    print()
    print(report.to_markdown(result.comparison))
    if len(study.directions) > 1:
        print(
            "\nPareto front (dev ACER, params_total): trials "
            + ", ".join(str(t.number) for t in study.best_trials)
        )
    tracking_uri = mlflow.get_tracking_uri()
    print(
        f"\nMLflow: run `mlflow ui --backend-store-uri {tracking_uri}` in this folder, then open "
        f"http://127.0.0.1:5000/#/experiments/{result.experiment_id}/runs"
    )
    if result.features.synthetic or result.features.random_weights:
        print("note: synthetic data and/or a random backbone: a demonstration, not a result")
    return 0


if __name__ == "__main__":
    sys.exit(main())
