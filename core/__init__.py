"""VGG-Face backbone, MatConvNet weight port, clip data and the fc7 feature cache.

By concern: :mod:`core.backbone` (the network and its weights), :mod:`core.data` (clips, frames,
dataset layouts, splits, the synthetic set), :mod:`core.features` (the fc7 cache and how it is
filled); :mod:`core.constants` holds the facts they share. ``core`` knows nothing of Optuna or
MLflow: ``experiments`` wires it to them. Names are imported on first use (PEP 562), so reusing
cached features never loads Keras.
"""

from importlib import import_module
from typing import TYPE_CHECKING

_EXPORTS = {
    "AVERAGE_RGB": "core.constants",
    "FEATURE_SHAPE": "core.constants",
    "INPUT_SHAPE": "core.constants",
    "PARAMS_TO_FC7": "core.backbone.spec",
    "PARAMS_WITH_TOP": "core.backbone.spec",
    "preprocess_input": "core.backbone.spec",
    "build_vggface": "core.backbone.vggface",
    "load_weights": "core.backbone.vggface",
    "PortError": "core.backbone.matconvnet",
    "Ported": "core.backbone.matconvnet",
}
__all__ = [
    "AVERAGE_RGB",
    "FEATURE_SHAPE",
    "INPUT_SHAPE",
    "PARAMS_TO_FC7",
    "PARAMS_WITH_TOP",
    "Ported",
    "PortError",
    "build_vggface",
    "load_weights",
    "preprocess_input",
]

if TYPE_CHECKING:
    from core.backbone.matconvnet import Ported, PortError
    from core.backbone.spec import PARAMS_TO_FC7, PARAMS_WITH_TOP, preprocess_input
    from core.backbone.vggface import build_vggface, load_weights
    from core.constants import AVERAGE_RGB, FEATURE_SHAPE, INPUT_SHAPE


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")
