"""Pool inference on cached features (issue 16, loop cost): frames/s of a campaign round's
detector pass over the pool, the array path against the per-Box path it replaced.

    .venv/bin/python benchmarks/bench_pool_inference.py                      # 300-frame world
    .venv/bin/python benchmarks/bench_pool_inference.py --input-pixels 61440  # 192x320
    .venv/bin/python benchmarks/bench_pool_inference.py --world W --project /tmp/pool  # reruns

Generates a small default world (or reads ``--world``, a `scenesift synth` output), imports
it as oracle, caches the pool's (train split's) backbone pyramid once (not timed), fits a
detector for a few steps (its weights barely matter: decoding keeps the ``top_k`` best
peaks above ``score_threshold`` of any head) and times, interleaved, ``--repeats`` times:

- ``old``: the per-Box path as of commit 94e92e9, kept here: cached maps widened in two
  copies, the head ``batch_size`` frames at a time, ``F.max_pool2d`` peaks and a frame at
  a time in ``decode``, a ``Box`` per detection (``decoded_to_boxes``), then the Boxes
  flattened into the pool's ``Detections``;
- ``new``: ``DetectorLearner.pool_outputs`` (``predict_arrays``: cached maps widened in
  one copy, CPU batches capped by heat-map cells, the size and offset heads' 1x1 layers
  only at the peaks, shifted-maxima peak pooling, arrays from ``decode`` to
  ``Detections``, Boxes only for the frames read);
- ``predict``: ``ObjectDetector.predict`` (every frame's Boxes, what evaluation reads) on
  the same frames, and the old path's Boxes before flattening (``old boxes``);
- ``new, test flip``: ``new`` with the detector's default flip test-time augmentation (the
  others run without it, as the old path did), for its cost.

Reports the best and median frames/s of each and the ratios, after checking that both
paths give the same detections (within float tolerance).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench_round_overhead import build_project


def old_maps(feats, idx: np.ndarray) -> list[torch.Tensor]:
    """The cached maps of ``idx`` as 94e92e9 read them (CPU): widened, then reordered."""
    out = []
    for level in feats:
        x = torch.from_numpy(np.ascontiguousarray(level[idx])).float()
        out.append(x.contiguous(memory_format=torch.channels_last))
    return out


def old_decode(out: dict[str, torch.Tensor], top_k: int, score_threshold: float, stride: int):
    """94e92e9's ``decode``: ``F.max_pool2d`` for the peaks, then a frame at a time."""
    import torch.nn.functional as F

    from scenesift.models.detector_net import Decoded, _gather

    heat = torch.sigmoid(out["heat"].float())
    n, k, h, w = heat.shape
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    scores, flat = peaks.reshape(n, -1).topk(min(top_k, k * h * w))
    cls = flat // (h * w)
    pix = flat % (h * w)
    size = _gather(out["size"].float(), pix).exp() * stride
    offset = _gather(out["offset"].float(), pix)
    values = _gather(heat, pix)
    cx = ((pix % w).float() + offset[..., 0]) * stride
    cy = ((pix // w).float() + offset[..., 1]) * stride
    half_w, half_h = size[..., 0] / 2, size[..., 1] / 2
    boxes = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)
    result = []
    for i in range(n):
        keep = scores[i] >= score_threshold
        result.append(
            Decoded(
                boxes=boxes[i][keep].cpu().numpy(),
                classes=cls[i][keep].cpu().numpy(),
                scores=scores[i][keep].cpu().numpy(),
                class_values=values[i][keep].cpu().numpy(),
            )
        )
    return result


def old_boxes(d, classes, input_size, image_size) -> list:
    """94e92e9's ``decoded_to_boxes``: a Box per detection, one at a time."""
    from scenesift.records import Box

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


def old_predict(model, store, records) -> dict[str, list]:
    """94e92e9's ``predict`` on cached features."""
    from scenesift.models.detector import _image_size

    cfg, n = model.config, len(records)
    feats = model._pyramid(records, store, False)
    decoded = []
    with torch.inference_mode():
        for i in range(0, n, cfg.batch_size):
            heads = model.net.head(old_maps(feats, np.arange(i, min(i + cfg.batch_size, n))))
            decoded += old_decode(heads, cfg.top_k, cfg.score_threshold, cfg.head_stride)
    size = model._input_size()
    return {
        r.name: old_boxes(d, model.classes, size, _image_size(r))
        for r, d in zip(records, decoded, strict=True)
    }


def old_pool_detections(model, store, records, min_score: float):
    """94e92e9's ``DetectorLearner.pool_outputs`` (one member, no flip): Boxes, flattened."""
    from scenesift.al.pool import Detections

    predictions = old_predict(model, store, records)
    frame, scores, probs, boxes = [], [], [], []
    for row, r in enumerate(records):
        for b in predictions[r.name]:
            if b.score < min_score:
                continue
            frame.append(row)
            scores.append(b.score)
            probs.append(np.asarray(b.class_probs, np.float32))
            boxes.append((b.x1, b.y1, b.x2, b.y2))
    k = len(model.classes)
    return Detections(
        frame=np.asarray(frame, np.int64),
        scores=np.asarray(scores, np.float32),
        class_probs=np.stack(probs).astype(np.float32) if probs else np.zeros((0, k), np.float32),
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
    )


def same_detections(a, b) -> bool:
    return (
        np.array_equal(a.frame, b.frame)
        and np.allclose(a.scores, b.scores, atol=1e-5)
        and np.allclose(a.class_probs, b.class_probs, atol=1e-5)
        and np.allclose(a.boxes, b.boxes, atol=1e-2)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, help="a `scenesift synth` output (default: generate)")
    ap.add_argument("--frames", type=int, default=300, help="frames to generate")
    ap.add_argument("--input-pixels", type=int, help="detector input_pixels (default: its own)")
    ap.add_argument("--steps", type=int, default=20, help="training steps of the detector")
    ap.add_argument("--min-score", type=float, default=0.2, help="the learner's min_score")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    ap.add_argument(
        "--project", type=Path, help="keep the project (and its feature cache) here for reruns"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from scenesift.al.learners import DetectorLearner
    from scenesift.features.memory import keep_freed_memory
    from scenesift.models.detector import ObjectDetector
    from scenesift.store import Store
    from scenesift.synth import generate

    keep_freed_memory()
    detector = {"steps": args.steps, "evaluations": 1, "test_flip": False}
    if args.input_pixels:
        detector["input_pixels"] = args.input_pixels
    learner = DetectorLearner(detector=detector, min_score=args.min_score)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.project or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        world = args.world or folder / "world"
        if not (world / "labels.json").exists():
            generate(world, args.frames, seed=0, progress=False)
        if (folder / "project").exists():
            store = Store.open(folder / "project")  # a previous run's, with its feature cache
        else:
            store = build_project(world, folder)
        pool = store.records(split="train")
        model = ObjectDetector(store.taxonomy.classes, learner.config)
        start = time.perf_counter()
        model.fit(pool[:50], None, store=store, progress=False)
        model.predict(pool, store=store)  # caches the pool's pyramid: not timed
        setup = time.perf_counter() - start
        flipping = copy.copy(model)
        flipping.config = dataclasses.replace(model.config, test_flip=True)

        runs = {
            "old": lambda: old_pool_detections(model, store, pool, args.min_score),
            "new": lambda: learner.pool_outputs([model], store, pool).detections,
            "old boxes": lambda: old_predict(model, store, pool),
            "predict": lambda: model.predict(pool, store=store),
            "new, test flip": lambda: learner.pool_outputs([flipping], store, pool).detections,
        }
        seconds: dict[str, list[float]] = {k: [] for k in runs}
        results = {}
        for _ in range(args.repeats):
            for name, run in runs.items():
                t = time.perf_counter()
                results[name] = run()
                seconds[name].append(time.perf_counter() - t)
        store.close()

    old, new = results["old"], results["new"]
    n_boxes = sum(len(v) for v in results["predict"].values())
    print(f"\n{len(pool)} pool frames at {model._input_size()} (H, W), {torch.get_num_threads()} "
          f"threads; {n_boxes:,} detections ({n_boxes / len(pool):.0f} per frame), "
          f"{len(new.frame):,} at min_score {args.min_score}; setup {setup:.1f} s (not timed); "
          f"same detections: {same_detections(old, new)}\n")  # fmt: skip
    print("| path | frames/s (best) | frames/s (median) | ms per frame (best) |")
    print("| --- | --- | --- | --- |")
    for name, s in seconds.items():
        print(f"| {name} | {len(pool) / min(s):.0f} | {len(pool) / statistics.median(s):.0f} | "
              f"{1000 * min(s) / len(pool):.2f} |")  # fmt: skip
    ratio = statistics.median(seconds["old"]) / statistics.median(seconds["new"])
    boxes = statistics.median(seconds["old boxes"]) / statistics.median(seconds["predict"])
    flip = statistics.median(seconds["new, test flip"]) / statistics.median(seconds["new"])
    print(
        f"\npool detections: new path {ratio:.1f}x the old one's frames/s (medians); "
        f"predict (Boxes): {boxes:.1f}x; test flip costs {flip:.2f}x the plain new path"
    )


if __name__ == "__main__":
    main()
