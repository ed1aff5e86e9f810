"""PAD metrics against hand-computed cases (ISO/IEC 30107-3, Bob's conventions) and Bob itself.

The hand-worked cases run everywhere. :class:`TestAgainstBobMeasure` at the end compares every
threshold and rate with ``bob.measure`` on many random score sets, and fails, never skips, where
it is not installed (the README's test command installs it: ``pip install --no-deps
bob.measure==6.1.1``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments.metrics import (
    REPORT_KEYS,
    ScoreSet,
    accuracy,
    acer,
    apcer,
    apcer_threshold,
    auc,
    bpcer,
    clip_scores,
    eer_threshold,
    far_frr,
    far_frr_curve,
    hter,
    hter_interval,
    mean_std,
    metric_suffix,
    pad_report,
    report_from_scores_frame,
    summarise,
    tpr_at_fpr,
    wilson_interval,
    worst_species,
)
from tests.reference import auc_agrees, bob_measure

# Case A: 4 bona fide, 6 attacks of two unbalanced types (4 print, 2 replay).
#   bona fide  0.9 0.7 0.5 0.3
#   print      0.6 0.4 0.2 0.1
#   replay     0.8 0.5
A_SCORES = np.array([0.9, 0.7, 0.5, 0.3, 0.6, 0.4, 0.2, 0.1, 0.8, 0.5])
A_LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
A_TYPES = np.array(["bonafide"] * 4 + ["print"] * 4 + ["replay"] * 2)
A_THRESHOLD = 0.5  # two scores sit exactly on it: bona fide 0.5 and replay 0.5


def case_a() -> ScoreSet:
    return ScoreSet(A_SCORES, A_LABELS, A_TYPES)


# ------------------------------------------------------------------ error rates at a threshold


def test_bpcer_hand_computed() -> None:
    # At 0.5 only the bona fide 0.3 is rejected (0.5 >= 0.5 is accepted): 1/4.
    assert bpcer(A_SCORES, A_LABELS, A_THRESHOLD) == pytest.approx(0.25)


def test_apcer_per_type_and_max() -> None:
    # print: 0.6 accepted of 4 -> 1/4; replay: 0.8 and 0.5 (on the threshold) accepted -> 2/2.
    worst, per_type = apcer(A_SCORES, A_LABELS, A_TYPES, A_THRESHOLD)
    assert per_type == pytest.approx({"print": 0.25, "replay": 1.0})
    assert worst == pytest.approx(1.0)


def test_apcer_max_is_worst_type_not_pooled() -> None:
    # Pooled, 3 of 6 attacks get through (0.5), but one type always does: APCER is 1.0.
    worst, _ = apcer(A_SCORES, A_LABELS, A_TYPES, A_THRESHOLD)
    far, _ = far_frr(A_SCORES, A_LABELS, A_THRESHOLD)
    assert far == pytest.approx(0.5)
    assert worst == pytest.approx(1.0)


def test_acer_hand_computed() -> None:
    # (APCER max 1.0 + BPCER 0.25) / 2
    assert acer(A_SCORES, A_LABELS, A_TYPES, A_THRESHOLD) == pytest.approx(0.625)


def test_hter_pools_attacks_and_differs_from_acer() -> None:
    # FAR pooled 3/6 = 0.5, FRR 1/4 -> HTER 0.375, while ACER (worst type) is 0.625.
    assert far_frr(A_SCORES, A_LABELS, A_THRESHOLD) == pytest.approx((0.5, 0.25))
    assert hter(A_SCORES, A_LABELS, A_THRESHOLD) == pytest.approx(0.375)
    assert hter(A_SCORES, A_LABELS, A_THRESHOLD) != pytest.approx(
        acer(A_SCORES, A_LABELS, A_TYPES, A_THRESHOLD)
    )


def test_hter_equals_acer_with_one_attack_type() -> None:
    # With a single type, worst-type APCER is the pooled FAR, so the two agree.
    assert hter(A_SCORES, A_LABELS, A_THRESHOLD) == pytest.approx(
        acer(A_SCORES, A_LABELS, None, A_THRESHOLD)
    )


def test_accuracy_hand_computed() -> None:
    # Correct: bona fide accepted 3 (0.9 0.7 0.5), attacks rejected 3 (0.4 0.2 0.1): 6/10.
    assert accuracy(A_SCORES, A_LABELS, A_THRESHOLD) == pytest.approx(0.6)


def test_score_exactly_at_threshold_is_accepted() -> None:
    just_above = float(np.nextafter(0.5, 1.0))
    assert bpcer([0.5], [1], 0.5) == 0.0
    assert bpcer([0.5], [1], just_above) == 1.0
    assert apcer([0.5], [0], None, 0.5) == (1.0, {"attack": 1.0})
    assert apcer([0.5], [0], None, just_above) == (0.0, {"attack": 0.0})
    assert accuracy([0.5, 0.5], [True, False], 0.5) == 0.5


def test_boolean_labels_work_as_integers() -> None:
    as_bool = A_LABELS.astype(bool)
    assert acer(A_SCORES, as_bool, A_TYPES, A_THRESHOLD) == pytest.approx(0.625)
    assert auc(A_SCORES, as_bool) == auc(A_SCORES, A_LABELS)


# ------------------------------------------------------------------ AUC


def test_auc_hand_computed_with_a_tie() -> None:
    # 4 x 6 = 24 pairs; bona fide beating attacks: 0.9 -> 6, 0.7 -> 5 (not 0.8),
    # 0.5 -> 3 + 1/2 for the tie with replay 0.5, 0.3 -> 2 (0.2, 0.1). 16.5 / 24.
    assert auc(A_SCORES, A_LABELS) == pytest.approx(16.5 / 24)


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_brute_force_pair_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 60)
    labels[:2] = (0, 1)
    scores = np.round(rng.random(60), 1)  # rounding makes many ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    assert auc(scores, labels) == pytest.approx(wins / (pos.size * neg.size))


def test_auc_extremes() -> None:
    assert auc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
    assert auc([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0]) == 0.0
    assert auc([0.5, 0.5, 0.5], [1, 0, 0]) == 0.5


def test_auc_is_the_area_under_the_far_frr_curve() -> None:
    _, far, frr = far_frr_curve(A_SCORES, A_LABELS)
    # far falls from 1 to 0: integrate (1 - frr) over far with the trapezoid rule.
    area = float(np.sum((far[:-1] - far[1:]) * ((1 - frr[:-1]) + (1 - frr[1:])) / 2))
    assert auc(A_SCORES, A_LABELS) == pytest.approx(area)


# ------------------------------------------------------------------ EER


def test_eer_hand_computed() -> None:
    # Bob's scan over A's distinct scores; after passing every score <= u, (attacks accepted / 6,
    # bona fide rejected / 4) and |FAR - FRR|:
    #   <= 0.4: 3/6, 1/4 -> 1/4;  <= 0.5: 2/6, 2/4 -> 1/6 (smallest);  <= 0.6: 1/6, 2/4 -> 1/3.
    # The threshold is the midpoint of 0.5 and the next score, 0.6; EER = (1/3 + 1/2) / 2.
    eer, threshold = eer_threshold(A_SCORES, A_LABELS)
    assert threshold == (0.5 + 0.6) / 2
    assert eer == pytest.approx(5 / 12)


def test_eer_on_a_separable_set_is_zero_at_the_middle_of_the_gap() -> None:
    bona, attacks = [0.7, 0.8, 0.9], [0.1, 0.2, 0.3]
    eer, threshold = eer_threshold(bona + attacks, [1, 1, 1, 0, 0, 0])
    assert eer == 0.0
    assert threshold == (0.3 + 0.7) / 2
    assert hter(bona + attacks, [1, 1, 1, 0, 0, 0], threshold) == 0.0


def test_eer_on_a_reversed_set_is_one_between_the_classes() -> None:
    # Every attack above every bona fide: once the bona fide run out (FAR 1, FRR 1, gap 0) the
    # threshold is the midpoint of 0.2 and 0.8, which accepts every attack, rejects every bona fide.
    assert eer_threshold([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == (1.0, 0.5)


def test_eer_tie_with_the_state_where_a_class_runs_out_keeps_the_earlier() -> None:
    # bona fide 0.5, attacks 0.3 0.7. After 0.3: FAR 1/2, FRR 0, gap 1/2 (threshold 0.4).
    # After 0.5 the bona fide are used up: FAR 1/2, FRR 1, gap 1/2 again. Bob checks that last
    # state with a strict <, so 0.4 stays.
    assert eer_threshold([0.5, 0.3, 0.7], [1, 0, 0]) == (0.25, 0.4)
    # bona fide 0.5 0.9, attacks 0.1 0.5: after 0.1 gap 1/2 at 0.3; after 0.5 the attacks are
    # used up with gap 1/2 too: 0.3 stays.
    assert eer_threshold([0.5, 0.9, 0.1, 0.5], [1, 1, 0, 0]) == (0.25, 0.3)


def test_eer_tie_before_a_class_runs_out_goes_to_the_later_state() -> None:
    # attacks 0.2 0.2 0.2 0.7, bona fide 0.5 0.7 (quarters and halves: exact floats).
    # After 0.2: FAR 1/4, FRR 0, gap 1/4 at 0.35; after 0.5: FAR 1/4, FRR 1/2, gap 1/4 at 0.6.
    # Inside the loop Bob keeps the later of equal gaps (<=), even with the higher EER 3/8.
    scores = [0.2, 0.2, 0.2, 0.7, 0.5, 0.7]
    assert eer_threshold(scores, [0, 0, 0, 0, 1, 1]) == (3 / 8, 0.6)


def test_eer_float_rounding_splits_a_tie_as_bob_does() -> None:
    # attacks 0.1 0.1 0.5 0.9 0.9, bona fide 0.5 0.5. Exactly, the gaps at 0.3 (FAR 3/5, FRR 0)
    # and at 0.7 (FAR 2/5, FRR 1) are both 0.6 and 0.3 would stay. Bob's running sum
    # 1 - 0.2 - 0.2 is 0.6000000000000001 and 1 - (1 - 0.2 - 0.2 - 0.2) is 0.5999999999999999,
    # so the later state is strictly smaller and 0.7 wins, rejecting every bona fide.
    assert 1.0 - 0.2 - 0.2 > 0.6 > 1.0 - (1.0 - 0.2 - 0.2 - 0.2)
    scores = [0.1, 0.1, 0.5, 0.9, 0.9, 0.5, 0.5]
    assert eer_threshold(scores, [0, 0, 0, 0, 0, 1, 1]) == ((2 / 5 + 1.0) / 2, 0.7)


def test_eer_midpoint_of_adjacent_floats_rounds_onto_the_lower() -> None:
    # Separable, but no float lies strictly between 0.5 and the next float up: the midpoint
    # rounds to 0.5 (ties to even), which accepts the attack. Bob reports EER 1/2 here.
    above = float(np.nextafter(0.5, 1.0))
    assert (0.5 + above) / 2 == 0.5
    assert eer_threshold([0.5, above], [0, 1]) == (0.5, 0.5)
    # Near 0.3 the rounding goes up instead, and the set is separated.
    above = float(np.nextafter(0.3, 1.0))
    assert eer_threshold([0.3, above], [0, 1]) == (0.0, above)


def test_eer_of_all_equal_scores_accepts_everything() -> None:
    # Only two states: accept all (gap 1) and all passed (gap 1, with threshold the score itself).
    assert eer_threshold([0.5, 0.5, 0.5], [1, 0, 0]) == (0.5, 0.5)


def test_eer_with_a_single_sample_per_class() -> None:
    assert eer_threshold([0.8, 0.2], [1, 0]) == (0.0, 0.5)
    assert eer_threshold([0.2, 0.8], [1, 0]) == (1.0, 0.5)


@pytest.mark.parametrize("seed", range(20))
def test_eer_on_random_separable_and_reversed_sets(seed: int) -> None:
    rng = np.random.default_rng(seed)
    low, high = rng.random(rng.integers(1, 30)) * 0.5, 0.5 + rng.random(rng.integers(1, 30)) / 2
    scores = np.r_[low, high]
    separable = np.r_[np.zeros(low.size, int), np.ones(high.size, int)]
    assert eer_threshold(scores, separable) == (0.0, (low.max() + high.min()) / 2)
    assert eer_threshold(scores, 1 - separable) == (1.0, (low.max() + high.min()) / 2)


def test_far_frr_curve_ends_and_monotone() -> None:
    thresholds, far, frr = far_frr_curve(A_SCORES, A_LABELS)
    assert thresholds.size == np.unique(A_SCORES).size + 1
    assert np.all(np.diff(thresholds) > 0)
    assert thresholds[-1] > A_SCORES.max()
    assert (far[0], frr[0], far[-1], frr[-1]) == (1.0, 0.0, 0.0, 1.0)
    assert np.all(np.diff(far) <= 0) and np.all(np.diff(frr) >= 0)


# ------------------------------------------------------------------ APCER threshold (BPCER20)


def _attacks(*species: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores, labels and types of one bona fide clip (0.99) and the given attack species."""
    scores = np.concatenate([[0.99], *species])
    labels = np.r_[1, np.zeros(scores.size - 1, int)]
    types = np.concatenate([["bonafide"], *[[f"pai{i}"] * len(s) for i, s in enumerate(species)]])
    return scores, labels, types


