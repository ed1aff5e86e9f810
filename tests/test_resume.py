"""Resumable extraction: Ctrl-C keeps the chunks of clips finished, a kill keeps those committed,
and the next extraction computes only the rest and publishes the array a one-shot extraction
publishes, byte for byte.

The backbone is the random VGG-Face extraction builds (``_load_backbone(None)``, seeded), built
once for the module and handed to extraction wrapped in :class:`Counting`, so each test sees how
many frames the network computed. Data: the 6 clips of tests/test_features.py plus one that cannot
be decoded, so that a skipped clip's outcome is carried across an interruption too.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import core.features.extract as extraction
from core.data.dataset import load_dataset
from core.features import ExtractionInterrupted, FeatureSet, pipeline, resume
from tests.test_features import extract, run_python, write_clip, write_dataset

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "extract.py"
TIMING = {
    "created",
    "extract_seconds",
    "frames_per_second",
    "resumed_clips",
    "reused_clips",
    "manifest_sha256",  # of all the above too
}  # what differs between two runs
INTERRUPTED = re.compile(
    r"^extraction interrupted: (\d+) of (\d+) clips done and kept in (\S+?)"
    r"(?:, \d+ of them skipped as they did not decode)?; "
    r"rerun the same command to extract the other (\d+)$"
)


class Counting:
    """The extractor as extraction calls it, counting the frames it computes."""

    def __init__(self, model) -> None:
        self.model, self.frames = model, 0

    def predict_on_batch(self, x):
        self.frames += len(x)
        return self.model.predict_on_batch(x)


@pytest.fixture(scope="module")
def extractor():
    model, average = extraction._load_backbone(None)
    assert average is None
    return model


@pytest.fixture
def counted(monkeypatch, extractor) -> Counting:
    counting = Counting(extractor)
    monkeypatch.setattr(extraction, "_load_backbone", lambda *args: (counting, None))
    monkeypatch.delenv("VGGFACE_WEIGHTS", raising=False)
    return counting


@pytest.fixture
def data(tmp_path) -> Path:
    """7 clips, the second of them (in the order clips are extracted) undecodable."""
    root = write_dataset(tmp_path / "data")
    broken = write_clip(root / "dev" / "real" / "client002_broken", frames=3, seed=9)
    for frame in broken.iterdir():
        frame.write_bytes(b"\x89PNG garbage")
    return root


DECODER = pipeline.decoder


def stop_at(monkeypatch, clip_id: str) -> None:
    """Make decoding raise KeyboardInterrupt at ``clip_id``, as a Ctrl-C there would."""

    def decoder(frames_per_clip, finder):
        decode = DECODER(frames_per_clip, finder)

        def stop_or_decode(clip):
            if clip.clip_id == clip_id:
                raise KeyboardInterrupt
            return decode(clip)

        return stop_or_decode

    monkeypatch.setattr(pipeline, "decoder", decoder)


def without_timing(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k not in TIMING}


@pytest.mark.parametrize(
    ("batch", "kept", "again"),
    [
        (2, 5, 4),  # a chunk per clip: clips 0-4 kept, clips 5 and 6 computed again (4 frames)
        (3, 4, 6),  # a chunk ends where a batch and a clip end together: after clip 3
    ],
)
def test_ctrl_c_keeps_the_finished_chunks_and_the_rerun_computes_only_the_rest(
    data, tmp_path, counted, monkeypatch, caplog, batch, kept, again
):
    one_shot = extract(data, tmp_path / "one-shot", batch_size=batch)
    assert counted.frames == 12 and len(one_shot.skipped) == 1
    source = load_dataset(data).source_clips
    assert source[1].clip_id.endswith("client002_broken")
    pending = tmp_path / "cache" / "features" / f".pending-{one_shot.fingerprint}"

    stop_at(monkeypatch, source[5].clip_id)
    with pytest.raises(ExtractionInterrupted) as caught:
        extract(data, tmp_path / "cache", batch_size=batch)
    err = caught.value
    assert isinstance(err, KeyboardInterrupt)
    assert (err.done, err.total, err.path) == (kept, 7, pending)
    # the broken clip among those kept is said as such: "kept" had counted it (probe)
    aside = ", 1 of them skipped as they did not decode"  # kept: 4 or 5, the broken one in
    assert str(err) == (
        f"extraction interrupted: {kept} of 7 clips done and kept in {pending}{aside}; "
        f"rerun the same command to extract the other {7 - kept}"
    )
    assert pending.is_dir() and not (pending.parent / one_shot.fingerprint).exists()
    assert len((pending / "journal.jsonl").read_text().splitlines()) >= 1

    monkeypatch.setattr(pipeline, "decoder", DECODER)
    counted.frames = 0
    caplog.clear()
    caplog.set_level(logging.INFO, logger="core.features")
    resumed = extract(data, tmp_path / "cache", batch_size=batch)
    assert resumed.extracted and counted.frames == again
    said = [r.getMessage() for r in caplog.records]
    assert f"resuming extraction: {kept} of 7 clips already done in {pending}" in said
    assert sum("client002_broken" in m and "skipped clip" in m for m in said) == 1
    assert not pending.exists()
    npy = "features.npy"
    assert (resumed.path / npy).read_bytes() == (one_shot.path / npy).read_bytes()
    assert without_timing(resumed.manifest) == without_timing(one_shot.manifest)
    assert resumed.skipped == one_shot.skipped


class CtrlCInAFinalizer:
    """Dropped, it sends this thread a Ctrl-C from its finalizer: Python raises KeyboardInterrupt
    there, prints it and drops it, as it did in CI when the signal landed in JAX's
    garbage-collector callback (the command exited 0, extraction finished)."""

    def __del__(self) -> None:
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)


class DropsACtrlC(Counting):
    """Counting, and a Ctrl-C dropped in a finalizer while it computes the second frame."""

    def predict_on_batch(self, x):
        if self.frames == 1:
            CtrlCInAFinalizer()
        return super().predict_on_batch(x)


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # not printed
def test_a_ctrl_c_dropped_in_a_finalizer_still_stops_extraction(
    data, tmp_path, extractor, monkeypatch
):
    dropping = DropsACtrlC(extractor)
    monkeypatch.setattr(extraction, "_load_backbone", lambda *args: (dropping, None))
    monkeypatch.delenv("VGGFACE_WEIGHTS", raising=False)
    with pytest.raises(ExtractionInterrupted) as caught:
        extract(data, tmp_path / "cache", batch_size=1)
    # the first clip's two frames were computed and committed; the next clip did not start
    assert (caught.value.done, caught.value.total, dropping.frames) == (1, 7, 2)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


@pytest.mark.parametrize(
    ("command", "way"), [("compare", "script"), ("predict", "script"), ("compare", "installed")]
)
def test_a_ctrl_c_while_python_shuts_down_after_a_command_is_ignored(tmp_path, command, way):
    """Pressed in the seconds Python takes to shut down after compare printed its table (or
    predict its scores), the command exited 130 saying nothing (probe): Python puts the default
    SIGINT handler back as it ends. Here Ctrl-Cs arrive from the command's last exit handler
    until the process is gone; the command's own exit status and line stand, run as
    ``python experiments/<command>.py`` or as the installed ``vggface-<command>`` (review)."""
    script = REPO / "experiments" / f"{command}.py"
    flags = ["--tracking-uri", f"sqlite:///{tmp_path}/none.db"]
    flags += ["--list"] if command == "compare" else ["--best", "clip.mp4"]
    run = (
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
        if way == "script"
        else f"(s,) = entry_points(group='console_scripts', name='vggface-{command}'); s.load()()"
    )
    code = (
        "import atexit, runpy, sys, time\n"
        "from importlib.metadata import entry_points\n"
        "atexit.register(lambda: (print('exiting', flush=True), time.sleep(0.5)))\n"
        f"sys.argv = [{str(script)!r}, *{flags!r}]\n"
        f"{run}\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline() == "exiting\n"
    deadline = time.monotonic() + 30
    while child.poll() is None and time.monotonic() < deadline:
        child.send_signal(signal.SIGINT)
        time.sleep(0.002)
    err = child.stderr.read()
    assert child.wait() == 2, err
    assert err == f"error: no tracking store at {tmp_path}/none.db: " + err.split(": ", 2)[2]
    assert "\n" not in err.strip()


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # not printed
def test_a_commands_ctrl_c_before_its_own_handling_is_one_line(capsys) -> None:
    """In a command's imports it was a traceback; dropped in a finalizer before the command's
    own check began, the command ran on to its end (probe: a sweep finished its study)."""
    from core.interrupts import ctrl_c_noticed, stopped_by_ctrl_c

    ran = []

    @stopped_by_ctrl_c("interrupted: said once")
    def imports() -> int:
        raise KeyboardInterrupt  # as an import the Ctrl-C lands in

    @stopped_by_ctrl_c("interrupted: said once")
    def loops() -> int:
        CtrlCInAFinalizer()  # dropped: Python prints nothing (the hook), raises nothing here
        for step in range(3):
            with ctrl_c_noticed() as check:  # the command's own check, begun after it
                check()
                ran.append(step)
        return 0

    @stopped_by_ctrl_c("interrupted: said once")
    def unchecked() -> int:  # predict's, compare's: no check of its own, a success hid it
        CtrlCInAFinalizer()
        return 0

    @stopped_by_ctrl_c("interrupted: said once")
    def handles() -> int:  # the sweep's own handling says it; said once, not twice
        try:
            with ctrl_c_noticed() as check:
                CtrlCInAFinalizer()
                check()
        except KeyboardInterrupt:
            print("its own line", file=sys.stderr)
            return 130
        return 0

    assert imports() == 130 and loops() == 130 and unchecked() == 130 and handles() == 130
    assert ran == []
    err = capsys.readouterr().err.splitlines()
    assert err == ["interrupted: said once"] * 3 + ["its own line"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_rows_kept_for_data_since_changed_are_said(data, tmp_path, counted, monkeypatch, caplog):
    """Ctrl-C, then a broken clip removed: the rerun extracted every clip anew, and the rows the
    first run kept stayed on disk (a full-size sparse array) with nothing said (probe)."""
    source = load_dataset(data).source_clips
    stop_at(monkeypatch, source[5].clip_id)
    with pytest.raises(ExtractionInterrupted) as caught:
        extract(data, tmp_path / "cache", batch_size=2)
    kept = caught.value.path
    monkeypatch.setattr(pipeline, "decoder", DECODER)
    shutil.rmtree(source[1].path)  # the broken clip: other data, another key
    caplog.set_level(logging.WARNING, logger="core.features")
    extract(data, tmp_path / "cache", batch_size=2)
    said = [r.getMessage() for r in caplog.records if kept.name in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"{kept.parent}: the rows of interrupted ")
    held = sum(path.stat().st_blocks * 512 for path in kept.iterdir())
    # the data as it was: never resumed (another database's is "of <its folder>": review)
    assert f"({held / 1e3:,.0f} kB: {kept.name} (of {data.resolve()} as it was)) kept" in said[0]
    assert said[0].endswith(
        "kept; the command that made each resumes it (under its KERAS_BACKEND), and one of "
        "data since changed never will: delete that one"
    )
    assert kept.is_dir()  # another command may resume it: said, not deleted


def test_rows_kept_by_another_backend_or_options_say_which(tmp_path) -> None:
    """One of the other Keras backend was "other data or options", to delete (probe EE): said
    by what its journal's first line records of it."""
    from core.features.resume import _differs

    tf = {"weights": "random:he_normal:0", "data": "d1", "frames_per_clip": 8}
    tf |= {"detector": None, "precision": "bfloat16"}
    jax = {**tf, "weights": "random:he_normal:0:jax", "precision": "float32"}
    journal, msu = tmp_path / "journal.jsonl", Path("/data/msu")
    journal.write_text(json.dumps({"start": 0, "key_parts": tf, "data_folder": str(msu)}) + "\n")
    said = _differs(tmp_path, jax, msu)
    assert said == " (of KERAS_BACKEND=tensorflow, precision bfloat16)"
    file = {**tf, "weights": "sha256:aa", "backend": "jax", "data": "d2", "detector": "haar"}
    assert _differs(tmp_path, file, Path("/data/casia")) == (  # another database: its own
        " (of KERAS_BACKEND=tensorflow, other weights, /data/msu, detector none)"
    )
    assert _differs(tmp_path, {**tf, "data": "d2"}, msu) == " (of /data/msu as it was)"
    journal.write_text(json.dumps({"start": 0}) + "\n")  # made before it was recorded
    assert _differs(tmp_path, jax, msu) == ""


