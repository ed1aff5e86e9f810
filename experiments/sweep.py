"""Search the heads with Optuna, track every trial in MLflow, choose on dev PAD error rates.

    python experiments/sweep.py [data and feature flags, as experiments/extract.py]
        [--trials N] [--timeout S] [--study NAME] [--storage URL] [--tracking-uri URI]
        [--heads PATTERN] [--fine-tune none|fc|conv5[,...]] [--multi-objective] [--seed K]
        [--repeats K] [--test-data OTHER [--test-protocol NAME]] [--heartbeat S]

With no ``--data`` the embedded synthetic PAD set is generated (demonstration only, tagged as
such). fc7 features are extracted once into the cache; trials train heads on them. Then
``mlflow ui`` in this folder shows the study. Any number of these processes, on any number of
machines, can work on one study (``experiments.workers``; README, "Many machines").
"""

# ruff: noqa: E402  (the backend is imported quietly before anything else imports it)
from __future__ import annotations

import sys

from experiments.quiet import no_interrupt_tracebacks, quiet_backend

quiet_backend(verbose=bool({"-v", "--verbose"} & set(sys.argv[1:])))

import argparse
import hashlib
import logging
import re
import time
from dataclasses import dataclass, field, replace

import mlflow
import optuna
import pandas as pd

from core.backbone.matconvnet import PortError
from core.constants import AUTO_PRECISION
from core.data.clips import DataError
from core.data.dataset import Dataset
from core.features import FeatureOptions, FeatureSet, cached_features
from experiments import (
    comparison,
    console,
    dashboard,
    memory,
    models,
    search,
    tracking,
    wal,
    workers,
)
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
    fine_tune: tuple[str, ...] = ("none",)  # backbone layers trained too; several: searched
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
    """The clips (the user's or the synthetic set), split by subject, as cached fc7 features.

    What was found is summarised once, after decoding: the split table counts the usable clips,
    and every skip (files the layout could not place, clips that did not decode) is one count.
    """
    found: list[Dataset] = []
    features = cached_features(options, on_dataset=found.append)
    dataset = replace(found[0], skipped=features.skipped).subset(features.clips)
    print(dataset.summary())
    state = "reused" if not features.extracted else f"extracted in {features.seconds:.1f}s"
    print(
        f"features: {len(features.clips)} clips x {features.frames_per_clip} frames, "
        f"{state}, cache {features.path}"
    )
    print(features.face_summary())
    return features


