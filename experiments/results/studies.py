"""The study tables ``compare.py`` prints: every study in the tracking store, and one study's
comparison of heads as Markdown."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import pandas as pd

from core.words import counted
from experiments.results import tables
from experiments.stores import liveness, study_names, tracking
from experiments.stores.runs_table import STD, trial_table

# a trial run's MLflow status, as the list says it ("trial runs" had counted failed ones too)
COUNTED = (("FINISHED", "complete trials"), ("KILLED", "pruned/stopped"), ("FAILED", "failed"))
# the table's figures that its name alone does not say (probe Z: "which threshold?")
COLUMN_KEY = (
    "dev_eer: dev EER; dev_acer, test_*: at the dev EER threshold, test_apcer the worst "
    "species'; test_bpcer20: test BPCER at the dev threshold where every species' APCER is at "
    "most 5 % (ISO/IEC 30107-3; of a species with fewer than 20 dev attacks, none: then "
    "test_bpcer100's figure); at no threshold: test_eer, the test set's own EER, a figure "
    "papers print, not an operating point, and (--all) test_auc, test_tpr_fpr1 and _fpr01, "
    "the bona fide accepted where at most 1 % and 0.1 % of test attacks are (the same figure "
    "where the test set has fewer than 100 attacks)."
)
TOLD_APART = (("keras_backend", "backend"), ("extraction_precision", "extraction"))


def _last(runs: pd.DataFrame, tag: str) -> str:
    """The tag of a study's last trial run, or "?" (runs logged before it, or none)."""
    column = f"tags.{tag}"
    if runs.empty or column not in runs:
        return "?"
    values = runs.sort_values("start_time")[column].dropna()
    return str(values.iloc[-1]) if len(values) else "?"


def _setting(runs: pd.DataFrame) -> str:
    """What a study trains and tests on, as its last trial run tags it: a cross-domain setting
    (``ocim-m``), a cross-dataset pair of protocols (``casia→replay-attack``), else its protocol
    (two studies of other databases differed by their names' digests alone: probe W)."""
    if (setting := _last(runs, "setting")) != "?":
        return setting
    protocol = _last(runs, "protocol")
    if _last(runs, "evaluation") == "cross-dataset":
        return f"{protocol}→{_last(runs, 'test_protocol')}"
    return protocol


def studies() -> pd.DataFrame:
    """Every study in the tracking store: its trial runs by how they ended (a pruned and a
    stopped trial both end KILLED) and the time of its last trial run's start or end (UTC),
    newest first."""
    rows = []
    for experiment in tracking.study_experiments():
        name = experiment.tags[tracking.STUDY_TAG]
        runs = tracking.study_runs(experiment.experiment_id, name)
        times = pd.concat([runs.get("start_time", pd.Series()), runs.get("end_time", pd.Series())])
        last = times.dropna().max() if not runs.empty else None
        rows.append(
            {
                "study": name,
                # complete: the runs MLflow calls FINISHED (a pruned trial's run is KILLED),
                # not the sweep's "finished" (complete, pruned and failed) that --trials counts
                **{
                    said: int((runs["status"] == status).sum()) if len(runs) else 0
                    for status, said in COUNTED
                },
                "last activity (UTC)": last if pd.notna(last) else None,
                "setting": _setting(runs),
                # what tells two studies of one data apart, where their names do not (probe)
                **{said: _last(runs, tag) for tag, said in TOLD_APART},
                "experiment": experiment.experiment_id,
            }
        )
    columns = ["study", *(said for _, said in COUNTED), "last activity (UTC)"]
    columns += ["setting", *(said for _, said in TOLD_APART), "experiment"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(
        "last activity (UTC)", ascending=False, na_position="last", ignore_index=True
    )


def comparison_markdown(study: str | None = None, every_column: bool = False) -> str:
    """The comparison table of ``study`` (default: the study whose trial ran last) as Markdown."""
    listed = studies()
    if study:
        listed = listed[listed["study"] == study]
    if listed.empty:
        if study:
            raise LookupError(study_names.not_stored([study]))
        raise LookupError(f"no study in {tracking.store_shown()}")
    name, experiment_id = listed.iloc[0]["study"], listed.iloc[0]["experiment"]
    for reason in liveness.close_dead_parents(experiment_id, name).values():  # died between
        print(f"a parent run closed: {reason}", file=sys.stderr)  # trials: said, as a worker says
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
    best = tables.best_per_family(table)
    closing = [" ".join(tables.best_clauses(best))] if len(best) else []
    if pareto := tables.front_text(tables.front(trials)):  # as the sweep ends; runs without
        closing.append(f"Pareto front (dev ACER vs parameters): {pareto}")  # sizes: none
    closing += tables.missed_species(table)
    spread = any(column.endswith(STD) for column in table.columns)  # folds or repeats
    rates = tables.RATES_NOTE.split(" 95 %")[0] if spread else "Error rates in %."
    columns = None if every_column else tables.HEADLINE
    if not every_column:  # --all keeps the run id: what predict.py --run takes
        table = table.drop(columns=["run_id"])
    else:
        table = table.assign(run_id=_weights_said(table["run_id"]))
    return (
        f"# Study {name}\n\n{warning}{complete_said}; best per "
        "head family (and per --fine-tune choice, where searched) and the write-up baselines, "
        "chosen on dev (test never used for choosing). "
        f"{rates}\n\n{notes}\n"
        f"{tables.to_markdown(table, columns)}\n\n{COLUMN_KEY}\n\n"
        + "\n".join(f"{line}." for line in closing)
    )


def _weights_said(run_ids: pd.Series) -> pd.Series:
    """Run ids as ``--all`` shows them: ``(no head weights)`` after one that kept none, which
    ``predict.py --run`` refuses (``--keep-weights best`` keeps each family's improvements only;
    a user took the README's word that every row's run id scores). An artifact store that does
    not answer leaves them as they are: the table reads the tracking store."""
    said = {}
    for run_id in run_ids.unique():
        try:
            kept = tracking.has_artifact(run_id, tracking.HEAD_WEIGHTS)
        except Exception:  # noqa: BLE001 - S3 credentials, a proxy away: not this table's to fail
            kept = True
        said[run_id] = run_id if kept else f"{run_id} (no head weights)"
    return run_ids.map(said)


def when(stamp) -> str:
    if stamp is None or pd.isna(stamp):
        return "-"
    moment = stamp if isinstance(stamp, datetime) else pd.Timestamp(stamp).to_pydatetime()
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
