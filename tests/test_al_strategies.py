"""Strategies: every one returns a valid Selection on a tiny pool, names its parameters and
its missing inputs; composition (dedup, fusion) and make_strategy specs behave."""

from __future__ import annotations

import numpy as np
import pytest

from scenesift.al import strategies as st
from scenesift.al.pool import Detections, Pool

SITUATIONS = ("day", "night", "fog")
CLASSES = ("car", "pedestrian", "golf_cart")


def make_pool(n: int = 60, seed: int = 0, **overrides) -> Pool:
    """n frames in 6 drives of 1 frame per second, with every kind of prediction."""
    rng = np.random.default_rng(seed)
    per_frame = rng.integers(0, 4, n)
    frame = np.repeat(np.arange(n), per_frame)
    m = len(frame)
    member = np.arange(m) % 2
    x1 = rng.uniform(0, 200, m)
    y1 = rng.uniform(0, 100, m)
    det = Detections(
        frame=frame,
        scores=rng.uniform(0.3, 1.0, m).astype(np.float32),
        class_probs=rng.dirichlet(np.ones(len(CLASSES)), m).astype(np.float32),
        boxes=np.column_stack([x1, y1, x1 + 30, y1 + 20]).astype(np.float32),
        member=member,
    )
    centres = rng.normal(size=(6, 8)) * 5
    fields = dict(
        frame_ids=np.arange(100, 100 + n),
        drives=np.array([f"drive{i % 6}" for i in range(n)], dtype=object),
        timestamps=np.arange(n, dtype=np.float64) // 6,
        situations=SITUATIONS,
        situation_scores=rng.random((n, 3)).astype(np.float32),
        situation_mc_scores=rng.random((4, n, 3)).astype(np.float32),
        classes=CLASSES,
        detections=det,
        flip_detections=Detections(
            frame=frame, scores=det.scores, class_probs=det.class_probs, boxes=det.boxes + 3
        ),
        embeddings=(centres[np.arange(n) % 6] + rng.normal(size=(n, 8))).astype(np.float32),
        labelled_embeddings=rng.normal(size=(5, 8)).astype(np.float32),
        labelled_situation_counts={"day": 10, "night": 4, "fog": 0},
        labelled_class_counts={"car": 40, "pedestrian": 10, "golf_cart": 1},
        n_labelled=14,
    )
    fields.update(overrides)
    return Pool(**fields)


SPECS = [
    {"name": "random"},
    {"name": "least_confidence"},
    {"name": "least_confidence", "target": "situations", "agg": "max"},
    {"name": "margin", "target": "detections", "agg": "topk_mean", "k": 2},
    {"name": "entropy", "target": "detections", "agg": "sum", "empty": 0.0},
    {"name": "entropy", "target": "situations"},
    {"name": "bald"},
    {"name": "box_disagreement"},
    {"name": "class_aware"},
    {"name": "class_aware", "heuristic": "margin", "agg": "sum"},
    {"name": "localization_stability"},
    {"name": "localization_stability", "agg": "topk_mean", "k": 2, "min_score": 0.5},
    {"name": "coreset"},
    # uncertainty + diversity: a batch spread over the embedding space, not one drive's frames
    {"name": "badge", "uncertainty": {"name": "class_aware"}},
    {"name": "cluster_uncertainty", "uncertainty": {"name": "localization_stability"}},
    {"name": "coreset", "method": "approx", "dims": 4, "batch": 8},
    {"name": "cluster_uncertainty", "uncertainty": {"name": "entropy", "target": "situations"}},
    {"name": "badge"},
    {"name": "balance_situations", "targets": {"fog": 0.3}},
    {"name": "balance_classes"},
    {"name": "entropy", "dedup": {"per_drive": 1, "window": 3.0}},
    {
        "name": "fusion",
        "method": "rank",
        "parts": [
            {"name": "least_confidence", "target": "detections", "weight": 0.7},
            {"name": "balance_situations", "weight": 0.3},
        ],
        "dedup": {"per_drive": 2, "window": 10.0},
    },
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s["name"])
def test_every_strategy_returns_a_valid_selection(spec):
    pool = make_pool()
    strategy = st.make_strategy(spec)
    sel = strategy.select(pool, 8, np.random.default_rng(1))
    assert sel.indices.dtype == np.int64 and sel.scores.dtype == np.float64
    assert len(sel.indices) == len(sel.scores) <= 8
    assert len(set(sel.indices.tolist())) == len(sel.indices)
    assert sel.indices.min() >= 0 and sel.indices.max() < len(pool)
    assert sel.strategy.startswith(spec["name"]) and "(" in sel.strategy
    if "dedup" not in spec:
        assert len(sel.indices) == 8
    again = strategy.select(pool, 8, np.random.default_rng(1))
    assert again.indices.tolist() == sel.indices.tolist()  # deterministic given the rng
    everything = strategy.select(pool, 1000, np.random.default_rng(1))
    assert len(everything.indices) <= len(pool)


