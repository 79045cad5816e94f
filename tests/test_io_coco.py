from __future__ import annotations

import json
from pathlib import Path

import pytest

from io_fixtures import (
    box,
    frame,
    same_boxes,
    write_empty,
    write_image,
    write_truncated_jpeg,
)
from scenesift.io.coco import read_coco, write_coco, write_coco_predictions
from scenesift.io.errors import FormatError
from scenesift.taxonomy import default_taxonomy

TAX = default_taxonomy()


def coco_doc(images: list[dict], annotations: list[dict] | None = None) -> dict:
    doc = {"images": images, "categories": [{"id": 1, "name": "car"}, {"id": 7, "name": "bus"}]}
    if annotations is not None:
        doc["annotations"] = annotations
    return doc


def image(iid: int, name: str, **kw) -> dict:
    return {"id": iid, "file_name": name, "width": 64, "height": 48, **kw}


def ann(image_id: int, bbox: list, category_id: int = 1, **kw) -> dict:
    return {"id": 1, "image_id": image_id, "category_id": category_id, "bbox": bbox, **kw}


def dump(tmp_path: Path, doc: dict, images: tuple[str, ...] = ()) -> Path:
    for name in images:
        write_image(tmp_path / name)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


def test_round_trip(tmp_path):
    records = [
        frame(
            tmp_path,
            "seq1/a.png",
            drive="seq1",
            timestamp=0.5,
            situations={"night": True, "rain": False},
            boxes=[
                box("car", 1.5, 2, 30, 40.25, occluded=True, attributes={"distance": 12.0}),
                box("pedestrian", 40, 5, 50, 45, truncated=True),
            ],
        ),
        frame(tmp_path, "seq1/b.png", drive="seq1", timestamp=0.6, boxes=[]),
        frame(tmp_path, "c.png", boxes=None),  # not labelled: left out
    ]
    out = write_coco(records, TAX, tmp_path / "gt.json")
    batch = read_coco(out, TAX)
    assert [f.name for f in batch.frames] == ["seq1/a.png", "seq1/b.png"]
    for got, rec in zip(batch.frames, records, strict=False):
        assert (got.drive, got.timestamp, got.situations) == (
            rec.drive,
            rec.timestamp,
            rec.situations,
        )
        assert (got.width, got.height, got.path) == (64, 48, rec.path)
        assert same_boxes(got.boxes, rec.boxes)
        for a, b in zip(got.boxes, rec.boxes, strict=True):
            assert (a.occluded, a.truncated, dict(a.attributes)) == (
                b.occluded,
                b.truncated,
                dict(b.attributes),
            )
    doc = json.loads(out.read_text())
    assert [c["name"] for c in doc["categories"]] == TAX.classes
    assert [c["id"] for c in doc["categories"]] == list(range(1, len(TAX.classes) + 1))
    assert doc["annotations"][0]["bbox"] == [1.5, 2.0, 28.5, 38.25]
    assert doc["annotations"][0]["iscrowd"] == 0
    assert batch.report.boxes == 2 and batch.report.situation_values == 2


def test_predictions_use_the_same_image_ids(tmp_path):
    records = [
        frame(tmp_path, "a.png", boxes=None),
        frame(
            tmp_path,
            "b.png",
            boxes=[box("car", 0, 0, 5, 5)],
            predicted_boxes=[box("truck", 1, 2, 11, 22, score=0.9, class_probs=(0.05, 0.9, 0.05))],
        ),
    ]
    gt = json.loads(write_coco(records, TAX, tmp_path / "gt.json").read_text())
    results = json.loads(write_coco_predictions(records, TAX, tmp_path / "dt.json").read_text())
    assert gt["images"][0]["id"] == 2
    assert results == [
        {
            "image_id": 2,
            "category_id": 2,
            "bbox": [1.0, 2.0, 10.0, 20.0],
            "score": 0.9,
            "class_probs": [0.05, 0.9, 0.05],
        }
    ]
    custom = write_coco_predictions(records, TAX, tmp_path / "dt2.json", {"a.png": 5, "b.png": 9})
    assert json.loads(custom.read_text())[0]["image_id"] == 9


