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
    res = CliRunner().invoke(app, ["select", "--predictions", str(results), "--coco", str(gt),
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
    res = CliRunner().invoke(app, ["select", "--predictions", str(results), "--coco", str(gt),
                                   "--budget", "6", "--per-drive", "1", "--out", str(out),
                                   "-p", str(project)])  # fmt: skip
    assert res.exit_code == 0, res.output
    drives = [line.split(",")[2] for line in (out / "picked.csv").read_text().splitlines()[1:]]
    assert len(drives) == 6 and len(set(drives)) == 6


def test_select_explains_bad_input(pool, tmp_path):
    project, gt, results, _ = pool
    res = CliRunner().invoke(app, ["select", "--predictions", str(results), "--coco", str(gt),
                                   "--budget", "5", "--strategy", "clairvoyance",
                                   "-p", str(project)])  # fmt: skip
    assert res.exit_code == 2 and "clairvoyance" in res.output


def _yolo_style(tmp_path, images, scores):
    """A standard COCO results file: score and category per box, no class vectors."""
    results = [{"image_id": image["id"], "category_id": 1, "bbox": [10, 10, 20, 15],
                "score": score} for image, score in zip(images, scores, strict=True)]  # fmt: skip
    path = tmp_path / "yolo.json"
    path.write_text(json.dumps(results))
    return path


def test_without_class_vectors_selection_reads_the_detection_scores_and_says_so(pool, tmp_path):
    project, gt, _, order = pool
    images = json.loads(gt.read_text())["images"]
    # frames 30.. are the ones the detector is unsure of (score near 0.5), the rest certain
    scores = [0.5 if i >= 30 else 0.97 for i in range(len(images))]
    results = _yolo_style(tmp_path, images, scores)
    out = tmp_path / "batch"
    res = CliRunner().invoke(app, ["select", "--predictions", str(results), "--coco", str(gt),
                                   "--budget", "5", "--out", str(out),
                                   "-p", str(project)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (out / "picked.txt").read_text().split() == order[30:35]
    assert "detection scores" in res.output


def test_class_vectors_are_used_where_the_file_has_them(pool, tmp_path):
    from scenesift.al.select import select_from_predictions
    from scenesift.io.coco_results import read_coco_results
    from scenesift.store import Store

    project, gt, results, order = pool
    with Store.open(project) as store:
        boxes = read_coco_results(results, gt, store.taxonomy.classes)
        result = select_from_predictions(
            store, boxes, {"name": "margin"}, 3, tmp_path / "m", progress=False
        )
    assert [r.name for r in result.picked] == order[:3]
    assert result.signals == [("margin", "class-probability vectors")]


def test_balancing_situations_without_a_tagger_warns_and_names_the_command(pool, tmp_path):
    project, gt, results, order = pool
    out = tmp_path / "balanced"
    res = CliRunner().invoke(app, ["select", "--predictions", str(results), "--coco", str(gt),
                                   "--budget", "4", "--balance", "situations", "--out", str(out),
                                   "-p", str(project)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "scenesift tagger predict" in res.output and "Pool.situation_scores" in res.output
    assert (out / "picked.txt").read_text().split() == order[:4]  # the uncertainty part alone


def test_a_strategy_without_its_input_is_a_clear_error(pool, tmp_path):
    project, gt, results, _ = pool
    res = CliRunner().invoke(app, ["select", "--predictions", str(results), "--coco", str(gt),
                                   "--budget", "4", "--strategy", "balance_situations",
                                   "-p", str(project)])  # fmt: skip
    assert res.exit_code == 2
    assert "scenesift tagger predict" in res.output and "which is None" not in res.output


def test_uncertain_boxes_prefers_frames_with_more_doubtful_detections(pool, tmp_path):
    project, gt, _, order = pool
    images = json.loads(gt.read_text())["images"]
    results = [{"image_id": image["id"], "category_id": 1, "bbox": [10, 10, 40, 40],
                "score": 0.55} for image in images]  # fmt: skip
    results += [{"image_id": images[i]["id"], "category_id": 2, "bbox": [50, 10, 30, 30],
                 "score": 0.5} for i in (7, 11)]  # fmt: skip
    path = tmp_path / "crowded.json"
    path.write_text(json.dumps(results))
    out = tmp_path / "ub"
    res = CliRunner().invoke(app, ["select", "--predictions", str(path), "--coco", str(gt),
                                   "--budget", "2", "--strategy", "uncertain_boxes",
                                   "--out", str(out), "-p", str(project)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (out / "picked.txt").read_text().split() == [order[7], order[11]]
    assert "uncertain_boxes read: detection scores" in res.output


def test_select_still_takes_the_coco_file_as_images_the_old_spelling_hidden(pool, tmp_path):
    """`--coco` is the one name (as in `eval`); scripts written for `--images` keep working."""
    project, gt, results, order = pool
    res = CliRunner().invoke(app, ["select", "--predictions", str(results), "--images", str(gt),
                                   "--budget", "2", "--out", str(tmp_path / "old"),
                                   "-p", str(project)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (tmp_path / "old" / "picked.txt").read_text().split() == order[:2]
    help_text = CliRunner().invoke(app, ["select", "--help"]).output
    assert "--coco" in help_text and "--images" not in help_text
