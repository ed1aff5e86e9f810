"""Where a trial is evaluated: every fold of the protocol, K seeds each, on this or another set.

A *setting* is one (fold, repeat) pair with its own train, dev and test clips. Papers report
OULU-NPU Protocols 3 and 4 as the mean and standard deviation over their six leave-one-phone-out
folds, and a configuration trained with several seeds the same way, so a trial trains once per
setting and logs the mean of each figure under its plain name and the sample standard deviation
(:func:`experiments.metrics.summarise`) as ``<name>_std``.

Cross-dataset (``--test-data OTHER``): train and dev, hence the threshold, come from ``--data``;
test is OTHER's test split, or every clip of OTHER when it has no test split of its own (a split
the loader carved is not one). Cross-domain (several source databases, one target,
:mod:`experiments.domains`): the sources' train splits are pooled, their dev splits are pooled and
set the threshold, and the target is tested, its test split or every clip (but a dev set of its
own, as SSDG). Before anything is
extracted, every database is read and checked: the layout its name says.

Every setting's scores go into one ``scores.csv`` with ``fold`` and ``repeat`` columns, so
:func:`experiments.metrics.report_from_scores_frame` recomputes every logged figure from it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.backbone.spec import FROZEN_OUTPUT
from core.data.clips import DataError, NoUsableClip, StrayFiles
from core.data.dataset import Dataset, check_folder, check_the_path
from core.data.layouts import database_layouts, folds, layout_names
from core.data.layouts.registry import get_layout
from core.features import FeatureOptions, FeatureSet, cached_features, load_data, no_face_by_species
from core.features.bottom import bottom_inputs, bottom_ready
from core.features.request import read_once
from experiments import domains
from experiments.config import EvaluationOptions, NamedData
from experiments.metrics import DATABASE_COLUMN, metric_suffix
from experiments.trial.splits import SplitData, split_data

# Repeat r trains with seed + r * REPEAT_SEED_STRIDE: far from the seed + trial number of other
# trials, and repeat 0 keeps the seed a single run always had.
REPEAT_SEED_STRIDE = 100_003
NO_FACE_COLUMN = "no_face_frames"


@dataclass(frozen=True)
class Setting:
    """One evaluation: a fold (None for a protocol without folds) and a repeat (seed).

    ``features`` trains (and is tested, unless ``test_features`` is another database's); a
    cross-domain setting pools ``features`` and ``more_sources``. ``names`` are the databases'
    names, sources first, then the tested one's (empty for a single database).
    """

    fold: int | None
    repeat: int
    features: FeatureSet  # train and dev clips (and test, unless tested on other data)
    test_features: FeatureSet  # every clip here whose split is "test" is tested
    more_sources: tuple[FeatureSet, ...] = ()
    names: tuple[str, ...] = ()

    @property
    def sources(self) -> tuple[FeatureSet, ...]:
        return (self.features, *self.more_sources)

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

    def _named(self) -> tuple[tuple[str, FeatureSet], ...]:
        names = self.names or ("",) * (len(self.sources) + 1)
        return tuple(zip(names, (*self.sources, self.test_features), strict=True))

    def inputs(self, kind: str, fine_tune: str = "none") -> TrialInputs:
        """What a trial trains on: cached fc7 (``fine_tune`` "none"), or the frozen bottom's
        outputs below the layers it fine-tunes, computed once (:mod:`core.features.bottom`)."""
        *sources, (tested_name, tested) = self._named()
        if fine_tune == "none":
            data = {
                split: SplitData.pooled([split_data(f, split, kind, None, n) for n, f in sources])
                for split in ("train", "dev")
            }
            data["test"] = split_data(tested, "test", kind, None, tested_name)
            return TrialInputs(data)
        if self.more_sources:
            raise ValueError("--fine-tune trains on one source database; this study has several")
        batch = self.features.manifest.get("batch_size")  # as extraction ran
        bottom = bottom_inputs(self.features, fine_tune, batch_size=batch)
        on_test = bottom if tested is self.features else bottom_inputs(tested, fine_tune, batch)
        name = sources[0][0]
        data = {s: split_data(self.features, s, kind, bottom, name) for s in ("train", "dev")}
        data["test"] = split_data(tested, "test", kind, on_test, tested_name)
        return TrialInputs(data, bottom.top_weights)


def clips_read(settings: Sequence[Setting]) -> int:
    """The clips of the data the study trains on, all its splits, each counted once: every
    source of every setting (OULU-NPU's six folds select overlapping clips of one cache entry)."""
    return len({(s.path, int(r)) for setting in settings for s in setting.sources for r in s.rows})


def prepare_fine_tuning(
    settings: Sequence[Setting], choice: str, say: Callable[[str], None]
) -> float:
    """The frozen bottom's outputs of the fine-tuned ``choice``, computed and said (two lines:
    what, then its seconds) before the first trial that samples it trains: inside its
    ``inputs`` they took minutes without a line. Stored ones (and "none") need nothing and are
    not said. A cross-domain study of several sources has none (the sweep refuses --fine-tune).
    Returns the seconds spent, which the trial's own and the study's ETA leave out."""
    if choice == "none" or any(setting.more_sources for setting in settings):
        return 0.0
    sets = {id(f): f for s in settings for f in (s.features, s.test_features)}.values()
    todo = [f for f in sets if not bottom_ready(f, choice)]
    if not todo:
        return 0.0
    clips = sum(len(f.clips) for f in todo)  # each set is computed on its own
    say(
        f"--fine-tune {choice}: computing the frozen backbone's {FROZEN_OUTPUT[choice]} outputs "
        f"of {clips} clips from their frames, once (stored for later trials and studies; "
        "minutes on a CPU)"
    )
    started = time.perf_counter()
    for features in todo:  # a fold's set may be another's: found stored then
        bottom_inputs(features, choice, batch_size=features.manifest.get("batch_size"))
    seconds = time.perf_counter() - started
    say(f"--fine-tune {choice}: done in {seconds:.0f}s")
    return seconds


@dataclass(frozen=True)
class TrialInputs:
    """A setting's train, dev and test inputs, and where a fine-tuned top starts from."""

    data: dict[str, SplitData]
    top_weights: Path | None = None  # the backbone's conv5_1..fc7 (fine-tuning only)


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
    A cross-domain study's databases are read and checked before any is extracted.
    """
    with read_once():  # a database is checked, then loaded: its skips said once
        return _settings(options, evaluation, load)


def _settings(
    options: FeatureOptions,
    evaluation: EvaluationOptions,
    load: Callable[[FeatureOptions], FeatureSet],
) -> list[Setting]:
    if evaluation.cross_domain:
        return _cross_domain_settings(evaluation, load)
    test_features = None
    if evaluation.test_data is not None:
        check_folder(Path(evaluation.test_data), "--test-data ")  # the flag named (probe)
        first = dataclasses.replace(options, fold=protocol_folds(options)[0])
        trained = load_data(first)
        other = cross_dataset_options(options, evaluation, trained.synthetic)
        shared = _shared_clips(load_data(other), trained)
        if shared:
            raise DataError(
                f"--test-data {evaluation.test_data} {shared} --data {options.data}: a "
                "cross-dataset study tests another database"
            )
        test_features = load(other)
    settings = []
    for fold in protocol_folds(options):
        features = load(options if fold is None else dataclasses.replace(options, fold=fold))
        tested = features if test_features is None else as_test_set(test_features, features)
        names = () if test_features is None else _database_names(features, test_features)
        settings.extend(
            Setting(fold, repeat, features, tested, names=names)
            for repeat in range(evaluation.repeats)
        )
    return settings


def _database_names(trained: FeatureSet, tested: FeatureSet) -> tuple[str, str]:
    """A cross-dataset study's two databases as its scores name each clip's: the layouts
    (``casia``, ``replay-attack``), or ``data`` and ``test data`` where one layout read both."""
    named = {trained.layout, tested.layout} - {"", "generic"}  # a database's own layout
    if len(named) == 2:
        return trained.layout, tested.layout
    return "data", "test data"


def _cross_domain_settings(
    evaluation: EvaluationOptions, load: Callable[[FeatureOptions], FeatureSet]
) -> list[Setting]:
    named = [*evaluation.sources, evaluation.target]
    read = check_databases(named)  # every database read and checked before any is extracted
    *taken, aimed = domains.taken_options(evaluation, [dataset.layout for dataset in read])
    sources = [as_training_set(load(o), evaluation.source_clips) for o in taken]
    tested = as_test_set(load(aimed), sources[0], evaluation.target_clips)
    names = tuple(data.name for data in named)
    first, *more = sources
    return [
        Setting(None, repeat, first, tested, tuple(more), names)
        for repeat in range(evaluation.repeats)
    ]


def check_databases(named: Sequence[NamedData]) -> list[Dataset]:
    """A :class:`DataError` (one line) when a database is not what its name says
    (:func:`check_database`) or shares a clip with another of them (a copy, whole or in part,
    under a name of its own); else each database as read. Reads the folders, extracts
    nothing."""
    read: list[tuple[str, Dataset]] = []
    for data in named:
        dataset = check_database(data)
        this = f"database {data.name} ({data.options.data})"
        for other, earlier in read:
            shared = _shared_clips(dataset, earlier)
            if shared:
                raise DataError(f"{this} {shared} {other}: each database trains or is tested, once")
        read.append((this, dataset))
    layouts = Counter(dataset.layout for _, dataset in read)
    for data, (this, dataset) in zip(named, read, strict=True):
        layout = dataset.layout
        if layouts[layout] == 1 and _another_name_of(data.name, layout):
            raise DataError(
                f"{this}: its files are {layout}'s: name it {layout} (--db {layout}=PATH, or "
                f"{layout} = PATH in a --databases file, and in --sources or --target), the name "
                "its settings, table headings and other studies know it by"
            )
    return [dataset for _, dataset in read]


def _another_name_of(name: str, layout: str) -> bool:
    """Whether ``name`` is a benchmark database's name spelled otherwise (``OULU``, ``O``,
    ``replay``, ``replay_attack``; shipped: ``OULU-NPU``, ``msu_mfsd``): a setting of its own,
    headed half in letters and half in names (C&OULU→MSU), that no study of the benchmark's
    setting pooled (probe). A name of one's own (``mymsu``; two parts of OULU-NPU) stays."""
    if layout not in database_layouts() or name == layout:
        return False
    plain = name.lower().replace("_", "-")
    return (
        plain == layout
        or domains.shipped_as(name) == layout  # OULU-NPU, msu_mfsd
        or domains.LETTERS.get(name.upper()) == layout
        or (len(plain) > 1 and layout.startswith(plain))
    )


def _shared_clips(data: Dataset, other: Dataset) -> str:
    """How ``data`` overlaps ``other``, as a refusal says it (``holds the same clips as``,
    ``shares 17 of its 18 clips (file names and sizes) with``); empty when no clip is in both."""
    shared = (Counter(data.clip_keys) & Counter(other.clip_keys)).total()
    if not shared:
        return ""
    if data.clip_keys == other.clip_keys:
        return "holds the same clips as"
    return f"shares {shared} of its {len(data.clip_keys)} clips (file names and sizes) with"


def check_database(data: NamedData) -> Dataset:
    """A :class:`DataError` (one line) when a database named after a layout is not one that
    layout recognises (or cannot be read). Reads the folder, extracts nothing. Every source has a
    dev split to set the threshold on: its protocol's, else one the loader carves from its train
    split by subject (and a split without both classes is refused there)."""
    expected = data.name if data.name in layout_names() else None
    check_folder(root := Path(data.options.data), f"database {data.name}: ")  # with its name
    try:
        dataset = load_data(data.options)
    except StrayFiles as err:  # --protocol, which it named, is --data's: a database's is its own
        how = f"--db {data.name}={data.options.data}:{err.protocol} (in a --databases file: "
        raise DataError(err.fix(f'{how}protocol = "{err.protocol}")')) from None
    except NoUsableClip as err:  # an empty folder read as the generic layout: say the named one
        if expected is None or err.layout == expected:
            raise
        raise DataError(
            f"database {data.name} ({data.options.data}): no {expected} clip where that layout "
            f"expects them: {get_layout(expected).summary}; {check_the_path(root, expected)}"
        ) from None
    if expected and dataset.layout != expected:
        raise DataError(
            f"database {data.name} ({data.options.data}): its files read as the "
            f"{dataset.layout} layout, not {expected}'s; {check_the_path(root, expected)}"
        )
    return dataset


def cross_dataset_options(
    options: FeatureOptions, evaluation: EvaluationOptions, synthetic: bool
) -> FeatureOptions:
    """``options`` pointed at the cross-dataset test set: same backbone, frames and face crop
    (the default crop as the training data resolve it: none when they are the ``synthetic``
    set, whose heads tested on cropped faces scored other inputs than they trained on), its
    layout."""
    crop = options.face_crop if options.face_crop is not None else not synthetic
    return dataclasses.replace(
        options,
        data=evaluation.test_data,
        protocol=evaluation.test_protocol,
        fold=None,
        subject_pattern=None,  # a pattern is written for --data's file names
        face_crop=crop,
    )


def as_training_set(source: FeatureSet, clips: str) -> FeatureSet:
    """A source as ``--source-clips`` ``clips`` trains on it: its train split, or (``all``) its
    test split too, as SSDG's label files train (:func:`~experiments.domains.trained_role`)."""
    if clips == "train":
        return source
    trained = [
        dataclasses.replace(c, split="train")
        if domains.trained_role(c.split, clips) == "train"
        else c
        for c in source.clips
    ]
    return dataclasses.replace(source, clips=trained)


def as_test_set(other: FeatureSet, trained: FeatureSet, clips: str = "test") -> FeatureSet:
    """``other`` ready to be tested on: its test split, or every clip when it has no test split
    of its own (one the loader carved does not count) or ``clips`` is "all" (as SSDG tests: but
    the dev set a database has of its own, :data:`~experiments.domains.OWN_DEV`).

    Refuses features the trained head cannot read (another backbone, frame count or crop).
    """
    read_alike = (
        ("weights_fingerprint", "weights", ""),
        ("frames_per_clip", "frames per clip", ""),
        ("face_crop", "face crop", ": choose one for both, --face-crop or --no-face-crop"),
    )
    for field, what, fix in read_alike:
        if getattr(other, field) != getattr(trained, field):
            raise DataError(
                f"{other.path}: {what} {getattr(other, field)} differ from the training data's "
                f"{getattr(trained, field)}{fix}"
            )
    tested = domains.target_clips_tested(other, clips)
    if tested == "test":
        return other
    whole = [
        dataclasses.replace(c, split="test") if domains.tested_clip(c.split, tested) else c
        for c in other.clips
    ]
    return dataclasses.replace(other, clips=whole)


def evaluation_context(
    evaluation: EvaluationOptions, settings: Sequence[Setting]
) -> dict[str, str]:
    """Tags for every run: which folds, how many repeats, and which data the test figures use."""
    first = settings[0]
    folds = [s.fold for s in settings if s.repeat == 0 and s.fold is not None]
    used = {id(f): f for f in (*first.sources, first.test_features)}.values()  # each once
    context = {
        "test_data_fingerprint": first.test_features.dataset_fingerprint,
        "test_clips": ",".join(  # per fold, when there are several
            str(len(s.test_features.indices("test"))) for s in settings if s.repeat == 0
        ),
        "folds": ",".join(map(str, folds)) if folds else "none",
        "repeats": str(evaluation.repeats),
        # the data summary's skips: what the loader could not read as a clip, and the clips that
        # did not decode (the console names each)
        "skipped_clips": str(sum(len(f.skipped) for f in used)),
    }
    if evaluation.cross_domain:
        *sources, target = first.names
        tested = domains.target_clips_tested(first.test_features, evaluation.target_clips)
        return {
            "evaluation": "cross-domain",
            "setting": evaluation.setting or f"{','.join(sources)}->{target}",
            "sources": ",".join(sources),
            "target": target,
            "target_clips": tested,  # as tested (no test split: all)
            # what the sources trained on: their train splits, or every clip but dev (SSDG's)
            "source_clips": evaluation.source_clips,
            "train_clips": str(sum(len(f.indices("train")) for f in first.sources)),
            # the threshold's: OULU-NPU's dev users' every session where it is taken whole
            "dev_clips": str(sum(len(f.indices("dev")) for f in first.sources)),
            "test_data": os.path.abspath(evaluation.target.options.data),
            "test_protocol": first.test_features.protocol,
            **{f"data_fingerprint_{n}": f.dataset_fingerprint for n, f in first._named()},
            **{f"protocol_{n}": f.protocol for n, f in first._named()},
            **{f"face_boxes_{n}": f.crop.tags()["face_boxes"] for n, f in first._named()},
            **{f"skipped_clips_{n}": str(len(f.skipped)) for n, f in first._named()},
            **context,
        }
    cross = evaluation.test_data is not None
    return {
        "evaluation": "cross-dataset" if cross else "intra-dataset",
        "test_data": os.path.abspath(evaluation.test_data) if cross else "same as data",
        "test_protocol": first.test_features.protocol if cross else "same as protocol",
        # the test clips' own boxes: predict crops such a clip with them (the data's: face_boxes)
        "test_face_boxes": first.test_features.crop.tags()["face_boxes"]
        if cross
        else "same as data",
        **context,
    }


def study_suffix(evaluation: EvaluationOptions) -> str:
    """What a default study name adds, so intra- and cross-dataset trials never share a study."""
    suffix = f"-to-{Path(evaluation.test_data).resolve().name}" if evaluation.test_data else ""
    if evaluation.cross_domain and evaluation.target_clips == "all":
        suffix += "-all"
    if evaluation.cross_domain and evaluation.source_clips == "all":
        suffix += "-sources-all"
    return suffix + (f"-x{evaluation.repeats}" if evaluation.repeats > 1 else "")


# --------------------------------------------------------------------------- figures


def scores_frame(setting: Setting, data: dict[str, SplitData], dev, test) -> pd.DataFrame:
    """scores.csv rows of one setting: one per dev and test clip, score = probability of bona fide.

    Beside the score: split, the database (when a study has several), clip, its file (the path
    in its database's folder), subject, label, attack_type (the species), the dataset's own
    columns (``Clip.columns``: session, phone, support, quality ...), the frames without a face
    when the features count them, then the setting's fold and repeat; enough to regroup.
    """
    rows = []
    for split, scores in (("dev", dev), ("test", test)):
        part = data[split]
        for n, (clip, score) in enumerate(zip(part.clips, scores.scores, strict=True)):
            row = {"split": split}
            if part.databases:
                row[DATABASE_COLUMN] = part.databases[n]
            row |= {
                "clip": clip.clip_id,
                "file": clip.file,
                "subject": clip.subject,
                "label": clip.label,
                "attack_type": clip.attack_type,
            }
            for column, value in clip.columns.items():
                row[column if column not in row else f"data_{column}"] = value
            if part.no_face is not None:
                row[NO_FACE_COLUMN] = int(part.no_face[n])
            row.update({"fold": setting.fold, "repeat": setting.repeat, "score": float(score)})
            rows.append(row)
    frame = pd.DataFrame(rows)
    last = [c for c in (NO_FACE_COLUMN, "fold", "repeat", "score") if c in frame.columns]
    return frame[[c for c in frame.columns if c not in last] + last]


def no_face_metrics(setting: Setting) -> dict[str, float]:
    """Frames without a face per split and species (per database, when a study has several),
    when the features count them.

    ``no_face_<split>_<species>`` (``no_face_<database>_<split>_<species>``) is the count and
    ``no_face_rate_...`` its share of the species' frames: a detector that misses faces more
    often on one species (or database) is a shortcut the head can learn.
    """
    metrics: dict[str, float] = {}
    *sources, tested = setting._named()
    several = bool(setting.more_sources)  # one source: the keys every study always had
    parts = [(name, f, split) for name, f in sources for split in ("train", "dev")]
    for name, features, split in [*parts, (*tested, "test")]:
        if not features.face_crop:
            continue
        clips = [features.clips[i] for i in features.indices(split)]
        counts = no_face_by_species(clips, features.no_face, features.frames_per_clip)
        where = f"{metric_suffix(name)}_{split}" if several else split
        for species, count in counts.items():
            metrics[f"no_face_{where}_{metric_suffix(species)}"] = count.missed
            metrics[f"no_face_rate_{where}_{metric_suffix(species)}"] = count.rate
    return metrics
