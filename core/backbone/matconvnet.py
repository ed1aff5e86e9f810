"""Read and check the original MatConvNet VGG-Face files, without Keras.

Both released layouts are read (SPEC §2):

* robots.ox.ac.uk ``vgg_face.mat``: top-level ``net`` with ``net.layers`` (1x39 cell),
  ``net.classes.description`` and ``net.normalization.averageImage``;
* vlfeat.org ``vgg-face.mat``: top-level ``layers`` (1x37 cell) and ``meta`` with
  ``meta.classes.description`` and ``meta.normalization.averageImage``.

A conv layer's ``weights`` is a 1x2 cell: filters (H, W, Cin, Cout), already Keras' HWIO order, and
biases (C, 1). Every VGG-Face conv layer is matched by name and shape-checked; the others (relu,
pool, dropout, softmax) are listed as skipped, like the write-up's ``weight_compare``.

Command line::

    python -m core.port SRC.mat [--out DST.weights.h5]

(:mod:`core.port`) prints that listing and, with ``--out``, writes a converted Keras weights file
(atomically, :func:`core.backbone.vggface.convert`), so the ~1 GB ``.mat`` is read once. Bad input
exits with status 2 and one line on stderr.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.backbone.spec import expected_shapes, mean_rgb
from core.constants import AVERAGE_RGB

META_GROUP = "vggface_heads_meta"  # extra HDF5 group in converted files; Keras ignores it


class PortError(ValueError):
    """A weights file that cannot be ported. The message is one line naming file and layer."""


@dataclass(frozen=True)
class MatLayer:
    name: str
    type: str
    params: tuple[np.ndarray, ...]  # (filters, biases) for conv layers, () otherwise


@dataclass
class Ported:
    """What was read from a weights file and what was done with each layer."""

    source: Path
    layout: str  # "net" (robots.ox.ac.uk), "layers+meta" (vlfeat.org) or "keras"
    average_image: np.ndarray  # (3,) RGB mean
    class_names: list[str]
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (name, type, what happened)

    def listing(self) -> str:
        width = max((len(name) for name, _, _ in self.rows), default=4)
        lines = [f"{self.source} ({self.layout} layout)"]
        lines += [f"  {name:<{width}}  {kind:<8} {what}" for name, kind, what in self.rows]
        mean = ", ".join(f"{v:.4f}" for v in self.average_image)
        lines.append(f"  averageImage (RGB): {mean}; identities: {len(self.class_names)}")
        return "\n".join(lines)


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # the first bytes of an HDF5 file (Keras's .weights.h5)


def check_weights_path(path: Path) -> None:
    """A :class:`PortError` (one line) when ``path`` is not a file: a folder, or nothing."""
    if not path.is_file():
        what = "a folder, not a weights file" if path.is_dir() else "no such weights file"
        raise PortError(f"{path}: {what} (a .mat or a converted .weights.h5)")


def check_weights_file(path: str | os.PathLike) -> None:
    """A :class:`PortError` (one line) when ``path`` is not a file, or begins neither as a MATLAB
    v5/v7 .mat file nor as HDF5 (a converted ``.weights.h5``): said as the flags are read, not
    after the data's summary (probe T). Its layers are read where the backbone is built."""
    path = Path(path).expanduser()
    check_weights_path(path)
    try:
        with open(path, "rb") as file:
            start = file.read(8)
    except OSError as err:
        raise PortError(f"{path}: cannot be read ({err.strerror})") from None
    if not (start.startswith(b"MATLAB") or start == HDF5_SIGNATURE):
        raise PortError(
            f"{path}: neither a MATLAB .mat file nor a converted .weights.h5 (its first bytes are "
            f"{start!r}); give vgg_face.mat or the file core.port wrote"
        )


