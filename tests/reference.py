"""The field's reference implementations the tests compare against.

``bob.measure`` (the Bob toolkit's PAD and biometrics figures) is installed after the ``[test]``
extra with ``--no-deps`` (README). A check against it fails, never skips, when it is missing: a
skip in the middle of a test dropped the assertions after it too (review).
"""

from __future__ import annotations

import importlib
import math
from types import ModuleType


def bob_measure() -> ModuleType:
    """``bob.measure``; an ImportError when it is not installed (README's test command does)."""
    return importlib.import_module("bob.measure")


def auc_agrees(auc: float, sklearn_auc: float) -> bool:
    """Whether an AUC is scikit-learn's ``roc_auc_score`` to its last two bits (README): the
    exact U statistic rounded once, where scikit-learn's trapezoids land up to two units off
    (measured: 3,000 random score sets, ties and float32 among them)."""
    return abs(auc - sklearn_auc) <= 2 * math.ulp(sklearn_auc)
