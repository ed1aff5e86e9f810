"""Write MatConvNet VGG-Face files with scipy.io.savemat, in the exact nesting of SPEC §2.

Used by the tests only: the real ~1 GB files cannot be downloaded here, so tests write their own
files of the same layout (full size or cut short) with seeded random weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import savemat

from core.backbone.spec import expected_shapes

CLASS_NAMES = [f"Identity_{i:04d}" for i in range(2622)]


def random_weights(seed: int = 0, names=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """He-scaled filters (H, W, Cin, Cout) and biases (C, 1), so activations stay O(1..100)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in expected_shapes().items():
        if names is not None and name not in names:
            continue
        fan_in = shape[0] * shape[1] * shape[2]
        # fc8 is scaled down so the softmax over 2622 identities is not one-hot.
        scale = np.sqrt(2.0 / fan_in) * (0.003 if name == "fc8" else 1.0)
        filters = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
        biases = rng.standard_normal((shape[-1], 1), dtype=np.float32) * np.float32(0.01)
        weights[name] = (filters, biases)
    return weights


def layer_sequence(layout: str) -> list[tuple[str, str]]:
    """(name, type) of every layer, in file order, as released."""
    layers = []
    for name in expected_shapes():
        if name.startswith("conv"):
            block, index = name[4:].split("_")
            layers += [(name, "conv"), (f"relu{block}_{index}", "relu")]
            if (block, index) in {("1", "2"), ("2", "2"), ("3", "3"), ("4", "3"), ("5", "3")}:
                layers.append((f"pool{block}", "pool"))
        elif name in ("fc6", "fc7"):
            layers += [(name, "conv"), (f"relu{name[2]}", "relu")]
            if layout == "net":  # only the robots.ox.ac.uk file keeps its dropout layers
                layers.append((f"dropout{name[2]}", "dropout"))
        else:
            layers.append((name, "conv"))
    layers.append(("softmax", "softmax") if layout == "net" else ("prob", "softmax"))
    return layers


def write_matconvnet(
    path: Path,
    weights: dict[str, tuple[np.ndarray, np.ndarray]],
    layout: str = "net",
    average_image=((129.1863, 104.7624, 93.5940),),
    class_names=CLASS_NAMES,
    layers: list[tuple[str, str]] | None = None,
) -> Path:
    """Write a VGG-Face file: layout "net" (robots.ox.ac.uk) or "layers+meta" (vlfeat.org).

    Layers without an entry in ``weights`` get an empty weights cell (as relu/pool do), so a
    file with conv layers missing or cut short can be written by passing fewer weights.
    """
    layers = layer_sequence(layout) if layers is None else layers
    cells = np.empty((1, len(layers)), dtype=object)
    for i, (name, kind) in enumerate(layers):
        if name in weights:
            params = np.empty((1, 2), dtype=object)
            params[0, 0], params[0, 1] = weights[name]
        else:
            params = np.empty((1, 0), dtype=object)
        cells[0, i] = {"name": name, "type": kind, "weights": params}
    descriptions = np.empty((len(class_names), 1), dtype=object)
    descriptions[:, 0] = class_names
    meta = {
        "classes": {"name": "identities", "description": descriptions},
        "normalization": {
            "averageImage": np.asarray(average_image, dtype=np.float64),
            "imageSize": np.array([224.0, 224.0, 3.0, 1.0]),
        },
    }
    if layout == "net":
        contents = {"net": {"layers": cells, **meta}}
    elif layout == "layers+meta":
        contents = {"layers": cells, "meta": meta}
    else:
        raise ValueError(layout)
    savemat(path, contents, do_compression=False)
    return path
