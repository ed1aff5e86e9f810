"""The cross-domain table every recent face-PAD paper prints, from the studies in MLflow.

Rows: each head family's best trial (chosen on the sources' dev ACER, as every choice here is) and
each write-up head. Columns: per setting run (``O&C&I→M``, ... in the benchmark's order, then other
cross-domain studies and cross-dataset ones (``--test-data``: one source, ``C→I``), then
intra-dataset protocols when present; studies named with ``--study``: in their order), the held-out
HTER (the threshold from the sources' dev, applied unchanged to the target: the honest figure)
beside the paper-compatible figures (the target's own EER threshold: HTER, AUC, TPR at FPR 1 % with
bona fide as the positive class), each mean ± std over ``--repeats`` (an intra-dataset protocol of
folds: over its folds, each fold's seeds averaged). The two kinds are never mixed in one cell. A
setting tested on every target clip (``--target-clips all``), or trained on every source clip but
dev (``--source-clips all``), has columns of its own. When a setting
was run by several studies on the same data and options (other ``--heads`` or seeds), their trials
are pooled, each family's best chosen on dev over all of them; of studies of other options, the one
whose trial ran last is shown, and the others are named under the table.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient

from core.data.layouts import get_protocol, protocol_names
from core.files import put_in_place
from core.words import counted
from experiments import domains
from experiments.results.cross_files import write
from experiments.results.tables import comparison, demo_banner, format_value
from experiments.stores import study_names, tracking
from experiments.stores.runs_table import trial_table

EXPERIMENT = "cross-domain tables"  # where the table is logged, beside the studies it links
ROLE = "cross-table"
COLUMNS = ["setting", "label", "kind", "study", "experiment"]  # a shown setting's
TABLE_TAG = "table_sha256"  # the files' and tags' digest: an unchanged table is not logged again
# (figure, heading): held-out first, then what papers print, labelled as such
FIGURES = (
    ("test_hter", "HTER held-out"),
    ("test_eer", "HTER paper"),
    ("test_auc", "AUC paper"),
    ("test_tpr_fpr1", "TPR@FPR1% paper"),
)
# an intra-dataset protocol's: what OULU-NPU's tables print (APCER, BPCER, ACER), then HTER
INTRA_FIGURES = (
    ("test_apcer", "APCER"),
    ("test_bpcer", "BPCER"),
    ("test_acer", "ACER"),
    ("test_hter", "HTER"),
)
# the options a table's columns may differ in (each study's run tags), as a user names them
OPTIONS = (
    ("frames_per_clip", "--frames"),
    ("extraction_precision", "extraction precision (--precision)"),
    ("training_precision", "--train-precision"),
    ("keras_backend", "KERAS_BACKEND"),
    ("face_crop", "the face crop"),  # on or off: how it went (boxes, detector) is the data's
    ("weights_fingerprint", "the weights"),
    ("repeats", "--repeats"),
)
NOTE = (
    "held-out: the threshold set on the sources' pooled dev clips, applied unchanged to the "
    "target (ISO/IEC 30107-3, bob pad cross). paper: the target's own EER threshold, as SSDG, "
    "SSAN, FLIP and SAFAS report HTER and AUC; TPR at FPR 1 %: bona fide is the positive class "
    "(of a target with fewer than 100 attack clips, it is the TPR at FPR 0). "
    "Every row's trial is chosen on the sources' dev ACER; the target never chooses anything."
)


def studies(chosen: Sequence[str] | None = None, preferred: Sequence[str] = ()) -> pd.DataFrame:
    """Per setting run, the study to show (one of ``preferred``, else the one whose trial ran
    last), or every study of ``chosen`` in its order (a setting's several headed each with its
    name, ``C&M→I [n1]``): setting, label, kind, study, experiment id, last activity.
    ``attrs["not shown"]``: the other studies of a shown setting, as ``(label, study)``;
    ``attrs["synthetic"]``: the cross studies of synthetic data, left out unless chosen or
    preferred (the demonstration set is no benchmark). LookupError: a chosen study that is not
    in the store."""
    rows = []
    experiments = tracking.study_experiments()
    if chosen:
        stored = {e.tags[tracking.STUDY_TAG] for e in experiments}
        if missing := set(chosen) - stored:
            raise LookupError(study_names.not_stored(missing, stored))
        experiments = [e for e in experiments if e.tags[tracking.STUDY_TAG] in chosen]
    demos = []  # cross studies of synthetic data, left out unless chosen or preferred
    for experiment in experiments:
        name = experiment.tags[tracking.STUDY_TAG]
        runs = tracking.study_runs(experiment.experiment_id, name)
        runs = runs[runs["status"] == "FINISHED"] if len(runs) else runs
        if runs.empty:
            continue
        kind = runs["tags.evaluation"].iloc[0] if "tags.evaluation" in runs else "intra-dataset"
        demo = "tags.synthetic" in runs and runs["tags.synthetic"].eq("true").all()
        if demo and not chosen and name not in preferred:  # a sweep's own: shown, flagged
            if kind != "intra-dataset":  # the demo set is no benchmark: said, not dropped
                demos.append(name)
            continue
        if kind == "cross-domain":
            setting, label = _cross_setting(runs.iloc[0])
        elif kind == "cross-dataset":
            setting, label = _cross_dataset_setting(runs.iloc[0])
        elif kind == "intra-dataset":
            first = runs.iloc[0]
            protocol = f"{first.get('tags.protocol', '?')}{_one_fold(first)}"
            named = _database(first.get("tags.protocol"))
            setting = label = protocol if named else f"{protocol}:{_folder(first.get('tags.data'))}"
        else:
            continue
        contexts = runs.get(f"tags.{tracking.CONTEXT_TAG}", pd.Series(None, runs.index)).unique()
        # one for all its runs; none for older runs, or a study of older and newer ones
        context = contexts[0] if len(contexts) == 1 and isinstance(contexts[0], str) else None
        rows.append(
            {
                "setting": setting,
                "label": label,
                "kind": kind,
                "study": name,
                "experiment": experiment.experiment_id,
                "last": runs["end_time"].max(),
                "context": context,
                "options": _options(runs.iloc[0]),
            }
        )
    every = pd.DataFrame(rows, columns=[*COLUMNS, "last", "context", "options"])
    every = every.assign(mine=every["study"].isin(preferred))
    every = every.sort_values(["mine", "last"], ascending=False).drop(columns="mine")
    found = every if chosen else every.drop_duplicates("setting")  # the user's choice: all
    found = found.assign(pooled=[[] if chosen else _pooled(every, r) for _, r in found.iterrows()])
    pooled = {name for names in found["pooled"] for name, _ in names}
    hidden = every[~every["study"].isin(found["study"]) & ~every["study"].isin(pooled)]
    order = {name: i for i, name in enumerate(domains.SETTINGS)}
    rank = [  # the user's order (--cross --study B --study A), else the papers', "all"s beside
        (list(chosen).index(study),)
        if chosen
        else (kind == "intra-dataset", order.get(setting.split()[0], len(order)), setting)
        for study, kind, setting in found[["study", "kind", "setting"]].itertuples(index=False)
    ]
    shown = found.assign(rank=rank).sort_values("rank").drop(columns="rank")
    same = shown.duplicated("setting", keep=False)  # one setting's studies, chosen together
    shown.loc[same, "label"] = shown["label"][same] + " [" + shown["study"][same] + "]"
    twins = shown["label"].duplicated(keep=False)  # O→C from oulu-p1 and from oulu-p2: both
    shown.loc[twins, "label"] = [
        f"{label} ({setting.replace('->', '→')})"
        for label, setting in zip(shown["label"][twins], shown["setting"][twins], strict=True)
    ]
    shown.attrs["not shown"] = list(zip(hidden["label"], hidden["study"], strict=True))
    shown.attrs["synthetic"] = demos
    return shown


def _options(run: pd.Series) -> dict[str, str]:
    """A study's :data:`OPTIONS` that its run records (runs logged before one was: not it)."""
    found = {tag: run.get(f"tags.{tag}") for tag, _ in OPTIONS}
    found = {tag: value for tag, value in found.items() if isinstance(value, str)}
    if "face_crop" in found:  # "database boxes + mtcnn" where a source ships no boxes (review)
        found["face_crop"] = "off" if found["face_crop"] == "none" else "on"
    for key, value in run.items():  # each database's data, by protocol: columns of two copies
        if key.startswith("tags.data_fingerprint_") and isinstance(value, str):  # were unsaid
            name = key.removeprefix("tags.data_fingerprint_")
            found[f"{name}'s data ({run.get(f'tags.protocol_{name}')})"] = value
    return found


