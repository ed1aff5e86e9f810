"""Fine-tuning the backbone's top with the head: ``fine_tune`` none | fc | conv5, searched.

Real computations throughout: the real (random, seeded) VGG-Face at its full 224x224 input on a
tiny set (8 clips of 2 frames, face crop on, as for a user's data), real Optuna (SQLite) and
MLflow (SQLite + local artifacts). fc6 and fc7 alone hold 119.5M parameters, so the module keeps
to a handful of training steps: its cost is the backbone's forward passes (feature extraction,
then pool5 for the fine-tuned trials), Adam over fc6 and fc7, and the JAX trial (run in a
subprocess beside the rest).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import keras
import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from optuna.distributions import CategoricalDistribution

import heads
from core.backbone.network import (
    FINE_TUNE_LAYERS,
    WholeMapConv2D,
    load_top_weights,
    vggface_top,
)
from core.backbone.spec import PARAMS_TO_FC7
from core.data.clips import DataError
from core.features import FeatureOptions
from core.features.bottom import BOTTOM_DIR, bottom_inputs, bottom_ready
from core.features.frame_store import FRAMES_DIR
from experiments.commands import predict
from experiments.config import EvaluationOptions, KeepWeights, fine_tune_choices
from experiments.stores import tracking
from experiments.stores.runs_table import trial_table
from experiments.stores.tracking import TOP_WEIGHTS as TOP_WEIGHTS_FILE
from experiments.trial import search
from experiments.trial.evaluation import prepare_fine_tuning, prepare_settings
from experiments.trial.finetune import (
    StoredRows,
    fold_standardized,
    layer_statistics,
    standardized_top,
    start_standardized,
)
from experiments.trial.objective import Objective

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 2
FC6, FC7 = 102_764_544, 16_781_312  # write-up's model.summary(): fc6 (Conv2D), fc7 (Conv2D)
CONV5 = 3 * 2_359_808  # conv5_1..conv5_3
# A small, fast trial: the only one the test needs is a trial that trains and is scored.
PARAMS = {
    "head": "dense",
    "dense_width": 16,
    "dense_activation": "relu",
    "dropout": 0.0,
    "output": "softmax",
    "feature_dropout": 0.0,
    "optimizer": "adam",
    "learning_rate": 1e-4,
    "batch_size": 16,
    "epochs": 2,
    "standardize": True,
}

# Under JAX: fc6 and fc7 fine-tuned with an LSTM head (the top applied to each frame) on
# pool5-like inputs, from random He-scaled starting weights; the same code as under TensorFlow.
JAX_TRIAL = r"""
import json, sys
from pathlib import Path

import keras
import numpy as np

from core.backbone.network import FINE_TUNE_LAYERS, save_top_weights, vggface_top
from core.data.clips import Clip
from experiments.trial.finetune import (
    StoredRows,
    fold_standardized,
    layer_statistics,
    standardized_top,
    start_standardized,
)
from experiments.config import TrialConfig
from experiments.trial.splits import SplitData
from experiments.trial.training import train_head

folder = Path(sys.argv[1])  # the fixture's, deleted after (a mkdtemp here left 457 MB a run)
rng = np.random.default_rng(0)
start = vggface_top("fc")
weights = []
for kernel, bias in zip(start.weights[::2], start.weights[1::2]):
    fan_in = int(np.prod(kernel.shape[:-1]))
    scale = np.float32(np.sqrt(2 / fan_in))
    weights += [rng.standard_normal(kernel.shape, np.float32) * scale,
                np.zeros(bias.shape, np.float32)]
start.set_weights(weights)
save_top_weights(start, FINE_TUNE_LAYERS["fc"], folder / "top.h5")
entry = np.maximum(rng.normal(0.5, 1.0, (6, 2, 7, 7, 512)), 0).astype(np.float32) * 50
labels = np.array([1, 0] * 3, dtype=np.int32)
entry[labels == 1, :, :4] *= 1.5
fc7 = rng.normal(size=(6, 2, 1, 1, 4096)).astype(np.float32)  # only the head's statistics
clips = [Clip(Path(f"c{i}"), f"c{i}", f"s{i}", "bonafide" if y else "attack",
              "bonafide" if y else "print") for i, y in enumerate(labels)]
