"""The search space: every choice of a trial, asked where it is used (define-by-run).

A trial picks a head family, its width, the output, the regularisation and the optimiser. The
write-up's five heads are enqueued first with the write-up's settings so each has a baseline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import optuna

import heads

# Search ranges per family: (hyper-parameter of the family builder, Optuna name, low, high).
# Optuna names carry the family so TPE never mixes two families' distributions.
WIDTHS = {
    "conv": ("width", "conv_width", 64, 4096),
    "dense": ("width", "dense_width", 64, 4096),
    "convlstm": ("filters", "convlstm_filters", 16, 2049),
    "lstm": ("units", "lstm_units", 8, 512),
}
OPTIMIZERS = ("adam", "sgd", "rmsprop")
BATCH_SIZES = (8, 16, 32, 64)
MAX_EPOCHS = (10, 40)
# The write-up's settings for its heads: softmax, Dropout(0.2) after the head's hidden layer,
# Adam; the learning rate and epochs are Keras' defaults / our early stopping.
BASELINE = {
    "output": "softmax",
    "dropout": 0.2,
    "feature_dropout": 0.5,  # the backbone's own fc7 dropout (SPEC §2)
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "batch_size": 16,
    "epochs": 30,
}


@dataclass(frozen=True)
class TrialConfig:
    """Everything a trial trains with. ``hparams`` go to the head builder."""

    head: str  # display name, e.g. "conv1024"; equals a write-up name for its settings
    family: str
    output: str
    hparams: dict[str, Any] = field(default_factory=dict)
    feature_dropout: float = 0.5
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 16
    epochs: int = 30

    @property
    def kind(self) -> str:
        return heads.get_spec(self.family).kind

    def params(self) -> dict[str, Any]:
        """Flat parameters to log: head, output and every hyper-parameter."""
        flat = asdict(self)
        flat.update(flat.pop("hparams"))
        return flat


def families(pattern: str = "*") -> list[str]:
    """Families whose family name or write-up head name matches ``pattern``."""
    matched = heads.list_heads(pattern)
    if not matched:
        raise ValueError(
            f"--heads {pattern!r} matches no head; available: {', '.join(heads.list_heads())}"
        )
    found = {heads.get_spec(name).family for name in matched}
    return [family for family in WIDTHS if family in found]


def baselines(pattern: str = "*") -> list[dict[str, Any]]:
    """Optuna parameters of the write-up heads that ``pattern`` selects, for enqueue_trial."""
    rows = []
    for name in heads.list_heads(pattern):
        spec = heads.get_spec(name)
        if spec.paper_head_params is None:
            continue
        size_name, optuna_name, _, _ = WIDTHS[spec.family]
        params = {"head": spec.family, optuna_name: spec.defaults[size_name], **BASELINE}
        if spec.family == "dense":
            params["dense_activation"] = spec.defaults["activation"]
        rows.append(params)
    return rows


def baseline_name(params: dict[str, Any]) -> str | None:
    """The write-up head whose enqueued settings ``params`` (a trial's) are, if any."""
    for name in heads.list_heads():
        spec = heads.get_spec(name)
        if spec.paper_head_params is None:
            continue
        expected = next(b for b in baselines(name))
        if all(params.get(k) == v for k, v in expected.items()):
            return name
    return None


def suggest(trial: optuna.Trial, allowed: list[str]) -> TrialConfig:
    """Ask the trial for every choice, conditionally on the family (define-by-run)."""
    family = trial.suggest_categorical("head", allowed)
    size_name, optuna_name, low, high = WIDTHS[family]
    hparams: dict[str, Any] = {size_name: trial.suggest_int(optuna_name, low, high, log=True)}
    hparams["dropout"] = trial.suggest_float("dropout", 0.0, 0.5, step=0.1)  # 0: no dropout
    if family == "dense":
        # The write-up's hidden softmax stays available; ReLU is the sensible default.
        hparams["activation"] = trial.suggest_categorical("dense_activation", ["relu", "softmax"])
    return TrialConfig(
        head=f"{family}{hparams[size_name]}",
        family=family,
        output=trial.suggest_categorical("output", list(heads.OUTPUTS)),
        hparams=hparams,
        feature_dropout=trial.suggest_float("feature_dropout", 0.0, 0.5, step=0.1),
        optimizer=trial.suggest_categorical("optimizer", list(OPTIMIZERS)),
        learning_rate=trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
        batch_size=trial.suggest_categorical("batch_size", list(BATCH_SIZES)),
        epochs=trial.suggest_int("epochs", *MAX_EPOCHS),
    )
