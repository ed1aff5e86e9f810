"""The MatConvNet port: both layouts, outputs against Keras' own VGG16 written as MatConvNet
files by the fixture (tests/matconvnet_files.py), bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import core
from core.backbone.matconvnet import PortError, inspect, read_matconvnet
from core.backbone.spec import expected_shapes
from core.backbone.vggface import convert
from core.port import main
from tests.matconvnet_files import (
    CLASS_NAMES,
    keras_vgg16,
    layer_sequence,
    random_weights,
    weights_from_keras_vgg16,
    write_matconvnet,
)

RGB_MEAN = np.array([129.1863, 104.7624, 93.5940])


def relative_error(actual, expected) -> float:
    return float(
        np.max(np.abs(np.asarray(actual, np.float64) - expected)) / np.max(np.abs(expected))
    )


@pytest.fixture(scope="module")
def vgg16():
    """Keras' own VGG16 (2622 classes, seeded weights): the reference the port must reproduce."""
    return keras_vgg16(seed=7)


@pytest.fixture(scope="module")
def weights(vgg16):
    return weights_from_keras_vgg16(vgg16)


@pytest.fixture(scope="module")
def mat_files(weights, tmp_path_factory):
    """Both MatConvNet layouts, 1.1 GB together: deleted once the module is done (the session
    kept them, and CI machines were seen with little disk free)."""
    folder = tmp_path_factory.mktemp("mat")
    yield {
        "net": write_matconvnet(folder / "vgg_face.mat", weights, "net"),
        "layers+meta": write_matconvnet(
            folder / "vgg-face.mat", weights, "layers+meta", average_image=[[RGB_MEAN]]
        ),
    }
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(3).integers(0, 256, size=(2, 224, 224, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def reference(vgg16, images):
    """(fc7, softmax) of Keras' VGG16 on the images, preprocessed as VGG-Face's are."""
    x = core.preprocess_input(images)
    fc7 = keras.Model(vgg16.inputs, vgg16.get_layer("fc2").output).predict_on_batch(x)
    return np.asarray(fc7, np.float64), np.asarray(vgg16.predict_on_batch(x), np.float64)


@pytest.mark.parametrize("layout", ["net", "layers+meta"])
def test_ported_network_matches_independent_forward(layout, mat_files, images, reference):
    fc7_expected, softmax_expected = reference
    x = core.preprocess_input(images)

    full = core.build_vggface(weights=mat_files[layout])
    softmax = full.predict_on_batch(x)
    assert softmax.shape == (2, 2622)
    assert relative_error(softmax, softmax_expected) < 1e-5
    # The check has teeth only if the softmax is spread over many identities.
    assert softmax_expected.max() < 0.5
    del full

    trunk = core.build_vggface(weights=mat_files[layout], include_top=False)
    fc7 = trunk.predict_on_batch(x)
    assert fc7.shape == (2, 1, 1, 4096)
    assert relative_error(fc7.reshape(2, -1), fc7_expected) < 1e-5
    assert (fc7_expected > 0).mean() > 0.1  # ReLU left live units to compare


@pytest.mark.parametrize("layout", ["net", "layers+meta"])
def test_listing_matches_copies_and_skips_every_layer(layout, mat_files):
    ported = core.load_weights(core.build_vggface(include_top=False), mat_files[layout])
    assert ported.layout == layout
    assert [name for name, _, _ in ported.rows] == [name for name, _ in layer_sequence(layout)]
    states = {name: what for name, _, what in ported.rows}
    assert states["conv1_1"] == "copied  filters (3, 3, 3, 64) biases (64, 1)"
    assert states["fc7"].startswith("copied  filters (1, 1, 4096, 4096)")
    assert states["fc8"] == "skipped (not in this model)"
    assert states["pool5"] == states["relu7"] == "skipped (no weights)"
    assert ported.class_names == CLASS_NAMES
    np.testing.assert_allclose(ported.average_image, RGB_MEAN, rtol=1e-6)


def test_round_trip_through_converted_file(mat_files, images, reference, tmp_path, capsys):
    dst = tmp_path / "vgg_face.weights.h5"
    assert main([str(mat_files["net"]), "--out", str(dst)]) == 0
    out = capsys.readouterr().out
    assert "conv5_3" in out and "dropout7" in out and f"wrote {dst}" in out
    assert [p.name for p in tmp_path.iterdir()] == [dst.name]  # no temporary file left

    from_file = core.build_vggface(weights=dst)
    softmax = from_file.predict_on_batch(core.preprocess_input(images))
    assert relative_error(softmax, reference[1]) < 1e-5
    from_mat = core.build_vggface(weights=mat_files["net"])
    for kept, read in zip(from_file.weights, from_mat.weights, strict=True):  # bit for bit
        np.testing.assert_array_equal(np.asarray(kept), np.asarray(read), err_msg=kept.path)

    ported = core.load_weights(from_mat, dst)
    assert ported.layout == "keras" and ported.class_names == CLASS_NAMES
    np.testing.assert_allclose(ported.average_image, RGB_MEAN, rtol=1e-6)

    # the converted file where a .mat is read, renamed, or a folder: what it is, not a guess
    assert main([str(dst)]) == 2  # it said "not a readable MATLAB .mat file (truncated?)"
    assert capsys.readouterr().err == (
        f"error: {dst}: an HDF5 file, not a MATLAB .mat file; a converted weights file "
        "(*.weights.h5) needs no port: give it to --weights as it is\n"
    )
    as_mat = tmp_path / "vgg_face.mat"  # given as a .mat: told to rename it, not to give it
    as_mat.write_bytes(dst.read_bytes())
    assert main([str(as_mat)]) == 2
    assert capsys.readouterr().err == (
        f"error: {as_mat}: an HDF5 file, not a MATLAB .mat file; a converted weights file "
        "(*.weights.h5) needs no port: rename it to *.weights.h5\n"
    )
    as_mat.unlink()
    renamed = dst.rename(tmp_path / "vgg_face.h5")  # it said "Layer count mismatch"
    with pytest.raises(PortError, match="a weights file core.port wrote, renamed: Keras 3 reads"):
        core.load_weights(from_mat, renamed)
    assert main([str(tmp_path)]) == 2  # it said "no such file"
    assert capsys.readouterr().err == f"error: {tmp_path}: a folder, not a MatConvNet .mat file\n"


def test_cli_lists_file_without_building_a_model(mat_files):
    result = subprocess.run(
        [sys.executable, "-m", "core.port", str(mat_files["layers+meta"])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "layers+meta layout" in lines[0]
    assert sum("matches filters" in line for line in lines) == 16
    assert sum("skipped (no weights)" in line for line in lines) == 37 - 16
    assert "identities: 2622" in lines[-1]


# --- bad input -------------------------------------------------------------------------------

SMALL = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1")


def _cut_short(path, weights):
    """A file that is VGG-Face up to conv3_1, then ends: the port must stop at conv3_2."""
    layers = [(n, t) for n, t in layer_sequence("net")][:12]
    return write_matconvnet(path, weights, "net", layers=layers)


def _bad_cases(tmp_path, weights, full_net):
    small = random_weights(seed=1, names=SMALL)
    narrow = dict(small)
    narrow["conv1_2"] = (small["conv1_2"][0][..., :32], small["conv1_2"][1][:32])
    bad_bias = dict(small)
    bad_bias["conv1_1"] = (small["conv1_1"][0], np.zeros((64, 2), np.float32))
    nan = dict(small)  # a NaN gave all-zero features after a ReLU: trials on nothing
    nan["conv1_2"] = (small["conv1_2"][0].copy(), small["conv1_2"][1])
    nan["conv1_2"][0][0, 0, 0, :3] = [np.nan, np.inf, np.nan]
    alexnet = [(f"conv{i}", "conv") for i in range(1, 6)]
    truncated = tmp_path / "truncated.mat"
    truncated.write_bytes(full_net.read_bytes()[:40_000_000])
    text = tmp_path / "notes.mat"
    text.write_text("this is not a MATLAB file\n")
    other = tmp_path / "other.mat"
    from scipy.io import savemat

    savemat(other, {"x": np.ones(3)})
    dagnn, dagnn_net = tmp_path / "dagnn.mat", tmp_path / "dagnn-net.mat"
    conv = {"name": "conv1_1", "type": "dagnn.Conv", "params": ["conv1_1f", "conv1_1b"]}
    saved = {  # dagnn.DagNN.saveobj's fields: the weights in params, saved whole or as one struct
        "layers": [conv],
        "vars": [{"name": "data"}],
        "params": [{"name": "conv1_1f", "value": np.ones((3, 3, 3, 64))}],
        "meta": {"normalization": {"averageImage": [129.1863, 104.7624, 93.594]}},
    }
    savemat(dagnn, saved)
    savemat(dagnn_net, {"net": saved})
    return {
        "missing file": (tmp_path / "absent.mat", "no such file"),
        "not a MAT file": (text, "not a readable MATLAB .mat file"),
        "truncated": (truncated, "not a readable MATLAB .mat file"),
        "layer missing": (
            _cut_short(tmp_path / "short.mat", small),
            "layer conv3_2: expected a conv layer with filters (3, 3, 256, 256), not found",
        ),
        "wrong filter shape": (
            write_matconvnet(tmp_path / "narrow.mat", narrow, layers=layer_sequence("net")[:8]),
            "layer conv1_2: expected filters (3, 3, 64, 64) (H, W, Cin, Cout), "
            "found (3, 3, 64, 32)",
        ),
        "wrong bias shape": (
            write_matconvnet(tmp_path / "bias.mat", bad_bias, layers=layer_sequence("net")[:8]),
            "layer conv1_1: expected biases (64, 1), found (64, 2)",
        ),
        "NaN weights": (
            write_matconvnet(tmp_path / "nan.mat", nan, layers=layer_sequence("net")[:8]),
            "layer conv1_2: 3 of its filters are NaN or infinite",
        ),
        "another network": (
            write_matconvnet(tmp_path / "alexnet.mat", {}, layers=alexnet),
            "layer conv1_1: expected a conv layer with filters (3, 3, 3, 64), not found "
            "(file has 5 layers: conv1, conv2",
        ),
        "not a MatConvNet network": (other, "not a MatConvNet network"),
        "DagNN network": (dagnn, "a MatConvNet DagNN network; this port reads SimpleNN files"),
        "DagNN net struct": (dagnn_net, "a MatConvNet DagNN network; this port reads SimpleNN"),
    }


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, weights, mat_files):
    return _bad_cases(tmp_path_factory.mktemp("bad"), weights, mat_files["net"])


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "not a MAT file",
        "truncated",
        "layer missing",
        "wrong filter shape",
        "wrong bias shape",
        "NaN weights",
        "another network",
        "not a MatConvNet network",
        "DagNN network",
        "DagNN net struct",
    ],
)
def test_bad_input_is_one_line_naming_file_and_layer(case, bad_files, tmp_path, capsys):
    path, expected = bad_files[case]
    with pytest.raises(PortError) as raised:
        inspect(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and expected in message
    assert "\n" not in message

    out = tmp_path / "out.weights.h5"
    assert main([str(path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {message}\n"
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_weights_that_are_no_filters_and_biases_are_one_line(tmp_path):
    """A cell of strings or the older layout's filters without biases were tracebacks, and
    weights as one numeric array were counted element by element (probe)."""
    from scipy.io import savemat

    strings = np.empty((1, 2), dtype=object)
    strings[0, 0], strings[0, 1] = "a", "b"
    filters = np.ones((3, 3, 3, 64), np.float32)
    cases = {
        "strings": ({"weights": strings}, "layer conv1_1: expected numeric weights (could not"),
        "no biases": ({"filters": filters}, "layer conv1_1.biases: expected a field, not found"),
        "one array": ({"weights": filters}, "expected weights {filters, biases}, found 1 arrays"),
    }
    normalization = {"averageImage": np.array([[129.1863, 104.7624, 93.594]])}
    for case, (fields, expected) in cases.items():
        cells = np.empty((1, 1), dtype=object)
        cells[0, 0] = {"name": "conv1_1", "type": "conv", **fields}
        path = tmp_path / f"{case}.mat"
        savemat(path, {"net": {"layers": cells, "normalization": normalization}})
        with pytest.raises(PortError) as raised:
            inspect(path)
        assert str(raised.value).startswith(f"{path}: ") and expected in str(raised.value), case


def test_imagenet_vgg16_is_refused_at_fc8(tmp_path, weights):
    imagenet = dict(weights)
    imagenet["fc8"] = (weights["fc8"][0][..., :1000], weights["fc8"][1][:1000])
    path = write_matconvnet(tmp_path / "imagenet-vgg-verydeep-16.mat", imagenet)
    with pytest.raises(PortError, match=r"layer fc8: expected filters \(1, 1, 4096, 2622\)"):
        core.build_vggface(weights=path, include_top=False)


def test_cli_exit_status_and_no_traceback(bad_files, tmp_path):
    """One line, also with --out: the file is refused before Keras loads (and TensorFlow writes
    its start-up lines)."""
    path, expected = bad_files["wrong filter shape"]
    for out in ([], ["--out", str(tmp_path / "x.weights.h5")]):
        result = subprocess.run(
            [sys.executable, "-m", "core.port", str(path), *out],
            capture_output=True,
            text=True,
            check=False,
            env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
        )
        assert result.returncode == 2
        errors = result.stderr.strip().splitlines()
        assert len(errors) == 1 and errors[0].startswith("error: ") and expected in errors[0], out
        assert not list(tmp_path.iterdir())


def test_the_command_names_the_file_it_cannot_read_and_refuses_a_backend_it_cannot_run(
    tmp_path, capsys
):
    """A source that failed to read was said as "error: None: Input/output error" (--out's
    name), and KERAS_BACKEND=torch with --out gave a traceback; --out is checked before the
    source is read (probe)."""
    unreadable = Path("/proc/self/mem")  # reading it at offset 0 fails: EIO
    if not unreadable.exists():
        pytest.skip("Linux's /proc only")
    assert main([str(unreadable)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {unreadable}: Input/output error"
    assert main([str(unreadable), "--out", str(tmp_path / "no" / "x.weights.h5")]) == 2
    assert "/proc/self/mem" not in capsys.readouterr().err  # --out's folder said first
    out = ["--out", str(tmp_path / "x.weights.h5")]
    env = {**os.environ, "KERAS_BACKEND": "torch"}  # a fresh process: Keras reads it at import
    command = [sys.executable, "-m", "core.port", str(unreadable), *out]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("KERAS_BACKEND=jax")


def test_converted_file_errors(tmp_path, recwarn):
    not_h5 = tmp_path / "x.weights.h5"
    not_h5.write_text("nope")
    with pytest.raises(PortError, match="not an HDF5 Keras weights file"):
        core.build_vggface(weights=not_h5)
    # an HDF5 file of other weights: one line with its reason, not 32 lines of Keras's warnings
    # and a line cut before the reason (probe)
    import h5py

    other = tmp_path / "other.weights.h5"
    with h5py.File(other, "w") as h5:
        h5["x"] = np.zeros(3)
    with pytest.raises(PortError) as refused:
        core.build_vggface(weights=other, include_top=False)
    said = str(refused.value)
    assert said.startswith(f"{other}: not a VGG-Face weights file written by core.port: ")
    assert "\n" not in said and not said.endswith(":") and len(said) < 500
    assert not [w for w in recwarn if "Skipping" in str(w.message)]
    cut = tmp_path / "cut.weights.h5"  # h5py's line named no file (probe FF)
    cut.write_bytes(other.read_bytes()[:1500])
    with pytest.raises(PortError) as refused:
        core.build_vggface(weights=cut, include_top=False)
    assert str(refused.value).startswith(f"{cut}: not a readable HDF5 file (truncated or corrupt?)")
    with pytest.raises(PortError, match="output must end with .weights.h5"):
        convert(tmp_path / "in.mat", tmp_path / "out.h5")
    folder = tmp_path / "taken.weights.h5"  # a traceback after the conversion's minutes
    folder.mkdir()
    with pytest.raises(PortError, match="taken.weights.h5: a folder; --out names the"):
        convert(tmp_path / "in.mat", folder)
    file = tmp_path / "notes.txt"  # a file where --out's folder belongs was called missing (probe)
    file.write_text("")
    with pytest.raises(PortError, match="output folder .*notes.txt is a file, not a folder"):
        convert(tmp_path / "in.mat", file / "x.weights.h5")


def test_an_empty_path_is_refused_not_read_as_the_current_folder(capsys):
    """It said ".: a folder, not a MatConvNet .mat file" (review)."""
    for argv, flag in ((["", "--out", "x.weights.h5"], "src"), (["a.mat", "--out", ""], "--out")):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
        said = capsys.readouterr().err.strip().splitlines()[-1]
        assert said.endswith(f"error: argument {flag}: an empty path: name a file or folder")


def test_an_output_that_cannot_be_written_is_one_line(mat_files, capsys):
    """Found only when the converted file is written (root may write anywhere os.access says,
    /proc refuses it all the same): one line, exit 2, not a traceback."""
    assert main([str(mat_files["net"]), "--out", "/proc/vggface.weights.h5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: /proc/vggface.weights.h5: "), err


@pytest.mark.parametrize(
    "stored",
    [
        [129.1863, 104.7624, 93.5940],
        [[129.1863], [104.7624], [93.5940]],
        [[129.1863, 104.7624, 93.5940]],
        [[[129.1863, 104.7624, 93.5940]]],
        "image",
    ],
    ids=["(3,)", "(3,1)", "(1,3)", "(1,1,3)", "HxWx3"],
)
def test_average_image_layouts(stored, tmp_path):
    if isinstance(stored, str):  # a whole image whose per-channel mean is the RGB mean
        rng = np.random.default_rng(0)
        noise = rng.standard_normal((224, 224, 3))
        stored = RGB_MEAN + noise - noise.reshape(-1, 3).mean(axis=0)
    small = random_weights(seed=2, names=("conv1_1",))
    path = write_matconvnet(
        tmp_path / "f.mat", small, "layers+meta", average_image=stored, layers=[("conv1_1", "conv")]
    )
    _, _, average, names = read_matconvnet(path)
    np.testing.assert_allclose(average, RGB_MEAN, rtol=1e-6)
    assert average.shape == (3,) and len(names) == 2622


def test_expected_shapes_cover_every_parameter():
    counts = {n: int(np.prod(s)) + s[-1] for n, s in expected_shapes().items()}
    assert sum(counts.values()) == core.PARAMS_WITH_TOP
    assert sum(v for n, v in counts.items() if n != "fc8") == core.PARAMS_TO_FC7