data = {
    split: SplitData(StoredRows(entry, rows, "sequence"), labels[rows], np.arange(2),
                     [clips[i] for i in rows], fc7[rows])
    for split, rows in (("train", [0, 1]), ("dev", [2, 3]), ("test", [4, 5]))
}
config = TrialConfig("lstm4", "lstm", "softmax", {"units": 4}, epochs=1, learning_rate=1e-4,
                     feature_dropout=0.0, fine_tune="fc")
result = train_head(config, data, 2, seed=0, top_weights=folder / "top.h5")
changed = {name: bool(np.any(result.top.get_layer(name).get_weights()[0]
                             != start.get_layer(name).get_weights()[0]))
           for name in FINE_TUNE_LAYERS["fc"]}
print(json.dumps({"backend": keras.backend.backend(), "changed": changed,
                  "scores": result.dev.scores.tolist() + result.test.scores.tolist(),
                  "params_trainable": result.params_trainable,
                  "params_head": result.model.count_params()}))
"""


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """The JAX trial, started first so that it runs beside the TensorFlow work."""
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    folder = tmp_path_factory.mktemp("jax-trial")
    process = subprocess.Popen(
        [sys.executable, "-c", JAX_TRIAL, str(folder)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate()
    shutil.rmtree(folder, ignore_errors=True)  # its starting top: 457 MB


def write_set(root: Path) -> None:
    """Given splits, one subject each in dev and test; bona fide frames move, prints are still."""
    rng = np.random.default_rng(0)
    clips = {"train": [(1, "real"), (2, "real"), (1, "attack/print"), (2, "attack/print")]}
    clips |= {"dev": [(3, "real"), (3, "attack/print")], "test": [(4, "real"), (4, "attack/print")]}
    for split, kinds in clips.items():
        for n, (subject, kind) in enumerate(kinds):
            folder = root / split / kind / f"client{subject:03d}_{n}"
            folder.mkdir(parents=True)
            base = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            for f in range(FRAMES + 1):
                frame = np.roll(base, 4 * f, axis=1) if kind == "real" else base
                cv2.imwrite(str(folder / f"{f:03d}.png"), frame)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, jax_run):
    root = tmp_path_factory.mktemp("finetune")
    write_set(root / "data")
    yield root
    shutil.rmtree(root, ignore_errors=True)  # 2.9 GB, VGG-Face's top in every kept trial


@pytest.fixture(scope="module")
def settings(workspace):
    options = FeatureOptions(
        data=workspace / "data", cache_dir=workspace / "cache", frames=FRAMES, progress=False
    )
    return prepare_settings(options, EvaluationOptions())


def stamps(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its modification time."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*.npy")}


SAID: list[str] = []  # what the study fixture's trials printed


@pytest.fixture(scope="module")
def study(workspace, settings):
    """Three trials of a study searching ``fine_tune`` over none, fc and conv5: fc, none, then
    conv5 (conv5_1 to fc7 trained with the head, end to end on the stored frames' pool4), each
    tagged as the sweep tags its trials, so predict.py can rebuild them."""
    cache = workspace / "cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workspace)
        mlflow.set_tracking_uri(f"sqlite:///{workspace}/mlflow.db")
        experiment_id = tracking.use_experiment("ft")
        study = optuna.create_study(
            study_name="ft",
            storage=f"sqlite:///{workspace}/optuna.db",
            sampler=optuna.samplers.RandomSampler(seed=0),
        )
        for fine_tune in ("fc", "none", "conv5"):
            study.enqueue_trial({**PARAMS, "fine_tune": fine_tune})
        features = settings[0].features
        context = {
            "weights": "default",
            "weights_fingerprint": features.weights_fingerprint,
            "extraction_precision": features.manifest["key_parts"]["precision"],
            "frames_per_clip": str(FRAMES),
            **features.crop.tags(),
        }
        objective = Objective(
            "ft",
            ["dense"],
            settings,
            context,
            fine_tune=("none", "fc", "conv5"),
            keep_weights=KeepWeights.ALL,
        )
        objective.header = "the trials' header"  # as the sweep sets it
        seen = []

        def after(study, trial):  # what the cache holds after each trial
            seen.append((stamps(cache / FRAMES_DIR), stamps(cache / BOTTOM_DIR)))

        with contextlib.redirect_stdout(io.StringIO()) as out:
            study.optimize(objective, n_trials=3, callbacks=[after])
        SAID.extend(out.getvalue().splitlines())
    runs = mlflow.search_runs(
        [experiment_id], filter_string="tags.`vggface_heads.role` = 'trial'"
    ).set_index("tags.optuna.trial_number")
    return study, runs, seen


# --- the layers --------------------------------------------------------------------------------


@pytest.mark.parametrize("side, kernel", [(7, 7), (1, 1), (3, 3)])
def test_whole_map_convolution_is_the_conv2d_it_replaces(side, kernel):
    x = np.random.default_rng(0).normal(size=(5, side, side, 8)).astype(np.float32)
    conv = keras.layers.Conv2D(6, kernel, activation="relu")
    whole = WholeMapConv2D(6, kernel, activation="relu")
    if side != kernel:
        with pytest.raises(ValueError, match="needs a"):
            whole(x)
        return
    expected = np.asarray(conv(x))
    whole.build(x.shape)
    whole.set_weights(conv.get_weights())
    assert [w.shape for w in whole.weights] == [w.shape for w in conv.weights]
    np.testing.assert_allclose(np.asarray(whole(x)), expected, rtol=1e-5, atol=1e-5)


def test_standardised_top_computes_the_same_function_and_folds_back():
    """A conv5-shaped top in miniature: each trained layer's input standardised, its weights
    adjusted to compute the same outputs, and folded back to the same weights afterwards."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 4), name="pool4")
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="conv5_1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool5")(x)
    x = WholeMapConv2D(7, 3, activation="relu", name="fc6")(x)
    x = keras.layers.Dropout(0.5, name="dropout6")(x)
    top = keras.Model(inputs, WholeMapConv2D(8, 1, activation="relu", name="fc7")(x))
    rng = np.random.default_rng(0)
    top.set_weights([w + rng.normal(0, 0.1, w.shape).astype(np.float32) for w in top.get_weights()])
    entry = (np.abs(rng.normal(0, 30, (5, FRAMES, 6, 6, 4))) + 10).astype(np.float32)
    x = StoredRows(entry, np.arange(5), "frame")
    raw, weights = np.asarray(top.predict(x[:], verbose=0)), top.get_weights()

    statistics = layer_statistics(top, x)
    assert list(statistics) == ["conv5_1", "fc6", "fc7"]
    assert not statistics["conv5_1"].mean.any()  # "same" padding: scale only
    assert statistics["fc6"].mean.all()
    start_standardized(top, statistics)
    standardized = standardized_top(top, statistics)
    np.testing.assert_allclose(standardized.predict(x[:], verbose=0), raw, rtol=1e-4, atol=1e-3)
    probe = keras.Model(standardized.inputs, standardized.get_layer("standardize_fc6").output)
    seen = np.asarray(probe.predict(x[:], verbose=0)).reshape(-1, 5)
    np.testing.assert_allclose(seen.mean(axis=0), 0, atol=1e-4)  # what fc6 trains on
    np.testing.assert_allclose(seen.std(axis=0), 1, rtol=1e-3)
    fold_standardized(top, statistics)
    for before, after in zip(weights, top.get_weights(), strict=True):  # biases: (b + s) - s
        np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)  # in float32


