"""Sequence-aware de-duplication of a ranked candidate list.

Neighbouring frames of a drive are near-duplicates: an uncertain frame usually comes with
its uncertain neighbours, and labelling all of them buys one frame's worth of information.
``dedup_ranked`` walks a ranking best first and keeps a frame unless its drive already has
``per_drive`` kept frames within ``window`` seconds of it, in the sense that no half-open
time interval of length ``window`` may hold more than ``per_drive`` kept frames of a drive.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

_BLOCK = 4096


def _fits(times: list[float], t: float, per_drive: int, window: float) -> bool:
    """Whether inserting ``t`` into the sorted kept ``times`` of a drive keeps every run of
    ``per_drive + 1`` consecutive kept times spanning at least ``window`` seconds (the
    runs that include t are the only ones that change)."""
    pos = bisect.bisect_left(times, t)
    m = per_drive

    def at(j: int) -> float:
        return times[j] if j < pos else (t if j == pos else times[j - 1])

    size = len(times) + 1
    for first in range(max(0, pos - m), pos + 1):
        last = first + m
        if last < size and at(last) - at(first) < window:
            return False
    return True


def dedup_ranked(
    order: np.ndarray,
    drives: np.ndarray,
    timestamps: np.ndarray,
    per_drive: int = 1,
    window: float = 10.0,
    limit: int | None = None,
) -> np.ndarray:
    """Positions into ``order`` (pool rows, best first) of the frames kept, in rank order.

    A frame is kept when, with it, no ``window``-second interval holds more than
    ``per_drive`` kept frames of its drive; stops after ``limit`` kept frames. Frames with
    a NaN timestamp cannot be placed in time, so they are treated as all within one window
    of each other (but not of the drive's timed frames): the ``per_drive`` best-ranked of
    each drive are kept, i.e. the per-drive rank order is the fallback.
    """
    if per_drive < 1:
        raise ValueError(f"per_drive must be >= 1; got {per_drive}")
    if not window >= 0:
        raise ValueError(f"window must be >= 0 seconds; got {window}")
    order = np.asarray(order, np.int64)
    limit = len(order) if limit is None else max(0, int(limit))
    kept_times: dict[object, list[float]] = {}
    untimed: dict[object, int] = {}
    kept: list[int] = []
    for start in range(0, len(order), _BLOCK):
        rows = order[start : start + _BLOCK]
        for offset, (drive, t) in enumerate(
            zip(
                np.asarray(drives)[rows].tolist(),
                np.asarray(timestamps)[rows].tolist(),
                strict=True,
            )
        ):
            if len(kept) >= limit:
                return np.asarray(kept, np.int64)
            if t is None or math.isnan(t):
                if untimed.get(drive, 0) < per_drive:
                    untimed[drive] = untimed.get(drive, 0) + 1
                    kept.append(start + offset)
                continue
            times = kept_times.setdefault(drive, [])
            if _fits(times, t, per_drive, window):
                bisect.insort(times, t)
                kept.append(start + offset)
    return np.asarray(kept, np.int64)
