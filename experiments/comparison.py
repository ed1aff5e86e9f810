"""The study's comparison of heads: a table, its Markdown, an HTML report with plots, all logged.

Everything is computed from the trial runs in MLflow, so the sweep's closing comparison
(:func:`log_comparison`, on the study's parent run) and ``experiments/compare.py`` agree, and
trials of earlier invocations of a study are included.
"""

from __future__ import annotations

import html
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.trial import TrialState

from experiments import tracking
from experiments.metrics import REPORT_KEYS, SETTING_COLUMNS, ScoreSet, far_frr_curve

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

PARAMS = ("params_total", "params_head")
METRICS = (*PARAMS, *REPORT_KEYS)  # then per-species APCER, "_std" columns, settings
# What the Markdown table shows (the CSV and HTML report show every column): the figures
# papers put in their tables, each as mean ± std when a trial was evaluated on several settings.
HEADLINE = (
    "group",
    "head",
    "trial",
    "params_total",
    "dev_eer",
    "dev_acer",
    "test_apcer",
    "test_bpcer",
    "test_acer",
    "test_hter",
    "test_bpcer20",
    "test_eer",
)
SPECIES_PREFIX = "test_apcer_"
STD = "_std"
INTERVALS = ("test_apcer", "test_bpcer", "test_hter")  # with _ci_low / _ci_high columns


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The figures to compare: the fixed ones, each species' APCER, then every ``_std``."""
    logged = [c.removeprefix("metrics.") for c in runs.columns if c.startswith("metrics.")]
    species = sorted(
        name
        for name in logged
        if name.startswith(SPECIES_PREFIX) and name not in METRICS and not name.endswith(STD)
    )
    figures = [*METRICS, *species]
    spreads = [f"{name}{STD}" for name in figures if f"{name}{STD}" in logged]
    return figures + spreads + (["settings"] if "settings" in logged else [])


def trial_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished trial run: head, family, output, baseline name and every metric."""
    done = runs[runs["status"] == "FINISHED"] if not runs.empty else runs
    metrics = metric_columns(runs)
    if done.empty:
        return pd.DataFrame(columns=["trial", "head", "family", "output", "baseline", *metrics])
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
    # Best first: the objective, then the EER, then the smaller model.
    return table.sort_values(["dev_acer", "dev_eer", "params_total", "trial"], ignore_index=True)


def comparison(runs: pd.DataFrame) -> pd.DataFrame:
    """Best trial of each head family, then each write-up baseline, chosen on dev only."""
    trials = trial_table(runs)
    best = trials.drop_duplicates("family").assign(group=lambda t: "best " + t["family"])
    baselines = trials.dropna(subset=["baseline"]).drop_duplicates("baseline")
    baselines = baselines.assign(group=lambda t: "write-up " + t["baseline"].astype(str))
    table = pd.concat([best, baselines], ignore_index=True)
    columns = ["group", "head", "trial", "output", *metric_columns(runs), "run_id"]
    return table.reindex(columns=columns)


def _cell(table: pd.DataFrame, row: pd.Series, column: str) -> str:
    """One value as read: counts with separators, rates with 4 decimals, mean ± std."""
    value = row[column]
    if pd.isna(value):
        return ""
    if column.startswith("params_") or column in ("trial", "settings"):
        return f"{int(value):,}"
    if not isinstance(value, float):
        return str(value)
    spread = row.get(f"{column}{STD}") if f"{column}{STD}" in table.columns else None
    return f"{value:.4f}" + ("" if spread is None or pd.isna(spread) else f" ± {spread:.4f}")


def readable(table: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """The table as text: mean ± std in one cell, each 95 % interval as one "[low, high]" cell.

    ``columns`` picks and orders what is shown (default: every figure; the ``_std`` and
    interval bound columns are folded into the cells of their figure).
    """
    bounds = {f"{n}_ci_{end}" for n in INTERVALS for end in ("low", "high")}
    if columns is None:
        columns = [c for c in table.columns if not c.endswith(STD) and c not in bounds]
    out = pd.DataFrame(index=table.index)
    for column in columns:
        if column not in table.columns:
            continue
        out[column] = [_cell(table, row, column) for _, row in table.iterrows()]
        low, high = f"{column}_ci_low", f"{column}_ci_high"
        if column in INTERVALS and low in table.columns and high in table.columns:
            out[f"{column} 95% CI"] = [
                "" if pd.isna(row[low]) else f"[{row[low]:.4f}, {row[high]:.4f}]"
                for _, row in table.iterrows()
            ]
    return out


def to_markdown(table: pd.DataFrame, columns: tuple[str, ...] | None = HEADLINE) -> str:
    """A GitHub Markdown table of the headline figures (``columns=None``: every column)."""
    shown = readable(table, None if columns is None else list(columns))
    shown = shown.drop(columns=[c for c in shown.columns if c.endswith("95% CI")])
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    for _, row in shown.iterrows():
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def pareto_mask(params: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Trials no other trial beats on both fewer parameters and lower error."""
    params, errors = np.asarray(params, float), np.asarray(errors, float)
    mask = np.ones(len(params), dtype=bool)
    for i in range(len(params)):
        no_worse = (params <= params[i]) & (errors <= errors[i])
        better = (params < params[i]) | (errors < errors[i])
        mask[i] = not np.any(no_worse & better)
    return mask


