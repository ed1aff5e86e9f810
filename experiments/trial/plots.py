"""Per-trial PAD plots: ROC/DET curves and the test confusion matrix at the dev EER threshold.

Figures are built as ``matplotlib.figure.Figure`` on an Agg canvas, never through ``pyplot``:
nothing is registered globally, so there is no figure to close and no backend to switch, and a
trial can hand the figure straight to ``mlflow.log_figure``. Pass ``path`` to also save a PNG.
Rates follow :mod:`experiments.metrics` (score >= threshold is accepted as bona fide).
"""

from __future__ import annotations

import os
from statistics import NormalDist

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from core.constants import BONAFIDE
from core.words import percent
from experiments.metrics import ScoreSet, auc, far_frr, far_frr_curve

# DET axes are normal deviates (ISO/IEC 19795-1 DET plots); rates of 0 or 1 would sit at
# infinity, so they are drawn at the edge of this range.
DET_LIMITS = (1e-3, 1 - 1e-3)
DET_TICKS = (0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99, 0.999)
SPLIT_COLOURS = {"dev": "tab:blue", "test": "tab:orange"}


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str] | None) -> Figure:
    if path is not None:
        fig.savefig(path, format="png", dpi=100)
    return fig


def _deviate(rates: np.ndarray) -> np.ndarray:
    """Rates on the normal-deviate (probit) scale, clipped to :data:`DET_LIMITS`."""
    clipped = np.clip(np.asarray(rates, dtype=np.float64), *DET_LIMITS)
    return np.array([NormalDist().inv_cdf(r) for r in clipped])


def roc_det_figure(
    dev: ScoreSet,
    test: ScoreSet,
    threshold: float,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """ROC (AUC in the legend) and DET curves of dev and test, the threshold's points marked.

    Left, ROC: attacks accepted (pooled APCER) against bona fide accepted (1 - BPCER), with
    the chance diagonal. Right, DET: pooled APCER against BPCER on normal-deviate axes, with
    the equal-error diagonal. On each, a circle marks where ``threshold`` (the dev EER one)
    puts dev and test, so the shift from dev to test is visible.
    """
    fig = _new_figure(11, 4.8)
    roc, det = fig.subplots(1, 2)
    for name, split in (("dev", dev), ("test", test)):
        colour = SPLIT_COLOURS[name]
        _, far, frr = far_frr_curve(split.scores, split.labels)
        area = auc(split.scores, split.labels)
        point_far, point_frr = far_frr(split.scores, split.labels, threshold)
        roc.plot(far, 1 - frr, color=colour, label=f"{name} (AUC = {area:.3f})")
        det.plot(_deviate(far), _deviate(frr), color=colour, label=name)
        mark = {"color": colour, "mec": "black", "label": f"{name} at threshold {threshold:.4g}"}
        roc.plot([point_far], [1 - point_frr], "o", **mark)
        det.plot(_deviate([point_far]), _deviate([point_frr]), "o", **mark)

    roc.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    roc.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        title="ROC",
        aspect="equal",
        xlabel="attacks accepted (pooled APCER)",
        ylabel="bona fide accepted (1 - BPCER)",
    )

    edges = _deviate(DET_LIMITS)
    det.plot(edges, edges, ":", color="grey", label="APCER = BPCER")
    ticks = _deviate(DET_TICKS)
    labels = [f"{100 * t:g}%" for t in DET_TICKS]
    det.set(
        xlim=edges,
        ylim=edges,
        title="DET",
        aspect="equal",
        xlabel="attacks accepted (pooled APCER)",
        ylabel="bona fide rejected (BPCER)",
        xticks=ticks,
        yticks=ticks,
        xticklabels=labels,
        yticklabels=labels,
    )
    for ax in (roc, det):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right" if ax is roc else "upper right", fontsize="small")
    return _save(fig, path)


def confusion_counts(test: ScoreSet, threshold: float) -> tuple[list[str], np.ndarray]:
    """Rows ("bona fide", then each attack type sorted) x (accepted, rejected) clip counts."""
    if np.isnan(threshold):
        raise ValueError("threshold must be a number, got NaN")
    accepted = test.scores >= float(threshold)
    rows = ["bona fide"]
    masks = [test.labels == BONAFIDE]
    for kind in np.unique(test.attack_types[test.labels != BONAFIDE]):
        rows.append(str(kind))
        masks.append((test.labels != BONAFIDE) & (test.attack_types == kind))
    counts = np.array([[(accepted & m).sum(), (~accepted & m).sum()] for m in masks])
    return rows, counts


def confusion_figure(
    test: ScoreSet, threshold: float, path: str | os.PathLike[str] | None = None
) -> Figure:
    """Confusion matrix of ``test`` at ``threshold``: one row per class and attack type.

    Columns are the decision (accepted as bona fide / rejected as attack); each cell shows the
    clip count and the row rate, so the bona fide row reads 1 - BPCER | BPCER and each attack
    row APCER of that type | 1 - APCER. Colour is the row rate.
    """
    rows, counts = confusion_counts(test, threshold)
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.full(counts.shape, np.nan), where=totals > 0)

    fig = _new_figure(5.5, 1.6 + 0.55 * len(rows))
    ax = fig.subplots()
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (i, j), count in np.ndenumerate(counts):
        rate = "n/a" if np.isnan(rates[i, j]) else f"{percent(rates[i, j])}%"
        colour = "white" if rates[i, j] > 0.5 else "black"
        ax.text(j, i, f"{count}\n{rate}", ha="center", va="center", color=colour)
    ax.set(
        xticks=[0, 1],
        xticklabels=["accepted\n(bona fide)", "rejected\n(attack)"],
        yticks=range(len(rows)),
        yticklabels=rows,
        xlabel="decision",
        ylabel="true class",
        title=f"test at dev EER threshold {float(threshold):.4g}",
    )
    return _save(fig, path)
