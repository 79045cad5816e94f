"""Cluster (drive-level) bootstrap: the one resampling scheme behind every interval we print.

Consecutive frames of a drive are nearly the same picture, so they are not independent
observations: resampling frames treats 130 fog frames from one drive as 130 pieces of
evidence and gives an interval far too narrow. The unit that varies independently is the
drive, so a resample draws *drives* with replacement (as many as there are) and takes all of
each drawn drive's frames (the cluster bootstrap; Davison & Hinkley 1997, sec. 3.8). With one
frame per drive it is the ordinary frame bootstrap, which is used only where frames are
independent (no drives known) and then says so (``unit == "frame"``).

A resample is expressed as per-frame counts (how often each frame's drive was drawn), so a
metric that accepts sample weights evaluates every resample at once; :func:`resample_indices`
turns a row of counts into the frame indices, repeats included, for metrics that do not.

The *effective sample size* of a metric is the number of drives behind it
(:func:`drives_with`): below :data:`FEW_DRIVES`, no interval can say much.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

#: Below this many drives behind a metric its interval is flagged (and printed as "few").
FEW_DRIVES = 3
Unit = Literal["drive", "frame"]


def cluster_ids(drives: Sequence[str | None] | None, n: int) -> tuple[np.ndarray, Unit]:
    """Integer cluster ids (0..K-1) for ``n`` frames from their drive names, and the unit.

    Without drives (None, or every entry None) each frame is its own cluster, unit ``frame``;
    a frame without a drive among frames with drives is its own drive."""
    if drives is None or all(d is None for d in drives):
        return np.arange(n), "frame"
    if len(drives) != n:
        raise ValueError(f"{len(drives)} drive names for {n} frames")
    keys = [("frame", i) if d is None else ("drive", d) for i, d in enumerate(drives)]
    index: dict[tuple, int] = {}
    ids = np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)
    return ids, "drive"


def resample_counts(clusters: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) weights: each resample draws K of the K clusters with replacement and
    each frame counts as often as its cluster was drawn."""
    clusters = np.asarray(clusters, dtype=np.int64)
    if clusters.size == 0 or n_boot <= 0:
        return np.zeros((max(n_boot, 0), clusters.size))
    k = int(clusters.max()) + 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(n_boot, k)) + (np.arange(n_boot)[:, None] * k)
    per_cluster = np.bincount(draws.ravel(), minlength=n_boot * k).reshape(n_boot, k)
    return per_cluster[:, clusters].astype(float)


def resample_indices(counts: np.ndarray) -> np.ndarray:
    """The frame indices of one resample (one row of :func:`resample_counts`), repeats
    included: a drive drawn twice contributes each of its frames twice."""
    counts = np.asarray(counts).astype(np.int64)
    return np.repeat(np.arange(counts.size), counts)


def percentile_interval(
    values: np.ndarray, level: float = 0.95, min_used: int = 1
) -> tuple[float | None, float | None, int]:
    """Percentile interval of the defined (non-NaN) resample values and how many there were;
    (None, None, used) when fewer than ``min_used`` are defined."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    values = np.asarray(values, dtype=float)
    used = values[~np.isnan(values)]
    if used.size < max(min_used, 1):
        return None, None, int(used.size)
    alpha = (1 - level) / 2
    low, high = np.quantile(used, [alpha, 1 - alpha])
    return float(low), float(high), int(used.size)


def drives_with(clusters: np.ndarray, where: np.ndarray) -> int:
    """How many distinct clusters (drives) hold at least one frame where ``where`` is True."""
    clusters = np.asarray(clusters)
    return int(np.unique(clusters[np.asarray(where, dtype=bool)]).size)


def few(n_drives: int | None) -> bool:
    """Whether a metric rests on fewer than :data:`FEW_DRIVES` drives."""
    return n_drives is not None and n_drives < FEW_DRIVES


def one_drive(n_drives: int | None) -> bool:
    """Whether a metric rests on a single drive: its resamples either lack that drive
    (undefined) or repeat it, so the percentile interval would collapse onto the estimate
    however little one drive tells; such a metric gets no interval."""
    return n_drives is not None and n_drives < 2


def drives_text(n_drives: int | None, unit: Unit = "drive") -> str:
    """The effective sample size as printed beside a metric: ``7``, or ``1 (few)`` below
    :data:`FEW_DRIVES` drives; ``-`` when unknown (frames resampled as independent)."""
    if n_drives is None or unit == "frame":
        return "-"
    return f"{n_drives} (few)" if few(n_drives) else str(n_drives)


FEW_NOTE = (
    f"(few): fewer than {FEW_DRIVES} drives behind the number; its interval cannot be "
    "trusted (consecutive frames of a drive are nearly the same picture)."
)