def default_study_name(config: SweepConfig, features: FeatureSet, test_fingerprint: str) -> str:
    """``pad-<data>-<backbone>-<identity>``: the identity hashes what the trials' numbers depend
    on (the features' cache key: data content, weights content and feature options; the clips
    and splits of the protocol; the test data; the repeats; the fine-tuning choices), never how a
    path was spelled."""
    options = config.features
    data = "synthetic" if features.synthetic else options.protocol
    weights = "random" if features.random_weights else "vggface"
    identity = "|".join(
        (
            features.fingerprint,
            features.dataset_fingerprint,
            test_fingerprint,
            str(config.evaluation.repeats),
            ",".join(config.fine_tune),  # another search space: another study
        )
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    suffix = study_suffix(config.evaluation)  # says cross-dataset and repeats in the name
    return _safe(f"pad-{data}-{weights}-{digest}{suffix}")


def training_precision(precision: str) -> str:
    """Heads train in float32 under ``auto`` (small heads gain little, and float32 keeps
    TensorFlow and JAX in step); an explicit precision is used for extraction and training."""
    return "float32" if precision == AUTO_PRECISION else precision


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def run_sweep(config: SweepConfig, pruner: optuna.pruners.BasePruner | None = None) -> SweepResult:
    """Run (or resume) the study as one of its workers; each trial it runs is a child run of
    this invocation's parent run."""
    settings = prepare_settings(config.features, config.evaluation, load=load_features)
    features = settings[0].features
    test_fingerprint = settings[0].test_features.dataset_fingerprint
    study_name = config.study or default_study_name(config, features, test_fingerprint)
    if _safe(study_name) != study_name:
        raise ValueError(f"--study {study_name!r}: use letters, digits, '_', '-' and '.' only")
    allowed = search.families(config.heads)
    directions = ["minimize", "minimize"] if config.multi_objective else ["minimize"]
    baselines = search.baselines(config.heads, config.fine_tune)
    study, joined = workers.open_study(
        study_name,
        config.storage,
        directions=directions,
        seed=config.seed,
        pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
        baselines=baselines,
        heartbeat=config.heartbeat,
    )
    experiment_id = tracking.use_experiment(study_name, config.tracking_uri)
    done = workers.finished_count(study.get_trials(deepcopy=False))
    print(console.study_line(study_name, done, config.trials, joined, len(baselines)), flush=True)
    context = {
        "data": str(config.features.data or "synthetic"),
        "data_fingerprint": features.dataset_fingerprint,
        "weights": str(config.features.weights or "default"),
        "weights_fingerprint": features.weights_fingerprint,
        "feature_cache": features.fingerprint,
        "random_weights": str(features.random_weights).lower(),
        "synthetic": str(features.synthetic).lower(),
        "face_crop": features.face_crop_method,  # none, mtcnn, haar or database boxes (+ ...)
        "precision": features.manifest["key_parts"]["precision"],  # of extraction; auto resolved
        **evaluation_context(config.evaluation, settings),
    }
    parents = tracking.study_parents(experiment_id, study_name)
    if done >= config.trials:  # no new parent run: the comparison as it stands
        table = comparison.comparison(tracking.study_runs(experiment_id, study_name))
        if parents:
            table.attrs["report"] = comparison.report_location(parents[0])
        return SweepResult(study, experiment_id, parents[0] if parents else "", table, features)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    worker = workers.worker_name()
    tags = {tracking.STUDY_TAG: study_name, tracking.WORKER_TAG: worker, **context}
    if parents:  # each invocation (worker) has its own parent run; it names the one before
        tags[tracking.CONTINUES_TAG] = parents[0]
        print(f"its trials so far are under {len(parents)} earlier parent run(s); a new one opens")
    with tracking.run(f"study {study_name} @ {started} ({worker})", "study", tags) as parent:
        mlflow.log_params(
            {
                "study": study_name,
                "trials": config.trials,
                "timeout": config.timeout,
                "storage": config.storage,
                "heads": config.heads,
                "fine_tune": ",".join(config.fine_tune),
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
            precision=training_precision(config.features.precision),
            jit_compile=config.jit_compile,
            keep_weights=config.keep_weights,
            fine_tune=config.fine_tune,
        )
        share = workers.Worker(study, config.storage, experiment_id, config.heartbeat)
        progress = console.Progress(config.trials, study_name)
        print(console.TRIAL_HEADER, flush=True)
        with memory.settled():  # the C heap and the collector, for the trial loop
            ran = share.optimize(
                objective,
                config.trials,
                timeout=config.timeout,
                catch=(TrainingDiverged,),
                on_trial=progress,
            )
        if not ran:
            print("the other workers finished the study's trials: nothing left to run here")
        table = comparison.log_comparison(study, experiment_id, study_name)
        registered = models.log_best_models(experiment_id, study_name, table)
        if registered:
            print("registered models: " + ", ".join(registered))
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
        "--fine-tune",
        default="none",
        metavar="none|fc|conv5[,...]",
        help="backbone layers trained with the head, end to end on the clips' frames: none "
        "(cached fc7, the fast path), fc (fc6, fc7) or conv5 (conv5_1..fc7); a comma-separated "
        "list is searched, its first choice for the write-up baselines",
    )
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
    try:
        fine_tune = search.fine_tune_choices(args.fine_tune)
    except ValueError as err:
        parser.error(str(err))
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
        fine_tune=fine_tune,
        verbose=args.verbose,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    level = logging.INFO if config.verbose else logging.WARNING
    named = "%(levelname)s %(name)s: %(message)s"  # with --verbose, which library says it
    logging.basicConfig(
        level=level, format=named if config.verbose else "%(levelname)s: %(message)s"
    )
    optuna.logging.set_verbosity(level)
    no_interrupt_tracebacks()
    logging.getLogger("mlflow").setLevel(level)  # its database migrations, run links
    try:
        return _run_and_close(config)
    finally:  # the stores' files hold every commit, however the sweep ended
        wal.checkpoint(config.storage)
        wal.checkpoint(mlflow.get_tracking_uri())


def _run_and_close(config: SweepConfig) -> int:
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
    table = result.comparison
    print()
    print(comparison.console_table(table))
    print()
    for line in comparison.verdict(table, result.study, table.attrs.get("report")):
        print(line)
    print()
    for line in dashboard.closing_lines(result.experiment_id, result.study.study_name):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
