"""The bring-your-own-detector flow as the README tells a user to run it, end to end:
a folder of images -> import -> embed -> export the pool -> a YOLO predictions file ->
select -> Label Studio tasks. The picks must follow what the predictions say."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from io_fixtures import write_image
from scenesift.cli import app

pytestmark = pytest.mark.usefixtures("one_thread")

VIDEOS = ("b1c66a42-6f7d68ca", "c0a1b2c3-0011aabb", "d4e5f6a7-8899ccdd")
#: the frames the detector is unsure about (scores near 0.5); all others it is sure of
UNSURE = ("images/c0a1b2c3-0011aabb-0000003.jpg", "images/d4e5f6a7-8899ccdd-0000001.jpg")


def run(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture
def project(tmp_path):
    """12 BDD-named images (3 videos x 4 frames) imported as a folder, embedded."""
    for v, video in enumerate(VIDEOS):
        for f in range(4):
            write_image(tmp_path / "raw" / "images" / f"{video}-{f:07d}.jpg", seed=10 * v + f)
    write_image(tmp_path / "raw" / "images" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    proj = str(tmp_path / "proj")
    run("init", proj)
    out = run("import", "folder", str(tmp_path / "raw"), "--pattern", "bdd100k", "-p", proj)
    assert "not an image" in out  # the corrupt file is listed, the rest imported
    assert "missed" not in out  # every BDD name matched the preset
    run("embed", "-p", proj, "--backbone", "tiny")
    return proj


def yolo_txt(folder, names, score):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        s = 0.5 if name in UNSURE else score
        (folder / f"{stem}.txt").write_text(f"0 0.5 0.5 0.3 0.3 {s}\n2 0.2 0.3 0.1 0.2 0.96\n")


def test_folder_to_label_studio_with_yolo_txt_predictions(project, tmp_path):
    pool = tmp_path / "pool.json"
    run("export", "coco", str(pool), "--state", "unlabelled", "-p", project)
    images = json.loads(pool.read_text())["images"]
    assert len(images) == 12
    assert {i["drive"] for i in images} == set(VIDEOS)  # BDD names became drives
    yolo_txt(tmp_path / "runs" / "labels", [i["file_name"] for i in images], score=0.93)
    out = tmp_path / "batch"
    printed = run("select", "--predictions", str(tmp_path / "runs" / "labels"), "--budget", "2",
                  "--out", str(out), "-p", project)  # fmt: skip
    assert sorted((out / "picked.txt").read_text().split()) == sorted(UNSURE)
    assert "detection scores" in printed
    tasks = json.loads((out / "labelstudio" / "tasks.json").read_text())
    assert sorted(t["data"]["frame"] for t in tasks) == sorted(UNSURE)
    assert all(len(t["predictions"][0]["result"]) == 2 for t in tasks)  # the model's boxes


def test_the_same_flow_with_a_coco_results_file_as_yolo_val_writes_it(project, tmp_path):
    pool = tmp_path / "pool.json"
    run("export", "coco", str(pool), "--state", "unlabelled", "-p", project)
    images = json.loads(pool.read_text())["images"]
    results = [{"image_id": i["id"], "category_id": 1, "bbox": [5, 5, 20, 20],
                "score": 0.5 if i["file_name"] in UNSURE else 0.97} for i in images]  # fmt: skip
    preds = tmp_path / "predictions.json"
    preds.write_text(json.dumps(results))
    out = tmp_path / "batch"
    run("select", "--predictions", str(preds), "--coco", str(pool), "--budget", "2",
        "--out", str(out), "-p", project)  # fmt: skip
    assert sorted((out / "picked.txt").read_text().split()) == sorted(UNSURE)