def options_differ(shown: pd.DataFrame) -> str | None:
    """The note naming the options by which the shown columns' studies differ, each value with
    its columns; None where they agree. Each setting shows the study whose trial ran last, so a
    table could put a --frames 3 column beside --frames 2 ones without a word (probe)."""
    said = []
    data = sorted({key for options in shown["options"] for key in options if "'s data (" in key})
    for tag, flag in [*OPTIONS, *zip(data, data, strict=True)]:
        columns: dict[str, list[str]] = {}
        for label, options in zip(shown["label"], shown["options"], strict=True):
            if tag in options:
                value = options[tag]
                value = value[:12] if len(value) == 64 else value  # a weights file's digest
                columns.setdefault(value, []).append(label)
        if len(columns) > 1:
            said.append(
                f"{flag} " + "; ".join(f"{v} in {', '.join(c)}" for v, c in columns.items())
            )
    if not said:
        return None
    return (
        f"The columns differ in options or data, which a paper's table holds one of: "
        f"{' | '.join(said)} "
        "(each setting shows its study whose trial ran last; --cross --study NAME ... chooses)."
    )


def _pooled(every: pd.DataFrame, shown: pd.Series) -> list[tuple[str, str]]:
    """The other studies of ``shown``'s setting run on the same data and options (the same
    :data:`~experiments.stores.tracking.CONTEXT_TAG`): ``(study, experiment)`` each. They differ
    in ``--heads`` or seeds only, so a family's best is chosen on dev over all their trials (a
    family searched by one of them was missing from the table, probe)."""
    if shown["context"] is None:
        return []
    same = every[
        (every["setting"] == shown["setting"])
        & (every["context"] == shown["context"])
        & (every["study"] != shown["study"])
    ]
    return list(zip(same["study"], same["experiment"], strict=True))


