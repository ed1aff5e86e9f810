"""The study's comparison of heads: its tables, their numbers as papers print them, and what the
parent run and the console show of it.

Everything is computed from the trial runs in MLflow, so the sweep's closing comparison
(:func:`log_comparison`, on the study's parent run) and ``experiments/compare.py`` agree, and
trials of earlier invocations of a study are included. Numbers read as in a paper: counts as
integers with separators, error rates in % (mean ± std in percentage points over folds and
repeats, 95 % intervals in %), AUC with 3 decimals.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from core.backbone.spec import PARAMS_TO_FC7
from experiments import dashboard, report, tracking
from experiments.metrics import REPORT_KEYS, SETTING_COLUMNS, ScoreSet
from experiments.report import pareto_mask

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

PARAMS = ("params_total", "params_head")
METRICS = (*PARAMS, *REPORT_KEYS)  # then per-species APCER, "_std" columns, settings
WORST = "worst_species"  # the species with the highest test APCER ("a/b" on a tie)
DEMO = ("synthetic", "random_weights")  # trial run tags, "true" on a demonstration
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
    WORST: "worst species",
    "run_id": "run id",
}
SPECIES_PREFIX = "test_apcer_"
STD = "_std"
INTERVALS = ("test_apcer", "test_bpcer", "test_hter")  # with _ci_low / _ci_high columns
NOTE_TAG = "mlflow.note.content"  # MLflow shows it as the run's description (Markdown)
REPORT = "report.html"
RATES_NOTE = (
    "Error rates in %; with several folds or repeats each figure is the mean ± its std in "
    "percentage points. 95 % intervals: Wilson (APCER of the worst species, BPCER), "
    "Bengio–Mariéthoz (HTER). Each family's best is chosen on dev ACER; test never chooses."
)


# --------------------------------------------------------------------------- tables
# Best first: the objective, then the EER, then the smaller model (the sweep keeps the weights
# of a family's best by the same order: experiments.objective).
RANKING = ("dev_acer", "dev_eer", "params_total")


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The figures to compare: the fixed ones, each species' APCER, then every ``_std``."""
    logged = [c.removeprefix("metrics.") for c in runs.columns if c.startswith("metrics.")]
    figures = [*METRICS, *species_columns(logged)]
    spreads = [f"{name}{STD}" for name in figures if f"{name}{STD}" in logged]
    return figures + spreads + (["settings"] if "settings" in logged else [])


def species_columns(columns: Sequence[str]) -> list[str]:
    """The per-species APCER columns (``test_apcer_<species>``) among ``columns``, sorted."""
    return sorted(
        name
        for name in columns
        if name.startswith(SPECIES_PREFIX) and name not in METRICS and not name.endswith(STD)
    )


def worst_species(table: pd.DataFrame) -> pd.Series:
    """Per row, the species with the highest test APCER ("print/replay" on a tie; "" when no
    attack was accepted or no species was logged)."""
    columns = species_columns(list(table.columns))

    def worst(row: pd.Series) -> str:
        values = row[columns].astype(float)
        if values.isna().all() or values.max() <= 0:
            return ""
        return "/".join(
            c.removeprefix(SPECIES_PREFIX) for c in columns if values[c] == values.max()
        )

    return table.apply(worst, axis=1) if columns and len(table) else pd.Series("", table.index)


