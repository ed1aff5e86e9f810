"""The study's comparison of heads as tables, their numbers as papers print them.

Everything is computed from the trial runs in MLflow (:mod:`experiments.stores.runs_table`), so
the sweep's closing comparison, ``compare.py`` and the report agree, and trials of earlier
invocations of a study are included. Numbers read as in a paper: counts as integers with
separators, error rates in % (mean ± std in percentage points over folds and repeats, 95 %
intervals in %), AUC with 3 decimals. Imports no deep-learning backend, Optuna or plotly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.backbone.spec import PARAMS_TO_FC7
from core.words import percent
from experiments.metrics import SPECIES_PREFIX, is_species_figure
from experiments.stores.runs_table import (
    DEMO,
    PARAMS,
    STD,
    WORST,
    WORST_RATE,
    family_bests,
    figure_columns,
    ranked,
    ranked_column,
)

# What the Markdown table shows (the CSV and HTML report show every column): the figures
# papers put in their tables, each as mean ± std when a trial was evaluated on several settings.
HEADLINE = (
    "group",
    "head",
    "trial",
    "params_head",
    "params_total",
    "dev_eer",
    "dev_acer",
    "test_apcer",
    WORST,
    "test_bpcer",
    "test_acer",
    "test_hter",
    "test_bpcer20",
    "test_eer",
)
# The answer at a glance: each family's best trial (chosen on dev), its test figures and size.
BEST_COLUMNS = (
    "family",
    "head",
    "trial",
    "output",
    "params_head",
    "params_total",
    "dev_acer",
    "test_apcer",
    "test_bpcer",
    "test_acer",
    "test_hter",
    WORST,
    WORST_RATE,
    "run_id",
)
BEST_NAMES = {  # their headings where people read them (description, report)
    "params_head": "head params",
    "params_total": "total params",
    "dev_acer": "dev ACER",
    "test_apcer": "test APCER",
    "test_bpcer": "test BPCER",
    "test_acer": "test ACER",
    "test_hter": "test HTER",
    "test_hter 95% CI": "its 95% CI",
    WORST: "worst species",
    WORST_RATE: "its APCER",
    "run_id": "run id",
}
INTERVALS = ("test_apcer", "test_bpcer", "test_hter")  # with _ci_low / _ci_high columns
HTER_BOUNDS = ["test_hter_ci_low", "test_hter_ci_high"]
RATES_NOTE = (
    "Error rates in %; with several folds or repeats each figure is the mean ± its sample std "
    "(n - 1) in percentage points, over the folds where there are folds (each fold's seeds "
    "averaged first), else over the seeds; the APCER the mean of each setting's worst species' "
    "APCER, and the worst "
    "species the one whose mean APCER (shown with it where lower) is highest. 95 % intervals, "
    "for a single setting: Wilson (APCER of the worst species, BPCER), Bengio–Mariéthoz (HTER, "
    "a normal approximation: no width where APCER and BPCER are each 0 % or 100 %, however few "
    "the clips; read it with theirs). "
    "Each family's best is chosen on dev ACER; test never chooses. A dev threshold just below 1 "
    "reads 1 - 1.5e-05 (rounded, it read 1, which would reject every clip)."
)


def comparison(trials: pd.DataFrame) -> pd.DataFrame:
    """Best trial of each head family, then each write-up baseline, chosen on dev only, from
    :func:`~experiments.stores.runs_table.trial_table` (best first). A study that searched
    ``--fine-tune`` also has the best of each family's other choices (``best lstm+fc``, ``best
    lstm frozen``): fine-tuning against the frozen backbone was in MLflow alone (probe HH)."""
    best = trials.drop_duplicates("family").assign(group=lambda t: "best " + t["family"])
    tune = pd.Series([str(h).partition("+")[2] for h in trials["head"]], index=trials.index)
    choices = trials.assign(tune=tune).drop_duplicates(["family", "tune"])
    if tune.nunique() < 2:
        choices = choices.iloc[:0]
    choices = choices[~choices["run_id"].isin(best["run_id"])]
    pairs = zip(choices["family"], choices["tune"], strict=True)
    named = [f"best {f}+{t}" if t else f"best {f} frozen" for f, t in pairs]
    choices = choices.drop(columns="tune").assign(group=named)
    baselines = trials.dropna(subset=["baseline"]).drop_duplicates("baseline")
    baselines = baselines.assign(group=lambda t: "write-up " + t["baseline"].astype(str))
    table = pd.concat([best, choices, baselines], ignore_index=True)
    figures = figure_columns(trials)
    figures[figures.index("test_apcer") + 1 : 0] = [WORST, WORST_RATE]
    bounds = [c for c in figures if c.endswith(("_ci_low", "_ci_high")) and table[c].isna().all()]
    figures = [c for c in figures if c not in bounds]  # none logged: several settings each
    columns = ["group", "head", "family", "trial", "output", *figures, *DEMO, "run_id"]
    table = table.reindex(columns=columns)
    table.attrs.update(trials.attrs)  # when the runs were read (tracking.study_runs)
    table.attrs["trials"] = sorted(int(n) for n in trials["trial"])  # every finished trial run's
    return table


def best_per_family(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison's "best <family>" rows: dev ACER, test APCER/BPCER/ACER/HTER, the worst
    species, head and total parameters (and each figure's ``_std`` when there is one, the test
    HTER's 95 % interval when there is one: a single setting's)."""
    rows = family_bests(table)
    columns = list(BEST_COLUMNS)
    for name in BEST_COLUMNS:
        if f"{name}{STD}" in table.columns:
            columns.insert(columns.index(name) + 1, f"{name}{STD}")
    if set(HTER_BOUNDS) <= set(table.columns):  # one setting's 95 % interval: the verdict's
        columns[columns.index("test_hter") + 1 : 0] = HTER_BOUNDS  # (probe: a best without any)
    best = rows.reindex(columns=columns).reset_index(drop=True)
    for name in PARAMS:
        best[name] = best[name].astype("Int64")
    return best