def test_least_confidence_picks_the_frame_nearest_one_half():
    probs = np.array([[0.9, 0.1, 0.0], [0.6, 0.4, 0.3], [0.51, 0.49, 0.5], [0.99, 0.0, 0.01]])
    pool = make_pool(4, situation_scores=probs.astype(np.float32))
    sel = st.LeastConfidence(target="situations").select(pool, 1, np.random.default_rng(0))
    assert sel.indices.tolist() == [2]
    assert sel.strategy == "least_confidence(target=situations, agg=mean)"


def test_labels_name_the_parameters():
    assert st.make_strategy({"name": "entropy"}).label == (
        "entropy(target=detections, agg=max, empty=median)"
    )
    spec = {"name": "margin", "agg": "topk_mean", "k": 2, "dedup": {"per_drive": 2, "window": 5}}
    assert st.make_strategy(spec).label == (
        "margin(target=detections, agg=topk_mean, k=2, empty=median)"
        " | dedup(per_drive=2, window=5s)"
    )
    fused = st.make_strategy({"name": "fusion", "parts": ["random", "bald"]})
    assert fused.label == "fusion(rank: 1*random() + 1*bald(agg=mean))"


@pytest.mark.parametrize("method", ["rank", "score"])
@pytest.mark.parametrize(
    "part", [{"name": "entropy", "target": "situations"}, {"name": "balance_situations"}]
)
def test_fusion_of_identical_strategies_equals_the_strategy(method, part):
    pool = make_pool()
    alone = st.make_strategy(part).select(pool, 10, np.random.default_rng(3))
    spec = {"name": "fusion", "method": method, "parts": [{**part, "weight": 0.3}, part]}
    fused = st.make_strategy(spec).select(pool, 10, np.random.default_rng(3))
    assert fused.indices.tolist() == alone.indices.tolist()


def test_fusion_weights_move_the_batch_between_its_parts():
    pool = make_pool(seed=4)
    rng = np.random.default_rng

    def batch(w_lc: float) -> set[int]:
        spec = {
            "name": "fusion",
            "method": "score",
            "parts": [
                {"name": "least_confidence", "target": "situations", "weight": w_lc},
                {"name": "entropy", "target": "detections", "weight": 1 - w_lc},
            ],
        }
        return set(st.make_strategy(spec).select(pool, 6, rng(0)).indices.tolist())

    lc = set(st.make_strategy({"name": "least_confidence", "target": "situations"})
             .select(pool, 6, rng(0)).indices.tolist())  # fmt: skip
    ent = set(st.make_strategy({"name": "entropy"}).select(pool, 6, rng(0)).indices.tolist())
    assert batch(1.0) == lc and batch(0.0) == ent


def test_dedup_keeps_at_most_m_per_drive_per_window():
    pool = make_pool(120, seed=5)
    strategy = st.Dedup(st.RandomStrategy(), per_drive=1, window=4.0)
    sel = strategy.select(pool, 20, np.random.default_rng(0))
    assert len(sel.indices) == 20
    for d in set(pool.drives[sel.indices].tolist()):
        t = np.sort(pool.timestamps[sel.indices][pool.drives[sel.indices] == d])
        assert np.all(np.diff(t) >= 4.0)