def trial_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished trial run: head, family, output, baseline name, every metric, the
    worst species and whether it was a demonstration (synthetic data, random backbone)."""
    done = runs[runs["status"] == "FINISHED"] if not runs.empty else runs
    metrics = metric_columns(runs)
    if done.empty:
        return pd.DataFrame(
            columns=["trial", "head", "family", "output", "baseline", *metrics, WORST, *DEMO]
        )
    table = pd.DataFrame(
        {
            "trial": done["tags.optuna.trial_number"].astype(int),
            "head": done["params.head"],
            "family": done["params.family"],
            "output": done["params.output"],
            "baseline": done.get("tags.vggface_heads.baseline", pd.Series(index=done.index)),
            "run_id": done["run_id"],
        }
    )
    for metric in metrics:  # runs logged before a figure existed show it empty
        column = done.get(f"metrics.{metric}", pd.Series(np.nan, index=done.index))
        table[metric] = pd.to_numeric(column)
    table[WORST] = worst_species(table)
    for tag in DEMO:
        table[tag] = done.get(f"tags.{tag}", pd.Series(index=done.index)).eq("true")
    return table.sort_values([*RANKING, "trial"], ignore_index=True)


def comparison(runs: pd.DataFrame) -> pd.DataFrame:
    """Best trial of each head family, then each write-up baseline, chosen on dev only."""
    trials = trial_table(runs)
    best = trials.drop_duplicates("family").assign(group=lambda t: "best " + t["family"])
    baselines = trials.dropna(subset=["baseline"]).drop_duplicates("baseline")
    baselines = baselines.assign(group=lambda t: "write-up " + t["baseline"].astype(str))
    table = pd.concat([best, baselines], ignore_index=True)
    figures = metric_columns(runs)
    figures.insert(figures.index("test_apcer") + 1, WORST)
    columns = ["group", "head", "family", "trial", "output", *figures, *DEMO, "run_id"]
    return table.reindex(columns=columns)


def best_per_family(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison's "best <family>" rows: dev ACER, test APCER/BPCER/ACER/HTER, the worst
    species, head and total parameters (and each figure's ``_std`` when there is one)."""
    rows = table[table["group"].astype(str).str.startswith("best ")]
    columns = list(BEST_COLUMNS)
    for name in BEST_COLUMNS:
        if f"{name}{STD}" in table.columns:
            columns.insert(columns.index(name) + 1, f"{name}{STD}")
    best = rows.reindex(columns=columns).reset_index(drop=True)
    for name in PARAMS:
        best[name] = best[name].astype("Int64")
    return best


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
    points), AUC 0.973, a threshold to 4 significant digits; empty when missing."""
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
        text = f"{100 * value:.1f}"
        return f"{text} ± {100 * spread:.1f}%" if spread is not None else f"{text}%"
    if column == "test_auc":
        return f"{value:.3f}" + (f" ± {spread:.3f}" if spread is not None else "")
    return f"{value:.4g}" + (f" ± {spread:.2g}" if spread is not None else "")


def _interval(low, high) -> str:
    return "" if pd.isna(low) or pd.isna(high) else f"[{100 * low:.1f}%, {100 * high:.1f}%]"


def readable(table: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """The table as text: mean ± std in one cell, each 95 % interval as one "[low, high]" cell.

    ``columns`` picks and orders what is shown (default: every figure and the run id; the
    ``_std``, interval bound and demonstration columns are folded into cells or the banner).
    """
    bounds = {f"{n}_ci_{end}" for n in INTERVALS for end in ("low", "high")}
    if columns is None:
        hidden = bounds | set(DEMO) | {"baseline"}
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
        if column == WORST:  # no attack accepted: say so rather than leave the cell blank
            out[column] = out[column].replace("", "none")
        low, high = f"{column}_ci_low", f"{column}_ci_high"
        if column in INTERVALS and low in table.columns and high in table.columns:
            out[f"{column} 95% CI"] = [_interval(r[low], r[high]) for _, r in table.iterrows()]
    return out


def to_markdown(table: pd.DataFrame, columns: tuple[str, ...] | None = HEADLINE) -> str:
    """A GitHub Markdown table of the headline figures (``columns=None``: every column)."""
    shown = readable(table, None if columns is None else list(columns))
    shown = shown.drop(columns=[c for c in shown.columns if c.endswith("95% CI")])
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    for _, row in shown.iterrows():
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- Pareto front


def _front(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials on the front of dev ACER vs params_total, fewest parameters first; a point
    reached by several trials is shown once, by its first trial."""
    trials = trials.dropna(subset=["params_total", "dev_acer"])
    front = trials[pareto_mask(trials["params_total"], trials["dev_acer"])]
    front = front.sort_values(["params_total", "dev_acer", "trial"])
    return front.drop_duplicates(["params_total", "dev_acer"])


def _study_trials(study: optuna.Study) -> pd.DataFrame:
    """The study's complete trials: number, head, params_total and dev ACER (first objective)."""
    rows = [
        {
            "trial": t.number,
            "head": t.user_attrs.get("head", t.params.get("head", "?")),
            "params_total": t.user_attrs.get("params_total", np.nan),
            "dev_acer": t.values[0],
        }
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.values
    ]
    return pd.DataFrame(rows, columns=["trial", "head", "params_total", "dev_acer"])


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


