"""BDD100K / Scalabel import and export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from scenesift.io.bdd import BddMapping, read_bdd, write_bdd
from scenesift.io.errors import FormatError
from scenesift.taxonomy import default_taxonomy

TAX = default_taxonomy()


def jpeg(path: Path, size=(64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 150)).save(path, quality=90)
    return path


def frame(name, labels=None, **attributes):
    item = {
        "name": name,
        "videoName": name.split("/")[0],
        "timestamp": 500,
        "attributes": attributes,
    }
    if labels is not None:
        item["labels"] = labels
    return item


def box(cat="car", x1=2.0, y1=3.0, x2=30.0, y2=40.0, **attrs):
    return {"category": cat, "attributes": attrs, "box2d": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}}


def dataset(tmp_path: Path, frames: list[dict]) -> Path:
    for f in frames:
        jpeg(tmp_path / "images" / f["name"])
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(frames, indent=1))
    return path


def test_frame_attributes_become_situations_through_the_mapping(tmp_path):
    labels = dataset(
        tmp_path,
        [
            frame("d1/0.jpg", [], timeofday="night", weather="overcast", scene="undefined",
                  roadworks=True, crowded=False),
        ],
    )  # fmt: skip
    [rec] = read_bdd(labels, TAX).frames
    assert rec.situations == {
        "night": True, "day": False, "dusk": False,
        "clear": True, "rain": False, "fog": False, "snow": False,  # overcast counts as clear
        "roadworks": True, "crowded": False,
    }  # fmt: skip
    assert "city" not in rec.situations  # undefined scene stays missing
    assert rec.drive == "d1" and rec.timestamp == 0.5
    assert (rec.width, rec.height) == (64, 48)
    assert rec.boxes == []


def test_round_trip_keeps_frames_situations_and_boxes(tmp_path):
    src = dataset(
        tmp_path,
        [
            frame("d1/0.jpg", [box(occluded=True, distance=31.5), box("pedestrian", 5, 5, 9, 20)],
                  timeofday="daytime", weather="rainy", scene="tunnel", roadworks=False),
            frame("d2/7.jpg", None, timeofday="dawn/dusk"),
        ],
    )  # fmt: skip
    first = read_bdd(src, TAX)
    out = write_bdd(first.frames, tmp_path / "export.json")
    again = read_bdd(out, TAX, image_dir=tmp_path / "images")
    assert again.frames == first.frames
    assert first.frames[0].boxes[0].occluded and first.frames[0].boxes[0].attributes == {
        "distance": 31.5
    }
    assert first.frames[1].boxes is None


def test_frames_without_video_name_are_each_their_own_drive(tmp_path):
    item = {"name": "b1c66a42-6f7d68ca.jpg", "attributes": {}, "labels": []}
    [rec] = read_bdd(dataset(tmp_path, [item]), TAX).frames
    assert rec.drive == "b1c66a42-6f7d68ca"


def test_malformed_json_names_line_and_column(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text('[\n {"name": "a.jpg",\n  "labels": [}\n]')
    with pytest.raises(FormatError) as e:
        read_bdd(path, TAX)
    assert e.value.where == "line 3 column 14"
    assert "labels.json" in str(e.value)


@pytest.mark.parametrize(
    ("item", "where", "expected"),
    [
        ({"labels": []}, "$[1].name", "present"),
        ({"name": 5}, "$[1].name", "string"),
        ({"name": "x.jpg", "labels": [box(x1="abc")]}, "$[1].labels[0].box2d.x1", "number"),
        ({"name": "x.jpg", "labels": [box(x1=50, x2=10)]}, "$[1].labels[0].box2d", "x1 <= x2"),
        ({"name": "x.jpg", "labels": {"a": 1}}, "$[1].labels", "a list"),
        ({"name": "x.jpg", "attributes": {"weather": 3}}, "$[1].attributes.weather", "string"),
        ({"name": "x.jpg", "attributes": {"roadworks": "yes"}}, "$[1].attributes.roadworks",
         "true or false"),
        ({"name": "../../etc/passwd"}, "$[1].name", "relative"),
        ({"name": "d1/0.jpg"}, "$[1]", "unique frame name"),
    ],
)  # fmt: skip
def test_bad_frames_raise_one_error_naming_the_json_path(tmp_path, item, where, expected):
    path = dataset(tmp_path, [frame("d1/0.jpg", [])])
    data = json.loads(path.read_text())
    path.write_text(json.dumps([*data, item]))
    with pytest.raises(FormatError) as e:
        read_bdd(path, TAX)
    assert e.value.where == where
    assert expected in e.value.expected
    assert str(e.value).startswith(str(path))


def test_a_document_that_is_not_a_frame_list_is_rejected(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text('{"images": []}')
    with pytest.raises(FormatError, match="frames"):
        read_bdd(path, TAX)


def test_missing_empty_and_truncated_images_are_skipped_and_listed(tmp_path):
    path = dataset(tmp_path, [frame(f"d/{i}.jpg", []) for i in range(4)])
    images = tmp_path / "images" / "d"
    (images / "0.jpg").unlink()
    (images / "1.jpg").write_bytes(b"")
    jpeg(images / "2.jpg", size=(320, 192))
    data = (images / "2.jpg").read_bytes()
    (images / "2.jpg").write_bytes(data[: len(data) // 2])
    batch = read_bdd(path, TAX)
    assert [r.name for r in batch.frames] == ["d/3.jpg"]
    reasons = {Path(p).name: why for p, why in batch.report.skipped_images}
    assert reasons["0.jpg"] == "missing"
    assert reasons["1.jpg"] == "empty file"
    assert reasons["2.jpg"].startswith("corrupt")


def test_boxes_outside_the_image_are_clipped_or_dropped_and_counted(tmp_path):
    labels = [box(x1=-5, y1=10, x2=20, y2=60), box(x1=70, y1=5, x2=90, y2=20), box()]
    batch = read_bdd(dataset(tmp_path, [frame("d/0.jpg", labels)]), TAX)
    boxes = batch.frames[0].boxes
    assert [(b.x1, b.y1, b.x2, b.y2) for b in boxes] == [(0, 10, 20, 48), (2, 3, 30, 40)]
    assert batch.report.clipped_boxes == 1
    assert batch.report.dropped_boxes == 1
    assert batch.report.boxes == 2


def test_categories_are_mapped_and_unknown_ones_counted(tmp_path):
    labels = [box("person"), box("traffic light"), box("traffic light"), {"category": "lane"}]
    batch = read_bdd(dataset(tmp_path, [frame("d/0.jpg", labels)]), TAX)
    assert [b.category for b in batch.frames[0].boxes] == ["pedestrian"]
    assert batch.report.unknown_categories == {"traffic light": 2}


def test_a_mapping_naming_an_unknown_situation_is_an_error(tmp_path):
    path = dataset(tmp_path, [frame("d/0.jpg", [])])
    mapping = tmp_path / "map.toml"
    mapping.write_text('[attributes.weather]\nhail = "hailstorm"\n')
    with pytest.raises(FormatError, match="hailstorm"):
        read_bdd(path, TAX, mapping=BddMapping.from_toml(mapping))


def test_two_situations_of_an_exclusive_group_are_refused(tmp_path):
    labels = dataset(tmp_path, [frame("d1/a.jpg", timeofday="night", day=True)])
    with pytest.raises(
        FormatError, match=r"\$\[0\]\.attributes: .*time_of_day.*\['day', 'night'\]"
    ):
        read_bdd(labels, TAX)


def test_a_non_finite_number_anywhere_is_refused_with_its_json_path(tmp_path):
    labels = dataset(tmp_path, [frame("d1/a.jpg", labels=[box(speed=1.0)])])
    labels.write_text(labels.read_text().replace('"speed": 1.0', '"speed": NaN'))
    with pytest.raises(FormatError, match=r"\$\[0\]\.labels\[0\]\.attributes\.speed: .*finite"):
        read_bdd(labels, TAX)
    labels.write_text(labels.read_text().replace('"speed": NaN', '"speed": -1e999'))
    with pytest.raises(FormatError, match=r"\$\[0\]\.labels\[0\]\.attributes\.speed"):
        read_bdd(labels, TAX)


def test_exports_write_strict_json(tmp_path):
    from scenesift.records import Box, FrameRecord

    rec = FrameRecord(
        "a.jpg",
        tmp_path / "a.jpg",
        "d",
        boxes=[Box("car", 1, 2, 3, 4, attributes={"s": float("nan")})],
    )
    with pytest.raises(ValueError, match="JSON"):
        write_bdd([rec], tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()


def test_a_missing_image_folder_is_an_error_before_anything_is_read(tmp_path):
    labels = dataset(tmp_path, [frame("d1/a.jpg")])
    with pytest.raises(FormatError, match=r"nowhere: .*an existing image folder"):
        read_bdd(labels, TAX, image_dir=tmp_path / "nowhere")