def _studies_of(row: Any) -> list[str]:
    """A shown setting's study, then those pooled with it."""
    return [row.study, *(name for name, _ in row.pooled)]


def _cross_setting(run: pd.Series) -> tuple[str, str]:
    """A cross-domain study's setting and its columns' label from a trial run's tags (``mi-c``,
    ``M&I→C``); ``all source clips`` and ``all target clips`` (a --*-clips all) each sets its
    own, both said where both are ("all clips" beside "all source clips" said neither: probe DD)."""
    setting, whole = run["tags.setting"], run.get("tags.source_clips") == "all"
    sources, target, clips = (run.get(f"tags.{t}") for t in ("sources", "target", "target_clips"))
    if isinstance(sources, str) and isinstance(target, str):
        label = domains.CrossSetting(setting, tuple(sources.split(",")), target).label
        names = [*sources.split(","), target]  # one taken whole: "all source clips" says it
        said = [
            domains.whole_said(p) if whole or n == target else p
            for n, p in ((n, run.get(f"tags.protocol_{n}")) for n in names)
        ]
        setting, label = _with_protocols(setting, label, said)
    else:  # runs tagged before the sources were
        label = known.label if (known := domains.SETTINGS.get(setting)) else setting
    if whole:  # trained as SSDG trains (every clip but dev): columns of its own
        both = "," if clips in ("all", domains.ALL_BUT_DEV) else ""
        setting, label = f"{setting} sources-all", f"{label} all source clips{both}"
    layout = _database(run.get(f"tags.protocol_{target}")) or target  # not its name: review
    if clips == "all" and layout in domains.OWN_DEV:  # before 2026-12-06
        return f"{setting} all+dev", f"{label} all target clips, dev too"
    if clips in ("all", domains.ALL_BUT_DEV):
        return f"{setting} all", f"{label} all target clips"
    return setting, label


