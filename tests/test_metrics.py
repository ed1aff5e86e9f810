"""PAD metrics against hand-computed cases (ISO/IEC 30107-3, Bob's conventions)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from experiments.metrics import (
    REPORT_KEYS,
    ScoreSet,
    accuracy,
    acer,
    apcer,
    auc,
    bpcer,
    clip_scores,
    eer_threshold,
    far_frr,
    far_frr_curve,
    hter,
    metric_suffix,
    pad_report,
    report_from_scores_frame,
)

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
    # Candidates, (attacks accepted / 6, bona fide rejected / 4), |FPR - FNR|:
    #   0.5: 3/6, 1/4 -> 0.25;  0.6: 2/6, 2/4 -> 1/6 (smallest);  0.7: 1/6, 2/4 -> 1/3.
    # EER at 0.6 = (1/3 + 1/2) / 2 = 5/12.
    eer, threshold = eer_threshold(A_SCORES, A_LABELS)
    assert threshold == 0.6
    assert eer == pytest.approx(5 / 12)


def test_eer_on_a_separable_set_is_zero_between_the_classes() -> None:
    bona, attacks = [0.7, 0.8, 0.9], [0.1, 0.2, 0.3]
    eer, threshold = eer_threshold(bona + attacks, [1, 1, 1, 0, 0, 0])
    assert eer == 0.0
    assert max(attacks) < threshold <= min(bona)
    assert hter(bona + attacks, [1, 1, 1, 0, 0, 0], threshold) == 0.0


def test_eer_on_a_reversed_set_is_one() -> None:
    # Every attack above every bona fide: at 0.8 all attacks accepted and all bona fide rejected.
    assert eer_threshold([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == (1.0, 0.8)


def test_eer_tie_goes_to_the_lower_eer() -> None:
    # bona fide 0.5, attacks 0.3 0.7. |FPR - FNR| ties at 0.5 (FPR 1/2, FNR 0) and at
    # 0.7 (FPR 1/2, FNR 1); the first has the lower EER, 1/4 (Bob's scan also ends there).
    assert eer_threshold([0.5, 0.3, 0.7], [1, 0, 0]) == (0.25, 0.5)


def test_eer_tie_with_equal_eer_goes_to_the_higher_threshold() -> None:
    # bona fide 0.5 0.9, attacks 0.1 0.5. At 0.5: FPR 1/2, FNR 0; at 0.9: FPR 0, FNR 1/2.
    # Same distance, same EER 1/4: the higher threshold (fewer attacks accepted) wins.
    assert eer_threshold([0.5, 0.9, 0.1, 0.5], [1, 1, 0, 0]) == (0.25, 0.9)


def test_eer_can_reject_everything() -> None:
    # All scores equal: accepting all (FPR 1, FNR 0) and rejecting all (FPR 0, FNR 1, the
    # candidate just above the maximum) tie with the same EER, so the higher threshold wins.
    eer, threshold = eer_threshold([0.5, 0.5, 0.5], [1, 0, 0])
    assert eer == 0.5
    assert threshold == np.nextafter(0.5, 1.0)
    assert bpcer([0.5], [1], threshold) == 1.0


def test_far_frr_curve_ends_and_monotone() -> None:
    thresholds, far, frr = far_frr_curve(A_SCORES, A_LABELS)
    assert thresholds.size == np.unique(A_SCORES).size + 1
    assert np.all(np.diff(thresholds) > 0)
    assert thresholds[-1] > A_SCORES.max()
    assert (far[0], frr[0], far[-1], frr[-1]) == (1.0, 0.0, 0.0, 1.0)
    assert np.all(np.diff(far) <= 0) and np.all(np.diff(frr) >= 0)


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
    assert eer_threshold(T_SCORES, T_LABELS)[1] == 0.7  # what choosing on test would give
    expected = {
        "dev_eer": 5 / 12,
        "dev_threshold": 0.6,
        # dev at 0.6: bona fide 0.5 0.3 rejected -> 1/2; print 1/4, replay 1/2 -> (1/2+1/2)/2
        "dev_acer": 0.5,
        # test at 0.6: every bona fide accepted; print 0.62 and replay 0.75 accepted.
        "test_bpcer": 0.0,
        "test_apcer_print": 0.5,
        "test_apcer_replay": 0.5,
        "test_apcer": 0.5,
        "test_acer": 0.25,
        "test_hter": (2 / 4 + 0.0) / 2,
        "test_accuracy": 6 / 8,
        # pairs won: 0.9 -> 4, 0.8 -> 4, 0.7 -> 3, 0.65 -> 3 of 16
        "test_auc": 14 / 16,
    }
    assert report == pytest.approx(expected)
    assert all(type(v) is float for v in report.values())


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
