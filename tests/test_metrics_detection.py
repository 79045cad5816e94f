"""Detection evaluation: equal to pycocotools on files, undefined classes, slices, plots."""

from __future__ import annotations

import contextlib
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from scenesift.io.coco import write_coco, write_coco_predictions
from scenesift.metrics.bootstrap import cluster_ids, resample_counts, resample_indices
from scenesift.metrics.detection import (
    ALL,
    DistanceFromHeight,
    ObjectSlices,
    distance_slices,
    evaluate_detection,
    evaluate_object_slices,
    evaluate_slices,
    has_distances,
    size_slices,
)
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


def test_a_class_with_a_handful_of_test_objects_is_flagged_in_the_table():
    frames = scene(12)
    frames[0] = replace(frames[0], boxes=[*frames[0].boxes, Box("golf_cart", 10, 10, 60, 50)])
    res = evaluate_detection(frames, noisy(frames), CLASSES)
    assert res.few_instances() == {"golf_cart": 1}
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(res.to_table())
    text = " ".join(console.export_text().split())
    assert "Few test objects: golf_cart (1)" in text and "up to 1/4" in text
    assert evaluate_detection(scene(12), noisy(scene(12)), CLASSES).few_instances_note() == ""


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


# ----------------------------------------------------------------------------- object slices
def car(d: float, x: float = 10.0, k: float = 500.0, **kw) -> Box:
    """A car box whose height follows the pinhole law (height = k / distance)."""
    h = k / d
    return Box("car", x, 20.0, x + 1.6 * h, 20.0 + h, attributes={"distance": d}, **kw)


def frame(name: str, boxes: list[Box]) -> FrameRecord:
    return FrameRecord(name, Path(name), "d", 320, 192, boxes=boxes)


def test_an_object_slice_ignores_objects_outside_it_and_their_detections():
    close, far = car(5.0), car(50.0, x=200.0)
    frames = [frame("d/0.jpg", [close, far])]
    alarm = Box("car", 100.0, 150.0, 116.0, 160.0, score=0.99)  # 10 px high: looks 50 m away
    preds = {"d/0.jpg": [replace(far, score=0.95), replace(close, score=0.9), alarm]}
    out = evaluate_object_slices(frames, preds, CLASSES, distance_slices(frames))
    assert list(out.slices) == ["object:close", "object:mid", "object:far"]
    # close: the far car and its detection are ignored, the alarm is outside the band
    assert out.slices["object:close"].get("AP50", "car").value == pytest.approx(1.0)
    # far: the alarm is a false positive above the true positive; the close car's detection
    # matched an ignored object, so it is not a false positive here
    assert out.slices["object:far"].get("AP50", "car").value == pytest.approx(0.5)
    assert out.slices["object:mid"].get("AP50", "car").value is None  # nothing there
    # the frame-level evaluation sees all of it: FP, TP, TP
    assert evaluate_detection(frames, preds, CLASSES).get("AP50", "car").value == pytest.approx(
        2 / 3
    )


def test_a_missed_far_object_costs_only_the_far_slice():
    close, far = car(8.0), car(70.0, x=200.0)
    frames = [frame("d/0.jpg", [close, far]), frame("d/1.jpg", [car(60.0)])]
    preds = {"d/0.jpg": [replace(close, score=0.8)], "d/1.jpg": [replace(car(60.0), score=0.7)]}
    out = evaluate_object_slices(frames, preds, CLASSES, distance_slices(frames))
    assert out.slices["object:close"].map50 == pytest.approx(1.0)
    # one of two far cars found first: precision 1 up to recall 0.5, on COCO's 101 points
    assert out.slices["object:far"].map50 == pytest.approx(51 / 101)


def crowded(frames: list[FrameRecord], seed: int = 2) -> list[FrameRecord]:
    """``frames`` with a crowd region on every third one (detections inside it are ignored,
    not false) and segment areas that differ from the box areas on some objects."""
    rng = np.random.default_rng(seed)
    out = []
    for i, f in enumerate(frames):
        boxes = [
            replace(b, attributes={"area": b.area * 0.6}) if rng.random() < 0.3 else b
            for b in f.boxes or ()
        ]
        if i % 3 == 0:
            boxes.append(Box("car", 150, 60, 310, 180, attributes={"iscrowd": True}))
        out.append(replace(f, boxes=boxes))
    return out