def test_ctrl_c_before_the_first_chunk_keeps_nothing(data, tmp_path, counted, monkeypatch):
    source = load_dataset(data).source_clips
    stop_at(monkeypatch, source[0].clip_id)
    with pytest.raises(ExtractionInterrupted) as caught:
        extract(data, tmp_path / "cache", batch_size=2)
    err = caught.value
    assert (err.done, err.total) == (0, 7) and not err.path.exists()
    assert str(err) == (
        "extraction interrupted before its first chunk of clips was finished: nothing kept; "
        "rerun the same command to extract the 7 clips"
    )
    assert [p.name for p in (tmp_path / "cache" / "features").iterdir()] == [
        f"{err.path.name.removeprefix('.pending-')}.lock"
    ]


KILLED_EXTRACTOR = """
    import sys, time
    from core.data.dataset import load_dataset
    from core.features import extract_features, resume, store

    commit_chunk, write = resume.ResumableEntry.commit_chunk, store.PendingEntry.write

    def write_then_hang(self, start, vectors):
        write(self, start, vectors)
        print("wrote", start, flush=True)
        time.sleep(600)  # killed here, the rows written but not committed

    def commit(self, record):
        commit_chunk(self, record)
        if record["end"] == 3:  # clips 0-2 committed, clip 1 among them skipped
            store.PendingEntry.write = write_then_hang

    resume.ResumableEntry.commit_chunk = commit
    extract_features(load_dataset(sys.argv[1]), cache_dir=sys.argv[2], frames_per_clip=2,
                     face_crop=False, batch_size=2, progress=False)
"""


