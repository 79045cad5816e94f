"""What `make demo` leaves behind, from its own steps on a tiny world (tiny backbone, a
made-up results table instead of the experiment's ten minutes): the report lives in the
project, where the web app lists it, and the detector's detections are stored, so the frame
view and the dashboard show them."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from report_fixtures import synthetic_results
from scenesift import demo
from scenesift.models.detector import DetectorConfig
from scenesift.store import Store
from scenesift.synth import default_world_config

TINY_DETECTOR = DetectorConfig(backbone="tiny", input_size=(64, 96), epochs=1, width=8)


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    """Steps 1-3, 5 and 7 of the demo on 60 small frames in drives of 3-5 frames."""
    out = tmp_path_factory.mktemp("demo")
    world = replace(default_world_config(), min_frames=3, max_frames=5, width=96, height=64)
    project = demo.run(out, frames=60, workers=1, quick=True, world_config=world)
    with Store.open(project) as store:
        full_map50 = demo.full_data_detector(store, TINY_DETECTOR)
    report = demo.write_report(out, project, synthetic_results(seeds=2, rounds=4), full_map50)
    return out, project, report


def test_the_report_is_written_into_the_project_and_linked_from_the_output(demo_out):
    out, project, report = demo_out
    assert report == project / "reports" / "report.html" and report.stat().st_size > 10_000
    assert (out / "report.html").resolve() == report.resolve()  # the old place still opens it
    assert os.readlink(out / "report.html") == "project/reports/report.html"  # movable
    html = report.read_text(encoding="utf-8")
    assert "Verdict." in html and "least_confidence" in html


def test_the_dashboard_lists_the_demo_report(demo_out):
    from fastapi.testclient import TestClient

    from scenesift.web import create_app

    _, project, _ = demo_out
    with TestClient(create_app(project), base_url="http://127.0.0.1") as client:
        page = client.get("/").text
        assert "No HTML reports" not in page and 'href="/reports/report.html"' in page
        assert client.get("/reports/report.html").status_code == 200


def test_the_detectors_detections_are_stored_on_every_frame(demo_out):
    from fastapi.testclient import TestClient

    from scenesift.web import create_app

    _, project, _ = demo_out
    with Store.open(project) as store:
        (source,) = [s for (s,) in store.conn.execute(
            "SELECT DISTINCT source FROM box_sets WHERE source LIKE 'model:%'")]  # fmt: skip
        frames = store.conn.execute("SELECT count(*) FROM frames").fetchone()[0]
        predicted = store.conn.execute(
            "SELECT count(*) FROM box_sets WHERE source = ?", (source,)
        ).fetchone()[0]
        name = store.records(split="test")[0].name
        test_frame = store.conn.execute("SELECT id FROM frames WHERE name = ?", (name,))
        test_frame = test_frame.fetchone()[0]
    assert predicted == frames
    with TestClient(create_app(project), base_url="http://127.0.0.1") as client:
        page = client.get(f"/frames/{test_frame}").text
    assert "no detector predictions" not in page and source[:18] in page
