"""The situation tagger: seed 000's model, masked loss, gradual unfreezing, fit/predict."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scenesift.features import feature_caches
from scenesift.models.backbones import Preprocessing, get_backbone
from scenesift.models.tagger import SituationTagger, TaggerConfig, label_matrix
from scenesift.models.tagger_net import (
    TaggerNet,
    masked_bce,
    set_trainable,
    trainable_groups,
)
from scenesift.records import FrameRecord, ImportBatch, ImportReport
from scenesift.store import Store

SMALL = Preprocessing(size=(64, 64))
SITUATIONS = ["night", "rain"]


def tiny():
    return get_backbone("tiny", preprocessing=SMALL)


def dataset(root: Path, n: int = 24, seed: int = 0) -> list[FrameRecord]:
    """Dark frames are night; the rain label is missing on every third frame."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        night = i % 2 == 0
        base = 30 if night else 200
        pixels = np.clip(rng.normal(base, 25, (48, 64, 3)), 0, 255).astype(np.uint8)
        path = root / f"d{i // 4}" / f"{i:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        situations = {"night": night}
        if i % 3:
            situations["rain"] = bool(rng.random() < 0.5)
        out.append(FrameRecord(path.relative_to(root).as_posix(), path, f"d{i // 4}", 64, 48,
                               situations=situations))  # fmt: skip
    return out


def test_the_head_gives_a_logit_per_situation_per_pixel_and_pools_them():
    net = TaggerNet(tiny(), 3)
    x = torch.randn(2, 3, 64, 64)
    cam = net.cam(x)
    assert cam.shape == (2, 3, 2, 2)  # stride 32 of 64x64
    assert torch.allclose(net(x), cam.mean(dim=(2, 3)))
    pooled = net.backbone(x).mean(dim=(2, 3))
    assert torch.allclose(net.head_on_pooled(pooled), net(x), atol=1e-5)


def test_missing_labels_are_masked_out_of_the_loss():
    logits = torch.zeros(2, 2, requires_grad=True)
    targets = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # second situation never labelled
    masked_bce(logits, targets, mask).backward()
    assert logits.grad[:, 1].abs().sum() == 0
    assert logits.grad[:, 0].abs().sum() > 0
    # the value is the mean over known labels only
    full = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], targets[:, 0])
    assert torch.isclose(masked_bce(logits, targets, mask), full)


def test_label_matrix_marks_missing_labels():
    recs = [
        FrameRecord("a", Path("a"), "d", situations={"night": True}),
        FrameRecord("b", Path("b"), "d", situations={"rain": False, "other": True}),
    ]
    y, m = label_matrix(recs, SITUATIONS)
    assert y.tolist() == [[1, 0], [0, 0]] and m.tolist() == [[1, 0], [0, 1]]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [("gradual", [0, 1, 2, 3, 4, 5, 5]), ("frozen", [0] * 7), ("full", [5] * 7)],
)
def test_unfreezing_schedules(schedule, expected):
    groups = tiny().block_groups()
    assert [trainable_groups(groups, schedule, e) for e in range(7)] == expected


def test_gradual_unfreezing_trains_the_top_groups_first():
    net = TaggerNet(tiny(), 2)
    stages = list(net.backbone.stages)  # forward order: input side first
    for epoch in range(4):
        set_trainable(net, trainable_groups(net.backbone.block_groups(), "gradual", epoch))
        net.zero_grad()
        net(torch.randn(2, 3, 64, 64)).sum().backward()
        with_grad = [
            i for i, s in enumerate(stages)
            if any(p.grad is not None and p.grad.abs().sum() > 0 for p in s.parameters())
        ]  # fmt: skip
        assert with_grad == list(range(len(stages) - epoch, len(stages)))
        assert all(p.grad is not None for p in net.head.parameters())


