"""Informativeness heuristics: what each score prefers, how boxes become frames, the rule
for frames without detections, and disagreement across ensemble members."""

from __future__ import annotations

import numpy as np
import pytest

from scenesift.al import heuristics as h
from scenesift.al.pool import Detections


def dets(frame, probs, boxes=None, member=None, scores=None) -> Detections:
    probs = np.asarray(probs, np.float32)
    m = len(frame)
    return Detections(
        frame=np.asarray(frame, np.int64),
        scores=np.asarray(probs.max(axis=1) if scores is None else scores, np.float32),
        class_probs=probs,
        boxes=np.asarray(np.zeros((m, 4)) if boxes is None else boxes, np.float32).reshape(m, 4),
        member=None if member is None else np.asarray(member, np.int64),
    )


def test_situation_heuristics_prefer_the_frame_nearest_one_half():
    probs = np.array([[0.95, 0.02], [0.45, 0.97], [0.7, 0.1], [0.52, 0.49]])
    for f in (h.situation_least_confidence, h.situation_margin, h.situation_entropy):
        for agg in ("mean", "max", "sum"):
            assert np.argmax(f(probs, agg)) == 3, (f.__name__, agg)
    assert h.situation_least_confidence(probs, "max")[3] == pytest.approx(0.49)
    assert h.situation_margin(probs, "mean") == pytest.approx(
        2 * h.situation_least_confidence(probs, "mean")
    )


def test_label_aggregation_max_and_mean_disagree_on_a_crafted_pair():
    # frame 0: one label at 0.5, the rest certain; frame 1: all labels moderately unsure
    probs = np.array([[0.5, 0.0, 0.0, 0.0], [0.7, 0.7, 0.7, 0.7]])
    lc_max = h.situation_least_confidence(probs, "max")
    lc_mean = h.situation_least_confidence(probs, "mean")
    assert np.argmax(lc_max) == 0 and np.argmax(lc_mean) == 1


def test_missing_situation_scores_are_skipped_and_unscored_frames_rank_last():
    probs = np.array([[np.nan, 0.5], [np.nan, np.nan], [0.9, 0.9]])
    s = h.situation_entropy(probs, "mean")
    assert s[0] == pytest.approx(1.0) and np.isnan(s[1])
    assert list(h.top_k(s, 3)) == [0, 2, 1]


def test_top_k_breaks_ties_by_row_and_never_returns_more_than_n():
    assert list(h.top_k(np.array([1.0, 3.0, 3.0, 2.0, 3.0]), 2)) == [1, 2]
    assert list(h.top_k(np.array([0.1, 0.2]), 10)) == [1, 0]
    assert len(h.top_k(np.zeros(0), 3)) == 0


def test_box_heuristics_on_known_class_probabilities():
    probs = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.6, 0.3, 0.1]])
    assert h.box_least_confidence(probs) == pytest.approx([0.0, 0.5, 2 / 3, 0.4])
    assert h.box_margin(probs) == pytest.approx([0.0, 1.0, 1.0, 0.7])
    assert h.box_entropy(probs) == pytest.approx([0.0, 1.0, np.log2(3), 1.2955], abs=1e-4)


def test_box_to_frame_aggregations():
    frame = np.array([0, 0, 0, 1, 2, 2])
    values = np.array([0.9, 0.1, 0.2, 0.5, 0.3, 0.4])
    agg = {a: h.aggregate_boxes(frame, values, 3, agg=a, k=2) for a in h.BOX_AGGREGATIONS}
    assert agg["max"] == pytest.approx([0.9, 0.5, 0.4])
    assert agg["mean"] == pytest.approx([0.4, 0.5, 0.35])
    assert agg["sum"] == pytest.approx([1.2, 0.5, 0.7])
    assert agg["topk_mean"] == pytest.approx([0.55, 0.5, 0.35])
    # max and mean rank frames differently: one confusing box vs a uniformly unsure frame
    assert np.argmax(agg["max"]) == 0 and np.argmax(agg["mean"]) == 1


def test_frames_without_detections_follow_the_empty_rule():
    d = dets([0, 0, 1, 3], [[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.55, 0.45]])
    n = 5  # frames 2 and 4 have no detections
    lc = h.detection_uncertainty(d, n, "least_confidence", agg="max")
    scored = np.array([0.4, 0.2, 0.45])
    assert lc[[2, 4]] == pytest.approx([np.median(scored)] * 2)
    assert h.detection_uncertainty(d, n, agg="max", empty="max")[[2, 4]] == pytest.approx(
        [0.45, 0.45]
    )
    assert h.detection_uncertainty(d, n, agg="max", empty=0.0)[[2, 4]] == pytest.approx([0, 0])
    # min_score drops frame 3's only box: it becomes empty too
    low = h.detection_uncertainty(d, n, agg="max", empty=-1.0, min_score=0.6)
    assert low[3] == -1.0 and low[0] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="empty"):
        h.aggregate_boxes(d.frame, np.zeros(4), n, empty="mean")


