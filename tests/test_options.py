"""Each feature option is defined once: a field of FeatureOptions, whose flag is generated."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

import pytest

from core.features.request import FeatureOptions
from experiments.commands import extract, sweep
from experiments.commands.options import (
    FEATURE_FLAGS,
    NOT_FLAGS,
    add_feature_arguments,
    feature_options,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def flags_of(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings if s.startswith("--")}


def test_every_feature_option_has_one_flag_and_its_default(monkeypatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)  # as captured: no progress bar
    fields = {f.name: f.default for f in dataclasses.fields(FeatureOptions)}
    assert set(FEATURE_FLAGS) == set(fields) - set(NOT_FLAGS)
    parser = argparse.ArgumentParser()
    add_feature_arguments(parser)
    defaults = FeatureOptions(progress=False)  # the bar: only on a terminal
    assert feature_options(parser.parse_args([])) == defaults
    given = feature_options(
        parser.parse_args(
            ["--data", "d", "--fold", "2", "--no-face-crop", "--no-database-boxes", "--frames", "3"]
        )
    )
    assert given == dataclasses.replace(
        defaults, data=Path("d"), fold=2, face_crop=False, database_boxes=False, frames=3
    )


def test_both_commands_take_the_same_data_flags_and_the_readme_lists_them() -> None:
    generated = {"--" + name.replace("_", "-") for name in FEATURE_FLAGS}
    for parse in (sweep.parse_args, extract.parse_args):
        config = parse(["--split-seed", "4", "--precision", "float32"])
        options = config.features if hasattr(config, "features") else feature_options(config)
        assert (options.split_seed, options.precision) == (4, "float32")
    # --no-progress: both (a sweep's extraction drew its bar into a batch job's log)
    assert not sweep.parse_args(["--no-progress"]).features.progress
    assert extract.parse_args(["--no-progress"]).no_progress
    # the bar only on a terminal: piped into a file, its redrawn lines filled it (probe)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys.stderr, "isatty", lambda: False)
        assert not sweep.parse_args([]).features.progress
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys.stderr, "isatty", lambda: True)
        assert sweep.parse_args([]).features.progress
        assert feature_options(extract.parse_args([])).progress
        assert not sweep.parse_args(["--no-progress"]).features.progress
    listed = re.search(r"Both commands take the same data flags \(([^)]*)\)", README.read_text())
    assert listed, "README: the sentence that lists the data flags"
    named = {
        flag.replace("[no-]", "").replace("--no-", "--")
        for flag in re.findall(r"--[\[\]a-z-]+", listed.group(1))
    }
    assert named == generated


@pytest.mark.parametrize("command", [extract, sweep])
@pytest.mark.parametrize(("flag", "value"), [("--frames", "0"), ("--batch-size", "-2")])
def test_a_count_below_one_is_refused_by_its_flag_name(command, flag, value, capsys) -> None:
    """Said with the flag the user typed (not the field frames_per_clip), before any data."""
    with pytest.raises(SystemExit) as stop:
        command.parse_args([flag, value])
    assert stop.value.code == 2
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert said.endswith(f"error: {flag} must be at least 1, got {value}")


@pytest.mark.parametrize("command", [extract, sweep])
def test_a_bad_seed_or_cache_folder_is_refused_by_its_flag_name(
    command, tmp_path, capsys, monkeypatch
):
    """--split-seed -1 was "synthetic seed must be ..."; a file as --cache-dir was "FILE/synthetic:
    Not a directory", after the flags were read; $VGGFACE_HEADS_CACHE the same, or blank (a
    folder " " made in the working one: probe FF)."""
    taken = tmp_path / "a-file"
    taken.write_text("")
    for argv, said, variable in (
        (["--split-seed", "-1"], "error: --split-seed must be at least 0, got -1", None),
        (["--cache-dir", str(taken)], f"error: --cache-dir {taken}: a file, not a folder", None),
        ([], f"$VGGFACE_HEADS_CACHE={taken}: a file; it names the cache's folder", str(taken)),
        ([], "error: $VGGFACE_HEADS_CACHE is ' ': name a folder, or unset it", " "),
    ):
        if variable is not None:
            monkeypatch.setenv("VGGFACE_HEADS_CACHE", variable)
        with pytest.raises(SystemExit) as stop:
            command.parse_args(argv)
        assert stop.value.code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].endswith(said)


@pytest.mark.parametrize("flag", ["--data", "--test-data", "--cache-dir", "--databases"])
def test_an_empty_path_is_refused_not_read_as_the_current_folder(flag, capsys) -> None:
    """``--data "$DATA"`` of a variable not set was Path(""): the current folder, read as a
    database (probe)."""
    tried = [(sweep, [flag, ""]), (extract, [flag, " "])][: 1 if flag == "--test-data" else 2]
    for command, argv in tried:
        with pytest.raises(SystemExit) as stop:
            command.parse_args(argv)
        assert stop.value.code == 2
        said = capsys.readouterr().err.strip().splitlines()
        assert len(said) == 1
        assert said[0].endswith(f"error: argument {flag}: an empty path: name a file or folder")


def test_an_empty_clip_to_score_is_refused(capsys) -> None:
    from experiments.commands import predict

    with pytest.raises(SystemExit) as stop:
        predict.parse_args(["--run", "abc", "clip.avi", ""])
    assert stop.value.code == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert said[-1].endswith("error: argument CLIP: an empty path: name a file or folder")


@pytest.mark.parametrize("command", [extract, sweep])
@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--face-detector", "haar"], "no frame is cropped (the synthetic set's default)"),
        (["--data", "d", "--no-face-crop", "--face-detector", "mtcnn"], "(--no-face-crop)"),
        (["--protocol", "ocim", "--fold", "2"], "a cross-domain study takes each database's own"),
        (["--protocol", "mi-c", "--subject-pattern", "(x)"], "--fold and --subject-pattern"),
    ],
)
def test_a_flag_that_would_be_ignored_is_refused(command, argv, said, capsys) -> None:
    """Options that change nothing in these combinations were dropped without a word."""
    with pytest.raises(SystemExit) as stop:
        command.parse_args(argv)
    assert stop.value.code == 2
    assert said in capsys.readouterr().err.strip().splitlines()[-1]


DATABASES = ("--db", "msu=/m", "--db", "replay-attack=/r", "--db", "casia=/c")


def test_a_database_file_with_a_protocol_no_layout_has_is_one_line(tmp_path) -> None:
    from experiments import domains

    listed = tmp_path / "databases.toml"
    listed.write_text('msu = { path = "/data/MSU-MFSD", protocol = "oulu" }\n')
    with pytest.raises(ValueError) as refused:
        domains.read_databases(listed)
    assert str(refused.value).startswith(f"--databases {listed}: database msu: no protocol 'oulu'")
    listed.write_text('oulu = "/data/OULU-NPU:oulu-p2"\n')  # --db's form: "no such folder" later
    with pytest.raises(ValueError) as refused:
        domains.read_databases(listed)
    assert str(refused.value) == (
        f"--databases {listed}: entry 'oulu': '/data/OULU-NPU:oulu-p2' is no folder; a protocol "
        'is given as oulu = { path = "/data/OULU-NPU", protocol = "oulu-p2" }'
    )
    home = tmp_path / "home"  # a real folder named with a ':', under ~ (review)
    (home / "OULU:v2").mkdir(parents=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        listed.write_text('oulu = "~/OULU:v2"\n')
        assert domains.read_databases(listed)["oulu"].path == home / "OULU:v2"
    listed.write_text("oulu = 5\n")  # neither a path nor a table: the message's braces balance
    with pytest.raises(ValueError) as refused:
        domains.read_databases(listed)
    assert str(refused.value) == (
        f"--databases {listed}: entry 'oulu' must be a path or {{ path = ..., protocol = ... }}"
    )
    # as Windows saves it: UTF-16 was a codec error naming no file; a BOM was "not TOML" (probe)
    listed.write_text('msu = "/data/MSU-MFSD"\n', encoding="utf-16")
    with pytest.raises(ValueError) as refused:
        domains.read_databases(listed)
    assert str(refused.value) == f"--databases {listed}: not UTF-8 text; save it as UTF-8"
    listed.write_text('msu = "/data/MSU-MFSD"\n', encoding="utf-8-sig")
    assert domains.read_databases(listed)["msu"].path == Path("/data/MSU-MFSD")


def test_database_paths_read_as_written(tmp_path, monkeypatch) -> None:
    """A relative path in the file is the file's folder's (it was the working directory's: the
    same file read from elsewhere named other folders); a folder whose name holds ':' is a
    path, not NAME=PATH:PROTOCOL (it was refused as an unknown protocol)."""
    from experiments import domains

    listed = tmp_path / "lists" / "databases.toml"
    listed.parent.mkdir()
    listed.write_text('msu = "../MSU-MFSD"\ncasia = { path = "/data/CASIA" }\n')
    monkeypatch.chdir("/")
    found = domains.read_databases(listed)
    assert found["msu"].path == listed.parent / "../MSU-MFSD"
    assert found["casia"].path == Path("/data/CASIA")
    odd = tmp_path / "msu:copy"
    odd.mkdir()
    assert domains.parse_database(f"msu={odd}").path == odd
    assert domains.parse_database(f"msu={odd}:msu").path == odd  # and its protocol after it
    assert domains.parse_database(f"msu={odd}:msu").protocol == "msu"


def test_a_detector_with_a_crop_is_taken(capsys) -> None:
    for argv in (
        ["--face-crop", "--face-detector", "haar"],
        ["--data", "d", "--face-detector", "haar"],
        ["--test-data", "t", "--face-crop", "--face-detector", "haar"],
        ["--protocol", "mi-c", *DATABASES, "--face-detector", "haar"],  # named databases
    ):
        assert sweep.parse_args(argv).features.face_detector == "haar"
    # the test data are cropped as the synthetic set is, by default not: the detector did nothing
    with pytest.raises(SystemExit):
        sweep.parse_args(["--test-data", "t", "--face-detector", "haar"])
    said = capsys.readouterr().err.strip()
    assert said.endswith(
        "cropped (the synthetic set's default): add --face-crop, or drop --face-detector"
    )


@pytest.mark.parametrize("command", ["sweep", "extract", "predict", "compare"])
def test_help_reads_at_a_terminals_width(command, capsys, monkeypatch) -> None:
    import importlib

    monkeypatch.setenv("COLUMNS", "100")
    module = importlib.import_module(f"experiments.commands.{command}")
    with pytest.raises(SystemExit) as done:
        module.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    usage = text.split("\n\n")[0]
    assert max(map(len, usage.splitlines())) <= 100  # a long choice list is named, not spelt out
    if "--protocol" in usage:
        listed = " ".join(text.split())  # listed in its help, wrapped at a space
        assert "--protocol NAME" in usage and "oulu-all, oulu-p1, oulu-p2" in listed
        assert "replay-attack-highdef," in text  # a name is never broken at its hyphens
    assert "``" not in text  # docstring markup stays in the docstring
    if command == "compare":
        assert "Exit status: 0 done; 2 bad input" in text and "Without --study" in text
    if command == "sweep":  # the defaults README alone had said (probe V), each once
        listed = " ".join(text.split())
        for default in ("(default: 12)", "(default: sqlite:///optuna.db)"):
            assert listed.count(default) == 1, default
        assert "(default: the study's; a new one's 60)" in listed
        assert "(default: True)" not in listed and "(default: [])" not in listed


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--out", "x"], "--out goes with --cross"),
        (["--list", "--all"], "--all widens a study's table"),
        (["--cross", "--all"], "--all widens a study's table"),
        (["--list", "--study", "s"], "--list lists every study: drop --study"),
        (["--study", "a", "--study", "b"], "several go with --cross"),
        (["--study", ""], "an empty name"),  # it showed the last study run (probe)
    ],
)
def test_compare_refuses_flags_its_view_would_drop(argv, said, capsys, tmp_path) -> None:
    from experiments.commands import compare

    with pytest.raises(SystemExit) as stop:  # before any store is opened or made
        compare.main([*argv, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert stop.value.code == 2
    assert said in capsys.readouterr().err.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["sweep", "extract", "compare", "predict"])
def test_a_refused_flag_is_one_line_without_the_usage(command, capsys) -> None:
    """argparse printed the whole usage first (the sweep's 27 lines), the error under it (probe);
    --help still prints it."""
    import importlib

    module = importlib.import_module(f"experiments.commands.{command}")
    run = getattr(module, "parse_args", None) or module.main
    argv = ["--run", "r", "clip.avi"] if command == "predict" else []  # its required ones
    with pytest.raises(SystemExit) as stop:
        run([*argv, "--no-such-flag"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines() == ["error: unrecognized arguments: --no-such-flag"]


def test_a_mistyped_choice_names_the_close_ones(capsys) -> None:
    """``--protocol ocmi`` listed all 31 protocols and settings, and none it was close to
    (probe); a choice close to none is refused with the list, as argparse does."""
    from experiments.commands.sweep import parse_args

    for typed, said in (
        ("ocmi", "'ocmi'; did you mean ocim-i, ocim, ocim-m or ocim-o? (--help lists them all)"),
        ("oulu_p1", "'oulu_p1'; did you mean oulu-p1, oulu-p2, oulu-p3 or oulu-p4?"),
    ):
        with pytest.raises(SystemExit):
            parse_args(["--protocol", typed])
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"error: argument --protocol: invalid choice: {said}")
    with pytest.raises(SystemExit):
        parse_args(["--protocol", "OULU-P1"])  # another case
    (line,) = capsys.readouterr().err.splitlines()
    assert "'OULU-P1'; did you mean oulu-p1, " in line
    with pytest.raises(SystemExit):
        parse_args(["--precision", "half"])
    (line,) = capsys.readouterr().err.splitlines()
    assert re.search(r"invalid choice: 'half' \(choose from .*bfloat16", line)  # argparse's
    assert "did you mean" not in line  # its words vary between Python versions (review)
    # a mistyped flag names the flag meant, as a mistyped value does (probe)
    for typed, said in (
        (["--trails", "2"], "--trails 2; did you mean --trials?"),
        (["--trials=2", "--heds=lstm"], "--heds=lstm; did you mean --heads?"),
        (["--zzzz"], "--zzzz"),
        (["--"], "--"),  # no flag: "--db" was said (review)
        (["--", "--trails"], "-- --trails"),  # after "--": values
    ):
        with pytest.raises(SystemExit):
            parse_args(typed)
        (line,) = capsys.readouterr().err.splitlines()
        assert line == f"error: unrecognized arguments: {said}"


def test_urllib3s_retry_lines_are_left_to_verbose(caplog) -> None:
    """While a tracking server was away, urllib3 said "Retrying (Retry(total=6, ...))" five
    times a call around the worker's own line on the outage, without --verbose (probe CC)."""
    import logging
    import socket

    import urllib3

    from experiments.commands.quiet import NOISY_LOGGERS, quiet_console

    with socket.socket() as free:  # a loopback port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    loggers = [logging.getLogger(name) for name in NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    caplog.set_level(logging.DEBUG, logger="experiments")  # the root handler: every record
    try:
        for verbose in (False, True):
            quiet_console(verbose)
            caplog.clear()
            pool = urllib3.PoolManager(retries=urllib3.Retry(total=2, backoff_factor=0))
            with pytest.raises(urllib3.exceptions.MaxRetryError):
                pool.request("GET", f"http://127.0.0.1:{port}/", timeout=2)
            retried = [r for r in caplog.records if r.getMessage().startswith("Retrying")]
            assert len(retried) == (2 if verbose else 0), verbose
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def test_mlflows_tracebacks_of_an_sql_store_error_are_left_to_verbose(tmp_path) -> None:
    """MLflow logs every database error of its SQL tracking store with its traceback before it
    raises it: some 360 lines before the closing's one line on a full disk (probe). Without
    --verbose they are not shown; the error is raised as before."""
    import logging
    import sqlite3

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from experiments.commands.quiet import NOISY_LOGGERS, quiet_console

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run = client.create_run("0").info.run_id
    with sqlite3.connect(tmp_path / "mlflow.db") as db:  # SQLite's own error at the next tag
        db.execute("DROP TABLE tags")
    store = logging.getLogger("mlflow.store.db.utils")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # what passes the logger's filters
    loggers = [logging.getLogger(name) for name in NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    store.addHandler(handler)
    try:
        for verbose in (False, True, False):
            quiet_console(verbose)
            seen.clear()
            with pytest.raises(MlflowException, match="no such table: tags"):
                client.set_tag(run, "k", "v")
            tracebacks = [r for r in seen if r.exc_info and "no such table" in str(r.exc_info[1])]
            assert len(tracebacks) == verbose, verbose
    finally:
        store.removeHandler(handler)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def test_a_tracking_servers_failure_is_said_by_its_cause(monkeypatch) -> None:
    """The trial line cut MLflow's message at 120 characters, before urllib3's cause, which its
    retry lines alone had said (left to --verbose since: review)."""
    import socket

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from experiments.stores.said import store_cause

    with socket.socket() as free:  # a loopback port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(MlflowException) as failed:
        MlflowClient(f"http://127.0.0.1:{port}").get_experiment("1")
    said = store_cause(failed.value)
    assert said.startswith("NewConnectionError: ") and "Connection refused" in said, said
    assert store_cause(ValueError("no cause given")) == "no cause given"
    # a connect timeout's cause comes after the connection's repr and a comma; a read timeout's
    # has none: MLflow's words and the URL go, the pool's line stays (review)
    timed_out = (
        "API request to http://h:5000/x failed with exception HTTPConnectionPool(host='h', "
        "port=5000): Max retries exceeded with url: /x (Caused by ConnectTimeoutError(<urllib3."
        "connection.HTTPConnection object at 0x7f>, 'Connection to h timed out. (connect "
        "timeout=120)'))"
    )
    said = "ConnectTimeoutError: Connection to h timed out. (connect timeout=120)"
    assert store_cause(MlflowException(timed_out)) == said
    read = "HTTPConnectionPool(host='h', port=5000): Read timed out. (read timeout=120)"
    assert (
        store_cause(
            MlflowException(f"API request to http://h:5000/x failed with timeout exception {read}")
        )
        == read
    )