def best_clauses(best: pd.DataFrame) -> list[str]:
    """The best head by dev ACER (the first of :func:`best_per_family`'s rows: dev ACER, then
    dev EER, then the smaller), its trial, head params, dev and test ACER and test HTER (with its
    95 % interval, of a single setting: how far one draw's figure is from a finding), as clauses
    a wrapped line keeps whole."""
    top = best.iloc[0]
    std = [top.get(f"{key}{STD}") for key in ("dev_acer", "test_acer", "test_hter")]
    low, high = (top.get(bound) for bound in HTER_BOUNDS)  # one setting's
    interval = f", 95% CI {bounds}" if (bounds := _interval(low, high)) else ""
    if bounds and low == high:  # [50.0%, 50.0%] of 3 clips read as a sure figure (probe)
        interval += " (no width: APCER and BPCER each 0 or 100 %, however few the clips)"
    head = f"{top['head']} (trial {int(top['trial'])}, "
    head += f"{format_value('params_head', top['params_head'])} head params):"
    return [
        "best head by dev ACER:",
        head,
        f"dev ACER {format_value('dev_acer', top['dev_acer'], std[0])},",
        f"test ACER {format_value('test_acer', top['test_acer'], std[1])},",
        # the figure cross-domain papers and Replay-Attack's protocol head their tables with
        f"HTER {format_value('test_hter', top['test_hter'], std[2])}" + interval,
    ]


def demo_banner(table: pd.DataFrame) -> str | None:
    """The warning a demonstration carries (from the trial runs' tags), or None."""
    what = [
        text
        for tag, text in (("synthetic", "synthetic data"), ("random_weights", "a random backbone"))
        if tag in table.columns and table[tag].fillna(False).astype(bool).any()
    ]
    if not what:
        return None
    return f"demonstration: {' and '.join(what)}, not a result about VGG-Face"


# --------------------------------------------------------------------------- numbers as text


def _is_rate(column: str) -> bool:
    """dev/test error and accuracy rates and their interval bounds (not thresholds, not AUC)."""
    return (
        column.startswith(("dev_", "test_")) and column != "test_auc" and "threshold" not in column
    )


