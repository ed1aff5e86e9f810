"""Train one head on cached fc7 features (or fine-tune it with the backbone's top) and score
every dev and test clip.

Frame heads train on single frames and score a clip by the mean of its frame scores; sequence
heads read a clip's frames in order. The epoch kept is the one with the lowest dev ACER (at the
dev EER threshold), ties broken by the lowest dev loss; training stops early when that has not
improved for ``PATIENCE`` epochs.

The head trains as :func:`heads.training_model` makes it: optionally standardised features in
(statistics of the train split), the prediction layer's logits out, the cross-entropy on the
logits. That is what makes training the same on TensorFlow and JAX (see :mod:`heads.outputs`).
On cached features it trains with :class:`heads.Engine`, an epoch per compiled call (what
``model.fit`` computes, without its per-step Python; bench/engine.py); fine-tuning reads its
inputs from disk and trains with ``model.fit``.
Afterwards the statistics are folded into the head's first layer, so the returned head reads raw
fc7 and is a write-up head with the write-up's parameter counts; its optimizer state stays with
the training model, and :func:`heads.save_head_weights` writes the head's weights alone.

Fine-tuning (``config.fine_tune`` "fc" or "conv5", the write-up's "all trainable" models with the
bottom frozen): the inputs are the frozen bottom's outputs (pool5 or pool4,
:mod:`core.features.bottom`) and the head trains on :func:`core.backbone.network.vggface_top`
(fc6, fc7, and conv5_1..conv5_3 for "conv5"), started from the backbone's weights, all with the
trial's optimizer, learning rate and batch (:mod:`experiments.trial.finetune`): end to end on the
clips' frames, without recomputing the layers that do not change. ``feature_dropout`` is the rate of
fc7's dropout and of fc6's (VGG-Face's 0.5 for both in the baselines; a backbone that was not
trained with a dropout after fc6, such as the random one, needs it searched). With
``standardize``, fc7 is standardised with the train statistics of the cached fc7 (the starting
backbone's) and each fine-tuned layer's input with its own, all folded back afterwards. The same
epoch selection, early stop and scoring apply; the result carries the fine-tuned top.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

import heads
from core.backbone.network import (
    FINE_TUNE_LAYERS,
    dtype_policy,
    load_top_weights,
    vggface_top,
)
from core.quiet import set_random_seed
from experiments.config import TrialConfig
from experiments.metrics import ScoreSet, acer, eer_threshold
from experiments.trial.errors import TrainingDiverged
from experiments.trial.finetune import (
    Batches,
    fold_standardized,
    layer_statistics,
    standardized_top,
    start_standardized,
    tuned_model,
)
from experiments.trial.splits import SplitData

PATIENCE = 5
EPSILON = 1e-7  # Keras' clipping of probabilities in its cross-entropies
# Keras' mixed policies: variables in float32, computation in the half type; every head's
# prediction layer computes in float32 (heads.outputs), so outputs and the loss are float32.


@dataclass
class TrainResult:
    model: keras.Model  # the head, reading raw fc7
    best_epoch: int  # 1-based
    dev: ScoreSet
    test: ScoreSet
    seconds: float
    top: keras.Model | None = None  # the fine-tuned backbone layers (vggface_top), if any

    @property
    def params_trainable(self) -> int:
        """Parameters the trial trained: the head's, plus the fine-tuned backbone layers'."""
        tuned = self.top.count_params() if self.top is not None else 0
        return self.model.count_params() + tuned


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    optimizers = {
        "adam": keras.optimizers.Adam,
        "sgd": lambda learning_rate: keras.optimizers.SGD(learning_rate, momentum=0.9),
        "rmsprop": keras.optimizers.RMSprop,
    }
    if name not in optimizers:
        raise ValueError(f"optimizer must be one of {sorted(optimizers)}, got {name!r}")
    return optimizers[name](learning_rate=learning_rate)


def resolved_jit_compile(config: TrialConfig) -> bool:
    """Whether the trial compiles its training step, ``jit_compile`` "auto" resolved so the run
    records what it ran: :class:`heads.Engine` (cached features) always compiles (XLA under
    TensorFlow, ``jax.jit`` under JAX); fine-tuning's ``model.fit`` follows Keras' rule for
    "auto" with this package's models: compiled under JAX or on a TensorFlow GPU, not on a
    TensorFlow CPU."""
    if config.jit_compile != "auto":
        return bool(config.jit_compile)
    if config.fine_tune == "none":
        return True
    from core.device import current_device

    return keras.backend.backend() == "jax" or current_device().platform != "cpu"


def cross_entropy(scores: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy of bona fide probabilities; equals the softmax head's loss."""
    p = np.clip(scores, EPSILON, 1 - EPSILON)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def train_head(
    config: TrialConfig,
    data: dict[str, SplitData],
    frames: int,
    seed: int = 0,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    top_weights: str | os.PathLike | None = None,
) -> TrainResult:
    """Train ``config``'s head on ``data["train"]``; keep the best dev epoch; score dev and test.

    ``on_epoch(epoch, values)`` is called after every epoch (1-based) with the curves' values; it
    may raise (e.g. ``optuna.TrialPruned``) to stop the trial. A fine-tuned ``config`` reads the
    frozen bottom's outputs (:func:`split_data` with ``bottom``) and starts the backbone's top
    from ``top_weights`` (``BottomInputs.top_weights``).
    """
    start = time.perf_counter()
    tuned = config.fine_tune != "none"
    train, dev = data["train"], data["dev"]
    if tuned and (top_weights is None or train.fc7 is None):
        raise ValueError(
            f"fine_tune={config.fine_tune!r} trains on the frozen bottom's outputs: pass "
            f"split_data(..., bottom=...) inputs and top_weights"
        )
    set_random_seed(seed)
    fc7 = train.fc7 if train.fc7 is not None else train.x
    statistics = heads.feature_statistics(fc7) if config.standardize else None
    top = tuned_statistics = None
    with dtype_policy(config.training_precision):
        head = heads.build_head_model(
            config.family,
            config.output,
            feature_dropout=config.feature_dropout,
            frames=frames,
            **config.hparams,
        )
        if statistics is not None:
            heads.check_foldable(head)  # before training, not after
        model = heads.training_model(head, statistics)
        if tuned:
            top = vggface_top(config.fine_tune, dropout=config.feature_dropout)
            load_top_weights(top, top_weights, FINE_TUNE_LAYERS[config.fine_tune])
            trained = top
            if config.standardize:
                tuned_statistics = layer_statistics(top, train.x)
                start_standardized(top, tuned_statistics)
                trained = standardized_top(top, tuned_statistics)
            model = tuned_model(trained, model, config.kind, frames)
    optimizer = make_optimizer(config.optimizer, config.learning_rate)
    loss = heads.logits_loss(config.output)
    # Attacks usually outnumber bona fide clips (OULU-NPU 4:1): weigh the classes equally.
    counts = np.bincount(train.y, minlength=2)
    class_weight = {c: len(train.y) / (2 * counts[c]) for c in (0, 1)}
    kept = [head] if top is None else [head, top]
    tracker = _BestEpoch(kept, config.output, dev, on_epoch)
    if top is None:  # cached features in memory: an epoch per compiled call (heads.Engine)
        engine = heads.Engine(
            model,
            optimizer,
            loss,
            config.batch_size,
            class_weight=class_weight,
            seed=seed,
            jit_compile=config.jit_compile,
        )
        engine.fit(train.x, train.y, config.epochs, callbacks=[tracker])
    else:  # the bottom's outputs, read from disk batch by batch
        model.compile(optimizer=optimizer, loss=loss, jit_compile=config.jit_compile)
        model.fit(
            Batches(train.x, train.y, config.batch_size, seed),
            epochs=config.epochs,
            class_weight=class_weight,
            shuffle=False,  # Batches shuffles the inputs themselves
            verbose=0,
            callbacks=[tracker],
        )
    if statistics is not None:  # into the kept arrays, before they are set
        heads.fold_standardization(head, statistics, tracker.best_weights[0])
    for part, weights in zip(kept, tracker.best_weights, strict=True):
        part.set_weights(weights)
    if tuned_statistics is not None:
        fold_standardized(top, tuned_statistics)
    scorer = heads.training_model(head)  # the folded head's logits, on raw fc7
    if top is not None:  # ... on the fine-tuned top, on the raw bottom outputs
        scorer = tuned_model(top, scorer, config.kind, frames)
    return TrainResult(
        model=head,
        best_epoch=tracker.best_epoch,
        dev=dev.scores(heads.predict_scores(scorer, dev.x, config.output)),
        test=data["test"].scores(heads.predict_scores(scorer, data["test"].x, config.output)),
        seconds=time.perf_counter() - start,
        top=top,
    )


