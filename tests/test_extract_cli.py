"""``python experiments/extract.py``: its report, cache reuse, and exit status 2 on bad input."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.data import synthetic
from tests.test_features import write_clip, write_dataset

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "extract.py"
# TensorFlow's native logger writes to fd 2 before Python runs; those lines are not ours.
NATIVE_LOG = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} )")


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VGGFACE_WEIGHTS"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--no-progress", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


BACKENDS = ("jax", "keras", "tensorflow", "torch")


def run_reading_modules(
    script: Path, *args: str, cwd: Path = REPO, modules: tuple[str, ...] = BACKENDS
) -> subprocess.CompletedProcess:
    """``python script args`` as Python runs a script, then, on its stdout, ``imported: [...]``:
    which of ``modules`` (by default the deep-learning backends) it imported, read at its end."""
    probe = (
        "import runpy, sys\n"
        f"sys.argv = [{str(script)!r}, *{list(args)!r}]\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as end:\n    assert not end.code, end.code\n"
        f"print('imported:', sorted({{m.split('.')[0] for m in sys.modules}} & {set(modules)!r}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "VGGFACE_WEIGHTS"}
    return subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def our_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not NATIVE_LOG.match(line)]


@pytest.fixture
def data(tmp_path) -> Path:
    return write_dataset(tmp_path / "data")


@pytest.fixture
def main(monkeypatch):
    """The script's main(), imported the way the script runs (experiments/ on sys.path)."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    monkeypatch.delenv("VGGFACE_WEIGHTS", raising=False)
    import extract

    def run(argv: list[str]) -> int | str | None:  # the status a shell sees: a refused flag too
        try:
            return extract.main(argv)
        except SystemExit as exit:
            return exit.code

    return run


def test_extracts_then_reuses_as_a_script(data, tmp_path):
    cache = tmp_path / "cache"
    cold = run_script("--data", str(data), "--cache-dir", str(cache), "--frames", "1")
    assert cold.returncode == 0, cold.stderr[-3000:]
    out = cold.stdout
    assert f"{data} (generic): 6 clips" in out  # the dataset summary
    assert re.search(r"^clips: +6 usable, 0 skipped$", out, re.M)
    assert re.search(r"^frames: +6 \(1 per clip", out, re.M)
    assert re.search(r"^frames/s: +\d+\.\d\d \(decoding and network", out, re.M)
    assert re.search(r"^faces: +(?!face crop)\S", out, re.M)  # 'faces:    face crop: ...
    assert re.search(r"^cache: +extracted in ", out, re.M)
    path = re.search(r"^path: +(\S+)$", out, re.M).group(1)
    assert Path(path).parent == cache / "features" and (Path(path) / "features.npy").is_file()
    assert "RANDOM backbone" in out and "RANDOM backbone" in cold.stderr  # loud, both places
    assert "Traceback" not in cold.stderr

    # The rerun reuses the entry and imports no deep-learning backend (TensorFlow's import
    # alone was 10 s of such a rerun): the script run as ``python`` runs it, its modules read
    # after it ends.
    warm = run_reading_modules(
        SCRIPT, "--no-progress", "--data", str(data), "--cache-dir", str(cache), "--frames", "1"
    )
    assert warm.returncode == 0, warm.stderr[-3000:]
    assert re.search(r"^cache: +reused \(extracted ", warm.stdout, re.M)
    assert f"path:     {path}" in warm.stdout
    assert "imported: []" in warm.stdout, warm.stdout[-300:]