def test_faster_coco_eval_equals_pycocotools_with_crowd_regions_and_segment_areas(tmp_path):
    """The default engine against the reference on a fixed set: every AP and count agree."""
    frames = crowded(scene(40, seed=3))
    preds = noisy(frames, seed=4)
    for f in frames[::3]:  # detections inside the crowd regions: ignored by both engines
        preds[f.name].append(Box("car", 160, 70, 200, 100, score=0.9))
    ref = evaluate_detection(frames, preds, CLASSES, engine="pycocotools")
    fast = evaluate_detection(frames, preds, CLASSES, engine="faster")
    assert len(ref.results) == len(fast.results)
    for a, b in zip(ref.results, fast.results, strict=True):
        assert (a.metric, a.category, a.size, a.n_instances) == (
            b.metric,
            b.category,
            b.size,
            b.n_instances,
        )
        assert (a.value is None) == (b.value is None)
        if a.value is not None:
            assert b.value == pytest.approx(a.value, abs=1e-12)
    np.testing.assert_allclose(fast.precision, ref.precision, atol=1e-12)
    assert 0 < ref.map50 < 1
    # the imported segment area decides the size bucket, not the box
    objects = [b for f in frames for b in f.boxes if not b.attributes.get("iscrowd")]
    small = fast.get("AP", size="small").n_instances
    assert small == sum(1 for b in objects if b.attributes.get("area", b.area) <= 32**2)
    assert small != sum(1 for b in objects if b.area <= 32**2)
    stats, _ = pycocotools_stats(tmp_path, frames, preds)
    assert fast.get("AP", size="small").value == pytest.approx(stats[3], abs=1e-12)
    assert fast.get("AP", size="medium").value == pytest.approx(stats[4], abs=1e-12)


def test_bootstrap_needs_the_reference_engine():
    frames = scene(6)
    with pytest.raises(ValueError, match="pycocotools"):
        evaluate_detection(frames, noisy(frames), CLASSES, n_boot=5, engine="faster")


