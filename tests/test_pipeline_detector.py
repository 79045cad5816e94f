"""Detector workflows: train on a project, store detections, evaluate per situation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from scenesift.cli import app
from scenesift.models.backbones import Preprocessing, get_backbone
from scenesift.models.detector import DetectorConfig
from scenesift.pipelines import detector as pipe
from scenesift.records import Box, FrameRecord, ImportBatch, ImportReport
from scenesift.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def project(tmp_path):
    """24 frames in 12 drives, one bright square (a "car") each; odd drives are night;
    rain is never labelled."""
    rng = np.random.default_rng(0)
    frames = []
    for i in range(24):
        pixels = np.full((64, 96, 3), 20, dtype=np.uint8)
        s = int(rng.integers(18, 26))
        x, y = int(rng.integers(0, 96 - s)), int(rng.integers(0, 64 - s))
        pixels[y : y + s, x : x + s] = 235
        name = f"d{i // 2:02d}/{i % 2}.png"
        path = tmp_path / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        night = (i // 2) % 2 == 1
        frames.append(FrameRecord(name, path, f"d{i // 2:02d}", 96, 64,
                                  situations={"night": night},
                                  boxes=[Box("car", x, y, x + s, y + s)]))  # fmt: skip
    store = Store.init(tmp_path / "proj", split_fractions=(0.5, 0.17, 0.33))
    store.ingest(ImportBatch(frames, tmp_path / "data", ImportReport("test")))
    yield store
    store.close()


def test_slices_use_labels_first_then_the_taggers_stored_predictions(project):
    frames = pipe.with_truth(project, "test")
    names = [f.name for f in frames]
    rainy = set(names[::2])
    scores = [[0.9 if n in rainy else 0.1, 0.9] for n in names]  # the tagger says: all night
    project.write_situation_scores("model:tagger1", names, ["rain", "night"], scores)
    slices = pipe.situation_slices(project, frames)
    assert set(slices["rain"]) == rainy  # unlabelled: from the tagger
    assert set(slices["night"]) == {f.name for f in frames if f.situations["night"]}  # labels win
    assert pipe.situation_slices(project, frames, tagger_source=None)["rain"] == []


def test_train_predict_store_and_evaluate_per_situation(project):
    cfg = DetectorConfig(backbone="tiny", batch_size=4, width=32, epochs=30, lr=1e-2)
    backbone = get_backbone("tiny", preprocessing=Preprocessing(size=(64, 96)))
    detector, path = pipe.train(project, cfg, backbone=backbone, progress=False)
    assert path.exists() and (path.parent / "latest").read_text().strip() == path.name

    source, n = pipe.predict(project, detector, progress=False)
    assert n == 24 and source == f"model:{detector.fingerprint}"
    stored = {r.name: r.predicted_boxes for r in project.records(predictions=source)}
    assert all(len(b) >= 1 for b in stored.values())

    results, by_situation = pipe.evaluate(project, stored)
    assert results.map50 is not None and 0.0 <= results.map50 <= 1.0
    rows = {(r["slice"], r["metric"], r["class"]) : r for r in by_situation.rows()}  # fmt: skip
    night = rows[("night", "AP50", "all")]
    assert night["n_images"] == sum(
        1 for f in pipe.with_truth(project, "test") if f.situations["night"]
    )
    assert night["n_drives"] == len(
        {f.drive for f in pipe.with_truth(project, "test") if f.situations["night"]}
    )

    # the gap report from the command line: drive-level intervals, test drives per situation
    out = CliRunner().invoke(app, ["gaps", "-p", str(project.root), "--boot", "10"])
    assert out.exit_code == 0, out.output
    assert "test drives" in out.output and "night" in out.output


def test_eval_command_scores_your_own_coco_results(project, tmp_path):
    runner = CliRunner()
    gt = tmp_path / "gt.json"
    root = str(project.root)
    assert (
        runner.invoke(app, ["export", "coco", str(gt), "-p", root, "--split", "test"]).exit_code
        == 0
    )
    doc = json.loads(gt.read_text())
    results = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
         "score": 0.9}
        for a in doc["annotations"]
    ]  # fmt: skip
    preds = tmp_path / "results.json"
    preds.write_text(json.dumps(results))
    out = runner.invoke(app, ["eval", "--predictions", str(preds), "--coco", str(gt), "-p", root,
                              "--slices"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "1.000" in out.output and "night" in out.output
    # `--gt`, the old spelling, still works for scripts; without the file eval says what is missing
    old = runner.invoke(app, ["eval", "--predictions", str(preds), "--gt", str(gt), "-p", root])
    assert old.exit_code == 0 and "1.000" in old.output, old.output
    missing = runner.invoke(app, ["eval", "--predictions", str(preds), "-p", root])
    assert missing.exit_code == 2 and "--coco" in missing.output


def test_gap_report_ranks_situations_by_need_with_intervals(project, tmp_path):
    from scenesift.pipelines.gaps import gap_report, gap_table, plot_gaps, slice_map50

    gt = pipe.with_truth(project, "test")
    perfect = {f.name: [Box(b.category, b.x1, b.y1, b.x2, b.y2, score=0.9) for b in f.boxes]
               for f in gt}  # fmt: skip
    night = {f.name for f in gt if f.situations["night"]}
    # a detector that is perfect by day and blind at night
    preds = {n: ([] if n in night else boxes) for n, boxes in perfect.items()}
    rows = {r.situation: r for r in gap_report(project, preds, n_boot=10, min_images=1)}
    assert rows["night"].map50 == 0.0 and rows["day"].map50 is None  # "day" never labelled
    assert rows["night"].test_images == len(night)
    assert rows["night"].labelled == sum(
        1 for r in project.records(state="labelled") if r.situations.get("night")
    )
    ranked = gap_report(project, preds, n_boot=0, min_images=1)
    assert ranked[0].situation == "night"
    undefined = [r.map50 is None for r in ranked]
    assert undefined == sorted(undefined) and undefined[-1]  # undefined ones last
    point, (low, high), drives = slice_map50(gt, preds, project.taxonomy.classes, n_boot=20)
    assert low <= point <= high and 0 < point < 1
    assert drives == len({f.drive for f in gt}) and rows["night"].test_drives == len(
        {f.drive for f in gt if f.name in night}
    )
    from rich.console import Console

    console = Console(width=250, record=True)
    console.print(gap_table(list(rows.values())))
    text = " ".join(console.export_text().split())  # the caption wraps
    assert "night" in text and "test drives" in text and "interval over test drives" in text
    assert plot_gaps(list(rows.values()), tmp_path / "gaps.png").stat().st_size > 0


def test_gaps_rank_by_the_drive_level_interval_not_the_point_estimate():
    from scenesift.pipelines.gaps import SituationGap, rank_gaps

    # fog looks fine (mAP 0.8) but rests on one test drive: it could be anywhere in [0.1, 1]
    fog = SituationGap("fog", 10, 50, 40, 0.8, (0.1, 1.0), 0.2 / 3.3, 1, (0.0, 0.9 / 3.3))
    # night is measured on 20 drives: mAP 0.5 in [0.45, 0.55]
    night = SituationGap("night", 10, 50, 400, 0.5, (0.45, 0.55), 0.5 / 3.3, 20,
                         (0.45 / 3.3, 0.55 / 3.3))  # fmt: skip
    rain = SituationGap("rain", 10, 50, 0, None, None, None, 0, None)
    assert night.need > fog.need  # by the point estimate night would come first
    assert [r.situation for r in rank_gaps([night, rain, fog])] == ["fog", "night", "rain"]


def test_training_warns_about_labels_whose_positives_come_from_fewer_than_two_drives(project):
    from scenesift.pipelines import tagger as tagger_pipe
    from scenesift.pipelines.evidence import positive_drives

    train = pipe.with_truth(project, "train")
    drives = positive_drives(train, situations=["night"], classes=["car", "truck"])
    assert drives["car"] == len({f.drive for f in train}) >= 2 and drives["truck"] == 0
    warning = pipe.training_warning(project)
    assert warning is not None and "\n" not in warning
    assert "truck (0)" in warning and " car (" not in warning
    # night holds in every other drive of train; fog, never
    situations = tagger_pipe.training_warning(project)
    assert "fog (0)" in situations and "night" not in situations
    one = [f for f in train if f.drive == train[0].drive]
    assert positive_drives(one, classes=["car"]) == {"car": 1}


def test_eval_refuses_a_split_the_predictions_do_not_cover(project, tmp_path):
    runner = CliRunner()
    gt = tmp_path / "gt.json"
    root = str(project.root)
    runner.invoke(app, ["export", "coco", str(gt), "-p", root, "--split", "test"])
    doc = json.loads(gt.read_text())
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                "score": 0.9} for a in doc["annotations"]]  # fmt: skip
    preds = tmp_path / "results.json"
    preds.write_text(json.dumps(results))
    out = runner.invoke(app, ["eval", "--predictions", str(preds), "--coco", str(gt), "-p", root,
                              "--split", "val"])  # fmt: skip
    assert out.exit_code == 2
    assert "none of the" in out.output and "--split val" in out.output


def test_gaps_do_not_rank_a_situation_seen_on_too_few_test_images(project):
    from scenesift.pipelines.gaps import gap_report, small_sample_warning

    gt = pipe.with_truth(project, "test")
    night = [f for f in gt if f.situations["night"]]
    preds = {f.name: [] for f in gt}  # blind: every situation would have the top need
    rows = {r.situation: r for r in gap_report(project, preds, n_boot=10, min_images=len(gt))}
    assert rows["night"].map50 == 0.0 and rows["night"].test_images == len(night) < len(gt)
    assert rows["night"].need is None and rows["night"].ci is None
    assert "night" in small_sample_warning(list(rows.values()))


def test_train_command_takes_the_schedule_options_and_prints_a_row_per_evaluation(project):
    runner = CliRunner()
    root = str(project.root)
    args = ["detector", "train", "-p", root, "--backbone", "tiny", "--input-size", "64x96",
            "--steps", "6", "--batch-size", "4", "--lr", "0.01", "--mode", "frozen",
            "--device", "cpu", "--seed", "3", "--eval-every", "1", "--no-test-flip"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    detector, _ = pipe.load(project)
    cfg = detector.config
    assert (cfg.input_size, cfg.steps, cfg.batch_size, cfg.lr, cfg.seed) == (
        (64, 96),
        6,
        4,
        0.01,
        3,
    )
    assert (cfg.mode, cfg.device, cfg.epochs, cfg.test_flip) == ("frozen", "cpu", None, False)
    assert detector.history[-1].steps == 6
    rows = [line for line in result.output.splitlines() if "val mAP@0.5" in line]
    assert len(rows) == len(detector.history) and sum("kept" in r for r in rows) >= 1


def test_train_command_refuses_an_unknown_device(project):
    result = CliRunner().invoke(
        app, ["detector", "train", "-p", str(project.root), "--device", "tpu"]
    )
    assert result.exit_code == 2 and "auto, cpu, cuda, mps" in result.output


def test_train_command_takes_a_stride_4_head_and_refuses_other_strides(project):
    args = ["detector", "train", "-p", str(project.root), "--backbone", "tiny", "--input-size",
            "64x96", "--steps", "2", "--batch-size", "4", "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, [*args, "--head-stride", "4"])
    assert result.exit_code == 0, result.output
    assert pipe.load(project)[0].config.head_stride == 4
    bad = CliRunner().invoke(app, [*args, "--head-stride", "3"])
    assert bad.exit_code == 2 and "head_stride must be one of (4, 8)" in bad.output


def test_embed_command_takes_the_input_size(project):
    args = ["embed", "-p", str(project.root), "--backbone", "tiny", "--input-size", "64x96"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "(pooled, 64x96)" in result.output
    bad = CliRunner().invoke(app, [*args[:-1], "64by96"])
    assert bad.exit_code == 2 and "HxW" in bad.output