def test_top_weights_file_holds_vggface_layers_only(study, settings):
    """The backbone's conv5_1..fc7 as stored for fine-tuning: VGG-Face's layout, loaded by name."""
    path = bottom_inputs(settings[0].features, "fc").top_weights
    with h5py.File(path) as stored:  # (H, W, Cin, Cout) and (Cout,), nothing else
        assert sorted(stored) == sorted(FINE_TUNE_LAYERS["conv5"])
        assert stored["fc6/kernel"].shape == (7, 7, 512, 4096)
        assert stored["conv5_1/kernel"].shape == (3, 3, 512, 512)
        assert stored["fc7/bias"].shape == (4096,)
        fc7 = stored["fc7/kernel"][()]
    top = vggface_top("fc")
    assert top.count_params() == FC6 + FC7
    assert load_top_weights(top, path, FINE_TUNE_LAYERS["fc"]) == ("fc6", "fc7")
    np.testing.assert_array_equal(top.get_layer("fc7").get_weights()[0], fc7)
    with pytest.raises(ValueError, match="layer 'conv5_1' is not a layer"):
        load_top_weights(top, path)  # every stored layer: fc's top has no conv5_1


# --- the search --------------------------------------------------------------------------------


def test_fine_tune_is_searched_only_when_given_several_choices():
    assert fine_tune_choices("none, fc,fc") == ("none", "fc")
    with pytest.raises(ValueError, match="--fine-tune takes none|fc|conv5"):
        fine_tune_choices("fc7")
    trial = optuna.create_study().ask()
    assert search.suggest(trial, ["dense"], fine_tune=("conv5",)).fine_tune == "conv5"
    assert "fine_tune" not in trial.params  # one choice: not a searched parameter

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(10):
        trial = study.ask()
        config = search.suggest(trial, ["dense"], fine_tune=("none", "fc", "conv5"))
        assert trial.distributions["fine_tune"] == CategoricalDistribution(("none", "fc", "conv5"))
        assert config.fine_tune == trial.params["fine_tune"] == config.params()["fine_tune"]
        seen.add(config.fine_tune)
        study.tell(trial, 0.0)
    assert seen == {"none", "fc", "conv5"}
    # baselines take the first choice when it is searched, and stay as they were otherwise
    assert {p["fine_tune"] for p in search.baselines(fine_tune=("fc", "none"))} == {"fc"}
    assert search.baselines() == search.baselines(fine_tune=("conv5",))
    assert all("fine_tune" not in params for params in search.baselines())