def test_dedup_around_a_batch_strategy_asks_for_more_and_may_return_fewer():
    pool = make_pool(30, seed=6, timestamps=np.zeros(30))  # 6 drives, all frames at t=0
    wrapped = st.Dedup(st.CoreSet(method="exact"), per_drive=1, window=1.0)
    sel = wrapped.select(pool, 10, np.random.default_rng(0))
    assert len(sel.indices) == 6  # one per drive is all the pool can give
    filled = st.Dedup(st.CoreSet(method="exact"), per_drive=1, window=1.0, fill=True)
    assert len(filled.select(pool, 10, np.random.default_rng(0)).indices) == 10


def test_missing_pool_fields_are_named():
    pool = make_pool(situation_scores=None, embeddings=None, situation_mc_scores=None)
    rng = np.random.default_rng(0)
    for spec, field in [
        ({"name": "entropy", "target": "situations"}, "situation_scores"),
        ({"name": "balance_situations"}, "situation_scores"),
        ({"name": "coreset"}, "embeddings"),
        ({"name": "badge"}, "embeddings"),
        ({"name": "bald"}, "situation_mc_scores"),
        ({"name": "fusion", "parts": ["random", "coreset"]}, "embeddings"),
        ({"name": "cluster_uncertainty", "uncertainty": "bald"}, "embeddings"),
    ]:
        with pytest.raises(ValueError, match=rf"Pool\.{field}"):
            st.make_strategy(spec).select(pool, 3, rng)
    no_members = make_pool(
        detections=Detections(
            np.zeros(1, np.int64), np.ones(1), np.ones((1, 3)) / 3, np.ones((1, 4))
        )
    )
    with pytest.raises(ValueError, match=r"Pool\.detections\.member"):
        st.make_strategy("box_disagreement").select(no_members, 3, rng)
    # an empty pool needs nothing
    empty = make_pool(0, situation_scores=None)
    assert len(st.make_strategy("balance_situations").select(empty, 5, rng).indices) == 0


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"target": "detections"}, r"missing key 'name'"),
        ({"name": "most_uncertain"}, r"unknown name 'most_uncertain'; allowed names: random, "),
        ({"name": "entropy", "aggregate": "max"}, r"unknown key 'aggregate'; allowed keys: .*agg"),
        ({"name": "entropy", "target": "boxes"}, r"target must be one of detections, situations"),
        ({"name": "entropy", "agg": "median"}, r"agg must be one of max, mean, sum, topk_mean"),
        ({"name": "margin", "target": "situations", "agg": "topk_mean"}, r"agg must be one of"),
        ({"name": "entropy", "weight": 0.5}, r"'weight' is only allowed in the parts"),
        ({"name": "entropy", "dedup": {"per_drive": 2, "seconds": 3}}, r"unknown key 'seconds'"),
        ({"name": "entropy", "dedup": {"per_drive": 0}}, r"per_drive must be an integer >= 1"),
        ({"name": "fusion"}, r"'parts' must be a non-empty list"),
        ({"name": "fusion", "parts": [{"name": "x"}]}, r"parts\[0\]: .*unknown name 'x'"),
        ({"name": "fusion", "parts": [{"name": "bald", "weight": -1}]}, r"parts\[0\]: weight"),
        ({"name": "fusion", "method": "borda", "parts": ["random"]}, r"method must be one of"),
        ({"name": "coreset", "method": "fast"}, r"method must be one of auto, exact, approx"),
        ({"name": "badge", "uncertainty": {"name": "coreset"}}, r"uncertainty: .*score strategy"),
        ({"name": "balance_situations", "targets": 2}, r"targets must be a number in"),
        ({"name": "dedup"}, r"wrapper"),
    ],
)
def test_make_strategy_errors_name_the_bad_key(spec, message):
    with pytest.raises(ValueError, match=message):
        st.make_strategy(spec)