def test_a_killed_extractor_publishes_nothing_and_its_chunks_are_reused(data, tmp_path, counted):
    child = run_python(KILLED_EXTRACTOR, str(data), str(tmp_path / "cache"))
    try:
        line = child.stdout.readline()
        assert line == "wrote 4\n", child.stderr.read()[-3000:]
    finally:
        child.kill()
        child.communicate()
    root = tmp_path / "cache" / "features"
    entries = [p for p in root.iterdir() if not p.name.startswith(".") and p.is_dir()]
    assert entries == []
    (pending,) = root.glob(".pending-*")
    assert len((pending / "journal.jsonl").read_text().splitlines()) == 2

    resumed = extract(data, tmp_path / "cache", batch_size=2)
    assert resumed.extracted and counted.frames == 4 * 2  # clips 3-6
    assert not pending.exists() and resumed.path == root / pending.name.removeprefix(".pending-")
    counted.frames = 0
    one_shot = extract(data, tmp_path / "one-shot", batch_size=2)
    assert counted.frames == 12
    npy = "features.npy"
    assert (resumed.path / npy).read_bytes() == (one_shot.path / npy).read_bytes()


def test_chunks_of_other_clips_are_forgotten(data, tmp_path, counted, monkeypatch, caplog):
    stop_at(monkeypatch, load_dataset(data).source_clips[4].clip_id)
    with pytest.raises(ExtractionInterrupted) as caught:
        extract(data, tmp_path / "cache", batch_size=2)
    journal = caught.value.path / "journal.jsonl"
    lines = journal.read_text().splitlines()
    first = json.loads(lines[0])
    first["clips"][0]["id"] = "dev/attack/someone_else"
    journal.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")

    monkeypatch.setattr(pipeline, "decoder", DECODER)
    counted.frames = 0
    caplog.set_level(logging.WARNING, logger="core.features")
    fs = extract(data, tmp_path / "cache", batch_size=2)
    assert fs.extracted and counted.frames == 12  # every clip again
    assert any("do not describe these clips" in r.getMessage() for r in caplog.records)


