"""YOLO (Ultralytics) datasets in and out, and YOLO prediction files with confidences."""

from __future__ import annotations

import json

import pytest
import yaml

from io_fixtures import box, frame, same_boxes, write_image
from scenesift.io.errors import FormatError
from scenesift.io.yolo import read_names, read_yolo, read_yolo_predictions, write_yolo
from scenesift.taxonomy import default_taxonomy

TAX = default_taxonomy()


def test_an_ultralytics_dataset_is_read_with_boxes_in_pixels(tmp_path):
    root = tmp_path / "ds"
    write_image(root / "images" / "train" / "a.jpg")  # 64 x 48
    write_image(root / "images" / "val" / "b.jpg")  # no label file: background image
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.25 0.5\n0 0.1 0.1 0.1 0.1\n")
    (root / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/val\nnames:\n  0: tram\n  1: car\n"
    )
    batch = read_yolo(root / "data.yaml", TAX)
    a, b = batch.frames
    assert (a.name, a.split, b.name, b.split) == ("images/train/a.jpg", "train",
                                                  "images/val/b.jpg", "val")  # fmt: skip
    assert same_boxes(a.boxes, [box("car", 24, 12, 40, 36)]) and b.boxes == []
    assert batch.report.unknown_categories == {"tram": 1}


def test_export_then_import_gives_the_same_boxes(tmp_path):
    records = [
        frame(tmp_path / "src", "x/a.png", split="train", boxes=[box("pedestrian", 4, 6, 20, 40)]),
        frame(tmp_path / "src", "b.png", split="val", boxes=[]),
        frame(tmp_path / "src", "c.png", split="val", boxes=None),  # never labelled: left out
    ]
    data = write_yolo(records, TAX, tmp_path / "out")
    assert read_names(data) == TAX.classes
    assert set(yaml.safe_load(data.read_text())) == {"path", "train", "val", "names"}
    back = {f.name.split("/", 2)[-1]: f for f in read_yolo(data, TAX).frames}
    assert set(back) == {"x/a.png", "b.png"}
    assert same_boxes(back["x/a.png"].boxes, records[0].boxes) and back["b.png"].boxes == []


def test_prediction_files_with_confidences_map_to_frames_by_stem(tmp_path):
    frames = [frame(tmp_path, "d1/0001.jpg"), frame(tmp_path, "d2/0002.jpg")]
    preds = tmp_path / "runs" / "labels"
    preds.mkdir(parents=True)
    (preds / "0001.txt").write_text("0 0.5 0.5 0.5 0.5 0.31\n0 0.25 0.25 0.1 0.1 0.9\n")
    got = read_yolo_predictions(preds, frames, TAX.classes)
    assert [b.score for b in got["d1/0001.jpg"]] == [0.9, 0.31]  # best first
    assert got["d2/0002.jpg"] == []
    assert got["d1/0001.jpg"][1].class_probs is None
    assert got["d1/0001.jpg"][1].x1 == pytest.approx(16.0)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("0 0.5 0.5 0.5 0.5", "6 numbers"),
        ("9 0.5 0.5 0.5 0.5 0.3", "class id"),
        ("0 0.5 0.5 0.5 0.5 1.7", "confidence in"),
    ],
)
def test_a_bad_prediction_line_names_the_file_and_line(tmp_path, line, expected):
    frames = [frame(tmp_path, "a.jpg")]
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.txt").write_text("0 0.5 0.5 0.5 0.5 0.3\n" + line + "\n")
    with pytest.raises(FormatError, match=f"a.txt: line 2: expected .*{expected}"):
        read_yolo_predictions(tmp_path / "p", frames, TAX.classes)


def test_ultralytics_predictions_json_uses_stems_and_one_based_class_ids(tmp_path):
    from scenesift.io.formats import read_predictions

    frames = [frame(tmp_path, "d1/000123.jpg"), frame(tmp_path, "d2/b1c6-77.jpg")]
    (tmp_path / "data.yaml").write_text("names: [pedestrian, car]\n")
    results = [
        {"image_id": 123, "category_id": 2, "bbox": [1, 2, 10, 20], "score": 0.4},
        {"image_id": "b1c6-77", "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.8},
    ]
    (tmp_path / "predictions.json").write_text(json.dumps(results))
    got = read_predictions(
        tmp_path / "predictions.json", frames, TAX.classes, names=tmp_path / "data.yaml"
    )
    assert [(b.category, b.score) for b in got["d1/000123.jpg"]] == [("car", 0.4)]
    assert [(b.category, b.x2) for b in got["d2/b1c6-77.jpg"]] == [("pedestrian", 5.0)]