def test_a_cache_folder_that_cannot_be_written_is_said_with_the_fix(data, tmp_path):
    """A shared cache this user may not write said "Operation not permitted" alone (probe); run
    without the override a root test run has (``setpriv`` drops it)."""
    setpriv = shutil.which("setpriv")
    assert setpriv, "needs util-linux's setpriv (Debian's util-linux package)"
    cache = tmp_path / "cache"
    (cache / "features").mkdir(parents=True)
    (cache / "features").chmod(0o555)
    drop = "-dac_override,-dac_read_search"
    flags = ["--data", str(data), "--cache-dir", str(cache), "--frames", "1", "--no-face-crop"]
    try:
        done = subprocess.run(
            [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", sys.executable]
            + [str(SCRIPT), "--no-progress", *flags],
            cwd=REPO,
            env={k: v for k, v in os.environ.items() if k != "VGGFACE_WEIGHTS"},
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        (cache / "features").chmod(0o755)
    assert done.returncode == 2, done.stderr[-2000:]
    said = our_lines(done.stderr)[-1]
    assert said.startswith(f"error: {cache / 'features'}/") and said.endswith(
        f": Permission denied; the feature cache {cache} must be writable: give --cache-dir one "
        "that is"
    )


def test_a_missing_data_folder_exits_2_with_one_line(tmp_path):
    result = run_script("--data", str(tmp_path / "nowhere"), "--cache-dir", str(tmp_path / "c"))
    assert result.returncode == 2
    assert our_lines(result.stderr) == [
        f"error: {tmp_path / 'nowhere'}: no such folder; a database is given by its folder"
    ]
    assert result.stdout == ""


def test_missing_weights_exit_2(main, data, tmp_path, capsys):
    missing = tmp_path / "vgg_face.mat"
    code = main(["--data", str(data), "--cache-dir", str(tmp_path), "--weights", str(missing)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"error: {missing}: no such weights file (a .mat or a converted .weights.h5)"]
    code = main(["--data", str(data), "--cache-dir", str(tmp_path), "--weights", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()  # it said "no such weights file" (probe)
    assert code == 2
    assert err == [
        f"error: {tmp_path}: a folder, not a weights file (a .mat or a converted .weights.h5)"
    ]


def test_a_file_that_is_not_vggface_exits_2(main, data, tmp_path, capsys):
    bad = tmp_path / "vgg_face.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    code = main(["--data", str(data), "--cache-dir", str(tmp_path / "c"), "--weights", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {bad}: ")
    bad.write_text("not weights at all\n")  # said before the data is read (probe T: after)
    code = main(["--data", str(data), "--cache-dir", str(tmp_path / "c"), "--weights", str(bad)])
    out, err = capsys.readouterr()
    said = f"error: {bad}: neither a MATLAB .mat file nor a converted .weights.h5 (its first "
    said += "bytes are b'not weig'); give vgg_face.mat or the file core.port wrote"
    assert code == 2 and out == "" and err.strip().splitlines() == [said]


def test_no_usable_clip_exits_2(main, tmp_path, capsys, caplog):
    data = tmp_path / "data"
    for n, split in enumerate(("train", "dev", "test"), start=1):
        for label in ("real", "attack"):
            clip = write_clip(data / split / label / f"client{n:03d}_{label}", frames=1)
            for frame in clip.iterdir():
                frame.write_bytes(b"not a png")
    args = ["--data", str(data), "--cache-dir", str(tmp_path / "c"), "--frames", "1"]
    code = main([*args, "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no usable clip" in err[0]
    assert err[0].startswith(f"error: {data}: ")
    skips = [r.getMessage() for r in caplog.records if "skipped clip" in r.getMessage()]
    assert len(skips) == 6 and all("cannot decode" in m for m in skips)  # each named once


def test_without_data_the_synthetic_set_is_used(main, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(synthetic, "SUBJECTS", 4)  # a smaller set: what is used, not its size
    code = main(["--cache-dir", str(tmp_path), "--frames", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{tmp_path / 'synthetic'}/synthetic-pad-v" in out.splitlines()[0]
    assert "synthetic demonstration set" in out.splitlines()[0]
    n = re.search(r": (\d+) clips, ", out).group(1)
    assert re.search(rf"^clips: +{n} usable, 0 skipped$", out, re.M)
    assert "data:     synthetic demonstration set" in out


def test_list_to_a_reader_that_stops_early_ends_quietly(data, tmp_path):
    """``extract.py --list | head -2`` ended in "error: Broken pipe" and status 2 (probe V): the
    reader here is gone before the list is written."""
    command = [sys.executable, str(REPO / "experiments" / "extract.py"), "--data", str(data)]
    command += ["--cache-dir", str(tmp_path / "c"), "--list"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=300) == 0, err
    assert "Broken pipe" not in err and "Traceback" not in err, err
    # an extraction whose reader went: stopped, and not said done (it ended 0: review)
    child = subprocess.Popen(command[:-1], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=300) == 2, err
    assert err.strip().splitlines()[-1] == (
        "error: the output's reader stopped (broken pipe): extraction stopped"
    )


def test_list_prints_clips_as_csv_and_extracts_nothing(main, data, tmp_path, capsys):
    """``--list``: the clips as CSV on stdout (no own columns in a generic tree), no cache."""
    code = main(["--data", str(data), "--cache-dir", str(tmp_path / "c"), "--list"])
    out, err = capsys.readouterr()
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "clip,split,label,species,subject" and len(lines) == 7
    assert "train/real/client001_real,train,bonafide,bonafide,1" in lines
    assert f"{data} (generic): 6 clips" in err
    assert not (tmp_path / "c" / "features").exists()


def test_ctrl_c_before_a_chunk_began_is_one_line(main, data, tmp_path, capsys, monkeypatch):
    """Ctrl-C while the backend was imported or a cache entry checked (before the extraction's
    own handler): a 40-line traceback and status -2 (a user probe). Now one line, status 130."""
    from experiments.commands import extract

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(extract, "extract_one", interrupted)
    assert main(["--data", str(data), "--cache-dir", str(tmp_path / "cache")]) == 130
    assert our_lines(capsys.readouterr().err) == [
        "interrupted: the cache keeps every chunk finished; the same command goes on"
    ]


def test_list_with_a_bad_fold_exits_2(main, data, tmp_path, capsys):
    code = main(["--data", str(data), "--cache-dir", str(tmp_path), "--fold", "3", "--list"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["error: protocol generic has no folds, got --fold 3"]


def test_the_sweep_says_where_clips_that_did_not_decode_are_missing(data, tmp_path, capsys):
    """The data summary counts clips before decoding; one that then fails was said only as
    'left out: 1 clip(s)', not which split and label now have one clip fewer."""
    from core.features import FeatureOptions
    from experiments.commands.features import load_features

    subject = next((data / "test" / "real").iterdir()).name.split("_")[0]
    broken = write_clip(data / "test" / "real" / f"{subject}_again", frames=1)
    for frame in broken.iterdir():
        frame.write_bytes(b"not a png")
    options = FeatureOptions(data=data, cache_dir=tmp_path / "c", frames=1, progress=False)
    for state in ("extracted", "reused"):
        features = load_features(options)
        out = capsys.readouterr().out.splitlines()
        assert "  test   bonafide  bonafide  2" in out  # counted before decoding
        left = [line for line in out if line.startswith("left out: ")]
        assert left == [
            "left out: 1 clip that did not decode (test bonafide 1; named in the warnings "
            "above): the counts above include them"
        ], state
        assert len(features.clips) == 6


def test_a_split_that_lost_a_whole_species_to_decoding_is_warned_of(data, tmp_path, capsys, main):
    """A test split whose only clip of a species did not decode was said as one clip fewer,
    while its figures were then over the other species only (probe: CASIA's only "cut" clip)."""
    from core.features import FeatureOptions
    from experiments.commands.features import load_features

    subject = next((data / "test" / "real").iterdir()).name.split("_")[0]
    broken = write_clip(data / "test" / "attack" / "mask" / f"{subject}_mask", frames=1)
    for frame in broken.iterdir():
        frame.write_bytes(b"not a png")
    train = next((data / "train" / "real").iterdir()).name.split("_")[0]
    write_clip(data / "train" / "attack" / "mask" / f"{train}_mask", frames=1)
    lost = write_clip(data / "train" / "attack" / "cut" / f"{train}_cut", frames=1)
    for frame in lost.iterdir():
        frame.write_bytes(b"not a png")
    options = FeatureOptions(data=data, cache_dir=tmp_path / "c", frames=1, progress=False)
    load_features(options)
    out = capsys.readouterr().out.splitlines()
    said = [
        "warning: the test split lost every mask clip to decoding: its figures are over the "
        "other species only",
        "warning: the train split lost every cut clip to decoding: the heads train without it",
    ]
    assert sorted(line for line in out if "to decoding" in line) == said, out
    # extract.py says it too (it said the count of clips only: probe)
    cache = str(tmp_path / "c")
    assert main(["--data", str(data), "--cache-dir", cache, "--frames", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sorted(line for line in out if "to decoding" in line) == said, out


def test_each_clip_skipped_while_decoding_is_named_once(data, tmp_path, capsys, caplog, main):
    """A clip that did not decode was named by its warning, then again in the summary's list
    (probe Y); the summary now counts them all and lists only those no warning named: clips too
    short for --frames past the first few."""
    from core.features.skips import SHORT_NAMED

    subject = next((data / "test" / "real").iterdir()).name.split("_")[0]
    broken = write_clip(data / "test" / "real" / f"{subject}_broken", frames=3)
    for frame in broken.iterdir():
        frame.write_bytes(b"not a png")
    shorts = [
        write_clip(data / "test" / "attack" / f"{subject}_short{n}", frames=2)
        for n in range(SHORT_NAMED + 2)
    ]
    cache = str(tmp_path / "c")
    assert main(["--data", str(data), "--cache-dir", cache, "--frames", "3", "--no-progress"]) == 0
    captured = capsys.readouterr()
    said = captured.out + caplog.text  # the warnings are logged
    for clip in [broken, *shorts]:  # each named once, by its warning or the list
        assert said.count(f"{clip}:") == 1, (clip, said)
    total = len(shorts) + 1
    count = [line for line in captured.out.splitlines() if line.startswith("skipped while")]
    assert count == [f"skipped while decoding: {total} clips ({SHORT_NAMED + 1} in warnings)"]
    listed = [line for line in captured.out.splitlines() if line.startswith("  skipped ")]
    assert len(listed) == len(shorts) - SHORT_NAMED


def test_a_split_of_ones_own_data_without_a_species_is_warned_of(data, tmp_path, capsys, main):
    """A test folder without the data's replay attacks was said only by a count in the summary;
    its test figures were over the other species (probe). A database's protocol that tests
    some species only (casia-cut) is meant so: not warned."""
    from core.features import FeatureOptions
    from experiments.commands.features import load_features

    train = next((data / "train" / "real").iterdir()).name.split("_")[0]
    for subject in (train, "client099"):  # of two subjects: a species the splits should have
        write_clip(data / "train" / "attack" / "mask" / f"{subject}_mask", frames=1)
    write_clip(data / "train" / "attack" / "paper" / f"{train}_x", frames=1)  # one subject's
    options = FeatureOptions(data=data, cache_dir=tmp_path / "c", frames=1, progress=False)
    load_features(options)
    out = capsys.readouterr().out.splitlines()
    said = [
        f"warning: the {split} split has no mask clip: its figures are over the other species only"
        for split in ("dev", "test")
    ]
    assert [line for line in out if line.startswith("warning: the ")] == said, out
    cache = str(tmp_path / "c")  # extract.py says it too
    assert main(["--data", str(data), "--cache-dir", cache, "--frames", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("warning: the ")] == said, out


def test_tensorflows_runtime_lines_are_not_on_a_quiet_console() -> None:
    """float16 extraction printed oneDNN's 'E0000 ... util.cc:131] oneDNN supports DT_HALF only on
    platforms with AVX-512', an error line, without --verbose (probe)."""
    code = (
        "from experiments.commands.quiet import quiet_backend\n"
        "quiet_backend(False)\n"
        "import tensorflow as tf\n"
        "x = tf.ones((1, 8, 8, 3), tf.float16)\n"
        "print(tf.nn.conv2d(x, tf.ones((3, 3, 3, 4), tf.float16), 1, 'SAME').dtype)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == "<dtype: 'float16'>", done.stderr
    assert [line for line in done.stderr.splitlines() if NATIVE_LOG.match(line)] == []


def test_an_extraction_that_computed_no_frame_says_so(main, data, tmp_path, capsys) -> None:
    """A clip removed, every other reused from the earlier entry: "frames/s: 0.00 (decoding and
    network, 0.0 s)" (probe FF)."""
    from tests.test_features import SUBJECTS

    extra = data / "train" / "real" / f"{SUBJECTS['train']}_real_again"
    write_clip(extra, seed=99)
    flags = ["--data", str(data), "--cache-dir", str(tmp_path / "cache"), "--frames", "3"]
    assert main(flags) == 0
    shutil.rmtree(extra)
    capsys.readouterr()
    assert main(flags) == 0
    out = capsys.readouterr().out
    assert "frames/s: none measured (no frame went through the network)\n" in out, out
    assert main(flags) == 0  # the entry reused: its rate as recorded, none
    out = capsys.readouterr().out
    assert "frames/s: none measured (no frame went through the network) when extracted\n" in out