def test_committed_rows_damaged_on_disk_are_extracted_again(
    data, tmp_path, counted, monkeypatch, caplog
):
    """A chunk per clip (batch 2, 2 frames a clip); the last kept chunk's rows are overwritten in
    the pending array: the rerun keeps the chunks before it, computes that clip and the rest
    again, and publishes the array a one-shot extraction publishes (before, it published the
    damage, checksummed)."""
    stop_at(monkeypatch, load_dataset(data).source_clips[4].clip_id)
    with pytest.raises(ExtractionInterrupted) as caught:
        extract(data, tmp_path / "cache", batch_size=2)
    assert caught.value.done == 4  # clips 0-3, the second undecodable: 6 frame vectors
    array = np.load(caught.value.path / "features.npy", mmap_mode="r+", allow_pickle=False)
    array.reshape(-1, array.shape[-1])[5] = np.nan  # clip 3's second frame
    array.flush()
    del array

    monkeypatch.setattr(pipeline, "decoder", DECODER)
    counted.frames = 0
    caplog.set_level(logging.WARNING, logger="core.features")
    resumed = extract(data, tmp_path / "cache", batch_size=2)
    said = [r.getMessage() for r in caplog.records]
    assert resumed.extracted and counted.frames == 4 * 2, said  # clips 3-6
    assert any("clips 3 to 3 no longer match their checksum" in line for line in said), said
    assert any(line.startswith("resuming extraction: 3 of 7 clips") for line in said), said
    one_shot = extract(data, tmp_path / "one-shot", batch_size=2)
    npy = "features.npy"
    assert (resumed.path / npy).read_bytes() == (one_shot.path / npy).read_bytes()