def test_apcer_threshold_is_the_lowest_score_within_the_target() -> None:
    # 20 attacks 0.01 .. 0.20: at 0.20 one is accepted, 1/20 = 5 % is not over 5 %.
    scores, labels, types = _attacks([i / 100 for i in range(1, 21)])
    assert apcer_threshold(scores, labels, types, 0.05) == 0.20
    assert apcer(scores, labels, types, 0.20)[0] == 0.05
    # 1 % of 20 admits no attack: just above the highest.
    assert apcer_threshold(scores, labels, types, 0.01) == np.nextafter(0.20, 1.0)
    # A third of 20 admits 6: the sixth highest score, 0.15.
    assert apcer_threshold(scores, labels, types, 1 / 3) == 0.15


def test_apcer_threshold_does_not_split_ties() -> None:
    # Two attacks share the top score: accepting one means accepting both, 2/20 > 5 %.
    scores, labels, types = _attacks([0.9, 0.9] + [i / 100 for i in range(1, 19)])
    assert apcer_threshold(scores, labels, types, 0.05) == np.nextafter(0.9, 1.0)
    assert apcer_threshold(scores, labels, types, 0.10) == 0.9


def test_apcer_threshold_takes_the_worst_species() -> None:
    # pai0 alone would allow 0.20; pai1 (4 attacks, any accepted is 25 %) needs above 0.5.
    scores, labels, types = _attacks([i / 100 for i in range(1, 21)], [0.5, 0.4, 0.3, 0.2])
    threshold = apcer_threshold(scores, labels, types, 0.05)
    assert threshold == np.nextafter(0.5, 1.0)
    _, per_type = apcer(scores, labels, types, threshold)
    assert per_type == {"pai0": 0.0, "pai1": 0.0}


