"""Where a trial is evaluated: every fold of the protocol, K seeds each, on this or another set.

A *setting* is one (fold, repeat) pair with its own train, dev and test clips. Papers report
OULU-NPU Protocols 3 and 4 as the mean and standard deviation over their six leave-one-phone-out
folds, and a configuration trained with several seeds the same way, so a trial trains once per
setting and logs the mean of each figure under its plain name and the sample standard deviation
(:func:`experiments.metrics.summarise`) as ``<name>_std``.

Cross-dataset (``--test-data OTHER``): train and dev, hence the threshold, come from ``--data``;
test is OTHER's test split, or every clip of OTHER when it has no test split.

Every setting's scores go into one ``scores.csv`` with ``fold`` and ``repeat`` columns, so
:func:`experiments.metrics.report_from_scores_frame` recomputes every logged figure from it.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.data.clips import DataError
from core.data.layouts import AUTO, folds, protocol_names
from core.features import FeatureOptions, FeatureSet, cached_features, no_face_by_species
from core.features.bottom import bottom_inputs
from experiments.metrics import metric_suffix
from experiments.training import SplitData, split_data

# Repeat r trains with seed + r * REPEAT_SEED_STRIDE: far from the seed + trial number of other
# trials, and repeat 0 keeps the seed a single run always had.
REPEAT_SEED_STRIDE = 100_003
NO_FACE_COLUMN = "no_face_frames"


@dataclass(frozen=True)
class EvaluationOptions:
    """How each trial is evaluated: seeds per configuration and which data it is tested on."""

    repeats: int = 1
    test_data: Path | None = None  # None: --data's own test split
    test_protocol: str = AUTO

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ValueError(f"--repeats must be at least 1, got {self.repeats}")
        if self.test_data is None and self.test_protocol != AUTO:
            raise ValueError("--test-protocol needs --test-data: it names the test set's layout")


@dataclass(frozen=True)
class Setting:
    """One evaluation: a fold (None for a protocol without folds) and a repeat (seed)."""

    fold: int | None
    repeat: int
    features: FeatureSet  # train and dev clips (and test, unless tested on other data)
    test_features: FeatureSet  # every clip here whose split is "test" is tested

    @property
    def name(self) -> str:
        """``fold2-repeat0``, or ``repeat1`` without folds: a prefix for per-setting metrics."""
        return (f"fold{self.fold}-" if self.fold is not None else "") + f"repeat{self.repeat}"

    def seed(self, base: int) -> int:
        """The training seed of this setting for a trial whose own seed is ``base``."""
        return base + REPEAT_SEED_STRIDE * self.repeat

    def data(self, kind: str) -> dict[str, SplitData]:
        """Train, dev and test inputs for a ``kind`` ("frame" or "sequence") head.

        Built on demand and not kept here: six folds' inputs of a large set would not fit memory.
        """
        return self.inputs(kind).data

    def inputs(self, kind: str, fine_tune: str = "none") -> TrialInputs:
        """What a trial trains on: cached fc7 (``fine_tune`` "none"), or the frozen bottom's
        outputs below the layers it fine-tunes, computed once (:mod:`core.features.bottom`)."""
        if fine_tune == "none":
            data = {split: split_data(self.features, split, kind) for split in ("train", "dev")}
            data["test"] = split_data(self.test_features, "test", kind)
            return TrialInputs(data)
        bottom = bottom_inputs(self.features, fine_tune)
        tested = bottom
        if self.test_features is not self.features:
            tested = bottom_inputs(self.test_features, fine_tune)
        data = {s: split_data(self.features, s, kind, bottom) for s in ("train", "dev")}
        data["test"] = split_data(self.test_features, "test", kind, tested)
        return TrialInputs(data, bottom.top_weights)


@dataclass(frozen=True)
class TrialInputs:
    """A setting's train, dev and test inputs, and where a fine-tuned top starts from."""

    data: dict[str, SplitData]
    top_weights: Path | None = None  # the backbone's conv5_1..fc7 (fine-tuning only)


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """``--repeats`` and the cross-dataset flags ``--test-data``/``--test-protocol``."""
    group = parser.add_argument_group("evaluation (README: Reporting like a paper)")
    group.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="train each configuration K times with different seeds; log mean and std",
    )
    group.add_argument(
        "--test-data",
        type=Path,
        help="cross-dataset: report on this dataset's test split (all of it if it has none); "
        "training and the threshold stay on --data",
    )
    group.add_argument(
        "--test-protocol",
        default=AUTO,
        choices=[AUTO, *protocol_names()],
        help="protocol of --test-data (default auto: recognised from its files)",
    )


def evaluation_options(args: argparse.Namespace) -> EvaluationOptions:
    """The :class:`EvaluationOptions` that the flags of :func:`add_evaluation_arguments` say."""
    return EvaluationOptions(
        repeats=args.repeats, test_data=args.test_data, test_protocol=args.test_protocol
    )


def protocol_folds(options: FeatureOptions) -> tuple[int | None, ...]:
    """The folds to evaluate: the one ``--fold`` names, else all of the protocol's, else none."""
    if options.fold is not None:
        return (options.fold,)
    return tuple(folds(options.protocol)) or (None,)  # folds: oulu-p3 and oulu-p4