def test_a_torn_journal_line_is_cut_off(tmp_path):
    shape = (4, 1, 3)
    with resume.ResumableEntry(tmp_path, "k", shape) as pending:
        pending.write(0, np.ones((2, 3), np.float32))
        pending.commit_chunk({"start": 0, "end": 2, "frames": 2, "clips": []})
        pending.commit_chunk({"start": 2, "end": 3, "frames": 2, "clips": []})
    journal = tmp_path / ".pending-k" / "journal.jsonl"
    whole = journal.stat().st_size
    with open(journal, "ab") as out:
        out.write(b'{"start": 3, "end": 4, "fra')  # a crash in the middle of a line
    reopened = resume.ResumableEntry(tmp_path, "k", shape)
    assert reopened.reused and [c["end"] for c in reopened.chunks] == [2, 3]
    assert journal.stat().st_size == whole  # cut back to the whole lines
    assert reopened.committed() == (3, 0) and reopened.frames_done == 2
    np.testing.assert_array_equal(np.load(reopened.array_path)[:2], np.ones((2, 1, 3)))
    reopened.commit_chunk({"start": 3, "end": 4, "frames": 3, "clips": []})
    assert resume.ResumableEntry(tmp_path, "k", shape).clips_done == 4

    other = resume.ResumableEntry(tmp_path, "k", (5, 1, 3))  # another shape: started afresh
    assert not other.reused and other.chunks == [] and journal.stat().st_size == 0


def test_a_damaged_journal_or_array_is_said_before_its_clips_are_extracted_again(tmp_path, caplog):
    """A whole journal line that does not read, or an array cut short: every kept chunk was
    thrown away with an INFO line ('a chunk line left unfinished') or none (a user probe)."""
    shape = (4, 1, 3)
    with resume.ResumableEntry(tmp_path, "k", shape) as pending:
        pending.write(0, np.ones((2, 3), np.float32))
        pending.commit_chunk({"start": 0, "end": 2, "frames": 2, "clips": []})
        pending.commit_chunk({"start": 2, "end": 3, "frames": 2, "clips": []})
    folder = tmp_path / ".pending-k"
    journal = folder / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(lines[0] + b"garbage\n")
    caplog.set_level(logging.INFO, logger="core.features")
    reopened = resume.ResumableEntry(tmp_path, "k", shape)
    assert [c["end"] for c in reopened.chunks] == [2]
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "a line after clip 2 is damaged: the clips from there on are extracted" in caplog.text
    caplog.clear()
    array = folder / "features.npy"
    os.truncate(array, array.stat().st_size - 4)
    started = resume.ResumableEntry(tmp_path, "k", shape)
    assert not started.reused and started.chunks == []
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "its features array is not the one expected (truncated" in caplog.text


# --- the command, with a real SIGINT ------------------------------------------------------------

