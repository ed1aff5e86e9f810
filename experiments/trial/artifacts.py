"""What a trial run holds besides its parameters and metrics: the files a reader (or serving)
opens later.

``scores.csv`` (one row per dev and test clip and setting: enough to recompute every figure),
``model_summary.txt``, the ROC/DET and confusion plots, and, when the trial keeps its weights, the
head's weights alone (``head.weights.h5``, no optimizer state) and a fine-tuned trial's backbone
layers (``backbone_top.h5``); with several settings, ``settings.csv`` (each setting's figures).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import keras
import mlflow
import pandas as pd

import heads
from core.backbone.network import FINE_TUNE_LAYERS, save_top_weights
from experiments.metrics import ScoreSet
from experiments.stores.tracking import CHECKSUM_TAGS, HEAD_WEIGHTS, SETTINGS_CSV, TOP_WEIGHTS
from experiments.trial import plots


def log_trial_artifacts(
    scores: pd.DataFrame,
    dev: ScoreSet,
    test: ScoreSet,
    threshold: float,
    model: keras.Model,
    keep_weights: bool = True,
    top: keras.Model | None = None,
) -> None:
    """scores.csv, the model summary (a fine-tuned trial's ``top``, the backbone layers trained
    with the head, then the head: it showed the head alone, 0.5 M of 120 M trained parameters:
    probe HH), ROC/DET and confusion plots (of ``dev`` and ``test`` at ``threshold``), and
    (``keep_weights``) the head's weights alone, without optimizer state."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        scores.to_csv(folder / "scores.csv", index=False)
        lines: list[str] = []
        for part in [p for p in (top, model) if p is not None]:
            part.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
        if top is not None:  # two summaries, each its own totals: what the trial trained
            trained = top.count_params() + model.count_params()
            lines.append(f"Trained with the head (params_trainable): {trained:,}")
        (folder / "model_summary.txt").write_text("\n".join(lines) + "\n")
        names = ["scores.csv", "model_summary.txt"]
        if keep_weights:
            heads.save_head_weights(model, folder / HEAD_WEIGHTS)
            names.append(HEAD_WEIGHTS)
        for name in names:
            _log_checked(folder / name)
    mlflow.log_figure(plots.roc_det_figure(dev, test, threshold), "roc_det.png")
    mlflow.log_figure(plots.confusion_figure(test, threshold), "confusion.png")


def log_top_weights(top: keras.Model, fine_tune: str) -> None:
    """The fine-tuned backbone layers' weights alone, as ``backbone_top.h5``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / TOP_WEIGHTS
        save_top_weights(top, FINE_TUNE_LAYERS[fine_tune], path)
        _log_checked(path)


def _log_checked(path: Path) -> None:
    """Log ``path`` as an artifact; a weights file's SHA-256 is tagged on the run first, which
    is what its readers check it against (:data:`CHECKSUM_TAGS`)."""
    if path.name in CHECKSUM_TAGS:
        mlflow.set_tag(CHECKSUM_TAGS[path.name], hashlib.sha256(path.read_bytes()).hexdigest())
    mlflow.log_artifact(str(path))


def log_settings(table: pd.DataFrame) -> None:
    """Each setting's figures, as ``settings.csv``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / SETTINGS_CSV
        table.to_csv(path, index=False)
        mlflow.log_artifact(str(path))