# --- a fine-tuned trial, end to end ------------------------------------------------------------


def test_fine_tuned_trial_logs_what_it_trained(study, workspace):
    study, runs, _ = study
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert [t.params["fine_tune"] for t in trials] == ["fc", "none", "conv5"]
    choices = CategoricalDistribution(("none", "fc", "conv5"))
    assert all(t.distributions["fine_tune"] == choices for t in trials)
    tuned, frozen = runs.loc["0"], runs.loc["1"]
    head = tuned["metrics.params_head"]
    assert head == 4096 * 16 + 16 + 16 * 2 + 2  # dense16
    assert tuned["params.fine_tune"] == "fc" and frozen["params.fine_tune"] == "none"
    # named as the console names them: a fine-tuned run read as a frozen one in MLflow (probe)
    assert (tuned["tags.mlflow.runName"], frozen["tags.mlflow.runName"]) == (
        "0-dense16+fc",
        "1-dense16",
    )
    assert tuned["metrics.params_trainable"] == head + FC6 + FC7
    assert tuned["metrics.params_total"] == PARAMS_TO_FC7 + head  # the whole model, as before
    assert frozen["metrics.params_trainable"] == frozen["metrics.params_head"] == head
    for run in (tuned, frozen):
        assert np.isfinite(run["metrics.dev_acer"]) and np.isfinite(run["metrics.test_auc"])
    # "auto" is recorded as what ran: the engine compiles, fine-tuning's fit follows Keras' rule
    probe = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    probe.compile(loss="mse", jit_compile="auto")
    assert frozen["params.jit_compile"] == "True"
    assert tuned["params.jit_compile"] == str(probe.jit_compile)

    client = MlflowClient()
    names = {a.path for a in client.list_artifacts(tuned["run_id"])}
    assert {"head.weights.h5", TOP_WEIGHTS_FILE} <= names  # the family's first trial keeps both
    path = client.download_artifacts(tuned["run_id"], TOP_WEIGHTS_FILE, str(workspace))
    with h5py.File(path) as stored:  # weights only: fc6 and fc7, nothing else
        assert sorted(stored) == ["fc6", "fc7"]
        sizes = [stored[f"{layer}/{part}"].size for layer in stored for part in stored[layer]]
        assert sum(sizes) == FC6 + FC7
    frozen_names = {a.path for a in client.list_artifacts(frozen["run_id"])}
    assert TOP_WEIGHTS_FILE not in frozen_names
    # the summary shows what was trained: the head alone had been, 0.5 M of 120 M (probe HH)
    summary = Path(client.download_artifacts(tuned["run_id"], "model_summary.txt", str(workspace)))
    said = summary.read_text()
    assert re.search(r"\bfc6\b", said) and re.search(r"\bfc7\b", said), said
    assert f"Trainable params: {FC6 + FC7:,} " in said  # the top's own, then the head's
    assert said.rstrip().endswith(
        f"Trained with the head (params_trainable): {int(head + FC6 + FC7):,}"
    )
    plain = client.download_artifacts(frozen["run_id"], "model_summary.txt", str(workspace))
    assert not re.search(r"\bfc6\b", Path(plain).read_text())
    # which trials were fine-tuned, where a person reads them (nothing said so: probe)
    table = trial_table(tracking.study_runs(tracking.use_experiment("ft"), "ft"))
    shown = dict(zip(table["trial"], table["head"], strict=True))
    assert shown == {0: "dense16+fc", 1: "dense16", 2: "dense16+conv5"}
    # each choice's best beside the family's: fine-tuning against the frozen backbone was in
    # MLflow alone (probe HH); the family's best alone is registered and marked
    from experiments.results.tables import comparison
    from experiments.stores.runs_table import family_bests

    compared = comparison(table)
    named = {"dense16": "best dense frozen", "dense16+fc": "best dense+fc"}
    named["dense16+conv5"] = "best dense+conv5"
    first = table["head"].iloc[0]  # the family's best
    expected = {"best dense", *(group for head, group in named.items() if head != first)}
    assert {g for g in compared["group"] if g.startswith("best ")} == expected
    assert list(family_bests(compared)["head"]) == [first]
    # and what each trained, in the comparison's files too: it was left out (probe AA)
    trained = dict(zip(table["trial"], table["params_trainable"], strict=True))
    assert trained == {0: head + FC6 + FC7, 1: head, 2: head + CONV5 + FC6 + FC7}
    from experiments.results.parent_run import _counts_as_integers

    written = _counts_as_integers(table).to_csv(index=False)  # as comparison.csv has it
    count = int(head + FC6 + FC7)
    assert f",{count}," in written and f",{count}.0," not in written
    from experiments.config import TrialConfig
    from experiments.results.console import TRIAL_HEADER, trial_line

    with contextlib.redirect_stdout(io.StringIO()) as said:  # the sweep's line per trial
        for number, (head, fine_tune) in enumerate((("dense16", "fc"), ("convlstm2049", "conv5"))):
            config = TrialConfig(head=head, family="dense", output="softmax", fine_tune=fine_tune)
            trial_line(number, config, "pruned", 1.0)
    lines = said.getvalue().splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["#0", "dense16+fc", "softmax"],
        ["#1", "convlstm2049+conv5", "softmax"],  # the output column kept apart (review)
    ]
    assert {line.index("softmax") for line in lines} == {TRIAL_HEADER.index("output")}
    assert max(map(len, lines)) <= 100 and len(TRIAL_HEADER) <= 100
    assert study.trials[0].user_attrs["head"] == "dense16+fc"  # the progress line, the front


