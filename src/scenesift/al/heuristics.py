"""Per-frame informativeness scores from model outputs: higher = label this frame sooner.

In the spirit of baal's heuristics: pure functions of arrays, no model, no store. Two kinds
of model output are scored:

* situation scores ``(n, S)``: independent sigmoids of the tagger, one per situation. Each
  label gives a per-label uncertainty; ``agg`` ("mean", "max" or "sum") turns the S values of
  a frame into one. NaN scores (a situation the tagger did not score for that frame) are left
  out of the aggregation; a frame with no score at all gets NaN, which ``top_k`` ranks last.
* detections (``Detections``, one row per box): a per-box uncertainty from ``class_probs``,
  then a box -> frame aggregation (``aggregate_boxes``) with an explicit rule for frames
  without detections.

Every function is vectorised over frames and boxes (bincount / ufunc.at / lexsort); the only
Python loop is the few rounds of the box matching in ``box_disagreement``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from scenesift.al.pool import Detections

LabelAgg = Literal["mean", "max", "sum"]
BoxAgg = Literal["max", "mean", "sum", "topk_mean"]
LABEL_AGGREGATIONS: tuple[str, ...] = ("mean", "max", "sum")
BOX_AGGREGATIONS: tuple[str, ...] = ("max", "mean", "sum", "topk_mean")
BOX_HEURISTICS: tuple[str, ...] = ("least_confidence", "margin", "entropy")
EMPTY_RULES: tuple[str, ...] = ("median", "max")
_EPS = 1e-12
_CHUNK = 65_536


def check_choice(param: str, value: object, allowed: tuple[str, ...]) -> None:
    """Raise a ValueError naming ``param`` and the allowed values unless ``value`` is one."""
    if value not in allowed:
        raise ValueError(f"{param} must be one of {', '.join(allowed)}; got {value!r}")


def check_empty(empty: float | str) -> None:
    """``empty`` is a number or one of EMPTY_RULES (see ``aggregate_boxes``)."""
    if isinstance(empty, str):
        check_choice("empty", empty, EMPTY_RULES)
    elif not isinstance(empty, int | float) or not np.isfinite(empty):
        raise ValueError(f"empty must be a finite number or one of median, max; got {empty!r}")


# ---------------------------------------------------------------- ranking


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` highest scores, best first; ties go to the lower row, NaN ranks last.

    Deterministic tie-breaking matters: fused or wrapped strategies must reproduce the order
    of the strategy they wrap. O(n) selection + O(k log k) sort, not a full sort.
    """
    s = np.where(np.isnan(scores), -np.inf, np.asarray(scores, np.float64))
    n = len(s)
    k = max(0, min(int(k), n))
    if k == 0:
        return np.zeros(0, np.int64)
    if k < n:
        kth = np.partition(s, n - k)[n - k]
        above = np.flatnonzero(s > kth)
        tied = np.flatnonzero(s == kth)[: k - len(above)]
        idx = np.concatenate([above, tied])
    else:
        idx = np.arange(n)
    return idx[np.lexsort((idx, -s[idx]))].astype(np.int64)


# ---------------------------------------------------------------- situations (n, S)


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in bits of Bernoulli(p), elementwise (1 at p = 0.5, 0 at 0 and 1)."""
    p = np.clip(p, _EPS, 1 - _EPS)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def _aggregate_labels(per_label: np.ndarray, agg: str) -> np.ndarray:
    check_choice("agg", agg, LABEL_AGGREGATIONS)
    per_label = np.asarray(per_label)
    if per_label.ndim != 2:
        raise ValueError(
            f"situation scores must be 2-d (frames, situations); got {per_label.shape}"
        )
    n = per_label.shape[0]
    nan = np.isnan(per_label)
    known = (~nan).sum(axis=1)
    filled = np.where(nan, 0.0 if agg != "max" else -np.inf, per_label)
    if agg == "max":
        out = filled.max(axis=1) if per_label.shape[1] else np.full(n, -np.inf)
    else:
        out = filled.sum(axis=1, dtype=np.float64)
        if agg == "mean":
            out = out / np.maximum(known, 1)
    out = np.asarray(out, np.float64)
    out[known == 0] = np.nan
    return out


def situation_least_confidence(probs: np.ndarray, agg: LabelAgg = "mean") -> np.ndarray:
    """Seed 000's least confidence per label, 1 - max(p, 1 - p) in [0, 0.5], aggregated."""
    p = np.asarray(probs, np.float32)
    return _aggregate_labels(1 - np.maximum(p, 1 - p), agg)