def test_images_without_annotations_are_labelled_empty(tmp_path):
    path = dump(tmp_path, coco_doc([image(1, "a.png")], []), ("a.png",))
    assert read_coco(path, TAX).frames[0].boxes == []
    path = dump(tmp_path, coco_doc([image(1, "a.png")]), ())
    assert read_coco(path, TAX).frames[0].boxes is None  # image_info file: no boxes at all


def test_drive_timestamp_and_images_folder_beside_json(tmp_path):
    imgs = [image(1, "a.png", video_id=3, timestamp=4.0), image(2, "b.png", sequence="s")]
    path = dump(tmp_path, coco_doc(imgs, []), ("images/a.png", "images/b.png"))
    batch = read_coco(path, TAX)
    assert batch.image_root == tmp_path / "images"
    a, b = batch.frames
    assert (a.drive, a.timestamp, b.drive, b.timestamp) == ("3", 4.0, "s", None)


@pytest.mark.parametrize(
    ("doc", "where", "expected"),
    [
        (coco_doc([image(1, "a.png")], [ann(2, [1, 2, 3, 4])]), "$.annotations[0].image_id", "id"),
        (
            coco_doc([image(1, "a.png")], [ann(1, [1, 2, 3, 4], 3)]),
            "$.annotations[0].category_id",
            "category",
        ),
        (coco_doc([image(1, "a.png")], [ann(1, [1, 2, 3])]), "$.annotations[0].bbox", "bbox"),
        (
            coco_doc([image(1, "a.png")], [ann(1, [1, "x", 3, 4])]),
            "$.annotations[0].bbox[1]",
            "number",
        ),
        (coco_doc([image(1, "a.png")], [ann(1, [1, 2, -3, 4])]), "$.annotations[0].bbox", ">= 0"),
        (
            coco_doc([image(1, "a.png", situations={"nite": True})]),
            "$.images[0].situations.nite",
            "night",
        ),
        (
            coco_doc([image(1, "a.png", situations={"night": 1})]),
            "$.images[0].situations.night",
            "true or false",
        ),
        (coco_doc([image(1, "a.png"), image(1, "b.png")]), "$.images[1].id", "once"),
        (coco_doc([image(1, "../a.png")]), "$.images[0].file_name", "relative path"),
        (coco_doc([{"id": 1}]), "$.images[0].file_name", "present"),
        ({"images": []}, "$.categories", "present"),
    ],
)
def test_malformed_input_names_the_json_path(tmp_path, doc, where, expected):
    path = dump(tmp_path, doc, ("a.png", "b.png"))
    with pytest.raises(FormatError) as e:
        read_coco(path, TAX)
    assert e.value.where == where
    assert "instances.json" in str(e.value) and expected in str(e.value)