class _BestEpoch(keras.callbacks.Callback):
    """Dev curves after each epoch, the best epoch's weights, early stop, NaN check.

    ``self.model`` is the training model (standardised features in, logits out); the weights kept
    are those of ``kept`` (the head, and a fine-tuned top), which are the same variables.
    """

    def __init__(self, kept: list[keras.Model], output: str, dev: SplitData, on_epoch) -> None:
        super().__init__()
        self.kept, self.output, self.dev, self.on_epoch = kept, output, dev, on_epoch
        self.best_key: tuple[float, float] | None = None
        self.best_weights: list[list[np.ndarray]] = []
        self.best_epoch = 0

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        loss = float((logs or {}).get("loss", np.nan))
        if not np.isfinite(loss):
            raise TrainingDiverged(f"training loss became {loss} at epoch {epoch + 1}")
        frame_scores = heads.predict_scores(self.model, self.dev.x, self.output)
        if not np.all(np.isfinite(frame_scores)):
            raise TrainingDiverged(f"dev scores became NaN at epoch {epoch + 1}")
        scores = self.dev.scores(frame_scores)
        eer, threshold = eer_threshold(scores.scores, scores.labels)
        values = {
            "train_loss": loss,
            "dev_loss": cross_entropy(frame_scores, self.dev.y),
            "dev_eer": eer,
            "dev_acer": acer(scores.scores, scores.labels, scores.attack_types, threshold),
        }
        key = (values["dev_acer"], values["dev_loss"])
        if self.best_key is None or key < self.best_key:
            self.best_key, self.best_epoch = key, epoch + 1
            self._keep_weights()
        elif epoch + 1 - self.best_epoch >= PATIENCE:
            self.model.stop_training = True
        if self.on_epoch is not None:
            self.on_epoch(epoch + 1, values)

    def _keep_weights(self) -> None:
        """Copy the parts' weights into the arrays kept: made by the first best epoch, then
        overwritten in place. A fresh copy at every better epoch cost up to 0.3 s for
        convlstm2049's 200 MB in a sweep, almost all of it faulting in new pages."""
        if not self.best_weights:
            self.best_weights = [part.get_weights() for part in self.kept]
            return
        for part, arrays in zip(self.kept, self.best_weights, strict=True):
            for variable, array in zip(part.weights, arrays, strict=True):
                np.copyto(array, _current(variable))


def _current(variable: keras.Variable) -> np.ndarray:
    """``variable``'s value as a NumPy array, a view of its buffer where the backend allows
    (TensorFlow's and JAX's on the CPU), to be copied at once."""
    value = variable.value
    read = getattr(value, "read_value", None)  # a TensorFlow variable: its tensor, not a copy
    return np.asarray(read() if read is not None else value)
