"""Fuzzing the BDD100K / Scalabel importer: broken label files fail cleanly, never half-written."""

from __future__ import annotations

import pytest
from hypothesis import given
from strategies import FUZZ, check_import, json_bytes, json_file_contents, write_tiny_jpeg

from scenesift.io.bdd import read_bdd
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
