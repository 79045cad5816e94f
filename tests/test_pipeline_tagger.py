"""Tagger workflows on a project: train, evaluate, pre-label into the store, explain."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from scenesift.io.labelstudio import write_labelstudio_tasks
from scenesift.models.backbones import Preprocessing, get_backbone
from scenesift.models.tagger import TaggerConfig
from scenesift.pipelines import tagger as pipe
from scenesift.records import FrameRecord, ImportBatch, ImportReport
from scenesift.store import Store, StoreError
from scenesift.tables import not_predicted_line

SMALL = Preprocessing(size=(64, 64))


def tiny():
    return get_backbone("tiny", preprocessing=SMALL)


@pytest.fixture
def project(tmp_path):
    """24 drives of 3 frames; dark drives are night; fog is never positive."""
    rng = np.random.default_rng(0)
    frames = []
    for d in range(24):
        night = d % 2 == 0
        for i in range(3):
            name = f"d{d:02d}/{i}.jpg"
            path = tmp_path / "data" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            level = 35 if night else 190
            px = np.clip(rng.normal(level, 30, (64, 64, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(px).save(path)
            situations = {"night": night, "day": not night, "fog": False}
            frames.append(FrameRecord(name, path, f"d{d:02d}", 64, 64, situations=situations))
    store = Store.init(tmp_path / "proj", split_fractions=(0.5, 0.25, 0.25))
    store.ingest(ImportBatch(frames, tmp_path / "data", ImportReport("test")))
    yield store
    store.close()


CFG = TaggerConfig(backbone="tiny", schedule="frozen", epochs=2, workers=0)


def test_train_evaluate_prelabel_and_export_pre_annotations(project, tmp_path):
    tagger, path = pipe.train(project, CFG, backbone=tiny(), progress=False)
    assert path.exists() and pipe.latest_path(project) == path
    results = pipe.evaluate(project, tagger, plots=tmp_path / "plots", progress=False)
    assert results["night"].roc_auc == pytest.approx(1.0)
    # fog never had a positive in training: the tagger cannot say it, and says so
    assert "fog" in results.not_predicted and "fog" not in results.situations
    assert list((tmp_path / "plots").glob("*.png"))

    loaded, _ = pipe.load(project)
    summary = pipe.prelabel(project, loaded, path, target_precision=0.9, progress=False)
    assert summary.source == f"model:{tagger.fingerprint}" and summary.frames == 72
    assert json.loads(path.with_suffix(".json").read_text())["thresholds"] == summary.thresholds

    records = project.records(predictions="latest")
    night = [r for r in records if r.situations["night"]]
    assert all(r.situation_scores["night"] >= summary.thresholds["night"] for r in night)
    out = write_labelstudio_tasks(
        records, project.taxonomy, tmp_path / "ls", thresholds=summary.thresholds
    )
    [task] = [t for t in json.loads(out.read_text()) if t["data"]["frame"] == night[0].name]
    [choices] = [r["value"]["choices"] for r in task["predictions"][0]["result"]
                 if r["type"] == "choices"]  # fmt: skip
    assert "night" in choices and "day" not in choices


def test_class_activation_maps_are_written(project, tmp_path):
    tagger, _ = pipe.train(project, CFG, backbone=tiny(), progress=False)
    out = pipe.class_activation_maps(project, tagger, tmp_path / "cams.png", ["night"], 2,
                                     progress=False)  # fmt: skip
    assert out.stat().st_size > 0
    assert project.conn.execute("SELECT count(*) FROM arrays WHERE kind = 'cam'").fetchone()[0]


def test_schedules_are_compared_on_the_same_split(project):
    results = pipe.compare_schedules(project, CFG, ("frozen", "gradual"), tiny, progress=False)
    assert set(results) == {"frozen", "gradual"}
    assert results["frozen"]["night"].n == results["gradual"]["night"].n


def test_training_needs_labelled_frames(tmp_path):
    store = Store.init(tmp_path / "empty")
    with pytest.raises(StoreError, match="no labelled frames"):
        pipe.train(store, CFG, backbone=tiny(), progress=False)
    with pytest.raises(StoreError, match="tagger train"):
        pipe.load(store)


def test_an_unloadable_checkpoint_is_one_clear_error(project, tmp_path):
    bad = tmp_path / "old.pt"
    import torch

    torch.save({"situations": ["night"]}, bad)
    with pytest.raises(StoreError, match="cannot load tagger checkpoint"):
        pipe.load(project, bad)


def test_a_tagger_predicts_only_what_it_was_taught_one_choice_per_group(project, tmp_path):
    """BDD's complaint: trained without scene labels, it marked every frame highway,
    residential and tunnel at once."""
    tagger, path = pipe.train(project, CFG, backbone=tiny(), progress=False)
    assert tagger.trained == ["day", "night"]  # fog: negatives only; the rest: no labels
    summary = pipe.prelabel(project, tagger, path, target_precision=0.9, progress=False)
    assert set(summary.thresholds) == {"day", "night"}
    assert summary.not_predicted == [s for s in project.taxonomy.names if s not in ("day", "night")]
    written = project.conn.execute(
        "SELECT DISTINCT situation FROM situation_labels WHERE source = ?", (summary.source,)
    ).fetchall()
    assert {s for (s,) in written} == {"day", "night"}
    both = project.conn.execute(
        "SELECT count(*) FROM (SELECT frame_id FROM situation_labels WHERE source = ? "
        "AND value = 1 GROUP BY frame_id HAVING count(*) > 1)",
        (summary.source,),
    ).fetchone()[0]
    assert both == 0
    results = pipe.evaluate(project, tagger, progress=False)
    assert results.situations == ["day", "night"] and "highway" in results.not_predicted
    assert results.metrics()["not_predicted"] == summary.not_predicted
    assert "highway" in not_predicted_line(results.not_predicted)  # what the CLI prints
    assert not_predicted_line([]) is None