NATIVE_LOG = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} )")


def start_command(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "VGGFACE_WEIGHTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), "--no-progress", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_a_chunk(child: subprocess.Popen, root: Path, deadline: float) -> Path:
    """The journal of the child's pending entry, once it holds a committed chunk."""
    while True:
        for journal in root.glob(".pending-*/journal.jsonl"):
            try:
                if journal.stat().st_size:
                    return journal
            except FileNotFoundError:  # published meanwhile
                pass
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"no chunk committed: {child.communicate()[1][-3000:]}")
        time.sleep(0.05)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])  # SIGTERM: docker stop, Slurm
def test_ctrl_c_in_the_extract_command_says_what_it_kept_and_the_rerun_finishes(
    data, tmp_path, counted, monkeypatch, caplog, capsys, stop
):
    """SIGTERM ended the command at once, saying nothing (probe); it stops as Ctrl-C does."""
    cache = tmp_path / "cache"
    flags = ["--data", str(data), "--cache-dir", str(cache), "--frames", "3"]
    flags += ["--batch-size", "3", "--no-face-crop", "--precision", "float32"]
    child = start_command(*flags)
    try:
        journal = wait_for_a_chunk(child, cache / "features", deadline=time.monotonic() + 300)
        child.send_signal(stop)
        out, err = child.communicate(timeout=600)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 128 + stop, err[-3000:]  # SIGTERM: 143, as schedulers read it
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and not NATIVE_LOG.match(line)]
    found = INTERRUPTED.match(lines[-1])
    assert found, lines[-3:]
    done, total, path, rest = found.groups()
    assert int(total) == 7 and int(rest) == 7 - int(done) and 1 <= int(done) < 7
    assert path == str(journal.parent)

    # The rerun, the command's main() here (the same backbone, counted): only the rest computed.
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    for name in ("TF_CPP_MIN_LOG_LEVEL", "OPENCV_FFMPEG_LOGLEVEL"):  # main() sets them if unset
        monkeypatch.setenv(name, os.environ.get(name, "0"))
    import extract as command

    caplog.set_level(logging.INFO, logger="core.features")
    capsys.readouterr()
    assert command.main([*flags, "--no-progress"]) == 0
    assert f"resuming extraction: {done} of 7 clips already done in {path}" in caplog.messages
    out = capsys.readouterr().out
    assert re.search(r"^cache: +extracted in ", out, re.M)
    # its rate spans the runs: said (it read as this run's alone)
    kept = f"{done} clip" + ("s" if int(done) > 1 else "")
    assert re.search(rf"^frames/s: .*, with the {kept} kept from interrupted runs\)$", out, re.M)
    assert not Path(path).exists()
    usable_left = 7 - int(done) - (int(done) < 2)  # the second clip does not decode
    assert counted.frames == 3 * usable_left

    counted.frames = 0
    one_shot = extract(data, tmp_path / "one-shot", frames_per_clip=3, batch_size=3)
    assert counted.frames == 18
    resumed = cache / "features" / one_shot.fingerprint / "features.npy"
    assert resumed.read_bytes() == (one_shot.path / "features.npy").read_bytes()


def test_the_sweeps_features_line_says_the_clips_kept_from_interrupted_runs(
    data, tmp_path, counted, monkeypatch, capsys
):
    """ "24 clips x 8 frames, extracted in 20.5s" after a resume read as the rate of all 24
    (probe); extract.py said it, the sweep's line did not."""
    from core.features import FeatureOptions
    from experiments.commands.features import load_features

    source = load_dataset(data).source_clips
    stop_at(monkeypatch, source[5].clip_id)
    with pytest.raises(ExtractionInterrupted) as caught:
        extract(data, tmp_path / "cache", batch_size=2, precision="float32")
    monkeypatch.setattr(pipeline, "decoder", DECODER)
    options = FeatureOptions(
        data=data, cache_dir=tmp_path / "cache", frames=2, face_crop=False, precision="float32"
    )
    options = dataclasses.replace(options, batch_size=2)
    capsys.readouterr()
    load_features(dataclasses.replace(options, progress=False))
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("features:")]
    done = caught.value.done
    assert re.search(
        rf"extracted in [\d.]+s \([\d.]+ frames/s, decoding and network; {done} of the entry's 7 "
        r"clips kept from interrupted runs\), "
        "cache ",
        line,
    )
    load_features(dataclasses.replace(options, progress=False))  # reused: nothing to say
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("features:")]
    assert ", reused, cache " in line