def test_fit_learns_a_visible_situation_and_records_history(tmp_path):
    recs = dataset(tmp_path)
    cfg = TaggerConfig(backbone="tiny", schedule="gradual", epochs=3, batch_size=8, workers=0)
    tagger = SituationTagger(SITUATIONS, cfg).fit(recs[:16], recs[16:], backbone=tiny(),
                                                  progress=False)  # fmt: skip
    assert [h.trainable_groups for h in tagger.history][:2] == [0, 1]
    proba = tagger.predict_scores(recs, progress=False)
    assert proba.shape == (24, 2) and ((proba >= 0) & (proba <= 1)).all()
    night = np.array([r.situations["night"] for r in recs])
    assert proba[night, 0].min() > proba[~night, 0].max()  # perfectly separated


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                          reason="needs a CUDA GPU"))],
)  # fmt: skip
def test_the_device_changes_where_it_trains_not_what_the_model_is(tmp_path, device):
    """Same data, same seed: a CUDA run (mixed precision) separates the situation as the CPU
    does, and the fingerprint, which names what the model is, ignores the device."""
    recs = dataset(tmp_path)
    fitted = {}
    for dev in ("cpu", device):
        cfg = TaggerConfig(backbone="tiny", schedule="gradual", epochs=3, batch_size=8,
                           workers=0, device=dev)  # fmt: skip
        fitted[dev] = SituationTagger(SITUATIONS, cfg).fit(
            recs[:16], recs[16:], backbone=tiny(), progress=False
        )
    proba = fitted[device].predict_scores(recs, progress=False)
    night = np.array([r.situations["night"] for r in recs])
    assert proba[night, 0].min() > proba[~night, 0].max()
    elsewhere = copy.copy(fitted["cpu"])
    elsewhere.config = replace(elsewhere.config, device="mps")
    assert elsewhere.fingerprint == fitted["cpu"].fingerprint
    with pytest.raises(ValueError, match="device must be one of"):
        TaggerConfig(device="tpu")


def test_samples_per_epoch_bounds_the_frames_an_image_epoch_reads(tmp_path, monkeypatch):
    recs = dataset(tmp_path)
    seen = []
    import scenesift.models.tagger as tagger_module

    real = tagger_module.make_loader

    def spy(paths, *args, **kwargs):
        seen.append(len(paths))
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(tagger_module, "make_loader", spy)
    cfg = TaggerConfig(backbone="tiny", schedule="full", epochs=2, workers=0,
                       samples_per_epoch=5, patience=5)  # fmt: skip
    SituationTagger(SITUATIONS, cfg).fit(recs[:16], [], backbone=tiny(), progress=False)
    assert seen == [5, 5]


def test_frozen_tagger_uses_the_feature_cache_and_save_load_round_trips(tmp_path):
    recs = dataset(tmp_path / "data")
    store = Store.init(tmp_path / "proj")
    store.ingest(ImportBatch(recs, tmp_path / "data", ImportReport("test")))
    cfg = TaggerConfig(backbone="tiny", schedule="frozen", epochs=2, workers=0)
    backbone = tiny()
    tagger = SituationTagger(SITUATIONS, cfg).fit(recs[:16], recs[16:], store=store,
                                                  backbone=backbone, progress=False)  # fmt: skip
    cached = tagger.predict_scores(recs, store=store, progress=False)
    direct = tagger.predict_scores(recs, progress=False)
    np.testing.assert_allclose(cached, direct, atol=1e-4)

    path = tagger.save(tmp_path / "tagger.pt")
    again = SituationTagger.load(path)  # rebuilds the backbone with the trained preprocessing
    np.testing.assert_allclose(again.predict_scores(recs, progress=False), direct, atol=1e-5)
    assert again.fingerprint == tagger.fingerprint
    with pytest.raises(ValueError, match="preprocessing"):
        SituationTagger.load(path, backbone=get_backbone("tiny"))
    other = SituationTagger(SITUATIONS, TaggerConfig(backbone="tiny", schedule="frozen",
                                                     epochs=2, workers=0, seed=1))  # fmt: skip
    other.fit(recs[:16], recs[16:], store=store, backbone=tiny(), progress=False)
    assert other.fingerprint != tagger.fingerprint


def gradual(cache_trunk: bool) -> TaggerConfig:
    return TaggerConfig(backbone="tiny", schedule="gradual", epochs=4, batch_size=8,
                        workers=0, patience=9, cache_trunk=cache_trunk)  # fmt: skip