def format_value(column: str, value, spread=None) -> str:
    """One figure as a paper prints it: 134,755,846 params, ACER 2.5% (± 0.8 percentage
    points), AUC 0.973, a threshold to 4 significant digits (``1 - 1.5e-05`` just below 1);
    empty when missing."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, str):
        return value
    spread = None if spread is None or pd.isna(spread) else float(spread)
    if column == "trial":
        return str(int(value))
    if column.startswith("params_") or column == "settings":
        return f"{int(round(float(value))):,}"
    if _is_rate(column):
        text = percent(value)
        return f"{text} ± {percent(spread)}%" if spread is not None else f"{text}%"
    if column == "test_auc":
        return f"{value:.3f}" + (f" ± {spread:.3f}" if spread is not None else "")
    text = f"{value:.4g}"
    if text == "1" and value < 1:  # a threshold of 0.99998 is not 1 (which rejects everything)
        text = f"1 - {1 - value:.2g}"
    return text + (f" ± {spread:.2g}" if spread is not None else "")


def worst_cell(row: pd.Series, short: bool = False) -> str:
    """The worst species ("none" when no attack was accepted), with its own test APCER where
    that is not the APCER column's: with several settings the APCER is the mean of each
    setting's worst, whichever species, and the worst species' mean can be below it ("print
    20.8%" beside an APCER of 29.2%). ``short``: a tie of three or more as "photo +2"."""
    tied = [name for name in str(row.get(WORST) or "").split("/") if name]
    if not tied:
        return "none"
    names = "/".join(tied) if not short or len(tied) <= 2 else f"{tied[0]} +{len(tied) - 1}"
    rate, apcer = row.get(WORST_RATE), row.get("test_apcer")
    if rate is None or pd.isna(rate) or format_value("test_apcer", apcer) == f"{percent(rate)}%":
        return names  # as the APCER column shows it
    return f"{names} {percent(rate)}%"


def _interval(low, high) -> str:
    return "" if pd.isna(low) or pd.isna(high) else f"[{percent(low)}%, {percent(high)}%]"


def readable(table: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """The table as text: mean ± std in one cell, each 95 % interval as one "[low, high]" cell;
    with several settings (folds, repeats) a threshold headed as the kept setting's (fold 1,
    repeat 0: the head a trial keeps), never a mean.

    ``columns`` picks and orders what is shown (default: every figure and the run id; the
    ``_std``, interval bound and demonstration columns are folded into cells or the banner).
    """
    bounds = {f"{n}_ci_{end}" for n in INTERVALS for end in ("low", "high")}
    if columns is None:
        hidden = bounds | set(DEMO) | {"baseline", WORST_RATE}  # the rate: in the species' cell
        columns = [c for c in table.columns if not c.endswith(STD) and c not in hidden]
    out = pd.DataFrame(index=table.index)
    for column in columns:
        if column not in table.columns:
            continue
        spread = f"{column}{STD}"
        out[column] = [
            format_value(column, row[column], row[spread] if spread in table.columns else None)
            for _, row in table.iterrows()
        ]
        if column == WORST:
            out[column] = [worst_cell(row) for _, row in table.iterrows()]
        low, high = f"{column}_ci_low", f"{column}_ci_high"
        if column in INTERVALS and low in table.columns and high in table.columns:
            out[f"{column} 95% CI"] = [_interval(r[low], r[high]) for _, r in table.iterrows()]
    if any(c.endswith(STD) for c in table.columns):  # several settings: a threshold is one's
        kept = {c: f"{c} (kept setting's)" for c in out.columns if c.endswith("threshold")}
        out = out.rename(columns=kept)  # among the means it read as one (probe)
    return out


def to_markdown(table: pd.DataFrame, columns: tuple[str, ...] | None = HEADLINE) -> str:
    """A GitHub Markdown table of the headline figures (``columns=None``: every column)."""
    shown = readable(table, None if columns is None else list(columns))
    shown = shown.drop(columns=[c for c in shown.columns if c.endswith("95% CI")])
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    for _, row in shown.iterrows():
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def missed_species(table: pd.DataFrame, limit: float = 0.5) -> list[str]:
    """One line per attack species that no compared trial stops most of: every row's test APCER
    on it is at least ``limit`` (half of its attacks accepted, or more)."""
    lines = []
    for column in sorted(c for c in table.columns if is_species_figure(c)):
        rates = pd.to_numeric(table[column], errors="coerce").dropna()
        if len(rates) and rates.min() >= limit:
            species = column.removeprefix(SPECIES_PREFIX)
            lines.append(
                f"no compared head stops most {species} attacks: at best "
                f"{format_value(column, rates.min())} of them pass (test APCER)"
            )
    return lines


# --------------------------------------------------------------------------- Pareto front


def pareto_mask(params: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Trials no other trial beats on both fewer parameters and lower error (rates as the
    ranking compares them: equal ones summed otherwise differ in their last bit)."""
    params = np.asarray(params, float)
    errors = np.array([ranked("dev_acer", e) for e in np.asarray(errors, float)])
    mask = np.ones(len(params), dtype=bool)
    for i in range(len(params)):
        no_worse = (params <= params[i]) & (errors <= errors[i])
        better = (params < params[i]) | (errors < errors[i])
        mask[i] = not np.any(no_worse & better)
    return mask


def front(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials on the front of dev ACER vs params_total, fewest parameters first; a point
    reached by several trials is shown once, by its first trial."""
    trials = trials.dropna(subset=["params_total", "dev_acer"])
    front = trials[pareto_mask(trials["params_total"], trials["dev_acer"])]
    front = front.assign(tied=ranked_column(front["dev_acer"]))  # a tie is one point (review)
    front = front.sort_values(["params_total", "tied", "trial"])
    return front.drop_duplicates(["params_total", "tied"]).drop(columns="tied")


def front_items(front: pd.DataFrame, limit: int = 5) -> list[str]:
    """The front as a short list: "#4 lstm30 (495,302 head params, 5.0%)", ..., at most
    ``limit`` trials, then how many more."""
    items = [
        f"#{int(r['trial'])} {r['head']} "
        f"({format_value('params_head', r['params_total'] - PARAMS_TO_FC7)} head params, "
        f"{format_value('dev_acer', r['dev_acer'])})"
        for _, r in front.head(limit).iterrows()
    ]
    more = len(front) - limit
    return items + ([f"and {more} more"] if more > 0 else [])


def front_text(front: pd.DataFrame, limit: int = 5) -> str:
    """:func:`front_items` as one line, "; " between items."""
    return "; ".join(front_items(front, limit))


def evaluation_notes(runs: pd.DataFrame) -> list[str]:
    """How the trials were evaluated (test data, folds, repeats), from their runs' tags."""
    notes = []
    cross_dataset = runs.get("tags.evaluation", pd.Series(dtype=object)).eq("cross-dataset").any()
    pooled = any(c.startswith("tags.protocol_") for c in runs.columns)  # each said below
    for tag, what in (
        ("evaluation", "evaluation"),
        ("setting", "setting"),  # a cross-domain study's
        ("sources", "trained on"),
        # an intra-dataset study's data and protocol: "test data: same as data" named neither
        ("data", "data"),
        ("protocol", "protocol"),
        ("target", "tested on"),
        ("target_clips", "target clips"),
        ("source_clips", "source clips"),
        ("train_clips", "clips trained on"),
        ("dev_clips", "dev clips (the threshold)"),
        ("test_data", "test data"),
        ("test_protocol", "test protocol"),
        ("folds", "folds"),
        ("repeats", "repeats per configuration"),
        # what else moves a figure: two studies of one data differed there, unsaid (probe)
        ("frames_per_clip", "frames per clip"),
        ("extraction_precision", "extraction precision"),
        ("training_precision", "heads trained in"),
        ("keras_backend", "Keras backend"),
        ("face_crop", "face crop"),  # database boxes or a detector: part of the protocol (probe)
        ("test_face_boxes", "test database's clips with boxes"),  # --test-data's (review)
    ):
        values = runs.get(f"tags.{tag}", pd.Series(dtype=object)).dropna().unique()
        if tag == "sources" and cross_dataset:  # one database trained: --data
            values = runs.get("tags.data", pd.Series(dtype=object)).dropna().unique()
        if (tag == "data" and (cross_dataset or pooled)) or (tag == "protocol" and pooled):
            continue
        values = [v for v in values if not (tag == "test_face_boxes" and v == "same as data")]
        if len(values):
            notes.append(f"{what}: {', '.join(sorted(map(str, values)))}")
    protocols = []  # a cross-domain study's databases, each by the protocol it was taken by
    for column in sorted(c for c in runs.columns if c.startswith("tags.protocol_")):
        if runs[column].notna().any():
            name, protocol = column.removeprefix("tags.protocol_"), runs[column].dropna().iloc[0]
            # its own: named once ("msu msu" read as a typo: probe); another: "casia (casia-cut)"
            protocols.append(name if protocol == name else f"{name} ({protocol})")
    if protocols:
        notes.append(f"protocols: {', '.join(protocols)}")
    return notes  # the mean ± std over several folds or repeats: RATES_NOTE says it