def situation_margin(probs: np.ndarray, agg: LabelAgg = "mean") -> np.ndarray:
    """1 - |2p - 1| per label in [0, 1] (a small margin between p and 1 - p is uncertain).

    For one sigmoid this is exactly twice the least confidence, so the two rank frames the
    same; kept under its own name so a spec reads the same for situations and detections.
    """
    p = np.asarray(probs, np.float32)
    return _aggregate_labels(1 - np.abs(2 * p - 1), agg)


def situation_entropy(probs: np.ndarray, agg: LabelAgg = "mean") -> np.ndarray:
    """Binary entropy per label in bits, aggregated ("sum" is the entropy of the joint of
    independent labels; "mean" the same ranking, comparable across taxonomies)."""
    p = np.asarray(probs, np.float32)
    return _aggregate_labels(binary_entropy(p), agg)


def bald(mc_probs: np.ndarray, agg: LabelAgg = "mean") -> np.ndarray:
    """BALD per label from ``(T, n, S)`` MC-dropout / ensemble samples, aggregated.

    Mutual information between a label and the model: H(mean_t p_t) - mean_t H(p_t), in
    bits. It is 0 when all samples agree (however uncertain they agree to be), so it picks
    frames the model could learn about rather than inherently ambiguous ones. Chunked over
    frames so T x n x S temporaries stay small.
    """
    mc = np.asarray(mc_probs)
    if mc.ndim != 3:
        raise ValueError(
            f"situation_mc_scores must be 3-d (samples, frames, situations); got {mc.shape}"
        )
    n = mc.shape[1]
    out = np.empty((n, mc.shape[2]), np.float64)
    for s in range(0, n, _CHUNK):
        block = mc[:, s : s + _CHUNK].astype(np.float64)
        mean = block.mean(axis=0)
        mi = binary_entropy(mean) - binary_entropy(block).mean(axis=0)
        out[s : s + _CHUNK] = np.where(np.isnan(mean), np.nan, np.maximum(mi, 0.0))
    return _aggregate_labels(out, agg)


# ---------------------------------------------------------------- detections: per box


def box_least_confidence(class_probs: np.ndarray) -> np.ndarray:
    """1 - top class probability per box, in [0, 1 - 1/C]."""
    cp = np.asarray(class_probs, np.float32)
    if cp.shape[0] == 0 or cp.shape[1] == 0:
        return np.zeros(cp.shape[0], np.float64)
    return (1 - cp.max(axis=1)).astype(np.float64)


def box_margin(class_probs: np.ndarray) -> np.ndarray:
    """1 - (top1 - top2) per box, in [0, 1]: a small gap between the best two classes."""
    cp = np.asarray(class_probs, np.float32)
    if cp.shape[0] == 0 or cp.shape[1] == 0:
        return np.zeros(cp.shape[0], np.float64)
    if cp.shape[1] == 1:
        return (1 - cp[:, 0]).astype(np.float64)
    top2 = -np.partition(-cp, 1, axis=1)[:, :2]
    return (1 - (top2[:, 0] - top2[:, 1])).astype(np.float64)


def box_entropy(class_probs: np.ndarray) -> np.ndarray:
    """Entropy of each box's class distribution in bits, in [0, log2 C]."""
    cp = np.clip(np.asarray(class_probs, np.float32), _EPS, 1.0)
    if cp.shape[0] == 0:
        return np.zeros(0, np.float64)
    return -(cp * np.log2(cp)).sum(axis=1, dtype=np.float64)


_BOX_FUNCS = {
    "least_confidence": box_least_confidence,
    "margin": box_margin,
    "entropy": box_entropy,
}