def test_fine_tuning_changed_fc6_and_fc7_and_the_trial_is_reproducible(study, settings, workspace):
    """The logged weights are the backbone's, trained: load them into VGG-Face's top, put the
    logged head on it, and the trial's dev scores come back from the stored inputs."""
    study, runs, _ = study
    tuned = runs.loc["0"]
    client = MlflowClient()
    folder = workspace / "download"
    folder.mkdir(exist_ok=True)
    top_path = client.download_artifacts(tuned["run_id"], TOP_WEIGHTS_FILE, str(folder))
    head_path = client.download_artifacts(tuned["run_id"], "head.weights.h5", str(folder))
    inputs = settings[0].inputs("frame", "fc")
    trained = vggface_top("fc")
    load_top_weights(trained, top_path)
    with h5py.File(inputs.top_weights) as start:  # the first 64 filters of each
        for name in ("fc6", "fc7"):
            after = np.asarray(trained.get_layer(name).kernel)[..., :64]
            assert np.any(start[f"{name}/kernel"][..., :64] != after), name

    head = heads.build_head_model("dense", "softmax", feature_dropout=0.0, width=16, dropout=0.0)
    head.load_weights(head_path)
    dev = inputs.data["dev"]
    fc7 = np.asarray(trained.predict(dev.x[:], verbose=0))
    frame_scores = heads.bonafide_score(np.asarray(head.predict(fc7, verbose=0)), "softmax")
    logged = pd.read_csv(client.download_artifacts(tuned["run_id"], "scores.csv", str(folder)))
    logged = logged[logged["split"] == "dev"].set_index("clip")["score"]
    expected = [logged[clip.clip_id] for clip in dev.clips]
    np.testing.assert_allclose(dev.scores(frame_scores).scores, expected, rtol=1e-4, atol=1e-6)