def read_matconvnet(path: str | os.PathLike) -> tuple[str, list[MatLayer], np.ndarray, list[str]]:
    """Read a MatConvNet VGG-Face file: (layout, layers, averageImage (3,), class names)."""
    from scipy.io import loadmat  # scipy's MAT reader never unpickles

    path = Path(path)
    if path.is_dir():
        raise PortError(f"{path}: a folder, not a MatConvNet .mat file")
    if not path.is_file():
        raise PortError(f"{path}: no such file")
    try:
        data = loadmat(path, struct_as_record=False, squeeze_me=False)
    except NotImplementedError:
        raise PortError(
            f"{path}: MATLAB v7.3 (HDF5) files are not supported; "
            f"re-save it in MATLAB with save(..., '-v7')"
        ) from None
    except Exception as err:  # scipy raises ValueError, OSError, zlib.error... on bad bytes
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        with open(path, "rb") as file:
            signature = file.read(8)
        if signature == HDF5_SIGNATURE:  # HDF5 without a MATLAB header: Keras's?
            named = Path(path).name.endswith(".weights.h5")  # else Keras 3 does not read it
            fix = "give it to --weights as it is" if named else "rename it to *.weights.h5"
            raise PortError(
                f"{path}: an HDF5 file, not a MATLAB .mat file; a converted weights file "
                f"(*.weights.h5) needs no port: {fix}"
            ) from None
        raise PortError(
            f"{path}: not a readable MATLAB .mat file (truncated or corrupt?): {reason}"
        ) from None

    if "net" in data:
        layout = "net"
        net = _one(data["net"])
        raw_layers, meta = _field(net, "layers", path, "net"), net
    elif "layers" in data and "meta" in data:
        layout = "layers+meta"
        raw_layers, meta = data["layers"], _one(data["meta"])
    else:
        found = sorted(k for k in data if not k.startswith("__"))
        raise PortError(
            f"{path}: not a MatConvNet network: expected a top-level 'net' struct or "
            f"'layers' and 'meta', found variables {found}"
        )

    fields = set(data) if layout == "layers+meta" else set(getattr(net, "_fieldnames", ()))
    if {"vars", "params"} <= fields:  # dagnn.DagNN.saveobj: weights in 'params', not layers
        raise PortError(
            f"{path}: a MatConvNet DagNN network; this port reads SimpleNN files, as "
            "vgg_face.mat (robots.ox.ac.uk) and vgg-face.mat (vlfeat.org) are"
        )
    layers = [_read_layer(cell, i, path) for i, cell in enumerate(np.ravel(raw_layers))]
    average = AVERAGE_RGB.copy()
    normalization = getattr(meta, "normalization", None)
    if normalization is not None and hasattr(_one(normalization), "averageImage"):
        stored = np.asarray(_one(normalization).averageImage)
        try:
            average = mean_rgb(stored)
        except ValueError:
            raise PortError(
                f"{path}: normalization.averageImage: expected 3 values or an HxWx3 "
                f"image, found shape {stored.shape}"
            ) from None
    return layout, layers, average, _class_names(meta)


def inspect(path: str | os.PathLike) -> tuple[Ported, dict[str, MatLayer]]:
    """Read a MatConvNet file and check it against the whole VGG-Face network, model-free.

    Returns the listing (every conv layer "matches", every other layer "skipped") and the conv
    layers by name. Another network is refused even where some names match (e.g. ImageNet
    VGG-16, whose fc8 has 1000 outputs).
    """
    path = Path(path)
    layout, layers, average, names = read_matconvnet(path)
    shapes = expected_shapes()
    by_name = {layer.name: layer for layer in layers}
    for name, shape in shapes.items():
        if name not in by_name:
            raise PortError(
                f"{path}: layer {name}: expected a conv layer with filters {shape}, "
                f"not found (file has {len(layers)} layers: "
                f"{', '.join(layer.name for layer in layers[:6])}, ...)"
            )
        _check_params(path, by_name[name], shape)
    ported = Ported(path, layout, average, names)
    for layer in layers:
        if layer.name in shapes:
            filters, biases = layer.params
            what = f"matches filters {filters.shape} biases {biases.shape}"
        else:
            what = "skipped (no weights)"
        ported.rows.append((layer.name, layer.type, what))
    return ported, {name: by_name[name] for name in shapes}


