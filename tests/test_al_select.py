"""`scenesift select`: a batch from your own model's COCO results, no training."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from al_fixtures import oracle_project
from scenesift.cli import app
from scenesift.io.coco import write_coco


@pytest.fixture
def pool(tmp_path):
    """An unlabelled project, a COCO file of its frames, and a model's results in which
    frame i's single detection has confidence rising with i (the first are least sure)."""
    store = oracle_project(tmp_path)
    records = store.records(state="unlabelled")
    gt = write_coco(records, store.taxonomy, tmp_path / "pool.json")
    images = json.loads(gt.read_text())["images"]
    n_classes = len(store.taxonomy.classes)
    results = []
    for i, image in enumerate(images):
        top = 0.3 + 0.69 * i / len(images)
        probs = [top] + [(1 - top) / (n_classes - 1)] * (n_classes - 1)
        results.append({"image_id": image["id"], "category_id": 1, "bbox": [10, 10, 20, 15],
                        "score": 0.9, "class_probs": probs})  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps(results))
    order = [image["file_name"] for image in images]
    store.close()
    return store.root, gt, tmp_path / "results.json", order


def test_select_picks_the_least_confident_frames_and_writes_label_studio_tasks(pool, tmp_path):
    project, gt, results, order = pool
    out = tmp_path / "batch"
    res = CliRunner().invoke(app, ["select", "--predictions", str(results), "--images", str(gt),
                                   "--budget", "5", "--strategy", "least_confidence",
                                   "--out", str(out), "-p", str(project)])  # fmt: skip
    assert res.exit_code == 0, res.output
    picked = (out / "picked.txt").read_text().split()
    assert picked == order[:5]
    rows = (out / "picked.csv").read_text().splitlines()
    assert rows[0] == "rank,frame,drive,score,strategy" and len(rows) == 6
    tasks = json.loads((out / "labelstudio" / "tasks.json").read_text())
    assert [t["data"]["frame"] for t in tasks] == picked
    assert all(t["predictions"][0]["result"] for t in tasks)  # the model's boxes shown
    assert "Batch vs pool by drive" in res.output and "Picked 5 of" in res.output


def test_select_with_drive_dedup_takes_at_most_one_frame_per_drive(pool, tmp_path):
    project, gt, results, _ = pool
    out = tmp_path / "dedup"
    res = CliRunner().invoke(app, ["select", "--predictions", str(results), "--images", str(gt),
                                   "--budget", "6", "--per-drive", "1", "--out", str(out),
                                   "-p", str(project)])  # fmt: skip
    assert res.exit_code == 0, res.output
    drives = [line.split(",")[2] for line in (out / "picked.csv").read_text().splitlines()[1:]]
    assert len(drives) == 6 and len(set(drives)) == 6


def test_select_explains_bad_input(pool, tmp_path):
    project, gt, results, _ = pool
    res = CliRunner().invoke(app, ["select", "--predictions", str(results), "--images", str(gt),
                                   "--budget", "5", "--strategy", "clairvoyance",
                                   "-p", str(project)])  # fmt: skip
    assert res.exit_code == 2 and "clairvoyance" in res.output