# --------------------------------------------------------------------------- the parent run


def description(
    table: pd.DataFrame, study_name: str, states: dict[str, int], front: pd.DataFrame
) -> str:
    """The parent run's description (Markdown): the demonstration banner, each family's best
    trial with its dev and test figures and sizes, the Pareto front, where the report is."""
    banner = demo_banner(table)
    best = best_per_family(table)
    shown = readable(best, [c for c in BEST_COLUMNS if c != "run_id"]).rename(columns=BEST_NAMES)
    lines = [f"**{banner}**", ""] if banner else []
    lines += [
        f"Study `{study_name}` ({_counts(states)}): the best trial of each head family, chosen "
        "on dev ACER; test figures at the dev EER threshold, APCER of the worst species.",
        "",
        "| " + " | ".join(shown.columns) + " |",
        "|" + "---|" * len(shown.columns),
        *("| " + " | ".join(row) + " |" for _, row in shown.iterrows()),
        "",
        f"Pareto front (dev ACER vs parameters): {front_text(front)}.",
        "",
        *(f"{line}." for line in missed_species(table)),
        f"Every figure (per-species APCER, 95 % intervals, run ids) and the plots: `{REPORT}` "
        "in this run's artifacts; the table as `best_per_family.csv`.",
    ]
    return "\n".join(lines)


def _counts(states: dict[str, int]) -> str:
    """ "10 complete, 1 pruned, 1 failed" from Optuna's state names."""
    words = {"complete": "complete", "pruned": "pruned", "fail": "failed"}
    return ", ".join(f"{n} {words.get(state, state)}" for state, n in states.items())


def report_location(run_id: str) -> str:
    """Where a run's report is: a path in a local artifact store, the MLflow UI's page of the
    artifact with a tracking server, else the artifact URI."""
    run = mlflow.get_run(run_id)
    base = run.info.artifact_uri.rstrip("/")
    parsed = urlparse(base)
    if parsed.scheme in ("", "file"):
        return str(Path(url2pathname(parsed.path)) / REPORT)
    if mlflow.get_tracking_uri().startswith(("http://", "https://")):
        return dashboard.report_url(run.info.experiment_id, run_id, REPORT)
    return f"{base}/{REPORT}"


def log_comparison(study: optuna.Study, experiment_id: str, study_name: str) -> pd.DataFrame:
    """Log the comparison to the active (parent) run: comparison.csv/.json, best_per_family.csv/
    .json, the HTML report (tables, study and Optuna figures) and the run's description.

    Returns the comparison table; ``table.attrs["report"]`` is where the report is
    (:func:`report_location`), for the console's :func:`verdict`.
    """
    runs = tracking.study_runs(experiment_id, study_name)
    trials = trial_table(runs)
    table = comparison(runs)
    states = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,))) for s in FINISHED}
    mlflow.log_metrics({f"trials_{k}": v for k, v in states.items()})
    if table.empty:
        mlflow.set_tag(NOTE_TAG, f"Study `{study_name}`: no finished trial yet.")
        return table
    mlflow.log_metric("best_dev_acer", float(trials["dev_acer"].min()))
    best = best_per_family(table)
    mlflow.log_table(table, "comparison.json")
    mlflow.log_table(best, "best_per_family.json")
    front = _front(trials)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        table.to_csv(folder / "comparison.csv", index=False)
        best.to_csv(folder / "best_per_family.csv", index=False)
        test_scores = {}
        for run_id in table["run_id"].unique():  # a family's best is often a baseline too
            path = tracking.fetch_artifact(run_id, "scores.csv", folder / run_id)
            frame = pd.read_csv(path, keep_default_na=False)
            test_scores[run_id] = ScoreSet.from_frame(_first_setting(frame, "test"))
        report.write_html(
            folder / REPORT,
            f"Study {study_name}",
            {
                "Best trial per head family": readable(best).rename(columns=BEST_NAMES),
                "Every family's best and the write-up baselines": readable(table),
            },
            {**report.study_figures(trials, table, test_scores), **report.optuna_figures(study)},
            [
                f"{len(trials)} finished trial runs ({_counts(states)} in Optuna).",
                f"Pareto front (dev ACER vs parameters): {front_text(front, limit=20)}.",
                *(f"{line}." for line in missed_species(table)),
                *evaluation_notes(runs),
                RATES_NOTE,
            ],
            banner=demo_banner(table),
        )
        for name in ("comparison.csv", "best_per_family.csv", REPORT):
            mlflow.log_artifact(str(folder / name))
    active = mlflow.active_run()
    mlflow.set_tag(NOTE_TAG, description(table, study_name, states, front))
    table.attrs["report"] = report_location(active.info.run_id)
    return table


