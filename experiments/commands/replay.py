"""A finished study's closing, printed again without opening its stores while they are unchanged.

The sweep on a finished study prints the data summary, then the study line and the comparison,
which needs MLflow and Optuna imported and both stores queried: about 4 s, most of it imports.
So a sweep that ends with its study finished records what the same command will print after the
data summary (:func:`remember`): it stamps both stores (a SQLite database and its write-ahead
log: their sizes and the SHA-256 of their bytes), renders the lines from them with reads only,
stamps them again, and records the lines only if nothing wrote in between. The same command then
prints that record while both stores' bytes are still the stamped ones (:func:`replay`),
importing neither MLflow nor Optuna, and while its content matches the SHA-256 it carries (a
byte flipped or a figure edited since: the full path runs). Any write to either store (a trial
of another worker, a tag set or a run deleted in the UI) changes its bytes: the full path runs
and records again.

A record is keyed by everything else the closing depends on: the command's resolved options, the
working folder (relative SQLite paths), ``MLFLOW_TRACKING_URI`` when no ``--tracking-uri`` is
given (MLflow sets it itself once a store is open) and, without either, which default store
MLflow picks (``./mlruns`` once it holds a file store's experiments, else ``mlflow.db``:
:func:`_default_tracking_store`), the features' fingerprints,
and the sizes and times of this package's sources and of the entry files of the libraries that
render the closing. What it cannot vouch for is never recorded: stores that are servers
(PostgreSQL, an MLflow server), ``--verbose`` (the libraries' own lines), several settings (folds
or test data), a cross-domain study. Records live in the cache folder, under ``closings/``, the
newest :data:`KEPT` of them. Both stores are read whole at each replay: SHA-256 ran at 1.3 GB/s
on the AVX-512 EPYC of bench/RESULTS.md, so a store of 500 MB adds about 0.4 s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path

from core.data.layouts import folds
from core.device import keras_backend
from core.features import FeatureSet
from experiments.commands.sweep import SweepConfig

log = logging.getLogger(__name__)
FORMAT = 1  # of the record
KEPT = 256  # records kept in the cache folder, the newest
LIBRARIES = ("mlflow", "optuna", "pandas", "sqlalchemy")  # they render or read the closing
PACKAGES = ("core", "experiments", "heads")


def eligible(config: SweepConfig) -> bool:
    """Whether the command's closing can be recorded: one set of features, no library lines."""
    evaluation = config.evaluation
    one_fold = config.features.fold is not None or not folds(config.features.protocol)
    return not (
        config.verbose
        or config.then
        or evaluation.cross_domain
        or evaluation.test_data is not None
        or not one_fold
    )


class Replayed(Exception):
    """Raised where the features are missing from the cache and the study they would serve is
    finished, its closing printed again (:func:`replay` with ``missing``): nothing to extract."""


def replay(config: SweepConfig, fingerprint: str, dataset: str, missing: bool = False) -> bool:
    """Print the recorded closing of this command (its features: cache entry ``fingerprint`` of
    the clips ``dataset`` fingerprints) and return True while both stores are as recorded; False
    (nothing printed) when there is no record, it is unreadable or stale. ``missing``: the cache
    entry is not there, which is said first (a finished study does not extract its features
    again to print its closing, hours on a real database)."""
    try:
        record = _read(config, fingerprint, dataset)
        files, stamp, lines = record["files"], record["stores"], record["lines"]
        if not isinstance(lines, list) or stores_stamp(files, stamp) != stamp:
            return False
        if not all(Path(line).is_file() for line in _report_files(lines)):
            return False  # deleted by hand: the full path writes it again (it was named: probe)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False  # none yet, or unreadable: the full path writes it again
    if missing:
        print(missing_line(fingerprint), flush=True)
    print("\n".join(str(line) for line in lines), flush=True)
    return True


def _report_files(lines: list[object]) -> list[str]:
    """The local report files a closing's lines name (``report: /path/report.html``)."""
    named = (
        str(line).removeprefix("report: ") for line in lines if str(line).startswith("report: ")
    )
    return [where for where in named if os.path.isabs(where)]


def missing_line(fingerprint: str) -> str:
    """What a finished study's rerun says of its features missing from the cache."""
    return (
        f"features: cache entry {fingerprint[:12]} is not in the cache (or not usable), and not "
        "extracted: the study is finished (a trial to run would extract them)"
    )


