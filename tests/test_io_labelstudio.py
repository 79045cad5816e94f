from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from io_fixtures import box, frame, same_boxes, write_empty, write_truncated_jpeg
from scenesift.io.errors import FormatError
from scenesift.io.labelstudio import (
    image_url_from,
    read_labelstudio_export,
    write_labelstudio_tasks,
)
from scenesift.taxonomy import default_taxonomy

TAX = default_taxonomy()


def predicted(tmp_path: Path):
    return [
        frame(
            tmp_path,
            "d1/a.png",
            drive="d1",
            timestamp=3.0,
            predicted_boxes=[
                box("car", 6.4, 4.8, 32, 24, score=0.9),
                box("pedestrian", 40, 10, 50, 40, score=0.6),
            ],
            situation_scores={"night": 0.8, "rain": 0.3, "fog": 0.55},
        ),
        frame(tmp_path, "b.png", situation_scores={"day": 0.9}),
        frame(tmp_path, "c.png", boxes=[box("truck", 1, 2, 3, 4)], situations={"dusk": True}),
    ]


def annotate(task: dict, result: list, **kw) -> dict:
    """What Label Studio exports once an annotator submitted ``result`` for ``task``."""
    out = copy.deepcopy(task)
    ann = {"id": 1, "result": result, "was_cancelled": False}
    ann["updated_at"] = kw.pop("updated_at", "2024-05-01T10:00:00.000000Z")
    out["annotations"] = [{**ann, **kw}]
    return out


def export(tmp_path: Path, tasks: list[dict]) -> Path:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    return path


def test_tasks_and_config(tmp_path):
    out = write_labelstudio_tasks(
        predicted(tmp_path), TAX, tmp_path / "ls", thresholds={"fog": 0.6}
    )
    tasks = json.loads(out.read_text())
    a, b, c = tasks
    assert a["data"] == {
        "image": str(tmp_path / "d1/a.png"),
        "frame": "d1/a.png",
        "drive": "d1",
        "width": 64,
        "height": 48,
        "timestamp": 3.0,
    }
    (pred,) = a["predictions"]
    assert pred["model_version"] == "scenesift" and pred["score"] == pytest.approx(0.75)
    rect = pred["result"][0]
    assert rect["value"] == {
        "x": 10.0,
        "y": 10.0,
        "width": 40.0,
        "height": 40.0,
        "rotation": 0,
        "rectanglelabels": ["car"],
    }
    assert (rect["original_width"], rect["original_height"], rect["score"]) == (64, 48, 0.9)
    assert pred["result"][2]["value"] == {"choices": ["night"]}  # fog 0.55 < its 0.6
    assert b["predictions"][0]["result"][0]["value"] == {"choices": ["day"]}
    assert c["predictions"] == []  # labels are not pre-filled by default

    config = ET.parse(tmp_path / "ls" / "labeling_config.xml").getroot()
    assert config.find("Image").attrib == {"name": "image", "value": "$image"}
    rects = config.find("RectangleLabels")
    assert rects.attrib["toName"] == "image"
    assert [e.attrib["value"] for e in rects] == TAX.classes
    choices = config.find("Choices")
    assert (choices.attrib["name"], choices.attrib["choice"]) == ("situations", "multiple")
    assert [e.attrib["value"] for e in choices] == TAX.names


def test_prefill_with_labels_and_custom_url(tmp_path):
    out = write_labelstudio_tasks(
        predicted(tmp_path)[2:],
        TAX,
        tmp_path / "ls",
        image_url=lambda f: f"/data/local-files/?d={f.name}",
        prefill_with_labels=True,
    )
    (task,) = json.loads(out.read_text())
    assert task["data"]["image"] == "/data/local-files/?d=c.png"
    (pred,) = task["predictions"]
    assert pred["model_version"] == "labels"
    assert [r["type"] for r in pred["result"]] == ["rectanglelabels", "choices"]


def test_image_prefix_tasks_reference_prefix_slash_frame_name(tmp_path):
    records = [frame(tmp_path, "d1/a b.png"), frame(tmp_path, "c.png")]
    url = image_url_from(image_prefix="https://images.example/set1/")
    tasks = json.loads(write_labelstudio_tasks(records, TAX, tmp_path / "ls", url).read_text())
    assert [t["data"]["image"] for t in tasks] == [
        "https://images.example/set1/d1/a%20b.png",
        "https://images.example/set1/c.png",
    ]
    assert [t["data"]["frame"] for t in tasks] == ["d1/a b.png", "c.png"]


