"""Build VGG-Face with its weights: the MatConvNet original, or a file converted from it.

:func:`build_vggface` is the one way in (``core.build_vggface``); :func:`load_weights` copies a
``.mat`` or converted ``.weights.h5`` into a model, :func:`convert` writes the converted file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import keras
import numpy as np

from core.backbone.matconvnet import (
    META_GROUP,
    MatLayer,
    Ported,
    PortError,
    check_output,
    inspect,
)
from core.backbone.network import vggface_network
from core.backbone.spec import expected_shapes
from core.constants import AVERAGE_RGB


def build_vggface(
    weights: str | os.PathLike | None = None, include_top: bool = True
) -> keras.Model:
    """Build VGG-Face.

    Args:
        weights: ``None`` (random initialisation), a MatConvNet ``.mat`` file (either layout of
            SPEC §2) or a converted Keras weights file written by ``python -m core.port --out``.
        include_top: with the top, the model ends in fc8 (2622 identities) and a softmax;
            without it, the model stops after fc7's dropout and outputs the (1, 1, 4096) fc7 map
            that every head consumes.

    Returns:
        A functional ``keras.Model`` taking (224, 224, 3) images preprocessed by
        :func:`preprocess_input`.
    """
    if not isinstance(include_top, bool):
        raise ValueError(f"include_top must be True or False, got {include_top!r}")
    if weights is not None and not isinstance(weights, str | os.PathLike):
        raise ValueError(
            f"weights must be None or a path to a .mat or .weights.h5 file, "
            f"got {type(weights).__name__}"
        )

    model = vggface_network(include_top)

    if weights is not None:
        load_weights(model, Path(weights))
    return model


def load_weights(model: keras.Model, path: str | os.PathLike) -> Ported:
    """Copy a MatConvNet ``.mat`` or a converted ``.weights.h5`` file into a VGG-Face model.

    Every conv layer of ``model`` named as in VGG-Face receives its weights; the file is checked
    against the whole network before the model is touched. Raises :class:`PortError` with a
    one-line message on any mismatch.
    """
    path = Path(path)
    if path.name.endswith(".h5"):
        return _load_converted(model, path)
    ported, convs = inspect(path)
    _copy(model, ported, convs)
    return ported


def _copy(model: keras.Model, ported: Ported, convs: dict[str, MatLayer]) -> None:
    model_layers = {layer.name: layer for layer in model.layers}
    for i, (name, kind, what) in enumerate(ported.rows):
        if name in convs and name in model_layers:
            filters, biases = convs[name].params
            model_layers[name].set_weights([filters, biases.reshape(-1)])
            ported.rows[i] = (name, kind, what.replace("matches", "copied "))
        elif name in convs:
            ported.rows[i] = (name, kind, "skipped (not in this model)")


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    inspected: tuple[Ported, dict[str, MatLayer]] | None = None,
) -> Ported:
    """Port ``src`` (.mat) into a full VGG-Face and save it to ``dst`` (.weights.h5) atomically.

    ``inspected``: what :func:`~core.backbone.matconvnet.inspect` returned for ``src``, if read.
    """
    import h5py

    dst = Path(dst)
    check_output(dst)
    # refuse a bad file before building the 145M-parameter model
    ported, convs = inspected if inspected is not None else inspect(src)
    model = vggface_network(include_top=True)
    _copy(model, ported, convs)
    tmp = dst.with_name(f".{dst.name[: -len('.weights.h5')]}.{os.getpid()}.tmp.weights.h5")
    try:
        model.save_weights(tmp)
        with h5py.File(tmp, "a") as h5:
            meta = h5.create_group(META_GROUP)
            meta.create_dataset("average_rgb", data=ported.average_image.astype(np.float32))
            meta.create_dataset("class_names", data=np.array(ported.class_names, dtype="S"))
            meta.attrs["source"] = str(Path(src).name)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return ported


def _load_converted(model: keras.Model, path: Path) -> Ported:
    import h5py

    if not path.is_file():
        raise PortError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise PortError(f"{path}: not an HDF5 Keras weights file")
    try:  # cut short: h5py's "Unable to synchronously open file (truncated file ...)" named
        h5 = h5py.File(path, "r")  # no file (probe FF)
    except OSError as err:
        reason = " ".join(str(err).split())
        raise PortError(
            f"{path}: not a readable HDF5 file (truncated or corrupt?): {reason}"
        ) from None
    with h5:
        if META_GROUP in h5:
            average = np.asarray(h5[META_GROUP]["average_rgb"], dtype=np.float32)
            names = [n.decode() for n in np.asarray(h5[META_GROUP]["class_names"])]
        else:
            average, names = AVERAGE_RGB.copy(), []
        if META_GROUP in h5 and not path.name.endswith(".weights.h5"):  # ours, renamed
            raise PortError(
                f"{path}: a weights file core.port wrote, renamed: Keras 3 reads it only under a "
                "name ending in .weights.h5; rename it back"
            )
    full = model if "fc8" in {layer.name for layer in model.layers} else vggface_network()
    try:
        with warnings.catch_warnings(record=True) as said:  # Keras warns once a layer it could
            warnings.simplefilter("always")  # not fill (probe: 32 lines), then raises
            full.load_weights(path)
        skipped = [str(w.message) for w in said if "Skipping" in str(w.message)]
        if skipped:  # loaded, some layers left as initialised: no VGG-Face either (review)
            raise ValueError(skipped[0])
        for warning in said:  # the others, as they were
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    except Exception as err:
        reason = " ".join(str(err).split()).split(" List of objects")[0]  # its cause: line 2
        reason = reason if len(reason) <= 300 else reason[:299] + "…"
        raise PortError(
            f"{path}: not a VGG-Face weights file written by core.port: "
            f"{reason or type(err).__name__}"
        ) from None
    ported = Ported(path, "keras", average, names)
    targets = {layer.name: layer for layer in model.layers}
    for name in expected_shapes():
        if name in targets and full is not model:
            targets[name].set_weights(full.get_layer(name).get_weights())
        state = "copied" if name in targets else "skipped (not in this model)"
        ported.rows.append((name, "conv", state))
    return ported
