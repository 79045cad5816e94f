"""Bring your own model: any detector's output as COCO results JSON, no training here.

A COCO *results* file is a list of ``{"image_id", "category_id", "bbox": [x, y, w, h],
"score"}``, which YOLO, Detectron2, MMDetection and torchvision evaluation scripts all
write. We also read an optional ``class_probs`` (the full class-probability vector, in the
order of the project's ``classes``), so margin and entropy sampling work for outside
models; without it ``Box.class_probs`` stays None. Image ids map to frame names through
the ground-truth file's ``images`` (``file_name`` = frame name) or an explicit dict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from scenesift.errors import ConfigError
from scenesift.io.coco import CocoId, by_id, coco_bbox, coco_id, read_categories, resolve_ids
from scenesift.io.common import JsonCursor, read_json
from scenesift.records import Box, FrameRecord


@runtime_checkable
class Detector(Protocol):
    """Anything that turns frames into detections (frame name -> boxes in image pixels)."""

    def predict(self, records: Sequence[FrameRecord]) -> dict[str, list[Box]]: ...


class PrecomputedDetector:
    """A :class:`Detector` over predictions made elsewhere (e.g. read by
    :func:`read_coco_results`): frames it has no predictions for get ``[]``."""

    def __init__(self, predictions: Mapping[str, Sequence[Box]]) -> None:
        self.predictions = {name: list(boxes) for name, boxes in predictions.items()}

    def predict(self, records: Sequence[FrameRecord]) -> dict[str, list[Box]]:
        return {r.name: list(self.predictions.get(r.name, ())) for r in records}


def read_coco_results(
    results_json: Path,
    coco_gt_json_or_image_ids: Path | Mapping[CocoId, str],
    classes: Sequence[str],
    category_names: Sequence[str] | None = None,
) -> dict[str, list[Box]]:
    """Detections per frame name from a COCO results list, best score first.

    Categories: with a ground-truth file, its ``categories`` (id -> name, names must be in
    ``classes``); with an explicit image-id dict, ids 1..N in ``category_names`` order
    (default ``classes``: our COCO writer's convention; Ultralytics writes the model's
    class index + 1). Unknown image or category ids raise FormatError naming the JSON
    path (``$[12].image_id``). Every image of the ground truth gets an entry (``[]`` when
    the model found nothing there).
    """
    classes = list(classes)
    if isinstance(coco_gt_json_or_image_ids, Mapping):
        images = {k: str(v) for k, v in coco_gt_json_or_image_ids.items()}
        names = list(classes if category_names is None else category_names)
        unknown = [n for n in names if n not in classes]
        if unknown:
            raise ConfigError(f"model classes {unknown} are not classes of the project: {classes}")
        categories = {i: c for i, c in enumerate(names, start=1)}
    else:
        images, categories = _read_gt_ids(Path(coco_gt_json_or_image_ids), classes)
    path = Path(results_json)
    doc = JsonCursor(read_json(path), path)
    out: dict[str, list[Box]] = {name: [] for name in images.values()}
    for item in doc.items():
        name, category = resolve_ids(item, images, categories)
        out[name].append(_box(item, category, len(classes)))
    for boxes in out.values():
        boxes.sort(key=lambda b: -(b.score or 0.0))
    return out


def _read_gt_ids(path: Path, classes: Sequence[str]) -> tuple[dict[CocoId, str], dict[CocoId, str]]:
    """image id -> frame name and category id -> class, read as the COCO importer does."""
    doc = JsonCursor(read_json(path), path)
    doc.obj()
    categories = read_categories(doc["categories"])
    for item in doc["categories"].items():
        if categories[coco_id(item["id"])] not in classes:
            known = f"a class of the project ({', '.join(classes)})"
            raise item.error(known, item.value["name"], "name")
    images = {key: item.string("file_name") for key, item in by_id(doc["images"], "image").items()}
    return images, categories


def _box(item: JsonCursor, category: str, n_classes: int) -> Box:
    x1, y1, x2, y2 = coco_bbox(item)
    score = item.number("score")
    probs = None
    if item.has("class_probs"):
        cur = item["class_probs"]
        if not isinstance(cur.value, list) or len(cur.value) != n_classes:
            raise cur.error(f"a list of {n_classes} probabilities (one per class)", cur.value)
        probs = tuple(cur[i].number() for i in range(n_classes))
        if min(probs) < 0 or not math.isclose(sum(probs), 1.0, abs_tol=1e-3):
            raise cur.error("probabilities >= 0 that sum to 1", cur.value)
    return Box(category, x1, y1, x2, y2, score=score, class_probs=probs)


def check_coverage(
    predictions: Mapping[str, Sequence[Box]], frames: Sequence[FrameRecord], split: str
) -> str | None:
    """Refuse to score a split the predictions do not cover, else a warning (or None).

    ``predictions`` has an entry for every image the model was run on (``[]`` where it
    found nothing); a split frame without one would count all its objects as missed, so
    a file made for another split would score AP 0 everywhere instead of saying so.
    """
    covered = sum(f.name in predictions for f in frames)
    if covered == 0:
        raise ConfigError(
            f"none of the {len(frames)} labelled {split} frames is an image of the predictions' "
            f"COCO file: evaluate the split they were made for, or export that split "
            f"(scenesift export coco gt.json --split {split}) and run the model on it"
        )
    if covered < len(frames):
        return (
            f"the predictions cover {covered} of {len(frames)} labelled {split} frames; the "
            "objects of the others count as missed"
        )
    return None