def assert_reused(first: FeatureSet, again: FeatureSet, touched: str) -> None:
    """``again`` holds ``first``'s clips in its order, the unchanged ones' rows bit for bit, the
    ``touched`` clip's computed again (float32's last bits: another batch)."""
    ids = [c.clip_id for c in first.clips]
    assert [c.clip_id for c in again.clips] == ids
    for row, clip_id in enumerate(ids):
        if clip_id == touched:
            np.testing.assert_allclose(again.features[row], first.features[row], rtol=1e-5)
        else:
            np.testing.assert_array_equal(again.features[row], first.features[row])


def test_an_entry_of_the_folder_before_a_file_changed_is_named(
    data, tmp_path, counted, caplog
) -> None:
    """A touched file made another key, and every clip was extracted again beside the old entry
    with nothing said but a new fingerprint (probe): the entry, what changed and that it is
    kept are said, and the unchanged clips take their features from it (probe: a database
    extracted again for one file)."""
    first = extract(data, tmp_path / "cache")
    source = load_dataset(data).source_clips
    touched = source[0]  # a folder of frames: one of them touched
    frame = sorted(touched.path.iterdir())[0]
    os.utime(frame, ns=(frame.stat().st_atime_ns, 10**18))
    caplog.set_level(logging.WARNING, logger="core.features")
    computed = counted.frames
    again = extract(data, tmp_path / "cache")
    assert again.extracted and again.fingerprint != first.fingerprint
    said = [r.getMessage() for r in caplog.records if "changed since" in r.getMessage()]
    assert len(said) == 1
    assert said[0].startswith(
        f"{data} changed since cache entry {first.fingerprint} ({first.manifest['created']}): "
        f"1 clip changed ({touched.clip_id}), 0 clips added, 0 clips removed; the features of "
        "its 5 unchanged clips are reused, the other 2 clips extracted where they decode"
    )
    assert counted.frames - computed == 2  # the touched clip's frames alone (the broken: none)
    assert again.manifest["reused_clips"] == 5 and again.skipped == first.skipped
    assert_reused(first, again, touched.clip_id)
    assert said[0].endswith("kB): delete it once that state of the data is gone")
    shutil.rmtree(source[1].path)  # the broken clip: removed; the latest entry is compared
    caplog.clear()
    extract(data, tmp_path / "cache")
    (said,) = [r.getMessage() for r in caplog.records if "changed since" in r.getMessage()]
    assert f"cache entry {again.fingerprint} " in said
    assert f"0 clips changed, 0 clips added, 1 clip removed ({source[1].clip_id})" in said
    caplog.clear()
    extract(data, tmp_path / "cache", frames_per_clip=3)  # other options: another entry, unsaid
    assert not [r for r in caplog.records if "changed since" in r.getMessage()]
    # the same data, its entry damaged: rebuilt, not said to be of data since changed (review)
    entry = tmp_path / "cache" / "features" / extract(data, tmp_path / "cache").fingerprint
    manifest = json.loads((entry / "manifest.json").read_text())
    (entry / "manifest.json").write_text(json.dumps({**manifest, "checksum": "sha256:0"}))
    caplog.clear()
    assert extract(data, tmp_path / "cache").extracted
    assert not [r for r in caplog.records if "changed since" in r.getMessage()]


