"""The search space: every choice of a trial, asked where it is used (define-by-run).

A trial picks a head family, its size and choices (each family's ``heads.registry.SearchSpace``,
declared beside its builder), the output, the regularisation, whether fc7 is standardised and the
optimiser. The write-up's heads (presets with the write-up's counts) are enqueued first with the
write-up's settings so each has a baseline. A newly registered family is searched with no edit
here. How a trial computes (``training_precision``, ``jit_compile``) is the machine's business,
not a searched choice: :func:`suggest` takes it from the caller.

``fine_tune`` (``--fine-tune none|fc|conv5``) says which backbone layers a trial trains with its
head: the caller gives one choice (every trial takes it, Optuna is not asked) or several, which
Optuna searches as the categorical ``fine_tune``; the baselines then take the first one listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna

import heads
from experiments.config import TrialConfig

OPTIMIZERS = ("adam", "sgd", "rmsprop")
BATCH_SIZES = (8, 16, 32, 64)
MAX_EPOCHS = (10, 40)
# The write-up's settings for its heads: softmax, Dropout(0.2) after the head's hidden layer,
# Adam; the learning rate and batch size are Keras' defaults, the epochs our early stopping.
# Standardised fc7 is what a head on cached features needs to train soundly (heads.fitting): the
# write-up trained end to end, where fc7 is whatever the backbone makes it, and the
# standardisation is folded into the head's first layer afterwards, so a baseline is still
# exactly the write-up's head.
BASELINE = {
    "output": "softmax",
    "dropout": 0.2,
    "feature_dropout": 0.5,  # the backbone's own fc7 dropout (SPEC §2)
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "batch_size": 32,
    "epochs": 30,
    "standardize": True,
}


families = heads.matching_families  # the families a --heads pattern searches


def _optuna_name(family: str, param: str) -> str:
    """``conv_width``, ``dense_activation``: TPE never mixes two families' distributions.

    Studies started when these ranges lived here used the same names, so they resume.
    """
    return f"{family}_{param}"


def _searches_dropout(spec: heads.HeadSpec) -> bool:
    """The shared ``dropout`` choice, for every family that takes it and does not search it."""
    return "dropout" in spec.defaults and "dropout" not in spec.search.params


def _baseline(spec: heads.HeadSpec) -> dict[str, Any]:
    """Optuna parameters that make a trial train head ``spec`` with the write-up's settings."""
    params = {"head": spec.family}
    params.update({_optuna_name(spec.family, p): spec.defaults[p] for p in spec.search.params})
    params.update(BASELINE)
    if not _searches_dropout(spec):
        del params["dropout"]
    return params


def _writeup_specs(pattern: str = "*") -> list[heads.HeadSpec]:
    """Heads matching ``pattern`` that carry the write-up's counts: the baselines, natural order."""
    specs = [heads.get_spec(name) for name in heads.list_heads(pattern)]
    return [spec for spec in specs if spec.paper_head_params is not None]


def baselines(pattern: str = "*", fine_tune: Sequence[str] = ("none",)) -> list[dict[str, Any]]:
    """Optuna parameters of the write-up heads that ``pattern`` selects, for enqueue_trial.

    When ``fine_tune`` is searched (several choices) a baseline takes the first one.
    """
    choices = tuple(fine_tune)  # checked once, by experiments.config.fine_tune_choices
    extra = {"fine_tune": choices[0]} if len(choices) > 1 else {}
    return [{**_baseline(spec), **extra} for spec in _writeup_specs(pattern)]


def writeup_subset(pattern: str) -> list[str] | None:
    """The write-up heads ``pattern`` selects where they are not its families' own: a part
    (``conv4096`` of the conv family's conv2048 and conv4096) or none (``conv``, ``lstm``); None
    where they are. A study's name covers them then, since they run first (conv2048 had joined
    a conv4096 study and shown its row; lstm30 a finished lstm study, and run no write-up)."""
    chosen = set(families(pattern))
    own = [spec.name for spec in _writeup_specs() if spec.family in chosen]
    asked = [spec.name for spec in _writeup_specs(pattern)]
    return None if asked == own else asked


def baseline_name(params: dict[str, Any]) -> str | None:
    """The write-up head whose enqueued settings ``params`` (a trial's) are, if any."""
    for spec in _writeup_specs():
        if all(params.get(k) == v for k, v in _baseline(spec).items()):
            return spec.name
    return None


def suggest(
    trial: optuna.Trial,
    allowed: list[str],
    training_precision: str = "float32",
    jit_compile: bool | str = "auto",
    fine_tune: Sequence[str] = ("none",),
) -> TrialConfig:
    """Ask the trial for every choice, conditionally on the family (define-by-run).

    ``training_precision`` and ``jit_compile`` are not asked: they say how the trial computes.
    ``fine_tune`` is asked (categorical ``fine_tune``) only when it offers several choices.
    """
    tunes = list(fine_tune)
    family = trial.suggest_categorical("head", allowed)
    spec = heads.get_spec(family)
    space = spec.search
    name = _optuna_name(family, space.size)
    size = trial.suggest_int(name, space.low, space.high, log=space.log)
    hparams: dict[str, Any] = {space.size: size}
    if _searches_dropout(spec):
        hparams["dropout"] = trial.suggest_float("dropout", 0.0, 0.5, step=0.1)  # 0: no dropout
    for param, choices in space.choices.items():
        hparams[param] = trial.suggest_categorical(_optuna_name(family, param), choices)
    return TrialConfig(
        head=f"{family}{size}",
        family=family,
        output=trial.suggest_categorical("output", list(heads.OUTPUTS)),
        hparams=hparams,
        feature_dropout=trial.suggest_float("feature_dropout", 0.0, 0.5, step=0.1),
        optimizer=trial.suggest_categorical("optimizer", list(OPTIMIZERS)),
        learning_rate=trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
        batch_size=trial.suggest_categorical("batch_size", list(BATCH_SIZES)),
        epochs=trial.suggest_int("epochs", *MAX_EPOCHS),
        standardize=trial.suggest_categorical("standardize", [True, False]),
        training_precision=training_precision,
        jit_compile=jit_compile,
        fine_tune=tunes[0] if len(tunes) == 1 else trial.suggest_categorical("fine_tune", tunes),
    )