def test_gradual_fine_tuning_on_the_cached_trunk_is_the_image_path_run_once(tmp_path, monkeypatch):
    """Epochs that train the top K groups read the frozen groups' cached output: the same
    losses and weights as running every image through the whole backbone each epoch."""
    recs = dataset(tmp_path / "data")
    store = Store.init(tmp_path / "proj")
    store.ingest(ImportBatch(recs, tmp_path / "data", ImportReport("test")))
    on_images = SituationTagger(SITUATIONS, gradual(False)).fit(
        recs[:16], recs[16:], store=store, backbone=tiny(), progress=False
    )
    import scenesift.models.tagger as tagger_module

    def no_images(*args, **kwargs):
        raise AssertionError("a fine-tuning epoch read images instead of the cached trunk")

    monkeypatch.setattr(tagger_module, "make_loader", no_images)
    on_trunk = SituationTagger(SITUATIONS, gradual(True)).fit(
        recs[:16], recs[16:], store=store, backbone=tiny(), progress=False
    )
    assert [h.trainable_groups for h in on_trunk.history] == [0, 1, 2, 3]
    for a, b in zip(on_images.history, on_trunk.history, strict=True):
        assert b.train_loss == pytest.approx(a.train_loss, rel=1e-2)  # float16 trunk
        assert b.val_loss == pytest.approx(a.val_loss, rel=1e-2)
    for (name, a), b in zip(on_images.net.state_dict().items(),
                            on_trunk.net.state_dict().values(), strict=True):  # fmt: skip
        torch.testing.assert_close(b, a, rtol=0.05, atol=2e-3, msg=name)
    layers = {row["layer"] for row in feature_caches(store)}
    assert "trunk:3" in layers  # the top 3 of 5 groups train in epochs 1-3
    monkeypatch.undo()
    np.testing.assert_allclose(on_trunk.predict_scores(recs, progress=False),
                               on_images.predict_scores(recs, progress=False),
                               atol=0.02)  # fmt: skip


def test_the_trunk_is_not_cached_where_it_would_not_fit_in_memory_or_is_the_image(tmp_path):
    recs = dataset(tmp_path / "data")
    store = Store.init(tmp_path / "proj")
    store.ingest(ImportBatch(recs, tmp_path / "data", ImportReport("test")))
    small = replace(gradual(True), trunk_memory_gb=1e-9)
    every_group = replace(gradual(True), epochs=9)  # would unfreeze all 5 tiny groups
    for cfg in (small, every_group, replace(gradual(True), schedule="full")):
        SituationTagger(SITUATIONS, cfg).fit(recs[:16], recs[16:], store=store,
                                             backbone=tiny(), progress=False)  # fmt: skip
    assert not [row for row in feature_caches(store) if row["layer"].startswith("trunk")]


def test_the_tagger_knows_which_situations_it_was_taught(tmp_path):
    recs = dataset(tmp_path / "data")
    for r in recs:
        r.situations["fog"] = False  # negatives only: nothing to tell fog from clear
    cfg = TaggerConfig(backbone="tiny", schedule="frozen", epochs=1, workers=0)
    tagger = SituationTagger(["night", "rain", "fog", "tunnel"], cfg)
    tagger.fit(recs[:16], recs[16:], backbone=tiny(), progress=False)
    assert tagger.trained == ["night", "rain"]
    assert tagger.cannot_say == ["fog", "tunnel"]
    again = SituationTagger.load(tagger.save(tmp_path / "t.pt"))
    assert again.cannot_say == ["fog", "tunnel"]


def test_decisions_give_one_choice_per_exclusive_group():
    from scenesift.taxonomy import default_taxonomy

    tax = default_taxonomy()
    situations = ["day", "dusk", "night", "highway", "tunnel", "roadworks", "crowded"]
    proba = np.array(
        [
            [0.9, 0.8, 0.7, 0.6, 0.9, 0.6, 0.2],  # three times of day pass: day alone is chosen
            [0.2, 0.3, 0.1, 0.1, 0.2, 0.2, 0.9],  # none passes
            [0.6, 0.1, 0.7, 0.9, 0.2, 0.7, 0.7],  # night is highest but misses its threshold
        ]
    )
    thresholds = dict.fromkeys(situations, 0.5) | {"night": 0.8}
    values = tax.decide(proba, situations, thresholds)
    chosen = [[s for s, v in zip(situations, row, strict=True) if v] for row in values]
    assert chosen == [
        ["day", "tunnel", "roadworks"],
        ["crowded"],
        ["highway", "roadworks", "crowded"],
    ]
