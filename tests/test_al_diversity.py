"""Diversity: k-center greedy against a brute-force reference, the approximation against the
exact greedy, covering radius, and the uncertainty + diversity hybrids."""

from __future__ import annotations

import numpy as np
import pytest

from scenesift.al import diversity as dv


def blobs(n_clusters: int, per: int, dims: int, spread: float = 0.2, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dims)) * 10
    labels = np.repeat(np.arange(n_clusters), per)
    x = centres[labels] + rng.normal(size=(len(labels), dims)) * spread
    return x.astype(np.float32), labels


def brute_force_kcenter(x: np.ndarray, k: int, first: int | None, labelled=None):
    """The textbook loop on a full float64 distance matrix."""
    x = x.astype(np.float64)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    if labelled is not None:
        lab = labelled.astype(np.float64)
        mind = np.sqrt(((x[:, None] - lab[None]) ** 2).sum(-1)).min(axis=1)
        picks = []
    else:
        picks = [first]
        mind = d[first].copy()
    while len(picks) < k:
        i = int(np.argmax(mind))
        picks.append(i)
        mind = np.minimum(mind, d[i])
    return picks


def test_exact_greedy_equals_brute_force_on_50_points():
    x = np.random.default_rng(3).normal(size=(50, 5)).astype(np.float32)
    first = int(np.random.default_rng(7).integers(50))
    picks, dists = dv.kcenter_greedy(x, 12, rng=np.random.default_rng(7))
    assert picks.tolist() == brute_force_kcenter(x, 12, first)
    assert np.all(np.diff(dists) <= 1e-5)  # greedy radii never grow
    lab = np.random.default_rng(4).normal(size=(6, 5)).astype(np.float32)
    picks, _ = dv.kcenter_greedy(x, 12, labelled=lab)
    assert picks.tolist() == brute_force_kcenter(x, 12, None, labelled=lab)


def test_kcenter_covers_separated_clusters_one_pick_per_cluster():
    x, labels = blobs(8, 30, 6)
    for select in (dv.kcenter_greedy, dv.kcenter_approx):
        picks, _ = select(x, 8, rng=np.random.default_rng(0))
        assert sorted(labels[picks].tolist()) == list(range(8)), select.__name__


def test_labelled_centres_steer_picks_to_uncovered_clusters():
    x, labels = blobs(4, 25, 3, seed=1)
    labelled = x[[0, 1, 25]]  # clusters 0 and 1 are covered already
    picks, _ = dv.kcenter_greedy(x, 2, labelled=labelled)
    assert sorted(labels[picks].tolist()) == [2, 3]


@pytest.mark.parametrize("dims", [8, 64])  # 64: cells are assigned in a PCA projection
def test_approx_with_no_tolerance_and_no_projection_is_the_exact_greedy(dims):
    x, _ = blobs(10, 60, dims, spread=1.0, seed=5)
    exact, _ = dv.kcenter_greedy(x, 40, rng=np.random.default_rng(2))
    approx, _ = dv.kcenter_approx(
        x, 40, rng=np.random.default_rng(2), dims=None, tolerance=0.0, batch=8
    )
    assert approx.tolist() == exact.tolist()


def test_approx_covering_radius_within_15_percent_of_exact_on_2000_points():
    rng = np.random.default_rng(6)
    x, _ = blobs(20, 100, 48, spread=1.0, seed=6)
    x = x * np.linspace(2.0, 0.2, 48, dtype=np.float32)  # a decaying spectrum, like CNN features
    exact, _ = dv.kcenter_greedy(x, 100, rng=rng)
    approx, _ = dv.kcenter_approx(x, 100, rng=rng, dims=16, batch=32)
    r_exact = dv.covering_radius(x, exact)
    assert len(set(approx.tolist())) == 100
    assert dv.covering_radius(x, approx) <= 1.15 * r_exact


def test_covering_radius_matches_a_direct_computation():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    lab = rng.normal(size=(5, 4)).astype(np.float32)
    sel = np.array([3, 50, 120])
    centres = np.concatenate([x[sel], lab]).astype(np.float64)
    direct = np.sqrt(((x[:, None] - centres[None]) ** 2).sum(-1)).min(axis=1).max()
    assert dv.covering_radius(x, sel, lab, chunk=64) == pytest.approx(direct, rel=1e-4)
    assert dv.covering_radius(x) == np.inf


def test_picks_stay_distinct_on_duplicate_points_and_budget_is_capped():
    x = np.zeros((10, 3), np.float32)
    for select in (dv.kcenter_greedy, dv.kcenter_approx):
        picks, _ = select(x, 25, rng=np.random.default_rng(0))
        assert sorted(picks.tolist()) == list(range(10))


def test_cluster_then_uncertainty_spreads_the_batch_over_clusters():
    x, labels = blobs(5, 40, 4, seed=2)
    rng = np.random.default_rng(0)
    scores = rng.random(len(x)) * 0.1
    scores[labels == 0] += 1.0  # cluster 0 is the most uncertain everywhere
    top_only = np.argsort(-scores)[:5]
    assert set(labels[top_only]) == {0}
    rows, s = dv.cluster_then_uncertainty(x, scores, 5, rng, candidates=40)
    assert sorted(labels[rows].tolist()) == [0, 1, 2, 3, 4]
    assert rows[0] == np.argmax(scores) and np.all(np.diff(s) <= 0)
    # within each cluster the most uncertain frame is the one taken
    for r in rows:
        assert scores[r] == scores[labels == labels[r]].max()


def test_badge_prefers_uncertain_frames_and_spreads():
    x, labels = blobs(6, 30, 4, seed=3)
    scores = np.where(labels < 3, 1.0, 0.0)  # only clusters 0-2 are uncertain
    rows, _ = dv.badge_select(x, scores, 3, np.random.default_rng(1))
    assert sorted(labels[rows].tolist()) == [0, 1, 2]
    rows, _ = dv.badge_select(x, scores, 60, np.random.default_rng(1))
    assert len(set(rows.tolist())) == 60  # beyond the uncertain frames it still fills up
