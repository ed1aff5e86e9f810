"""Where models registered before ``experiments/`` was split into rooms look for their scorer.

Their logged code (``pyfunc_model.py`` of those versions) imports ``experiments.scoring``; what it
used lives in :mod:`experiments.serving` now. Kept so those models still load (and score as they
did: ``tests/test_serving.py`` loads one). New code imports :mod:`experiments.serving`.
"""

import numpy as np

from experiments.serving import scorer
from experiments.serving.scorer import backbone_weights, crop_detector
from experiments.serving.trial_model import ScoringError, TrialModel, fetch_top_weights


class Scorer(scorer.Scorer):
    """The scorer as those models call it: a frame without a face scored on its centre square,
    as they did (today's models score it NaN unless told otherwise)."""

    def score_frames(self, frames: np.ndarray, score_faceless: bool = True) -> np.ndarray:
        return super().score_frames(frames, score_faceless)


__all__ = [
    "Scorer",
    "ScoringError",
    "TrialModel",
    "backbone_weights",
    "crop_detector",
    "fetch_top_weights",
]
