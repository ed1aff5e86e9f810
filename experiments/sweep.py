"""Search the heads with Optuna, track every trial in MLflow, choose on dev PAD error rates.

    python experiments/sweep.py [data and feature flags, as experiments/extract.py]
        [--trials N] [--timeout S] [--study NAME] [--storage URL] [--tracking-uri URI]
        [--heads PATTERN] [--multi-objective] [--seed K]
        [--repeats K] [--test-data OTHER [--test-protocol NAME]] [--heartbeat S]

With no ``--data`` the embedded synthetic PAD set is generated (demonstration only, tagged as
such). fc7 features are extracted once into the cache; trials train heads on them. Then
``mlflow ui`` in this folder shows the study. Any number of these processes, on any number of
machines, can work on one study (``experiments.workers``; README, "Many machines").
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import optuna
import pandas as pd

from core.backbone.matconvnet import PortError
from core.data.clips import DataError
from core.features import FeatureOptions, FeatureSet, cached_features
from experiments import comparison, search, tracking, workers
from experiments.cli import add_feature_arguments, feature_options
from experiments.evaluation import (
    EvaluationOptions,
    add_evaluation_arguments,
    evaluation_context,
    evaluation_options,
    prepare_settings,
    study_suffix,
)
from experiments.objective import KEEP_WEIGHTS, Objective
from experiments.training import TrainingDiverged

DEFAULT_TRIALS = 12  # the five write-up baselines, then seven TPE trials: minutes on 2 cores
log = logging.getLogger("sweep")


@dataclass
class SweepConfig:
    features: FeatureOptions = field(default_factory=FeatureOptions)  # data, weights, frames...
    trials: int = DEFAULT_TRIALS  # the study's total of finished trials
    timeout: float | None = None
    study: str | None = None  # None: named after data, weights and feature cache
    storage: str = "sqlite:///optuna.db"
    tracking_uri: str | None = None  # None: MLflow's default store (mlflow.db, mlruns/)
    heads: str = "*"
    multi_objective: bool = False
    seed: int = 0  # seeds the sampler and each trial's training (seed + trial number)
    evaluation: EvaluationOptions = field(default_factory=EvaluationOptions)  # folds, repeats
    jit_compile: bool | str = "auto"
    keep_weights: str = "best"  # head weights logged: all, best (per family so far), none
    verbose: bool = False  # the libraries' INFO lines (MLflow migrations, Optuna) too
    heartbeat: int = workers.HEARTBEAT_SECONDS  # a trial silent for 3 of these is lost, retried


@dataclass
class SweepResult:
    study: optuna.Study
    experiment_id: str
    parent_run_id: str
    comparison: pd.DataFrame
    features: FeatureSet


def load_features(options: FeatureOptions) -> FeatureSet:
    """The clips (the user's or the synthetic set), split by subject, as cached fc7 features."""
    features = cached_features(options, on_dataset=lambda dataset: print(dataset.summary()))
    if features.skipped:  # each was already logged by name where it was met
        print(f"skipped: {len(features.skipped)} entries (see the warnings above)")
    state = "reused" if not features.extracted else f"extracted in {features.seconds:.1f}s"
    print(
        f"features: {len(features.clips)} clips x {features.frames_per_clip} frames, "
        f"{state}, cache {features.path}"
    )
    print(features.face_summary())
    return features


def default_study_name(config: SweepConfig, features: FeatureSet) -> str:
    options = config.features
    data = "synthetic" if features.synthetic else Path(options.data or "data").resolve().name
    weights = "random" if features.random_weights else Path(str(options.weights or "vggface")).name
    weights = weights.removesuffix(".h5").removesuffix(".weights").removesuffix(".mat")
    suffix = study_suffix(config.evaluation)  # cross-dataset and repeats: studies of their own
    return _safe(f"pad-{data}-{weights}-{features.fingerprint[:8]}{suffix}")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def run_sweep(config: SweepConfig, pruner: optuna.pruners.BasePruner | None = None) -> SweepResult:
    """Run (or resume) the study as one of its workers; each trial it runs is a child run of
    this invocation's parent run."""
    settings = prepare_settings(config.features, config.evaluation, load=load_features)
    features = settings[0].features
    study_name = config.study or default_study_name(config, features)
    if _safe(study_name) != study_name:
        raise ValueError(f"--study {study_name!r}: use letters, digits, '_', '-' and '.' only")
    allowed = search.families(config.heads)
    directions = ["minimize", "minimize"] if config.multi_objective else ["minimize"]
    study, joined = workers.open_study(
        study_name,
        config.storage,
        directions=directions,
        seed=config.seed,
        pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
        baselines=search.baselines(config.heads),
        heartbeat=config.heartbeat,
    )
    experiment_id = tracking.use_experiment(study_name, config.tracking_uri)
    context = {
        "data": str(config.features.data or "synthetic"),
        "data_fingerprint": features.dataset_fingerprint,
        "weights": str(config.features.weights or "default"),
        "weights_fingerprint": features.weights_fingerprint,
        "feature_cache": features.fingerprint,
        "random_weights": str(features.random_weights).lower(),
        "synthetic": str(features.synthetic).lower(),
        "face_crop": features.face_crop_method,  # none, mtcnn, haar or database boxes (+ ...)
        "precision": config.features.precision,
        **evaluation_context(config.evaluation, settings),
    }
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    worker = workers.worker_name()
    with tracking.run(
        f"study {study_name} @ {started} ({worker})",
        "study",
        {tracking.STUDY_TAG: study_name, tracking.WORKER_TAG: worker, **context},
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
                "heartbeat": config.heartbeat,
                "sampler": "TPESampler",
                "sampler_seed": config.seed + joined,  # the k-th worker to join: seed + k
                "pruner": type(study.pruner).__name__,
                "frames_per_clip": features.frames_per_clip,
                "face_crop": features.face_crop_method,
                "clips": len(features.clips),
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
            precision=config.features.precision,
            jit_compile=config.jit_compile,
            keep_weights=config.keep_weights,
        )
        share = workers.Worker(study, config.storage, experiment_id, config.heartbeat)
        ran = share.optimize(
            objective, config.trials, timeout=config.timeout, catch=(TrainingDiverged,)
        )
        if not ran:
            done = workers.finished_count(study.get_trials(deepcopy=False))
            print(
                f"study {study_name} has {done} finished trials (--trials {config.trials}): "
                "nothing left to run"
            )
        table = comparison.log_comparison(study, experiment_id, study_name)
    return SweepResult(study, experiment_id, parent.info.run_id, table, features)


def parse_args(argv: list[str] | None = None) -> SweepConfig:
    parser = argparse.ArgumentParser(
        prog="python experiments/sweep.py",
        description="Optuna search over VGG-Face heads for face anti-spoofing, tracked in MLflow.",
    )
    add_feature_arguments(parser)
    add_evaluation_arguments(parser)
    group = parser.add_argument_group("search")
    group.add_argument(
        "--trials",
        type=int,
        default=DEFAULT_TRIALS,
        help="the study's total of finished trials, the five write-up baselines first "
        "(resuming counts)",
    )
    group.add_argument("--timeout", type=float, help="stop starting trials after S seconds")
    group.add_argument("--study", help="study name (default: from data, weights and cache)")
    group.add_argument("--storage", default="sqlite:///optuna.db", help="Optuna RDB storage URL")
    group.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLflow's own)")
    group.add_argument("--heads", default="*", help="fnmatch pattern over head names")
    group.add_argument(
        "--multi-objective",
        action="store_true",
        help="minimise (dev ACER, params_total) and report the Pareto front",
    )
    group.add_argument("--seed", type=int, default=0, help="seed of the sampler and training")
    group.add_argument(
        "--heartbeat",
        type=int,
        default=workers.HEARTBEAT_SECONDS,
        help="seconds between a trial's heartbeats; a trial silent for three is lost and retried",
    )
    group.add_argument(
        "--jit-compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="XLA compilation of training steps (auto: Keras' choice for the backend)",
    )
    group.add_argument(
        "--keep-weights",
        choices=KEEP_WEIGHTS,
        default="best",
        help="head weights to log: every trial's, each family's best so far (default), none",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="libraries' INFO lines too")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error(f"--trials must be at least 1, got {args.trials}")
    try:
        evaluation = evaluation_options(args)
    except ValueError as err:
        parser.error(str(err))
    if args.heartbeat < 1:
        parser.error(f"--heartbeat must be at least 1 second, got {args.heartbeat}")
    return SweepConfig(
        features=feature_options(args),
        trials=args.trials,
        timeout=args.timeout,
        study=args.study,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        heads=args.heads,
        multi_objective=args.multi_objective,
        seed=args.seed,
        evaluation=evaluation,
        heartbeat=args.heartbeat,
        jit_compile={"auto": "auto", "on": True, "off": False}[args.jit_compile],
        keep_weights=args.keep_weights,
        verbose=args.verbose,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    level = logging.INFO if config.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(level)
    logging.getLogger("mlflow").setLevel(level)  # its database migrations, run links
    try:
        result = run_sweep(config)
    except (DataError, PortError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except workers.StorageUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(
            "interrupted: finished trials are kept; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    study = result.study
    print()
    print(comparison.to_markdown(result.comparison))
    if len(study.directions) > 1:
        print(
            "\nPareto front (dev ACER, params_total): trials "
            + ", ".join(str(t.number) for t in study.best_trials)
        )
    print("\n" + tracking.ui_hint(result.experiment_id))
    if result.features.synthetic or result.features.random_weights:
        print("note: synthetic data and/or a random backbone: a demonstration, not a result")
    return 0


if __name__ == "__main__":
    sys.exit(main())