def test_apcer_threshold_extremes() -> None:
    scores, labels, types = _attacks([0.3, 0.1, 0.2])
    # Target 1 (Bob's shortcut): just below the lowest attack, accepting every one.
    assert apcer_threshold(scores, labels, types, 1.0) == np.nextafter(0.1, 0.0)
    assert apcer_threshold(scores, labels, types, 0.0) == np.nextafter(0.3, 1.0)
    # A single attack (Bob refuses fewer than two): just above it unless the target is 1.
    assert apcer_threshold([0.9, 0.4], [1, 0], None, 0.05) == np.nextafter(0.4, 1.0)
    # Bona fide scores play no part.
    assert apcer_threshold([0.0, 0.4, 0.5], [1, 0, 0], None, 0.5) == 0.5


# ------------------------------------------------------------------ intervals and spread


@pytest.mark.parametrize(
    ("errors", "n", "low", "high"),
    [
        # Wilson 95 % bounds to 4 decimals (checked to 1e-12 against scipy below).
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (1, 2, 0.0945, 0.9055),
    ],
)
def test_wilson_interval_known_values(errors: int, n: int, low: float, high: float) -> None:
    assert wilson_interval(errors, n) == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_ends_are_exact_and_inside_the_unit_range() -> None:
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    for n in (1, 7, 100):
        for k in range(n + 1):
            low, high = wilson_interval(np.int64(k), n)
            assert 0.0 <= low <= k / n <= high <= 1.0


