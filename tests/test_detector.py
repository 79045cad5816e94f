"""The CenterNet-style detector: targets, focal loss, decoding, fit/predict, save/load."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scenesift.features import embed, split_pyramid
from scenesift.metrics.detection import evaluate_detection
from scenesift.models.backbones import Preprocessing, get_backbone
from scenesift.models.detector import (
    DetectorConfig,
    ObjectDetector,
    _ema_decay,
    aspect_input_size,
    decoded_to_boxes,
)
from scenesift.models.detector_net import (
    HEAT_PRIOR_BIAS,
    IGNORE,
    DetectorNet,
    build_targets,
    class_balance_weights,
    decode,
    focal_loss,
    gaussian_radius,
)
from scenesift.records import Box, FrameRecord, ImportBatch, ImportReport
from scenesift.store import Store

SMALL = Preprocessing(size=(64, 64))
CLASSES = ["car", "truck"]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny():
    return get_backbone("tiny", preprocessing=SMALL)


def squares(root: Path, n: int = 8, size: tuple[int, int] = (96, 64)) -> list[FrameRecord]:
    """Dark frames (W x H = ``size``) with one bright square each, at a random place."""
    rng = np.random.default_rng(0)
    width, height = size
    out = []
    for i in range(n):
        pixels = np.full((height, width, 3), 20, dtype=np.uint8)
        s = int(rng.integers(18, 26))
        x, y = int(rng.integers(0, width - s)), int(rng.integers(0, height - s))
        pixels[y : y + s, x : x + s] = 235
        path = root / f"{i:03d}.png"
        Image.fromarray(pixels).save(path)
        box = Box("car", x, y, x + s, y + s)
        out.append(FrameRecord(path.name, path, f"d{i // 4}", width, height, boxes=[box]))
    return out


def config(**kw) -> DetectorConfig:
    base = {"backbone": "tiny", "batch_size": 4, "width": 32, "epochs": 60, "lr": 1e-2}
    return DetectorConfig(**{**base, **kw})


def test_gaussian_targets_peak_at_the_centre_with_size_dependent_radius():
    assert gaussian_radius(40, 40) > gaussian_radius(10, 10) > 0
    boxes = [np.array([[1, 16.0, 8.0, 48.0, 40.0]])]  # class 1, centre (32, 24) -> cell (4, 3)
    t = build_targets(boxes, 2, (8, 8))
    assert t.heat.shape == (1, 2, 8, 8)
    assert t.heat[0, 1, 3, 4] == 1.0 and t.heat[0, 0].max() == 0
    assert (t.heat[0, 1] == 1).sum() == 1
    assert int(t.index[0, 0]) == 3 * 8 + 4 and t.mask[0].sum() == 1
    assert torch.allclose(t.size[0, 0], torch.log(torch.tensor([4.0, 4.0])))


def test_focal_loss_is_finite_even_for_saturated_logits_and_lower_when_right():
    target = build_targets([np.array([[0, 16.0, 16.0, 40.0, 40.0]])], 1, (8, 8)).heat
    right = torch.where(target == 1, 20.0, -20.0)
    wrong = -right
    assert torch.isfinite(focal_loss(right, target)) and torch.isfinite(focal_loss(wrong, target))
    assert focal_loss(right, target) < 1e-3 < focal_loss(wrong, target)


def test_decoding_returns_original_pixels_for_a_non_square_input():
    """A synthetic heat map with one peak on a 64x96 (H x W) input from a 480x240 image."""
    k, h, w = 3, 8, 12
    heat = torch.full((1, k, h, w), -10.0)
    heat[0, 2, 5, 7] = 3.0  # sigmoid 0.95
    heat[0, 0, 5, 7] = 0.0  # 0.5: the same peak's value for another class
    size = torch.zeros((1, 2, h, w))
    size[0, 0, 5, 7], size[0, 1, 5, 7] = np.log(2.0), np.log(1.0)  # 16 x 8 input pixels
    offset = torch.zeros((1, 2, h, w))
    offset[0, :, 5, 7] = 0.5
    out = {"heat": heat, "size": size, "offset": offset}
    (d,) = decode(out, top_k=5, score_threshold=0.4)
    classes = ["a", "b", "c"]
    boxes = decoded_to_boxes(d, classes, input_size=(64, 96), image_size=(480, 240))
    best = max(boxes, key=lambda b: b.score)
    # centre in input pixels (7.5 * 8, 5.5 * 8) = (60, 44); x * 5, y * 3.75
    assert best.category == "c"
    assert best.x1 == pytest.approx((60 - 8) * 5) and best.x2 == pytest.approx((60 + 8) * 5)
    assert best.y1 == pytest.approx((44 - 4) * 3.75) and best.y2 == pytest.approx((44 + 4) * 3.75)
    assert best.score == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item(), rel=1e-5)
    assert len(best.class_probs) == 3 and sum(best.class_probs) == pytest.approx(1.0)
    assert best.class_probs[2] > best.class_probs[0] > best.class_probs[1]


def test_head_outputs_stride_8_maps_and_starts_at_the_prior():
    net = DetectorNet(tiny(), 2, width=16)
    with torch.no_grad():
        out = net(torch.randn(2, 3, 64, 64))
    assert out["heat"].shape == (2, 2, 8, 8) and out["size"].shape == (2, 2, 8, 8)
    assert float(torch.sigmoid(out["heat"]).mean()) == pytest.approx(
        float(torch.sigmoid(torch.tensor(HEAT_PRIOR_BIAS))), abs=0.1
    )


def test_finetune_overfits_eight_squares(tmp_path):
    records = squares(tmp_path)
    det = ObjectDetector(CLASSES, config(mode="finetune", finetune_groups=3))
    det.fit(records, backbone=tiny(), progress=False)
    losses = [h.heat_loss for h in det.history]
    assert all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0]
    preds = det.predict(records)
    assert set(preds) == {r.name for r in records}
    for boxes in preds.values():
        for b in boxes:
            assert len(b.class_probs) == len(CLASSES)
            assert sum(b.class_probs) == pytest.approx(1.0)
            assert 0 <= b.x1 < b.x2 <= 96 and 0 <= b.y1 < b.y2 <= 64
    assert evaluate_detection(records, preds, CLASSES).map50 > 0.5


def ingest(tmp_path: Path, records: list[FrameRecord]) -> Store:
    store = Store.init(tmp_path / "proj")
    store.ingest(ImportBatch(records, tmp_path, ImportReport("test")))
    return store


def test_frozen_mode_without_a_store_trains_the_head_only_and_reloads(tmp_path):
    records = squares(tmp_path)
    backbone = tiny()
    det = ObjectDetector(CLASSES, config(mode="frozen", epochs=80))
    det.fit(records, records[:2], store=None, backbone=backbone, progress=False)
    assert det.history[-1].heat_loss < det.history[0].heat_loss
    assert not det.backbone_trained
    preds = det.predict(records)
    path = det.save(tmp_path / "det.pt")
    again = ObjectDetector.load(path)
    assert again.fingerprint == det.fingerprint
    preds2 = again.predict(records)
    for name in preds:
        assert [b.score for b in preds[name]] == pytest.approx([b.score for b in preds2[name]])


def test_pyramid_layer_caches_all_three_maps(tmp_path):
    records = squares(tmp_path, n=3)
    backbone = tiny()
    store = ingest(tmp_path, records)
    feats = embed(store, backbone, [r.name for r in records], layer="pyramid", progress=False)
    maps = split_pyramid(feats.array, backbone)
    assert feats.array.dtype == np.float16
    assert [m.shape for m in maps] == [(3, 16, 8, 8), (3, 24, 4, 4), (3, 32, 2, 2)]
    again = embed(store, backbone, [r.name for r in records], layer="pyramid", progress=False)
    assert again.computed == 0 and np.array_equal(again.array, feats.array)


def test_frozen_predictions_from_the_cache_equal_those_from_images(tmp_path):
    records = squares(tmp_path, n=6)
    backbone = tiny()
    store = ingest(tmp_path, records)
    det = ObjectDetector(CLASSES, config(mode="frozen", epochs=5))
    det.fit(store.records(), store=store, backbone=backbone, progress=False)
    assert_cached_predictions_match_live(det, store, store.records())


def assert_cached_predictions_match_live(det, store, recs) -> dict:
    """The top scores from the float16 cache agree closely with the float32 live maps';
    returns the live predictions."""
    cached = det.predict(recs, store=store)
    live = det.predict(recs)
    for name in cached:
        a = [b.score for b in cached[name][:3]]
        b = [b.score for b in live[name][:3]]
        assert a == pytest.approx(b, abs=2e-2)
    return live


def test_the_kept_model_is_the_epoch_with_the_best_validation_map(tmp_path):
    """Selection by what matters: every evaluated epoch logs val mAP@0.5 and the weights
    kept at the end score exactly the best of them on the validation frames."""
    records = squares(tmp_path, n=12)
    train, val = records[:8], records[8:]
    det = ObjectDetector(CLASSES, config(mode="frozen", epochs=12, eval_every=2))
    seen = []
    det.fit(train, val, backbone=tiny(), progress=False, on_eval=seen.append)
    evaluated = [h for h in det.history if h.val_map50 is not None]
    assert [h.epoch for h in evaluated] == [1, 3, 5, 7, 9, 11] and seen == evaluated
    maps = [h.val_map50 for h in evaluated]
    best = evaluated[int(np.argmax(maps))]
    assert [h.epoch for h in det.history if h.kept][-1] == best.epoch
    assert len(set(maps)) > 1  # the selection had something to choose from
    got = evaluate_detection(val, det.predict(val), CLASSES).map50
    assert got == pytest.approx(best.val_map50, abs=1e-9)


def test_validation_without_objects_selects_by_loss(tmp_path):
    records = squares(tmp_path, n=6)
    empty = [FrameRecord(r.name, r.path, r.drive, r.width, r.height, boxes=[]) for r in records]
    det = ObjectDetector(CLASSES, config(mode="frozen", epochs=4, eval_every=1))
    det.fit(records[:4], empty[4:], backbone=tiny(), progress=False)
    evaluated = [h for h in det.history if np.isfinite(h.val_loss)]
    assert len(evaluated) == 4 and all(h.val_map50 is None for h in evaluated)
    kept = [h for h in det.history if h.kept][-1]
    assert kept.val_loss == min(h.val_loss for h in evaluated)


@pytest.mark.parametrize(("frames", "epochs"), [(8, 5), (40, 1)])
def test_the_schedule_is_a_number_of_optimiser_steps_whatever_the_frames(tmp_path, frames, epochs):
    """9 steps of batch 4: 8 frames (2 batches an epoch) take 5 epochs, the last cut
    short; 40 frames (10 batches) stop within the first."""
    records = squares(tmp_path, n=frames)
    det = ObjectDetector(CLASSES, config(mode="frozen", epochs=None, steps=9, min_epochs=0))
    det.fit(records, backbone=tiny(), progress=False)
    assert len(det.history) == epochs and det.history[-1].steps == 9


def test_evaluations_fall_in_the_last_part_of_the_schedule_unless_every_is_given():
    """Default: 4 evaluations over the last half (the best weights come late and each
    costs a pass over the validation frames); eval_every counts from the first epoch."""
    cfg = DetectorConfig()
    epochs, _, every = cfg.schedule(batches_per_epoch=100)  # 800 steps: 8 epochs
    assert [e for e in range(1, epochs + 1) if cfg.evaluates(e, epochs, every)] == [5, 6, 7, 8]
    cfg = DetectorConfig(eval_every=3, epochs=8)
    epochs, _, every = cfg.schedule(100)
    assert [e for e in range(1, epochs + 1) if cfg.evaluates(e, epochs, every)] == [3, 6, 8]
    with pytest.raises(ValueError, match="eval_span"):
        DetectorConfig(eval_span=0)


def test_the_step_schedule_grows_to_min_epochs_on_large_training_sets():
    """800 steps of 12 frames: a 1,282-frame set (107 batches) gets 800 steps (7.5 epochs);
    a 3,452-frame set (288 batches) would get under 3 epochs, and gets 6."""
    cfg = DetectorConfig()
    assert cfg.schedule(batches_per_epoch=107)[:2] == (8, 800)
    assert cfg.schedule(batches_per_epoch=288)[:2] == (6, 1728)
    assert DetectorConfig(min_epochs=0).schedule(288)[:2] == (3, 800)
    assert DetectorConfig(epochs=2).schedule(288)[:2] == (2, 576)  # epochs still replace it
    with pytest.raises(ValueError, match="min_epochs"):
        DetectorConfig(min_epochs=-1)


def test_epochs_replace_steps_and_bad_schedules_are_refused():
    cfg = DetectorConfig(epochs=3, batch_size=8)
    assert cfg.schedule(batches_per_epoch=5) == (3, 15, 1)
    assert DetectorConfig(steps=100, evaluations=4, eval_span=0.8).schedule(10) == (10, 100, 2)
    with pytest.raises(ValueError, match="steps"):
        DetectorConfig(steps=0)
    with pytest.raises(ValueError, match="eval_every"):
        DetectorConfig(eval_every=0)


def test_the_device_is_not_part_of_the_model_fingerprint(tmp_path):
    records = squares(tmp_path, n=4)
    a = ObjectDetector(CLASSES, config(mode="frozen", epochs=1, device="cpu"))
    b = ObjectDetector(CLASSES, config(mode="frozen", epochs=1, device="auto"))
    for det in (a, b):
        det.fit(records, backbone=tiny(), progress=False)
    if not torch.cuda.is_available():
        assert a.fingerprint == b.fingerprint


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_training_on_cuda_with_mixed_precision_matches_the_cpu_closely(tmp_path, mode):
    records = squares(tmp_path)
    preds = {}
    for device in ("cpu", "cuda"):
        det = ObjectDetector(CLASSES, config(mode=mode, epochs=40, device=device))
        det.fit(records, backbone=tiny(), progress=False)
        preds[device] = det.predict(records)
        assert evaluate_detection(records, preds[device], CLASSES).map50 > 0.5


def test_class_balanced_weights_favour_rare_classes_and_scale_their_heat_loss():
    frames = [np.array([[0, 0, 0, 8, 8]] * 10)] * 10 + [np.array([[1, 0, 0, 8, 8]])] * 10
    w = class_balance_weights(frames, 3, power=0.5)
    assert float(w[1] / w[0]) == pytest.approx(10**0.5) and float(w[2]) == 1.0
    assert float(w[:2].mean()) == pytest.approx(1.0)
    assert torch.equal(class_balance_weights(frames, 3, power=0), torch.ones(3))
    target = build_targets([np.array([[1, 16.0, 16.0, 40.0, 40.0]])], 2, (8, 8)).heat
    logits = torch.zeros_like(target)
    plain = focal_loss(logits, target)
    assert focal_loss(logits, target, torch.tensor([1.0, 2.0])) > plain
    assert focal_loss(logits, target, torch.tensor([1.0, 1.0])) == pytest.approx(float(plain))


def test_wide_frames_train_at_their_own_aspect_ratio(tmp_path):
    """KITTI-like frames (3.3:1) are not squeezed into the backbone's 5:3 input."""
    assert aspect_input_size([(1242, 375)] * 3, 384 * 640) == (288, 896)
    assert aspect_input_size([(1280, 720)], 384 * 640) == (384, 672)
    assert aspect_input_size([(320, 192), (320, 192), (1280, 720)], 192 * 320) == (192, 320)
    records = squares(tmp_path, n=4, size=(192, 64))
    det = ObjectDetector(CLASSES, config(mode="finetune", epochs=1, input_pixels=64 * 192))
    det.fit(records, progress=False)
    assert det.net.backbone.preprocessing.size == (64, 192)
    for boxes in det.predict(records).values():
        assert all(0 <= b.x1 < b.x2 <= 192 and 0 <= b.y1 < b.y2 <= 64 for b in boxes)