def test_object_slices_by_area_equal_pycocotools_own_area_ranges(tmp_path):
    """The mechanism is COCOeval's: by box area, object slices are COCO's size buckets, and
    custom ranges equal COCOeval run with the same ``areaRng`` on the written files."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    frames = scene(30)
    preds = noisy(frames)
    full = evaluate_detection(frames, preds, CLASSES)
    sizes = evaluate_object_slices(frames, preds, CLASSES, size_slices())
    for size in ("small", "medium", "large"):
        res = sizes.slices[f"object:{size}"]
        for metric in ("AP", "AP50"):
            assert res.get(metric).value == full.get(metric, size=size).value
            for c in CLASSES[:3]:
                assert res.get(metric, c).value == full.get(metric, c, size).value
                assert res.get(metric, c).n_instances == full.get(metric, c, size).n_instances

    ranges = {"tiny": (0.0, 400.0), "mid": (400.0, 3000.0), "big": (3000.0, 1e10)}
    by_area = ObjectSlices(ranges, lambda b: b.area, lambda b: b.width * b.height)
    ours = evaluate_object_slices(frames, preds, CLASSES, by_area)
    with_preds = [replace(f, predicted_boxes=preds.get(f.name, [])) for f in frames]
    tax = default_taxonomy()
    gt_path = write_coco(with_preds, tax, tmp_path / "gt.json")
    dt_path = write_coco_predictions(with_preds, tax, tmp_path / "dt.json")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(str(dt_path)), "bbox")
        ev.params.areaRng = [list(r) for r in ranges.values()]
        ev.params.areaRngLbl = list(ranges)
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][..., -1]
    for a, name in enumerate(ranges):
        p = precision[:, :, :, a]
        # another engine (faster-coco-eval) than the reference: equal up to rounding
        assert ours.slices[f"object:{name}"].map == pytest.approx(float(p[p > -1].mean()))
        assert ours.slices[f"object:{name}"].map50 == pytest.approx(float(p[0][p[0] > -1].mean()))


def test_object_slice_rows_carry_their_sizes():
    frames = [
        frame("d/0.jpg", [car(5.0), car(50.0, x=200.0), car(20.0, x=100.0)]),
        frame("d/1.jpg", [car(45.0), car(80.0, x=200.0)]),
        frame("d/2.jpg", []),
    ]
    preds = {f.name: [replace(b, score=0.9) for b in f.boxes] for f in frames}
    out = evaluate_slices(frames, preds, CLASSES, {}, objects=distance_slices(frames))
    assert list(out.slices) == ["all", "object:close", "object:mid", "object:far"]
    rows = {(r["slice"], r["metric"], r["class"]): r for r in out.rows()}
    assert rows[("object:far", "AP50", "car")]["n_instances"] == 3
    assert rows[("object:far", "AP50", "car")]["n_images"] == 2
    assert rows[("object:close", "AP50", "all")]["n_instances"] == 1
    assert rows[("object:close", "AP50", "all")]["n_images"] == 1
    assert rows[("object:mid", "AP50", "car")]["value"] == pytest.approx(1.0)
    assert rows[("all", "AP50", "car")]["n_images"] == 3
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(out.to_table(classes=["car"]))
    assert "object:far" in console.export_text()


def test_distance_from_height_is_calibrated_per_class_and_estimates_detections():
    frames = [frame("d/0.jpg", [car(5.0), car(50.0, x=200.0), car(25.0, x=100.0, k=520.0)])]
    proxy = DistanceFromHeight.calibrate(frames)
    assert proxy.k["car"] == pytest.approx(500.0)  # the median of distance x height
    assert proxy(Box("car", 0, 0, 10, 25)) == pytest.approx(20.0)
    assert proxy(Box("truck", 0, 0, 10, 25)) == pytest.approx(20.0)  # no trucks: all classes
    assert not has_distances(scene(3))
    with pytest.raises(ValueError, match="distance"):
        distance_slices(scene(3))


def in_drives(frames: list[FrameRecord], per_drive: int) -> list[FrameRecord]:
    return [replace(f, drive=f"drive{i // per_drive}") for i, f in enumerate(frames)]


@pytest.mark.parametrize("unit", ["drive", "frame"])
def test_bootstrap_intervals_equal_rescoring_resampled_drives(unit):
    """A resample re-accumulates per-image results; that must equal evaluating the images of
    the drawn drives afresh, each draw under its own name (the definition of the cluster
    bootstrap; with unit="frame" every image is its own drive)."""
    frames = in_drives(scene(15), 3)
    preds = noisy(frames)
    n_boot, seed = 20, 3
    res = evaluate_detection(frames, preds, CLASSES, n_boot=n_boot, seed=seed, unit=unit)
    assert res.unit == unit and res.n_drives == (5 if unit == "drive" else None)
    clusters, _ = cluster_ids([f.drive for f in frames] if unit == "drive" else None, 15)
    values = {c: [] for c in ("all", "car")}
    for counts in resample_counts(clusters, n_boot, seed):
        gt, dt = [], {}
        for k, i in enumerate(resample_indices(counts)):
            name = f"{frames[i].name}#{k}"
            gt.append(replace(frames[i], name=name))
            dt[name] = preds.get(frames[i].name, [])
        again = evaluate_detection(gt, dt, CLASSES)
        values["all"].append(again.map50)
        values["car"].append(again.get("AP50", "car").value)
    for c, v in values.items():
        low, high = np.percentile([x for x in v if x is not None], [2.5, 97.5])
        assert res.get("AP50", c).ci == (pytest.approx(low), pytest.approx(high))
    assert res.get("AP", "car").ci is None  # intervals for AP@0.5 only
    assert np.allclose(res.samples("car"), [np.nan if x is None else x for x in values["car"]],
                       equal_nan=True)  # fmt: skip
    rows = {(r["metric"], r["class"]): r for r in res.rows()}
    assert rows[("AP50", "all")]["ci_low"] <= res.map50 <= rows[("AP50", "all")]["ci_high"]
    assert res.get("AP50", ALL, "small").ci is not None  # sizes get intervals too


def test_drives_of_identical_frames_widen_the_interval_to_the_drive_level_spread():
    """20 copies of each frame in its own drive carry no more evidence than the one frame:
    the drive bootstrap matches the bootstrap of one frame per drive, the frame bootstrap
    is far too narrow."""
    singles = [replace(f, drive=f"drive{i}") for i, f in enumerate(scene(12, seed=4))]
    preds = noisy(singles, seed=5)
    copies, copy_preds = [], {}
    for f in singles:
        for k in range(20):
            copies.append(replace(f, name=f"{f.name}#{k}"))
            copy_preds[f"{f.name}#{k}"] = preds[f.name]
    one = evaluate_detection(singles, preds, CLASSES, n_boot=200, seed=1, unit="frame")
    drive = evaluate_detection(copies, copy_preds, CLASSES, n_boot=200, seed=1)
    frame = evaluate_detection(copies, copy_preds, CLASSES, n_boot=200, seed=1, unit="frame")

    def width(res, c=ALL):
        low, high = res.get("AP50", c).ci
        return high - low

    assert drive.map50 == pytest.approx(one.map50, abs=0.02)
    assert width(drive) == pytest.approx(width(one), abs=0.05)
    assert width(frame) < width(drive) / 3
    assert drive.n_drives == 12 and drive.get("AP50", "car").n_drives <= 12


def test_classes_seen_in_fewer_than_three_drives_are_flagged():
    frames = in_drives(scene(12), 3)  # 4 drives
    frames[0] = replace(frames[0], boxes=[Box("cyclist", 10, 10, 60, 60)])  # drive0 only
    res = evaluate_detection(frames, noisy(frames), CLASSES, n_boot=10)
    assert res.get("AP50", "cyclist").n_drives == 1
    assert res.get("AP50", "cyclist").ci is None  # one drive: resamples repeat it or lack it
    assert res.get("AP50", "car").ci is not None
    assert res.get("AP50", "golf_cart").n_drives == 0
    assert res.get("AP50", ALL).n_drives == res.n_drives == 4
    console = Console(width=200, record=True)
    console.print(res.to_table())
    text = console.export_text()
    assert "1 (few)" in text and "bootstrap over drives" in text
    assert next(r for r in res.rows() if r["class"] == "cyclist")["n_drives"] == 1


def test_object_slices_get_intervals_too():
    frames = in_drives(scene(12), 3)
    for f in frames:
        f.boxes = [replace(b, attributes={"distance": 600.0 / b.height}) for b in f.boxes]
    out = evaluate_object_slices(frames, noisy(frames), CLASSES, distance_slices(frames), 10)
    assert any(r.ci is not None for res in out.slices.values() for r in res.results)


def test_a_detection_inside_a_kitti_dontcare_region_is_not_a_false_positive(tmp_path):
    from io_fixtures import write_image
    from scenesift.io.kitti import read_kitti

    write_image(tmp_path / "image_2" / "000001.png")  # 64 x 48
    (tmp_path / "label_2").mkdir()
    (tmp_path / "label_2" / "000001.txt").write_text(
        "Car 0.0 0 -1.5 1 2 30 40 1.5 1.6 3.9 -1.0 1.8 12.5 -1.6\n"
        "DontCare -1 -1 -10 40 5 60 30 -1 -1 -1 -1000 -1000 -1000 -10\n"
    )
    gt = read_kitti(tmp_path, default_taxonomy()).frames
    detections = {
        "000001.png": [
            Box("car", 42, 6, 58, 28, score=0.9),  # an unlabelled car in the DontCare area
            Box("car", 1, 2, 30, 40, score=0.8),
        ]
    }
    res = evaluate_detection(gt, detections, CLASSES)
    assert res.get("AP50", "car").value == pytest.approx(1.0)
    assert res.get("AP50", "car").n_instances == 1
