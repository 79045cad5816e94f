"""Targeted selection: fill the situations (and classes) that are short of labels.

Seed 000's use of the tagger: select frames from situations where data is still missing.
Like Lightly's balancing, but on predicted probabilities: each labelled-set situation has a
target count; a frame's value is its expected contribution to the unmet part,
sum_s p(frame in s) x deficit_s, and picks are greedy with the deficits updated after each
pick (a picked frame is counted as p_s expected positives). So the rarest situation is
served first and stops being favoured once its expected deficit is filled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from scenesift.al.pool import Detections

Targets = float | Mapping[str, float] | None
_CACHE = 2048


def target_proportions(names: Sequence[str], targets: Targets, what: str) -> np.ndarray:
    """Per-name target share of the labelled set: ``None`` = uniform 1/K; a float p = "at
    least p for every one"; a mapping = per name (names left out get 0). A name that is
    not in ``names`` is an error naming it."""
    k = len(names)
    if targets is None:
        return np.full(k, 1.0 / max(k, 1))
    if isinstance(targets, Mapping):
        unknown = sorted(set(targets) - set(names))
        if unknown:
            raise ValueError(
                f"targets: unknown {what} {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(names)}"
            )
        out = np.array([float(targets.get(s, 0.0)) for s in names])
    elif isinstance(targets, int | float) and not isinstance(targets, bool):
        out = np.full(k, float(targets))
    else:
        raise ValueError(
            f"targets must be a number, a table {what} -> share, or none; got {targets!r}"
        )
    if np.any(~np.isfinite(out)) or np.any(out < 0) or np.any(out > 1):
        raise ValueError(f"targets must be shares in [0, 1]; got {targets!r}")
    return out


def balanced_greedy(
    contrib: np.ndarray,
    current: np.ndarray,
    target: np.ndarray,
    budget: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy picks maximising ``contrib @ max(target - current, 0)``, updating ``current``
    by each pick's ``contrib`` row. Returns rows in pick order and each pick's gain.

    Gains only fall as deficits fall, so stale gains are upper bounds (lazy greedy): each
    step re-scores only the ``_CACHE`` best bounds and re-scores the whole pool only when
    a frame outside them might win. Exact; worst case O(budget x n x K). Ties (e.g. every
    deficit met, all gains 0) are broken by a random order from ``rng``, not by pool row,
    so the tail of a batch is a random sample rather than the first rows of the first drive.
    """
    contrib = np.nan_to_num(np.asarray(contrib, np.float64), nan=0.0)
    current = np.asarray(current, np.float64).copy()
    target = np.asarray(target, np.float64)
    n = len(contrib)
    budget = max(0, min(int(budget), n))
    prio = rng.permutation(n)  # tie-breaker: smaller wins
    deficit = np.maximum(target - current, 0.0)
    bound = contrib @ deficit
    taken = np.zeros(n, bool)
    picks: list[int] = []
    gains: list[float] = []
    cache = np.zeros(0, np.int64)
    rest_max = np.inf
    while len(picks) < budget:
        cache = cache[~taken[cache]]
        if len(cache) == 0:
            bound = np.where(taken, -np.inf, contrib @ deficit)
            free = n - len(picks)
            c = min(_CACHE, free)
            part = np.argpartition(-bound, c - 1 if c == free else c)
            cache = part[:c]
            rest_max = float(bound[part[c]]) if c < free else -np.inf
        g = contrib[cache] @ deficit
        bound[cache] = g
        best = g.max()
        if best < rest_max:  # a frame outside the cache may be better: re-score all
            cache = np.zeros(0, np.int64)
            continue
        ties = cache[g == best]
        i = int(ties[np.argmin(prio[ties])])
        picks.append(i)
        gains.append(float(best))
        taken[i] = True
        current += contrib[i]
        deficit = np.maximum(target - current, 0.0)
    return np.asarray(picks, np.int64), np.asarray(gains)


def balance_situations(
    situation_scores: np.ndarray,
    situations: Sequence[str],
    labelled_counts: Mapping[str, int],
    n_labelled: int,
    budget: int,
    rng: np.random.Generator,
    targets: Targets = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Situation-targeted batch: target count of situation s = share_s x (n_labelled +
    budget), deficit = target - labelled positives (``labelled_counts``, missing = 0), a
    frame contributes its tagger probabilities (NaN = 0). See ``balanced_greedy``."""
    probs = np.asarray(situation_scores, np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(situations):
        raise ValueError(
            f"situation_scores has shape {probs.shape}; expected (frames, {len(situations)})"
        )
    share = target_proportions(situations, targets, "situations")
    current = np.array([float(labelled_counts.get(s, 0)) for s in situations])
    total = n_labelled + max(0, min(int(budget), len(probs)))
    return balanced_greedy(probs, current, share * total, budget, rng)


def expected_class_counts(
    detections: Detections, n_frames: int, n_classes: int, min_score: float = 0.0
) -> np.ndarray:
    """(n, C) expected boxes per class per frame: the sum of its boxes' class_probs."""
    keep = np.asarray(detections.scores) >= min_score
    frame = np.asarray(detections.frame, np.int64)[keep]
    probs = np.asarray(detections.class_probs, np.float64)[keep]
    if probs.shape[1] != n_classes:
        raise ValueError(f"class_probs has {probs.shape[1]} classes; the pool lists {n_classes}")
    out = np.zeros((n_frames, n_classes))
    np.add.at(out, frame, probs)
    return out


def balance_classes(
    detections: Detections,
    classes: Sequence[str],
    labelled_counts: Mapping[str, int],
    n_frames: int,
    budget: int,
    rng: np.random.Generator,
    targets: Targets = None,
    min_score: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Class-targeted batch: like ``balance_situations`` on boxes. A frame contributes its
    expected boxes per class; the labelled set's final box count, unknown in advance, is
    estimated as the labelled boxes plus ``budget`` x the pool's mean expected boxes per
    frame, and class c's target is share_c of it."""
    contrib = expected_class_counts(detections, n_frames, len(classes), min_score)
    share = target_proportions(classes, targets, "classes")
    current = np.array([float(labelled_counts.get(c, 0)) for c in classes])
    k = max(0, min(int(budget), n_frames))
    per_frame = float(contrib.sum(axis=1).mean()) if n_frames else 0.0
    total = current.sum() + k * per_frame
    return balanced_greedy(contrib, current, share * total, budget, rng)
