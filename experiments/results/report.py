"""The study's HTML report: one self-contained page with its tables and every figure.

The page opens offline and carries plotly.js exactly once, compressed (4.8 MB as plotly ships
it, 2 MB packed): the browser's own ``DecompressionStream("deflate-raw")`` unpacks it as the page
loads (Chromium 80+, Firefox 113+, Safari 16.4+; also in a sandboxed frame such as MLflow's
artifact view), then each figure is drawn from its JSON. Tables are plain HTML, readable before
(or without) any script.
"""

from __future__ import annotations

import base64
import functools
import html
import re
import warnings
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import optuna
import pandas as pd
import plotly.graph_objects as go
import plotly.io
import plotly.offline

from core.words import counted
from experiments.metrics import ScoreSet, far_frr_curve
from experiments.results.tables import pareto_mask

# a figure as the tables print it: 1,234; 2.5%; 2.5 ± 0.8%; 0.973; 1 - 1.5e-05; [1.2%, 9.8%]
FIGURE = re.compile(r"(1 - )?-?[\d,.]+(e[-+]?\d+)?%?( ± [\d.]+(e[-+]?\d+)?%?)?|\[.*%\]")
PLOTLY_ID = "plotly-js"  # the one <script> that holds plotly.js
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
.banner { background: #fff3cd; border: 2px solid #d39e00; padding: .6em 1em;
          font-weight: bold; font-size: 1.15em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .9em; margin: .5em 0 1.5em; }