def test_a_copy_that_changed_reuses_its_originals_entry(data, tmp_path, counted, caplog) -> None:
    """A copy made with its files' times (cp -p) used its original's entry; once one of its
    files changed, it had no entry of its own to follow, and every clip was extracted again
    (probe V): its unchanged clips take their features from the original's entry."""
    first = extract(data, tmp_path / "cache")
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)  # copy2: times kept
    computed = counted.frames
    assert not extract(copy, tmp_path / "cache").extracted  # the original's entry, as it is
    touched = load_dataset(copy).source_clips[0]
    frame = sorted(touched.path.iterdir())[0]
    os.utime(frame, ns=(frame.stat().st_atime_ns, 10**18))
    caplog.set_level(logging.WARNING, logger="core.features")
    again = extract(copy, tmp_path / "cache")
    assert again.extracted and counted.frames - computed == 2  # the touched clip's alone
    (said,) = [r.getMessage() for r in caplog.records if "whose cache entry" in r.getMessage()]
    assert said.startswith(
        f"{copy} differs from {data.resolve()}, whose cache entry {first.fingerprint} "
        f"({first.manifest['created']}): 1 clip changed ({touched.clip_id}), 0 clips added, 0 "
        "clips removed; the features of its 5 unchanged clips are reused"
    ), said
    assert said.endswith("kB)")  # the original's: not to be deleted
    assert_reused(first, again, touched.clip_id)


def test_an_extraction_reusing_an_earlier_entry_resumes_after_ctrl_c(
    data, tmp_path, counted, monkeypatch
) -> None:
    """Ctrl-C in an extraction that takes unchanged clips from the entry of the data's earlier
    state: the rerun resumes it, and no clip but the changed one is run through the network."""
    first = extract(data, tmp_path / "cache", batch_size=2)
    source = load_dataset(data).source_clips
    touched = source[5]
    frame = sorted(touched.path.iterdir())[0]
    os.utime(frame, ns=(frame.stat().st_atime_ns, 10**18))
    computed = counted.frames
    stop_at(monkeypatch, touched.clip_id)
    monkeypatch.setattr(pipeline, "REUSED_CHUNK_SECONDS", 0.0)  # a chunk after each reused clip
    with pytest.raises(ExtractionInterrupted) as caught:
        extract(data, tmp_path / "cache", batch_size=2)
    assert caught.value.done == 5  # clips 0-4: reused, the broken one skipped again
    monkeypatch.setattr(pipeline, "decoder", DECODER)
    again = extract(data, tmp_path / "cache", batch_size=2)
    assert again.manifest["resumed_clips"] == 5 and counted.frames - computed == 2
    # the reused among them still counted as such: the rate is of the 2 frames computed (review)
    assert again.manifest["reused_clips"] == 5  # 0, 2, 3, 4 before the stop, 6 after
    assert again.manifest["frames_per_second"] == pytest.approx(
        2 / again.manifest["extract_seconds"], rel=0.01
    )
    assert_reused(first, again, touched.clip_id)


def test_a_disk_that_fills_while_features_are_written_is_one_error_and_the_rerun_resumes(
    data, tmp_path, counted, monkeypatch
):
    """Written through a mapped window, rows that found the disk full killed the process with
    SIGBUS, nothing said (probe: the cache on a tmpfs another program filled). Written with
    ``pwrite``, the disk's ENOSPC is one error naming it; the chunks finished are kept and the
    rerun resumes after them, to the one-shot extraction's bytes."""
    import errno

    from core.data.clips import DataError
    from core.features import store

    one_shot = extract(data, tmp_path / "one-shot", batch_size=2)
    real, writes = os.pwrite, []

    def fills_up(fd, data, offset):
        writes.append(len(data))
        if len(writes) == 4:  # past the first chunks: half of it fits, then nothing
            return real(fd, data[: len(data) // 2], offset)
        if len(writes) == 5:  # a write that takes no byte: the disk full too, not a loop
            return 0
        if len(writes) > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(store.os, "pwrite", fills_up)
    with pytest.raises(DataError) as caught:
        extract(data, tmp_path / "cache", batch_size=2)
    pending = tmp_path / "cache" / "features" / f".pending-{one_shot.fingerprint}"
    assert str(caught.value) == (
        f"{pending}: no space left on the device as the features were written (No space left "
        "on device): free space and run the same command again (it resumes after the last "
        "chunk finished)"
    )
    assert len(writes) == 5 and pending.is_dir()  # the part write went on, then stopped
    monkeypatch.setattr(store.os, "pwrite", real)
    counted.frames = 0
    resumed = extract(data, tmp_path / "cache", batch_size=2)
    assert 0 < counted.frames < 12  # only the clips not finished before
    npy = "features.npy"
    assert (resumed.path / npy).read_bytes() == (one_shot.path / npy).read_bytes()
