"""Detector slices: AP@0.5 per situation and per object distance band, with slice sizes and
95% bootstrap intervals over images, and the expected orderings tested.

    scenesift detector train -p /tmp/p5k_det --epochs 8
    scenesift synth /tmp/fog_eval --frames 2000 --seed 1 --config benchmarks/fog_eval_world.toml
    .venv/bin/python benchmarks/bench_slices.py --project /tmp/p5k_det --eval-world /tmp/fog_eval

Evaluates the project's latest (or ``--checkpoint``) detector on its test split and, with
``--eval-world``, on a second generated world it never saw (default weather there: half fog,
half clear, so that fog has enough objects at every distance; the 5,000-frame world has 20
fog test frames). Prints markdown tables for BENCHMARKS.md:

- per slice: images, ground-truth objects, mAP@0.5 and car AP@0.5, each with its interval.
  Car is the class present in every slice, so its AP is not confounded by the class mix;
- car AP@0.5 per distance band (object slices: ground truth by its labelled distance,
  detections by a distance estimated from box height) within each condition, so that a
  condition is compared with another at the same distances;
- the orderings night < day, fog < clear, far < close as differences with 95% intervals:
  paired (the same image resamples) for object slices of one evaluation, independent
  resamples for disjoint frame slices.

The project is read, not written (predictions come from its cached backbone maps); the
evaluation world's frames are decoded directly.
"""

from __future__ import annotations

import argparse
import math
import os
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from scenesift.features.memory import keep_freed_memory
from scenesift.io.formats import read_dataset
from scenesift.metrics.detection import (
    DetectionResults,
    ObjectSlices,
    distance_slices,
    evaluate_detection,
    evaluate_object_slices,
)
from scenesift.pipelines import detector as pipe
from scenesift.records import Box, FrameRecord
from scenesift.store import Store

CONDITIONS = ("day", "dusk", "night", "clear", "rain", "fog", "snow")
#: Finer distance bands (m) than close / mid / far, to see the trend.
BANDS = {
    "0-10m": (0.0, 10.0),
    "10-20m": (math.nextafter(10.0, math.inf), 20.0),
    "20-40m": (math.nextafter(20.0, math.inf), 40.0),
    "40-70m": (math.nextafter(40.0, math.inf), 70.0),
    ">70m": (math.nextafter(70.0, math.inf), math.inf),
}


def seed_of(name: str, base: int) -> int:
    """A distinct seed per slice, so disjoint slices get independent resamples."""
    return base + zlib.crc32(name.encode())


def frame_slice(
    frames: Sequence[FrameRecord],
    preds: Mapping[str, Sequence[Box]],
    classes: Sequence[str],
    name: str,
    args: argparse.Namespace,
) -> DetectionResults:
    return evaluate_detection(frames, preds, classes, name, args.boot, seed_of(name, args.seed))


def object_slices(
    frames: Sequence[FrameRecord],
    preds: Mapping[str, Sequence[Box]],
    classes: Sequence[str],
    objects: ObjectSlices,
    name: str,
    args: argparse.Namespace,
) -> dict[str, DetectionResults]:
    seed = seed_of(name, args.seed)
    return evaluate_object_slices(frames, preds, classes, objects, args.boot, seed).slices


def cell(res: DetectionResults, category: str = "all", n: bool = False) -> str:
    r = res.get("AP50", category)
    if r.value is None:
        return "undefined" + (f" (n={r.n_instances})" if n else "")
    text = f"{r.value:.3f}"
    if r.ci is not None:
        text += f" [{r.ci[0]:.3f}, {r.ci[1]:.3f}]"
    return text + (f" (n={r.n_instances})" if n else "")