def test_local_files_tasks_are_relative_to_the_document_root(tmp_path):
    records = [frame(tmp_path / "data", "d1/a.png"), frame(tmp_path / "data", "c.png")]
    url = image_url_from(local_files=tmp_path)
    tasks = json.loads(write_labelstudio_tasks(records, TAX, tmp_path / "ls", url).read_text())
    assert [t["data"]["image"] for t in tasks] == [
        "/data/local-files/?d=data/d1/a.png",
        "/data/local-files/?d=data/c.png",
    ]
    # the export of such tasks maps back to frames by name; served images are not probed
    done = [annotate(t, []) for t in tasks]
    batch = read_labelstudio_export(export(tmp_path, done), TAX, image_root=tmp_path / "data")
    assert [f.name for f in batch.frames] == ["d1/a.png", "c.png"]


def test_an_image_outside_the_local_files_root_is_refused_before_writing(tmp_path):
    records = [frame(tmp_path / "in", "a.png"), frame(tmp_path / "out", "b.png")]
    url = image_url_from(local_files=tmp_path / "in")
    with pytest.raises(ValueError, match=r"frame 'b.png'.*not under the local-files root"):
        write_labelstudio_tasks(records, TAX, tmp_path / "ls", url)
    assert not (tmp_path / "ls").exists()
    with pytest.raises(ValueError, match="not both"):
        image_url_from(image_prefix="http://x", local_files=tmp_path)
    assert image_url_from() is None


def test_round_trip_through_an_annotator(tmp_path):
    records = predicted(tmp_path)
    tasks = json.loads(write_labelstudio_tasks(records, TAX, tmp_path / "ls").read_text())
    a = annotate(tasks[0], tasks[0]["predictions"][0]["result"])
    # the annotator fixes the pedestrian's class; a later cancelled attempt must be ignored
    a["annotations"][0]["result"][1]["value"]["rectanglelabels"] = ["cyclist"]
    a["annotations"].append(
        {"id": 2, "result": [], "was_cancelled": True, "updated_at": "2024-06-01T00:00:00Z"}
    )
    # an older annotation of b is superseded by a newer one with no boxes
    b = annotate(tasks[1], [], updated_at="2024-05-02T00:00:00+00:00")
    b["annotations"].insert(
        0, {"id": 0, "result": tasks[1]["predictions"][0]["result"], "created_at": "2024-05-01"}
    )
    c = copy.deepcopy(tasks[2])
    c["annotations"] = []
    batch = read_labelstudio_export(export(tmp_path, [a, b, c]), TAX)

    got_a, got_b = batch.frames
    expected = [box("car", 6.4, 4.8, 32, 24), box("cyclist", 40, 10, 50, 40)]
    assert same_boxes(got_a.boxes, expected)
    assert all(bx.score is None for bx in got_a.boxes)
    assert got_a.situations == {s: s in ("night", "fog") for s in TAX.names}
    assert (got_a.path, got_a.drive, got_a.timestamp) == (records[0].path, "d1", 3.0)
    assert (got_a.width, got_a.height) == (64, 48)
    assert got_b.boxes == [] and not any(got_b.situations.values())
    assert batch.image_root == tmp_path
    assert batch.report.skipped_images == [("c.png", "no annotation")]
    assert (batch.report.frames, batch.report.boxes) == (2, 2)
    assert batch.report.situation_values == 2 * len(TAX.names)


def rect(x, y, w, h, label="car", **kw) -> dict:
    value = {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label], **kw}
    return {
        "type": "rectanglelabels",
        "from_name": "boxes",
        "to_name": "image",
        "original_width": 64,
        "original_height": 48,
        "value": value,
    }


def url_task(name: str, result: list, annotation: dict | None = None, **data) -> dict:
    task = {"data": {"image": f"http://ls/{name}", "frame": name, **data}, "predictions": []}
    return annotate(task, result, **(annotation or {}))


def test_served_images_rotation_clipping_and_unknown_classes(tmp_path):
    result = [
        rect(50, 0, 25, 50, rotation=90),  # 16x24 px turned about (32, 0): x 8..32, y 0..16
        rect(-10, 10, 20, 20),  # partly outside: clipped
        rect(120, 120, 10, 10),  # entirely outside: dropped
        rect(1, 1, 5, 5, label="bus"),
    ]
    batch = read_labelstudio_export(export(tmp_path, [url_task("a.png", result)]), TAX)
    (f,) = batch.frames
    assert f.path == Path.cwd() / "a.png"  # served URL: not probed, path from the name
    turned, clipped = f.boxes
    assert (turned.x1, turned.y1, turned.x2, turned.y2) == pytest.approx((8, 0, 32, 16))
    assert (clipped.x1, clipped.y1, clipped.x2, clipped.y2) == pytest.approx((0, 4.8, 6.4, 14.4))
    r = batch.report
    assert (r.clipped_boxes, r.dropped_boxes, r.unknown_categories) == (1, 1, {"bus": 1})


