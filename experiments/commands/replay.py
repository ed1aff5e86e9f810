"""A finished study's closing, printed again without opening its stores while they are unchanged.

The sweep on a finished study prints the data summary, then the study line and the comparison,
which needs MLflow and Optuna imported and both stores queried: about 4 s, most of it imports.
So a sweep that ends with its study finished records what the same command will print after the
data summary (:func:`remember`), with each store's size and a SHA-256 of its bytes (a SQLite
database and its write-ahead log). The same command then prints that record while both stores'
bytes are still the recorded ones (:func:`replay`), importing neither MLflow nor Optuna. Any write
to either store (a trial of another worker, a tag set or a run deleted in the UI) changes its
bytes: the full path runs and records again.

A record is keyed by everything else the closing depends on: the command's resolved options, the
working folder (relative SQLite paths, MLflow's default store), ``MLFLOW_TRACKING_URI``, the
features' fingerprints, and the sizes and times of this package's sources and of the libraries
that render the closing. What it cannot vouch for is never recorded: stores that are servers
(PostgreSQL, an MLflow server), ``--verbose`` (the libraries' own lines), several settings (folds
or test data), a cross-domain study. Records live in the cache folder, under ``closings/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path

from core.data.layouts import folds
from core.features import FeatureSet
from experiments.commands.sweep import SweepConfig

log = logging.getLogger(__name__)
FORMAT = 1  # of the record
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


def replay(config: SweepConfig, features: FeatureSet) -> bool:
    """Print the recorded closing of this command and return True while both stores are as
    recorded; False (nothing printed) when there is no record, it is unreadable or stale."""
    try:
        record = json.loads(_record_path(config, features).read_text())
        files, stamp, lines = record["files"], record["stores"], record["lines"]
        if not isinstance(lines, list) or _stores_stamp(files, stamp) != stamp:
            return False
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False  # none yet, or unreadable: the full path writes it again
    print("\n".join(str(line) for line in lines), flush=True)
    return True


def remember(config: SweepConfig, features: FeatureSet, files: list[str], lines: list[str]) -> None:
    """Record ``lines`` as this command's closing while the store ``files`` (SQLite databases,
    absolute paths) hold what they hold now. A cache folder that cannot be written is logged."""
    stamp = _stores_stamp(files)
    if stamp is None:
        return
    path = _record_path(config, features)
    record = {"files": files, "stores": stamp, "lines": lines}
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(record))
        os.replace(temporary, path)  # a reader sees the old record or the new one, whole
    except OSError as err:
        log.info("the closing is not recorded for a fast rerun: %s", err)


def _record_path(config: SweepConfig, features: FeatureSet) -> Path:
    key = json.dumps(
        [
            FORMAT,
            repr(dataclasses.replace(config, verbose=False)),
            os.getcwd(),
            os.environ.get("MLFLOW_TRACKING_URI", ""),
            features.fingerprint,
            features.dataset_fingerprint,
            _code_stamp(),
        ]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return config.features.cache_root / "closings" / f"{digest}.json"


def _code_stamp() -> list[str]:
    """Size and modification time of every source file of this package and of the libraries'
    entry files: an edited module or an upgraded library makes another key."""
    root = Path(__file__).resolve().parents[2]
    files = sorted(p for name in PACKAGES for p in (root / name).rglob("*.py"))
    for library in LIBRARIES:
        spec = importlib.util.find_spec(library)  # found, not imported
        if spec is not None and spec.origin:
            files.append(Path(spec.origin))
    return [f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]


def _stores_stamp(files: list[str], expected: list | None = None) -> list | None:
    """For each SQLite database: its path, its and its write-ahead log's sizes, and the SHA-256
    of their bytes; None when one is missing. With ``expected``, a size that differs from it
    answers at once (an empty list) without reading the files."""
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
