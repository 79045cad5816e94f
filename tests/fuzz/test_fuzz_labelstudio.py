"""Fuzzing the Label Studio export importer: broken exports fail cleanly, never half-written.

As in ``scenesift import labelstudio``, the export brings labels for frames the project
already has (``labels_only``).
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from strategies import FUZZ, check_import, json_bytes, json_file_contents, write_tiny_jpeg

from scenesift.io.csv_folder import read_csv_folder
from scenesift.io.errors import FormatError
from scenesift.io.labelstudio import read_labelstudio_export
from scenesift.store import Store

NAMES = ("a.jpg", "d1/b.jpg", "c.jpg")


def _rect(x: float, y: float, w: float, h: float, label: str, **extra) -> dict:
    return {
        "id": f"r{x}",
        "type": "rectanglelabels",
        "from_name": "boxes",
        "to_name": "image",
        "original_width": 8,
        "original_height": 8,
        "image_rotation": 0,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                  "rectanglelabels": [label]},
        **extra,
    }  # fmt: skip


def _choices(*names: str) -> dict:
    return {
        "id": "situations",
        "type": "choices",
        "from_name": "situations",
        "to_name": "image",
        "value": {"choices": list(names)},
    }


def valid_export(images: str) -> list[dict]:
    return [
        {
            "id": 1,
            "data": {"image": f"{images}/a.jpg", "frame": "a.jpg", "drive": "d0", "width": 8,
                     "height": 8, "timestamp": 1.5},
            "annotations": [
                {"id": 1, "result": [_rect(10, 10, 50, 50, "car"), _choices("night", "rain")],
                 "was_cancelled": False, "updated_at": "2024-05-01T10:00:00.000000Z"},
                {"id": 2, "result": [_choices("day")], "was_cancelled": True,
                 "updated_at": "2024-05-02T10:00:00+02:00"},
            ],
            "predictions": [],
        },
        {
            "id": 2,
            "data": {"image": f"{images}/d1/b.jpg", "frame": "d1/b.jpg", "drive": 4},
            "annotations": [
                {"id": 3, "result": [_rect(0, 0, 120, 30, "pedestrian", score=0.5),
                                     _rect(5, 5, 20, 20, "bicycle"), _choices()],
                 "created_at": "2024-05-01T09:00:00"},
            ],
        },
        {"id": 3, "data": {"image": "/data/upload/1/c.jpg", "frame": "c.jpg"}, "annotations": []},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_labelstudio")
    images = root / "images"
    for i, name in enumerate(NAMES):
        write_tiny_jpeg(images / name, i)
    tags = images / "frames.csv"
    tags.write_text("image,drive\n" + "".join(f"{n},d{i}\n" for i, n in enumerate(NAMES)))
    store = Store.init(root / "project")
    store.ingest(read_csv_folder(tags, store.taxonomy))
    export = root / "export.json"
    yield export, valid_export(str(images)), store
    store.close()


VALID = valid_export("/IMAGES")  # the strategy's template; the real folder is put in below


def _with_folder(contents: bytes, images: str) -> bytes:
    return contents.replace(b"/IMAGES/", images.encode() + b"/")


@pytest.mark.fuzz
@FUZZ
@given(contents=json_file_contents(VALID))
def test_broken_labelstudio_exports_fail_cleanly_and_change_nothing(env, contents):
    export, valid, store = env
    images = valid[0]["data"]["image"].rsplit("/", 1)[0]
    export.write_bytes(_with_folder(contents, images))
    check_import(store, "labelstudio", export, [export], labels_only=True)


def test_the_valid_export_imports(env):
    export, valid, store = env
    export.write_bytes(json_bytes(valid))
    assert check_import(store, "labelstudio", export, [export], labels_only=True) == "imported"


def _edited(valid: list[dict], edit) -> list[dict]:
    tasks = copy.deepcopy(valid)
    edit(tasks)
    return tasks


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        # comparing these two times raised OverflowError
        (lambda t: t[0]["annotations"][1].update(was_cancelled=False,
                                                 updated_at="0001-01-01T00:00:00+14:00"),
         "$[0].annotations[1].updated_at"),
        (lambda t: t[0]["data"].update(width=-8), "$[0].data.width"),  # a negative image size
        (lambda t: t[0]["data"].update(frame="a\x00.jpg"), "$[0].data.frame"),
    ],
)  # fmt: skip
def test_crashes_found_by_fuzzing_are_located_format_errors(env, edit, where):
    export, valid, store = env
    export.write_bytes(json_bytes(_edited(valid, edit)))
    assert check_import(store, "labelstudio", export, [export], labels_only=True) == "FormatError"
    with pytest.raises(FormatError) as info:
        read_labelstudio_export(export, store.taxonomy)
    assert info.value.where == where
