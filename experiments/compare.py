"""Print a study's comparison of heads from MLflow as Markdown.

    python experiments/compare.py [--study NAME | --list] [--tracking-uri URI] [--all]

Without ``--study`` the study whose trial ran last is shown; ``--list`` prints every study with
its finished trials and last activity, newest first. The table
holds the headline figures as papers print them (parameter counts with separators, error rates
in %, mean ± std in percentage points over folds and repeats); ``--all`` adds every figure but
the 95 % intervals (per-species APCER among them), which the parent run's comparison.csv and
report.html hold too. A
study run on synthetic data or a random backbone is flagged as the demonstration it is.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

import mlflow
import pandas as pd

from experiments import comparison, tracking


def studies(tracking_uri: str | None = None) -> pd.DataFrame:
    """Every study in the tracking store: its finished trials and the time of its last trial
    run's start or end (UTC), newest first."""
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    rows = []
    for experiment in mlflow.search_experiments(
        filter_string=f"tags.`{tracking.STUDY_TAG}` LIKE '%'"
    ):
        name = experiment.tags[tracking.STUDY_TAG]
        runs = tracking.study_runs(experiment.experiment_id, name)
        times = pd.concat([runs.get("start_time", pd.Series()), runs.get("end_time", pd.Series())])
        last = times.dropna().max() if not runs.empty else None
        rows.append(
            {
                "study": name,
                "finished trials": int((runs["status"] == "FINISHED").sum()) if len(runs) else 0,
                "trial runs": len(runs),
                "last activity (UTC)": last if pd.notna(last) else None,
                "experiment": experiment.experiment_id,
            }
        )
    table = pd.DataFrame(
        rows,
        columns=["study", "finished trials", "trial runs", "last activity (UTC)", "experiment"],
    )
    return table.sort_values(
        "last activity (UTC)", ascending=False, na_position="last", ignore_index=True
    )


def comparison_markdown(
    study: str | None = None, tracking_uri: str | None = None, every_column: bool = False
) -> str:
    """The comparison table of ``study`` (default: the study whose trial ran last) as Markdown."""
    listed = studies(tracking_uri)
    if study:
        listed = listed[listed["study"] == study]
    if listed.empty:
        where = mlflow.get_tracking_uri()
        raise LookupError(f"no study {study!r} in {where}" if study else f"no study in {where}")
    name, experiment_id = listed.iloc[0]["study"], listed.iloc[0]["experiment"]
    runs = tracking.study_runs(experiment_id, name)
    table = comparison.comparison(runs)
    if table.empty:
        return f"# Study {name}\n\nNo finished trial yet."
    finished = len(comparison.trial_table(runs))
    banner = comparison.demo_banner(table)
    warning = f"**{banner}**\n\n" if banner else ""
    notes = "".join(f"- {note}\n" for note in comparison.evaluation_notes(runs))
    columns = None if every_column else comparison.HEADLINE
    return (
        f"# Study {name}\n\n{warning}{finished} finished trials; best per head family and the "
        f"write-up baselines, chosen on dev (test never used for choosing). Error rates in %, "
        f"± std in percentage points.\n\n{notes}\n"
        f"{comparison.to_markdown(table.drop(columns=['run_id']), columns)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python experiments/compare.py", description=__doc__)
    parser.add_argument("--study", help="study name (default: the one whose trial ran last)")
    parser.add_argument("--list", action="store_true", help="list the studies, newest first")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLflow's own)")
    parser.add_argument("--all", action="store_true", help="every figure, not the headline")
    args = parser.parse_args(argv)
    try:
        if args.list:
            table = studies(args.tracking_uri)
            if table.empty:
                raise LookupError(f"no study in {mlflow.get_tracking_uri()}")
            table["last activity (UTC)"] = table["last activity (UTC)"].map(_when)
            print(table.to_string(index=False))
            return 0
        print(comparison_markdown(args.study, args.tracking_uri, args.all))
    except LookupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _when(stamp) -> str:
    if stamp is None or pd.isna(stamp):
        return "-"
    moment = stamp if isinstance(stamp, datetime) else pd.Timestamp(stamp).to_pydatetime()
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


if __name__ == "__main__":
    sys.exit(main())
