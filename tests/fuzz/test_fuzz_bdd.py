"""Fuzzing the BDD100K / Scalabel importer: broken label files fail cleanly, never half-written."""

from __future__ import annotations

import pytest
from hypothesis import given
from strategies import FUZZ, check_import, json_bytes, json_file_contents, write_tiny_jpeg

from scenesift.io.bdd import read_bdd
from scenesift.io.errors import FormatError
from scenesift.store import Store


def _box(category: str, x1: float, y1: float, x2: float, y2: float, **attributes) -> dict:
    return {
        "category": category,
        "attributes": attributes,
        "box2d": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
    }


VALID = [
    {
        "name": "d1/0.jpg",
        "videoName": "d1",
        "timestamp": 0,
        "attributes": {"timeofday": "night", "weather": "rainy", "scene": "city street",
                       "roadworks": True, "crowded": False},
        "labels": [
            _box("car", 1, 1, 6, 7, occluded=True, truncated=False),
            _box("pedestrian", 0.5, 2, 3, 8, distance=12.5),
            {"category": "lane", "poly2d": [{"vertices": [[0, 0], [1, 1]], "closed": False}]},
        ],
    },
    {
        "name": "d1/1.jpg",
        "videoName": "d1",
        "timestamp": 100,
        "attributes": {"timeofday": "daytime", "weather": "clear"},
        "labels": [_box("truck", 2, 2, 12, 5), _box("bicycle", 0, 0, 4, 4)],
    },
    {"name": "d2/0.jpg", "videoName": "d2", "attributes": {"timeofday": "dawn/dusk"}},
]  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_bdd")
    for i, item in enumerate(VALID):
        write_tiny_jpeg(root / "images" / item["name"], i)
    labels = root / "labels.json"
    labels.write_bytes(json_bytes(VALID))
    store = Store.init(root / "project")
    store.ingest(read_bdd(labels, store.taxonomy))
    yield labels, store
    store.close()


@pytest.mark.fuzz
@FUZZ
@given(contents=json_file_contents(VALID))
def test_broken_bdd_labels_fail_cleanly_and_change_nothing(env, contents):
    labels, store = env
    labels.write_bytes(contents)
    check_import(store, "bdd", labels, [labels])


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[" * 5000, "file"),  # RecursionError in json
        ("[" + "9" * 5000 + "]", "file"),  # ValueError: int of more than 4300 digits
        ('[{"name": "a\\ud800.jpg"}]', "$[0].name"),  # lone surrogate: sqlite cannot store it
        ('[{"name": "a\\u0000.jpg"}]', "$[0].name"),  # NUL: os.stat raises ValueError
        ('[{"name": "d1/0.jpg", "timestamp": 1' + "0" * 400 + "}]", "$[0].timestamp"),
        ('[{"name": "d1/0.jpg", "labels": [7]}]', "$[0].labels[0]"),
        ('[{"name": "d1/0.jpg"}, {"name": "./d1//0.jpg"}]', "$[1]"),  # the same image twice
    ],
)
def test_crashes_found_by_fuzzing_are_located_format_errors(env, text, where):
    labels, store = env
    labels.write_text(text)
    assert check_import(store, "bdd", labels, [labels]) == "FormatError"
    with pytest.raises(FormatError) as info:
        read_bdd(labels, store.taxonomy)
    assert info.value.where == where


def test_a_byte_order_mark_is_accepted(env):
    labels, store = env
    labels.write_bytes(b"\xef\xbb\xbf" + json_bytes(VALID))
    assert len(read_bdd(labels, store.taxonomy).frames) == len(VALID)