def _cross_dataset_setting(run: pd.Series) -> tuple[str, str]:
    """A cross-dataset study's (``--test-data``) setting and label from a trial run's tags: one
    source, ``casia->replay-attack`` and ``C→I``; data of no named database (a layout without
    fixed splits: generic, a user's) by its folder, ``data->data2``, so that two such studies are
    two settings."""
    trained, tested = run.get("tags.protocol"), run.get("tags.test_protocol")
    source = _database(trained) or _folder(run.get("tags.data"))
    target = _database(tested) or _folder(run.get("tags.test_data"))
    setting = f"{trained if _database(trained) else source}->"
    setting += str(tested) if _database(tested) else target
    label = domains.CrossSetting(setting, (source,), target).label
    label = _with_protocols(setting, label, [trained, tested])[1]
    fold = _one_fold(run)  # one fold of a protocol of folds is not the protocol
    return f"{setting}{fold}", f"{label}{fold}"


def _one_fold(run: pd.Series) -> str:
    """`` fold 3`` for a study that ran one fold of a protocol with folds (its ``fold`` tag); ""
    for every fold (``all``) or a protocol without folds (``none``)."""
    fold = run.get("tags.fold")
    return f" fold {fold}" if isinstance(fold, str) and fold.isdigit() else ""


def _with_protocols(setting: str, label: str, protocols: list[object]) -> tuple[str, str]:
    """The setting and label with each database protocol that is not its database's first
    (:func:`experiments.domains.other_protocol`): ``M→C (casia-cut)``, ``O→I (oulu-p3)``."""
    other = [p for p in map(domains.other_protocol, protocols) if p]
    if not other:
        return setting, label
    return f"{setting} {','.join(other)}", f"{label} ({', '.join(other)})"


def _database(protocol: object) -> str | None:
    """The named database a protocol reads (its layout's name), None for data of no named
    database: an unknown protocol, or a layout whose splits the data itself decides."""
    if protocol not in protocol_names():
        return None
    layout = get_protocol(protocol)[0]
    return layout.name if layout.fixed_splits else None


def _folder(path: object) -> str:
    return Path(str(path).split(",")[0]).name or str(path)


