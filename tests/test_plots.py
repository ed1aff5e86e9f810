"""Per-trial PAD plots: they build, save as PNG and show the curves and points they claim."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from experiments.metrics import ScoreSet, eer_threshold
from experiments.trial.plots import confusion_counts, confusion_figure, roc_det_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _split(seed: int, shift: float = 0.0) -> ScoreSet:
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(20, int), np.zeros(30, int)]
    scores = np.clip(rng.normal(0.3 + 0.4 * labels + shift, 0.15), 0, 1)
    types = np.where(labels == 1, "bonafide", np.where(np.arange(50) % 3, "print", "replay"))
    return ScoreSet(scores, labels, types)


@pytest.fixture
def splits() -> tuple[ScoreSet, ScoreSet, float]:
    dev, test = _split(0), _split(1, shift=0.05)
    return dev, test, eer_threshold(dev.scores, dev.labels)[1]


def _assert_png(path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5_000


def _point(ax, label: str) -> tuple[float, float]:
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return float(line.get_xdata()[0]), float(line.get_ydata()[0])


def test_roc_det_figure_content(splits, tmp_path) -> None:
    dev, test, threshold = splits
    fig = roc_det_figure(dev, test, threshold, path=tmp_path / "roc_det.png")
    _assert_png(tmp_path / "roc_det.png")
    assert isinstance(fig, Figure) and isinstance(fig.canvas, FigureCanvasAgg)

    roc, det = fig.axes
    assert (roc.get_title(), det.get_title()) == ("ROC", "DET")
    # per split one curve and one threshold point, plus the chance / equal-error diagonal
    assert len(roc.get_lines()) == 5 and len(det.get_lines()) == 5
    legend = [t.get_text() for t in roc.get_legend().get_texts()]
    for name, split in (("dev", dev), ("test", test)):  # scikit-learn's AUC, bona fide positive
        assert f"{name} (AUC = {roc_auc_score(split.labels, split.scores):.3f})" in legend

    mark = f"at threshold {threshold:.4g}"
    for name, split in (("dev", dev), ("test", test)):  # counted here: accepted at >= threshold
        attacks, bonafide = split.scores[split.labels == 0], split.scores[split.labels == 1]
        far, frr = (attacks >= threshold).mean(), (bonafide < threshold).mean()
        assert _point(roc, f"{name} {mark}") == pytest.approx((far, 1 - frr))
        probit = NormalDist().inv_cdf
        expected = (probit(np.clip(far, 1e-3, 1 - 1e-3)), probit(np.clip(frr, 1e-3, 1 - 1e-3)))
        assert _point(det, f"{name} {mark}") == pytest.approx(expected)

    # the dev ROC curve runs from accept-all (1, 1) to reject-all (0, 0)
    (dev_curve,) = [ln for ln in roc.get_lines() if ln.get_label().startswith("dev (AUC")]
    xs, ys = dev_curve.get_xdata(), dev_curve.get_ydata()
    assert (xs[0], ys[0], xs[-1], ys[-1]) == (1.0, 1.0, 0.0, 0.0)

    # its points are scikit-learn's, and it turns at each of scikit-learn's corners (review)
    def points(x, y) -> set[tuple[float, float]]:  # 1 - FRR and TPR differ in the last bit
        return {(round(a, 12), round(b, 12)) for a, b in zip(x, y, strict=True)}

    drawn = points(xs, ys)
    every = points(*roc_curve(dev.labels, dev.scores, drop_intermediate=False)[:2])
    corners = points(*roc_curve(dev.labels, dev.scores)[:2])
    assert drawn <= every and corners <= drawn and len(corners) > 3
    assert "APCER" in roc.get_xlabel() and "BPCER" in det.get_ylabel()


def test_roc_det_figure_without_path_saves_nothing(splits, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    dev, test, threshold = splits
    roc_det_figure(dev, test, threshold)
    assert list(tmp_path.iterdir()) == []


def test_roc_det_figure_refuses_a_single_class_split(splits) -> None:
    dev, _, threshold = splits
    with pytest.raises(ValueError, match="no attack samples"):
        roc_det_figure(dev, ScoreSet([0.9, 0.8], [1, 1]), threshold)


# bona fide 0.9 0.7 0.5 0.3 | print 0.6 0.4 0.2 0.1 | replay 0.8 0.5, threshold 0.5 (>= accepts)
HAND = ScoreSet(
    [0.9, 0.7, 0.5, 0.3, 0.6, 0.4, 0.2, 0.1, 0.8, 0.5],
    [1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
    ["bonafide"] * 4 + ["print"] * 4 + ["replay"] * 2,
)


def test_confusion_counts_hand_computed() -> None:
    rows, counts = confusion_counts(HAND, 0.5)
    assert rows == ["bona fide", "print", "replay"]
    # accepted / rejected: bona fide 3/1, print 1/3 (0.6), replay 2/0 (0.5 is on the threshold)
    assert counts.tolist() == [[3, 1], [1, 3], [2, 0]]


def test_confusion_figure_content(tmp_path) -> None:
    fig = confusion_figure(HAND, 0.5, path=tmp_path / "confusion.png")
    _assert_png(tmp_path / "confusion.png")
    (ax,) = fig.axes
    assert "0.5" in ax.get_title()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["bona fide", "print", "replay"]
    (image,) = ax.get_images()
    np.testing.assert_allclose(image.get_array(), [[0.75, 0.25], [0.25, 0.75], [1.0, 0.0]])
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["3\n75.0%", "1\n25.0%", "1\n25.0%", "3\n75.0%", "2\n100.0%", "0\n0.0%"]


def test_confusion_figure_with_an_empty_row() -> None:
    # no bona fide clip: its row has no rate rather than a division by zero
    fig = confusion_figure(ScoreSet([0.2, 0.7], [0, 0], ["print", "print"]), 0.5)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[:2] == ["0\nn/a", "0\nn/a"] and texts[2:] == ["1\n50.0%", "1\n50.0%"]


def test_confusion_refuses_a_nan_threshold() -> None:
    with pytest.raises(ValueError, match="threshold must be a number"):
        confusion_figure(HAND, float("nan"))