def check_output(dst: str | os.PathLike) -> None:
    """A :class:`PortError` for a converted file Keras cannot write: a name not ending in
    ``.weights.h5``, a folder that does not exist or cannot be written, or a folder where the
    file would go; said before the minutes a conversion takes."""
    dst = Path(dst)
    if not dst.name.endswith(".weights.h5"):
        raise PortError(f"{dst}: output must end with .weights.h5, as Keras 3 requires")
    if not dst.parent.is_dir():
        kind = "is a file, not a folder" if dst.parent.exists() else "does not exist"
        raise PortError(f"{dst}: output folder {dst.parent} {kind}")
    if dst.is_dir():
        raise PortError(f"{dst}: a folder; --out names the converted file")
    if not os.access(dst.parent, os.W_OK | os.X_OK):
        raise PortError(f"{dst}: output folder {dst.parent} cannot be written")


def _check_params(path: Path, layer: MatLayer, shape: tuple[int, ...]) -> None:
    if len(layer.params) != 2:
        raise PortError(
            f"{path}: layer {layer.name}: expected weights {{filters, biases}}, "
            f"found {len(layer.params)} arrays"
        )
    filters, biases = layer.params
    if filters.shape != shape:
        raise PortError(
            f"{path}: layer {layer.name}: expected filters {shape} (H, W, Cin, Cout), "
            f"found {filters.shape}"
        )
    if biases.size != shape[-1] or biases.ndim > 2 or max(biases.shape, default=0) != biases.size:
        raise PortError(
            f"{path}: layer {layer.name}: expected biases ({shape[-1]}, 1), found {biases.shape}"
        )
    for what, array in (("filters", filters), ("biases", biases)):
        bad = array.size - int(np.isfinite(array).sum())
        if bad:  # NaN or inf: every feature after it is NaN, or 0 after a ReLU, without a word
            raise PortError(f"{path}: layer {layer.name}: {bad} of its {what} are NaN or infinite")


def _read_layer(cell, index: int, path: Path) -> MatLayer:
    layer = _one(cell)
    name = _string(getattr(layer, "name", None))
    if not name:
        raise PortError(
            f"{path}: layer #{index + 1}: expected a struct with a 'name' field, "
            f"found {type(layer).__name__}"
        )
    kind = _string(getattr(layer, "type", None)) or "?"
    if hasattr(layer, "weights") and np.size(layer.weights) > 0:
        weights = layer.weights
        arrays = np.ravel(weights) if np.asarray(weights).dtype == object else [weights]
    elif hasattr(layer, "filters"):  # older MatConvNet releases: separate fields
        arrays = [layer.filters, _field(layer, "biases", path, f"layer {name}")]
    else:
        arrays = []
    try:
        params = tuple(np.asarray(a, dtype=np.float32) for a in arrays)
    except (TypeError, ValueError) as err:  # a string or a struct where numbers belong
        said = (str(err).splitlines() or [type(err).__name__])[0][:80]
        raise PortError(f"{path}: layer {name}: expected numeric weights ({said})") from None
    return MatLayer(name, kind, params)


def _class_names(meta) -> list[str]:
    classes = getattr(meta, "classes", None)
    description = getattr(_one(classes), "description", None) if classes is not None else None
    if description is None:
        return []
    array = np.asarray(description)
    if array.dtype == object:  # cell array of strings
        return [_string(item) for item in np.ravel(array, order="F")]
    if array.dtype.kind == "U" and array.ndim == 2 and array.shape[0] > 1:  # char matrix
        return ["".join(row).strip() for row in array]
    return [str(item).strip() for item in np.ravel(array)]


def _one(value):
    """Peel the 1x1 object arrays that loadmat wraps around every struct and cell element."""
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.reshape(-1)[0]
    return value


def _field(struct, name: str, path: Path, where: str):
    if not hasattr(struct, name):
        raise PortError(f"{path}: {where}.{name}: expected a field, not found")
    return getattr(struct, name)


def _string(value) -> str:
    value = _one(value)
    if value is None:
        return ""
    if isinstance(value, np.ndarray):
        return "".join(np.ravel(value).astype(str)).strip() if value.size else ""
    return str(value).strip()
