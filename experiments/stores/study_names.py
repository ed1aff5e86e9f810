"""A study named that the tracking store does not hold, said one way by every command (compare,
``compare --cross``, predict): where it looked, the stored names closest to it, and the command that
lists them all. Each command had worded it its own way, and none said that ``lstm-demo`` was
``lstm_demo``."""

from __future__ import annotations

from collections.abc import Collection

import mlflow

from core.words import meant
from experiments.stores.said import tracking_named
from experiments.stores.tracking import STUDY_TAG, store_shown, study_experiments


def not_stored(names: Collection[str], stored: Collection[str] | None = None) -> str:
    """One line: ``names`` are no study of the tracking store in use, and which of its studies'
    names (``stored``, read from it when not given) are close to them."""
    if stored is None:
        stored = [experiment.tags[STUDY_TAG] for experiment in study_experiments()]
    stored = sorted(set(stored))
    # in any case: OULU-P1 finds oulu-p1 (difflib alone compares case: left list)
    close = sorted({near for name in names for near in meant(name, stored, n=3)})
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    where = f"no study {', '.join(map(repr, sorted(names)))} in {store_shown()}"
    if not stored:  # --list would only say the store has none (probe Z)
        named = tracking_named(mlflow.get_tracking_uri()).split(" ")[0].split("=")[0]
        return f"{where}, which holds no study (is {named} the sweep's?)"
    return f"{where} ({hint}python experiments/compare.py --list names them)"
