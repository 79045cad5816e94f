from __future__ import annotations

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
from scenesift.io.errors import FormatError
from scenesift.io.kitti import read_kitti, write_kitti
from scenesift.taxonomy import default_taxonomy

TAX = default_taxonomy()
TAIL = "1.5 1.6 3.9 -1.0 1.8 {z} -1.6"


def line(kind: str, x1, y1, x2, y2, trunc=0.0, occ=0, z=12.5) -> str:
    return f"{kind} {trunc} {occ} -1.5 {x1} {y1} {x2} {y2} " + TAIL.format(z=z)


def kitti(tmp_path: Path, labels: dict[str, list[str] | None]) -> Path:
    """A KITTI folder with one 64x48 png per entry; None = no label file."""
    for stem, lines in labels.items():
        write_image(tmp_path / "image_2" / f"{stem}.png")
        if lines is not None:
            (tmp_path / "label_2").mkdir(exist_ok=True)
            (tmp_path / "label_2" / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_reads_classes_attributes_and_unlabelled_frames(tmp_path):
    root = kitti(
        tmp_path,
        {
            "000001": [
                line("Car", 1, 2, 30, 40, trunc=0.3, occ=2, z=25.0),
                line("Person_sitting", 40, 5, 50, 45),
                "DontCare -1 -1 -10 5 5 10 10 -1 -1 -1 -1000 -1000 -1000 -10",
                line("Misc", 1, 1, 5, 5),
            ],
            "000002": [],
            "000003": None,
        },
    )
    batch = read_kitti(root, TAX)
    by_name = {f.name: f for f in batch.frames}
    assert list(by_name) == ["000001.png", "000002.png", "000003.png"]
    car, ped, *regions = by_name["000001.png"].boxes
    assert len(regions) == len(TAX.classes) and all(b.attributes["iscrowd"] for b in regions)
    assert (car.category, car.x1, car.y2, car.truncated, car.occluded) == ("car", 1, 40, True, True)
    assert car.attributes == {"truncation": 0.3, "kitti_occlusion": 2, "distance": 25.0}
    assert (ped.category, ped.truncated, ped.occluded) == ("pedestrian", False, False)
    assert by_name["000002.png"].boxes == []
    assert by_name["000003.png"].boxes is None
    f = by_name["000001.png"]
    assert (f.width, f.height, f.drive, f.path) == (
        64,
        48,
        "000001.png",
        root / "image_2/000001.png",
    )
    assert batch.image_root == root / "image_2"
    r = batch.report
    assert (r.frames, r.boxes, r.unknown_categories) == (3, 2, {})
    assert r.source == f"kitti:{root}"


def test_round_trip(tmp_path):
    records = [
        frame(tmp_path / "image_2", "a.png", boxes=[box("car", 1.25, 2, 30.5, 40, occluded=True)]),
        frame(
            tmp_path / "image_2",
            "b.png",
            boxes=[box("cyclist", 0, 0, 10, 10, truncated=True), box("truck", 5, 6, 7, 8)],
        ),
        frame(tmp_path / "image_2", "c.png", boxes=[]),
        frame(tmp_path / "image_2", "d.png", boxes=None),
    ]
    label_dir = write_kitti(records, tmp_path)
    assert label_dir == tmp_path / "label_2"
    assert sorted(p.name for p in label_dir.iterdir()) == ["a.txt", "b.txt", "c.txt"]
    back = {f.name: f for f in read_kitti(tmp_path, TAX).frames}
    for rec in records:
        got = back[rec.name]
        assert same_boxes(got.boxes, rec.boxes), rec.name
        for a, b in zip(got.boxes or [], rec.boxes or [], strict=True):
            assert (a.occluded, a.truncated) == (b.occluded, b.truncated)


def test_predictions_round_trip_with_scores(tmp_path):
    rec = frame(tmp_path / "image_2", "a.png", predicted_boxes=[box("car", 1, 2, 3, 4, score=0.75)])
    write_kitti([rec], tmp_path, predictions=True)
    (got,) = read_kitti(tmp_path, TAX, as_predictions=True).frames
    assert got.boxes is None
    assert same_boxes(got.predicted_boxes, rec.predicted_boxes)
    assert got.predicted_boxes[0].score == pytest.approx(0.75)


def test_flat_folder_collision_is_refused(tmp_path):
    recs = [frame(tmp_path, "x/a.png", boxes=[]), frame(tmp_path, "y/a.png", boxes=[])]
    with pytest.raises(ValueError, match="flat"):
        write_kitti(recs, tmp_path / "out")


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("Car 0 0 -1 1 2 3", "15 or 16 whitespace-separated fields"),
        ("Car 0 0 -1 1 2 abc 4 1 1 1 1 1 1 0", "a number for x2"),
        ("Car 1.5 0 -1 1 2 3 4 1 1 1 1 1 1 0", "truncated between 0 and 1"),
        ("Car 0 7 -1 1 2 3 4 1 1 1 1 1 1 0", "occluded as 0, 1, 2 or 3"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, bad, expected):
    root = kitti(tmp_path, {"000123": [line("Car", 1, 2, 3, 4), bad]})
    with pytest.raises(FormatError) as e:
        read_kitti(root, TAX)
    assert e.value.where == "line 2"
    assert "label_2/000123.txt" in str(e.value)
    assert expected in str(e.value)


def test_missing_image_folder(tmp_path):
    with pytest.raises(FormatError, match="image_2"):
        read_kitti(tmp_path, TAX)


def test_bad_images_are_skipped_and_listed(tmp_path):
    root = kitti(tmp_path, {"000001": [line("Car", 1, 2, 3, 4)]})
    write_empty(root / "image_2" / "000002.png")
    write_truncated_jpeg(root / "image_2" / "000003.jpg")
    (root / "label_2" / "000004.txt").write_text(line("Car", 1, 2, 3, 4) + "\n")  # no image
    batch = read_kitti(root, TAX)
    assert [f.name for f in batch.frames] == ["000001.png"]
    reasons = {Path(p).name: why for p, why in batch.report.skipped_images}
    assert reasons["000002.png"] == "empty file"
    assert reasons["000003.jpg"].startswith("corrupt")
    assert reasons["000004.txt"] == "label file without an image"


def test_clipping_dropping_and_unknown_classes(tmp_path):
    root = kitti(
        tmp_path,
        {
            "000001": [
                line("Car", -5, 2, 30, 40),  # partly outside: clipped
                line("Car", 70, 50, 90, 60),  # entirely outside: dropped
                line("Bus", 1, 2, 3, 4),  # not mapped, not a class: unknown
                line("Tram", 1, 2, 3, 4),  # ignored by the default map
            ]
        },
    )
    batch = read_kitti(root, TAX)
    (only,) = batch.frames[0].boxes
    assert only.x1 == 0 and only.x2 == 30
    r = batch.report
    assert (r.clipped_boxes, r.dropped_boxes, r.unknown_categories) == (1, 1, {"Bus": 1})


def test_custom_class_map(tmp_path):
    root = kitti(tmp_path, {"000001": [line("Van", 1, 2, 3, 4), line("Tram", 1, 2, 3, 4)]})
    batch = read_kitti(root, TAX, class_map={"Van": None, "Tram": "truck"})
    assert [b.category for b in batch.frames[0].boxes] == ["truck"]


def test_two_images_sharing_a_stem_and_its_label_file_are_refused(tmp_path):
    root = kitti(tmp_path, {"000001": [line("Car", 1, 2, 30, 40)]})
    write_image(root / "image_2" / "000001.jpg")
    with pytest.raises(FormatError, match=r"000001\.jpg.*000001\.png|000001\.png.*000001\.jpg"):
        read_kitti(root, TAX)


DONTCARE = "DontCare -1 -1 -10 {} {} {} {} -1 -1 -1 -1000 -1000 -1000 -10"


def test_dontcare_regions_become_ignore_regions_of_every_class(tmp_path):
    root = kitti(tmp_path, {"000001": [line("Car", 1, 2, 30, 40), DONTCARE.format(40, 5, 60, 30)]})
    batch = read_kitti(root, TAX)
    boxes = batch.frames[0].boxes
    real = [b for b in boxes if not b.attributes.get("iscrowd")]
    regions = [b for b in boxes if b.attributes.get("iscrowd")]
    assert [b.category for b in real] == ["car"]
    assert sorted(b.category for b in regions) == sorted(TAX.classes)
    assert {(b.x1, b.y1, b.x2, b.y2) for b in regions} == {(40, 5, 60, 30)}
    assert (batch.report.boxes, batch.report.ignore_regions) == (1, 1)


def test_dontcare_regions_are_written_back_once(tmp_path):
    root = kitti(tmp_path, {"000001": [line("Car", 1, 2, 30, 40), DONTCARE.format(40, 5, 60, 30)]})
    label_dir = write_kitti(read_kitti(root, TAX).frames, tmp_path / "out")
    lines = (label_dir / "000001.txt").read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == ["Car", "DontCare"]


def test_every_dropped_or_merged_type_is_counted(tmp_path):
    lines = [
        line("Van", 1, 2, 30, 40),
        line("Van", 2, 2, 30, 40),
        line("Person_sitting", 1, 1, 9, 9),
    ]
    lines += [line("Tram", 1, 2, 3, 4), line("Misc", 1, 2, 3, 4), line("Car", 1, 2, 30, 40)]
    batch = read_kitti(kitti(tmp_path, {"000001": lines}), TAX)
    r = batch.report
    assert r.ignored_categories == {"Tram": 1, "Misc": 1}
    assert r.mapped_categories == {"Van -> car": 2, "Person_sitting -> pedestrian": 1}
    assert r.boxes == 4


def test_class_map_toml_is_applied_over_the_defaults(tmp_path):
    from scenesift.io.formats import read_dataset

    root = kitti(tmp_path / "d", {"000001": [line("Tram", 1, 2, 30, 40), line("Van", 1, 2, 9, 9)]})
    mapping = tmp_path / "map.toml"
    mapping.write_text('[classes]\nTram = "truck"\nVan = ""\n')
    batch = read_dataset("kitti", root, TAX, mapping=mapping)
    assert [b.category for b in batch.frames[0].boxes] == ["truck"]
    assert batch.report.ignored_categories == {"Van": 1}


@pytest.mark.parametrize(
    ("text", "where"),
    [('[classes]\nTram = "bus"\n', "classes.Tram"), ("[classes]\nTram = 3\n", "classes.Tram")],
)
def test_a_bad_class_map_names_its_entry(tmp_path, text, where):
    from scenesift.io.formats import read_dataset

    root = kitti(tmp_path / "d", {"000001": [line("Car", 1, 2, 30, 40)]})
    (tmp_path / "map.toml").write_text(text)
    with pytest.raises(FormatError, match=where):
        read_dataset("kitti", root, TAX, mapping=tmp_path / "map.toml")


@pytest.mark.parametrize(("fmt", "option"), [("kitti", "images"), ("labelstudio", "mapping")])
def test_an_option_the_format_cannot_use_is_refused(tmp_path, fmt, option):
    from scenesift.io.formats import read_dataset

    root = kitti(tmp_path, {"000001": [line("Car", 1, 2, 30, 40)]})
    with pytest.raises(FormatError, match=f"--{option}"):
        read_dataset(fmt, root, TAX, **{option: tmp_path / "whatever"})
