"""Fuzzing the COCO importer: broken instance files fail cleanly, never half-written."""

from __future__ import annotations

import pytest
from hypothesis import given
from strategies import FUZZ, check_import, json_bytes, json_file_contents, write_tiny_jpeg

from scenesift.io.coco import read_coco
from scenesift.io.errors import FormatError
from scenesift.store import Store


def _image(i: int, name: str, **extra) -> dict:
    return {"id": i, "file_name": name, "width": 8, "height": 8, **extra}


def _ann(i: int, image_id: int, category_id: int, bbox: list, **extra) -> dict:
    return {"id": i, "image_id": image_id, "category_id": category_id, "bbox": bbox, **extra}


VALID = {
    "images": [
        _image(1, "d1/0.jpg", drive="d1", timestamp=0.0, situations={"night": True, "rain": None}),
        _image(2, "d1/1.jpg", drive="d1", timestamp=0.5, situations={"day": True}),
        _image(3, "d2/0.jpg", sequence=7),
    ],
    "annotations": [
        _ann(1, 1, 1, [1, 1, 5, 6], iscrowd=0, attributes={"occluded": True, "distance": 3.5}),
        _ann(2, 1, 2, [0.5, 2, 2.5, 6], area=15.0),
        _ann(3, 2, 3, [2, 2, 10, 3], iscrowd=1),
        _ann(4, 2, 1, [6, 6, 4, 4]),
    ],
    "categories": [
        {"id": 1, "name": "car"},
        {"id": 2, "name": "pedestrian"},
        {"id": 3, "name": "bicycle"},
    ],
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_coco")
    for i, image in enumerate(VALID["images"]):
        write_tiny_jpeg(root / "images" / image["file_name"], i)
    instances = root / "instances.json"
    instances.write_bytes(json_bytes(VALID))
    store = Store.init(root / "project")
    store.ingest(read_coco(instances, store.taxonomy))
    yield instances, store
    store.close()


@pytest.mark.fuzz
@FUZZ
@given(contents=json_file_contents(VALID))
def test_broken_coco_instances_fail_cleanly_and_change_nothing(env, contents):
    instances, store = env
    instances.write_bytes(contents)
    check_import(store, "coco", instances, [instances])


def _with(**images0) -> dict:
    doc = {**VALID, "images": [dict(VALID["images"][0], **images0), *VALID["images"][1:]]}
    return doc


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        (_with(width=10**400), "$.images[0].width"),  # OverflowError in math.isfinite
        (_with(file_name="a\x00b.jpg"), "$.images[0].file_name"),  # ValueError in os.stat
        (_with(drive="d\ud800"), "$.images[0].drive"),  # sqlite cannot encode it
    ],
)
def test_crashes_found_by_fuzzing_are_located_format_errors(env, doc, where):
    instances, store = env
    instances.write_bytes(json_bytes(doc))
    assert check_import(store, "coco", instances, [instances]) == "FormatError"
    with pytest.raises(FormatError) as info:
        read_coco(instances, store.taxonomy)
    assert info.value.where == where


def test_a_file_name_too_long_for_the_file_system_is_a_skipped_image(env):
    instances, store = env
    instances.write_bytes(json_bytes(_with(file_name="x" * 300 + ".jpg")))  # OSError in is_file
    batch = read_coco(instances, store.taxonomy)
    assert [reason for _, reason in batch.report.skipped_images] == ["File name too long"]