@pytest.mark.parametrize(("errors", "n"), [(0, 10), (3, 10), (5, 10), (10, 10), (17, 250)])
@pytest.mark.parametrize("confidence", [0.95, 0.9, 0.99])
def test_wilson_interval_matches_scipy(errors: int, n: int, confidence: float) -> None:
    ci = stats.binomtest(errors, n).proportion_ci(confidence, method="wilson")
    assert wilson_interval(errors, n, confidence) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_hter_interval_hand_computed() -> None:
    # FAR 20/100, FRR 10/50: HTER 0.2, sigma = sqrt(.2 * .8 / 400 + .2 * .8 / 200) = sqrt(.0012).
    half = 1.959963984540054 * math.sqrt(0.0012)
    assert hter_interval(20, 100, 10, 50) == pytest.approx((0.2 - half, 0.2 + half))
    # At 90 %, z = 1.6448536269514722 (scipy.stats.norm.ppf(0.95)).
    half = 1.6448536269514722 * math.sqrt(0.0012)
    assert hter_interval(20, 100, 10, 50, confidence=0.9) == pytest.approx((0.2 - half, 0.2 + half))


def test_hter_interval_clips_and_degenerates_as_documented() -> None:
    # FAR 1/4, FRR 0: 0.125 -/+ 1.96 * sqrt(3/16 / 16) = 0.125 -/+ 0.212: clipped at 0.
    low, high = hter_interval(1, 4, 0, 4)
    assert low == 0.0
    assert high == pytest.approx(0.125 + 1.959963984540054 * math.sqrt(3 / 256))
    # No errors at all: the normal approximation has no width.
    assert hter_interval(0, 5, 0, 5) == (0.0, 0.0)
    assert hter_interval(5, 5, 5, 5) == (1.0, 1.0)


def test_mean_std() -> None:
    assert mean_std([1, 2, 3, 4]) == pytest.approx((2.5, math.sqrt(5 / 3)))
    assert mean_std(np.array([0.3])) == (0.3, 0.0)
    assert mean_std([0.2, 0.2]) == (0.2, 0.0)
    mean, std = mean_std([0.1, 0.4])
    assert type(mean) is float and type(std) is float


# ------------------------------------------------------------------ report

# Dev is case A: EER threshold 0.6. Test is shifted up so its own EER threshold would be 0.7.
#   bona fide  0.9 0.8 0.7 0.65
#   print      0.62 0.1
#   replay     0.75 0.3
T_SCORES = np.array([0.9, 0.8, 0.7, 0.65, 0.62, 0.1, 0.75, 0.3])
T_LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0])
T_TYPES = np.array(["bonafide"] * 4 + ["print"] * 2 + ["replay"] * 2)


def case_t() -> ScoreSet:
    return ScoreSet(T_SCORES, T_LABELS, T_TYPES)


def test_report_applies_the_dev_threshold_unchanged_on_test() -> None:
    report = pad_report(case_a(), case_t())
    assert set(report) == set(REPORT_KEYS) | {"test_apcer_print", "test_apcer_replay"}
    # What choosing on test would give: after 0.65 FAR 1/4 = FRR 1/4, midpoint with 0.7.
    assert eer_threshold(T_SCORES, T_LABELS) == (0.25, (0.65 + 0.7) / 2)
    just_above_replay = float(np.nextafter(0.8, 1.0))
    expected = {
        "dev_eer": 5 / 12,
        "dev_threshold": 0.55,
        # dev at 0.55: bona fide 0.5 0.3 rejected -> 1/2; print 1/4, replay 1/2 -> (1/2+1/2)/2
        "dev_acer": 0.5,
        # test at 0.55: every bona fide accepted; print 0.62 and replay 0.75 accepted.
        "test_bpcer": 0.0,
        "test_apcer_print": 0.5,
        "test_apcer_replay": 0.5,
        "test_apcer": 0.5,
        "test_acer": 0.25,
        "test_hter": (2 / 4 + 0.0) / 2,
        "test_accuracy": 6 / 8,
        # pairs won: 0.9 -> 4, 0.8 -> 4, 0.7 -> 3, 0.65 -> 3 of 16
        "test_auc": 14 / 16,
        "test_eer": 0.25,
        # no attack accepted (FPR 0 <= 1 %, 0.1 %) above the replay at 0.75: bona fide 0.8, 0.9
        "test_tpr_fpr1": 2 / 4,
        "test_tpr_fpr01": 2 / 4,
        # Dev species have 4 and 2 attacks: any accepted attack is over 1 %, 5 %, so each
        # threshold sits just above the species' highest score, and replay's 0.8 is the higher.
        "dev_bpcer20_threshold": just_above_replay,
        "dev_bpcer100_threshold": just_above_replay,
        # test above 0.8: only bona fide 0.9 accepted, no attack.
        "test_bpcer20": 3 / 4,
        "test_bpcer100": 3 / 4,
        "test_apcer20": 0.0,
        "test_apcer100": 0.0,
        # Wilson for 1 of 2 (worst species) and 0 of 4; HTER 1/4 -/+ 1.96 * sqrt(1/4 / 16).
        "test_apcer_ci_low": 0.0945312057342307,
        "test_apcer_ci_high": 0.9054687942657693,
        "test_bpcer_ci_low": 0.0,
        "test_bpcer_ci_high": 0.4898908364545973,
        "test_hter_ci_low": 0.25 - 1.959963984540054 * 0.125,
        "test_hter_ci_high": 0.25 + 1.959963984540054 * 0.125,
    }
    assert report == pytest.approx(expected, rel=1e-12)
    assert report["dev_threshold"] == (0.5 + 0.6) / 2
    assert all(type(v) is float for v in report.values())


def test_report_keys_are_the_report_keys_in_order() -> None:
    report = pad_report(case_a(), case_t())
    assert list(report)[: len(REPORT_KEYS)] == list(REPORT_KEYS)
    assert len(set(REPORT_KEYS)) == len(REPORT_KEYS)


