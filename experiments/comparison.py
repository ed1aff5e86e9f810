"""The study's comparison of heads: a table, its Markdown, an HTML report with plots, all logged.

Everything is computed from the trial runs in MLflow, so the sweep's closing comparison
(:func:`log_comparison`, on the study's parent run) and ``experiments/compare.py`` agree, and
trials of earlier invocations of a study are included.
"""

from __future__ import annotations

import html
import tempfile
import warnings
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.trial import TrialState

from experiments import tracking
from experiments.metrics import REPORT_KEYS, ScoreSet, far_frr_curve

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

METRICS = ("params_total", "params_head", *REPORT_KEYS)
COLUMNS = ("group", "head", "trial", "output", *METRICS, "run_id")


def trial_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished trial run: head, family, output, baseline name and every metric."""
    done = runs[runs["status"] == "FINISHED"] if not runs.empty else runs
    if done.empty:
        return pd.DataFrame(columns=["trial", "head", "family", "output", "baseline", *METRICS])
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
    for metric in METRICS:  # runs logged before a figure existed show it empty
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
    return table.reindex(columns=list(COLUMNS))


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table: counts with thousands separators, rates with 4 decimals."""

    def cell(column: str, value) -> str:
        if pd.isna(value):
            return ""
        if column.startswith("params_") or column == "trial":
            return f"{int(value):,}"
        if isinstance(value, float):
            return f"{value:.4f}"
        return str(value)

    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(cell(c, row[c]) for c in columns) + " |")
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


def write_html(path: Path, title: str, table: pd.DataFrame, figures: list[go.Figure]) -> Path:
    """One self-contained HTML page (plotly.js inlined once, so it opens offline)."""
    parts = [f"<h1>{html.escape(title)}</h1>", table.to_html(index=False, float_format="%.4f")]
    for i, figure in enumerate(figures):
        parts.append(figure.to_html(full_html=False, include_plotlyjs=(i == 0)))
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body>{''.join(parts)}</body></html>"
    )
    return path


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
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="scores.csv", dst_path=str(folder / run_id)
            )
            frame = pd.read_csv(path, keep_default_na=False)
            test_scores[run_id] = ScoreSet.from_frame(frame[frame["split"] == "test"])
        figures = report_figures(trials, table, test_scores)
        plots = optuna_figures(study)
        write_html(
            folder / "report.html",
            f"Study {study_name}",
            table,
            figures + list(plots.values()),
        )
        mlflow.log_artifact(str(folder / "comparison.csv"))
        mlflow.log_artifact(str(folder / "report.html"))
    for name, figure in plots.items():
        mlflow.log_figure(figure, f"{name}.html")
    return table