# A box with a score but no class vector is one Bernoulli, "object of this class or not":
# the same per-label heuristics as a situation sigmoid (1 - max(s, 1 - s), 1 - |2s - 1|,
# binary entropy), highest at s = 0.5, where the detector cannot tell object from background.
_SCORE_FUNCS = {
    "least_confidence": lambda s: 1 - np.maximum(s, 1 - s),
    "margin": lambda s: 1 - np.abs(2 * s - 1),
    "entropy": binary_entropy,
}


def box_uncertainty(detections: Detections, heuristic: str = "least_confidence") -> np.ndarray:
    """Per-box uncertainty: of the class-probability vector where the model gave one, of
    the detection score where it did not (``Detections.has_class_probs``)."""
    check_choice("heuristic", heuristic, BOX_HEURISTICS)
    out = _BOX_FUNCS[heuristic](np.asarray(detections.class_probs))
    given = detections.has_class_probs
    if given is not None and not np.all(given):
        scores = np.asarray(detections.scores, np.float64)
        out = np.where(given, out, _SCORE_FUNCS[heuristic](np.clip(scores, 0.0, 1.0)))
    return np.asarray(out, np.float64)


def uncertainty_signal(detections: Detections | None) -> str:
    """Which output of the detector box uncertainty reads, in words for the summary."""
    if detections is None or len(detections.scores) == 0:
        return "no detections"
    given = detections.has_class_probs
    if given is None or np.all(given):
        return "class-probability vectors"
    if not np.any(given):
        return "detection scores (the predictions have no class-probability vectors)"
    return f"class-probability vectors, detection scores for {int((~given).sum())} boxes without"


# ---------------------------------------------------------------- boxes -> frames


def aggregate_boxes(
    frame: np.ndarray,
    values: np.ndarray,
    n_frames: int,
    agg: BoxAgg = "max",
    k: int = 3,
    empty: float | str = "median",
) -> np.ndarray:
    """One score per frame from per-box ``values``; ``frame`` is each box's pool row.

    ``agg``: "max" (the frame's worst box: one confusing object is enough to want it),
    "mean" (typical box), "sum" (favours crowded frames: more objects to learn from),
    "topk_mean" (mean of the ``k`` largest, all of them when a frame has fewer; between max
    and mean, robust to one spurious box).

    ``empty``, the rule for frames with no detection: an uncertainty heuristic cannot tell a
    truly empty road from a frame where the model missed everything (the most useful frames
    of all), so neither "certain" (0: missed objects are never found) nor "most uncertain"
    (a weak early-round detector detects little, and the batch fills with empty frames) is
    safe. The default "median" gives them the median score of the frames that have
    detections: they compete with ordinary frames, and diversity or balance strategies
    reach them. "max" ties them with the most uncertain frame; a number is used as is (in
    the heuristic's units). With no detection in the whole pool every frame scores the same.
    """
    check_choice("agg", agg, BOX_AGGREGATIONS)
    check_empty(empty)
    frame = np.asarray(frame, np.int64)
    values = np.asarray(values, np.float64)
    if len(frame) != len(values):
        raise ValueError(f"{len(frame)} box rows but {len(values)} values")
    if len(frame) and (frame.min() < 0 or frame.max() >= n_frames):
        raise ValueError(f"detections.frame must be pool rows in [0, {n_frames})")
    count = np.bincount(frame, minlength=n_frames)
    if agg == "max":
        out = np.full(n_frames, -np.inf)
        np.maximum.at(out, frame, values)
    elif agg in ("sum", "mean"):
        out = np.bincount(frame, weights=values, minlength=n_frames).astype(np.float64)
        if agg == "mean":
            out /= np.maximum(count, 1)
    else:
        if k < 1:
            raise ValueError(f"k must be >= 1 for topk_mean; got {k}")
        # by frame, then largest value first: one argsort of a float key frame + rank-in-
        # [0, 0.5) is ~10x faster than lexsort; values closer than ~1e-9 of their range may
        # swap, which cannot change a mean of the top k by more than that
        hi = float(values.max()) if len(values) else 0.0
        span = hi - float(values.min()) if len(values) else 0.0
        key = frame + (hi - values) / (2.000001 * span + 1e-300)
        order = np.argsort(key)
        f = frame[order]
        rank = np.arange(len(f)) - (np.cumsum(count) - count)[f]
        keep = rank < k
        out = np.bincount(f[keep], weights=values[order][keep], minlength=n_frames)
        out = out / np.maximum(np.minimum(count, k), 1)
    has = count > 0
    if isinstance(empty, str):
        scored = out[has]
        if len(scored) == 0:
            fill = 0.0
        else:
            fill = float(np.median(scored)) if empty == "median" else float(scored.max())
    else:
        fill = float(empty)
    out[~has] = fill
    return out


