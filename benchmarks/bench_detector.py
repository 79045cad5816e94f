"""Detector benchmark: training time per 1,000 frames and COCO mAP on a synthetic world.

    scenesift synth /tmp/w2k --frames 2000 && scenesift init /tmp/p2k
    scenesift import bdd /tmp/w2k/labels.json -p /tmp/p2k --images /tmp/w2k/images
    .venv/bin/python benchmarks/bench_detector.py --project /tmp/p2k --input-size 384x640

Trains on the train split and selects on the val split (backbone maps from the project's
``pyramid`` feature cache, computed first and timed apart: ``--project`` is used in place and
only its feature cache is written; ``--world`` imports into a temporary project), evaluates on
the test split and prints markdown for BENCHMARKS.md: the configuration, training seconds in
all and per 1,000 training frames, the evaluations (val mAP@0.5, kept), and AP@0.5 per class
with its test object count, plus the mean over the classes with >= 50 test objects.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import torch

from scenesift.features import embed, keep_freed_memory
from scenesift.metrics.detection import evaluate_detection
from scenesift.models.backbones import at_input_size, get_backbone
from scenesift.models.detector import DetectorConfig, ObjectDetector
from scenesift.store import Store

#: The strength target counts the classes with at least this many test objects.
MIN_OBJECTS = 50


def open_project(args: argparse.Namespace, tmp: Path) -> Store:
    """The given project (only its feature cache is written), or the world imported."""
    if args.project:
        return Store.open(args.project)
    from scenesift.io.formats import read_dataset

    store = Store.init(tmp / "proj")
    world = Path(args.world)
    batch = read_dataset("bdd", world / "labels.json", store.taxonomy, images=world / "images")
    store.ingest(batch)
    return store


def fmt(v: float | None) -> str:
    return "undefined" if v is None else f"{v:.3f}"


def config(args: argparse.Namespace) -> DetectorConfig:
    size = tuple(int(x) for x in args.input_size.split("x")) if args.input_size else None
    given = {
        "input_size": size,
        "mode": args.mode, "steps": args.steps, "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "eval_every": args.eval_every,
        "class_balance": args.class_balance, "width": args.width, "device": args.device,
        "seed": args.seed, "head_stride": args.head_stride, "crop": args.crop,
        "box_head": args.box_head, "min_radius": args.min_radius,
        "min_epochs": None if args.steps is None else 0,
        "ema": args.ema, "test_flip": None if args.test_flip is None else bool(args.test_flip),
    }  # fmt: skip
    return DetectorConfig(
        backbone=args.backbone, **{k: v for k, v in given.items() if v is not None}
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--world", help="a folder written by `scenesift synth`")
    src.add_argument("--project", help="a project (used in place; only its cache is written)")
    ap.add_argument("--input-size", help="HxW (default: the detector's)")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--eval-every", type=int)
    ap.add_argument("--class-balance", type=float)
    ap.add_argument("--width", type=int)
    ap.add_argument("--head-stride", type=int, choices=(4, 8))
    ap.add_argument("--crop", type=float, help="training window, fraction of each side")
    ap.add_argument("--box-head", choices=("split", "shared"))
    ap.add_argument("--min-radius", type=int)
    ap.add_argument("--ema", type=float)
    ap.add_argument("--test-flip", type=int, choices=(0, 1), help="flip test-time augmentation")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--device")
    ap.add_argument("--mode", choices=("frozen", "finetune"))
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2 cores)")
    ap.add_argument("--pr-plot", help="write the PR curves PNG here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    cfg = config(args)
    with tempfile.TemporaryDirectory(prefix="bench_detector_") as tmp:
        store = open_project(args, Path(tmp))
        classes = list(store.taxonomy.classes)
        train, val, test = (
            [r for r in store.records(split=s) if r.boxes is not None]
            for s in ("train", "val", "test")
        )
        backbone = at_input_size(get_backbone(cfg.backbone), cfg.input_size_for(train))
        started = time.perf_counter()
        names = [r.name for r in (*train, *val, *test)]
        if cfg.mode == "frozen":
            layer = "pyramid4" if cfg.head_stride == 4 else "pyramid"
            embed(store, backbone, names, layer=layer, progress=True)
        embed_s = time.perf_counter() - started
        det = ObjectDetector(classes, cfg)
        started = time.perf_counter()
        det.fit(train, val, store=store, backbone=backbone, progress=True)
        train_s = time.perf_counter() - started
        started = time.perf_counter()
        preds = det.predict(test, store=store)
        predict_s = time.perf_counter() - started
        res = evaluate_detection(test, preds, classes, slice_name="test")
        if args.pr_plot:
            res.plot_pr_curves(args.pr_plot)
        store.close()
    h, w = backbone.preprocessing.size
    changed = {
        k: v
        for k, v in dataclasses.asdict(cfg).items()
        if v != getattr(DetectorConfig(), k) and k not in ("backbone",)
    }
    print(
        f"\n{len(train)} train / {len(val)} val / {len(test)} test frames, {cfg.backbone} "
        f"{h}x{w}, {cfg.mode}, non-default settings {changed or 'none'}, "
        f"{det.history[-1].steps} steps in {len(det.history)} epochs, {args.threads} threads, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"pyramid features (once, cached): {embed_s:.1f} s; training {train_s:.1f} s = "
        f"**{1000 * train_s / len(train):.1f} s per 1,000 training frames**; predicting "
        f"{len(test)} frames {predict_s:.1f} s\n"
    )
    print("| epoch | steps | train loss | val loss | val mAP@0.5 | kept |")
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    for e in det.history:
        if e.val_map50 is not None:
            kept = "kept" if e.kept else ""
            print(
                f"| {e.epoch + 1} | {e.steps} | {e.train_loss:.3f} | {e.val_loss:.3f} | "
                f"{e.val_map50:.3f} | {kept} |"
            )
    print("\n| class | test objects | AP@0.5 | AP@[.5:.95] |\n| --- | ---: | ---: | ---: |")
    for c in [*classes, "all"]:
        a50, a = res.get("AP50", c), res.get("AP", c)
        label = "**mean**" if c == "all" else c
        print(f"| {label} | {a.n_instances} | {fmt(a50.value)} | {fmt(a.value)} |")
    for size in ("small", "medium", "large"):
        a50, a = res.get("AP50", "all", size), res.get("AP", "all", size)
        print(f"| ({size}) | {a.n_instances} | {fmt(a50.value)} | {fmt(a.value)} |")
    big = [c for c in classes if res.get("AP50", c).n_instances >= MIN_OBJECTS]
    vals = [res.get("AP50", c).value or 0.0 for c in big]
    print(
        f"\nmAP@0.5 over the classes with >= {MIN_OBJECTS} test objects ({', '.join(big)}): "
        f"**{sum(vals) / max(len(vals), 1):.3f}**; all classes {fmt(res.map50)}; "
        f"mAP@[.5:.95] {fmt(res.map)}"
    )


if __name__ == "__main__":
    main()