def prepare_settings(
    options: FeatureOptions,
    evaluation: EvaluationOptions,
    load: Callable[[FeatureOptions], FeatureSet] = cached_features,
) -> list[Setting]:
    """Every (fold, repeat) setting a trial trains on, fold by fold, each fold's repeats in turn.

    ``load`` turns options into features (the sweep passes its printing loader); every fold is
    loaded with the same options but its ``fold``, so all folds share one feature extraction.
    """
    test_features = None
    if evaluation.test_data is not None:
        test_features = load(cross_dataset_options(options, evaluation))
    settings = []
    for fold in protocol_folds(options):
        features = load(options if fold is None else dataclasses.replace(options, fold=fold))
        tested = features if test_features is None else as_test_set(test_features, features)
        settings.extend(
            Setting(fold, repeat, features, tested) for repeat in range(evaluation.repeats)
        )
    return settings


def cross_dataset_options(options: FeatureOptions, evaluation: EvaluationOptions) -> FeatureOptions:
    """``options`` pointed at the cross-dataset test set: same backbone and frames, its layout."""
    return dataclasses.replace(
        options,
        data=evaluation.test_data,
        protocol=evaluation.test_protocol,
        fold=None,
        subject_pattern=None,  # a pattern is written for --data's file names
    )


def as_test_set(other: FeatureSet, trained: FeatureSet) -> FeatureSet:
    """``other`` ready to be tested on: its test split, or every clip when it has no test split.

    Refuses features the trained head cannot read (another backbone or frame count).
    """
    for field, what in (("weights_fingerprint", "weights"), ("frames_per_clip", "frames per clip")):
        if getattr(other, field) != getattr(trained, field):
            raise DataError(
                f"--test-data {other.path}: {what} {getattr(other, field)} differ from the "
                f"training data's {getattr(trained, field)}"
            )
    if len(other.indices("test")):
        return other
    clips = [dataclasses.replace(clip, split="test") for clip in other.clips]
    return dataclasses.replace(other, clips=clips)


def evaluation_context(
    evaluation: EvaluationOptions, settings: Sequence[Setting]
) -> dict[str, str]:
    """Tags for every run: which folds, how many repeats, and which data the test figures use."""
    first = settings[0]
    folds = [s.fold for s in settings if s.repeat == 0 and s.fold is not None]
    cross = evaluation.test_data is not None
    return {
        "evaluation": "cross-dataset" if cross else "intra-dataset",
        "test_data": str(evaluation.test_data) if cross else "same as data",
        "test_protocol": evaluation.test_protocol if cross else "same as protocol",
        "test_data_fingerprint": first.test_features.dataset_fingerprint,
        "test_clips": str(len(first.test_features.indices("test"))),
        "folds": ",".join(map(str, folds)) if folds else "none",
        "repeats": str(evaluation.repeats),
    }


def study_suffix(evaluation: EvaluationOptions) -> str:
    """What a default study name adds, so intra- and cross-dataset trials never share a study."""
    suffix = f"-to-{Path(evaluation.test_data).resolve().name}" if evaluation.test_data else ""
    return suffix + (f"-x{evaluation.repeats}" if evaluation.repeats > 1 else "")


# --------------------------------------------------------------------------- figures


def scores_frame(setting: Setting, data: dict[str, SplitData], dev, test) -> pd.DataFrame:
    """scores.csv rows of one setting: one per dev and test clip, score = probability of bona fide.

    Beside the score: split, clip, subject, label, attack_type (the species), the dataset's own
    columns (``Clip.columns``: session, phone, support, quality ...), the frames without a face
    when the features count them, then the setting's fold and repeat; enough to regroup.
    """
    rows = []
    for split, scores, features in (
        ("dev", dev, setting.features),
        ("test", test, setting.test_features),
    ):
        no_face = features.no_face  # clip_id -> frames without a face; empty without face crop
        for clip, score in zip(data[split].clips, scores.scores, strict=True):
            row = {
                "split": split,
                "clip": clip.clip_id,
                "subject": clip.subject,
                "label": clip.label,
                "attack_type": clip.attack_type,
            }
            for column, value in clip.columns.items():
                row[column if column not in row else f"data_{column}"] = value
            if no_face:
                row[NO_FACE_COLUMN] = no_face.get(clip.clip_id, 0)
            row.update({"fold": setting.fold, "repeat": setting.repeat, "score": float(score)})
            rows.append(row)
    frame = pd.DataFrame(rows)
    last = [c for c in (NO_FACE_COLUMN, "fold", "repeat", "score") if c in frame.columns]
    return frame[[c for c in frame.columns if c not in last] + last]


def no_face_metrics(setting: Setting) -> dict[str, float]:
    """Frames without a face per split and species, when the features count them.

    ``no_face_<split>_<species>`` is the count and ``no_face_rate_<split>_<species>`` its share
    of the species' frames: a detector that misses faces more often on one species is a
    shortcut the head can learn.
    """
    metrics: dict[str, float] = {}
    for split, features in (
        ("train", setting.features),
        ("dev", setting.features),
        ("test", setting.test_features),
    ):
        if not features.no_face:
            continue
        clips = [features.clips[i] for i in features.indices(split)]
        counts = no_face_by_species(clips, features.no_face, features.frames_per_clip)
        for species, count in counts.items():
            metrics[f"no_face_{split}_{metric_suffix(species)}"] = count.missed
            metrics[f"no_face_rate_{split}_{metric_suffix(species)}"] = count.rate
    return metrics


def settings_table(settings: Sequence[Setting], reports: Sequence[dict]) -> pd.DataFrame:
    """One row per setting (its name, fold and repeat) with every figure it gave."""
    rows = [
        {"setting": s.name, "fold": s.fold, "repeat": s.repeat, **r}
        for s, r in zip(settings, reports, strict=True)
    ]
    return pd.DataFrame(rows)
