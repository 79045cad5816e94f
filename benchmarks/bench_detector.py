"""Detector benchmark: frozen-mode training time and COCO mAP on the synthetic world.

    scenesift synth /tmp/w5k --frames 5000
    .venv/bin/python benchmarks/bench_detector.py --world /tmp/w5k --epochs 12
    .venv/bin/python benchmarks/bench_detector.py --project /tmp/p5k   # copied, never written

Trains on the train split (backbone maps from the project's ``pyramid`` feature cache,
computed first and timed apart), evaluates on the test split with pycocotools, and prints
a markdown table for BENCHMARKS.md: training wall time, mAP@0.5, mAP@[.5:.95] and per-class
AP@0.5 with instance counts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from scenesift.features import embed, keep_freed_memory
from scenesift.metrics.detection import evaluate_detection
from scenesift.models.backbones import get_backbone
from scenesift.models.detector import DetectorConfig, ObjectDetector
from scenesift.store import Store


def open_project(args: argparse.Namespace, tmp: Path) -> Store:
    """A private project: the given one copied, or the world imported into a new one."""
    if args.project:
        shutil.copytree(args.project, tmp / "proj")
        return Store.open(tmp / "proj")
    from scenesift.io.formats import read_dataset

    store = Store.init(tmp / "proj")
    world = Path(args.world)
    batch = read_dataset("bdd", world / "labels.json", store.taxonomy, images=world / "images")
    store.ingest(batch)
    return store


def fmt(v: float | None) -> str:
    return "undefined" if v is None else f"{v:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--world", help="a folder written by `scenesift synth`")
    src.add_argument("--project", help="a project to copy (the original is not written)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--mode", choices=("frozen", "finetune"), default="frozen")
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2 cores)")
    ap.add_argument("--pr-plot", help="write the PR curves PNG here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    with tempfile.TemporaryDirectory(prefix="bench_detector_") as tmp:
        store = open_project(args, Path(tmp))
        classes = list(store.taxonomy.classes)
        train, val, test = (store.records(split=s) for s in ("train", "val", "test"))
        backbone = get_backbone(args.backbone)
        started = time.perf_counter()
        names = [r.name for r in (*train, *val, *test)]
        embed(store, backbone, names, layer="pyramid", progress=True)
        embed_s = time.perf_counter() - started
        det = ObjectDetector(
            classes, DetectorConfig(backbone=args.backbone, mode=args.mode, epochs=args.epochs)
        )
        started = time.perf_counter()
        det.fit(train, val, store=store, backbone=backbone, progress=True)
        train_s = time.perf_counter() - started
        started = time.perf_counter()
        preds = det.predict(test, store=store)
        predict_s = time.perf_counter() - started
        res = evaluate_detection(test, preds, classes, slice_name="test")
        if args.pr_plot:
            res.plot_pr_curves(args.pr_plot)
    print(
        f"\n{len(train)} train / {len(val)} val / {len(test)} test frames, "
        f"{args.backbone}, {args.mode}, {args.epochs} epochs, {args.threads} threads, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"pyramid features (once, cached): {embed_s:.1f} s; training {train_s:.1f} s; "
        f"predicting {len(test)} frames {predict_s:.1f} s\n"
    )
    print("| epoch | train loss | val loss | s |\n| --- | --- | --- | --- |")
    for h in det.history:
        print(f"| {h.epoch} | {h.train_loss:.3f} | {h.val_loss:.3f} | {h.seconds:.1f} |")
    print("\n| class | test instances | AP@0.5 | AP@[.5:.95] |\n| --- | --- | --- | --- |")
    for c in [*classes, "all"]:
        a50, a = res.get("AP50", c), res.get("AP", c)
        label = "**mean**" if c == "all" else c
        print(f"| {label} | {a.n_instances} | {fmt(a50.value)} | {fmt(a.value)} |")
    for size in ("small", "medium", "large"):
        a50, a = res.get("AP50", "all", size), res.get("AP", "all", size)
        print(f"| ({size}) | {a.n_instances} | {fmt(a50.value)} | {fmt(a.value)} |")
    print(
        f"\ntraining wall time {train_s:.1f} s, mAP@0.5 {fmt(res.map50)}, "
        f"mAP@[.5:.95] {fmt(res.map)}"
    )


if __name__ == "__main__":
    main()
