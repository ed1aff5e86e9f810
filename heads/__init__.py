"""Classifier heads for VGG-Face presentation-attack detection: the write-up's and their families.

``heads`` knows nothing of data: it builds Keras models. Entry points::

    list_heads("conv*")                      # registered names, natural order
    get_spec("lstm30")                        # kind, defaults, search space, the write-up's counts
    list_families()                           # family names, registration order
    build_head_model("conv2048", output="sigmoid", dropout=0.0)   # on cached fc7 features
    build_full_model("convlstm2049")          # the write-up's end-to-end model
    assemble(trained_head)                    # a head trained on features, with VGG-Face in front
    training_model(head, feature_statistics(x))   # what it trains as: standardised in, logits out
    predict_scores(model, x, output)          # bona fide probabilities, batch by batch
    fold_standardization(head, statistics)    # afterwards: the head reads raw fc7 again
    Engine(model, optimizer, loss, batch_size).train_epoch(x, y)   # a compiled epoch, as fit

Class convention: 1 = bona fide, 0 = attack (``BONAFIDE``, from :mod:`core.constants`);
``FRAMES`` is ``core.constants.FRAMES_PER_CLIP``, the write-up's sequence length.

The registry (``list_heads``, ``get_spec``, ``list_families``) loads no Keras; the model functions
load it on first use. A saved ``.keras`` head names this package's layers: it loads with
``keras.models.load_model`` once Keras was imported before ``heads`` (the import order isort
gives), or once any model function here was used.
"""

import importlib
import sys
from typing import Any

from core.constants import BONAFIDE
from core.constants import FRAMES_PER_CLIP as FRAMES
from heads import families as _families  # noqa: F401  (registers the heads)
from heads.registry import (
    HeadSpec,
    UnknownHeadError,
    get_spec,
    list_families,
    list_heads,
    matching_families,
)

# Imported on first use: these load Keras and its backend (seconds); the registry does not, so a
# command that only lists heads or reads a finished study starts without them.
_LAZY = {
    "assemble": "heads.assembly",
    **dict.fromkeys(("build_full_model", "build_head_model", "feature_input_shape"), "heads.build"),
    "Engine": "heads.engine",
    **dict.fromkeys(
        (
            "RunningStatistics",
            "Standardization",
            "check_foldable",
            "feature_statistics",
            "fold_standardization",
            "standardization_layer",
            "training_model",
        ),
        "heads.fitting",
    ),
    **dict.fromkeys(
        ("OUTPUTS", "bonafide_score", "bonafide_score_from_logits", "logits_loss", "loss_for"),
        "heads.outputs",
    ),
    **dict.fromkeys(("PointwiseConv2D", "PointwiseConvLSTM2D"), "heads.pointwise"),
    **dict.fromkeys(("predict_scores", "save_head_weights"), "heads.scores"),
}


if "keras" in sys.modules:  # Keras is loaded anyway: register the layers saved heads name
    importlib.import_module("heads.pointwise")


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'heads' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "BONAFIDE",
    "Engine",
    "FRAMES",
    "OUTPUTS",
    "HeadSpec",
    "PointwiseConv2D",
    "PointwiseConvLSTM2D",
    "RunningStatistics",
    "Standardization",
    "UnknownHeadError",
    "assemble",
    "bonafide_score",
    "bonafide_score_from_logits",
    "build_full_model",
    "build_head_model",
    "check_foldable",
    "feature_input_shape",
    "feature_statistics",
    "fold_standardization",
    "get_spec",
    "list_families",
    "matching_families",
    "list_heads",
    "logits_loss",
    "loss_for",
    "predict_scores",
    "save_head_weights",
    "standardization_layer",
    "training_model",
]
