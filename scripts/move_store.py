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
Statuses: 0 rewritten, 2 for a database that is no MLflow SQLite store or holds no path under
``--from`` (it names where its paths are).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

# MLflow's tables and columns that hold artifact locations (MLflow 3: logged_models too)
COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)


def move(database: Path, old: str, new: str) -> dict[str, int]:
    """Rewrite the artifact paths under ``old`` (a folder: ``/a/b`` is not under ``/a``'s sibling
    ``/a/bc``; plain or ``file://``) to ``new`` in ``database``; the rows changed per table."""
    old, new = old.rstrip("/") or "/", new.rstrip("/") or "/"
    connection = sqlite3.connect(f"file:{database}?mode=rw", uri=True)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        if not {"experiments", "runs"} <= tables:
            raise ValueError(f"{database}: no MLflow tracking store (no experiments and runs)")
        changed: dict[str, int] = {}
        with connection:  # one transaction: all or nothing
            for table, column in COLUMNS:
                if table not in tables:
                    continue
                count = 0
                for scheme in ("", "file://"):
                    before, after = scheme + old, scheme + new
                    count += connection.execute(
                        f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # noqa: S608
                        f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                        (after, len(before) + 1, before, len(before) + 1, before + "/"),
                    ).rowcount
                changed[table] = max(changed.get(table, 0), count)  # rows, of its columns
        return changed
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{database}: not a SQLite database MLflow wrote ({err})") from None
    finally:
        connection.close()


def held(database: Path) -> str:
    """One artifact folder the store names, to say where its paths are."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        row = connection.execute("SELECT artifact_uri FROM runs LIMIT 1").fetchone()
    return row[0] if row else "none (no run)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", type=Path, help="the moved store's mlflow.db")
    parser.add_argument("--from", dest="old", required=True, help="the folder it was in")
    parser.add_argument("--to", dest="new", help="the folder it is in now (default: its own)")
    args = parser.parse_args(argv)
    if not args.database.is_file():
        print(f"error: {args.database}: no such file", file=sys.stderr)
        return 2
    new = args.new or str(args.database.resolve().parent)
    try:
        changed = move(args.database, str(Path(args.old).expanduser()), new)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not changed.get("runs") and not changed.get("experiments"):
        print(
            f"error: {args.database} names no artifact folder under {args.old} (a run's: "
            f"{held(args.database)}): nothing changed",
            file=sys.stderr,
        )
        return 2
    said = ", ".join(f"{n} {table.replace('_', ' ')}" for table, n in changed.items() if n)
    print(f"{args.database}: artifact paths under {args.old} now under {new} ({said})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
