"""VGG-Face backbone, MatConvNet weight port, clip data and the fc7 feature cache.

``core`` knows nothing of Optuna or MLflow: ``experiments`` wires it to them.
"""

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

__all__ = [
    "AVERAGE_RGB",
    "FEATURE_SHAPE",
    "INPUT_SHAPE",
    "PARAMS_TO_FC7",
    "PARAMS_WITH_TOP",
    "PortError",
    "Ported",
    "build_vggface",
    "load_weights",
    "preprocess_input",
]