def test_uncertainty_of_a_pool_without_any_detection_is_constant():
    d = dets([], np.zeros((0, 3)))
    assert h.detection_uncertainty(d, 4, "entropy", agg="topk_mean").tolist() == [0.0] * 4


def test_bad_aggregation_and_bad_frame_rows_are_clear_errors():
    with pytest.raises(ValueError, match=r"agg must be one of max, mean, sum, topk_mean"):
        h.aggregate_boxes(np.array([0]), np.array([1.0]), 1, agg="median")
    with pytest.raises(ValueError, match=r"agg must be one of mean, max, sum"):
        h.situation_entropy(np.zeros((2, 2)), "topk_mean")
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        h.aggregate_boxes(np.array([5]), np.array([1.0]), 2)


def test_bald_is_zero_when_all_samples_agree_and_positive_when_they_do_not():
    rng = np.random.default_rng(0)
    p = rng.random((6, 3))
    agree = np.repeat(p[None], 5, axis=0)
    assert h.bald(agree) == pytest.approx(np.zeros(6), abs=1e-9)
    split = agree.copy()
    split[:, 2, 1] = [0.01, 0.99, 0.01, 0.99, 0.01]  # frame 2: samples contradict each other
    mi = h.bald(split, "max")
    assert np.argmax(mi) == 2 and mi[2] > 0.5
    # an equally uncertain but consistent frame is not informative for BALD
    consistent = np.full((5, 1, 1), 0.5)
    assert h.bald(consistent)[0] == pytest.approx(0.0, abs=1e-9)


BOXES = np.array([[0, 0, 10, 10], [20, 20, 60, 40], [100, 50, 120, 90]], np.float64)


def ensemble(boxes_per_member):
    frame, member, boxes = [], [], []
    for t, per_frame in enumerate(boxes_per_member):
        for f, bs in per_frame.items():
            for b in bs:
                frame.append(f)
                member.append(t)
                boxes.append(b)
    m = len(frame)
    return dets(frame, np.full((m, 2), 0.5), boxes=boxes, member=member)


def test_box_disagreement_is_zero_for_identical_members():
    same = {0: BOXES, 1: BOXES[:1]}
    d = ensemble([same, same, same])
    assert h.box_disagreement(d, 3) == pytest.approx([0.0, 0.0, 0.0])


def test_box_disagreement_grows_with_jitter_and_missing_boxes():
    rng = np.random.default_rng(1)
    ref = {0: BOXES, 1: BOXES, 2: BOXES}
    small = {f: BOXES + rng.normal(0, 0.3, BOXES.shape) for f in ref}
    large = {f: BOXES + rng.normal(0, 1.5, BOXES.shape) for f in ref}
    # frame 0: small jitter; frame 1: large jitter; frame 2: a member misses a box
    m1 = {0: small[0], 1: large[1], 2: BOXES[:2]}
    m2 = {0: small[0], 1: large[1], 2: BOXES}
    s = h.box_disagreement(ensemble([ref, m1, m2]), 4)
    assert 0 < s[0] < s[1]
    assert s[2] == pytest.approx(1 - 2 * 5 / (3 * 2 + 5))  # 5 of 6 reference slots matched
    assert s[3] == 0.0  # nobody detected anything: agreement


def test_box_disagreement_matching_is_one_to_one_per_member():
    # two overlapping reference boxes, the other member has one box between them
    ref = {0: np.array([[0, 0, 10, 10], [1, 0, 11, 10]], np.float64)}
    other = {0: np.array([[0.5, 0, 10.5, 10]], np.float64)}
    s = h.box_disagreement(ensemble([ref, other]), 1, agg="max")
    # one match (the tie goes to the first reference box), one reference box unmatched:
    # unmatched = 1 - 2 * 1 / (2 + 1); spread of the pair = sqrt(mean(var / w^2)) over x1..y2
    spread = np.sqrt((2 * 0.25**2 / 4) / 10**2)
    assert s[0] == pytest.approx(1 / 3 + spread)


def test_box_disagreement_needs_members_and_builds_pairs_in_blocks():
    with pytest.raises(ValueError, match=r"Pool\.detections\.member"):
        h.box_disagreement(dets([0], [[1.0]]), 1)
    rng = np.random.default_rng(2)
    ref = {f: BOXES for f in range(20)}
    jit = {f: BOXES + rng.normal(0, 1, BOXES.shape) for f in range(20)}
    d = ensemble([ref, jit])
    whole = h.box_disagreement(d, 20)
    assert h.box_disagreement(d, 20, max_pairs=5) == pytest.approx(whole)