def detection_uncertainty(
    detections: Detections,
    n_frames: int,
    heuristic: str = "least_confidence",
    agg: BoxAgg = "max",
    k: int = 3,
    empty: float | str = "median",
    min_score: float = 0.0,
    class_weights: np.ndarray | None = None,
) -> np.ndarray:
    """Per-frame uncertainty of a detector: a per-box ``heuristic`` (least_confidence,
    margin, entropy; of the score for boxes without a class vector, see ``box_uncertainty``)
    aggregated by ``aggregate_boxes``. Boxes scoring below ``min_score``
    are ignored (a frame left with none counts as empty), so a detector's low-score tail of
    near-uniform class_probs does not drown the real objects. ``class_weights`` (C,)
    multiplies each box's uncertainty by the weight of its top class
    (``class_rarity_weights``: doubt about a rarely labelled class counts more)."""
    keep = np.asarray(detections.scores) >= min_score
    frame = np.asarray(detections.frame)[keep]
    values = box_uncertainty(detections, heuristic)
    if class_weights is not None:
        values = values * np.asarray(class_weights, np.float64)[predicted_class(detections)]
    values = values[keep]
    return aggregate_boxes(frame, values, n_frames, agg=agg, k=k, empty=empty)


def class_rarity_weights(
    classes: tuple[str, ...] | list[str], labelled_counts: dict[str, int]
) -> np.ndarray:
    """(C,) weight of each class, ``(1 + mean count) / (1 + count)`` over the labelled
    boxes per class (missing = 0): a class seen half as often as the average weighs about
    twice as much, an average one 1, and with nothing labelled every class weighs 1. The
    +1 keeps a never-seen class finite."""
    counts = np.array([float(labelled_counts.get(c, 0)) for c in classes])
    if len(counts) == 0:
        return np.ones(0)
    return (1.0 + counts.mean()) / (1.0 + counts)


def predicted_class(detections: Detections) -> np.ndarray:
    """(m,) index of each box's top class (the detected class for a one-hot row)."""
    cp = np.asarray(detections.class_probs)
    if cp.shape[0] == 0:
        return np.zeros(0, np.int64)
    return cp.argmax(axis=1).astype(np.int64)


SMALL_AREA = 32.0**2  # COCO's "small" objects, in pixels


def uncertain_boxes(
    detections: Detections,
    n_frames: int,
    heuristic: str = "margin",
    small: float = 2.0,
    min_score: float = 0.0,
) -> np.ndarray:
    """How much of a frame the detector is unsure about: the sum over its boxes of their
    uncertainty (``box_uncertainty``: the class vector, else the score), a small box
    (under 32 x 32 px, where detectors fail most) counting ``small`` times. Unlike the max
    of ``detection_uncertainty`` it tells a frame with five doubtful objects from one with
    one; a frame without boxes scores 0."""
    keep = np.asarray(detections.scores) >= min_score
    boxes = np.asarray(detections.boxes, np.float64)[keep]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    values = box_uncertainty(detections, heuristic)[keep] * np.where(area < SMALL_AREA, small, 1)
    return aggregate_boxes(np.asarray(detections.frame)[keep], values, n_frames, "sum", empty=0.0)


