"""Every figure a trial logs, from its dev and test scores (:func:`pad_report`), over several
settings (:func:`summarise`) and back from a ``scores.csv`` (:func:`report_from_scores_frame`);
the per-species figures and the one rule for "the worst species"."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from core.constants import ATTACK, BONAFIDE
from experiments.metrics.intervals import hter_interval, mean_std, wilson_interval
from experiments.metrics.rates import (
    _species_errors,
    accuracy,
    acer,
    apcer,
    apcer_threshold,
    auc,
    bpcer,
    eer_threshold,
    hter,
    tpr_at_fpr,
)
from experiments.metrics.scores import ScoreSet

if TYPE_CHECKING:
    import pandas as pd

BPCER_OPERATING_POINTS = (20, 100)  # BPCER20, BPCER100: worst-species APCER <= 1/20, 1/100
REPORT_KEYS = (
    "dev_eer",
    "dev_threshold",
    "dev_acer",
    "test_accuracy",
    "test_auc",
    "test_apcer",
    "test_bpcer",
    "test_acer",
    "test_hter",
    "test_eer",
    "test_tpr_fpr1",
    "test_tpr_fpr01",
    "dev_bpcer20_threshold",
    "test_bpcer20",
    "test_apcer20",
    "dev_bpcer100_threshold",
    "test_bpcer100",
    "test_apcer100",
    "test_apcer_ci_low",
    "test_apcer_ci_high",
    "test_bpcer_ci_low",
    "test_bpcer_ci_high",
    "test_hter_ci_low",
    "test_hter_ci_high",
)  # then one "test_apcer_<type>" per attack type of the test split
SETTING_COLUMNS = ("fold", "repeat")  # scores.csv columns of a trial evaluated several times


# --------------------------------------------------------------------------- report


def metric_suffix(attack_type: str) -> str:
    """Attack type as a metric-name suffix: lower case, runs of other than [a-z0-9_] -> "_"."""
    return re.sub(r"[^a-z0-9_]+", "_", attack_type.lower()).strip("_") or "unnamed"


def pad_report(dev: ScoreSet, test: ScoreSet) -> dict[str, float]:
    """Every PAD metric a trial logs: thresholds chosen on dev, applied unchanged on test.

    At the dev EER threshold (:func:`eer_threshold`): ``dev_eer``, ``dev_threshold``,
    ``dev_acer``, then on test ``test_accuracy``, ``test_apcer`` (worst species),
    ``test_bpcer``, ``test_acer``, ``test_hter`` and ``test_apcer_<type>`` for each attack type
    of the test split (type through :func:`metric_suffix`).

    Threshold-free or chosen on test itself, the paper-compatible figures (what cross-domain
    papers print; never operating points, never used to choose): ``test_auc``, ``test_eer``
    (the test split's HTER at its own EER threshold, the "HTER" of SSDG, SSAN, FLIP, SAFAS) and
    ``test_tpr_fpr1`` / ``test_tpr_fpr01``, bona fide accepted where at most 1 % / 0.1 % of the
    attacks are (:func:`tpr_at_fpr`).

    ISO/IEC 30107-3 operating points: ``dev_bpcer20_threshold`` is where every dev species'
    APCER is at most 5 % (:func:`apcer_threshold`); ``test_bpcer20`` is test BPCER there and
    ``test_apcer20`` the test worst-species APCER, which shows how far the operating point
    drifted from 5 %. The same for ``bpcer100`` and 1 %.

    95 % intervals at the dev EER threshold: ``test_apcer_ci_low``/``_high`` (Wilson, for the
    worst species' own count; on a tie, the species with fewer attacks), ``test_bpcer_ci_*``
    (Wilson) and ``test_hter_ci_*`` (:func:`hter_interval`).
    """
    for name, split in (("dev", dev), ("test", test)):
        if not (split.labels == BONAFIDE).any() or not (split.labels == ATTACK).any():
            raise ValueError(
                f"{name} split needs bona fide and attack clips, got "
                f"{int((split.labels == BONAFIDE).sum())} bona fide and "
                f"{int((split.labels == ATTACK).sum())} attack: EER and APCER are undefined"
            )
    eer, threshold = eer_threshold(dev.scores, dev.labels)
    worst, per_type = apcer(test.scores, test.labels, test.attack_types, threshold)
    test_bpcer = bpcer(test.scores, test.labels, threshold)
    report = {
        "dev_eer": eer,
        "dev_threshold": threshold,
        "dev_acer": acer(dev.scores, dev.labels, dev.attack_types, threshold),
        "test_accuracy": accuracy(test.scores, test.labels, threshold),
        "test_auc": auc(test.scores, test.labels),
        "test_apcer": worst,
        "test_bpcer": test_bpcer,
        "test_acer": (worst + test_bpcer) / 2,
        "test_hter": hter(test.scores, test.labels, threshold),
        "test_eer": eer_threshold(test.scores, test.labels)[0],
        "test_tpr_fpr1": tpr_at_fpr(test.scores, test.labels, 0.01),
        "test_tpr_fpr01": tpr_at_fpr(test.scores, test.labels, 0.001),
    }
    for point in BPCER_OPERATING_POINTS:
        at = apcer_threshold(dev.scores, dev.labels, dev.attack_types, 1 / point)
        report[f"dev_bpcer{point}_threshold"] = at
        report[f"test_bpcer{point}"] = bpcer(test.scores, test.labels, at)
        report[f"test_apcer{point}"] = apcer(test.scores, test.labels, test.attack_types, at)[0]
    report.update(_intervals(test, threshold))
    for kind, value in sorted(per_type.items()):
        key = f"test_apcer_{metric_suffix(kind)}"
        if key in REPORT_KEYS:
            raise ValueError(f"attack type {kind!r} gives the metric name {key!r}: rename it")
        if key in report:
            clash = [k for k in per_type if metric_suffix(k) == metric_suffix(kind)]
            raise ValueError(f"attack types {clash} share the metric name {key!r}: rename one")
        report[key] = value
    return report


def _intervals(test: ScoreSet, threshold: float) -> dict[str, float]:
    """95 % intervals of test APCER (worst species), BPCER and HTER at ``threshold``."""
    counts = _species_errors(test.scores, test.labels, test.attack_types, threshold)
    # The worst species' interval; of several tied, the one with fewer attacks (the widest).
    tied = worst_species({kind: accepted / n for kind, (accepted, n) in counts.items()})
    worst = min(tied, key=lambda kind: counts[kind][1])
    bonafide, attacks = test.scores[test.labels == BONAFIDE], test.scores[test.labels == ATTACK]
    rejected, accepted = int((bonafide < threshold).sum()), int((attacks >= threshold).sum())
    apcer_ci = wilson_interval(*counts[worst])
    bpcer_ci = wilson_interval(rejected, bonafide.size)
    hter_ci = hter_interval(accepted, attacks.size, rejected, bonafide.size)
    return {
        "test_apcer_ci_low": apcer_ci[0],
        "test_apcer_ci_high": apcer_ci[1],
        "test_bpcer_ci_low": bpcer_ci[0],
        "test_bpcer_ci_high": bpcer_ci[1],
        "test_hter_ci_low": hter_ci[0],
        "test_hter_ci_high": hter_ci[1],
    }


DATABASE_COLUMN = "database"  # scores.csv: each clip's database, when a study has several


def database_figures(dev: ScoreSet, databases: Sequence[str], threshold: float) -> dict[str, float]:
    """Each source database's own dev figures at the pooled dev ``threshold``: ``dev_bpcer_<db>``
    and ``dev_acer_<db>`` (where the database has both classes), so one sees which source sets
    the threshold and which one the heads find hard. Names through :func:`metric_suffix`."""
    names = np.asarray(databases, dtype=object)
    if names.size != len(dev):
        raise ValueError(f"{names.size} databases for {len(dev)} dev scores: one per clip")
    figures = {}
    for name in sorted(set(names)):
        mask = names == name
        scores, labels, types = dev.scores[mask], dev.labels[mask], dev.attack_types[mask]
        key = metric_suffix(str(name))
        if (labels == BONAFIDE).any():
            figures[f"dev_bpcer_{key}"] = bpcer(scores, labels, threshold)
        if (labels == BONAFIDE).any() and (labels == ATTACK).any():
            figures[f"dev_acer_{key}"] = acer(scores, labels, types, threshold)
    return figures


SPECIES_PREFIX = "test_apcer_"  # + species: a logged per-species APCER
INTERVAL_SUFFIXES = ("_ci_low", "_ci_high")
NOT_SPECIES = ("_std", *INTERVAL_SUFFIXES)  # suffixes of figures that are not a species' APCER


def is_species_figure(name: str, split: str = "test") -> bool:
    """Whether a figure's name is a species' APCER, ``<split>_apcer_<species>`` (the one species
    filter: not a ``_std``, not an interval bound)."""
    return name.startswith(SPECIES_PREFIX.replace("test", split, 1)) and not name.endswith(
        NOT_SPECIES
    )


def species_rates(figures: Mapping[str, Any], split: str = "test") -> dict[str, float]:
    """The per-species APCER among logged figures: ``{species: rate}`` from each
    :func:`is_species_figure`, species sorted; missing values (an empty table cell) left out."""
    prefix = SPECIES_PREFIX.replace("test", split, 1)
    rates = {}
    for name in sorted(figures):
        if is_species_figure(name, split):
            value = figures[name]
            if value is not None and not (isinstance(value, float) and np.isnan(value)):
                rates[name.removeprefix(prefix)] = float(value)
    return rates


def worst_species(rates: Mapping[str, float]) -> list[str]:
    """The rule for "the worst species", used wherever one is named: every species whose APCER
    is the highest (several on a tie), sorted; empty when there are none. Whether it accepted
    any attack is the caller's to say (``max(rates.values()) == 0``). A tie is a tie to the
    last few bits: means over folds of the same fractions, summed in another order, differ in
    the last bit (0.5 and 0.49999999999999994 named one species: probe), where two APCERs that
    truly differ differ by at least one attack in all the clips."""
    if not rates:
        return []
    top = max(rates.values())
    return sorted(name for name, rate in rates.items() if math.isclose(rate, top, rel_tol=1e-12))


def summarise(
    reports: Sequence[dict[str, float]], folds: Sequence[object] | None = None
) -> dict[str, float]:
    """Figures over several settings (folds, repeats): each figure's mean, its std as ``_std``.

    One report is returned as it is. With ``folds`` (each report's fold) naming several folds,
    each trained with several seeds, each fold's figures are first averaged over its seeds and
    the std is over the folds: the spread a protocol's folds are reported with (OULU-NPU
    Protocols 3 and 4), not one of folds and seeds mixed (over 12 settings it read 39.6 % where
    the six folds' spread was 18.8 %: probe). A figure missing from some reports (an attack
    species absent from one fold's test split) is averaged over those that have it. Thresholds
    are not averaged: a mean of thresholds is no head's operating point. Every ``*threshold``
    figure is the first setting's, whose head a trial keeps (each setting's own is in
    ``settings.csv``). Nor are the 95 % intervals (``*_ci_low``/``_high``): a mean of intervals
    is no interval of the mean; the std is the spread over settings (each setting's own are in
    ``settings.csv``). Means add in the order given, so the same reports in the same order give
    the same floats.
    """
    if len(reports) == 1:
        return dict(reports[0])
    grouped: dict[object, list[dict[str, float]]] = {}
    for fold, report in zip(
        folds if folds is not None else range(len(reports)), reports, strict=True
    ):
        grouped.setdefault(fold, []).append(report)
    if 1 < len(grouped) < len(reports):  # folds, each with its seeds: a fold's mean first
        means = [summarise(group) for group in grouped.values()]
        reports = [{k: v for k, v in mean.items() if not k.endswith("_std")} for mean in means]
    summary: dict[str, float] = {}
    for key in dict.fromkeys(k for report in reports for k in report):  # first-seen order
        if key.endswith("threshold"):
            summary[key] = reports[0][key]
            continue
        if key.endswith(INTERVAL_SUFFIXES):  # a mean of intervals is no interval of the mean
            continue
        summary[key], summary[f"{key}_std"] = mean_std([r[key] for r in reports if key in r])
    return summary


def report_from_scores_frame(frame: pd.DataFrame) -> dict[str, float]:
    """:func:`pad_report` from a ``scores.csv`` frame (split, clip, subject, label, ...).

    Rows whose ``split`` is "dev" or "test" are used; any others (e.g. train) are ignored.
    With ``fold``/``repeat`` columns (:data:`SETTING_COLUMNS`), each setting is reported on its
    own, in the order its rows first appear, then :func:`summarise` gives mean and std (over
    folds where there are several). This is how a logged trial's metrics are recomputed from its
    artifact.
    """
    if "split" not in frame.columns:
        raise ValueError("scores frame lacks column 'split': expected dev and test rows")
    columns = [c for c in SETTING_COLUMNS if c in frame.columns]
    if columns:
        groups = list(frame.groupby(columns, sort=False, dropna=False))
        reports = [_setting_report(rows) for _, rows in groups]
        if "fold" not in columns or frame["fold"].isna().any():  # no folds
            return summarise(reports)
        return summarise(reports, [rows["fold"].iloc[0] for _, rows in groups])
    return _setting_report(frame)


def _setting_report(frame: pd.DataFrame) -> dict[str, float]:
    sets = {}
    for name in ("dev", "test"):
        rows = frame[frame["split"] == name]
        if rows.empty:
            raise ValueError(f"scores frame has no rows with split == {name!r}")
        try:
            sets[name] = ScoreSet.from_frame(rows)
        except ValueError as err:
            raise ValueError(f"{name} split: {err}") from None
    report = pad_report(sets["dev"], sets["test"])
    dev = frame[frame["split"] == "dev"]
    if DATABASE_COLUMN in dev.columns and dev[DATABASE_COLUMN].nunique() > 1:
        databases = dev[DATABASE_COLUMN].astype(str).to_list()
        report |= database_figures(sets["dev"], databases, report["dev_threshold"])
    return report