def cross_table(shown: pd.DataFrame) -> pd.DataFrame:
    """The table of the studies ``shown`` (:func:`studies`): one row per group (``best
    <family>``, ``write-up <head>``), one column per setting and figure (numbers, and
    ``<column> std`` where there were repeats)."""
    table, chosen = pd.DataFrame(), {}
    for _, study in shown.iterrows():
        sources = [(study["study"], study["experiment"]), *study.get("pooled", [])]
        runs = pd.concat([tracking.study_runs(e, name) for name, e in sources], ignore_index=True)
        best = comparison(trial_table(runs)).set_index("group")
        named = runs.set_index("run_id")[f"tags.{tracking.STUDY_TAG}"]
        trial = [
            f"#{int(n)}" + (f" of {named[run]}" if len(sources) > 1 else "") if pd.notna(n) else ""
            for n, run in zip(best["trial"], best["run_id"], strict=True)
        ]
        named = f"[{study['study']}]" in study["label"]  # chosen beside its setting's others
        pooled_by = " + ".join(name for name, _ in sources)
        chosen[study["label"] if named else f"{study['label']} ({pooled_by})"] = (
            best["head"].astype(str) + " " + trial
        )
        figures = INTRA_FIGURES if study["kind"] == "intra-dataset" else FIGURES
        for figure, heading in figures:
            column = f"{study['label']} {heading}"
            table = table.reindex(table.index.union(best.index))
            table[column] = best[figure]
            if f"{figure}_std" in best:
                table[f"{column} std"] = best[f"{figure}_std"]
        table.attrs.setdefault("demo", []).append(demo_banner(best.reset_index()))
    order = sorted(table.index, key=lambda g: (not str(g).startswith("best "), str(g)))
    trials = pd.DataFrame(chosen).reindex(order).fillna("").rename_axis("head")
    table = table.loc[order]
    table.attrs["trials"] = trials  # which head and trial each column's cells come from
    return table


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """Cells as papers print them: rates in %, AUC to 3 decimals, ``± std`` folded in."""
    shown = pd.DataFrame(index=table.index)
    for column in table.columns:
        if column.endswith(" std"):
            continue
        figure = "test_auc" if "AUC" in column else "test_hter"
        spread = table.get(f"{column} std")
        shown[column] = [
            format_value(figure, value, None if spread is None else spread[group])
            for group, value in table[column].items()
        ]
    return shown.rename_axis("head")


def to_markdown(table: pd.DataFrame) -> str:
    return _markdown(readable(table).reset_index())


def _markdown(shown: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines)


def log_cross_table(
    out: Path | None = None, chosen: Sequence[str] | None = None, preferred: Sequence[str] = ()
) -> list[str]:
    """Build the table from every study in the tracking store (``chosen``: those; ``preferred``:
    each shown in its setting's columns, as a sweep shows the studies it ran), write it
    (CSV, Markdown, HTML) to ``out`` when given, log it on a run of the experiment ``cross-domain
    tables`` that links the studies it summarises, and return the lines to print. LookupError:
    no such study."""
    shown = studies(chosen, preferred)
    hidden = shown.attrs["not shown"]
    synthetic = shown.attrs["synthetic"]
    demos = [
        f"Left out: study {name}, on synthetic data, a demonstration (--cross --study {name} "
        "shows it)."
        for name in synthetic
    ]
    if chosen and shown.empty:  # the studies named: said, not a store without cross studies
        raise LookupError(f"no finished trial in {', '.join(chosen)} yet")
    if shown.empty or (not chosen and (shown["kind"] == "intra-dataset").all()):
        but = (
            f" but {counted(len(synthetic), 'study', 'studies')} on synthetic data, a "
            f"demonstration (--cross --study NAME shows it: {', '.join(synthetic)})"
            if synthetic
            else " yet; --cross --study NAME ... tabulates intra-dataset studies too"
        )
        raise LookupError(
            "no cross-domain or cross-dataset (--test-data) study with a finished trial in "
            f"{tracking.store_shown()}{but}"
        )
    table = cross_table(shown)
    trials = table.attrs["trials"]
    markdown = to_markdown(table)
    behind = "Trials behind the cells (head #trial; each setting's study in its heading):\n\n"
    behind += _markdown(trials.reset_index())
    banners = _banners(shown["label"].tolist(), table.attrs.get("demo", []))
    if out is not None:  # before anything is logged: a path that cannot be a folder fails here
        out.mkdir(parents=True, exist_ok=True)
    older = (
        f"Not shown: study {study}, a study of {label} on other data or options (--cross --study "
        "NAME ... chooses)."
        for label, study in hidden
    )
    pooled = (
        f"{row.label}: studies {', '.join(_studies_of(row))} pooled, "
        "the same data and options (other --heads, --seed or search flags): each family's best "
        "over their trials, chosen on dev."
        for row in shown.itertuples()
        if row.pooled
    )
    intra = shown.loc[shown["kind"] == "intra-dataset", "label"].tolist()
    cross = not (shown["kind"] == "intra-dataset").all()  # the note is about sources, target
    notes = [*filter(None, [options_differ(shown)]), *[NOTE] * cross, *pooled, *older, *demos]
    if intra:  # the note's sources and target are not theirs
        notes.append(
            f"{', '.join(intra)}: intra-dataset, each database's own protocol, the threshold on "
            "its own dev split, test figures on its test split (APCER: the worst species', "
            "as OULU-NPU's protocols print it); ± std over the folds of a protocol of folds "
            "(each fold's seeds averaged), else over --repeats, APCER the mean of each one's worst."
        )
    with tempfile.TemporaryDirectory() as folder:
        shown_table = readable(table).reset_index()
        files = write(table, shown_table, [markdown, behind], banners, notes, Path(folder))
        if out is not None:  # written before the run is logged: an unwritable folder logs none
            put_in_place(files, out)
        run_id, new = _log(shown, files)
    lines = [*(f"**{b}**" for b in banners), markdown, "", behind, "", *notes]
    if new:
        lines.append(f"logged on run {run_id} of experiment '{EXPERIMENT}'")
    else:
        lines.append(f"the table of run {run_id} of experiment '{EXPERIMENT}': not logged again")
    if out is not None:
        lines.append(f"written to {out}/cross_domain.csv, cross_domain_trials.csv, .md and .html")
    return lines


