"""Evaluation settings (folds x repeats, cross-dataset) through real trials.

Real fc7 features of two tiny generated sets (random backbone, 2 frames of 48x48 per clip), a
real Optuna study in memory and a real MLflow store (SQLite) in a temporary folder. Every test
figure a trial logs is recomputed from its scores.csv with bob.measure itself.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import cv2
import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest

from core.data.clips import DataError
from core.features import FeatureOptions, cached_features
from core.words import percent
from experiments.commands.options import add_evaluation_arguments, evaluation_options
from experiments.config import EvaluationOptions
from experiments.metrics import (
    REPORT_KEYS,
    ScoreSet,
    hter_interval,
    mean_std,
    metric_suffix,
    report_from_scores_frame,
    wilson_interval,
)
from experiments.results import tables
from experiments.serving import models
from experiments.stores import tracking
from experiments.stores.runs_table import trial_table
from experiments.trial import search
from experiments.trial.evaluation import (
    REPEAT_SEED_STRIDE,
    Setting,
    as_test_set,
    cross_dataset_options,
    evaluation_context,
    no_face_metrics,
    prepare_settings,
    protocol_folds,
    scores_frame,
    study_suffix,
)
from experiments.trial.objective import Objective
from tests.reference import bob_measure

FRAMES = 2
# Two attacks of each species in dev: bob.measure.far_threshold (BPCER20/100) needs two.
SPLIT_CLIPS = {
    "train": ("real", "real", "attack/print", "attack/replay"),
    "dev": ("real", "real", "attack/print", "attack/print", "attack/replay", "attack/replay"),
    "test": ("real", "real", "attack/print", "attack/print", "attack/replay", "attack/replay"),
}


def write_set(root, seed: int, splits: dict[str, tuple[str, ...]] = SPLIT_CLIPS) -> None:
    """Frame folders under split/label[/species]/client<subject>_<n>; one subject per split."""
    rng = np.random.default_rng(seed)
    for number, (split, kinds) in enumerate(splits.items()):
        for n, kind in enumerate(kinds):
            folder = root / split / kind / f"client{10 * seed + number:03d}_{n}"
            folder.mkdir(parents=True)
            base = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
            for f in range(FRAMES):
                frame = np.roll(base, 3 * f, axis=1) if kind == "real" else base
                cv2.imwrite(str(folder / f"{f:03d}.png"), frame)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """Options and features of set A (training) and set B (another set, for cross-dataset)."""
    root = tmp_path_factory.mktemp("evaluation")
    write_set(root / "a", seed=1)
    write_set(root / "b", seed=2)
    options = FeatureOptions(
        data=root / "a", cache_dir=root / "cache", frames=FRAMES, face_crop=False, progress=False
    )
    other = dataclasses.replace(options, data=root / "b")
    return options, cached_features(options), other, cached_features(other)


def bob_figures(frame: pd.DataFrame, bob) -> dict[str, float]:
    """The test figures of one setting's scores.csv rows, computed by bob.measure alone.

    The intervals come from the error counts at Bob's threshold (Bob has no intervals).
    """

    def split(name: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        rows = frame[frame["split"] == name]
        bonafide = rows[rows["label"] == "bonafide"]["score"].to_numpy(np.float64)
        attacks = rows[rows["label"] == "attack"].groupby("attack_type")["score"]
        return bonafide, {kind: s.to_numpy(np.float64) for kind, s in attacks}

    dev_bonafide, dev_species = split("dev")
    bonafide, species = split("test")
    attacks = np.concatenate(list(species.values()))
    dev_attacks = np.concatenate(list(dev_species.values()))
    threshold = bob.eer_threshold(dev_attacks, dev_bonafide)
    far, frr = bob.farfrr(attacks, bonafide, threshold)
    per_species = {kind: bob.farfrr(s, bonafide, threshold)[0] for kind, s in species.items()}
    worst = max(per_species.values())
    dev_far, dev_frr = bob.farfrr(dev_attacks, dev_bonafide, threshold)
    dev_worst = max(bob.farfrr(s, dev_bonafide, threshold)[0] for s in dev_species.values())
    figures = {
        "dev_threshold": threshold,
        "dev_eer": (dev_far + dev_frr) / 2,
        "dev_acer": (dev_worst + dev_frr) / 2,  # the search's objective (review)
        "test_apcer": worst,
        "test_bpcer": frr,
        "test_acer": (worst + frr) / 2,
        "test_hter": (far + frr) / 2,
        "test_eer": sum(bob.farfrr(attacks, bonafide, bob.eer_threshold(attacks, bonafide))) / 2,
    }
    figures.update({f"test_apcer_{metric_suffix(k)}": v for k, v in per_species.items()})
    # Bob's far_threshold refuses a species with fewer than two dev attacks (tiny trees); these
    # two operating points are checked against Bob in tests/test_metrics.py.
    for point in (20, 100) if min(map(len, dev_species.values())) >= 2 else ():
        at = max(bob.far_threshold(s, dev_bonafide, 1 / point) for s in dev_species.values())
        figures[f"dev_bpcer{point}_threshold"] = at
        figures[f"test_bpcer{point}"] = bob.farfrr(attacks, bonafide, at)[1]
    # Worst species' interval; on a tie the species with fewer attacks (metrics.pad_report).
    kind = min(species, key=lambda k: (-per_species[k], species[k].size))
    errors = round(per_species[kind] * species[kind].size)
    rejected, accepted = round(frr * bonafide.size), round(far * attacks.size)
    intervals = {
        "apcer": wilson_interval(errors, species[kind].size),
        "bpcer": wilson_interval(rejected, bonafide.size),
        "hter": hter_interval(accepted, attacks.size, rejected, bonafide.size),
    }
    for name, (low, high) in intervals.items():
        figures[f"test_{name}_ci_low"], figures[f"test_{name}_ci_high"] = low, high
    return figures


def bob_report(scores: pd.DataFrame, bob) -> dict[str, float]:
    """:func:`bob_figures` of each (fold, repeat) setting of a scores.csv, then mean and std;
    with several folds of several seeds, each fold's seeds averaged first and the std over the
    folds (OULU-NPU's mean ± std over its folds); thresholds are the first setting's, whose head
    the trial keeps (never a mean); no interval (a mean of intervals is no interval of the
    mean)."""
    groups = scores.groupby(["fold", "repeat"], sort=False, dropna=False)
    reports = [bob_figures(rows, bob) for _, rows in groups]
    if len(reports) == 1:
        return reports[0]
    folds = [fold for fold, _ in groups.groups]
    if 1 < len(set(folds)) < len(folds):
        first = {fold: folds.index(fold) for fold in folds}  # a fold's first setting
        reports = [
            {
                key: value
                if key.endswith("threshold")
                else np.mean([r[key] for f, r in zip(folds, reports, strict=True) if f == fold])
                for key, value in reports[at].items()
                if not key.endswith(("_ci_low", "_ci_high"))
            }
            for fold, at in first.items()
        ]
    summary = {}
    for key in reports[0]:
        if key.endswith("threshold"):
            summary[key] = reports[0][key]
        elif not key.endswith(("_ci_low", "_ci_high")):  # intervals: one setting's only
            summary[key], summary[f"{key}_std"] = mean_std([r[key] for r in reports])
    return summary


def run_trial(tmp_path, settings, context=None, head="lstm30") -> tuple[optuna.Study, str]:
    """One real trial (the write-up's ``head``, fewest epochs) of ``settings``; its experiment,
    its artifacts under ``tmp_path`` (MLflow puts a SQLite store's in the working folder's
    ./mlruns)."""
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        experiment_id = tracking.use_experiment("evaluation")
        study = optuna.create_study(study_name="evaluation")
        baseline = next(p for p in search.baselines() if search.baseline_name(p) == head)
        study.enqueue_trial({**baseline, "epochs": search.MAX_EPOCHS[0]})  # the fewest, for speed
        objective = Objective("evaluation", search.families(), settings, context or {}, seed=3)
        with tracking.run("study", "study", {tracking.STUDY_TAG: "evaluation"}):
            study.optimize(objective, n_trials=1)
    return study, experiment_id


def logged(experiment_id: str, tmp_path) -> tuple[pd.Series, pd.DataFrame]:
    runs = tracking.study_runs(experiment_id, "evaluation")
    assert len(runs) == 1
    run = runs.iloc[0]
    path = mlflow.artifacts.download_artifacts(
        run_id=run["run_id"], artifact_path="scores.csv", dst_path=str(tmp_path)
    )
    return run, pd.read_csv(path, keep_default_na=False)


# ------------------------------------------------------------------ settings


def test_repeats_are_settings_of_the_same_data_with_other_seeds(sets) -> None:
    options, features, _, _ = sets
    settings = prepare_settings(options, EvaluationOptions(repeats=3))
    assert [(s.fold, s.repeat, s.name) for s in settings] == [
        (None, 0, "repeat0"),
        (None, 1, "repeat1"),
        (None, 2, "repeat2"),
    ]
    assert len({s.seed(5) for s in settings}) == 3 and settings[0].seed(5) == 5
    for setting in settings:
        assert setting.features.fingerprint == features.fingerprint
        assert setting.test_features is setting.features
    data = settings[0].data("sequence")
    assert [len(data[s].clips) for s in ("train", "dev", "test")] == [4, 6, 6]
    assert data["dev"].x.shape == (6, FRAMES, 1, 1, 4096)
    assert settings[0].data("frame")["test"].x.shape == (6 * FRAMES, 1, 1, 4096)


def test_folds_come_from_the_protocol_unless_one_is_named() -> None:
    assert protocol_folds(FeatureOptions()) == (None,)
    assert protocol_folds(FeatureOptions(protocol="oulu-p1")) == (None,)
    assert protocol_folds(FeatureOptions(protocol="oulu-p3")) == (1, 2, 3, 4, 5, 6)
    assert protocol_folds(FeatureOptions(protocol="oulu-p4", fold=2)) == (2,)


def test_folds_times_repeats_load_each_fold_once(sets) -> None:
    options, features, _, _ = sets
    loaded = []

    def load(fold_options: FeatureOptions):
        loaded.append(fold_options.fold)
        return features

    settings = prepare_settings(
        dataclasses.replace(options, protocol="oulu-p3"), EvaluationOptions(repeats=2), load
    )
    assert loaded == [1, 2, 3, 4, 5, 6]
    assert [s.name for s in settings[:3]] == ["fold1-repeat0", "fold1-repeat1", "fold2-repeat0"]
    assert len(settings) == 12


def test_cross_dataset_tests_on_the_other_sets_test_split(sets) -> None:
    options, features, other_options, other = sets
    evaluation = EvaluationOptions(test_data=other_options.data)
    (setting,) = prepare_settings(options, evaluation)
    data = setting.data("frame")
    train = [features.clips[i].clip_id for i in features.indices("train")]
    assert [c.clip_id for c in data["train"].clips] == train
    test_ids = [c.clip_id for c in data["test"].clips]
    assert test_ids == [other.clips[i].clip_id for i in other.indices("test")]
    assert all(c.path.is_relative_to(other_options.data) for c in data["test"].clips)
    context = evaluation_context(evaluation, [setting])
    assert context["evaluation"] == "cross-dataset"
    assert context["test_data"] == str(other_options.data) and context["test_clips"] == "6"
    assert context["test_data_fingerprint"] == other.dataset_fingerprint
    assert study_suffix(evaluation) == "-to-b"
    assert evaluation_context(EvaluationOptions(), [Setting(None, 0, features, features)]) == {
        "evaluation": "intra-dataset",
        "test_data": "same as data",
        "test_protocol": "same as protocol",
        "test_face_boxes": "same as data",
        "test_data_fingerprint": features.dataset_fingerprint,
        "test_clips": "6",
        "folds": "none",
        "repeats": "1",
        "skipped_clips": "0",
    }
    # a clip that did not decode is said on every run, where the figures leave it out (probe)
    lost = dataclasses.replace(features, skipped=[(features.clips[0].path, "cannot decode")])
    context = evaluation_context(EvaluationOptions(), [Setting(None, 0, lost, lost)])
    assert context["skipped_clips"] == "1"  # the one FeatureSet, counted once


def test_a_set_without_test_split_is_tested_whole(sets) -> None:
    _, features, _, other = sets
    untested = [
        dataclasses.replace(c, split="dev") if c.split == "test" else c for c in other.clips
    ]
    whole = as_test_set(dataclasses.replace(other, clips=untested), features)
    assert len(whole.indices("test")) == len(other.clips) == 16
    assert as_test_set(other, features) is other  # a test split: only it


def test_a_test_set_the_head_cannot_read_is_refused(sets) -> None:
    _, features, _, other = sets
    with pytest.raises(DataError, match="frames per clip 3 differ"):
        as_test_set(dataclasses.replace(other, frames_per_clip=3), features)
    with pytest.raises(DataError, match="face crop True differ from the training data's False: "):
        as_test_set(dataclasses.replace(other, face_crop=True), features)


def test_the_test_data_is_cropped_as_the_training_data_are() -> None:
    """The synthetic set (whole frames) tested on a folder of one's own: the test clips were
    face-cropped by the default crop, the heads scored other inputs than they trained on, and
    predict, reading the study's crop, disagreed with its scores.csv (probe)."""
    evaluation = EvaluationOptions(test_data=Path("other"))
    synthetic = cross_dataset_options(FeatureOptions(), evaluation, synthetic=True)
    assert (synthetic.data, synthetic.face_crop) == (Path("other"), False)
    own = cross_dataset_options(FeatureOptions(data=Path("mine")), evaluation, synthetic=False)
    assert own.face_crop is True
    for crop in (False, True):  # as given
        given = FeatureOptions(data=Path("mine"), face_crop=crop)
        assert cross_dataset_options(given, evaluation, synthetic=crop).face_crop is crop


def test_flags() -> None:
    parser = argparse.ArgumentParser()
    add_evaluation_arguments(parser)
    args = parser.parse_args(["--repeats", "3", "--test-data", "x", "--test-protocol", "casia"])
    (options,) = evaluation_options(args)
    assert (options.repeats, str(options.test_data), options.test_protocol) == (3, "x", "casia")
    assert evaluation_options(parser.parse_args([])) == [EvaluationOptions()]
    with pytest.raises(ValueError, match="--repeats must be at least 1"):
        evaluation_options(parser.parse_args(["--repeats", "0"]))
    with pytest.raises(ValueError, match="--test-protocol needs --test-data"):
        evaluation_options(parser.parse_args(["--test-protocol", "casia"]))
    with pytest.raises(ValueError, match="--target-clips goes with a cross-domain study"):
        evaluation_options(parser.parse_args(["--target-clips", "all"]))  # was ignored
    with pytest.raises(ValueError, match="--source-clips goes with a cross-domain study"):
        evaluation_options(parser.parse_args(["--source-clips", "all"]))
    # a test protocol of folds: the refusal had asked for --fold, which chooses --data's fold
    folds = ["--test-data", "x", "--test-protocol", "oulu-p3"]
    with pytest.raises(ValueError, match="^--test-protocol oulu-p3 has folds, and a cross-dataset"):
        evaluation_options(parser.parse_args(folds))


def test_scores_keep_every_column_needed_to_regroup(sets) -> None:
    _, features, _, _ = sets
    columns = {"print": (("support", "hand"), ("split", "x")), "replay": (("quality", "high"),)}
    clips = [
        dataclasses.replace(c, attributes=columns.get(c.attack_type, ())) for c in features.clips
    ]
    missed = {c.clip_id: n % 3 for n, c in enumerate(clips)}
    counted = dataclasses.replace(features, clips=clips, no_face=missed, face_crop=True)
    setting = Setting(4, 1, counted, counted)
    data = setting.data("sequence")
    dev, test = (ScoreSet(np.linspace(0, 1, 6), data[s].y) for s in ("dev", "test"))
    frame = scores_frame(setting, data, dev, test)
    assert list(frame.columns) == [
        *("split", "clip", "file", "subject", "label", "attack_type", "support", "data_split"),
        *("quality", "no_face_frames", "fold", "repeat", "score"),
    ]
    replay = frame[frame["attack_type"] == "replay"]
    assert set(replay["quality"]) == {"high"} and replay["support"].isna().all()
    assert list(frame["no_face_frames"]) == [missed[c] for c in frame["clip"]]
    assert set(frame["fold"]) == {4} and set(frame["repeat"]) == {1}

    metrics = no_face_metrics(setting)
    test_print = sum(
        missed[clips[i].clip_id] for i in counted.indices("test") if clips[i].attack_type == "print"
    )
    assert metrics["no_face_test_print"] == test_print
    assert metrics["no_face_rate_test_print"] == test_print / (2 * FRAMES)
    assert {f"no_face_{s}_bonafide" for s in ("train", "dev", "test")} <= set(metrics)
    assert no_face_metrics(Setting(None, 0, features, features)) == {}  # no crop, no counts


# ------------------------------------------------------------------ trials


@pytest.fixture(scope="module")
def bob():
    return bob_measure()


def test_folds_and_repeats_log_mean_and_std_equal_to_bob(sets, tmp_path, bob) -> None:
    options, features, _, _ = sets
    # A second "fold": the same clips with dev and test swapped.
    swap = {"dev": "test", "test": "dev", "train": "train"}
    swapped = dataclasses.replace(
        features, clips=[dataclasses.replace(c, split=swap[c.split]) for c in features.clips]
    )
    settings = [
        Setting(fold, repeat, fs, fs)
        for fold, fs in ((1, features), (2, swapped))
        for repeat in range(2)
    ]
    context = evaluation_context(EvaluationOptions(repeats=2), settings)
    study, experiment_id = run_trial(tmp_path, settings, context)
    run, scores = logged(experiment_id, tmp_path)

    groups = scores.groupby(["fold", "repeat"], sort=False)
    assert list(groups.groups) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert list(scores.columns[:6]) == ["split", "clip", "file", "subject", "label", "attack_type"]
    assert list(scores.columns[-3:]) == ["fold", "repeat", "score"]
    assert groups.size().tolist() == [12] * 4
    assert run["tags.folds"] == "1,2" and run["tags.repeats"] == "2"
    assert run["metrics.settings"] == 4

    per_setting = [report_from_scores_frame(rows) for _, rows in groups]
    per_fold = [(a["dev_acer"] + b["dev_acer"]) / 2 for a, b in (per_setting[:2], per_setting[2:])]
    assert run["metrics.dev_acer"] == pytest.approx(np.mean([r["dev_acer"] for r in per_setting]))
    assert run["metrics.dev_acer_std"] == pytest.approx(np.std(per_fold, ddof=1))  # over folds
    seeds = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run['run_id']}/settings.csv"))
    base = int(run["params.seed"])  # each repeat's own seed, said (it was in no store: probe)
    assert seeds["seed"].tolist() == [base, base + REPEAT_SEED_STRIDE] * 2
    assert study.trials[0].value == run["metrics.dev_acer"]  # the objective is the mean
    recomputed = report_from_scores_frame(scores)
    assert {k: run[f"metrics.{k}"] for k in recomputed} == recomputed
    by_bob = bob_report(scores, bob)
    assert {k: run[f"metrics.{k}"] for k in by_bob} == by_bob
    thresholds = {k for k in REPORT_KEYS if k.endswith("threshold")}
    intervals = {k for k in REPORT_KEYS if k.endswith(("_ci_low", "_ci_high"))}
    assert {f"{k}_std" for k in set(REPORT_KEYS) - thresholds - intervals} <= set(recomputed)
    assert not intervals & set(recomputed)  # a mean of intervals is no interval of the mean
    assert not {f"{k}_std" for k in thresholds} & set(recomputed)
    assert all(run[f"metrics.{k}"] == per_setting[0][k] for k in thresholds)  # the kept head's
    assert run["tags.kept_setting"] == "fold1-repeat0"

    client = mlflow.MlflowClient()
    names = {a.path for a in client.list_artifacts(run["run_id"])}
    assert {"scores.csv", "settings.csv", "roc_det.png", "head.weights.h5"} <= names
    history = client.get_metric_history(run["run_id"], "fold2-repeat1/epoch_dev_acer")
    assert history and history[0].step == 1

    runs = tracking.study_runs(experiment_id, "evaluation")
    table = tables.comparison(trial_table(runs))
    assert {"test_apcer_print", "test_apcer_replay", "test_acer_std"} <= set(table.columns)
    markdown = tables.to_markdown(table)
    acer, spread = run["metrics.test_acer"], run["metrics.test_acer_std"]
    assert f"{100 * acer:.1f} ± {100 * spread:.1f}%" in markdown
    assert "test_apcer_print" not in markdown  # the headline only; the rest in CSV and HTML
    shown = tables.readable(table)
    assert "test_apcer_print" in shown.columns
    # a threshold among the means is the kept setting's, said in its heading (probe)
    assert "dev_threshold (kept setting's)" in shown.columns and "dev_threshold" not in shown
    assert pd.isna(run.get("metrics.test_hter_ci_low"))  # several settings: ± std, no interval
    assert "test_hter 95% CI" not in shown.columns and "test_hter_ci_low" not in table.columns
    # the worst species with its own mean APCER, which the APCER (the mean of each setting's
    # worst) is not below
    rates = {k: run[f"metrics.test_apcer_{k}"] for k in ("print", "replay")}
    top = max(rates.values())
    worst = "/".join(k for k in sorted(rates) if rates[k] == top)
    apcer = run["metrics.test_apcer"]
    assert apcer >= top - 1e-12
    own = f"{100 * top:.1f}%"  # its own where it reads otherwise than the APCER column
    expected = f"{worst} {own}" if own != f"{100 * apcer:.1f}%" else worst
    assert shown["worst_species"].iloc[0] == (expected if top else "none")
    assert "folds: 1,2" in tables.evaluation_notes(runs)

    # the registered model is the kept setting's head: its version's tags say that head's own
    # figures (the run's are means: probe)
    tags = models.kept_head_tags(client.get_run(run["run_id"]))
    own = per_setting[0]  # from fold 1, repeat 0's rows of scores.csv
    assert tags["kept_setting"] == "fold1-repeat0"
    assert tags["figures"] == (
        f"this head's own (fold1-repeat0): dev ACER {percent(own['dev_acer'])}%, test ACER "
        f"{percent(own['test_acer'])}%, test HTER {percent(own['test_hter'])}%; its trial run's "
        "figures are means over 4 settings"
    )


def test_cross_dataset_trial_reports_on_the_other_set(sets, tmp_path, bob) -> None:
    options, _, other_options, other = sets
    evaluation = EvaluationOptions(test_data=other_options.data)
    settings = prepare_settings(options, evaluation)
    study, experiment_id = run_trial(tmp_path, settings, evaluation_context(evaluation, settings))
    run, scores = logged(experiment_id, tmp_path)
    test = scores[scores["split"] == "test"]
    assert list(test["clip"]) == [other.clips[i].clip_id for i in other.indices("test")]
    assert run["tags.evaluation"] == "cross-dataset"
    assert run["tags.test_data"] == str(other_options.data)
    assert "metrics.dev_acer_std" not in run.index or pd.isna(run["metrics.dev_acer_std"])
    by_bob = bob_report(scores, bob)
    assert {k: run[f"metrics.{k}"] for k in by_bob} == by_bob


def test_a_cross_dataset_studys_notes_name_the_data_it_trained_on() -> None:
    """compare --study named the test data and not the training database (probe)."""
    runs = pd.DataFrame(
        {
            "tags.evaluation": ["cross-dataset"],
            "tags.data": ["/d/CASIA"],
            "tags.test_data": ["/d/I"],
        }
    )
    assert tables.evaluation_notes(runs)[:3] == [
        "evaluation: cross-dataset",
        "trained on: /d/CASIA",
        "test data: /d/I",
    ]
    intra = runs.assign(**{"tags.evaluation": "intra-dataset"})  # its own: said once, as data
    assert not any(note.startswith("trained on") for note in tables.evaluation_notes(intra))
    # which data, protocol and crop: "test data: same as data" named none of them (probe)
    intra = intra.assign(**{"tags.protocol": "replay-attack", "tags.face_crop": "database boxes"})
    notes = tables.evaluation_notes(intra)
    assert notes[1:3] == ["data: /d/CASIA", "protocol: replay-attack"]
    assert notes[-1] == "face crop: database boxes"
    # a test folder's own boxes beside the training data's crop (review)
    crossed = runs.assign(**{"tags.face_crop": "haar", "tags.test_face_boxes": "6 of 6"})
    notes = tables.evaluation_notes(crossed)
    assert notes[-2:] == ["face crop: haar", "test database's clips with boxes: 6 of 6"]
    assert not any(
        "database boxes: same" in n
        for n in tables.evaluation_notes(intra.assign(**{"tags.test_face_boxes": "same as data"}))
    )


def test_a_named_database_that_is_not_there_is_said_with_its_name(tmp_path) -> None:
    """``--db msu=/nonexist`` said only "/nonexist: no such folder" (probe)."""
    from experiments.config import NamedData
    from experiments.trial.evaluation import check_database

    missing = tmp_path / "nonexist"
    with pytest.raises(DataError) as refused:
        check_database(NamedData("msu", FeatureOptions(data=missing)))
    assert str(refused.value) == (
        f"database msu: {missing}: no such folder; a database is given by its folder"
    )


def test_a_test_data_folder_that_is_not_there_is_said_with_its_flag(sets, tmp_path) -> None:
    """``--test-data /nonexistent`` said only "/nonexistent: no such folder" (probe)."""
    options = sets[0]
    missing = tmp_path / "nonexist"
    with pytest.raises(DataError) as refused:
        prepare_settings(options, EvaluationOptions(test_data=missing))
    assert str(refused.value) == (
        f"--test-data {missing}: no such folder; a database is given by its folder"
    )
