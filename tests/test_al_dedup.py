"""Sequence-aware de-duplication: at most m kept frames per drive in any time window."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scenesift.al.dedup import dedup_ranked


def max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(
        (sum(1 for u in times if t <= u < t + window) for t in times),
        default=0,
    )


def test_one_frame_per_drive_per_window():
    drives = np.array(["a"] * 6 + ["b"] * 2)
    times = np.array([0.0, 1.0, 2.0, 11.0, 12.0, 25.0, 0.0, 1.0])
    kept = dedup_ranked(np.arange(8), drives, times, per_drive=1, window=10.0)
    assert kept.tolist() == [0, 3, 5, 6]


def test_kept_frames_follow_rank_order_not_time_order():
    drives = np.array(["a"] * 4)
    times = np.array([0.0, 3.0, 6.0, 9.0])
    order = np.array([2, 0, 3, 1])
    kept = dedup_ranked(order, drives, times, per_drive=2, window=10.0)
    assert order[kept].tolist() == [2, 0]  # the two best of one window


def test_limit_stops_early():
    drives = np.array(["a", "b", "c", "d"])
    kept = dedup_ranked(np.arange(4), drives, np.zeros(4), per_drive=1, window=5.0, limit=2)
    assert kept.tolist() == [0, 1]


def test_frames_without_timestamps_keep_the_best_ranked_per_drive():
    drives = np.array(["a", "a", "a", "a", "b"])
    times = np.array([np.nan, np.nan, np.nan, 100.0, np.nan])
    kept = dedup_ranked(np.arange(5), drives, times, per_drive=2, window=10.0)
    assert kept.tolist() == [0, 1, 3, 4]  # the timed frame is judged on its own


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="per_drive"):
        dedup_ranked(np.arange(1), np.array(["a"]), np.zeros(1), per_drive=0)
    with pytest.raises(ValueError, match="window"):
        dedup_ranked(np.arange(1), np.array(["a"]), np.zeros(1), window=-1.0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.floats(0, 60, allow_nan=False)), min_size=1, max_size=40
    ),
    st.integers(1, 3),
    st.floats(0.5, 20),
)
def test_never_more_than_m_per_drive_in_any_window_and_greedy_maximal(frames, m, window):
    drives = np.array([f"d{d}" for d, _ in frames])
    times = np.array([t for _, t in frames])
    kept = dedup_ranked(np.arange(len(frames)), drives, times, per_drive=m, window=window)
    for d in set(drives.tolist()):
        kd = [times[i] for i in kept if drives[i] == d]
        assert max_in_any_window(kd, window) <= m
    # every rejected frame would have broken the rule with the frames kept before it
    kept_set = set(kept.tolist())
    for i in range(len(frames)):
        if i not in kept_set:
            before = [times[j] for j in kept if j < i and drives[j] == drives[i]]
            assert max_in_any_window([*before, times[i]], window) > m