def _banners(labels: list[str], banners: list[str | None]) -> list[str]:
    """Each demonstration warning once, with the columns it is about where it is not about them
    all (a table of real and synthetic settings read as if every column were a demonstration)."""
    columns: dict[str, list[str]] = {}
    for label, banner in zip(labels, banners, strict=True):
        if banner:
            columns.setdefault(banner, []).append(label)
    return [
        banner if len(named) == len(labels) else f"{', '.join(named)}: {banner}"
        for banner, named in sorted(columns.items())
    ]


def _log(shown: pd.DataFrame, files: list[Path]) -> tuple[str, bool]:
    """A run in the ``cross-domain tables`` experiment holding the table, tagged with every
    study (and its setting) it summarises, and whether it is new: the experiment's last run is
    kept when it holds the same files and tags (a rerun of a finished study, or of compare,
    logged one each time)."""
    client = MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(
            EXPERIMENT,
            artifact_location=tracking.artifact_location(EXPERIMENT),
            tags={"mlflow.experimentKind": "custom_model_development"},
        )
    )
    every = [name for row in shown.itertuples() for name in _studies_of(row)]
    tags = {tracking.ROLE_TAG: ROLE, "studies": ",".join(every)}
    same = shown.duplicated("setting", keep=False)  # one setting's studies: each its own key
    for row, twin in zip(shown.itertuples(), same, strict=True):
        key = f"{row.setting}.{row.study}" if twin else row.setting
        tags |= {f"study.{key}": row.study, f"experiment.{key}": row.experiment}
    digest = hashlib.sha256(json.dumps(tags, sort_keys=True).encode())
    for path in sorted(files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    tags[TABLE_TAG] = digest.hexdigest()
    last = client.search_runs(
        [experiment_id],
        f"tags.`{tracking.ROLE_TAG}` = '{ROLE}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if last and last[0].data.tags.get(TABLE_TAG) == tags[TABLE_TAG]:
        return last[0].info.run_id, False
    run = client.create_run(
        experiment_id,
        run_name=f"cross-domain table @ {time.strftime('%Y-%m-%d %H:%M:%S')}",
        tags=tags,
    )
    with tracking.quiet_artifacts():
        for path in files:
            client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id, "FINISHED")  # last: a run cut short is no match
    return run.info.run_id, True
