"""Presentation-attack detection metrics (ISO/IEC 30107-3), computed as the Bob toolkit does.

Conventions, shared by every function here:

* ``scores`` is the probability of bona fide: higher means more bona fide.
* ``labels`` is 1 (or True) for bona fide and 0 (or False) for an attack.
* A sample is **accepted as bona fide when score >= threshold** (Bob's ``farfrr`` rule), so a
  score exactly at the threshold is accepted.
* ``attack_types`` names the presentation-attack instrument (PAI) species of each sample
  ("print/hand", "replay", ...); entries of bona fide samples are ignored.

ISO/IEC 30107-3 defines APCER (per PAI species; the worst species is reported) and BPCER.
ACER, their average, is the OULU-NPU / IJCB 2017 competition figure that the standard itself
does not define; HTER pools all attacks (Replay-Attack protocol). The decision threshold is
chosen on dev at its EER and applied unchanged on test (SPEC §4), which :func:`pad_report` does.
BPCER20 and BPCER100 (BPCER where the worst species' APCER is at most 5 % or 1 %) are the
operating points papers quote beside it.

Thresholds are chosen exactly as Bob chooses them (``bob.measure`` 6.1 ``eer_threshold`` and
``far_threshold``, ``bob.pad.base``'s ``apcer_threshold``), float for float: the tests compare
against ``bob.measure`` itself. Bob is not imported here; numpy does the work (scipy only for
a confidence level other than 95 %).
"""

from experiments.metrics.intervals import Z_95, hter_interval, mean_std, wilson_interval
from experiments.metrics.rates import (
    accuracy,
    acer,
    apcer,
    apcer_threshold,
    auc,
    bpcer,
    eer_threshold,
    far_frr,
    far_frr_curve,
    hter,
    tpr_at_fpr,
)
from experiments.metrics.report import (
    BPCER_OPERATING_POINTS,
    DATABASE_COLUMN,
    NOT_SPECIES,
    REPORT_KEYS,
    SETTING_COLUMNS,
    SPECIES_PREFIX,
    database_figures,
    is_species_figure,
    metric_suffix,
    pad_report,
    report_from_scores_frame,
    species_rates,
    summarise,
    worst_species,
)
from experiments.metrics.scores import UNNAMED_ATTACK_TYPE, ScoreSet, clip_scores

__all__ = [
    "BPCER_OPERATING_POINTS",
    "DATABASE_COLUMN",
    "NOT_SPECIES",
    "REPORT_KEYS",
    "SETTING_COLUMNS",
    "SPECIES_PREFIX",
    "UNNAMED_ATTACK_TYPE",
    "Z_95",
    "ScoreSet",
    "accuracy",
    "acer",
    "apcer",
    "apcer_threshold",
    "auc",
    "bpcer",
    "clip_scores",
    "database_figures",
    "eer_threshold",
    "far_frr",
    "far_frr_curve",
    "hter",
    "hter_interval",
    "is_species_figure",
    "mean_std",
    "metric_suffix",
    "pad_report",
    "report_from_scores_frame",
    "species_rates",
    "summarise",
    "tpr_at_fpr",
    "wilson_interval",
    "worst_species",
]