def recorded_study(config: SweepConfig, fingerprint: str, dataset: str) -> str | None:
    """The study this command's record names, stale or not (its stores written since), or None:
    a finished study whose features left the cache is found by it without extracting them."""
    try:
        study = _read(config, fingerprint, dataset).get("study")
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    return study if isinstance(study, str) else None


def _read(config: SweepConfig, fingerprint: str, dataset: str) -> dict:
    """The command's record, its checksum verified: a ValueError for one whose content changed
    since it was written (a byte flipped, a figure edited), which is then not printed."""
    record = json.loads(_record_path(config, fingerprint, dataset).read_text())
    if record.get("sha256") != _digest(record):
        raise ValueError("the record's checksum does not match its content")
    return record


def _digest(record: dict) -> str:
    """SHA-256 of a record's content (all but its checksum), as written."""
    content = {key: value for key, value in record.items() if key != "sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def remember(
    config: SweepConfig,
    features: FeatureSet,
    files: list[str],
    lines: list[str],
    stamp: list,
    study: str,
) -> None:
    """Record ``lines`` of ``study``, rendered from the store ``files`` (SQLite databases,
    absolute paths) after they were stamped ``stamp`` (:func:`stores_stamp`), if they still
    are."""
    if stores_stamp(files, stamp) != stamp:
        log.info("a store changed while the closing was read: not recorded")
        return
    path = _record_path(config, features.fingerprint, features.dataset_fingerprint)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"files": files, "stores": stamp, "lines": lines, "study": study}
        temporary.write_text(json.dumps({**record, "sha256": _digest(record)}))
        os.replace(temporary, path)  # a reader sees the old record or the new one, whole
    finally:
        temporary.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # another sweep may be pruning too
        records = sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in records[:-KEPT]:
            old.unlink(missing_ok=True)


def stores_stamp(files: list[str], expected: list | None = None) -> list | None:
    """For each SQLite database: its path, its and its write-ahead log's sizes, and the SHA-256
    of their bytes; None when one is missing. With ``expected``, sizes that differ from its
    answer at once (an empty list) without reading the files."""
    sizes = []
    for file in files:
        path, wal = Path(file), Path(f"{file}-wal")
        if not path.is_file():
            return None
        sizes.append([file, path.stat().st_size, wal.stat().st_size if wal.is_file() else 0])
    if expected is not None and sizes != [e[:3] for e in expected]:
        return []
    stamp = []
    for file, size, wal_size in sizes:
        digest = hashlib.sha256()
        for part, length in ((Path(file), size), (Path(f"{file}-wal"), wal_size)):
            if length:
                with part.open("rb") as f:
                    digest.update(hashlib.file_digest(f, "sha256").digest())
        stamp.append([file, size, wal_size, digest.hexdigest()])
    return stamp


def _record_path(config: SweepConfig, fingerprint: str, dataset: str) -> Path:
    key = json.dumps(
        [
            FORMAT,
            repr(dataclasses.replace(config, verbose=False)),
            os.getcwd(),
            # the flag wins over the variable, which MLflow sets itself once it opened the store
            "" if config.tracking_uri else os.environ.get("MLFLOW_TRACKING_URI", ""),
            _default_tracking_store(config),
            fingerprint,
            dataset,
            keras_backend(),  # a study of the other backend has another name
            _code_stamp(),
        ]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return config.features.cache_root / "closings" / f"{digest}.json"


def _default_tracking_store(config: SweepConfig) -> str:
    """Which store MLflow opens when neither ``--tracking-uri`` nor ``MLFLOW_TRACKING_URI``
    names one: ``./mlruns`` once a numbered experiment folder there has a ``meta.yaml`` (a file
    store an older MLflow wrote), else ``mlflow.db`` (MLflow 3's rule, read without MLflow)."""
    if config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"):
        return ""
    try:
        with os.scandir("mlruns") as entries:
            for entry in entries:
                if entry.is_dir() and entry.name.isdigit():
                    if os.path.lexists(os.path.join(entry.path, "meta.yaml")):
                        return "mlruns"
    except OSError:
        pass
    return "mlflow.db"


def _code_stamp() -> list[str]:
    """Size and modification time of every source file of this package and of the libraries'
    entry files: an edited module or an upgraded library makes another key."""
    root = Path(__file__).resolve().parents[2]
    files = sorted(p for name in PACKAGES for p in (root / name).rglob("*.py") if p.is_file())
    for library in LIBRARIES:
        spec = importlib.util.find_spec(library)  # found, not imported
        if spec is not None and spec.origin:
            files.append(Path(spec.origin))
    return [f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