def test_invalid_json_names_line_and_column(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text('{"images": [\n  {"id": 1,,}]}')
    with pytest.raises(FormatError) as e:
        read_coco(path, TAX)
    assert e.value.where.startswith("line 2 column")


def test_bad_images_are_skipped_and_listed(tmp_path):
    imgs = [image(i, n) for i, n in enumerate(["ok.png", "gone.png", "empty.png", "cut.jpg"])]
    imgs.append(image(9, "small.png", width=640, height=480))
    path = dump(tmp_path, coco_doc(imgs, []), ("ok.png", "small.png"))
    write_empty(tmp_path / "empty.png")
    write_truncated_jpeg(tmp_path / "cut.jpg")
    batch = read_coco(path, TAX)
    assert [f.name for f in batch.frames] == ["ok.png"]
    reasons = {Path(p).name: why for p, why in batch.report.skipped_images}
    assert reasons["gone.png"] == "missing"
    assert reasons["empty.png"] == "empty file"
    assert reasons["cut.jpg"].startswith("corrupt")
    assert "640x480" in reasons["small.png"]


def test_clipping_dropping_unknown_categories_and_map(tmp_path):
    anns = [
        ann(1, [-4, 2, 20, 10]),  # partly outside: clipped
        ann(1, [70, 50, 5, 5]),  # entirely outside: dropped
        ann(1, [1, 1, 5, 5], category_id=7),  # bus: unknown
        ann(1, [1, 1, 5, 5], iscrowd=1),
    ]
    path = dump(tmp_path, coco_doc([image(1, "a.png")], anns), ("a.png",))
    batch = read_coco(path, TAX)
    clipped, crowd = batch.frames[0].boxes
    assert (clipped.x1, clipped.x2) == (0, 16)
    assert crowd.attributes == {"iscrowd": True}
    r = batch.report
    assert (r.clipped_boxes, r.dropped_boxes, r.unknown_categories) == (1, 1, {"bus": 1})
    batch = read_coco(path, TAX, category_map={"bus": None})
    assert batch.report.unknown_categories == {}
    batch = read_coco(path, TAX, category_map={"bus": "truck"})
    assert [b.category for b in batch.frames[0].boxes] == ["car", "truck", "car"]


def test_two_situations_of_an_exclusive_group_are_refused(tmp_path):
    doc = coco_doc([image(1, "a.png", situations={"day": True, "night": True})], [])
    with pytest.raises(FormatError, match=r"\$\.images\[0\]\.situations: .*time_of_day"):
        read_coco(dump(tmp_path, doc, ("a.png",)), TAX)


def test_a_missing_image_folder_is_an_error(tmp_path):
    path = dump(tmp_path, coco_doc([image(1, "a.png")], []), ("a.png",))
    with pytest.raises(FormatError, match="an existing image folder"):
        read_coco(path, TAX, image_dir=tmp_path / "nowhere")


def test_both_coco_readers_resolve_ids_alike(tmp_path):
    """Ground truth and results files share one resolution of ids: a category or image id
    used twice in the ground truth is an error for the results reader too."""
    from scenesift.io.coco_results import read_coco_results

    results = tmp_path / "dt.json"
    results.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1],
                                    "score": 0.5}]))  # fmt: skip
    doc = coco_doc([image(1, "a.png")], [])
    doc["categories"].append({"id": 1, "name": "truck"})
    gt = dump(tmp_path, doc, ("a.png",))
    for read in (lambda: read_coco(gt, TAX), lambda: read_coco_results(results, gt, TAX.classes)):
        with pytest.raises(FormatError, match=r"\$\.categories\[2\]\.id: .*used once"):
            read()
    doc = coco_doc([image(1, "a.png"), image(1, "b.png")], [])
    doc["categories"] = [{"id": 1, "name": "car"}]
    gt = dump(tmp_path, doc, ("a.png", "b.png"))
    for read in (lambda: read_coco(gt, TAX), lambda: read_coco_results(results, gt, TAX.classes)):
        with pytest.raises(FormatError, match=r"\$\.images\[1\]\.id: .*used once"):
            read()


def test_an_unlabelled_pool_is_written_as_an_image_info_file_with_every_image(tmp_path):
    records = [frame(tmp_path, "a.png", boxes=None), frame(tmp_path, "b.png", boxes=None)]
    doc = json.loads(write_coco(records, TAX, tmp_path / "pool.json").read_text())
    assert [(i["id"], i["file_name"]) for i in doc["images"]] == [(1, "a.png"), (2, "b.png")]
    assert "annotations" not in doc  # COCO's image_info convention: no boxes, not "empty"
    batch = read_coco(tmp_path / "pool.json", TAX)
    assert [f.boxes for f in batch.frames] == [None, None]
