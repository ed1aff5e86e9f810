"""VGG-Face backbone, MatConvNet weight port, clip data and the fc7 feature cache.

``core`` knows nothing of Optuna or MLflow: ``experiments`` wires it to them. Names are imported
on first use (PEP 562), so reusing cached features (``core.features``) never loads Keras.
"""

from importlib import import_module
from typing import TYPE_CHECKING

_EXPORTS = {
    "AVERAGE_RGB": "core.vggface",
    "FEATURE_SHAPE": "core.vggface",
    "INPUT_SHAPE": "core.vggface",
    "PARAMS_TO_FC7": "core.vggface",
    "PARAMS_WITH_TOP": "core.vggface",
    "build_vggface": "core.vggface",
    "preprocess_input": "core.vggface",
    "PortError": "core.port",
    "Ported": "core.port",
    "load_weights": "core.port",
}
__all__ = [
    "AVERAGE_RGB",
    "FEATURE_SHAPE",
    "INPUT_SHAPE",
    "PARAMS_TO_FC7",
    "PARAMS_WITH_TOP",
    "build_vggface",
    "preprocess_input",
    "PortError",
    "Ported",
    "load_weights",
]

if TYPE_CHECKING:
    from core.port import Ported, PortError, load_weights
    from core.vggface import (
        AVERAGE_RGB,
        FEATURE_SHAPE,
        INPUT_SHAPE,
        PARAMS_TO_FC7,
        PARAMS_WITH_TOP,
        build_vggface,
        preprocess_input,
    )


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")