def _first_setting(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of ``split`` from the first (fold, repeat) setting of a scores.csv frame."""
    rows = frame[frame["split"] == split]
    for column in SETTING_COLUMNS:
        if column in rows.columns and not rows.empty:
            rows = rows[rows[column] == rows[column].iloc[0]]
    return rows


def evaluation_notes(runs: pd.DataFrame) -> list[str]:
    """How the trials were evaluated (test data, folds, repeats), from their runs' tags."""
    notes = []
    for tag, what in (
        ("evaluation", "evaluation"),
        ("test_data", "test data"),
        ("test_protocol", "test protocol"),
        ("folds", "folds"),
        ("repeats", "repeats per configuration"),
    ):
        values = runs.get(f"tags.{tag}", pd.Series(dtype=object)).dropna().unique()
        if len(values):
            notes.append(f"{what}: {', '.join(sorted(map(str, values)))}")
    if "tags.folds" in runs.columns or "tags.repeats" in runs.columns:
        notes.append("with several folds or repeats each figure is the mean, shown ± its std")
    return notes


# --------------------------------------------------------------------------- the console

CONSOLE_WIDTH = 100
_CONSOLE_RATES = (
    ("dev_acer", "dev ACER"),
    ("test_apcer", "APCER"),
    ("test_bpcer", "BPCER"),
    ("test_acer", "ACER"),
    ("test_hter", "HTER"),
)


def _console_rate(table: pd.DataFrame, row: pd.Series, column: str, spread: bool) -> str:
    value, std = row[column], row.get(f"{column}{STD}") if spread else None
    if pd.isna(value):
        return ""
    text = f"{100 * value:.1f}"
    return f"{text}±{100 * std:.1f}%" if std is not None and pd.notna(std) else f"{text}%"


def _render(table: pd.DataFrame, output: bool, spreads: tuple[str, ...]) -> list[str]:
    """The console table's lines: text columns left, numbers right, two spaces apart."""
    columns: list[tuple[str, list[str], bool]] = [
        ("", [_short_group(g) for g in table["group"]], False),
        ("head", [str(h) for h in table["head"]], False),
    ]
    if output:
        columns.append(("output", [str(o) for o in table["output"]], False))
    columns.append(
        ("head params", [format_value("params_head", v) for v in table["params_head"]], True)
    )
    for column, name in _CONSOLE_RATES:
        cells = [_console_rate(table, r, column, column in spreads) for _, r in table.iterrows()]
        columns.append((name, cells, True))
    columns.append(("worst", [_short_species(w) for w in table[WORST].fillna("")], False))
    widths = [max([len(name), *map(len, cells)]) for name, cells, _ in columns]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, (_, _, right) in zip(cells, widths, columns, strict=True)
        ]
        return "  ".join(padded).rstrip()

    lines = [line([name for name, _, _ in columns])]
    lines += [line([cells[i] for _, cells, _ in columns]) for i in range(len(table))]
    return lines


def _short_species(worst: str) -> str:
    """ "photo", "photo/print", or for a tie of three or more "photo +2"; "-" when none."""
    tied = [name for name in worst.split("/") if name]
    if not tied:
        return "-"
    return "/".join(tied) if len(tied) <= 2 else f"{tied[0]} +{len(tied) - 1}"


def _short_group(group: str) -> str:
    """ "best conv" stays; "write-up conv4096" becomes "write-up" (the head column names it)."""
    return "write-up" if str(group).startswith("write-up ") else str(group)