# ---------------------------------------------------------------- disagreement across members


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of aligned rows of two (p, 4) xyxy arrays."""
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a + area_b - inter, _EPS)


def _greedy_match(i: np.ndarray, j: np.ndarray, ious: np.ndarray, slot: np.ndarray):
    """Greedy max-IoU matching of candidate pairs (reference box i, other box j).

    Each j matches at most one reference box, each (i, member of j) = ``slot`` at most one
    j. Sequential greedy (best pair first) is a Python loop over pairs; instead every round
    takes all *mutually best* remaining pairs at once (best for its j and for its slot). For
    distinct IoUs that is exactly the greedy matching (the locally dominant edges), in as
    many rounds as the longest chain of conflicts, typically 1-3.
    """
    order = np.lexsort((np.arange(len(ious)), -ious))  # best first, ties by pair order
    i, j, slot = i[order], j[order], slot[order]
    alive = np.ones(len(i), bool)
    out_i, out_j = [], []
    while alive.any():
        a = np.flatnonzero(alive)
        best_j = np.zeros(len(a), bool)
        best_j[np.unique(j[a], return_index=True)[1]] = True
        best_s = np.zeros(len(a), bool)
        best_s[np.unique(slot[a], return_index=True)[1]] = True
        won = a[best_j & best_s]
        out_i.append(i[won])
        out_j.append(j[won])
        alive &= ~(np.isin(j, j[won]) | np.isin(slot, slot[won]))
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_i), np.concatenate(out_j)


def box_disagreement(
    detections: Detections,
    n_frames: int,
    iou: float = 0.5,
    agg: BoxAgg = "max",
    k: int = 3,
    reference: int = 0,
    n_members: int | None = None,
    max_pairs: int = 2_000_000,
) -> np.ndarray:
    """Disagreement of ensemble members / MC passes about a frame's boxes.

    Each other member's boxes are matched to the ``reference`` member's boxes of the same
    frame (greedy by IoU >= ``iou``, see ``_greedy_match``). Frame score = spread + unmatched:

    * spread: per reference box, the root of the mean over its 4 coordinates of the variance
      of the matched coordinates (the box and its partners), x divided by the box width and
      y by its height (so a 10% jitter scores ~0.1 on any box size); aggregated over the
      frame's reference boxes with ``agg`` / ``k`` (0 without reference boxes);
    * unmatched: 1 - 2 * matches / (reference boxes x (T - 1) + other members' boxes), i.e.
      1 - Dice of the matching: 0 when every member found every box, 1 when none overlap.

    A frame where no member detected anything scores 0: the members agree. ``n_members``
    (T) defaults to max(member) + 1. Pairs are built per block of frames (<= ``max_pairs``).
    """
    if detections.member is None:
        raise ValueError("box_disagreement needs Pool.detections.member (ensemble / MC pass)")
    check_choice("agg", agg, BOX_AGGREGATIONS)
    frame = np.asarray(detections.frame, np.int64)
    member = np.asarray(detections.member, np.int64)
    boxes = np.asarray(detections.boxes, np.float64)
    m = len(frame)
    if m and (frame.min() < 0 or frame.max() >= n_frames):
        raise ValueError(f"detections.frame must be pool rows in [0, {n_frames})")
    t = int(n_members if n_members is not None else (member.max() + 1 if m else 1))
    is_ref = member == reference
    ref = np.flatnonzero(is_ref)
    ref = ref[np.argsort(frame[ref], kind="stable")]
    oth = np.flatnonzero(~is_ref)
    oth = oth[np.argsort(frame[oth], kind="stable")]
    n_ref = np.bincount(frame[ref], minlength=n_frames)
    n_oth = np.bincount(frame[oth], minlength=n_frames)
    ref_start = np.cumsum(n_ref) - n_ref

    # candidate pairs, built block by block of frames to bound memory
    pairs_per_frame = np.cumsum(n_ref * n_oth)
    oth_frames = frame[oth]
    match_i, match_j = [], []
    lo = 0
    while lo < n_frames:
        base = pairs_per_frame[lo - 1] if lo else 0
        hi = max(int(np.searchsorted(pairs_per_frame, base + max_pairs, side="right")), lo + 1)
        a, b = np.searchsorted(oth_frames, [lo, hi])
        js = oth[a:b]
        cnt = n_ref[frame[js]]
        if cnt.sum():
            jj = np.repeat(js, cnt)
            offs = np.arange(len(jj)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            ii = ref[np.repeat(ref_start[frame[js]], cnt) + offs]
            ious = _iou(boxes[ii], boxes[jj])
            ok = ious >= iou
            mi, mj = _greedy_match(ii[ok], jj[ok], ious[ok], ii[ok] * t + member[jj[ok]])
            match_i.append(mi)
            match_j.append(mj)
        lo = hi
    mi = np.concatenate(match_i) if match_i else np.zeros(0, np.int64)
    mj = np.concatenate(match_j) if match_j else np.zeros(0, np.int64)

    # spread of coordinates around each reference box (two-pass variance)
    n_grp = 1 + np.bincount(mi, minlength=m)[ref]
    pos = np.full(m, -1, np.int64)
    pos[ref] = np.arange(len(ref))
    total = boxes[ref].copy()
    np.add.at(total, pos[mi], boxes[mj])
    mean = total / n_grp[:, None]
    sq = (boxes[ref] - mean) ** 2
    np.add.at(sq, pos[mi], (boxes[mj] - mean[pos[mi]]) ** 2)
    var = sq / n_grp[:, None]
    size = np.maximum(
        np.stack([boxes[ref, 2] - boxes[ref, 0], boxes[ref, 3] - boxes[ref, 1]], 1), 1e-6
    )
    spread = np.sqrt((var / np.tile(size, 2) ** 2).mean(axis=1))  # x by width, y by height
    loc = aggregate_boxes(frame[ref], spread, n_frames, agg=agg, k=k, empty=0.0)

    slots = n_ref * (t - 1) + n_oth
    matched = np.bincount(frame[mi], minlength=n_frames)
    unmatched = np.where(slots > 0, 1 - 2 * matched / np.maximum(slots, 1), 0.0)
    return loc + unmatched


# ---------------------------------------------------------------- localisation stability


def localization_stability(
    detections: Detections,
    flipped: Detections,
    n_frames: int,
    agg: BoxAgg = "max",
    k: int = 3,
    empty: float | str = "median",
    min_score: float = 0.0,
) -> np.ndarray:
    """Kao et al. 2018's localisation stability: per box of ``detections``, 1 - the IoU
    with its best-overlapping box of the same frame in ``flipped`` (the model on the
    mirrored frame, boxes mirrored back; 1 when that frame has none), aggregated like
    ``detection_uncertainty``. A box the model places elsewhere once the frame is mirrored
    is one it localises by chance: the cheap stand-in for an ensemble's spread. Only member
    0 of an ensemble's detections is compared (the flipped pass is the round's model);
    boxes below ``min_score``, in either pass, are left out."""
    keep = np.asarray(detections.scores) >= min_score
    if detections.member is not None:
        keep &= np.asarray(detections.member) == 0
    frame = np.asarray(detections.frame, np.int64)[keep]
    boxes = np.asarray(detections.boxes, np.float64)[keep]
    fkeep = np.asarray(flipped.scores) >= min_score
    fframe = np.asarray(flipped.frame, np.int64)[fkeep]
    fboxes = np.asarray(flipped.boxes, np.float64)[fkeep]
    if len(fframe) and (fframe.min() < 0 or fframe.max() >= n_frames):
        raise ValueError(f"flip_detections.frame must be pool rows in [0, {n_frames})")
    # all same-frame pairs (box i, flipped box j): a frame's boxes are few
    order = np.argsort(fframe, kind="stable")
    fframe, fboxes = fframe[order], fboxes[order]
    count = np.bincount(fframe, minlength=n_frames)
    start = np.cumsum(count) - count
    cnt = count[frame] if len(frame) else np.zeros(0, np.int64)
    i = np.repeat(np.arange(len(frame)), cnt)
    j = np.repeat(start[frame] if len(frame) else cnt, cnt) + (
        np.arange(len(i)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    )
    best = np.zeros(len(frame))
    if len(i):
        np.maximum.at(best, i, _iou(boxes[i], fboxes[j]))
    return aggregate_boxes(frame, 1.0 - best, n_frames, agg=agg, k=k, empty=empty)
