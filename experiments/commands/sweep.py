"""Search the heads with Optuna, track every trial in MLflow, choose on dev PAD error rates.

    python experiments/sweep.py [data and feature flags, as experiments/extract.py]
        [--trials N] [--timeout S] [--study NAME] [--storage URL] [--tracking-uri URI]
        [--heads PATTERN] [--fine-tune none|fc|conv5[,...]] [--multi-objective] [--seed K]
        [--repeats K] [--test-data OTHER [--test-protocol NAME]] [--heartbeat S]
        [--train-precision float32|bfloat16|float16] [--keep-weights all|best|none]

With no ``--data`` the embedded synthetic PAD set is generated (demonstration only, tagged as
such). fc7 features are extracted once into the cache; trials train heads on them. Then
``mlflow ui`` in this folder shows the study. Any number of these processes, on any number of
machines, can work on one study (README, "Many machines").

This module parses and checks the flags into a :class:`SweepConfig` without importing a
deep-learning backend, Optuna or MLflow; :mod:`experiments.commands.study` runs it.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import heads
from core.constants import PRECISIONS
from core.features.request import FeatureOptions
from core.flags import given_name
from core.interrupts import stopped_by_ctrl_c, terminate_as_ctrl_c
from experiments.commands.options import (
    HelpFormatter,
    add_evaluation_arguments,
    add_feature_arguments,
    evaluation_options,
    feature_options,
)
from experiments.commands.quiet import OneLineParser
from experiments.config import (
    HEARTBEAT_SECONDS,
    EvaluationOptions,
    KeepWeights,
    fine_tune_choices,
    safe_name,
)

INTERRUPTED = (  # what a Ctrl-C or SIGTERM in a sweep said, one line
    "interrupted: finished trials are kept, and a trial stopped in flight, if any, runs again; "
    "rerun the same command to resume"
)
DEFAULT_TRIALS = 12  # the five write-up baselines, then seven TPE trials: minutes on 2 cores
DEFAULT_STORAGE = "sqlite:///optuna.db"
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}


@dataclass
class SweepConfig:
    """A sweep, every option resolved: what :func:`experiments.commands.study.run_sweep` runs."""

    features: FeatureOptions = field(default_factory=FeatureOptions)  # data, weights, frames...
    trials: int = DEFAULT_TRIALS  # the study's total of finished trials
    timeout: float | None = None
    study: str | None = None  # None: named after what its numbers depend on
    storage: str = DEFAULT_STORAGE
    tracking_uri: str | None = None  # None: MLflow's default store (mlflow.db, mlruns/)
    heads: str = "*"
    multi_objective: bool = False
    seed: int = 0  # seeds the sampler and each trial's training (seed + trial number)
    evaluation: EvaluationOptions = field(default_factory=EvaluationOptions)  # folds, repeats
    training_precision: str = "float32"  # of the heads (extraction's is features.precision)
    jit_compile: bool | str = "auto"
    keep_weights: KeepWeights = KeepWeights.BEST  # head weights logged
    fine_tune: tuple[str, ...] = ("none",)  # backbone layers trained too; several: searched
    verbose: bool = False  # the libraries' INFO lines (MLflow migrations, Optuna) too
    heartbeat: int | None = None  # a trial silent for 3 of these is lost; None: the study's
    then: tuple[SweepConfig, ...] = ()  # a group of cross-domain settings: the studies after it

    def __post_init__(self) -> None:
        """Checks what can be checked before any data is read (a ValueError, one line)."""
        self.keep_weights = KeepWeights(self.keep_weights)  # "best" given as text too
        self.fine_tune = fine_tune_choices(self.fine_tune)
        heads.matching_families(self.heads)
        if not 0 <= self.seed < 2**32:  # the samplers' and NumPy's range
            raise ValueError(f"--seed must be between 0 and 2**32 - 1, got {self.seed}")
        if self.study is not None and safe_name(self.study) != self.study:
            raise ValueError(f"--study {self.study!r}: use letters, digits, '_', '-' and '.' only")
        # each trial refused it, after the study was made, a retry taking a baseline (probe FF)
        several = any(len(c.evaluation.sources) > 1 for c in (self, *self.then))
        if several and set(self.fine_tune) != {"none"}:
            raise ValueError(
                f"--fine-tune {','.join(self.fine_tune)}: fine-tuning trains on one source "
                "database, and a study of several trains heads on cached fc7: drop --fine-tune"
            )


def parse_args(argv: list[str] | None = None) -> SweepConfig:
    """The flags as a :class:`SweepConfig`; a bad flag exits with status 2 and one line."""
    parser = OneLineParser(
        prog="python experiments/sweep.py",
        formatter_class=HelpFormatter,
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
    group.add_argument(
        "--study", type=given_name, help="study name (default: from what its numbers depend on)"
    )
    group.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna RDB storage URL")
    group.add_argument(
        "--tracking-uri", type=given_name, help="MLflow tracking URI (default: MLflow's own)"
    )
    group.add_argument(
        "--heads",
        default="*",
        metavar="PATTERN",
        help="the head families searched: a shell pattern over family and write-up head names, "
        "or several joined by commas (lstm30 selects the lstm family, its write-up head first; "
        "'lstm*,dense*' two families; default: every family)",
    )
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
        help=f"seconds between a trial's heartbeats (default: the study's; a new one's "
        f"{HEARTBEAT_SECONDS}); a trial silent for three is lost and retried",
    )
    group.add_argument(
        "--train-precision",
        choices=PRECISIONS,
        default="float32",
        help="of the heads' training (float32 by default, which keeps TensorFlow and JAX in "
        "step; --precision is extraction's)",
    )
    group.add_argument(
        "--jit-compile",
        choices=tuple(JIT_COMPILE),
        default="auto",
        help="XLA compilation of training steps (auto: Keras' choice for the backend)",
    )
    group.add_argument(
        "--keep-weights",
        choices=[k.value for k in KeepWeights],
        default=KeepWeights.BEST.value,
        help="head weights to log: every trial's, each family's best so far (default), none",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar while extracting (none where stderr is no terminal): a plain line "
        "at most once a minute (job logs)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="libraries' INFO lines too")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error(f"--trials must be at least 1, got {args.trials}")
    if args.heartbeat is not None and args.heartbeat < 1:
        parser.error(f"--heartbeat must be at least 1 second, got {args.heartbeat}")
    if args.timeout is not None and not args.timeout > 0:
        parser.error(f"--timeout must be more than 0 seconds, got {args.timeout}")
    try:
        features = feature_options(args, progress=not args.no_progress)
        evaluations = evaluation_options(args, features)
        fine_tune = fine_tune_choices(args.fine_tune)
    except ValueError as err:
        parser.error(str(err))
    if len(evaluations) > 1 and args.study:
        parser.error(f"--study names one study; --protocol {args.protocol} runs {len(evaluations)}")
    try:
        configs = [_config(args, features, evaluation, fine_tune) for evaluation in evaluations]
    except ValueError as err:
        parser.error(str(err))
    return dataclasses.replace(configs[0], then=tuple(configs[1:]))


def _config(
    args: argparse.Namespace,
    features: FeatureOptions,
    evaluation: EvaluationOptions,
    fine_tune: tuple[str, ...],
) -> SweepConfig:
    return SweepConfig(
        features=features,
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
        training_precision=args.train_precision,
        jit_compile=JIT_COMPILE[args.jit_compile],
        keep_weights=KeepWeights(args.keep_weights),
        fine_tune=fine_tune,
        verbose=args.verbose,
    )


@terminate_as_ctrl_c()  # SIGTERM stops it as Ctrl-C does
@stopped_by_ctrl_c(INTERRUPTED)  # one in its imports: a traceback
def main(argv: list[str] | None = None) -> int:
    """Parse (exit 2 on a bad flag, before any heavy import), then run the sweep, or print a
    finished study's closing again while its stores are unchanged (:mod:`.replay`)."""
    config = parse_args(argv)
    from experiments.commands import replay
    from experiments.commands.features import load_features
    from experiments.commands.quiet import console_logging, quiet_console

    quiet_console(config.verbose)  # the backend, quietly, only once a trial or extraction needs it
    console_logging(config.verbose)
    features = None
    if replay.eligible(config):  # a finished study's closing, unless its stores changed
        datasets = []

        def before_extract(key: str, parts: dict[str, Any]) -> None:
            clips = datasets[0].fingerprint
            if replay.replay(config, key, clips, missing=True):
                raise replay.Replayed  # no extraction for a study with nothing left to run
            _stores(config, key, parts)
            name = replay.recorded_study(config, key, clips)  # its stores written since
            if name is not None:
                from experiments.commands.study import finished_closing

                if finished_closing(config, name, replay.missing_line(key)):
                    raise replay.Replayed

        try:
            features = load_features(
                config.features, config.verbose, before_extract, on_dataset=datasets.append
            )
            if replay.replay(config, features.fingerprint, features.dataset_fingerprint):
                return 0
        except replay.Replayed:
            return 0
        except (Exception, KeyboardInterrupt) as err:
            from experiments.commands.status import failure_status

            return failure_status(err)
    from experiments.commands.status import failure_status
    from experiments.commands.study import run_command

    try:
        return run_command(config, features)
    except KeyboardInterrupt as err:  # a second Ctrl-C while the sweep closed its stores
        return failure_status(err)


def _stores(config: SweepConfig, key: str, parts: dict[str, Any]) -> None:
    """The stores' kinds and a named study, checked before features are extracted (the sweep
    checks them again)."""
    from experiments.commands.study import check_stores
    from experiments.commands.study_identity import check_study

    check_stores(config)
    check_study(config, config.features, key, parts)
