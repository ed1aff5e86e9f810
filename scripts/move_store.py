"""Point a moved or copied SQLite tracking store at its artifacts' new place.

MLflow records each experiment's, run's and model version's artifact folder as an absolute path
when it is made, so a work folder (``mlflow.db`` beside ``mlruns/``) copied to a colleague, or
moved, still reads the old folder's artifacts: predict.py says "its artifact store ... no longer
holds it", and a registered model fails to load. This rewrites every such path under ``--from``
to the same path under ``--to`` (default: the database's own folder), in the store's
experiments, runs, model versions and logged models, in one transaction; nothing else changes::

    cp -a /home/me/work /data/handoff      # mlflow.db and mlruns/ (and optuna.db) together
    python scripts/move_store.py /data/handoff/mlflow.db --from /home/me/work

Then ``--tracking-uri sqlite:////data/handoff/mlflow.db`` scores and loads from the copy alone.
Statuses: 0 rewritten, or under ``--to`` already; 2, nothing changed, for a database that is no
MLflow SQLite store, holds no path under ``--from`` (it names where its paths are), or would
name no run folder that is there under ``--to``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from pathlib import Path
from urllib.parse import urlparse

from core.interrupts import stopped_by_ctrl_c

# MLflow's tables and columns that hold artifact locations (MLflow 3: logged_models too)
COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)


SELECTED = "SELECT artifact_uri FROM runs WHERE artifact_uri LIKE '%/artifacts'"


def under(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or inside it (``/a/bc`` is not inside ``/a/b``)."""
    return path == folder or path.startswith(f"{folder.rstrip('/')}/")


class NothingUnder(ValueError):
    """The store names no artifact folder under the old folder: nothing was changed."""


def move(database: Path, old: str, new: str) -> dict[str, int]:
    """Rewrite the artifact paths under ``old`` (a folder: ``/a/bc`` is not under ``/a/b``;
    plain or ``file://``) to ``new`` in ``database``, those already under ``new`` left as they
    are (``new`` inside ``old`` moved twice); the rows changed per table, in one transaction,
    none (:class:`NothingUnder`) where no experiment's or run's path was under ``old``."""
    old, new = old.rstrip("/") or "/", new.rstrip("/") or "/"
    inside = new != old and under(new, old)  # rows already under it were moved before
    connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=rw", uri=True)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        if not {"experiments", "runs"} <= tables:
            raise ValueError(f"{database}: no MLflow tracking store (no experiments and runs)")
        changed: dict[str, int] = {}
        with connection:  # one transaction: all or nothing
            for table, column in COLUMNS:
                if table in tables:
                    count = _rewrite(connection, table, column, old, new, inside)
                    changed[table] = max(changed.get(table, 0), count)
            if not changed["experiments"] and not changed["runs"]:
                raise NothingUnder(held(connection))  # rolled back
            folders = [Path(urlparse(uri).path) for (uri,) in connection.execute(SELECTED)]
            if folders and not any(f.is_dir() for f in folders):  # a mistyped --to (probe)
                raise ValueError(
                    f"no run's artifact folder would be under {new} (a run's: {folders[0]}): "
                    "give the folder the artifacts are in now; nothing changed"
                )
        return changed
    except sqlite3.OperationalError as err:  # locked, read-only, no such folder, a full disk
        from experiments.stores.wal import FOLDER_WORDS, folder_refuses

        why = str(err)  # "disk I/O error" alone on a full disk, or a read-only one (probe)
        if any(words in why for words in FOLDER_WORDS):
            why = folder_refuses(Path(database).resolve().parent) or why
        raise ValueError(f"{database}: cannot be written ({why})") from None
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{database}: not a SQLite database MLflow wrote ({err})") from None
    finally:
        connection.close()


def _rewrite(
    connection: sqlite3.Connection, table: str, column: str, old: str, new: str, inside: bool
) -> int:
    """Rows of ``table`` whose ``column`` was under ``old`` and now is under ``new``; where
    ``new`` is inside ``old`` (``inside``), those under ``new`` already are left alone."""
    count = 0
    for scheme in ("", "file://"):
        before, after = scheme + old, scheme + new
        under = f"({column} = ? OR substr({column}, 1, ?) = ?)"
        keep = f" AND NOT {under}" if inside else ""
        count += connection.execute(
            f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE {under}{keep}",  # noqa: S608
            (after, len(before) + 1, before, len(before) + 1, before + "/")
            + ((after, len(after) + 1, after + "/") if inside else ()),
        ).rowcount
    return count


def held(connection: sqlite3.Connection) -> str:
    """One artifact folder the store names, to say where its paths are."""
    row = connection.execute("SELECT artifact_uri FROM runs LIMIT 1").fetchone()
    return row[0] if row else "none (no run)"


@stopped_by_ctrl_c("interrupted: nothing changed")  # one transaction, rolled back
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", type=Path, help="the moved store's mlflow.db")
    parser.add_argument("--from", dest="old", required=True, help="the folder it was in")
    parser.add_argument("--to", dest="new", help="the folder it is in now (default: its own)")
    args = parser.parse_args(argv)
    if not args.database.is_file():
        what = "a folder: give its mlflow.db" if args.database.is_dir() else "no such file"
        print(f"error: {args.database}: {what}", file=sys.stderr)
        return 2
    old = os.path.abspath(os.path.expanduser(args.old))
    new = os.path.abspath(os.path.expanduser(args.new)) if args.new else None
    new = new or str(args.database.resolve().parent)
    try:
        changed = move(args.database, old, new)
    except NothingUnder as err:
        if under(str(err), new):  # run again
            print(f"{args.database}: its artifact paths are under {new} already")
            return 0
        print(
            f"error: {args.database} names no artifact folder under {old} (a run's: {err}): "
            "nothing changed",
            file=sys.stderr,
        )
        return 2
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    said = ", ".join(f"{n} {table.replace('_', ' ')}" for table, n in changed.items() if n)
    print(f"{args.database}: artifact paths under {old} now under {new} ({said})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
