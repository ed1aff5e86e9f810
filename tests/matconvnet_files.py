"""Write MatConvNet VGG-Face files with scipy.io.savemat, in the exact nesting of SPEC §2.

Used by the tests only: the real ~1 GB files cannot be downloaded here, so tests write their own
files of the same layout (full size or cut short). The port is checked on arrays that did not come
from the reader's own conventions: :func:`weights_from_keras_vgg16` takes Keras' own VGG16
(``keras.applications``, the same conv trunk, built here with VGG-Face's 2622 classes and seeded
He-scaled weights) and turns its layers into MatConvNet's arrays itself: its Dense ``fc1``
kernel (25088, 4096), which reads pool5 flattened in (H, W, C) order, becomes fc6's 7x7x512x4096
filters; ``fc2`` and ``predictions`` become 1x1 filters; biases become (C, 1) columns; names map
``block<b>_conv<i>`` to ``conv<b>_<i>``. The ported network must then give that model's outputs.
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


def keras_vgg16(seed: int = 7):
    """Keras' VGG16 with VGG-Face's 2622 identities (no download: ``weights=None``), its weights
    replaced by seeded He-scaled ones (Glorot's would shrink the signal to nothing over 16 layers;
    fc8 scaled down so the softmax is not one-hot)."""
    import keras

    model = keras.applications.VGG16(weights=None, classes=2622)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if not layer.weights:
            continue
        kernel, bias = layer.get_weights()
        scale = np.sqrt(2.0 / np.prod(kernel.shape[:-1]))
        scale *= 0.003 if layer.name == "predictions" else 1.0
        layer.set_weights(
            [
                rng.standard_normal(kernel.shape, dtype=np.float32) * np.float32(scale),
                rng.standard_normal(bias.shape, dtype=np.float32) * np.float32(0.01),
            ]
        )
    return model


def weights_from_keras_vgg16(model) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MatConvNet's (filters, biases) per layer name, made from a Keras VGG16's layers."""
    weights = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        kernel, bias = (np.asarray(w, dtype=np.float32) for w in layer.get_weights())
        if layer.name.startswith("block"):
            block, conv = layer.name.removeprefix("block").split("_conv")
            name = f"conv{block}_{conv}"
        else:
            name = {"fc1": "fc6", "fc2": "fc7", "predictions": "fc8"}[layer.name]
            side = 7 if name == "fc6" else 1  # fc1 reads pool5 (7, 7, 512) flattened, C fastest
            kernel = kernel.reshape(side, side, kernel.shape[0] // (side * side), -1)
        weights[name] = (np.ascontiguousarray(kernel), bias.reshape(-1, 1))
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