def console_table(table: pd.DataFrame, width: int = CONSOLE_WIDTH) -> str:
    """The comparison for a terminal: every line at most ``width`` characters.

    One row per family's best and per write-up baseline: head, output, head params, dev ACER,
    test APCER/BPCER/ACER/HTER in % and the worst species. The run ids are in the report and in
    MLflow. To fit, the output column goes first, then (with folds or repeats) the std columns
    but the ACERs', then those; a cell that still does not fit is cut.
    """
    if table.empty:
        return "no finished trial: nothing to compare"
    acers = ("dev_acer", "test_acer")
    every = tuple(c for c, _ in _CONSOLE_RATES)
    layouts = [(True, every), (False, every), (True, acers), (False, acers), (False, ())]
    for output, spreads in layouts:
        spreads = tuple(c for c in spreads if f"{c}{STD}" in table.columns)
        lines = _render(table, output, spreads)
        if max(map(len, lines)) <= width:
            break
    title = "rates in %, test at the dev EER threshold; worst: the species with the highest APCER"
    if any(f"{c}{STD}" in table.columns for c in every) and not spreads:
        title += "; ± std in the report"
    lines = [title[:width], *lines]
    return "\n".join(text if len(text) <= width else text[: width - 1] + "…" for text in lines)


def missed_species(table: pd.DataFrame, limit: float = 0.5) -> list[str]:
    """One line per attack species that no compared trial caught: every row's test APCER on it
    is at least ``limit`` (half of its attacks accepted, or more)."""
    lines = []
    for column in sorted(c for c in table.columns if _is_species(c)):
        rates = pd.to_numeric(table[column], errors="coerce").dropna()
        if len(rates) and rates.min() >= limit:
            species = column.removeprefix(SPECIES_PREFIX)
            lines.append(
                f"no head caught the {species} attack: its test APCER is "
                f"{format_value(column, rates.min())} at best"
            )
    return lines


def _is_species(column: str) -> bool:
    return column.startswith(SPECIES_PREFIX) and not column.endswith((STD, "_ci_low", "_ci_high"))


def verdict(table: pd.DataFrame, study: optuna.Study, report_uri: str | None) -> list[str]:
    """The sweep's closing lines: the best head by dev ACER (head params, dev and test ACER),
    the Pareto front of dev ACER vs parameters, where the HTML report is, and the
    demonstration warning when the trials ran on synthetic data or a random backbone."""
    best = best_per_family(table) if not table.empty else table
    if best.empty:
        return ["no finished trial: nothing to compare"]
    top = best.iloc[0]  # the comparison's order: dev ACER, then dev EER, then the smaller
    std = top.get(f"dev_acer{STD}"), top.get(f"test_acer{STD}")
    # Each clause is kept whole when a line is wrapped: its spaces do not break.
    head = f"{top['head']} (trial {int(top['trial'])}, "
    head += f"{format_value('params_head', top['params_head'])} head params):"
    clauses = [
        "best head by dev ACER:",
        head,
        f"dev ACER {format_value('dev_acer', top['dev_acer'], std[0])},",
        f"test ACER {format_value('test_acer', top['test_acer'], std[1])}",
    ]
    trials = _study_trials(study)
    if trials["params_total"].isna().all():  # a study whose trials carry no sizes: the table's
        trials = best[["trial", "head", "params_total", "dev_acer"]]
    items = front_items(_front(trials))
    items = [f"{item};" for item in items[:-1]] + items[-1:]
    lines = [_wrap(clauses), _wrap(["Pareto front (dev ACER vs parameters):", *items])]
    lines += [[line] for line in missed_species(table)]
    if report_uri:
        lines.append([f"report: {report_uri}"])  # a path or URL stays whole, to be copied
    banner = demo_banner(table)
    if banner:
        lines.append([banner])
    return [line for wrapped in lines for line in wrapped]


def _wrap(clauses: Sequence[str], width: int = CONSOLE_WIDTH) -> list[str]:
    """``clauses`` joined by spaces into lines of at most ``width`` characters (a clause longer
    than that has a line of its own), continuation lines indented."""
    lines: list[str] = []
    for clause in clauses:
        if lines and len(lines[-1]) + 1 + len(clause) <= width:
            lines[-1] += " " + clause
        else:
            lines.append(clause if not lines else "  " + clause)
    return lines
