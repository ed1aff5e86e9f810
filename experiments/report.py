"""The study's HTML report: one self-contained page with its tables and every figure.

The page opens offline and carries plotly.js exactly once, compressed (4.8 MB as plotly ships
it, 2 MB packed): a small DEFLATE decoder in the page unpacks it as the page loads, then each
figure is drawn from its JSON. Tables are plain HTML, readable before (or without) any script.
"""

from __future__ import annotations

import base64
import functools
import html
import warnings
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
import plotly.io
import plotly.offline

from experiments.metrics import ScoreSet, far_frr_curve

PLOTLY_ID = "plotly-js"  # the one <script> that holds plotly.js
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
.banner { background: #fff3cd; border: 2px solid #d39e00; padding: .6em 1em;
          font-weight: bold; font-size: 1.15em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .9em; margin: .5em 0 1.5em; }
th, td { padding: .2em .6em; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { text-align: left; background: #f4f4f4; }
td { text-align: right; font-variant-numeric: tabular-nums; }
td:first-child, td:nth-child(2) { text-align: left; }
.plot { width: 100%; max-width: 1100px; min-height: 450px; }
#plotly-status { color: #666; }
"""
# RFC 1951 DEFLATE decoder (after zlib's puff.c): synchronous, so the figures are drawn while
# the page loads, in any browser and in a sandboxed frame such as MLflow's artifact view.
INFLATE = """
function inflate(data, size) {
  const out = new Uint8Array(size);
  let pos = 0, at = 0, buf = 0, cnt = 0;
  const bits = (need) => {
    let v = buf;
    while (cnt < need) { v |= data[pos++] << cnt; cnt += 8; }
    buf = v >>> need; cnt -= need;
    return v & ((1 << need) - 1);
  };
  const huff = (lengths) => {
    const count = new Uint16Array(16), offs = new Uint16Array(16);
    const symbol = new Uint16Array(lengths.length);
    for (const n of lengths) count[n]++;
    for (let n = 1; n < 15; n++) offs[n + 1] = offs[n] + count[n];
    lengths.forEach((n, s) => { if (n) symbol[offs[n]++] = s; });
    return { count, symbol };
  };
  const decode = (h) => {
    let code = 0, first = 0, index = 0;
    for (let n = 1; n < 16; n++) {
      code |= bits(1);
      const c = h.count[n];
      if (code - c < first) return h.symbol[index + code - first];
      index += c; first = (first + c) << 1; code <<= 1;
    }
    throw new Error("corrupt deflate data");
  };
  const LBASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83,
    99, 115, 131, 163, 195, 227, 258];
  const LEXT = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5,
    5, 5, 0];
  const DBASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769,
    1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
  const DEXT = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11,
    11, 12, 12, 13, 13];
  const codes = (lencode, distcode) => {
    for (;;) {
      let sym = decode(lencode);
      if (sym < 256) { out[at++] = sym; continue; }
      if (sym === 256) return;
      sym -= 257;
      const len = LBASE[sym] + bits(LEXT[sym]);
      const d = decode(distcode);
      const dist = DBASE[d] + bits(DEXT[d]);
      for (let i = 0; i < len; i++, at++) out[at] = out[at - dist];
    }
  };
  const fixed = new Uint8Array(288).map((_, s) => (s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8));
  const ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
  let last;
  do {
    last = bits(1);
    const type = bits(2);
    if (type === 0) {
      buf = 0; cnt = 0;
      const len = data[pos] | (data[pos + 1] << 8);
      pos += 4;
      out.set(data.subarray(pos, pos + len), at); pos += len; at += len;
    } else if (type === 1) {
      codes(huff(fixed), huff(new Uint8Array(30).fill(5)));
    } else if (type === 2) {
      const nlen = bits(5) + 257, ndist = bits(5) + 1, ncode = bits(4) + 4;
      const order = new Uint8Array(19);
      for (let i = 0; i < ncode; i++) order[ORDER[i]] = bits(3);
      const lencode = huff(order), lengths = new Uint8Array(nlen + ndist);
      for (let i = 0; i < nlen + ndist; ) {
        const sym = decode(lencode);
        if (sym < 16) { lengths[i++] = sym; continue; }
        const value = sym === 16 ? lengths[i - 1] : 0;
        let repeat = sym === 16 ? 3 + bits(2) : sym === 17 ? 3 + bits(3) : 11 + bits(7);
        while (repeat--) lengths[i++] = value;
      }
      codes(huff(lengths.subarray(0, nlen)), huff(lengths.subarray(nlen)));
    } else {
      throw new Error("corrupt deflate data");
    }
  } while (!last);
  return out;
}
"""
# Unpack plotly.js, run it, then draw every figure; the tables never depend on this.
LOADER = """
(() => {
  const status = document.getElementById("plotly-status");
  try {
    const packed = document.getElementById("PLOTLY_ID");
    const bytes = Uint8Array.from(atob(packed.textContent.trim()), (c) => c.charCodeAt(0));
    const code = inflate(bytes, Number(packed.dataset.length));
    window.PlotlyConfig = { MathJaxConfig: "local" };
    const script = document.createElement("script");
    script.textContent = new TextDecoder().decode(code);
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


def pareto_mask(params: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Trials no other trial beats on both fewer parameters and lower error."""
    params, errors = np.asarray(params, float), np.asarray(errors, float)
    mask = np.ones(len(params), dtype=bool)
    for i in range(len(params)):
        no_worse = (params <= params[i]) & (errors <= errors[i])
        better = (params < params[i]) | (errors < errors[i])
        mask[i] = not np.any(no_worse & better)
    return mask


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
    scatter.add_trace(
        go.Scatter(
            x=front["params_head"],
            y=front["dev_acer"],
            mode="lines+markers",
            name="Pareto front",
            line={"dash": "dash", "color": "black"},
        )
    )
    scatter.update_layout(
        title="Head parameters vs dev ACER (Pareto front dashed)",
        xaxis={"type": "log", "title": "head parameters (log scale)", "tickformat": "~s"},
        yaxis={"title": "dev ACER", "tickformat": ".1%"},
    )

    spread = go.Figure()
    for metric in ("dev_acer", "test_acer", "test_hter"):
        spread.add_trace(go.Box(x=trials["family"], y=trials[metric], name=metric))
    spread.update_layout(
        title="Metric distributions per head family",
        boxmode="group",
        yaxis={"tickformat": ".0%"},
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
            study, target=target, target_name="dev ACER"
        ),
    }
    if multi:
        figures["optuna_pareto"] = lambda: visualization.plot_pareto_front(
            study, target_names=["dev ACER", "params_total"]
        )
    percent = {"optuna_history": "yaxis", "optuna_pareto": "xaxis"}  # where dev ACER is drawn
    built = {}
    for name, make in figures.items():
        try:
            with warnings.catch_warnings():  # "few trials per regime": expected in small studies
                warnings.simplefilter("ignore", UserWarning)
                built[name] = make()
            if name in percent:
                built[name].update_layout({percent[name]: {"tickformat": ".0%"}})
        except (ValueError, RuntimeError) as err:  # too few finished trials to say anything
            built[name] = go.Figure().update_layout(title=f"{name}: not available ({err})")
    return built


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
        parts.append(f"<div class='scroll'>{table.to_html(index=False, na_rep='')}</div>")
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
            f"{packed}</script><script>{INFLATE}{LOADER.replace('PLOTLY_ID', PLOTLY_ID)}</script>"
        )
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(parts)}</body></html>",
        encoding="utf-8",
    )
    return path
