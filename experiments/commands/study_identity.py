"""What a study is: its default name, the identity every worker and rerun of a named ``--study``
must share (:func:`experiments.stores.identity.check_identity`), and the check of a named study
against features about to be extracted, so a mismatch is refused before hours of extraction.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from functools import partial
from typing import Any

from core.device import keras_backend
from core.features import FeatureOptions, FeatureSet, default_weights_path
from core.features.crop import FaceCrop
from experiments import domains
from experiments.commands.sweep import SweepConfig
from experiments.config import safe_name
from experiments.serving.trial_model import DEFAULT_WEIGHTS
from experiments.stores import identity, record, tracking
from experiments.trial import search
from experiments.trial.evaluation import Setting, evaluation_context, study_suffix

SEARCHED = "--heads (the head families searched)"  # identity entries a pooled study may differ in
SEEDED = "--seed (each trial's training seed)"


def default_study_name(config: SweepConfig, setting: Setting, families: list[str]) -> str:
    """``pad-<protocol>-<backbone>-<identity>``: the identity hashes what the trials' numbers
    depend on (each training database's cache key: data content, weights content and feature
    options, the extraction precision among them; its clips, splits, protocol and fold; the test
    data; the repeats; the training precision; the head families searched, the write-up heads
    run first where ``--heads`` names a part of a family's or none (conv4096; conv), and the
    fine-tuning choices; the Keras backend, when it is not TensorFlow), never how a path was
    spelled. A cross-domain study is named after its setting (``ocim-m``), or its databases
    (``c_m-to-i``; before 2026-12-06 ``cross``, or the one source's protocol)."""
    features = setting.features
    protocol = "synthetic" if features.synthetic else features.protocol
    evaluation = config.evaluation
    if evaluation.cross_domain:  # the setting's name, or its databases': pad-c_m-to-i-...
        names = tuple(data.name for data in evaluation.sources)
        protocol = evaluation.setting or domains.default_name(names, evaluation.target.name)
    weights = "random" if features.random_weights else "vggface"
    tested = _target_clips(setting, evaluation.target_clips)
    first = search.writeup_subset(config.heads)  # run first, where not the families' own
    named = "|".join(
        (
            *(f"{f.fingerprint}:{f.dataset_fingerprint}" for f in setting.sources),
            setting.test_features.dataset_fingerprint,
            *([tested] if tested != evaluation.target_clips else []),  # "all" took dev too once
            *(["sources all"] if evaluation.source_clips == "all" else []),  # names kept before
            str(config.evaluation.repeats),
            ",".join(config.fine_tune),  # another search space: another study
            ",".join(families),
            *([] if first is None else [f"write-up {','.join(first)}"]),  # conv4096, conv2048
            config.training_precision,
            *([] if keras_backend() == "tensorflow" else [keras_backend()]),  # TF's names kept
            # folds of several seeds: std over the folds since 2026-12-07, a study of its own
            *(["std over folds"] if _folds_of_seeds(config, setting) else []),
        )
    )
    digest = hashlib.sha256(named.encode()).hexdigest()[:10]
    suffix = study_suffix(config.evaluation)  # says cross-dataset and repeats in the name
    suffix += "-pareto" if config.multi_objective else ""  # two objectives: another study
    return safe_name(f"pad-{protocol}-{weights}-{digest}{suffix}")


def study_identity(config: SweepConfig, settings: Sequence[Setting]) -> dict[str, Any]:
    """What a study's figures depend on besides its search space (checked on its own) and its
    objectives (Optuna's directions), by the flags that set them: every worker and rerun of an
    explicitly named ``--study`` must agree (:func:`experiments.stores.identity.check_identity`).
    The features' cache entry covers the data's files (sizes and times), the weights, frames,
    crop and detector, and the extraction precision; the clips cover protocol, fold and split."""
    first, clips = settings[0], config.evaluation.target_clips
    whole = ":all" if config.evaluation.source_clips == "all" else ""
    ahead = search.writeup_subset(config.heads)  # the write-up heads run first: a part, or none

    def each(values) -> str:
        return ",".join(dict.fromkeys(values))  # every setting's (folds), once, in order

    return {
        record.FEATURES: "cache entry " + each(f.fingerprint[:12] for f in first.sources),
        record.TEST_FEATURES: "cache entry "
        + each(s.test_features.fingerprint[:12] for s in settings),
        # named before the clips they choose: a refusal says the protocol, not a hash of clips
        record.PROTOCOLS: each(f.protocol for s in settings for f in (*s.sources, s.test_features)),
        # named before the clips too: "1,2,3,4,5,6; this run's 2", not six hashes (probe)
        record.FOLDS: each("none" if s.fold is None else str(s.fold) for s in settings),
        **({record.SPREAD: record.SPREAD_OVER_FOLDS} if _folds_of_seeds(config, first) else {}),
        # trained on a CASIA-FASD scenario's subset: every split's, since 2026-12-07
        **(
            {record.CASIA_SUBSETS: record.CASIA_EVERY_SPLIT}
            if any(f.protocol.startswith("casia-") for f in first.sources)
            else {}
        ),
        record.SPLIT_SEED: str(config.features.split_seed),  # said where the clips differ
        # ":all": trained on every clip but dev (--source-clips all; train alone: as before)
        "clips (--protocol, --fold, --split-seed)": each(
            f.dataset_fingerprint[:12] + whole for s in settings for f in s.sources
        ),
        "test clips (--test-data, --test-protocol, --target-clips)": each(
            f"{s.test_features.dataset_fingerprint[:12]}:{_target_clips(s, clips)}"
            for s in settings
        ),
        "--repeats": str(config.evaluation.repeats),
        "--fine-tune": ",".join(config.fine_tune),
        # as its trials search them; recorded too for a worker that joins before any trial asked
        SEARCHED: ",".join(search.families(config.heads)),
        **({} if ahead is None else {record.WRITE_UP: ",".join(ahead) or "none"}),
        "training precision (--train-precision)": config.training_precision,
        SEEDED: str(config.seed),
        "Keras backend (KERAS_BACKEND)": keras_backend(),
        **({record.DATABASES: databases(config)} if config.evaluation.cross_domain else {}),
        record.KEY_PARTS: {  # no flag: what names a difference where the entry is not here
            f.fingerprint[:12]: f.manifest.get("key_parts")
            for s in settings
            for f in (*s.sources, s.test_features)
        },
    }


def _folds_of_seeds(config: SweepConfig, setting: Setting) -> bool:
    """Whether a trial runs every fold of ``setting``'s protocol (of several), each with several
    seeds (``--repeats``): its figures' std is then over the folds, each fold's seeds averaged
    first."""
    every_fold = setting.fold is not None and config.features.fold is None  # no --fold given
    return every_fold and config.evaluation.repeats > 1


def _target_clips(setting: Setting, clips: str) -> str:
    """``--target-clips`` as a study records it: the flag, or
    :data:`~experiments.domains.ALL_BUT_DEV` where "all" leaves out a database's own dev set
    (which it tested until 2026-12-06: those studies, and every other, record what they did)."""
    tested = domains.target_clips_tested(setting.test_features, clips)
    return tested if tested == domains.ALL_BUT_DEV else clips


def comparable(config: SweepConfig, settings: Sequence[Setting]) -> str:
    """A digest of what a study's figures depend on but the heads it searches (families, and
    write-up heads first) and its seed (:func:`study_identity`, without its paths): two studies
    with the same are one experiment whose trials the cross-domain table pools."""
    recorded = study_identity(config, settings)
    # --heads, the seed; the folds, which the clips' digests hold (it would set studies made
    # since they were recorded apart from earlier ones)
    left = (SEARCHED, SEEDED, record.WRITE_UP, record.FOLDS, *record.UNCOMPARED)
    kept = {k: v for k, v in recorded.items() if k not in left}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def databases(config: SweepConfig) -> dict[str, str]:
    """A cross-domain study's databases by name, as :data:`record.DATABASES` records them."""
    evaluation = config.evaluation
    sources = ", ".join(data.name for data in evaluation.sources)
    return {"trained on": sources, "tested on": evaluation.target.name}


def check_study(
    config: SweepConfig, options: FeatureOptions, key: str, parts: dict[str, Any]
) -> None:
    """Before the features of ``options`` (cache entry ``key``, hashing ``parts``) are
    extracted: a study named by ``--study`` that has figures from other training features is
    refused, naming what differs, not after hours of extraction; so is one tested on other
    features (``--test-data``, a cross-domain ``--target``)."""
    if config.study is None:
        return
    evaluation = config.evaluation
    sources = evaluation.sources
    trained = {s.options.data for s in sources} if sources else {config.features.data}
    tested = evaluation.target.options.data if evaluation.cross_domain else evaluation.test_data
    check = partial(
        identity.check_features,
        config.storage,
        config.study,
        key,
        parts,
        options.cache_root / "features",
        databases=databases(config) if evaluation.cross_domain else None,
    )
    if options.data in trained:
        check()
    elif tested is not None and options.data == tested:
        check(part=record.TEST_FEATURES)


def _fold_tag(folds: set[int | None]) -> str:
    """The ``fold`` tag: the one fold that ran, ``none``, or ``all`` (never fold 1 for six)."""
    fold = next(iter(folds))
    return "all" if len(folds) > 1 else "none" if fold is None else str(fold)


def _weights_tag(
    given: str | os.PathLike | None, features: FeatureSet, cache: os.PathLike | None
) -> str:
    """The weights file the features were made with, absolute: the one given, else the default
    place's as extraction found it (``$VGGFACE_WEIGHTS``, else the study's cache folder); for the
    random backbone ``default``. A study's file in its ``--cache-dir`` was tagged ``default``, and
    serving, which knows no cache folder, refused the run until given ``--weights`` (review)."""
    if given:
        return os.path.abspath(os.path.expanduser(given))
    if features.random_weights:
        return DEFAULT_WEIGHTS
    return os.path.abspath(default_weights_path(cache))


def run_context(config: SweepConfig, features: FeatureSet, settings) -> dict[str, str]:
    """The tags of every run of this sweep: what data, backbone, crop, precisions and protocol
    its numbers come from, each as resolved; the crop of every source's clips (a cross-domain
    study's per database too, :func:`evaluation_context`)."""
    sources = config.evaluation.sources
    paths = [s.options.data for s in sources] if sources else [config.features.data]
    pooled, weights = settings[0].sources, config.features.weights  # every source, data's order

    def each(field: str) -> str:
        return ",".join(str(getattr(source, field)) for source in pooled)

    # absolute: a relative path named nothing to predict or a registered model in another folder
    return {
        "data": ",".join(os.path.abspath(path) for path in paths if path) or "synthetic",
        "data_fingerprint": each("dataset_fingerprint"),
        "protocol": each("protocol"),
        "fold": _fold_tag({s.fold for s in settings}),
        "layout": each("layout"),
        "subject_pattern": config.features.subject_pattern or "none",
        "weights": _weights_tag(weights, features, config.features.cache_dir),
        "weights_fingerprint": features.weights_fingerprint,
        "feature_cache": each("fingerprint"),
        # the tested clips' entry (a target's or --test-data's had no tag: probe W)
        "test_feature_cache": ",".join(
            dict.fromkeys(s.test_features.fingerprint for s in settings)
        ),
        "random_weights": str(features.random_weights).lower(),
        "synthetic": str(features.synthetic).lower(),
        **FaceCrop.pooled([f.crop for f in pooled]).tags(),
        "frames_per_clip": str(features.frames_per_clip),  # tables say options that differ
        "extraction_precision": features.manifest["key_parts"]["precision"],
        # what the crops and frames were made with: serving says where its own differ (review)
        "face_detector_version": features.manifest["key_parts"]["detector"] or "none",
        "preprocessing": str(features.manifest["key_parts"]["preprocessing"]),
        "training_precision": config.training_precision,
        "keras_backend": keras_backend(),  # what trained the heads: figures differ by backend
        **evaluation_context(config.evaluation, settings),
        tracking.CONTEXT_TAG: comparable(config, settings),  # studies the cross table pools
    }
