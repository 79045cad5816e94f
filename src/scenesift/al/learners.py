"""What a campaign trains each round, and what it reads back from the model.

A learner wraps an estimator for the loop: ``fit`` on the labelled frames, ``evaluate`` on
the fixed evaluation split (the learning curve's y), ``detections`` on the pool (what
uncertainty heuristics score). The detector trains in ``frozen`` mode by default, on the
cached backbone pyramid, so one round costs seconds to a minute on 2 CPU cores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from scenesift.al.pool import Detections
from scenesift.records import Box, FrameRecord
from scenesift.store import Store


@dataclass
class DetectorLearner:
    """The CenterNet-style detector as a campaign's model.

    ``min_score``: detections below it are not scored for uncertainty (the detector keeps a
    long low-score tail for mAP; scoring it would make every frame look uncertain).
    ``ensemble``: members trained per round (seeds ``seed + k``) for disagreement
    strategies: member 0 is the round's model (evaluated, shown), all members' detections
    go to the pool with ``Detections.member``. Frozen mode makes a member cost one
    neck-and-head training on cached features.
    ``slices``: also evaluate mAP per situation each round (per-situation learning curves):
    ``True`` for every situation, or a list of situations (each slice is one more COCOeval,
    ~0.5 s per 500 frames on 2 cores).
    """

    detector: Mapping[str, Any] = field(default_factory=dict)  # DetectorConfig overrides
    min_score: float = 0.2
    ensemble: int = 1
    slices: bool | list[str] = True
    progress: bool = False

    def __post_init__(self) -> None:
        from scenesift.models.detector import DetectorConfig

        self.config = DetectorConfig(**dict(self.detector))

    def backbone(self):
        """The backbone every member trains on, at the configured input size (its pooled
        features are the embeddings diversity strategies read)."""
        from scenesift.models import get_backbone

        backbone = get_backbone(self.config.backbone)
        if self.config.input_size is not None:
            backbone.preprocessing = backbone.preprocessing.with_size(*self.config.input_size)
        return backbone

    def fit(self, store: Store, train: Sequence[FrameRecord], val: Sequence[FrameRecord]):
        from scenesift.models.detector import ObjectDetector

        model = ObjectDetector(store.taxonomy.classes, self.config)
        return model.fit(train, val or None, store=store, progress=self.progress)

    def fit_members(
        self, store: Store, train: Sequence[FrameRecord], val: Sequence[FrameRecord]
    ) -> list:
        """``ensemble`` models differing only in their seed; the first is ``fit``'s."""
        from dataclasses import replace

        from scenesift.models.detector import ObjectDetector

        members = [self.fit(store, train, val)]
        for k in range(1, self.ensemble):
            cfg = replace(self.config, seed=self.config.seed + k)
            model = ObjectDetector(store.taxonomy.classes, cfg)
            members.append(model.fit(train, val or None, store=store, progress=self.progress))
        return members

    def member_detections(
        self, per_member: Sequence[Mapping[str, Sequence[Box]]], names: Sequence[str], n: int
    ) -> Detections:
        """All members' detections in one ``Detections`` with ``member`` set."""
        parts = [self.detections(p, names, n) for p in per_member]
        return Detections(
            frame=np.concatenate([d.frame for d in parts]),
            scores=np.concatenate([d.scores for d in parts]),
            class_probs=np.concatenate([d.class_probs for d in parts]),
            boxes=np.concatenate([d.boxes for d in parts]),
            member=np.concatenate([np.full(len(d.frame), k) for k, d in enumerate(parts)]),
        )

    def predict(self, model, store: Store, records: Sequence[FrameRecord]) -> dict[str, list[Box]]:
        return model.predict(records, store=store, progress=self.progress)

    def evaluate(
        self,
        model,
        store: Store,
        frames: Sequence[FrameRecord],
        slices: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, Any]:
        """mAP@0.5, mAP@[.5:.95], per-class AP@0.5 and (optionally) AP@0.5 per situation."""
        from scenesift.metrics.detection import evaluate_detection, evaluate_slices

        predictions = self.predict(model, store, frames)
        classes = store.taxonomy.classes
        results = evaluate_detection(frames, predictions, classes)
        out: dict[str, Any] = {
            "map50": results.map50,
            "map": results.map,
            "ap50_per_class": results.per_class("AP50"),
        }
        if self.slices and slices:
            if not isinstance(self.slices, bool):
                unknown = sorted(set(self.slices) - set(store.taxonomy.names))
                if unknown:
                    raise ValueError(f"learner slices: unknown situation(s) {unknown}")
                slices = {k: v for k, v in slices.items() if k in self.slices}
            by = evaluate_slices(frames, predictions, classes, dict(slices), include_all=False)
            out["map50_per_situation"] = {
                name: {"value": r.map50, "n_frames": r.n_images} for name, r in by.slices.items()
            }
        return out

    def detections(
        self, predictions: Mapping[str, Sequence[Box]], names: Sequence[str], n_classes: int
    ) -> Detections:
        """Flatten per-frame boxes into the pool's ``Detections`` (rows follow ``names``)."""
        frame, scores, probs, boxes = [], [], [], []
        for row, name in enumerate(names):
            for b in predictions.get(name, ()):
                if b.score is None or b.score < self.min_score:
                    continue
                frame.append(row)
                scores.append(b.score)
                p = b.class_probs
                probs.append(np.asarray(p, np.float32) if p is not None else _one_hot(n_classes))
                boxes.append((b.x1, b.y1, b.x2, b.y2))
        return Detections(
            frame=np.asarray(frame, np.int64),
            scores=np.asarray(scores, np.float32),
            class_probs=(
                np.stack(probs).astype(np.float32)
                if probs
                else np.zeros((0, n_classes), np.float32)
            ),
            boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": "detector", "config": asdict(self.config), "min_score": self.min_score}


def _one_hot(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n, np.float32)