def test_size_from_task_data_and_situations_not_labelled(tmp_path):
    item = rect(50, 50, 25, 25)
    del item["original_width"], item["original_height"]
    task = url_task("a.png", [item], width=200, height=100, drive=7)
    batch = read_labelstudio_export(export(tmp_path, [task]), TAX, situations_labelled=False)
    (f,) = batch.frames
    assert (f.width, f.height, f.drive, f.situations) == (200, 100, "7", {})
    assert (f.boxes[0].x1, f.boxes[0].y2) == (100, 75)


def test_local_bad_images_are_skipped_and_listed(tmp_path):
    records = [frame(tmp_path, "ok.png")]
    write_empty(tmp_path / "empty.png")
    write_truncated_jpeg(tmp_path / "cut.jpg")
    tasks = [
        {"data": {"image": str(tmp_path / n), "frame": n}, "predictions": []}
        for n in ("ok.png", "gone.png", "empty.png", "cut.jpg")
    ]
    batch = read_labelstudio_export(export(tmp_path, [annotate(t, []) for t in tasks]), TAX)
    assert [f.name for f in batch.frames] == ["ok.png"]
    assert batch.frames[0].path == records[0].path
    reasons = {Path(p).name: why for p, why in batch.report.skipped_images}
    assert reasons == {
        "gone.png": "missing",
        "empty.png": "empty file",
        "cut.jpg": reasons["cut.jpg"],
    }
    assert reasons["cut.jpg"].startswith("corrupt")


CHOICE = {"type": "choices", "from_name": "situations", "value": {"choices": ["night", "nite"]}}


@pytest.mark.parametrize(
    ("tasks", "where", "expected"),
    [
        ({"data": {}}, "$", "full JSON export"),
        ([{"image": "a.png", "boxes": []}], "$[0]", "JSON-MIN"),
        (
            [url_task("a.png", []), {"data": {"image": "b"}, "annotations": []}],
            "$[1].data.frame",
            "present",
        ),
        ([url_task("a.png", []), url_task("a.png", [])], "$[1].data.frame", "already in $[0]"),
        ([url_task("a.png", [CHOICE])], "$[0].annotations[0].result[0].value.choices[1]", "night"),
        (
            [url_task("a.png", [rect(1, 1, 2, "x")])],
            "$[0].annotations[0].result[0].value.height",
            "number",
        ),
        (
            [url_task("a.png", [rect(1, 1, 2, 2, label=None)])],
            "$[0].annotations[0].result[0].value.rectanglelabels[0]",
            "string",
        ),
        (
            [
                url_task(
                    "a.png", [{"type": "rectanglelabels", "value": {"rectanglelabels": ["car"]}}]
                )
            ],
            "$[0].annotations[0].result[0]",
            "original_width",
        ),
        (
            [url_task("a.png", [], {"updated_at": "yesterday"})],
            "$[0].annotations[0].updated_at",
            "ISO 8601",
        ),
    ],
)
def test_malformed_export_names_the_json_path(tmp_path, tasks, where, expected):
    with pytest.raises(FormatError) as e:
        read_labelstudio_export(export(tmp_path, tasks), TAX)
    assert e.value.where == where
    assert "export.json" in str(e.value) and expected in str(e.value)


def test_two_situations_of_an_exclusive_group_are_refused(tmp_path):
    out = write_labelstudio_tasks(predicted(tmp_path), TAX, tmp_path / "ls")
    task = json.loads(out.read_text())[1]
    choice = {"type": "choices", "from_name": "situations", "to_name": "image",
              "value": {"choices": ["day", "night"]}}  # fmt: skip
    path = export(tmp_path, [annotate(task, [choice])])
    with pytest.raises(FormatError, match=r"\$\[0\]\.annotations\[0\]\.result: .*time_of_day"):
        read_labelstudio_export(path, TAX)


def test_an_exclusive_group_pre_selects_only_its_highest_score(tmp_path):
    scores = {"day": 0.7, "dusk": 0.9, "night": 0.6, "highway": 0.4, "city": 0.3, "crowded": 0.8}
    out = write_labelstudio_tasks([frame(tmp_path, "a.png", situation_scores=scores)], TAX,
                                  tmp_path / "ls", thresholds={"dusk": 0.95})  # fmt: skip
    [task] = json.loads(out.read_text())
    [choices] = [r["value"]["choices"] for r in task["predictions"][0]["result"]]
    # dusk scores highest but misses its threshold: the group is left to the annotator
    assert choices == ["crowded"]
