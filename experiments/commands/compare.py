"""Print a study's comparison of heads from MLflow as Markdown.

    python experiments/compare.py [--study NAME | --list] [--tracking-uri URI] [--all]
    python experiments/compare.py --cross [--study NAME ...] [--out DIR] [--tracking-uri URI]

Without ``--study`` the study whose trial ran last is shown; ``--list`` prints every study with
its complete trials and last activity, newest first. The table holds the headline figures as
papers print them (parameter counts with separators, error rates in %, mean ± std in percentage
points over folds and repeats); ``--all`` adds every figure but the 95 % intervals (per-species
APCER among them), which the parent run's comparison.csv and report.html hold too, and each
row's MLflow run id (``predict.py --run`` takes it). A study run
on synthetic data or a random backbone is flagged as the demonstration it is. ``--cross`` shows
each setting's last study run (those on synthetic data are left out, and named under the table);
``--study``, repeated, names the studies it shows instead.

Exit status: 0 done; 2 bad input (one line on stderr: no such study, no tracking store at the
path given); 3 a tracking server that does not answer, or not as MLflow does.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from core.flags import given_path
from core.interrupts import stopped_by_ctrl_c
from core.words import counted
from experiments.commands.quiet import OneLineParser, quiet_console, say_error
from experiments.results import tables
from experiments.stores import liveness, tracking
from experiments.stores.runs_table import trial_table


def studies() -> pd.DataFrame:
    """Every study in the tracking store: its complete trials and the time of its last trial
    run's start or end (UTC), newest first."""
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
                # complete: the runs MLflow calls FINISHED (a pruned trial's run is KILLED),
                # not the sweep's "finished" (complete, pruned and failed) that --trials counts
                "complete trials": int((runs["status"] == "FINISHED").sum()) if len(runs) else 0,
                "trial runs": len(runs),
                "last activity (UTC)": last if pd.notna(last) else None,
                "experiment": experiment.experiment_id,
            }
        )
    table = pd.DataFrame(
        rows,
        columns=["study", "complete trials", "trial runs", "last activity (UTC)", "experiment"],
    )
    return table.sort_values(
        "last activity (UTC)", ascending=False, na_position="last", ignore_index=True
    )


def comparison_markdown(study: str | None = None, every_column: bool = False) -> str:
    """The comparison table of ``study`` (default: the study whose trial ran last) as Markdown."""
    listed = studies()
    if study:
        listed = listed[listed["study"] == study]
    if listed.empty:
        where = mlflow.get_tracking_uri()
        raise LookupError(f"no study {study!r} in {where}" if study else f"no study in {where}")
    name, experiment_id = listed.iloc[0]["study"], listed.iloc[0]["experiment"]
    liveness.close_dead_parents(experiment_id, name)  # workers that died between trials
    runs = tracking.study_runs(experiment_id, name)
    trials = trial_table(runs)
    table = tables.comparison(trials)
    if table.empty:
        return f"# Study {name}\n\nNo complete trial yet."
    complete = len(trials)
    running = int((runs["status"] == "RUNNING").sum()) if "status" in runs else 0
    complete_said = counted(complete, "complete trial")
    if running:
        complete_said += (
            f" so far; {counted(running, 'trial run')} still RUNNING (in flight, or a lost "
            "worker's not closed yet): the table may change"
        )
    banner = tables.demo_banner(table)
    warning = f"**{banner}**\n\n" if banner else ""
    notes = "".join(f"- {note}\n" for note in tables.evaluation_notes(runs))
    columns = None if every_column else tables.HEADLINE
    if not every_column:  # --all keeps the run id: what predict.py --run takes
        table = table.drop(columns=["run_id"])
    return (
        f"# Study {name}\n\n{warning}{complete_said}; best per "
        "head family and the write-up baselines, chosen on dev (test never used for choosing). "
        f"{tables.RATES_NOTE.split(' 95 %')[0]}\n\n{notes}\n"
        f"{tables.to_markdown(table, columns)}"
    )


@stopped_by_ctrl_c("interrupted")
def main(argv: list[str] | None = None) -> int:
    title, _usage, *notes = __doc__.split("\n\n")  # argparse writes its own usage
    parser = OneLineParser(
        prog="python experiments/compare.py",
        description=title,
        epilog="\n\n".join(notes).replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--study",
        action="append",
        help="study name (default: the one whose trial ran last); with --cross, repeated: the "
        "studies the table shows (default: each setting's last one run)",
    )
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--list", action="store_true", help="list the studies, newest first")
    shown.add_argument(
        "--cross",
        action="store_true",
        help="the cross-domain table: every head family on every setting run (O&C&I->M ...), "
        "held-out and paper-compatible figures; written to --out and logged in MLflow",
    )
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLflow's own)")
    parser.add_argument("--all", action="store_true", help="every figure, not the headline")
    parser.add_argument(
        "--out",
        type=given_path,
        metavar="DIR",
        help="with --cross: where the CSV, Markdown and HTML go (default: here)",
    )
    args = parser.parse_args(argv)
    quiet_console()  # MLflow's "View run" lines after the cross table's run, among others
    if args.out is not None and not args.cross:
        parser.error("--out goes with --cross (a study's table is printed)")
    if args.all and (args.list or args.cross):
        parser.error("--all widens a study's table: drop --list or --cross")
    if args.study and args.list:
        parser.error("--list lists every study: drop --study")
    if args.study and len(args.study) > 1 and not args.cross:
        parser.error("one --study is compared at a time; several go with --cross")
    try:
        tracking.check_existing_store(tracking.use_store(args.tracking_uri))
    except ValueError as err:
        say_error(str(err))
        return 3 if isinstance(err, tracking.StoreUnreachable) else 2
    try:
        if args.cross:
            from experiments.results.cross_table import log_cross_table

            for line in log_cross_table(args.out or Path("."), args.study):
                print(line)
            return 0
        if args.list:
            table = studies()
            if table.empty:
                raise LookupError(f"no study in {mlflow.get_tracking_uri()}")
            table["last activity (UTC)"] = table["last activity (UTC)"].map(_when)
            print(table.to_string(index=False))
            return 0
        print(comparison_markdown(args.study[0] if args.study else None, args.all))
    except LookupError as err:
        if isinstance(err, KeyError | IndexError):  # a bug, not a study that is not there
            raise
        say_error(str(err))
        return 2
    except OSError as err:  # --out: a file, or a folder that cannot be made or written
        why = "a file; --out names a folder" if isinstance(err, FileExistsError) else None
        say_error(f"--out {err.filename or args.out}: {why or err.strerror or err}")
        return 2
    except MlflowException as err:  # a server that answers, but not as MLflow's does
        say_error(tracking.store_failed(err))
        return 3
    return 0


def _when(stamp) -> str:
    if stamp is None or pd.isna(stamp):
        return "-"
    moment = stamp if isinstance(stamp, datetime) else pd.Timestamp(stamp).to_pydatetime()
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


if __name__ == "__main__":
    sys.exit(main())
