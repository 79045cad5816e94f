"""Reading a Pool's inputs from the store: one place for the campaign and ``select``.

Strategies see only the ``Pool``; this module turns frame records, stored tagger scores,
detections and (when the strategy reads them) cached embeddings into one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from scenesift.al.pool import Detections, Pool
from scenesift.records import Box, FrameRecord, object_counts, situation_counts
from scenesift.store import Store

if TYPE_CHECKING:  # torch is imported only where embeddings are computed
    from scenesift.models.backbones import Backbone


def situation_scores(store: Store, source: str | None) -> dict[str, dict[str, float]]:
    """A model source's stored situation scores per frame name ({} without a source)."""
    if source is None:
        return {}
    return {r.name: r.situation_scores for r in store.records(predictions=source)}


def confident(boxes: Sequence[Box], min_score: float) -> list[Box]:
    """Detections at or above ``min_score`` (what is scored, and shown to labellers)."""
    return [b for b in boxes if (b.score or 0.0) >= min_score]


def flatten_detections(
    predictions: Mapping[str, Sequence[Box]],
    names: Sequence[str],
    classes: Sequence[str],
    min_score: float = 0.0,
) -> Detections:
    """A user's detections as the pool's ``Detections`` (rows follow ``names``).

    Boxes without a class-probability vector (COCO results from YOLO, Detectron2: score
    and category only) get a one-hot of their category, so class balancing counts them,
    and ``has_class_probs`` False, so uncertainty reads their score: a uniform vector
    in their place would make every box equally uncertain.
    """
    index = {c: i for i, c in enumerate(classes)}
    frame, scores, given, boxes = [], [], [], []
    probs: list[np.ndarray] = []
    for row, name in enumerate(names):
        for b in predictions.get(name, ()):
            if b.score is None or b.score < min_score:
                continue
            frame.append(row)
            scores.append(b.score)
            given.append(b.class_probs is not None)
            if b.class_probs is not None:
                probs.append(np.asarray(b.class_probs, np.float32))
            else:
                probs.append(np.eye(len(classes), dtype=np.float32)[index[b.category]])
            boxes.append((b.x1, b.y1, b.x2, b.y2))
    return Detections(
        frame=np.asarray(frame, np.int64),
        scores=np.asarray(scores, np.float32),
        class_probs=np.stack(probs) if probs else np.zeros((0, len(classes)), np.float32),
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        has_class_probs=np.asarray(given, bool),
    )


def build_pool(
    store: Store,
    frame_ids: Sequence[int],
    records: Sequence[FrameRecord],
    detections: Detections | None,
    labelled: Sequence[FrameRecord],
    scores: dict[str, dict[str, float]],
    embed_with: Backbone | None = None,
    progress: bool = False,
    situation_scores: np.ndarray | None = None,
    situation_mc_scores: np.ndarray | None = None,
    embed_device: str = "cpu",
) -> Pool:
    """The Pool of ``records`` (row-aligned with ``frame_ids`` and ``detections``).

    ``scores``: stored tagger scores by frame name (``situation_scores`` is None when no
    pool frame has any). ``situation_scores`` / ``situation_mc_scores``: a tagger's
    probabilities on the pool rows (and its ensemble's), when the round trained one; they
    take the place of ``scores``. ``embed_with``: compute (or read cached) pooled
    embeddings of the pool and of the ``labelled`` frames; leave None when the strategy
    does not read them; ``embed_device`` runs that forward pass (auto|cpu|cuda|mps).
    """
    tax = store.taxonomy
    names = [r.name for r in records]
    if situation_scores is None and scores:
        situation_scores = np.array(
            [[scores.get(n, {}).get(s, np.nan) for s in tax.names] for n in names], np.float32
        )
        if np.isnan(situation_scores).all():
            situation_scores = None
    embeddings = labelled_emb = None
    if embed_with is not None:
        from scenesift.features import embed

        def pooled(frames: list[str]) -> np.ndarray:
            return embed(store, embed_with, frames, layer="pooled", progress=progress,
                         device=embed_device).array  # fmt: skip

        embeddings = pooled(names)
        labelled_emb = pooled([r.name for r in labelled]) if labelled else None
    return Pool(
        frame_ids=np.asarray(frame_ids, np.int64),
        drives=np.array([r.drive for r in records], dtype=object),
        timestamps=np.array(
            [np.nan if r.timestamp is None else r.timestamp for r in records], np.float64
        ),
        situations=tuple(tax.names),
        situation_scores=situation_scores,
        situation_mc_scores=situation_mc_scores,
        classes=tuple(tax.classes),
        detections=detections,
        embeddings=embeddings,
        labelled_embeddings=labelled_emb,
        labelled_situation_counts=situation_counts(labelled, tax.names),
        labelled_class_counts=object_counts(labelled, tax.classes),
        n_labelled=len(labelled),
    )