def test_boxes_without_class_vectors_are_scored_by_their_detection_score():
    one_hot = np.eye(3, dtype=np.float32)[[0, 0, 1]]
    dets = Detections(
        frame=np.array([0, 1, 2]),
        scores=np.array([0.5, 0.95, 0.7], np.float32),
        class_probs=one_hot,
        boxes=np.zeros((3, 4), np.float32),
        has_class_probs=np.array([False, False, True]),
    )
    lc = h.box_uncertainty(dets, "least_confidence")
    np.testing.assert_allclose(lc, [0.5, 0.05, 0.0], atol=1e-6)  # last: its one-hot vector
    np.testing.assert_allclose(h.box_uncertainty(dets, "entropy")[:2], [1.0, 0.286397], atol=1e-5)
    assert "detection scores for 2 boxes" in h.uncertainty_signal(dets)


def test_uncertain_boxes_counts_doubtful_boxes_and_weights_small_ones():
    big, small = (0, 0, 100, 100), (0, 0, 10, 10)
    dets = Detections(
        frame=np.array([0, 1, 1, 1, 2, 3]),
        scores=np.array([0.5, 0.6, 0.6, 0.6, 0.5, 0.99], np.float32),
        class_probs=np.tile(np.eye(3, dtype=np.float32)[0], (6, 1)),
        boxes=np.array([big, big, big, big, small, big], np.float32),
        has_class_probs=np.zeros(6, bool),
    )
    got = h.uncertain_boxes(dets, 5, small=2.0)
    np.testing.assert_allclose(got, [1.0, 2.4, 2.0, 0.02, 0.0], atol=1e-5)
    assert list(h.top_k(got, 3)) == [1, 2, 0]  # three doubtful boxes beat one


def test_class_rarity_weights_and_class_aware_uncertainty_by_hand():
    # labelled boxes: car 5, pedestrian 1, golf_cart 0 -> mean 2, weight (1 + 2) / (1 + n)
    weights = h.class_rarity_weights(
        ("car", "pedestrian", "golf_cart"), {"car": 5, "pedestrian": 1}
    )
    assert weights == pytest.approx([3 / 6, 3 / 2, 3 / 1])
    assert h.class_rarity_weights(("a", "b"), {}) == pytest.approx([1.0, 1.0])
    d = dets(
        [0, 0, 1],
        [[0.6, 0.4, 0.0], [0.2, 0.0, 0.8], [0.3, 0.7, 0.0]],  # car, golf_cart | pedestrian
    )
    plain = h.detection_uncertainty(d, 2, "least_confidence")
    assert plain == pytest.approx([0.4, 0.3], abs=1e-6)  # max(1 - 0.6, 1 - 0.8) | 1 - 0.7
    weighted = h.detection_uncertainty(d, 2, "least_confidence", class_weights=weights)
    # frame 0: max(0.4 * 0.5, 0.2 * 3) = 0.6 (the doubtful golf cart); frame 1: 0.3 * 1.5
    assert weighted == pytest.approx([0.6, 0.45], abs=1e-6)


def test_localization_stability_is_one_minus_the_best_iou_on_the_flipped_frame():
    d = dets(
        [0, 1, 2, 3],
        np.eye(3)[[0, 0, 0, 0]],
        boxes=[[0, 0, 10, 10], [0, 0, 4, 4], [0, 0, 2, 2], [0, 0, 10, 10]],
        member=[0, 0, 0, 1],  # frame 3's only box is another member's: not compared
    )
    flipped = dets(
        [0, 0, 1, 3],
        np.eye(3)[[0, 0, 0, 0]],
        # frame 0: IoU 0.5 (half height) and 1/3 (shifted by half); frame 1: the same box;
        # frame 3's box would match frame 0's exactly were frames mixed up
        boxes=[[0, 0, 10, 5], [5, 0, 15, 10], [0, 0, 4, 4], [0, 0, 10, 10]],
    )
    got = h.localization_stability(d, flipped, 5, empty=0.0)
    # frame 2 has no flipped box at all -> 1; frames 3 and 4 have no (member 0) box -> empty
    assert got == pytest.approx([0.5, 0.0, 1.0, 0.0, 0.0])
    # mean over the frame's boxes, and the score threshold applies to both passes
    two = dets([0, 0], np.eye(3)[[0, 0]], boxes=[[0, 0, 10, 10], [0, 0, 4, 4]])
    assert h.localization_stability(two, flipped, 4, agg="mean")[0] == pytest.approx(
        (0.5 + (1 - 16 / 50)) / 2
    )
    low = dets([0], np.eye(3)[[0]], boxes=[[0, 0, 10, 10]], scores=[0.9])
    weak = dets([0], np.eye(3)[[0]], boxes=[[0, 0, 10, 10]], scores=[0.1])
    assert h.localization_stability(low, weak, 1) == pytest.approx([0.0])
    assert h.localization_stability(low, weak, 1, min_score=0.5) == pytest.approx([1.0])