def slice_table(title: str, rows: Mapping[str, DetectionResults]) -> None:
    print(f"\n{title}\n")
    print("| slice | images | objects | mAP@0.5 [95% CI] | cars | car AP@0.5 [95% CI] |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, res in rows.items():
        print(
            f"| {name} | {res.n_images} | {res.get('AP50').n_instances} | {cell(res)} | "
            f"{res.get('AP50', 'car').n_instances} | {cell(res, 'car')} |"
        )


def distance_table(title: str, rows: Mapping[str, Mapping[str, DetectionResults]]) -> None:
    """Car AP@0.5 per (condition, distance band), each with its number of cars."""
    bands = list(next(iter(rows.values())))
    print(f"\n{title}\n")
    print("| condition | " + " | ".join(bands) + " |")
    print("| --- |" + " ---: |" * len(bands))
    for cond, by_band in rows.items():
        print(f"| {cond} | " + " | ".join(cell(by_band[b], "car", n=True) for b in bands) + " |")


def difference(a: DetectionResults, b: DetectionResults) -> str:
    """a - b in car AP@0.5 with a 95% percentile interval of the resampled differences."""
    va, vb = a.get("AP50", "car").value, b.get("AP50", "car").value
    if va is None or vb is None:
        return "undefined | |"
    d = a.samples("car") - b.samples("car")
    d = d[~np.isnan(d)]
    if d.size < 2:
        return f"{va - vb:+.3f} | | no interval"
    low, high = np.percentile(d, [2.5, 97.5])
    verdict = "yes" if high < 0 else "not shown (interval holds 0)" if low <= 0 else "reversed"
    return f"{va - vb:+.3f} | [{low:+.3f}, {high:+.3f}] | {verdict}"


def proxy_agreement(frames: Sequence[FrameRecord]) -> None:
    """How often the box-height distance puts a ground-truth box in its labelled band: what
    decides the band of an unmatched detection (a matched one counts in its object's)."""
    objects = distance_slices(frames)
    bands = list(objects.ranges)
    counts = np.zeros((len(bands), len(bands)), dtype=int)

    def band(d: float) -> int:
        return next(i for i, (lo, hi) in enumerate(objects.ranges.values()) if lo <= d <= hi)

    for f in frames:
        for b in f.boxes or ():
            counts[band(objects.gt_key(b)), band(objects.dt_key(b))] += 1
    shares = ", ".join(
        f"{name} {counts[i, i] / max(counts[i].sum(), 1):.0%} of {counts[i].sum()}"
        for i, name in enumerate(bands)
    )
    print(f"\nBox-height distance on the ground-truth boxes, in their labelled band: {shares}")


def by_situation(frames: Sequence[FrameRecord], situation: str) -> list[FrameRecord]:
    return [f for f in frames if f.situations.get(situation)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", required=True, help="a project with a trained detector")
    ap.add_argument("--checkpoint", help="default: the project's latest detector")
    ap.add_argument("--split", default="test")
    ap.add_argument("--eval-world", help="a second world from `scenesift synth` to evaluate on")
    ap.add_argument("--boot", type=int, default=200, help="bootstrap resamples over images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2 cores)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    started = time.perf_counter()
    with Store.open(args.project) as store:
        det, path = pipe.load(store, Path(args.checkpoint) if args.checkpoint else None)
        taxonomy = store.taxonomy
        classes = list(taxonomy.classes)
        gt = pipe.with_truth(store, args.split)
        preds = det.predict(gt, store=store)
        # labels where the frame has them, else the latest tagger (as `detector eval`)
        situations = pipe.situation_slices(store, gt)
    predict_s = time.perf_counter() - started
    by_name = {f.name: f for f in gt}
    print(
        f"detector {path.name} ({det.config.mode}, {det.config.backbone}); {args.split} split: "
        f"{len(gt)} frames; {args.boot} bootstrap resamples over images; torch threads "
        f"{args.threads}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )

    started, world_predict_s = time.perf_counter(), 0.0
    test = {"all": frame_slice(gt, preds, classes, "all", args)}
    for s in CONDITIONS:
        members = [by_name[n] for n in situations[s]]
        test[s] = frame_slice(members, preds, classes, s, args)
    test |= object_slices(gt, preds, classes, distance_slices(gt), "objects", args)
    fine = distance_slices(gt, bands=BANDS)
    test |= object_slices(gt, preds, classes, fine, "bands", args)
    slice_table(f"Test split of the training world ({len(gt)} frames)", test)
    proxy_agreement(gt)

    dist: dict[str, dict[str, DetectionResults]] = {}
    for cond in ("all", *CONDITIONS):
        members = gt if cond == "all" else [by_name[n] for n in situations[cond]]
        if members:
            dist[cond] = object_slices(members, preds, classes, fine, f"dist-{cond}", args)
    distance_table("Car AP@0.5 by distance within each condition (test split)", dist)

    checks = [
        ("night - day (frames)", test["night"], test["day"]),
        ("fog - clear (frames)", test["fog"], test["clear"]),
        ("far - close (objects, paired)", test["object:far"], test["object:close"]),
        ("far - mid (objects, paired)", test["object:far"], test["object:mid"]),
        ("night - day, cars 40-70m", dist["night"]["object:40-70m"], dist["day"]["object:40-70m"]),
    ]

    if args.eval_world:
        world = Path(args.eval_world)
        batch = read_dataset("bdd", world / "labels.json", taxonomy, images=world / "images")
        frames = [f for f in batch.frames if f.boxes is not None]
        t0 = time.perf_counter()
        wpreds = det.predict(frames)  # decodes the images: no cached maps for this world
        world_predict_s = time.perf_counter() - t0
        fog, clear = by_situation(frames, "fog"), by_situation(frames, "clear")
        ev_rows = {"all": frame_slice(frames, wpreds, classes, "w-all", args)}
        for name, members in (
            ("clear", clear),
            ("fog", fog),
            ("clear, day", [f for f in clear if f.situations.get("day")]),
            ("fog, day", [f for f in fog if f.situations.get("day")]),
            ("clear, night", [f for f in clear if f.situations.get("night")]),
            ("fog, night", [f for f in fog if f.situations.get("night")]),
        ):
            ev_rows[name] = frame_slice(members, wpreds, classes, f"w-{name}", args)
        slice_table(
            f"Evaluation world {world.name} ({len(frames)} frames, never trained on)", ev_rows
        )
        wdist = {
            name: object_slices(members, wpreds, classes, fine, f"wdist-{name}", args)
            for name, members in (("clear", clear), ("fog", fog))
        }
        distance_table(f"Car AP@0.5 by distance, clear vs fog ({world.name})", wdist)
        checks += [
            (f"fog - clear (frames, {world.name})", ev_rows["fog"], ev_rows["clear"]),
        ]
        for band in wdist["fog"]:
            checks.append(
                (f"fog - clear, cars {band[7:]} ({world.name})", wdist["fog"][band],
                 wdist["clear"][band])
            )  # fmt: skip

    print("\nExpected orderings (car AP@0.5 difference, 95% bootstrap interval)\n")
    print("| comparison | difference | 95% CI | worse at 95%? |\n| --- | ---: | ---: | --- |")
    for name, a, b in checks:
        print(f"| {name} | {difference(a, b)} |")
    evaluate_s = time.perf_counter() - started - world_predict_s
    print(
        f"\npredicting: {args.split} split {predict_s:.1f} s (cached maps), evaluation world "
        f"{world_predict_s:.1f} s (images decoded); evaluating with intervals {evaluate_s:.1f} s"
    )


if __name__ == "__main__":
    main()
