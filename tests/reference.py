"""The field's reference implementations the tests compare against.

``bob.measure`` (the Bob toolkit's PAD and biometrics figures) is installed after the ``[test]``
extra with ``--no-deps`` (README). A check against it must fail, not skip, in CI: there
(``CI=true``, which ``.ci/run`` sets) a missing Bob is an import error; elsewhere the check skips.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def bob_measure() -> ModuleType:
    """``bob.measure``: an ImportError under CI, a skip elsewhere, when it is not installed."""
    if in_ci():
        return importlib.import_module("bob.measure")
    return pytest.importorskip("bob.measure")
