"""The detector's array path (``decoded_arrays``, ``predict_arrays``, the campaign pool's
detections) gives what the per-Box path gave: the same boxes, scores and class
probabilities, within float tolerance."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from al_fixtures import LEARNER, opened_oracle_project
from scenesift.al.learners import DetectorLearner, _Mirrored
from scenesift.al.pool import Detections
from scenesift.models.detector import (
    DetectionArrays,
    _image_size,
    _maps,
    decoded_arrays,
    decoded_to_boxes,
)
from scenesift.models.detector_net import Decoded, DetectorHead, _max3x3, decode, decode_head
from scenesift.records import Box

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ["car", "truck", "pedestrian"]


def per_box(d: Decoded, classes, input_size, image_size) -> list[Box]:
    """The per-Box reference (scenesift before the array path): each detection scaled
    from input to image pixels, clipped to the image, dropped when left empty, its class
    values normalised (uniform when all are 0)."""
    (in_h, in_w), (width, height) = input_size, image_size
    sx, sy = width / in_w, height / in_h
    out = []
    for (x1, y1, x2, y2), c, s, v in zip(d.boxes, d.classes, d.scores, d.class_values, strict=True):
        probs = np.asarray(v, dtype=np.float64)
        probs = probs / probs.sum() if probs.sum() > 0 else np.full(len(probs), 1 / len(probs))
        box = (
            min(max(float(x1) * sx, 0.0), width),
            min(max(float(y1) * sy, 0.0), height),
            min(max(float(x2) * sx, 0.0), width),
            min(max(float(y2) * sy, 0.0), height),
        )
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        out.append(
            Box(classes[int(c)], *box, score=float(s), class_probs=tuple(float(p) for p in probs))
        )
    return out


def flatten(per_frame: dict[str, list[Box]], names, n_classes: int, min_score: float):
    """The reference flattening of Boxes into the pool's Detections (rows follow names)."""
    rows = [
        (i, b) for i, n in enumerate(names) for b in per_frame.get(n, ()) if b.score >= min_score
    ]
    return Detections(
        frame=np.array([i for i, _ in rows], np.int64),
        scores=np.array([b.score for _, b in rows], np.float32),
        class_probs=np.array([b.class_probs for _, b in rows], np.float32).reshape(-1, n_classes),
        boxes=np.array([(b.x1, b.y1, b.x2, b.y2) for _, b in rows], np.float32).reshape(-1, 4),
    )


def assert_same_boxes(got: list[Box], want: list[Box]) -> None:
    assert [b.category for b in got] == [b.category for b in want]
    for g, w in zip(got, want, strict=True):
        assert [g.x1, g.y1, g.x2, g.y2] == pytest.approx([w.x1, w.y1, w.x2, w.y2], abs=1e-6)
        assert g.score == pytest.approx(w.score, abs=1e-7)
        assert g.class_probs == pytest.approx(w.class_probs, abs=1e-7)


def assert_same_detections(got: Detections, want: Detections) -> None:
    np.testing.assert_array_equal(got.frame, want.frame)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-7)
    np.testing.assert_allclose(got.class_probs, want.class_probs, atol=1e-7)
    np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
    assert got.class_probs.dtype == got.scores.dtype == got.boxes.dtype == np.float32