def report_figures(
    trials: pd.DataFrame, best: pd.DataFrame, test_scores: dict[str, ScoreSet]
) -> list[go.Figure]:
    """Params-vs-ACER scatter (Pareto front marked), metric distributions, best ROC curves."""
    scatter = go.Figure()
    for family, rows in trials.groupby("family"):
        scatter.add_trace(
            go.Scatter(
                x=rows["params_total"],
                y=rows["dev_acer"],
                mode="markers",
                name=family,
                text=[f"trial {t}: {h}" for t, h in zip(rows["trial"], rows["head"], strict=True)],
            )
        )
    front = trials[pareto_mask(trials["params_total"], trials["dev_acer"])]
    front = front.sort_values("params_total")
    scatter.add_trace(
        go.Scatter(
            x=front["params_total"],
            y=front["dev_acer"],
            mode="lines+markers",
            name="Pareto front",
            line={"dash": "dash", "color": "black"},
        )
    )
    scatter.update_layout(
        title="Parameters (whole model) vs dev ACER",
        xaxis_type="log",
        xaxis_title="params_total",
        yaxis_title="dev ACER",
    )

    spread = go.Figure()
    for metric in ("dev_acer", "test_acer", "test_hter"):
        spread.add_trace(go.Box(x=trials["family"], y=trials[metric], name=metric))
    spread.update_layout(title="Metric distributions per head family", boxmode="group")

    roc = go.Figure()
    for _, row in best.iterrows():
        if row["run_id"] in test_scores:
            scores = test_scores[row["run_id"]]
            _, far, frr = far_frr_curve(scores.scores, scores.labels)
            roc.add_trace(
                go.Scatter(
                    x=far,
                    y=1 - frr,
                    mode="lines",
                    name=f"{row['group']} ({row['head']}, trial {row['trial']})",
                )
            )
    roc.update_layout(
        title="Test ROC of each group's best trial",
        xaxis_title="attacks accepted (APCER pooled)",
        yaxis_title="bona fide accepted (1 - BPCER)",
    )
    return [scatter, spread, roc]


def optuna_figures(study: optuna.Study) -> dict[str, go.Figure]:
    """Optuna's history and importance plots (Pareto front for multi-objective studies)."""
    from optuna import visualization

    multi = len(study.directions) > 1
    target = (lambda t: t.values[0]) if multi else None
    figures = {
        "optuna_history": lambda: visualization.plot_optimization_history(
            study, target=target, target_name="dev ACER"
        ),
        "optuna_importance": lambda: visualization.plot_param_importances(
            study, target=target, target_name="dev ACER"
        ),
    }
    if multi:
        figures["optuna_pareto"] = lambda: visualization.plot_pareto_front(
            study, target_names=["dev ACER", "params_total"]
        )
    built = {}
    for name, make in figures.items():
        try:
            with warnings.catch_warnings():  # "few trials per regime": expected in small studies
                warnings.simplefilter("ignore", UserWarning)
                built[name] = make()
        except (ValueError, RuntimeError) as err:  # too few finished trials to say anything
            built[name] = go.Figure().update_layout(title=f"{name}: not available ({err})")
    return built


def write_html(
    path: Path,
    title: str,
    table: pd.DataFrame,
    figures: list[go.Figure],
    notes: Sequence[str] = (),
) -> Path:
    """One self-contained HTML page (plotly.js inlined once, so it opens offline).

    The table shows every figure (per-species APCER, 95 % intervals, mean ± std over settings);
    ``notes`` are lines under the title, e.g. which data the test figures come from.
    """
    shown = readable(table.drop(columns=["run_id"], errors="ignore"))
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p>{html.escape(note)}</p>" for note in notes]
    parts.append(shown.to_html(index=False))
    for i, figure in enumerate(figures):
        parts.append(figure.to_html(full_html=False, include_plotlyjs=(i == 0)))
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body>{''.join(parts)}</body></html>"
    )
    return path


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


def log_comparison(study: optuna.Study, experiment_id: str, study_name: str) -> pd.DataFrame:
    """Log the comparison (CSV, MLflow table, HTML report, Optuna plots) to the parent run."""
    runs = tracking.study_runs(experiment_id, study_name)
    trials = trial_table(runs)
    table = comparison(runs)
    states = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,))) for s in FINISHED}
    mlflow.log_metrics({f"trials_{k}": v for k, v in states.items()})
    if table.empty:
        return table
    mlflow.log_metric("best_dev_acer", float(trials["dev_acer"].min()))
    mlflow.log_table(table, "comparison.json")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        table.to_csv(folder / "comparison.csv", index=False)
        test_scores = {}
        for run_id in table["run_id"].unique():  # a family's best is often a baseline too
            path = _fetch_quietly(run_id, "scores.csv", folder / run_id)
            frame = pd.read_csv(path, keep_default_na=False)
            test_scores[run_id] = ScoreSet.from_frame(_first_setting(frame, "test"))
        figures = report_figures(trials, table, test_scores)
        plots = optuna_figures(study)
        write_html(
            folder / "report.html",
            f"Study {study_name}",
            table,
            figures + list(plots.values()),
            evaluation_notes(runs),
        )
        mlflow.log_artifact(str(folder / "comparison.csv"))
        mlflow.log_artifact(str(folder / "report.html"))
    for name, figure in plots.items():
        mlflow.log_figure(figure, f"{name}.html")
    return table


def _fetch_quietly(run_id: str, artifact: str, folder: Path) -> str:
    """Fetch a run's artifact from the tracking store into ``folder`` (a copy from the local
    store or the server: nothing from the internet) without MLflow's progress bar."""
    variable = mlflow.environment_variables.MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
    before = os.environ.get(variable.name)
    os.environ[variable.name] = "false"
    try:
        return mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact, dst_path=str(folder)
        )
    finally:
        if before is None:
            os.environ.pop(variable.name, None)
        else:
            os.environ[variable.name] = before
