"""Situation and class balancing: the rarest need first, then no more favour once filled."""

from __future__ import annotations

import numpy as np
import pytest

from scenesift.al import balance as bl
from scenesift.al.pool import Detections


def pool_probs(n_rare: int, n_common: int, seed: int = 0) -> np.ndarray:
    """Columns (fog, day); fog frames are also day frames (p ~ 0.9), common ones day only."""
    rng = np.random.default_rng(seed)
    rare = np.column_stack([rng.uniform(0.85, 0.95, n_rare), rng.uniform(0.85, 0.95, n_rare)])
    common = np.column_stack([rng.uniform(0.0, 0.05, n_common), rng.uniform(0.9, 1.0, n_common)])
    return np.vstack([rare, common])


def test_the_rare_situation_is_picked_first_and_stops_being_favoured_once_filled():
    probs = pool_probs(20, 200)
    # 100 labelled: 2 fog, 98 day; target: at least 10% fog and 50% day of 140 frames
    rows, gains = bl.balance_situations(
        probs,
        ("fog", "day"),
        {"fog": 2, "day": 98},
        100,
        budget=40,
        rng=np.random.default_rng(0),
        targets={"fog": 0.1, "day": 0.5},
    )
    is_fog = rows < 20
    # fog deficit = 14 - 2 = 12 expected positives: ~13 fog frames at p ~ 0.9, then no more
    n_fog = int(is_fog.sum())
    assert 12 <= n_fog <= 15
    assert is_fog[:n_fog].all()  # all of them first
    assert np.all(np.diff(gains) <= 1e-12)
    assert gains[-1] == 0.0  # every deficit met: the tail is a random draw


def test_default_targets_are_uniform_over_situations():
    probs = pool_probs(10, 50, seed=1)
    rows, gains = bl.balance_situations(probs, ("fog", "day"), {}, 0, 6, np.random.default_rng(0))
    # a share of 0.5 each of 6 frames = 3 expected positives each; fog frames (p ~ 0.9 for
    # both) bring both, so they win until both are met, after 4 of them
    assert (rows[:4] < 10).all()
    assert gains[3] > 0 and gains[4] == 0


def test_tail_ties_are_broken_by_rng_not_by_row():
    probs = np.zeros((50, 2))
    a, _ = bl.balance_situations(probs, ("x", "y"), {}, 0, 5, np.random.default_rng(1))
    b, _ = bl.balance_situations(probs, ("x", "y"), {}, 0, 5, np.random.default_rng(2))
    assert a.tolist() != b.tolist() and a.tolist() != [0, 1, 2, 3, 4]


def test_lazy_greedy_equals_the_plain_greedy():
    rng = np.random.default_rng(3)
    contrib = rng.random((3000, 5)) ** 4
    current = rng.integers(0, 50, 5).astype(float)
    target = np.full(5, 120.0)
    rows, gains = bl.balanced_greedy(contrib, current, target, 60, np.random.default_rng(0))
    cur = current.copy()
    taken = np.zeros(len(contrib), bool)
    for r, g in zip(rows, gains, strict=True):
        plain = np.where(taken, -np.inf, contrib @ np.maximum(target - cur, 0))
        assert g == pytest.approx(plain.max()) and plain[r] == pytest.approx(plain.max())
        taken[r] = True
        cur += contrib[r]


def test_targets_are_validated_by_name_and_range():
    with pytest.raises(ValueError, match=r"unknown situations 'snow'"):
        bl.target_proportions(("fog", "day"), {"snow": 0.1}, "situations")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bl.target_proportions(("fog",), 1.5, "situations")
    assert bl.target_proportions(("a", "b"), 0.2, "situations").tolist() == [0.2, 0.2]


def test_classes_are_balanced_from_detections():
    # 30 frames; frames 0-4 hold a likely golf cart, the rest only cars
    frame = np.repeat(np.arange(30), 2)
    probs = np.tile([[0.95, 0.05], [0.9, 0.1]], (30, 1))
    probs[:10:2] = [0.2, 0.8]  # first box of frames 0-4 is a golf cart
    d = Detections(
        frame=frame,
        scores=probs.max(axis=1).astype(np.float32),
        class_probs=probs.astype(np.float32),
        boxes=np.zeros((60, 4), np.float32),
    )
    counts = bl.expected_class_counts(d, 30, 2)
    assert counts[0] == pytest.approx([1.1, 0.9]) and counts[10] == pytest.approx([1.85, 0.15])
    rows, _ = bl.balance_classes(
        d, ("car", "golf_cart"), {"car": 500, "golf_cart": 3}, 30, 5, np.random.default_rng(0)
    )
    assert sorted(rows.tolist()) == [0, 1, 2, 3, 4]
