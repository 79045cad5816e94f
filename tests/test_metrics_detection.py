"""Detection evaluation: equal to pycocotools on files, undefined classes, slices, plots."""

from __future__ import annotations

import contextlib
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from scenesift.io.coco import write_coco, write_coco_predictions
from scenesift.metrics.detection import evaluate_detection, evaluate_slices
from scenesift.records import Box, FrameRecord
from scenesift.taxonomy import default_taxonomy

CLASSES = ["car", "truck", "pedestrian", "cyclist", "golf_cart", "traffic_cone"]


def scene(n: int = 12, seed: int = 0) -> list[FrameRecord]:
    """Frames of 320x192 with 0-5 boxes of cars, trucks and pedestrians of all sizes."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        boxes = []
        for _ in range(int(rng.integers(0, 6))):
            w, h = float(rng.uniform(4, 150)), float(rng.uniform(4, 100))
            x, y = float(rng.uniform(0, 320 - w)), float(rng.uniform(0, 192 - h))
            boxes.append(Box(str(rng.choice(CLASSES[:3])), x, y, x + w, y + h))
        frames.append(
            FrameRecord(f"d/{i:03d}.jpg", Path(f"d/{i:03d}.jpg"), "d", 320, 192, boxes=boxes)
        )
    return frames


def noisy(frames: list[FrameRecord], seed: int = 1) -> dict[str, list[Box]]:
    """Jittered copies of the truth with random scores, some dropped, some false alarms."""
    rng = np.random.default_rng(seed)
    out = {}
    for f in frames:
        preds = []
        for b in f.boxes or ():
            if rng.random() < 0.2:
                continue
            j = [float(v) for v in rng.normal(0, 4, 4)]
            preds.append(
                replace(
                    b,
                    x1=b.x1 + j[0],
                    y1=b.y1 + j[1],
                    x2=b.x2 + j[2],
                    y2=b.y2 + j[3],
                    score=float(rng.random()),
                )
            )
        for _ in range(2):
            x, y = float(rng.uniform(0, 250)), float(rng.uniform(0, 150))
            preds.append(
                Box(
                    str(rng.choice(CLASSES[:3])),
                    x,
                    y,
                    x + 30,
                    y + 20,
                    score=float(rng.random() * 0.5),
                )
            )
        out[f.name] = preds
    return out


def pycocotools_stats(tmp_path: Path, frames, preds) -> tuple[np.ndarray, np.ndarray]:
    """The reference: COCOeval on the files our COCO writers produce."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    tax = default_taxonomy()
    with_preds = [replace(f, predicted_boxes=preds.get(f.name, [])) for f in frames]
    gt_path = write_coco(with_preds, tax, tmp_path / "gt.json")
    dt_path = write_coco_predictions(with_preds, tax, tmp_path / "dt.json")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(str(dt_path)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats, ev.eval["precision"]


def test_our_map_equals_pycocotools_on_the_written_files(tmp_path):
    frames = scene(30)
    preds = noisy(frames)
    stats, precision = pycocotools_stats(tmp_path, frames, preds)
    res = evaluate_detection(frames, preds, CLASSES)
    assert res.map == stats[0] and res.map50 == stats[1]
    assert res.get("AP", size="small").value == stats[3]
    assert res.get("AP", size="medium").value == stats[4]
    assert res.get("AP", size="large").value == stats[5]
    for k, c in enumerate(CLASSES[:3]):
        p = precision[:, :, k, 0, -1]
        assert res.get("AP", c).value == float(p[p > -1].mean())
        assert res.get("AP50", c).value == float(p[0][p[0] > -1].mean())
    assert 0 < res.map < res.map50 < 1


def test_a_perfect_detector_gets_map_1_and_classes_without_truth_are_undefined():
    frames = scene(10)
    perfect = {f.name: [replace(b, score=1.0) for b in f.boxes] for f in frames}
    res = evaluate_detection(frames, perfect, CLASSES)
    assert res.map == pytest.approx(1.0) and res.map50 == pytest.approx(1.0)
    for c in ("cyclist", "golf_cart", "traffic_cone"):
        r = res.get("AP50", c)
        assert r.value is None and r.reason and r.n_instances == 0
    assert res.get("AP50", "car").n_instances == sum(
        b.category == "car" for f in frames for b in f.boxes
    )


def test_a_detector_that_misses_a_class_gets_0_for_it():
    frames = scene(10)
    blind = {
        f.name: [replace(b, score=1.0) for b in f.boxes if b.category != "truck"] for f in frames
    }
    res = evaluate_detection(frames, blind, CLASSES)
    assert res.get("AP50", "truck").value == 0.0
    assert res.get("AP50", "car").value == pytest.approx(1.0)
    assert res.map50 == pytest.approx(2 / 3)


def test_no_detections_at_all_is_zero_not_an_error():
    frames = scene(5)
    res = evaluate_detection(frames, {}, CLASSES)
    assert res.map50 == 0.0 and res.get("AP50", "car").value == 0.0


def test_rows_table_and_pr_plot(tmp_path):
    frames = scene(12)
    res = evaluate_detection(frames, noisy(frames), CLASSES)
    rows = res.rows()
    assert {"metric", "class", "slice", "value", "n_images", "n_instances"} <= set(rows[0])
    assert {r["metric"] for r in rows} >= {"AP", "AP50", "AP_small", "AP50_large"}
    assert all(r["n_images"] == 12 for r in rows)
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(res.to_table())
    text = console.export_text()
    assert "undefined" in text and "truck" in text
    png = res.plot_pr_curves(tmp_path / "pr.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_slices_report_their_own_sizes():
    frames = scene(20)
    preds = noisy(frames)
    night = [f.name for f in frames[:8]]
    out = evaluate_slices(
        frames, preds, CLASSES, {"night": night, "day": [f.name for f in frames[8:]]}
    )
    assert list(out.slices) == ["all", "night", "day"]
    assert out.slices["night"].n_images == 8 and out.slices["day"].n_images == 12
    assert out.slices["night"].map50 == evaluate_detection(frames[:8], preds, CLASSES).map50
    rows = out.rows()
    assert {r["slice"] for r in rows} == {"all", "night", "day"}
    n_night = sum(len(f.boxes) for f in frames[:8])
    assert (
        next(
            r
            for r in rows
            if r["slice"] == "night" and r["metric"] == "AP50" and r["class"] == "all"
        )["n_instances"]
        == n_night
    )
    assert out.to_table() is not None
