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
"""

from core.constants import BONAFIDE
from core.constants import FRAMES_PER_CLIP as FRAMES
from heads import families as _families  # noqa: F401  (registers the heads)
from heads.assemble import assemble
from heads.build import build_full_model, build_head_model, feature_input_shape
from heads.engine import Engine
from heads.fitting import (
    RunningStatistics,
    Standardization,
    check_foldable,
    feature_statistics,
    fold_standardization,
    standardization_layer,
    training_model,
)
from heads.outputs import (
    OUTPUTS,
    bonafide_score,
    bonafide_score_from_logits,
    logits_loss,
    loss_for,
)
from heads.pointwise import PointwiseConv2D, PointwiseConvLSTM2D
from heads.registry import HeadSpec, UnknownHeadError, get_spec, list_families, list_heads
from heads.scores import predict_scores, save_head_weights

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
    "list_heads",
    "logits_loss",
    "loss_for",
    "predict_scores",
    "save_head_weights",
    "standardization_layer",
    "training_model",
]