th, td { padding: .2em .6em; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { text-align: left; background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plot { width: 100%; max-width: 1100px; min-height: 450px; }
#plotly-status { color: #666; }
"""
# Unpack plotly.js, run it, then draw every figure; the tables never depend on this.
LOADER = """
(async () => {
  const status = document.getElementById("plotly-status");
  try {
    const packed = document.getElementById("PLOTLY_ID");
    const bytes = Uint8Array.from(atob(packed.textContent.trim()), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
    const code = await new Response(stream).text();
    window.PlotlyConfig = { MathJaxConfig: "local" };
    const script = document.createElement("script");
    script.textContent = code;
    document.head.appendChild(script);
    for (const data of document.querySelectorAll("script.figure")) {
      const figure = JSON.parse(data.textContent);
      Plotly.newPlot(data.dataset.target, figure.data, figure.layout,
                     { responsive: true, displaylogo: false });
    }
    status.remove();
  } catch (err) {
    status.textContent = "The figures could not be drawn (the tables above are complete): " + err;
  }
})();
"""


def study_figures(
    trials: pd.DataFrame, best: pd.DataFrame, test_scores: dict[str, ScoreSet]
) -> dict[str, go.Figure]:
    """Params-vs-ACER scatter (Pareto front marked), metric distributions, best ROC curves."""
    # Head parameters on a log axis: the frozen backbone adds the same 134M to every trial, so
    # the whole model's count would squeeze the heads together; the front is the same on both.
    scatter = go.Figure()
    for family, rows in trials.groupby("family"):
        scatter.add_trace(
            go.Scatter(
                x=rows["params_head"],
                y=rows["dev_acer"],
                mode="markers",
                name=family,
                text=[
                    f"trial {t}: {h}, {total:,.0f} params in all"
                    for t, h, total in zip(
                        rows["trial"], rows["head"], rows["params_total"], strict=True
                    )
                ],
            )
        )
    front = trials[pareto_mask(trials["params_head"], trials["dev_acer"])]
    front = front.sort_values("params_head")
    scatter.add_trace(  # rings around the front's trials: filled markers hid a family's (probe)
        go.Scatter(
            x=front["params_head"],
            y=front["dev_acer"],
            mode="lines+markers",
            name="Pareto front",
            line={"dash": "dash", "color": "black"},
            marker={"symbol": "circle-open", "size": 14, "color": "black"},
        )
    )
    top = max(float(trials["dev_acer"].max()), 0.01) if len(trials) else 1.0
    scatter.update_layout(
        title="Head parameters vs dev ACER (Pareto front dashed, its trials ringed)",
        # powers of ten: the labels between them ran together (600k700k800k900k: probe)
        xaxis={
            "type": "log",
            "title": "head parameters (log scale)",
            "tickformat": "~s",
            "dtick": 1,
        },
        # from a little below 0: a trial at 0 % was cut in half by the axis (no -50 % either)
        yaxis={"title": "dev ACER", "tickformat": ".1%", "range": [-0.03 * top, 1.05 * top]},
    )

    spread = go.Figure()
    for metric in ("dev_acer", "test_acer", "test_hter"):
        spread.add_trace(go.Box(x=trials["family"], y=trials[metric], name=metric))
    spread.update_layout(
        title="Metric distributions per head family",
        boxmode="group",
        yaxis={"tickformat": ".0%", "rangemode": "tozero"},
    )

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
        xaxis={"title": "attacks accepted (APCER pooled)", "tickformat": ".0%"},
        yaxis={"title": "bona fide accepted (1 - BPCER)", "tickformat": ".0%"},
    )
    return {"params_vs_dev_acer": scatter, "distributions": spread, "test_roc": roc}


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
            study, target=target, target_name="dev ACER", params=varied_params(study)
        ),
    }
    if multi:
        figures["optuna_pareto"] = lambda: visualization.plot_pareto_front(
            study, target_names=["dev ACER", "params_total"]
        )
    percent = {"optuna_history": "yaxis", "optuna_pareto": "xaxis"}  # where dev ACER is drawn
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    pruned = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))
    over = f"the {counted(len(complete), 'complete trial')}"  # what each rests on (probe)
    titles = {
        "optuna_history": f"{OPTUNA_TITLES['optuna_history']}: dev ACER of {over}"
        + (f" ({len(pruned)} pruned not drawn)" if pruned else ""),
        "optuna_importance": f"{OPTUNA_TITLES['optuna_importance']} over {over}"
        + (" (a rough guide, from so few)" if len(complete) < 30 else ""),
    }
    built = {}
    for name, make in figures.items():
        try:
            if not complete:
                raise ValueError("no complete trial")  # Optuna drew empty axes (review)
            with warnings.catch_warnings():  # "few trials per regime": expected in small studies
                warnings.simplefilter("ignore", UserWarning)
                built[name] = make()
            if name in percent:
                built[name].update_layout({percent[name]: {"tickformat": ".0%"}})
            if name in titles:
                built[name].update_layout(title=titles[name])
        except (ValueError, RuntimeError) as err:  # too few finished trials to say anything
            hidden = {"visible": False}  # not empty axes under a figure's key (probe)
            title = f"{OPTUNA_TITLES[name]}: not drawn ({err})"
            built[name] = go.Figure().update_layout(title=title, xaxis=hidden, yaxis=hidden)
    if "optuna_history" in built and len(study.trials) <= 12:  # not ticks at trial 0.5 (probe)
        built["optuna_history"].update_layout(xaxis={"dtick": 1})
    return built


OPTUNA_TITLES = {
    "optuna_history": "Optimization history",
    "optuna_importance": "Hyperparameter importances",
    "optuna_pareto": "Pareto-front",
}


def varied_params(study: optuna.Study) -> list[str]:
    """The parameters that took more than one value over the study's finished trials (of those
    every one has, as Optuna's importances read them); ValueError when fewer than two did.
    Optuna's default evaluator (fANOVA) gives a parameter that never changed a share of the
    importance: a 3-trial study whose learning rate stayed 0.001 drew it as the most important
    (probe)."""
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    shared = set.intersection(*(set(t.params) for t in trials)) if trials else set()
    varied = sorted(p for p in shared if len({repr(t.params[p]) for t in trials}) > 1)
    if len(varied) < 2:
        which = f"only {varied[0]}" if varied else "no parameter"
        raise ValueError(f"{which} varied over the {len(trials)} finished trials")
    return varied


@functools.cache
def packed_plotlyjs() -> tuple[str, int]:
    """plotly.js as the installed plotly ships it, raw-DEFLATE compressed (level 9) and
    base64-encoded, and its length in bytes once unpacked; computed once per process."""
    code = plotly.offline.get_plotlyjs().encode()
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw: no zlib or gzip framing
    packed = packer.compress(code) + packer.flush()
    return base64.b64encode(packed).decode("ascii"), len(code)


def _script_json(figure: go.Figure) -> str:
    """The figure as JSON that cannot end its <script> element early."""
    return plotly.io.to_json(figure, validate=False).replace("</", "<\\/")


def html_table(table: pd.DataFrame) -> str:
    """The table as HTML text cells, a column of figures right-aligned (the first figure column
    too: a head's name may come first or second), every other column left-aligned."""
    cells = table.astype(object).where(table.notna(), "").astype(str)
    numeric = [_figures(cells[name]) for name in cells.columns]
    head = "".join(f"<th>{html.escape(str(name))}</th>" for name in table.columns)
    rows = [
        "<tr>"
        + "".join(
            f"<td{' class=num' if right else ''}>{html.escape(text)}</td>"
            for text, right in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in cells.itertuples(index=False)
    ]
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figures(column: pd.Series) -> bool:
    filled = [text for text in column if text]
    return bool(filled) and all(FIGURE.fullmatch(text) for text in filled)


def write_html(
    path: Path,
    title: str,
    tables: Mapping[str, pd.DataFrame],
    figures: Mapping[str, go.Figure],
    notes: Sequence[str] = (),
    banner: str | None = None,
) -> Path:
    """Write the page: ``banner`` (a demonstration warning) first, the title, ``notes`` (lines
    under it), each table (heading: text cells) and each figure, plotly.js packed once.

    Tables are shown as given: format their numbers before (``comparison.readable``).
    """
    parts = [f"<p class='banner'>{html.escape(banner)}</p>"] if banner else []
    parts.append(f"<h1>{html.escape(title)}</h1>")
    parts += [f"<p>{html.escape(note)}</p>" for note in notes]
    for heading, table in tables.items():
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(f"<div class='scroll'>{html_table(table)}</div>")
    if figures:
        parts.append("<h2>Figures</h2><p id='plotly-status'>drawing the figures...</p>")
        for i, figure in enumerate(figures.values()):
            parts.append(
                f"<div class='plot' id='plot-{i}'></div><script type='application/json' "
                f"class='figure' data-target='plot-{i}'>{_script_json(figure)}</script>"
            )
        version = html.escape(plotly.offline.get_plotlyjs_version())
        packed, length = packed_plotlyjs()
        parts.append(
            f"<script type='application/octet-stream' id='{PLOTLY_ID}' "
            f"data-encoding='deflate+base64' data-length='{length}' data-version='{version}'>"
            f"{packed}</script><script>{LOADER.replace('PLOTLY_ID', PLOTLY_ID)}</script>"
        )
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(parts)}</body></html>",
        encoding="utf-8",
    )
    return path
