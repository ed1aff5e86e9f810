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
from pathlib import Path

from core.flags import given_name, given_path
from core.interrupts import stopped_by_ctrl_c
from core.stdout import stdout_failed
from experiments.commands.quiet import OneLineParser, quiet_console, reader_gone, say_error


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
        type=given_name,
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
    parser.add_argument(
        "--tracking-uri", type=given_name, help="MLflow tracking URI (default: MLflow's own)"
    )
    parser.add_argument("--all", action="store_true", help="every figure, not the headline")
    parser.add_argument(
        "--out",
        type=given_path,
        metavar="DIR",
        help="with --cross: where the CSV, Markdown and HTML go (default: here)",
    )
    args = parser.parse_args(argv)
    if args.out is not None and not args.cross:
        parser.error("--out goes with --cross (a study's table is printed)")
    if args.all and (args.list or args.cross):
        parser.error("--all widens a study's table: drop --list or --cross")
    if args.study and args.list:
        parser.error("--list lists every study: drop --study")
    if args.study and len(args.study) > 1 and not args.cross:
        parser.error("one --study is compared at a time; several go with --cross")
    # MLflow and pandas are imported once the flags are checked, not with the module: a Ctrl-C
    # in their imports (seconds) is then one line, not a traceback

    from experiments.results.studies import comparison_markdown, studies, when
    from experiments.stores import reach, tracking

    quiet_console()  # MLflow's "View run" lines after the cross table's run, among others
    try:
        reach.check_existing_store(tracking.use_store(args.tracking_uri))
    except ValueError as err:
        say_error(str(err))
        return 3 if isinstance(err, reach.StoreUnreachable) else 2
    try:
        if args.cross:
            from experiments.results.cross_table import log_cross_table

            for line in log_cross_table(args.out or Path("."), args.study):
                print(line)
        elif args.list:
            table = studies()
            if table.empty:
                raise LookupError(f"no study in {tracking.store_shown()}")
            table["last activity (UTC)"] = table["last activity (UTC)"].map(when)
            print(table.to_string(index=False))
        else:
            print(comparison_markdown(args.study[0] if args.study else None, args.all))
        sys.stdout.flush()  # a reader gone: said here, not by Python's flush at exit
    except BrokenPipeError:  # | head: the reader has what it wanted (an --out error: probe AA)
        reader_gone()
    except LookupError as err:
        if isinstance(err, KeyError | IndexError):  # a bug, not a study that is not there
            raise
        say_error(str(err))
        return 2
    except OSError as err:  # --out: a file, or a folder that cannot be made or written
        if stdout_failed(err):  # a redirect on a full disk: it said "--out None" (probe)
            raise
        why = "a file; --out names a folder" if isinstance(err, FileExistsError) else None
        say_error(f"--out {err.filename or args.out}: {why or err.strerror or err}")
        return 2
    except Exception as err:  # the tracking store's failure (SQLAlchemy's, MLflow's): one line
        if (failed := tracking.read_failed(err)) is None:
            raise
        say_error(failed[0])
        return failed[1]
    return 0