def test_report_apcer_interval_is_the_worst_species_own() -> None:
    # At the dev threshold 0.55: print accepts 1 of 2, replay 2 of 4, mask 0 of 3. The tie at 1/2
    # goes to print, the species with fewer attacks: Wilson for 1 of 2, not for 3 of 6 pooled.
    scores = [0.9, 0.8, 0.6, 0.1, 0.7, 0.9, 0.2, 0.3, 0.1, 0.2, 0.3]
    types = ["bonafide"] * 2 + ["print"] * 2 + ["replay"] * 4 + ["mask"] * 3
    test = ScoreSet(scores, [1, 1] + [0] * 9, types)
    report = pad_report(case_a(), test)
    assert report["test_apcer"] == 0.5
    low, high = wilson_interval(1, 2)
    assert (report["test_apcer_ci_low"], report["test_apcer_ci_high"]) == (low, high)
    assert (low, high) != wilson_interval(2, 4)


def test_report_keys_are_sanitised() -> None:
    types = ["bonafide", "bonafide", "Print/Hand", "replay-2 (iPad)"]
    test = ScoreSet([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0], types)
    report = pad_report(case_a(), test)
    assert {"test_apcer_print_hand", "test_apcer_replay_2_ipad"} <= set(report)
    assert all(k.replace("_", "").isalnum() and k == k.lower() for k in report)


def test_metric_suffix() -> None:
    assert metric_suffix("print/hand") == "print_hand"
    assert metric_suffix(" Replay--iPad ") == "replay_ipad"
    assert metric_suffix("???") == "unnamed"


def test_report_refuses_types_that_share_a_metric_name() -> None:
    test = ScoreSet([0.9, 0.1, 0.2], [1, 0, 0], ["bonafide", "print-a", "Print A"])
    with pytest.raises(ValueError, match="share the metric name 'test_apcer_print_a'"):
        pad_report(case_a(), test)


def test_report_refuses_a_type_named_like_a_fixed_metric() -> None:
    test = ScoreSet([0.9, 0.1, 0.2], [1, 0, 0], ["bonafide", "print", "CI low"])
    with pytest.raises(ValueError, match="'CI low' gives the metric name 'test_apcer_ci_low'"):
        pad_report(case_a(), test)


def test_report_on_the_smallest_splits() -> None:
    # One clip per class and species, as in the sweep's smoke data: every figure is defined.
    dev = ScoreSet([0.7, 0.4], [1, 0], ["bonafide", "print"])
    test = ScoreSet([0.6, 0.3], [1, 0], ["bonafide", "print"])
    report = pad_report(dev, test)
    assert report["dev_threshold"] == (0.4 + 0.7) / 2
    assert report["dev_bpcer20_threshold"] == np.nextafter(0.4, 1.0)
    assert report["test_bpcer20"] == 0.0 and report["test_apcer20"] == 0.0
    assert all(math.isfinite(v) for v in report.values())


def _scores_frame() -> pd.DataFrame:
    rows = []
    for split, s in (("dev", case_a()), ("test", case_t())):
        for i, (score, label, kind) in enumerate(
            zip(s.scores, s.labels, s.attack_types, strict=True)
        ):
            rows.append(
                {
                    "split": split,
                    "clip": f"{split}/{i}",
                    "subject": f"s{i % 3}",
                    "label": "bonafide" if label else "attack",
                    "attack_type": "" if label else kind,
                    "score": score,
                }
            )
    rows.append({**rows[0], "split": "train", "score": 0.0})  # ignored
    return pd.DataFrame(rows)


def test_report_from_scores_csv_equals_report(tmp_path) -> None:
    path = tmp_path / "scores.csv"
    _scores_frame().to_csv(path, index=False)
    frame = pd.read_csv(path)  # empty attack_type of bona fide rows comes back as NaN
    assert frame["attack_type"].isna().sum() == 9  # 8 bona fide + the train row
    assert report_from_scores_frame(frame) == pytest.approx(pad_report(case_a(), case_t()))


def test_summarise_gives_mean_and_std_of_every_figure() -> None:
    one = {"dev_acer": 0.1, "test_apcer_print": 0.5}
    assert summarise([one]) == one  # one setting: as it is, no _std
    two = {"dev_acer": 0.3}  # a fold without print attacks in test
    assert summarise([one, two]) == {
        "dev_acer": pytest.approx(0.2),
        "dev_acer_std": pytest.approx(math.sqrt(0.02)),
        "test_apcer_print": 0.5,
        "test_apcer_print_std": 0.0,
    }
    assert list(summarise([one, two])) == [
        "dev_acer",
        "dev_acer_std",
        "test_apcer_print",
        "test_apcer_print_std",
    ]

    # two folds of two seeds: each fold's seeds averaged, the std over the folds (OULU-NPU's
    # mean ± std over its folds); over the four settings it mixed seeds in (probe)
    four = [
        {"dev_acer": a, "dev_threshold": t} for a, t in ((0.1, 1), (0.3, 2), (0.6, 3), (0.4, 4))
    ]
    summary = summarise(four, folds=[1, 1, 2, 2])
    assert summary == {
        "dev_acer": pytest.approx(0.35),
        "dev_acer_std": pytest.approx(np.std([0.2, 0.5], ddof=1)),
        "dev_threshold": 1,  # the first setting's: its head is the trial's
    }
    assert summarise(four, folds=[1, 2, 3, 4]) == summarise(four)  # folds of one seed each
    assert summarise(four, folds=[None] * 4) == summarise(four)  # seeds only
    assert summarise(four)["dev_acer_std"] == pytest.approx(np.std([0.1, 0.3, 0.6, 0.4], ddof=1))