def random_decoded(rng: np.random.Generator, n: int, k: int, input_size) -> Decoded:
    """``n`` detections in input pixels, some reaching past the image and some whose
    clipped box is empty; a few with every class value 0."""
    h, w = input_size
    cx, cy = rng.uniform(-0.2 * w, 1.2 * w, n), rng.uniform(-0.2 * h, 1.2 * h, n)
    bw, bh = rng.uniform(1, 0.3 * w, n), rng.uniform(1, 0.3 * h, n)
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
    values = rng.uniform(0, 1, (n, k)).astype(np.float32)
    values[: n // 5] = 0
    scores = np.sort(rng.uniform(0.01, 1, n))[::-1]
    return Decoded(boxes.astype(np.float32), rng.integers(0, k, n), scores.astype(np.float32),
                   values)  # fmt: skip


def test_decoded_arrays_equal_the_per_box_reference():
    rng = np.random.default_rng(0)
    input_size = (64, 96)
    sizes = [(480, 240), (96, 64), (1242, 375), (320, 192)]
    decoded = [random_decoded(rng, n, len(CLASSES), input_size) for n in (40, 0, 25, 60)]
    arrays = decoded_arrays(decoded, input_size, sizes)
    want = [per_box(d, CLASSES, input_size, s) for d, s in zip(decoded, sizes, strict=True)]
    # the generated case covers what the reference drops and what it keeps
    assert 0 < sum(map(len, want)) < sum(len(d.scores) for d in decoded)
    assert len(arrays) == sum(map(len, want)) and arrays.n_frames == 4
    for row, (d, s, w) in enumerate(zip(decoded, sizes, want, strict=True)):
        assert_same_boxes(arrays.frame_boxes(row, CLASSES), w)
        assert_same_boxes(decoded_to_boxes(d, CLASSES, input_size, s), w)
    by_name = arrays.by_name(["a", "b", "c", "d"], CLASSES)
    assert list(by_name) == ["a", "b", "c", "d"] and by_name["b"] == []
    assert_same_boxes(by_name["d"], want[3])
    assert (np.diff(arrays.frame) >= 0).all()


def test_mirrored_detections_are_the_per_box_mirror():
    rng = np.random.default_rng(1)
    d = random_decoded(rng, 30, len(CLASSES), (64, 96))
    arrays = decoded_arrays([d], (64, 96), [(480, 240)]).mirrored([480])
    want = [replace(b, x1=480 - b.x2, x2=480 - b.x1) for b in per_box(d, CLASSES, (64, 96),
                                                                       (480, 240))]  # fmt: skip
    assert_same_boxes(arrays.frame_boxes(0, CLASSES), want)


def test_mismatched_names_or_sizes_are_refused():
    d = random_decoded(np.random.default_rng(2), 3, len(CLASSES), (64, 96))
    with pytest.raises(ValueError, match="1 image sizes for 2 decoded frames"):
        decoded_arrays([d, d], (64, 96), [(96, 64)])
    with pytest.raises(ValueError, match="2 names for detections of 1 frames"):
        decoded_arrays([d], (64, 96), [(96, 64)]).by_name(["a", "b"], CLASSES)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """The tiny world, two members trained on 12 frames, and the pool (the other frames)."""
    with opened_oracle_project(tmp_path_factory.mktemp("arrays")) as store:
        learner = DetectorLearner(**{**LEARNER, "ensemble": 2})
        frames = store.records(split="train")
        yield store, learner.fit(store, frames[:12], []), frames[12:]


def whole_decode(model, feats, n: int, test_flip: bool) -> list[Decoded]:
    """The head on every cell of all ``n`` frames' maps in one batch (and on the mirrored
    maps, with ``test_flip``), then decoded."""
    cfg, frames = model.config, np.arange(n)
    with torch.inference_mode():
        heads = model.net.head(_maps(feats, frames, np.zeros(n, dtype=bool)))
        flipped = model.net.head(_maps(feats, frames, np.ones(n, dtype=bool)))
    return decode(heads, cfg.top_k, cfg.score_threshold, cfg.head_stride,
                  flipped if test_flip else None)  # fmt: skip


def reference_outputs(model, store, pool):
    """The per-Box path: the whole head decoded -> Boxes per frame (the model's, and the
    learner's flipped pass)."""
    size = model._input_size()
    feats = model._pyramid(pool, store, False)
    decoded = whole_decode(model, feats, len(pool), model.config.test_flip)
    plain = {r.name: per_box(d, model.classes, size, _image_size(r))
             for r, d in zip(pool, decoded, strict=True)}  # fmt: skip
    # the learner's flipped pass is plain: averaged with its mirror it would agree with itself
    decoded = whole_decode(model, [_Mirrored(level) for level in feats], len(pool), False)
    flipped = {}
    for r, d in zip(pool, decoded, strict=True):
        width = _image_size(r)[0]
        flipped[r.name] = [replace(b, x1=width - b.x2, x2=width - b.x1)
                           for b in per_box(d, model.classes, size, _image_size(r))]  # fmt: skip
    return plain, flipped


def test_pool_outputs_equal_the_per_box_path(fitted):
    store, members, pool = fitted
    names, k = [r.name for r in pool], len(store.taxonomy.classes)
    refs = [reference_outputs(m, store, pool) for m in members]
    scores = np.array([b.score for boxes in refs[0][0].values() for b in boxes])
    min_score = float(np.median(scores))  # some detections scored, some not
    learner = DetectorLearner(**{**LEARNER, "ensemble": 2, "tta": "flip", "min_score": min_score})
    out = learner.pool_outputs(members, store, pool)

    parts = [flatten(plain, names, k, min_score) for plain, _ in refs]
    assert 0 < len(parts[0].frame) < len(scores)
    got = out.detections
    for member, part in enumerate(parts):
        rows = got.member == member
        assert_same_detections(
            Detections(got.frame[rows], got.scores[rows], got.class_probs[rows], got.boxes[rows]),
            part,
        )
    assert_same_detections(out.flip_detections, flatten(refs[0][1], names, k, min_score))
    # labellers see member 0's boxes, all of them (below min_score too), per frame
    assert list(out.shown) == names
    for name in names:
        assert_same_boxes(out.shown[name], refs[0][0][name])


def test_predict_still_returns_boxes_per_frame(fitted):
    store, members, pool = fitted
    plain, _ = reference_outputs(members[0], store, pool)
    predicted = members[0].predict(pool, store=store)
    assert isinstance(predicted, dict) and list(predicted) == [r.name for r in pool]
    for name, boxes in plain.items():
        assert_same_boxes(predicted[name], boxes)
    assert members[0].predict([], store=store) == {}
    empty = members[0].predict_arrays([], store=store)
    assert isinstance(empty, DetectionArrays)
    assert empty.n_frames == 0 and empty.class_probs.shape == (0, len(members[0].classes))


@pytest.mark.parametrize("channels_last", [False, True])
def test_decodings_peak_pooling_is_max_pool_bitwise(channels_last):
    """Heat maps with plateaus (ties) and peaks on the border."""
    g = torch.Generator().manual_seed(0)
    heat = (torch.rand(3, 5, 7, 11, generator=g) * 4).round() / 4
    heat[0, 0, 0, 0] = heat[1, 2, -1, -1] = 2.0
    if channels_last:
        heat = heat.contiguous(memory_format=torch.channels_last)
    assert torch.equal(_max3x3(heat), F.max_pool2d(heat, 3, stride=1, padding=1))


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("size_head", ["split", "shared", "spatial tail", "one layer"])
def test_decoding_the_head_at_its_peaks_equals_decoding_its_whole_maps(size_head, flip):
    """decode_head runs the heads' per-pixel layers at the peaks only (split or shared box
    head), with or without the mirrored pass of flip test-time augmentation; a head whose
    last layer is spatial, or a bare layer, runs whole."""
    torch.manual_seed(0)
    box_head = "shared" if size_head == "shared" else "split"
    head = DetectorHead([8, 16, 32], n_classes=3, width=16, box_head=box_head).eval()
    if size_head == "spatial tail":
        head.size = torch.nn.Sequential(
            torch.nn.Conv2d(16, 16, 1), torch.nn.Conv2d(16, 2, 3, padding=1)
        )
    elif size_head == "one layer":
        head.size = torch.nn.Conv2d(16, 2, 3, padding=1)
    torch.nn.init.constant_(head.heat[-1].bias, 0.0)  # many peaks above the threshold
    maps = [torch.randn(3, c, 16 // s, 24 // s).contiguous(memory_format=torch.channels_last)
            for c, s in ((8, 1), (16, 2), (32, 4))]  # fmt: skip
    mirrored = [m.flip(-1) for m in maps] if flip else None
    with torch.inference_mode():
        whole = decode(head(maps), 40, 0.3, flipped=head(mirrored) if flip else None)
        peaks = decode_head(head, maps, top_k=40, score_threshold=0.3, flipped=mirrored)
    assert all(len(d.scores) > 5 for d in whole)
    for w, p in zip(whole, peaks, strict=True):
        np.testing.assert_array_equal(p.classes, w.classes)
        np.testing.assert_allclose(p.scores, w.scores, atol=1e-6)
        np.testing.assert_allclose(p.class_values, w.class_values, atol=1e-6)
        np.testing.assert_allclose(p.boxes, w.boxes, atol=1e-4)


def test_a_pool_read_in_chunks_gets_the_detections_of_one_read(fitted, monkeypatch):
    """predict holds PREDICT_CHUNK frames' cached maps at a time; the chunks change nothing."""
    store, members, pool = fitted
    learner = DetectorLearner(**{**LEARNER, "tta": "flip"})
    whole = learner.pool_outputs(members[:1], store, pool)
    monkeypatch.setattr("scenesift.models.detector.PREDICT_CHUNK", 5)
    assert len(pool) > 10
    chunked = learner.pool_outputs(members[:1], store, pool)
    assert_same_detections(chunked.detections, whole.detections)
    assert_same_detections(chunked.flip_detections, whole.flip_detections)


def one_peak(col: int, dx: float, w: int = 6) -> dict[str, torch.Tensor]:
    """Head outputs (1 class, a 2 x ``w`` map) with one peak at row 1, column ``col``:
    offset (dx, 0.5), size 2 x 1 cells."""
    heat = torch.full((1, 1, 2, w), -10.0)
    heat[0, 0, 1, col] = 3.0
    size = torch.zeros(1, 2, 2, w)
    size[0, 0], size[0, 1] = np.log(2.0), 0.0
    offset = torch.zeros(1, 2, 2, w)
    offset[0, 0, 1, col], offset[0, 1, 1, col] = dx, 0.5
    return {"heat": heat, "size": size, "offset": offset}


def test_flip_test_time_augmentation_reads_the_mirror_back_into_the_frame():
    """Stride 8, 6 cells wide: a centre at 2.25 cells is at 6 - 2.25 = 3.75 in the mirror
    (cell 3, offset 0.75). A mirrored pass that agrees leaves the box where it was; one
    that puts the centre at 3.25 (so 2.75 here) moves it half way, to 2.5 cells."""
    plain = decode(one_peak(2, 0.25), top_k=1)[0]
    np.testing.assert_allclose(plain.boxes, [[(2.25 - 1) * 8, 8, (2.25 + 1) * 8, 16]])
    agreeing = decode(one_peak(2, 0.25), top_k=1, flipped=one_peak(3, 0.75))[0]
    np.testing.assert_allclose(agreeing.boxes, plain.boxes, atol=1e-5)
    np.testing.assert_allclose(agreeing.scores, plain.scores, atol=1e-6)
    half_way = decode(one_peak(2, 0.25), top_k=1, flipped=one_peak(3, 0.25))[0]
    np.testing.assert_allclose(half_way.boxes, [[(2.5 - 1) * 8, 8, (2.5 + 1) * 8, 16]], atol=1e-5)
    # a peak the mirror does not see is kept at half its score
    unseen = decode(one_peak(2, 0.25), top_k=1, flipped=one_peak(0, 0.5))[0]
    assert unseen.scores[0] == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item() / 2, abs=1e-3)