def test_unknown_target_situation_is_named_at_selection():
    strategy = st.make_strategy({"name": "balance_situations", "targets": {"snow": 0.2}})
    with pytest.raises(ValueError, match=r"unknown situations 'snow'"):
        strategy.select(make_pool(), 3, np.random.default_rng(0))


def test_registry_lists_every_name_with_a_description():
    assert set(st.STRATEGIES) >= {
        "random", "least_confidence", "margin", "entropy", "bald", "box_disagreement",
        "coreset", "cluster_uncertainty", "badge", "balance_situations", "balance_classes",
        "fusion", "dedup",
    }  # fmt: skip
    assert all(isinstance(d, str) and d and "\n" not in d for d in st.STRATEGIES.values())
    assert st.make_strategy("coreset").get_params()["method"] == "auto"


def test_budget_must_be_a_non_negative_integer():
    with pytest.raises(ValueError, match="budget"):
        st.RandomStrategy().select(make_pool(), -1, np.random.default_rng(0))
    assert len(st.RandomStrategy().select(make_pool(), 0, np.random.default_rng(0)).indices) == 0


def test_wrappers_report_what_their_parts_read():
    fused = st.make_strategy(
        {
            "name": "fusion",
            "parts": [{"name": "coreset"}, {"name": "balance_situations"}],
            "dedup": {"per_drive": 1},
        }
    )
    assert fused.required_fields() == ("embeddings", "situation_scores")


def test_class_aware_prefers_a_doubtful_rare_object_to_a_more_doubtful_common_one():
    # frame 0: a car at 1 - 0.5 = 0.5; frame 1: a golf cart at 1 - 0.7 = 0.3
    det = Detections(
        frame=np.array([0, 1]),
        scores=np.array([0.5, 0.7], np.float32),
        class_probs=np.array([[0.5, 0.2, 0.3], [0.1, 0.2, 0.7]], np.float32),
        boxes=np.zeros((2, 4), np.float32),
    )
    # labelled: car 40, pedestrian 10, golf_cart 1 -> mean 17, weights 18/41 and 18/2
    pool = make_pool(2, detections=det)
    rng = np.random.default_rng(0)
    assert st.LeastConfidence().select(pool, 1, rng).indices.tolist() == [0]
    sel = st.make_strategy({"name": "class_aware"}).select(pool, 2, rng)
    assert sel.indices.tolist() == [1, 0]
    assert sel.scores == pytest.approx([0.3 * 9, 0.5 * 18 / 41], rel=1e-5)
    assert sel.strategy == "class_aware(heuristic=least_confidence, agg=max, empty=median)"
    with pytest.raises(ValueError, match=r"Pool\.classes"):
        st.ClassAware().select(make_pool(2, detections=det, classes=("car",)), 1, rng)


def test_localization_stability_ranks_the_box_that_moves_under_a_flip_first():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    det = Detections(
        frame=np.array([0, 1]),
        scores=np.ones(2, np.float32),
        class_probs=np.eye(3, dtype=np.float32)[[0, 0]],
        boxes=boxes,
    )
    # frame 0's flipped box is the same, frame 1's covers half of it (IoU 0.5)
    flipped = Detections(
        det.frame, det.scores, det.class_probs, boxes - [[0, 0, 0, 0], [0, 0, 0, 5]]
    )
    pool = make_pool(2, detections=det, flip_detections=flipped)
    sel = st.make_strategy("localization_stability").select(pool, 2, np.random.default_rng(0))
    assert sel.indices.tolist() == [1, 0] and sel.scores == pytest.approx([0.5, 0.0])
    assert sel.strategy == "localization_stability(agg=max, empty=median)"
    with pytest.raises(ValueError, match=r"needs detections on the flipped frames \(Pool.flip_"):
        st.LocalizationStability().select(
            make_pool(2, flip_detections=None), 1, np.random.default_rng(0)
        )