def test_report_from_scores_csv_of_several_settings_is_their_summary(tmp_path) -> None:
    first = _scores_frame().assign(fold="", repeat=0)
    swapped = first.assign(
        split=first["split"].map({"dev": "test", "test": "dev", "train": "train"}), repeat=1
    )
    path = tmp_path / "scores.csv"
    pd.concat([first, swapped]).to_csv(path, index=False)
    frame = pd.read_csv(path, keep_default_na=False)  # as a logged scores.csv is read
    expected = summarise([pad_report(case_a(), case_t()), pad_report(case_t(), case_a())])
    assert report_from_scores_frame(frame) == expected
    single = first.drop(columns=["fold", "repeat"])
    assert report_from_scores_frame(first) == report_from_scores_frame(single)


def test_score_set_normalises_labels_and_types() -> None:
    s = ScoreSet([0.1, 0.2, 0.3, 0.4], [True, False, False, False], ["x", None, float("nan"), "p"])
    assert s.labels.dtype == np.int8 and s.labels.tolist() == [1, 0, 0, 0]
    assert s.attack_types.tolist() == ["bonafide", "attack", "attack", "p"]
    assert len(s) == 4
    assert ScoreSet([0.1, 0.2], [1, 0]).attack_types.tolist() == ["bonafide", "attack"]


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bpcer([], [], 0.5), "scores is empty"),
        (lambda: auc([0.1, 0.2], [1]), "labels has 1 entries but scores has 2"),
        (lambda: apcer([0.1, 0.2], [0, 0], ["a"], 0.5), "attack_types has 1 entries"),
        (lambda: eer_threshold([0.1, math.nan], [1, 0]), "scores must be finite, got nan"),
        (lambda: auc([0.1, math.inf], [1, 0]), "scores must be finite"),
        (lambda: eer_threshold([0.1, 0.2], [1, 1]), "no attack samples: the EER is undefined"),
        (lambda: eer_threshold([0.1, 0.2], [0, 0]), "no bona fide samples"),
        (lambda: auc([0.1, 0.2], [0, 0]), "AUC is undefined"),
        (lambda: apcer([0.1], [1], None, 0.5), "no attack samples: APCER"),
        (lambda: bpcer([0.1], [0], 0.5), "no bona fide samples: BPCER"),
        (lambda: bpcer([0.1, 0.2], [1, 2], 0.5), "labels must be 1/True .* got 2"),
        (lambda: bpcer([0.1], ["bonafide"], 0.5), "labels must be 1/True .* dtype"),
        (lambda: bpcer([0.1], [1], math.nan), "threshold must be a number, got NaN"),
        (lambda: bpcer(["a"], [1], 0.5), "scores must be numbers"),
        (lambda: bpcer([[0.1]], [1], 0.5), "1-D"),
        (lambda: apcer_threshold([0.1], [1], None, 0.05), "no attack samples: the APCER thr"),
        (lambda: apcer_threshold([0.1], [0], None, 5), "apcer_target must be a rate in"),
        (lambda: wilson_interval(3, 2), "errors must be between 0 and n = 2, got 3"),
        (lambda: wilson_interval(0, 0), "n must be at least 1, got 0"),
        (lambda: wilson_interval(1.5, 4), "errors must be a whole number of samples"),
        (lambda: wilson_interval(1, 4, confidence=95), r"confidence must be in \(0, 1\)"),
        (lambda: hter_interval(1, 0, 0, 4), "false_accepts must be between 0 and its sample"),
        (lambda: hter_interval(0, 4, 5, 4), "false_rejects must be between 0 and its sample"),
        (lambda: mean_std([]), "values must be a non-empty 1-D list"),
        (lambda: mean_std([0.1, math.nan]), "values must be finite, got nan"),
    ],
)
def test_errors_are_one_line_value_errors(call, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("split", ["dev", "test"])
def test_report_names_a_single_class_split(split: str) -> None:
    only_bona = ScoreSet([0.9, 0.8], [1, 1])
    dev, test = (only_bona, case_t()) if split == "dev" else (case_a(), only_bona)
    with pytest.raises(ValueError, match=f"^{split} split needs bona fide and attack clips"):
        pad_report(dev, test)


def test_score_set_rejects_nan_at_construction() -> None:
    with pytest.raises(ValueError, match="index 1"):
        ScoreSet([0.1, math.nan], [1, 0])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(columns="split"), "lacks column 'split'"),
        (lambda f: f.drop(columns="score"), r"dev split: .*lacks column\(s\) \['score'\]"),
        (lambda f: f[f["split"] != "test"], "no rows with split == 'test'"),
        (lambda f: f.assign(label=f["label"].replace("attack", "spoof")), "got 'spoof'"),
        (lambda f: f[f["label"] == "bonafide"], "dev split needs bona fide and attack"),
    ],
)
def test_scores_frame_errors(edit, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        report_from_scores_frame(edit(_scores_frame()))


# ------------------------------------------------------------------ clip scores


def test_clip_scores_mean_of_frames() -> None:
    # clip 0: (0.2 + 0.4) / 2 = 0.3; clip 1: (0.9 + 0.7 + 0.8) / 3 = 0.8; frames interleaved.
    frames = [0.2, 0.9, 0.4, 0.7, 0.8]
    index = [0, 1, 0, 1, 1]
    np.testing.assert_allclose(clip_scores(frames, index), [0.3, 0.8])
    np.testing.assert_allclose(
        clip_scores(frames, np.array(index, np.uint8), n_clips=2), [0.3, 0.8]
    )


@pytest.mark.parametrize(
    ("frames", "index", "n_clips", "message"),
    [
        ([0.1, 0.2], [0, 2], None, r"clip\(s\) \[1\] have no frames"),
        ([0.1, 0.2], [0, 0], 2, r"clip\(s\) \[1\] have no frames"),
        ([0.1, 0.2], [0, 3], 2, "clip_index holds 3 but n_clips is 2"),
        ([0.1, 0.2], [0, -1], None, "clip_index must be >= 0"),
        ([0.1, 0.2], [0.0, 1.0], None, "clip_index must be integers"),
        ([0.1, 0.2], [0], None, "one clip index per frame"),
        ([], [], None, "frame_scores is empty"),
        ([0.1, math.nan], [0, 1], None, "frame_scores must be finite"),
    ],
)
def test_clip_scores_errors(frames, index, n_clips, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        clip_scores(frames, np.asarray(index), n_clips)


# ------------------------------------------------------------------ against bob.measure itself
#
# Exact equality (==) throughout: Bob's scan is deterministic float arithmetic, which
# experiments.metrics reproduces step for step, so there is no tolerance to grant.

N_SEEDS = 300
SHAPES = (
    "continuous",
    "tied",
    "separable",
    "reversed",
    "all_equal",
    "single_sample",
    "saturated",
)


def _bob_case(seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Random attack scores per species and bona fide scores, of the shape ``seed`` picks."""
    rng = np.random.default_rng(seed)
    shape = SHAPES[seed % len(SHAPES)]
    n_species = int(rng.integers(1, 4))
    sizes = [int(rng.integers(1, 21)) for _ in range(n_species)]
    n_bonafide = int(rng.integers(1, 61))
    if shape == "single_sample":  # one class (either) has a single sample
        if seed % 2:
            n_bonafide = 1
        else:
            n_species, sizes = 1, [1]

    def draw(n: int, cls: int) -> np.ndarray:
        if shape == "tied":
            return rng.choice(np.round(rng.random(int(rng.integers(1, 5))), 2), n)
        if shape == "separable":
            return rng.random(n) / 2 + cls / 2
        if shape == "reversed":
            return rng.random(n) / 2 + (1 - cls) / 2
        if shape == "all_equal":
            return np.full(n, 0.42)
        if shape == "saturated":  # float32 sigmoid outputs, many exactly 0 or 1
            raw = rng.choice([0.0, 1.0, np.nan], n)
            raw[np.isnan(raw)] = rng.random(int(np.isnan(raw).sum()))
            return raw.astype(np.float32).astype(np.float64)
        return rng.random(n)

    species = {f"pai{i}": draw(size, 0) for i, size in enumerate(sizes)}
    return species, draw(n_bonafide, 1)


def _score_set(species: dict[str, np.ndarray], bonafide: np.ndarray) -> ScoreSet:
    scores = np.concatenate([bonafide, *species.values()])
    labels = np.r_[np.ones(bonafide.size, int), np.zeros(scores.size - bonafide.size, int)]
    types = np.concatenate(
        [["bonafide"] * bonafide.size, *[[k] * v.size for k, v in species.items()]]
    )
    # Shuffle so nothing relies on the order of the samples.
    order = np.random.default_rng(bonafide.size).permutation(scores.size)
    return ScoreSet(scores[order], labels[order], types[order])


@pytest.fixture(scope="module")
def bob():
    """bob.measure: only this section needs it."""
    return bob_measure()


class TestAgainstBobMeasure:
    """Every threshold and rate equals bob.measure's on random score sets of many shapes."""

    @pytest.mark.parametrize("seed", range(N_SEEDS))
    def test_one_split(self, bob, seed: int) -> None:
        species, bonafide = _bob_case(seed)
        split = _score_set(species, bonafide)
        s, y, types = split.scores, split.labels, split.attack_types
        attacks = np.concatenate(list(species.values()))

        eer, threshold = eer_threshold(s, y)
        bob_threshold = bob.eer_threshold(attacks, bonafide)
        assert threshold == bob_threshold
        bob_far, bob_frr = bob.farfrr(attacks, bonafide, bob_threshold)
        assert far_frr(s, y, threshold) == (bob_far, bob_frr)
        assert eer == hter(s, y, threshold) == (bob_far + bob_frr) / 2

        worst, per_type = apcer(s, y, types, threshold)
        bob_per_type = {k: bob.farfrr(v, bonafide, bob_threshold)[0] for k, v in species.items()}
        assert per_type == bob_per_type
        assert bpcer(s, y, threshold) == bob_frr
        # bob.pad.base: ACER = (max APCER over species + BPCER) / 2.
        assert acer(s, y, types, threshold) == (max(bob_per_type.values()) + bob_frr) / 2

        if min(v.size for v in species.values()) < 2:
            with pytest.raises(RuntimeError, match="at least 2"):
                bob.far_threshold(attacks[:1], bonafide, 0.05)
            return  # Bob's far_threshold refuses a species of one attack
        for target in (0.05, 0.01, 0.2):
            # bob.pad.base's apcer_threshold: the highest per-species far_threshold.
            bob_at = max(bob.far_threshold(v, bonafide, target) for v in species.values())
            at = apcer_threshold(s, y, types, target)
            assert at == bob_at
            assert bpcer(s, y, at) == bob.farfrr(attacks, bonafide, bob_at)[1]
            assert apcer(s, y, types, at)[0] == max(
                bob.farfrr(v, bonafide, bob_at)[0] for v in species.values()
            )

    @pytest.mark.parametrize("seed", range(0, 2 * N_SEEDS, 3))
    def test_pad_report(self, bob, seed: int) -> None:
        dev_species, dev_bonafide = _bob_case(seed)
        test_species, test_bonafide = _bob_case(seed + 1)
        report = pad_report(
            _score_set(dev_species, dev_bonafide), _score_set(test_species, test_bonafide)
        )
        dev_attacks = np.concatenate(list(dev_species.values()))
        test_attacks = np.concatenate(list(test_species.values()))

        def rates(threshold: float) -> tuple[float, float, float]:
            """Worst-species APCER, BPCER and pooled FAR on test, by Bob."""
            far, frr = bob.farfrr(test_attacks, test_bonafide, threshold)
            worst = max(bob.farfrr(v, test_bonafide, threshold)[0] for v in test_species.values())
            return worst, frr, far

        threshold = bob.eer_threshold(dev_attacks, dev_bonafide)
        dev_far, dev_frr = bob.farfrr(dev_attacks, dev_bonafide, threshold)
        dev_worst = max(bob.farfrr(v, dev_bonafide, threshold)[0] for v in dev_species.values())
        worst, frr, far = rates(threshold)
        test_threshold = bob.eer_threshold(test_attacks, test_bonafide)
        expected = {
            "dev_threshold": threshold,
            "dev_eer": (dev_far + dev_frr) / 2,
            "dev_acer": (dev_worst + dev_frr) / 2,  # the search's objective (review)
            "test_apcer": worst,
            "test_bpcer": frr,
            "test_acer": (worst + frr) / 2,
            "test_hter": (far + frr) / 2,
            "test_eer": sum(bob.farfrr(test_attacks, test_bonafide, test_threshold)) / 2,
        }
        for kind, scores in test_species.items():
            expected[f"test_apcer_{kind}"] = bob.farfrr(scores, test_bonafide, threshold)[0]
        if min(v.size for v in dev_species.values()) >= 2:
            for point in (20, 100):
                at = max(
                    bob.far_threshold(v, dev_bonafide, 1 / point) for v in dev_species.values()
                )
                worst_at, frr_at, _ = rates(at)
                expected[f"dev_bpcer{point}_threshold"] = at
                expected[f"test_bpcer{point}"] = frr_at
                expected[f"test_apcer{point}"] = worst_at
        assert {key: report[key] for key in expected} == expected


# --- scikit-learn is the reference for AUC and TPR at a FPR -------------------------------------


def sklearn_tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float) -> float:
    """What SSDG/FLIP's evaluation does: scikit-learn's ROC with bona fide as the positive class,
    the last TPR whose FPR is at most ``fpr``."""
    from sklearn.metrics import roc_curve

    false_positive, true_positive, _ = roc_curve(labels, scores)
    allowed = true_positive[false_positive <= fpr]
    return float(allowed[-1]) if allowed.size else 0.0


@pytest.mark.parametrize("seed", range(12))
def test_auc_and_tpr_at_fpr_equal_scikit_learns(seed: int) -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 400))
    labels = rng.integers(0, 2, n)
    labels[:2] = (0, 1)
    scores = rng.normal(labels * rng.uniform(0, 3), 1.0)
    if seed % 3 == 0:  # ties across the classes, as rounded probabilities have them
        scores = np.round(scores, 1)
    assert auc_agrees(auc(scores, labels), roc_auc_score(labels, scores))
    for fpr in (0.0, 0.001, 0.01, 0.05, 0.5, 1.0):
        assert tpr_at_fpr(scores, labels, fpr) == sklearn_tpr_at_fpr(scores, labels, fpr)


