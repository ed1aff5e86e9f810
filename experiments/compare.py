"""Print a study's comparison of heads from MLflow as Markdown.

    python experiments/compare.py [--study NAME] [--tracking-uri URI] [--all]

Without ``--study`` the most recently updated study in the tracking store is shown. The table
holds the headline figures (mean ± std over folds and repeats); ``--all`` adds every figure
(per-species APCER, 95 % intervals), as the parent run's comparison.csv and report.html do.
"""

from __future__ import annotations

import argparse
import sys

import mlflow

from experiments import comparison, tracking


def comparison_markdown(
    study: str | None = None, tracking_uri: str | None = None, every_column: bool = False
) -> str:
    """The comparison table of ``study`` (default: the latest study) as Markdown."""
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    experiments = mlflow.search_experiments(
        filter_string=f"tags.`{tracking.STUDY_TAG}` = '{study}'"
        if study
        else f"tags.`{tracking.STUDY_TAG}` LIKE '%'",
        order_by=["last_update_time DESC"],
    )
    if not experiments:
        where = mlflow.get_tracking_uri()
        raise LookupError(f"no study {study!r} in {where}" if study else f"no study in {where}")
    experiment = experiments[0]
    name = experiment.tags[tracking.STUDY_TAG]
    runs = tracking.study_runs(experiment.experiment_id, name)
    table = comparison.comparison(runs)
    if table.empty:
        return f"# Study {name}\n\nNo finished trial yet."
    finished = len(comparison.trial_table(runs))
    notes = "".join(f"- {note}\n" for note in comparison.evaluation_notes(runs))
    columns = None if every_column else comparison.HEADLINE
    return (
        f"# Study {name}\n\n{finished} finished trials; best per head family and the write-up "
        f"baselines, chosen on dev (test never used for choosing).\n\n{notes}\n"
        f"{comparison.to_markdown(table.drop(columns=['run_id']), columns)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python experiments/compare.py", description=__doc__)
    parser.add_argument("--study", help="study name (default: the latest)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLflow's own)")
    parser.add_argument("--all", action="store_true", help="every figure, not the headline")
    args = parser.parse_args(argv)
    try:
        print(comparison_markdown(args.study, args.tracking_uri, args.all))
    except LookupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
