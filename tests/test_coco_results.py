"""Bring your own model: COCO results files read as detections, behind the Detector protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scenesift.io.coco_results import Detector, PrecomputedDetector, read_coco_results
from scenesift.io.errors import FormatError
from scenesift.metrics.detection import evaluate_detection
from scenesift.models.detector import ObjectDetector
from scenesift.records import Box, FrameRecord

CLASSES = ["car", "truck", "pedestrian"]
GT = {
    "images": [
        {"id": 7, "file_name": "drive_a/0001.jpg", "width": 320, "height": 192},
        {"id": 9, "file_name": "drive_a/0002.jpg", "width": 320, "height": 192},
    ],
    # a YOLO export's own category ids and order
    "categories": [{"id": 3, "name": "pedestrian"}, {"id": 1, "name": "car"}],
    "annotations": [],
}
RESULTS = [  # hand-written, as a user's Faster R-CNN script would dump them
    {"image_id": 7, "category_id": 1, "bbox": [10, 20, 30, 40], "score": 0.4},
    {
        "image_id": 7,
        "category_id": 3,
        "bbox": [100, 50, 8, 20],
        "score": 0.9,
        "class_probs": [0.05, 0.05, 0.9],
    },
]


def write(tmp_path: Path, name: str, doc) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_a_hand_made_results_file_is_read_through_the_gt_images(tmp_path):
    preds = read_coco_results(
        write(tmp_path, "dt.json", RESULTS), write(tmp_path, "gt.json", GT), CLASSES
    )
    assert preds["drive_a/0002.jpg"] == []  # a GT image the model found nothing in
    first, second = preds["drive_a/0001.jpg"]  # best score first
    assert (first.category, first.score, first.class_probs) == (
        "pedestrian",
        0.9,
        (0.05, 0.05, 0.9),
    )
    assert (first.x1, first.y1, first.x2, first.y2) == (100, 50, 108, 70)
    assert second.category == "car" and second.class_probs is None


def test_an_explicit_id_map_uses_class_order_for_categories(tmp_path):
    results = [{"image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5], "score": 0.5}]
    preds = read_coco_results(write(tmp_path, "dt.json", results), {1: "f.jpg"}, CLASSES)
    assert preds["f.jpg"][0].category == "truck"


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ({"image_id": 8, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}, "$[1].image_id"),
        ({"image_id": 7, "category_id": 2, "bbox": [0, 0, 1, 1], "score": 1}, "$[1].category_id"),
        ({"image_id": 7, "category_id": 1, "bbox": [0, 0, 1], "score": 1}, "$[1].bbox"),
        ({"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1]}, "$[1].score"),
        (
            {
                "image_id": 7,
                "category_id": 1,
                "bbox": [0, 0, 1, 1],
                "score": 1,
                "class_probs": [0.5, 0.5],
            },
            "$[1].class_probs",
        ),
    ],
)
def test_bad_entries_name_their_json_path(tmp_path, entry, where):
    dt = write(tmp_path, "dt.json", [RESULTS[0], entry])
    with pytest.raises(FormatError) as e:
        read_coco_results(dt, write(tmp_path, "gt.json", GT), CLASSES)
    assert e.value.where == where and "dt.json" in str(e.value)


def test_precomputed_predictions_are_a_detector_and_evaluate(tmp_path):
    preds = read_coco_results(
        write(tmp_path, "dt.json", RESULTS), write(tmp_path, "gt.json", GT), CLASSES
    )
    det = PrecomputedDetector(preds)
    assert isinstance(det, Detector)
    assert isinstance(ObjectDetector(CLASSES), Detector)
    frames = [
        FrameRecord(
            "drive_a/0001.jpg",
            Path("x"),
            "a",
            320,
            192,
            boxes=[Box("pedestrian", 100, 50, 108, 70)],
        ),
        FrameRecord("drive_a/0003.jpg", Path("y"), "a", 320, 192, boxes=[]),
    ]
    out = det.predict(frames)
    assert set(out) == {"drive_a/0001.jpg", "drive_a/0003.jpg"} and out["drive_a/0003.jpg"] == []
    res = evaluate_detection(frames, out, CLASSES)
    assert res.get("AP50", "pedestrian").value == pytest.approx(1.0)
    assert res.get("AP50", "truck").value is None