def test_tpr_at_fpr_by_hand_and_in_the_report() -> None:
    # attacks 0.1 0.2 0.9; bona fide 0.3 0.8 0.95: at FPR 0 only 0.95 passes (t > 0.9): TPR 1/3
    scores, labels = np.array([0.1, 0.2, 0.9, 0.3, 0.8, 0.95]), np.array([0, 0, 0, 1, 1, 1])
    assert tpr_at_fpr(scores, labels, 0.0) == pytest.approx(1 / 3)
    assert tpr_at_fpr(scores, labels, 1 / 3) == 1.0  # accepting 0.9 too: every bona fide
    dev = ScoreSet(scores, labels)
    report = pad_report(dev, dev)
    assert report["test_tpr_fpr1"] == report["test_tpr_fpr01"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="fpr must be a rate"):
        tpr_at_fpr(scores, labels, 1.5)


def test_a_tie_over_folds_is_a_tie_to_the_last_bits() -> None:
    """Two species that each let 36 of 72 attacks through over six folds tie at 50 %, whatever
    order their folds' rates sum in: the means came out 0.5 and 0.49999999999999994, and the
    tables named one species where the README promises both (probe). Species whose totals
    differ by one attack are not tied."""
    display = [1 / 2, 1, 1 / 2, 0, 1 / 3, 2 / 3]  # 6, 12, 6, 0, 4, 8 of 12: 36 of 72
    printed = [1 / 2, 1 / 3, 1, 1 / 2, 2 / 3, 0]  # 6, 4, 12, 6, 8, 0 of 12: 36 of 72
    reports = [
        {"test_apcer_display": d, "test_apcer_print": p}
        for d, p in zip(display, printed, strict=True)
    ]
    means = summarise(reports, folds=[1, 2, 3, 4, 5, 6])
    rates = {"display": means["test_apcer_display"], "print": means["test_apcer_print"]}
    assert rates["display"] != rates["print"]  # the float sums differ in the last bit
    assert worst_species(rates) == ["display", "print"]
    one_more = dict(rates, print=rates["print"] + 1 / 12 / 6)  # one attack more in one fold
    assert worst_species(one_more) == ["print"]