def test_conv5_fine_tuning_trains_conv5_to_fc7_end_to_end(study, settings, workspace):
    """The conv5 trial trained conv5_1..conv5_3, fc6 and fc7 with its head, from pool4 of the
    stored frames, and logged exactly those layers."""
    study, runs, seen = study
    tuned = runs.loc["2"]
    assert tuned["params.fine_tune"] == "conv5"
    head = tuned["metrics.params_head"]
    assert tuned["metrics.params_trainable"] == head + CONV5 + FC6 + FC7
    assert np.isfinite(tuned["metrics.dev_acer"]) and np.isfinite(tuned["metrics.test_auc"])
    assert len(seen[2][1]) == 2  # a pool4 entry beside fc's pool5 one, computed once
    folder = workspace / "download-conv5"
    folder.mkdir(exist_ok=True)
    path = MlflowClient().download_artifacts(tuned["run_id"], TOP_WEIGHTS_FILE, str(folder))
    start = settings[0].inputs("frame", "conv5").top_weights
    with h5py.File(path) as trained, h5py.File(start) as before:
        assert sorted(trained) == ["conv5_1", "conv5_2", "conv5_3", "fc6", "fc7"]
        for name in trained:
            assert np.any(trained[f"{name}/kernel"][()] != before[f"{name}/kernel"][()]), name