# --------------------------------------------------------------------------- stride-4 head
def test_a_stride_4_head_outputs_stride_4_maps_from_the_backbones_stride_4_map():
    backbone = tiny()
    net = DetectorNet(backbone, 2, width=16, head_stride=4)
    assert net.head.laterals[0].in_channels == backbone.fine_channels
    with torch.no_grad():
        out = net(torch.randn(2, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "heat": (2, 2, 16, 16),
        "size": (2, 2, 16, 16),
        "offset": (2, 2, 16, 16),
    }
    with pytest.raises(ValueError, match="head_stride"):
        DetectorNet(backbone, 2, head_stride=2)
    with pytest.raises(ValueError, match="head_stride"):
        DetectorConfig(head_stride=16)


def test_stride_4_targets_and_decoding_round_trip_a_box_in_input_pixels():
    """A 10x6-pixel box centred at (21, 13) on a 32x48 input: its stride-4 peak is cell
    (5, 3), offset (0.25, 0.25), log size log(2.5), log(1.5); decoding it at stride 4 gives
    the box back, and at stride 8 the same outputs would mean a box twice as far and big."""
    box = np.array([[1, 16.0, 10.0, 26.0, 16.0]])
    t = build_targets([box], 2, (8, 12), stride=4)
    assert t.heat.shape == (1, 2, 8, 12) and t.heat[0, 1, 3, 5] == 1.0
    assert int(t.index[0, 0]) == 3 * 12 + 5
    assert t.offset[0, 0].tolist() == pytest.approx([0.25, 0.25])
    assert t.size[0, 0].tolist() == pytest.approx([np.log(2.5), np.log(1.5)])
    logits = torch.where(t.heat > 0.99, 5.0, -10.0)
    size = torch.zeros(1, 2, 8, 12)
    size[0, :, 3, 5] = t.size[0, 0]
    offset = torch.zeros(1, 2, 8, 12)
    offset[0, :, 3, 5] = t.offset[0, 0]
    out = {"heat": logits, "size": size, "offset": offset}
    (d,) = decode(out, top_k=5, score_threshold=0.5, stride=4)
    assert d.classes.tolist() == [1]
    assert d.boxes[0].tolist() == pytest.approx([16.0, 10.0, 26.0, 16.0], abs=1e-5)
    (d8,) = decode(out, top_k=5, score_threshold=0.5, stride=8)
    assert d8.boxes[0].tolist() == pytest.approx([32.0, 20.0, 52.0, 32.0], abs=1e-5)


def test_the_pyramid4_layer_caches_the_stride_4_map_apart_from_the_pyramid(tmp_path):
    records = squares(tmp_path, n=3)
    backbone = tiny()
    store = ingest(tmp_path, records)
    names = [r.name for r in records]
    plain = embed(store, backbone, names, layer="pyramid", progress=False)
    feats = embed(store, backbone, names, layer="pyramid4", progress=False)
    assert feats.computed == 3  # the stride-8 pyramid's cache is not served for it
    maps = split_pyramid(feats.array, backbone, "pyramid4")
    assert [m.shape for m in maps] == [(3, 12, 16, 16), (3, 16, 8, 8), (3, 24, 4, 4), (3, 32, 2, 2)]
    coarse = split_pyramid(plain.array, backbone)
    for a, b in zip(maps[1:], coarse, strict=True):
        assert np.array_equal(a, b)


def test_a_stride_4_detector_trains_from_the_cache_and_reloads_at_stride_4(tmp_path):
    records = squares(tmp_path, n=6)
    store = ingest(tmp_path, records)
    recs = store.records()
    det = ObjectDetector(CLASSES, config(mode="frozen", epochs=40, head_stride=4))
    det.fit(recs, store=store, backbone=tiny(), progress=False)
    assert det.history[-1].heat_loss < det.history[0].heat_loss
    live = assert_cached_predictions_match_live(det, store, recs)
    again = ObjectDetector.load(det.save(tmp_path / "det4.pt"))
    assert again.config.head_stride == 4 and again.fingerprint == det.fingerprint
    reloaded = again.predict(recs)
    for name in live:
        assert [b.score for b in reloaded[name]] == pytest.approx([b.score for b in live[name]])
    assert evaluate_detection(recs, live, CLASSES).map50 > 0.5


# ------------------------------------------------------------------ training windows (crop)
def _pyramid_and_data(size=(128, 192), boxes=((0, 100, 20, 130, 50), (1, 8, 70, 40, 110))):
    """Random stride-8/16/32 maps of one frame at input ``size`` (H, W), and its targets."""
    from scenesift.models.detector import _Data

    h, w = size
    rng = np.random.default_rng(1)
    feats = [
        rng.normal(size=(1, c, h // s, w // s)).astype(np.float16)
        for c, s in ((3, 8), (4, 16), (5, 32))
    ]
    frame = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    flipped = np.asarray(frame)
    flipped[:, [1, 3]] = w - frame[:, [3, 1]]
    data = _Data(
        boxes=[frame],
        targets=build_targets([frame], 2, (h // 8, w // 8)),
        flipped=build_targets([flipped], 2, (h // 8, w // 8)),
    )
    return feats, data


@pytest.mark.parametrize("flip", [False, True])
def test_a_training_window_crops_every_pyramid_level_and_the_targets_alike(flip):
    from scenesift.models.detector import _targets, _windows

    feats, data = _pyramid_and_data()
    whole = _targets(data, np.array([0]), np.array([flip]))
    for seed in range(6):
        rng = np.random.default_rng(seed)
        maps, t = _windows(feats, data, np.array([0]), np.array([flip]), (64, 96), rng)
        oy, ox = (int(v) for v in np.random.default_rng(seed).integers(0, [3, 4], (2, 1))[:, 0])
        # the window is the same 64x96 region of the (mirrored) frame at every stride
        for level, m, s in zip(feats, maps, (8, 16, 32), strict=True):
            frame = level[0, ..., ::-1] if flip else level[0]
            y, x = oy * 32 // s, ox * 32 // s
            want = frame[:, y : y + 64 // s, x : x + 96 // s].astype(np.float32)
            assert m.shape[-2:] == (64 // s, 96 // s)
            np.testing.assert_allclose(m[0].numpy(), want)
        np.testing.assert_array_equal(
            t.heat[0].numpy(),
            whole.heat[0, :, oy * 4 : oy * 4 + 8, ox * 4 : ox * 4 + 12].numpy(),
        )
        # an object stays in the size/offset losses exactly when its centre is inside,
        # and its index then points at its own peak in the window
        for j in range(2):
            gy, gx = divmod(int(whole.index[0, j]), 24)
            inside = oy * 4 <= gy < oy * 4 + 8 and ox * 4 <= gx < ox * 4 + 12
            assert t.mask[0, j] == float(inside)
            if inside:
                cls = int(data.boxes[0][j, 0])
                assert t.heat[0, cls].reshape(-1)[t.index[0, j]] == 1.0


def test_window_sizes_are_multiples_of_32_and_a_whole_frame_means_no_window():
    from scenesift.models.detector import _window

    assert _window((384, 640), 0.5) == (192, 320)
    assert _window((288, 896), 0.5) == (128, 448)
    assert _window((64, 64), 0.5) == (32, 32)
    assert _window((384, 640), 1.0) is None
    with pytest.raises(ValueError, match="crop"):
        DetectorConfig(crop=0)


def test_frozen_training_on_windows_learns_and_predicts_whole_frames(tmp_path):
    records = squares(tmp_path, n=8, size=(128, 128))
    backbone = get_backbone("tiny", preprocessing=Preprocessing(size=(128, 128)))
    det = ObjectDetector(CLASSES, config(mode="frozen", epochs=150, crop=0.5))
    det.fit(records, None, store=None, backbone=backbone, progress=False)
    assert det.history[-1].heat_loss < 0.5 * det.history[0].heat_loss
    preds = det.predict(records)
    res = evaluate_detection(records, preds, CLASSES)
    assert res.map50 > 0.5


def test_a_shared_box_head_gives_the_same_outputs_for_less_and_reloads(tmp_path):
    split = DetectorNet(tiny(), 2, width=16)
    shared = DetectorNet(tiny(), 2, width=16, box_head="shared")
    x = torch.zeros(1, 3, 64, 64)
    for net in (split, shared):
        out = net(x)
        assert out["heat"].shape[1] == 2 and out["size"].shape[1] == out["offset"].shape[1] == 2
    count = sum(p.numel() for p in shared.head.parameters())
    assert count < sum(p.numel() for p in split.head.parameters())
    records = squares(tmp_path)
    det = ObjectDetector(CLASSES, config(mode="frozen", epochs=20, box_head="shared"))
    det.fit(records, None, store=None, backbone=tiny(), progress=False)
    again = ObjectDetector.load(det.save(tmp_path / "det.pt"))
    assert again.config.box_head == "shared" and again.fingerprint == det.fingerprint
    with pytest.raises(ValueError, match="box_head"):
        DetectorConfig(box_head="fused")


def test_checkpoints_from_before_the_box_head_option_load_as_split(tmp_path):
    records = squares(tmp_path)
    det = ObjectDetector(CLASSES, config(mode="frozen", epochs=2, box_head="split"))
    det.fit(records, None, store=None, backbone=tiny(), progress=False)
    path = det.save(tmp_path / "old.pt")
    state = torch.load(path, weights_only=True)
    del state["config"]["box_head"], state["config"]["test_flip"]  # an older scenesift's
    torch.save(state, path)
    old = ObjectDetector.load(path)
    assert old.config.box_head == "split" and not old.config.test_flip  # predicts as it did


def test_a_checkpoint_loads_onto_a_backbone_built_afresh(tmp_path):
    """Normalisations like EfficientNet-Lite's 127/255 are stored rounded; the backbone a
    user builds again (for a cache at the same size) must still be accepted."""
    lite = replace(SMALL, mean=(127 / 255,) * 3, std=(128 / 255,) * 3)
    det = ObjectDetector(CLASSES, config(mode="frozen", epochs=1))
    det.fit(squares(tmp_path), None, backbone=get_backbone("tiny", preprocessing=lite),
            progress=False)  # fmt: skip
    path = det.save(tmp_path / "det.pt")
    again = ObjectDetector.load(path, backbone=get_backbone("tiny", preprocessing=lite))
    assert again.fingerprint == det.fingerprint
    with pytest.raises(ValueError, match="preprocessing"):
        ObjectDetector.load(path, backbone=get_backbone("tiny", preprocessing=SMALL))


def test_flip_test_time_augmentation_keeps_the_boxes_and_can_be_turned_off(tmp_path):
    """Squares are mirror-symmetric: the averaged pass finds the same squares, in the
    same places, as the plain one (on images here: no store, so the backbone runs)."""
    records = squares(tmp_path)
    det = ObjectDetector(CLASSES, config(mode="frozen", epochs=150, ema=0))
    det.fit(records, None, store=None, backbone=tiny(), progress=False)
    assert det.config.test_flip  # the default
    flipped = det.predict(records)
    det.config = replace(det.config, test_flip=False)
    plain = det.predict(records)
    for r in records:
        f, p = flipped[r.name][0], plain[r.name][0]
        assert f.category == p.category and iou(f, p) > 0.7
    assert evaluate_detection(records, flipped, CLASSES).map50 > 0.5


def iou(a, b) -> float:
    w = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    h = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - w * h
    return w * h / union


def test_a_minimum_radius_gives_tiny_objects_a_soft_neighbourhood():
    """A 2x2-cell box gets CornerNet radius 0: only its centre cell is positive and its
    neighbours are full negatives; min_radius=1 makes them penalty-reduced (0 < v < 1)."""
    box = [np.array([[0, 32, 32, 48, 48]], dtype=np.float64)]  # 16 px: 2x2 cells at stride 8
    sharp = build_targets(box, 1, (10, 10)).heat[0, 0]
    soft = build_targets(box, 1, (10, 10), min_radius=1).heat[0, 0]
    assert sharp[5, 5] == soft[5, 5] == 1.0
    assert sharp[4:7, 4:7].sum() == 1.0
    ring = soft[4:7, 4:7].flatten()[[0, 1, 2, 3, 5, 6, 7, 8]]
    assert ((ring > 0) & (ring < 1)).all()


def test_an_ignore_region_is_neither_object_nor_background_in_the_loss():
    """A region of unlabelled objects (``iscrowd``: KITTI DontCare, COCO crowds, doubtful
    pseudo-labels) costs the same whatever the model predicts there, while the same box
    trained as background punishes a detection on it; objects inside keep their peaks."""
    car, region = np.array([[0, 8, 8, 24, 24]]), np.array([[0, 40, 8, 72, 40]])
    plain = build_targets([car], 2, (8, 12)).heat
    ignored = build_targets([car], 2, (8, 12), ignore=[region]).heat
    assert (ignored[0, 0, 1:5, 5:9] == IGNORE).all() and ignored[0, 1].max() == 0
    assert (ignored[0, 0] == 1).sum() == (plain[0, 0] == 1).sum() == 1
    assert (ignored[0, 0, :, :5] == plain[0, 0, :, :5]).all()
    found = torch.full_like(plain, -6.0)
    found[0, 0, 2, 6] = 6.0  # a confident detection inside the region
    missed = torch.full_like(plain, -6.0)
    assert focal_loss(found, ignored) == pytest.approx(float(focal_loss(missed, ignored)), abs=1e-6)
    assert focal_loss(found, plain) > focal_loss(missed, plain) + 1.0
    # an object's peak inside a region stays a peak
    inside = build_targets([np.array([[0, 48, 16, 64, 32]])], 1, (8, 12), ignore=[region]).heat
    assert inside[0, 0, 3, 7] == 1.0 and (inside[0, 0] == 1).sum() == 1


def test_training_reads_crowd_boxes_as_ignore_regions(tmp_path, monkeypatch):
    """A frame's ``iscrowd`` boxes become its ignore regions (mirrored with the frame), not
    objects, and a model trained on them is told apart from one trained on objects."""
    from scenesift.models.detector import ObjectDetector, _data_fingerprint

    crowd = Box("car", 40, 8, 72, 40, attributes={"iscrowd": True})
    record = FrameRecord("f.png", tmp_path / "f.png", "d", 96, 64,
                         boxes=[Box("car", 8, 8, 24, 24), crowd])  # fmt: skip
    monkeypatch.setattr(ObjectDetector, "_input_size", lambda self: (64, 96))  # no net needed
    data = ObjectDetector(["car"], config())._data([record])
    assert data.boxes[0].tolist() == [[0, 8, 8, 24, 24]]
    assert (data.targets.heat[0, 0, 1:5, 5:9] == IGNORE).all()
    assert (data.flipped.heat[0, 0, 1:5, 3:7] == IGNORE).all()  # 96 - 72 = 24 -> cell 3
    as_object = replace(record, boxes=[Box("car", 8, 8, 24, 24), replace(crowd, attributes={})])
    assert _data_fingerprint([record], [], ["car"]) != _data_fingerprint([as_object], [], ["car"])


def test_the_weight_average_is_a_plain_mean_until_its_decay_is_reached():
    """After n + 1 steps the plain mean gives the newest weights 1 / (n + 1): 0.5 for the
    second, 0.1 for the tenth; from 200 steps on, decay 0.995 takes over."""
    assert _ema_decay(0.995, 1) == pytest.approx(0.5)
    assert _ema_decay(0.995, 9) == pytest.approx(0.9)
    assert _ema_decay(0.995, 199) == pytest.approx(0.995)
    assert _ema_decay(0.995, 5000) == 0.995 and _ema_decay(0.99, 535) == 0.99


def test_a_weight_average_is_what_gets_validated_and_kept(tmp_path):
    """ema leaves the training trajectory alone (same seed, same raw steps) and keeps the
    averaged weights: they differ from the last step's, and reproduce the kept val mAP."""
    records = squares(tmp_path, n=12)
    train, val = records[:8], records[8:]
    plain = ObjectDetector(CLASSES, config(mode="frozen", epochs=12, ema=0)).fit(
        train, backbone=tiny(), progress=False
    )
    averaged = ObjectDetector(CLASSES, config(mode="frozen", epochs=12, ema=0.8)).fit(
        train, backbone=tiny(), progress=False
    )
    assert [h.train_loss for h in averaged.history] == pytest.approx(
        [h.train_loss for h in plain.history]
    )
    w_plain, w_avg = plain.net.head.heat[-1].weight, averaged.net.head.heat[-1].weight
    assert not torch.allclose(w_plain, w_avg)
    det = ObjectDetector(CLASSES, config(mode="frozen", epochs=12, eval_every=3, ema=0.8))
    det.fit(train, val, backbone=tiny(), progress=False)
    best = max(h.val_map50 for h in det.history if h.val_map50 is not None)
    assert evaluate_detection(val, det.predict(val), CLASSES).map50 == pytest.approx(best)
    with pytest.raises(ValueError, match="ema"):
        DetectorConfig(ema=1.0)