@pytest.mark.parametrize("trial", ["0", "2"], ids=["fc", "conv5"])
def test_predict_scores_a_fine_tuned_trials_clips_as_its_scores_csv(
    study, workspace, trial, capsys
):
    """predict.py rebuilds the trial's backbone with its own trained layers and scores the
    study's dev clips as the trial scored them (float32 rounding of the head's batches)."""
    _, runs, _ = study
    run = runs.loc[trial]
    clips = sorted((workspace / "data" / "dev").glob("*/client*")) + sorted(
        (workspace / "data" / "dev").glob("attack/*/client*")
    )
    code = predict.main(
        [
            "--run",
            run["run_id"],
            "--score-faceless",
            "--tracking-uri",
            f"sqlite:///{workspace}/mlflow.db",
            *map(str, clips),
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    scored = {}
    for line in out[1:]:
        path, score = line.split("\t")[:2]
        scored[Path(path).relative_to(workspace / "data").as_posix()] = float(score)
    folder = workspace / f"scores-{trial}"
    folder.mkdir(exist_ok=True)
    logged = pd.read_csv(
        MlflowClient().download_artifacts(run["run_id"], "scores.csv", str(folder))
    )
    logged = logged[logged["split"] == "dev"].set_index("clip")["score"]
    assert set(scored) == set(logged.index)
    for clip, score in scored.items():
        assert score == pytest.approx(logged[clip], rel=1e-4, abs=1e-6), clip


def test_frames_are_stored_once_as_uint8_and_later_trials_reuse_everything(study, settings):
    _, _, seen = study
    (frames_after_first, bottom_after_first), (frames_after_last, bottom_after_last) = seen[:2]
    features = settings[0].features
    assert len(frames_after_first) == len(features.clips)  # one file per clip
    assert len(bottom_after_first) == 1  # one pool5 entry for the protocol's clips
    assert frames_after_last == frames_after_first  # the trial on cached fc7 touched nothing
    assert bottom_after_last == bottom_after_first
    cache = features.path.parent.parent
    for name in frames_after_first:
        frames = np.load(cache / FRAMES_DIR / name, mmap_mode="r", allow_pickle=False)
        assert frames.dtype == np.uint8 and frames.shape == (FRAMES, 224, 224, 3)

    inputs = settings[0].inputs("frame", "fc")  # what the next fine-tuned trial reads
    assert stamps(cache / FRAMES_DIR) == frames_after_first  # nothing decoded again
    assert seen[2][0] == frames_after_first  # conv5's pool4 came from the stored frames too
    assert stamps(cache / BOTTOM_DIR) == seen[2][1]  # nor computed again
    assert inputs.data["train"].x.shape == (4 * FRAMES, 7, 7, 512)  # the 4 train clips' frames
    again = bottom_inputs(features, "fc")
    assert (again.computed, again.decoded) == (False, 0)
    assert again.entry.shape == (len(features.clips), FRAMES, 7, 7, 512)


def test_conv5_bottom_reads_the_stored_frames_and_gives_back_the_cached_fc7(study, settings):
    """pool4 for two clips: computed from the stored frames (nothing decoded), then the checked
    conv5..fc7 on it reproduces the cached fc7 (else bottom_inputs raises)."""
    features = settings[0].features
    two = dataclasses.replace(features, clips=features.clips[:2], rows=features.rows[:2])
    bottom = bottom_inputs(two, "conv5")
    assert (bottom.computed, bottom.decoded) == (True, 0)
    assert bottom.entry.shape == (2, FRAMES, 14, 14, 512)


def test_the_sweep_computes_a_fine_tuned_bottom_before_its_first_trial_and_says_so(
    study, settings, monkeypatch, capsys
):
    """Two clips whose pool5 is not stored: two lines (what, then its seconds) and the entry
    stored, so the trial that samples fc computes nothing; stored ones, and "none", say nothing.
    Computing, a line at most once a minute (here at once) says how far it is: minutes went by
    without one (probe)."""
    from core.features import pipeline

    monkeypatch.setattr(pipeline, "PLAIN_PROGRESS_SECONDS", 0.0)
    features = settings[0].features
    two = dataclasses.replace(features, clips=features.clips[:2], rows=features.rows[:2])
    setting = dataclasses.replace(settings[0], features=two, test_features=two)
    lines = []
    assert prepare_fine_tuning([setting, setting], "none", lines.append) == 0.0
    assert prepare_fine_tuning([setting, setting], "fc", lines.append) > 0
    assert len(lines) == 2, lines
    assert lines[0].startswith("--fine-tune fc: computing the frozen backbone's pool5 outputs of")
    assert " of 2 clips from their frames" in lines[0]
    assert re.fullmatch(r"--fine-tune fc: done in \d+s", lines[1])
    ticks = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in ticks if " outputs: " in line][-1] == (
        "pool5 outputs: 2 of 2 clips"
    )
    assert (bottom_inputs(two, "fc").computed, bottom_ready(two, "fc")) == (False, True)
    assert prepare_fine_tuning([setting], "fc", lines.append) < 1
    for choice in ("fc", "conv5"):  # the study's: stored
        prepare_fine_tuning(settings, choice, lines.append)
    assert len(lines) == 2, lines[2:]
    # the study's trials: fc's first trial said it, conv5's too, each once
    computing = [line.split(":")[0] for line in SAID if "computing the frozen" in line]
    assert computing == ["--fine-tune fc", "--fine-tune conv5"], SAID
    # the trials' header below the first bottom's lines, above the first trial's (probe HH)
    first = next(i for i, line in enumerate(SAID) if "computing the frozen" in line)
    assert SAID.count("the trials' header") == 1 and SAID.index("the trials' header") > first


def test_features_from_another_backbone_are_refused(study, settings):
    features = settings[0].features
    other = dataclasses.replace(
        features,
        entry=np.asarray(features.entry) * 1.5,  # fc7 that this backbone does not make
        fingerprint="not-these-weights",
        clips=features.clips[:1],
        rows=features.rows[:1],
    )
    root = features.path.parent.parent / BOTTOM_DIR
    before = sorted(p.name for p in root.iterdir() if p.is_dir())
    with pytest.raises(DataError, match="recomputed from the decoded frames"):
        bottom_inputs(other, "fc")
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == before  # none kept


# --- conv5 and JAX -----------------------------------------------------------------------------


def test_a_sequence_head_fine_tunes_fc6_and_fc7_under_jax(jax_run):
    """fc6 and fc7 train with the head, the top applied to each frame of a clip; under JAX, so
    the same keras.ops code runs on both backends."""
    out, err = jax_run.communicate(timeout=600)
    assert jax_run.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    assert result["params_trainable"] == result["params_head"] + FC6 + FC7
    assert result["changed"] == {"fc6": True, "fc7": True}
    scores = np.array(result["scores"])
    assert len(scores) == 4 and np.all((scores > 0) & (scores < 1))  # scored, not saturated
